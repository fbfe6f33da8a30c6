//! Our generated client speaking gRPC-Web — text (`application/grpc-web-text`, base64
//! bodies, what browsers without binary streaming use) and binary — over real sockets to
//! tonic-web's server, plus errors.
//!
//! Text requests of more than one message are binary-only here: our client pads each
//! message's base64 on its own (so a server sees every message as soon as it is sent), and
//! tonic-web decodes a text request as one base64 entity, refusing padding inside it
//! ("Invalid symbol 61"). The gRPC-Web spec defines text only for responses (padding may
//! occur anywhere in them); grpc-web's own client only sends unary text requests. Our server
//! accepts padded chunks in text requests.

use std::time::Duration;

use connect_tokio_hyper::{HttpClient, TokioTimer};
use connect_tower::client::{Client, ClientConfig};
use connect_tower::{Code, Protocol};
use greeter_example::greet::greeter::GreeterClient;
use greeter_example::greet::{HelloRequest, RepeatRequest};
use interop_tonic_web::serve_tonic_web;

fn hello(name: &str) -> HelloRequest {
    HelloRequest {
        name: name.into(),
        ..Default::default()
    }
}

/// Our own server (the greeter on connect-tokio-hyper): every RPC kind in text too.
async fn serve_ours() -> std::net::SocketAddr {
    let service = connect_tower::server::ConnectService::builder(greeter_example::service())
        .timer(TokioTimer::new())
        .build();
    let server = connect_tokio_hyper::Server::builder()
        .bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = server.local_addr().expect("address");
    tokio::spawn(server.serve(service));
    addr
}

async fn exercise(text: bool, http2: bool) {
    // Unary and server streaming for both forms; client and bidi streams in binary.
    let addr = serve_tonic_web().await.expect("tonic-web server");
    exercise_at(addr, text, http2, !text).await;
}

async fn exercise_at(addr: std::net::SocketAddr, text: bool, http2: bool, client_streams: bool) {
    let transport = if http2 {
        HttpClient::plaintext_h2c()
    } else {
        HttpClient::plaintext_http1()
    };
    let config = ClientConfig::new(format!("http://{addr}").parse().unwrap())
        .protocol(Protocol::GrpcWeb)
        .grpc_web_text(text)
        .default_timeout(Some(Duration::from_secs(10)));
    let greeter = GreeterClient::new(Client::new(transport, config).timer(TokioTimer::new()));
    let what = format!("text={text} http2={http2}");

    let reply = greeter.say_hello(hello("Ada")).await.expect("unary");
    assert_eq!(reply.message().message, "Hello, Ada!", "{what}");
    let status = greeter.say_hello(hello("")).await.expect_err("empty name");
    assert_eq!(status.code(), Code::InvalidArgument, "{what}");
    assert_eq!(status.message(), "name must not be empty", "{what}");

    let mut stream = greeter
        .say_hello_repeatedly(RepeatRequest {
            name: "Bo".into(),
            times: 3,
            ..Default::default()
        })
        .await
        .expect("server stream");
    let mut replies = Vec::new();
    while let Some(reply) = stream.message().await.expect("stream message") {
        replies.push(reply.message);
    }
    assert_eq!(
        replies,
        ["Hello, Bo! (1/3)", "Hello, Bo! (2/3)", "Hello, Bo! (3/3)"],
        "{what}"
    );

    if !client_streams {
        // One-message text requests (what browsers send) are covered above.
        return;
    }
    let mut call = greeter.say_hello_to_all().await.expect("client stream");
    for name in ["A", "B"] {
        call.send(hello(name)).await.expect("send");
    }
    let reply = call.finish().await.expect("client stream reply");
    assert_eq!(reply.message().message, "Hello, A and B!", "{what}");

    // Bidi, half-duplex: every request is sent before the replies are read.
    let mut call = greeter.converse().await.expect("bidi");
    for name in ["C", "D"] {
        call.send(hello(name)).await.expect("send");
    }
    call.close_send().expect("close");
    let mut replies = Vec::new();
    while let Some(reply) = call.message().await.expect("bidi message") {
        replies.push(reply.message);
    }
    assert_eq!(replies, ["Hello, C!", "Hello, D!"], "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_web_text_over_http1_to_tonic_web() {
    exercise(true, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_web_text_over_h2c_to_tonic_web() {
    exercise(true, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_web_binary_over_http1_to_tonic_web() {
    exercise(false, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_web_text_to_our_server_for_every_rpc_kind() {
    for http2 in [false, true] {
        exercise_at(serve_ours().await, true, http2, true).await;
    }
}
