//! Round trips through the real `connect_tower::client::Client` over every transport, every
//! protocol the transport can carry, plaintext and TLS (ALPN h2 and http/1.1), and mTLS.

mod common;

use std::sync::Arc;

use common::*;
use connect_tokio_hyper::tls::{self, ClientAuth};
use connect_tokio_hyper::{H2Connection, HttpClient, Server, TokioTimer};
use connect_tower::client::{CallOptions, Client, ClientConfig, Transport};
use connect_tower::{Code, Protocol};

const ALL: [Protocol; 3] = [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb];
/// gRPC needs HTTP/2.
const HTTP1: [Protocol; 2] = [Protocol::Connect, Protocol::GrpcWeb];

fn client<T: Transport>(transport: T, uri: http::Uri, protocol: Protocol) -> Client<T> {
    Client::new(transport, ClientConfig::new(uri).protocol(protocol)).timer(TokioTimer::new())
}

/// Unary, server streaming, an error status and the peer description, over `client`.
async fn round_trips<T: Transport>(client: &Client<T>, protocol: Protocol) -> String {
    round_trips_duplex(client, protocol, true).await
}

/// [`round_trips`]; bidi streaming is full duplex only if `full_duplex` (HTTP/2).
async fn round_trips_duplex<T: Transport>(
    client: &Client<T>,
    protocol: Protocol,
    full_duplex: bool,
) -> String {
    let reply = client
        .unary::<StringValue, StringValue>(&ECHO, string("hello"), CallOptions::default())
        .await
        .unwrap_or_else(|status| panic!("{protocol:?} unary: {status:?}"));
    assert_eq!(reply.message().value, "hello");

    let mut stream = client
        .server_streaming::<StringValue, StringValue>(&REPEAT, string("m"), CallOptions::default())
        .await
        .unwrap_or_else(|status| panic!("{protocol:?} server streaming: {status:?}"));
    let mut received = Vec::new();
    while let Some(message) = stream
        .message()
        .await
        .unwrap_or_else(|status| panic!("{protocol:?} stream message: {status:?}"))
    {
        received.push(message.value);
    }
    let expected: Vec<String> = (0..REPEAT_COUNT).map(|i| format!("m#{i}")).collect();
    assert_eq!(received, expected, "{protocol:?}");

    let status = client
        .unary::<StringValue, StringValue>(&FAIL, string("no quota"), CallOptions::default())
        .await
        .expect_err("Fail fails");
    assert_eq!(status.code(), Code::ResourceExhausted, "{protocol:?}");
    assert_eq!(status.message(), "no quota", "{protocol:?}");

    let mut collect = client
        .client_streaming::<StringValue, StringValue>(&COLLECT, CallOptions::default())
        .await
        .unwrap_or_else(|status| panic!("{protocol:?} client streaming: {status:?}"));
    for value in ["a", "b", "c"] {
        collect.send(string(value)).await.unwrap();
    }
    let joined = collect
        .finish()
        .await
        .unwrap_or_else(|status| panic!("{protocol:?} client streaming: {status:?}"));
    assert_eq!(joined.message().value, "a,b,c", "{protocol:?}");

    let mut chat = client
        .bidi_streaming::<StringValue, StringValue>(&CHAT, CallOptions::default())
        .await
        .unwrap_or_else(|status| panic!("{protocol:?} bidi: {status:?}"));
    if full_duplex {
        for value in ["x", "y"] {
            chat.send(string(value)).await.unwrap();
            let reply = chat.message().await.unwrap().expect("a reply");
            assert_eq!(reply.value, format!("re: {value}"), "{protocol:?}");
        }
        chat.close_send().unwrap();
    } else {
        for value in ["x", "y"] {
            chat.send(string(value)).await.unwrap();
        }
        chat.close_send().unwrap();
        for value in ["x", "y"] {
            let reply = chat.message().await.unwrap().expect("a reply");
            assert_eq!(reply.value, format!("re: {value}"), "{protocol:?}");
        }
    }
    assert!(chat.message().await.unwrap().is_none(), "{protocol:?}");

    client
        .unary::<StringValue, StringValue>(&PEER, string(""), CallOptions::default())
        .await
        .unwrap_or_else(|status| panic!("{protocol:?} peer: {status:?}"))
        .message()
        .value
        .clone()
}

#[tokio::test]
async fn pooled_http1() {
    let server = start(Server::builder(), Echo::default()).await;
    let transport = HttpClient::plaintext_http1();
    for protocol in HTTP1 {
        let peer = round_trips_duplex(
            &client(transport.clone(), server.http_uri(), protocol),
            protocol,
            false,
        )
        .await;
        assert_eq!(
            peer,
            "tls=false certs=0 remote=true local=true version=HTTP/1.1"
        );
    }
    assert!(server.shutdown().await.drained());
}

#[tokio::test]
async fn pooled_h2c() {
    let server = start(Server::builder(), Echo::default()).await;
    let transport = HttpClient::plaintext_h2c();
    for protocol in ALL {
        let peer = round_trips(
            &client(transport.clone(), server.http_uri(), protocol),
            protocol,
        )
        .await;
        assert_eq!(
            peer,
            "tls=false certs=0 remote=true local=true version=HTTP/2.0"
        );
    }
    assert!(server.shutdown().await.drained());
}

#[tokio::test]
async fn plaintext_client_refuses_https() {
    let server = start(Server::builder(), Echo::default()).await;
    let client = client(
        HttpClient::plaintext_h2c(),
        server.https_uri(),
        Protocol::Connect,
    );
    let status = client
        .unary::<StringValue, StringValue>(&ECHO, string("x"), CallOptions::default())
        .await
        .expect_err("an https URI on a plaintext client");
    assert_eq!(status.code(), Code::Unavailable);
    server.shutdown().await;
}

#[tokio::test]
async fn tls_alpn_h2() {
    let pki = Pki::new();
    let server = start(
        Server::builder().tls(pki.server_config(ClientAuth::None)),
        Echo::default(),
    )
    .await;
    let transport = HttpClient::tls(pki.client_config(false));
    for protocol in ALL {
        let peer = round_trips(
            &client(transport.clone(), server.https_uri(), protocol),
            protocol,
        )
        .await;
        assert_eq!(
            peer,
            "tls=true certs=0 remote=true local=true version=HTTP/2.0"
        );
    }
    assert!(server.shutdown().await.drained());
}

#[tokio::test]
async fn tls_alpn_http1() {
    let pki = Pki::new();
    let server = start(
        Server::builder().tls(pki.server_config(ClientAuth::None)),
        Echo::default(),
    )
    .await;
    let transport = HttpClient::tls(pki.client_config_alpn(false, tls::ALPN_HTTP1));
    for protocol in HTTP1 {
        let peer = round_trips_duplex(
            &client(transport.clone(), server.https_uri(), protocol),
            protocol,
            false,
        )
        .await;
        assert_eq!(
            peer,
            "tls=true certs=0 remote=true local=true version=HTTP/1.1"
        );
    }
    assert!(server.shutdown().await.drained());
}

#[tokio::test]
async fn tls_client_refuses_http() {
    let pki = Pki::new();
    let server = start(Server::builder(), Echo::default()).await;
    let client = client(
        HttpClient::tls(pki.client_config(false)),
        server.http_uri(),
        Protocol::Connect,
    );
    let status = client
        .unary::<StringValue, StringValue>(&ECHO, string("x"), CallOptions::default())
        .await
        .expect_err("an http URI on a TLS client");
    assert_eq!(status.code(), Code::Unavailable);
    server.shutdown().await;
}

#[tokio::test]
async fn mtls_client_chain_reaches_the_handler() {
    let pki = Pki::new();
    let server = start(
        Server::builder().tls(pki.server_config(ClientAuth::Required(pki.roots()))),
        Echo::default(),
    )
    .await;
    for alpn in [tls::ALPN_H2, tls::ALPN_HTTP1] {
        let transport = HttpClient::tls(pki.client_config_alpn(true, alpn));
        let peer = round_trips_duplex(
            &client(transport, server.https_uri(), Protocol::Connect),
            Protocol::Connect,
            alpn == tls::ALPN_H2,
        )
        .await;
        let version = if alpn == tls::ALPN_H2 {
            "HTTP/2.0"
        } else {
            "HTTP/1.1"
        };
        // The chain is leaf + CA, as the client sent it.
        assert_eq!(
            peer,
            format!("tls=true certs=2 remote=true local=true version={version}")
        );
    }
    assert!(server.shutdown().await.drained());
}

#[tokio::test]
async fn mtls_required_rejects_a_client_without_certificate() {
    let pki = Pki::new();
    let server = start(
        Server::builder().tls(pki.server_config(ClientAuth::Required(pki.roots()))),
        Echo::default(),
    )
    .await;
    for alpn in [tls::ALPN_H2, tls::ALPN_HTTP1] {
        let client = client(
            HttpClient::tls(pki.client_config_alpn(false, alpn)),
            server.https_uri(),
            Protocol::Connect,
        );
        let status = client
            .unary::<StringValue, StringValue>(&ECHO, string("x"), CallOptions::default())
            .await
            .expect_err("no client certificate");
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    }
    // A client certificate from another CA is rejected too.
    let other = Pki::new();
    let config = tls::client_config(pki.roots(), Some(other.client.clone())).unwrap();
    let client = client(
        HttpClient::tls(config),
        server.https_uri(),
        Protocol::Connect,
    );
    let status = client
        .unary::<StringValue, StringValue>(&ECHO, string("x"), CallOptions::default())
        .await
        .expect_err("untrusted client certificate");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn mtls_optional_admits_a_client_without_certificate() {
    let pki = Pki::new();
    let server = start(
        Server::builder().tls(pki.server_config(ClientAuth::Optional(pki.roots()))),
        Echo::default(),
    )
    .await;
    let anonymous = round_trips(
        &client(
            HttpClient::tls(pki.client_config(false)),
            server.https_uri(),
            Protocol::Grpc,
        ),
        Protocol::Grpc,
    )
    .await;
    assert_eq!(
        anonymous,
        "tls=true certs=0 remote=true local=true version=HTTP/2.0"
    );
    let known = round_trips(
        &client(
            HttpClient::tls(pki.client_config(true)),
            server.https_uri(),
            Protocol::Grpc,
        ),
        Protocol::Grpc,
    )
    .await;
    assert_eq!(
        known,
        "tls=true certs=2 remote=true local=true version=HTTP/2.0"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn rsa_pkcs1_server_key() {
    let pki = Pki::with_key_alg(&rcgen::PKCS_RSA_SHA256);
    let pkcs1 = pkcs8_rsa_to_pkcs1_pem(&pki.server_key_pem);
    assert!(pkcs1.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let identity = tls::Identity::new(
        pki.server.cert_chain().to_vec(),
        tls::private_key_from_pem(pkcs1.as_bytes()).unwrap(),
    );
    assert!(matches!(
        tls::private_key_from_pem(pkcs1.as_bytes()).unwrap(),
        tls::rustls_pki_types::PrivateKeyDer::Pkcs1(_)
    ));
    let config = tls::server_config(identity, ClientAuth::None).unwrap();
    let server = start(Server::builder().tls(config), Echo::default()).await;
    round_trips(
        &client(
            HttpClient::tls(pki.client_config(false)),
            server.https_uri(),
            Protocol::Connect,
        ),
        Protocol::Connect,
    )
    .await;
    server.shutdown().await;
}

#[tokio::test]
async fn single_h2_connection_plaintext() {
    let server = start(Server::builder(), Echo::default()).await;
    let connection = H2Connection::connect(&server.http_uri()).await.unwrap();
    for protocol in ALL {
        let peer = round_trips(
            &client(connection.clone(), server.http_uri(), protocol),
            protocol,
        )
        .await;
        assert_eq!(
            peer,
            "tls=false certs=0 remote=true local=true version=HTTP/2.0"
        );
    }
    assert_eq!(connection.in_flight(), 0);
    assert!(server.shutdown().await.drained());
}

#[tokio::test]
async fn single_h2_connection_mtls() {
    let pki = Pki::new();
    let server = start(
        Server::builder().tls(pki.server_config(ClientAuth::Required(pki.roots()))),
        Echo::default(),
    )
    .await;
    // The configuration offers both ALPN ids; the connection narrows it to h2.
    let connection = H2Connection::connect_tls(&server.https_uri(), pki.client_config(true))
        .await
        .unwrap();
    for protocol in ALL {
        let peer = round_trips(
            &client(connection.clone(), server.https_uri(), protocol),
            protocol,
        )
        .await;
        assert_eq!(
            peer,
            "tls=true certs=2 remote=true local=true version=HTTP/2.0"
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn single_h2_connection_needs_h2_alpn() {
    let pki = Pki::new();
    let mut config = (*pki.server_config(ClientAuth::None)).clone();
    config.alpn_protocols = vec![tls::ALPN_HTTP1.to_vec()];
    let server = start(Server::builder().tls(Arc::new(config)), Echo::default()).await;
    let error = H2Connection::connect_tls(&server.https_uri(), pki.client_config(false))
        .await
        .expect_err("the server only speaks http/1.1");
    // rustls fails the handshake (no common ALPN protocol) or the connection sees no h2.
    assert!(
        matches!(
            error,
            connect_tokio_hyper::Error::Io(_) | connect_tokio_hyper::Error::Alpn(_)
        ),
        "{error:?}"
    );
    server.shutdown().await;
}

/// Re-encodes an RSA PKCS#8 key (as rcgen writes it) as PKCS#1 PEM (`RSA PRIVATE KEY`), the
/// form the conformance runner hands out.
fn pkcs8_rsa_to_pkcs1_pem(pkcs8_pem: &str) -> String {
    use base64::Engine;
    let body: String = pkcs8_pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    // PrivateKeyInfo ::= SEQUENCE { version INTEGER, algorithm SEQUENCE, privateKey OCTET STRING }
    let (_, info) = der_element(&der);
    let (version_len, rest) = der_skip(info);
    let rest = &rest[version_len..];
    let (algorithm_len, rest) = der_skip(rest);
    let rest = &rest[algorithm_len..];
    let (_, pkcs1) = der_element(rest);
    let encoded = base64::engine::general_purpose::STANDARD.encode(pkcs1);
    let mut pem = String::from("-----BEGIN RSA PRIVATE KEY-----\n");
    for line in encoded.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap());
        pem.push('\n');
    }
    pem.push_str("-----END RSA PRIVATE KEY-----\n");
    pem
}

/// The tag and contents of the DER element at the start of `input`.
fn der_element(input: &[u8]) -> (u8, &[u8]) {
    let (len, header) = der_length(&input[1..]);
    (input[0], &input[1 + header..1 + header + len])
}

/// The total length of the element at the start of `input`, and `input`.
fn der_skip(input: &[u8]) -> (usize, &[u8]) {
    let (len, header) = der_length(&input[1..]);
    (1 + header + len, input)
}

/// A DER length and the number of bytes it took.
fn der_length(input: &[u8]) -> (usize, usize) {
    if input[0] < 0x80 {
        return (usize::from(input[0]), 1);
    }
    let count = usize::from(input[0] & 0x7f);
    let len = input[1..=count]
        .iter()
        .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
    (len, 1 + count)
}
