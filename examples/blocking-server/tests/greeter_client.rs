//! The blocking server on a loopback port, called by the greeter example's generated client
//! (connect-tower over connect-tokio-hyper's HTTP/1.1 transport) over Connect (proto and JSON,
//! POST and GET) and gRPC-Web (binary and text), and by raw sockets for what a well-behaved
//! client never sends.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use blocking_server_example::{GreeterOptions, ServerOptions};
use connect_proto_core::{Codec, Protocol};
use connect_tokio_hyper::{HttpClient, TokioTimer};
use connect_tower::Code;
use connect_tower::client::{CallOptions, Client, ClientConfig};
use greeter_example::greet::greeter::GreeterClient;
use greeter_example::greet::{HelloRequest, RepeatRequest};

use common::{
    Running, SAY_HELLO, SAY_HELLO_REPEATEDLY, connect, enveloped, exchange, field, post, read_one,
};

/// The generated client over HTTP/1.1.
fn client(addr: SocketAddr, protocol: Protocol, codec: Codec, variant: Variant) -> Greeter {
    let config = ClientConfig::new(format!("http://{addr}").parse().unwrap())
        .protocol(protocol)
        .codec(codec)
        .use_get(variant == Variant::Get)
        .grpc_web_text(variant == Variant::Text)
        .default_timeout(Some(Duration::from_secs(5)));
    GreeterClient::new(Client::new(HttpClient::plaintext_http1(), config).timer(TokioTimer::new()))
}

type Greeter = GreeterClient<HttpClient>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    /// Connect POST, gRPC-Web binary.
    Plain,
    /// Connect GET for `SayHello`.
    Get,
    /// gRPC-Web text.
    Text,
}

/// Every combination the server speaks.
const SETUPS: [(Protocol, Codec, Variant); 8] = [
    (Protocol::Connect, Codec::Proto, Variant::Plain),
    (Protocol::Connect, Codec::Json, Variant::Plain),
    (Protocol::Connect, Codec::Proto, Variant::Get),
    (Protocol::Connect, Codec::Json, Variant::Get),
    (Protocol::GrpcWeb, Codec::Proto, Variant::Plain),
    (Protocol::GrpcWeb, Codec::Json, Variant::Plain),
    (Protocol::GrpcWeb, Codec::Proto, Variant::Text),
    (Protocol::GrpcWeb, Codec::Json, Variant::Text),
];

fn hello(name: &str) -> HelloRequest {
    HelloRequest {
        name: name.into(),
        ..Default::default()
    }
}

fn repeat(name: &str, times: u32) -> RepeatRequest {
    RepeatRequest {
        name: name.into(),
        times,
        ..Default::default()
    }
}

/// The greetings of a server stream, and the error that ended it, if any.
async fn stream(
    greeter: &Greeter,
    request: RepeatRequest,
    options: CallOptions,
) -> (Vec<String>, Option<connect_tower::Status>) {
    let mut replies = Vec::new();
    let mut stream = match greeter
        .say_hello_repeatedly_with_options(request, options)
        .await
    {
        Ok(stream) => stream,
        Err(status) => return (replies, Some(status)),
    };
    loop {
        match stream.message().await {
            Ok(Some(reply)) => replies.push(reply.message),
            Ok(None) => return (replies, None),
            Err(status) => return (replies, Some(status)),
        }
    }
}

#[tokio::test]
async fn unary_in_every_protocol_and_codec() {
    let server = Running::new();
    for (protocol, codec, variant) in SETUPS {
        let setup = format!("{protocol:?} {codec:?} {variant:?}");
        let greeter = client(server.addr, protocol, codec, variant);
        let reply = greeter.say_hello(hello("Ada")).await.expect(&setup);
        assert_eq!(reply.message().message, "Hello, Ada!", "{setup}");

        let status = greeter.say_hello(hello("")).await.expect_err(&setup);
        assert_eq!(status.code(), Code::InvalidArgument, "{setup}");
        assert_eq!(status.message(), "name must not be empty", "{setup}");
    }
}

#[tokio::test]
async fn server_streaming_in_every_protocol_and_codec() {
    let server = Running::new();
    for (protocol, codec, variant) in SETUPS {
        let setup = format!("{protocol:?} {codec:?} {variant:?}");
        let greeter = client(server.addr, protocol, codec, variant);
        let (replies, error) = stream(&greeter, repeat("Grace", 3), CallOptions::new()).await;
        assert_eq!(error, None, "{setup}");
        assert_eq!(
            replies,
            [
                "Hello, Grace! (1/3)",
                "Hello, Grace! (2/3)",
                "Hello, Grace! (3/3)"
            ],
            "{setup}"
        );

        let (replies, error) = stream(&greeter, repeat("Grace", 11), CallOptions::new()).await;
        assert!(replies.is_empty(), "{setup}");
        let status = error.expect(&setup);
        assert_eq!(status.code(), Code::OutOfRange, "{setup}");
        assert_eq!(status.message(), "times must be between 1 and 10, not 11");
    }
}

#[tokio::test]
async fn a_stream_longer_than_its_deadline_ends_with_deadline_exceeded() {
    let greeter_options = GreeterOptions::new().stream_interval(Duration::from_millis(40));
    let server = Running::start(ServerOptions::new().greeter(greeter_options));
    for (protocol, codec, variant) in SETUPS {
        let setup = format!("{protocol:?} {codec:?} {variant:?}");
        let greeter = client(server.addr, protocol, codec, variant);
        let options = CallOptions::new().timeout(Duration::from_millis(100));
        let (replies, error) = stream(&greeter, repeat("Grace", 10), options).await;
        assert!(
            !replies.is_empty() && replies.len() < 10,
            "{setup}: {replies:?}"
        );
        assert_eq!(
            error.expect(&setup).code(),
            Code::DeadlineExceeded,
            "{setup}"
        );
    }
}

#[tokio::test]
async fn methods_the_server_does_not_implement_are_unimplemented() {
    let server = Running::new();
    for protocol in [Protocol::Connect, Protocol::GrpcWeb] {
        let greeter = client(server.addr, protocol, Codec::Proto, Variant::Plain);
        let outcome = async {
            let mut call = greeter.say_hello_to_all().await?;
            call.send(hello("Alan")).await?;
            call.finish().await
        }
        .await;
        let status = outcome.expect_err("client streaming is not served");
        assert_eq!(status.code(), Code::Unimplemented, "{protocol:?}: {status}");
    }
}

#[tokio::test]
async fn sequential_calls_share_one_connection() {
    let server = Running::new();
    let greeter = client(server.addr, Protocol::Connect, Codec::Proto, Variant::Plain);
    for name in ["Ada", "Grace", "Barbara"] {
        let reply = greeter.say_hello(hello(name)).await.expect("say_hello");
        assert_eq!(reply.message().message, format!("Hello, {name}!"));
        let (replies, error) = stream(&greeter, repeat(name, 2), CallOptions::new()).await;
        assert_eq!((replies.len(), error), (2, None));
        // Let the client's pool take the connection back before the next call.
        tokio::task::yield_now().await;
    }
    let stats = server.handle.stats();
    assert_eq!(stats.requests, 6, "{stats:?}");
    assert_eq!(stats.connections_accepted, 1, "{stats:?}");
}

// ---- raw sockets: what the generated client never sends ----

#[test]
fn connect_get_and_its_limits() {
    let server = Running::new();
    let query = "encoding=json&connect=v1&message=%7B%22name%22%3A%22Ada%22%7D";
    let raw = exchange(
        server.addr,
        format!("GET {SAY_HELLO}?{query} HTTP/1.1\r\nconnection: close\r\n\r\n").as_bytes(),
    );
    assert_eq!(raw.status, 200, "{raw:?}");
    assert_eq!(raw.body_text(), r#"{"message":"Hello, Ada!"}"#);

    // Streaming methods take no GET: the core answers 405 with `allow`.
    let raw = exchange(
        server.addr,
        format!("GET {SAY_HELLO_REPEATEDLY}?{query} HTTP/1.1\r\nconnection: close\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(raw.status, 405, "{raw:?}");
    assert_eq!(field(&raw.head, "allow").as_deref(), Some("post"));
}

#[test]
fn the_server_enforces_the_deadline_itself() {
    let greeter = GreeterOptions::new().stream_interval(Duration::from_millis(30));
    let server = Running::start(ServerOptions::new().greeter(greeter));
    let started = Instant::now();
    let raw = exchange(
        server.addr,
        &post(
            SAY_HELLO_REPEATEDLY,
            "content-type: application/connect+json\r\nconnect-timeout-ms: 50\r\nconnection: close\r\n",
            &enveloped(r#"{"name":"Bob","times":10}"#),
        ),
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(raw.status, 200, "{raw:?}");
    assert_eq!(
        field(&raw.head, "transfer-encoding").as_deref(),
        Some("chunked")
    );
    let body = raw.body_text();
    let greetings = body.matches("Hello, Bob!").count();
    assert!(greetings < 10, "{body}");
    assert!(body.contains(r#""code":"deadline_exceeded""#), "{body}");
}

#[test]
fn unknown_methods_and_grpc_over_http1_are_rejected_by_the_core() {
    let server = Running::new();
    let raw = exchange(
        server.addr,
        &post(
            "/connectrpc.greet.v1.Greeter/Converse",
            "content-type: application/json\r\nconnection: close\r\n",
            b"{}",
        ),
    );
    assert_eq!(raw.status, 404, "{raw:?}");
    assert!(
        raw.body_text().contains(r#""code":"unimplemented""#),
        "{raw:?}"
    );

    // gRPC needs HTTP/2: it is switched off, so the core answers 415 with what it accepts.
    let raw = exchange(
        server.addr,
        &post(
            SAY_HELLO,
            "content-type: application/grpc\r\nconnection: close\r\n",
            &[0, 0, 0, 0, 0],
        ),
    );
    assert_eq!(raw.status, 415, "{raw:?}");
    let accepted = field(&raw.head, "accept-post").unwrap_or_default();
    assert!(accepted.contains("application/grpc-web"), "{accepted}");
    assert!(!accepted.contains("application/grpc,"), "{accepted}");
}

#[test]
fn malformed_and_oversized_heads() {
    let server = Running::start(ServerOptions::new().max_head_bytes(1024));
    let raw = exchange(
        server.addr,
        b"GET / HTTP/1.1\r\nthis is not a field\r\n\r\n",
    );
    assert_eq!(raw.status, 400, "{raw:?}");
    assert_eq!(field(&raw.head, "connection").as_deref(), Some("close"));

    let raw = exchange(server.addr, b"\x00\x01\x02 nonsense\r\n\r\n");
    assert_eq!(raw.status, 400, "{raw:?}");

    let big = format!("GET / HTTP/1.1\r\nx-big: {}\r\n\r\n", "a".repeat(4096));
    let raw = exchange(server.addr, big.as_bytes());
    assert_eq!(raw.status, 431, "{raw:?}");

    let raw = exchange(
        server.addr,
        &post(SAY_HELLO, "transfer-encoding: chunked\r\n", b""),
    );
    assert_eq!(
        raw.status, 400,
        "content-length and chunked at once: {raw:?}"
    );
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let server = Running::new();
    let mut stream = connect(server.addr);
    let body = br#"{"name":"Ada"}"#;
    for _ in 0..3 {
        stream
            .write_all(&post(SAY_HELLO, "content-type: application/json\r\n", body))
            .unwrap();
        let raw = read_one(&mut stream);
        assert_eq!(raw.status, 200, "{raw:?}");
        assert_eq!(field(&raw.head, "content-length").as_deref(), Some("25"));
        assert_eq!(raw.body_text(), r#"{"message":"Hello, Ada!"}"#);
    }
    // A streaming response is chunked, and the connection still serves the next request.
    stream
        .write_all(&post(
            SAY_HELLO_REPEATEDLY,
            "content-type: application/connect+json\r\n",
            &enveloped(r#"{"name":"Bob","times":2}"#),
        ))
        .unwrap();
    let raw = read_one(&mut stream);
    assert_eq!(raw.status, 200, "{raw:?}");
    assert!(raw.body_text().contains("Hello, Bob! (2/2)"), "{raw:?}");
    stream
        .write_all(&post(
            SAY_HELLO,
            "content-type: application/json\r\nconnection: close\r\n",
            body,
        ))
        .unwrap();
    let raw = read_one(&mut stream);
    assert_eq!(field(&raw.head, "connection").as_deref(), Some("close"));
    assert_eq!(stream.read(&mut [0; 16]).unwrap(), 0, "closed after close");
    let stats = server.stop();
    assert_eq!((stats.connections_accepted, stats.requests), (1, 5));
}
