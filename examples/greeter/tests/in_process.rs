//! Calls the greeter in process, over Connect, gRPC and gRPC-Web:
//!
//! - with the generated `GreeterClient`, whose transport is the `ConnectService` itself (any
//!   `tower::Service<http::Request<RequestBody>>` is a transport);
//! - with the protocol client of `connect_proto_core`, driven by hand, to see the HTTP
//!   exchange a real network client makes.

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use connect_proto_core::{
    CallOptions, ClientCall, ClientConfig, ClientEvent, ClientOutput, Codec, Protocol,
};
use connect_tower::Code;
use connect_tower::client::Client;
use connect_tower::server::ConnectService;
use greeter_example::greet::greeter::{self, GreeterClient, GreeterServer};
use greeter_example::greet::{HelloReply, HelloRequest, RepeatRequest};
use greeter_example::{MAX_REPEATS, MyGreeter};
use http::Uri;
use http_body_util::{BodyExt, Full};

const PROTOCOLS: [Protocol; 3] = [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb];

type InProcess = ConnectService<GreeterServer<MyGreeter>>;

fn client(protocol: Protocol, codec: Codec) -> GreeterClient<InProcess> {
    let transport = ConnectService::new(greeter_example::service());
    let config = ClientConfig::new(Uri::from_static("http://localhost"))
        .protocol(protocol)
        .codec(codec);
    GreeterClient::new(Client::new(transport, config))
}

fn hello(name: &str) -> HelloRequest {
    HelloRequest {
        name: name.to_string(),
        ..Default::default()
    }
}

fn messages(replies: &[HelloReply]) -> Vec<&str> {
    replies.iter().map(|r| r.message.as_str()).collect()
}

async fn unary(codec: Codec) {
    for protocol in PROTOCOLS {
        let greeter = client(protocol, codec);
        let response = greeter.say_hello(hello("Ada")).await.expect("say_hello");
        assert_eq!(response.message().message, "Hello, Ada!", "{protocol:?}");

        let status = greeter.say_hello(hello("")).await.expect_err("empty name");
        assert_eq!(status.code(), Code::InvalidArgument, "{protocol:?}");
        assert_eq!(status.message(), "name must not be empty", "{protocol:?}");
    }
}

async fn server_streaming(codec: Codec) {
    for protocol in PROTOCOLS {
        let greeter = client(protocol, codec);
        let request = RepeatRequest {
            name: "Ada".to_string(),
            times: 3,
            ..Default::default()
        };
        let mut stream = greeter
            .say_hello_repeatedly(request)
            .await
            .expect("say_hello_repeatedly");
        let mut replies = Vec::new();
        while let Some(reply) = stream.message().await.expect("a reply") {
            replies.push(reply);
        }
        assert_eq!(
            messages(&replies),
            [
                "Hello, Ada! (1/3)",
                "Hello, Ada! (2/3)",
                "Hello, Ada! (3/3)"
            ],
            "{protocol:?}"
        );

        let too_many = RepeatRequest {
            name: "Ada".to_string(),
            times: MAX_REPEATS + 1,
            ..Default::default()
        };
        let mut stream = greeter
            .say_hello_repeatedly(too_many)
            .await
            .expect("the call starts");
        let status = stream.message().await.expect_err("out of range");
        assert_eq!(status.code(), Code::OutOfRange, "{protocol:?}");
    }
}

async fn client_streaming(codec: Codec) {
    for protocol in PROTOCOLS {
        let mut call = client(protocol, codec)
            .say_hello_to_all()
            .await
            .expect("say_hello_to_all");
        for name in ["Ada", "Grace", "Edsger"] {
            call.send(hello(name)).await.expect("send");
        }
        let response = call.finish().await.expect("finish");
        assert_eq!(
            response.message().message,
            "Hello, Ada, Grace and Edsger!",
            "{protocol:?}"
        );
    }
}

async fn bidi_streaming(codec: Codec) {
    for protocol in PROTOCOLS {
        let mut call = client(protocol, codec).converse().await.expect("converse");
        for name in ["Ada", "Grace"] {
            call.send(hello(name)).await.expect("send");
            let reply = call.message().await.expect("a reply").expect("not the end");
            assert_eq!(reply.message, format!("Hello, {name}!"), "{protocol:?}");
        }
        call.close_send().expect("close send");
        assert_eq!(call.message().await.expect("the end"), None, "{protocol:?}");
    }
}

#[tokio::test]
async fn unary_json() {
    unary(Codec::Json).await;
}

#[tokio::test]
async fn server_streaming_json() {
    server_streaming(Codec::Json).await;
}

#[tokio::test]
async fn client_streaming_json() {
    client_streaming(Codec::Json).await;
}

#[tokio::test]
async fn bidi_streaming_json() {
    bidi_streaming(Codec::Json).await;
}

#[tokio::test]
async fn unary_proto() {
    unary(Codec::Proto).await;
}

#[tokio::test]
async fn server_streaming_proto() {
    server_streaming(Codec::Proto).await;
}

#[tokio::test]
async fn client_streaming_proto() {
    client_streaming(Codec::Proto).await;
}

#[tokio::test]
async fn bidi_streaming_proto() {
    bidi_streaming(Codec::Proto).await;
}

/// One unary call through the protocol client: the request head and body it produces go to
/// the service as an `http::Request`, the response goes back into it.
async fn say_hello_by_hand(
    protocol: Protocol,
    name: &str,
) -> Result<HelloReply, connect_tower::Status> {
    let now = Instant::now();
    let codec = Codec::Proto;
    let config = ClientConfig::new(Uri::from_static("http://localhost"))
        .protocol(protocol)
        .codec(codec);
    let mut call =
        ClientCall::start(&config, now, &greeter::SAY_HELLO, CallOptions::new()).expect("start");
    call.send_message(now, codec.encode(&hello(name)).expect("encode"))
        .expect("send");
    let (mut head, mut body) = (None, BytesMut::new());
    while let Some(output) = call.poll_output() {
        match output {
            ClientOutput::Head(parts) => head = Some(parts),
            ClientOutput::Data(chunk) => body.extend_from_slice(&chunk),
            ClientOutput::End | ClientOutput::Cancel => {}
            other => panic!("unexpected: {other:?}"),
        }
    }
    let request = http::Request::from_parts(head.expect("a head"), Full::new(body.freeze()));

    let mut service = ConnectService::new(greeter_example::service());
    let Ok(response) = tower_service::Service::call(&mut service, request).await;
    let (parts, body) = response.into_parts();
    let Ok(collected) = body.collect().await;
    let trailers = collected.trailers().cloned();
    let data: Bytes = collected.to_bytes();
    call.handle_response_head(parts);
    call.handle_data(data);
    if let Some(trailers) = trailers {
        call.handle_trailers(trailers);
    }
    call.handle_end();

    let mut reply = None;
    while let Some(event) = call.poll_event() {
        match event {
            ClientEvent::Headers(_) => {}
            ClientEvent::Message(bytes) => {
                reply = Some(codec.decode::<HelloReply>(&bytes, 1 << 20).expect("decode"));
            }
            // Only with `set_pass_through`, which this call does not use.
            ClientEvent::CompressedMessage(_) => unreachable!("no pass-through"),
            ClientEvent::Finished(result) => {
                result?;
            }
            other => panic!("unexpected: {other:?}"),
        }
    }
    Ok(reply.expect("a reply"))
}

#[tokio::test]
async fn unary_through_the_protocol_client() {
    for protocol in PROTOCOLS {
        let reply = say_hello_by_hand(protocol, "Grace").await.expect("success");
        assert_eq!(reply.message, "Hello, Grace!", "{protocol:?}");
        let status = say_hello_by_hand(protocol, "")
            .await
            .expect_err("empty name");
        assert_eq!(status.code(), Code::InvalidArgument, "{protocol:?}");
    }
}
