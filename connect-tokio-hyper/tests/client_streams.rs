//! Our client reading a streamed gRPC response over a real socket (`H2Connection`) from a
//! server that misbehaves after many messages sent in one body chunk (more than the client
//! takes from the call under one lock): a message that does not decode, a body cut in the
//! middle of an envelope, a body that ends without trailers. The messages before the fault
//! arrive in order, the fault ends the stream with the core's status, nothing after it is
//! delivered, and the next call on the same connection works.

mod common;

use std::convert::Infallible;

use bytes::{BufMut, Bytes, BytesMut};
use common::*;
use connect_tokio_hyper::{BoxError, H2Connection, IncomingBody, Server, TokioTimer};
use connect_tower::client::{CallOptions, Client, ClientConfig};
use connect_tower::server::ConnectService;
use connect_tower::{Code, Codec, Idempotency, MethodKind, MethodSpec, Protocol};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use tower::ServiceExt;

/// Answered by the misbehaving responder, not by the echo service.
const HOSTILE: MethodSpec = MethodSpec::new(
    "/test.v1.Hostile/Stream",
    MethodKind::ServerStreaming,
    Idempotency::Unknown,
);

/// Good messages sent before the fault: two full batches of sixteen and part of a third.
const BEFORE: usize = 40;

/// How the response goes wrong after the good messages.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// A message whose field 1 claims more bytes than it has, then two good messages and
    /// `grpc-status: 0`.
    Undecodable,
    /// Half of an envelope prefix, then `grpc-status: 0`.
    CutEnvelope,
    /// The body ends after the good messages, with no trailers.
    NoTrailers,
}

impl Fault {
    fn from_request(request: &http::Request<IncomingBody>) -> Fault {
        match request.headers().get("x-fault").map(|v| v.as_bytes()) {
            Some(b"undecodable") => Fault::Undecodable,
            Some(b"cut") => Fault::CutEnvelope,
            _ => Fault::NoTrailers,
        }
    }

    fn header(self) -> &'static str {
        match self {
            Fault::Undecodable => "undecodable",
            Fault::CutEnvelope => "cut",
            Fault::NoTrailers => "none",
        }
    }
}

fn envelope(into: &mut BytesMut, payload: &[u8]) {
    into.put_u8(0);
    into.put_u32(payload.len() as u32);
    into.put_slice(payload);
}

fn message(i: usize) -> String {
    format!("m{i}")
}

/// The misbehaving response: the good messages and the fault in one DATA chunk, then the
/// trailers unless the fault leaves them out.
fn hostile_response(fault: Fault) -> http::Response<UnsyncBoxBody<Bytes, BoxError>> {
    let mut body = BytesMut::new();
    for i in 0..BEFORE {
        envelope(
            &mut body,
            &Codec::Proto.encode(&string(&message(i))).unwrap(),
        );
    }
    match fault {
        Fault::Undecodable => {
            envelope(&mut body, &[0x0a, 0x7f, b'x']);
            let after = Codec::Proto.encode(&string("after")).unwrap();
            envelope(&mut body, &after);
            envelope(&mut body, &after);
        }
        Fault::CutEnvelope => body.put_slice(&[0, 0]),
        Fault::NoTrailers => {}
    }
    let body = Full::new(body.freeze()).map_err(|never| match never {});
    let body = if matches!(fault, Fault::NoTrailers) {
        body.boxed_unsync()
    } else {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
        body.with_trailers(async { Some(Ok(trailers)) })
            .boxed_unsync()
    };
    http::Response::builder()
        .header("content-type", "application/grpc")
        .body(body)
        .unwrap()
}

#[tokio::test]
async fn a_stream_that_goes_wrong_after_many_messages_keeps_them_and_ends_with_the_fault() {
    let rpc = ConnectService::builder(Echo::default())
        .timer(TokioTimer::new())
        .build();
    let service = tower::service_fn(move |request: http::Request<IncomingBody>| {
        let rpc = rpc.clone();
        async move {
            if request.uri().path() == HOSTILE.path() {
                return Ok::<_, Infallible>(hostile_response(Fault::from_request(&request)));
            }
            let response = rpc.oneshot(request).await?;
            Ok(response.map(|body| body.map_err(|never| match never {}).boxed_unsync()))
        }
    });
    let server = start_service(Server::builder(), service).await;
    let connection = H2Connection::connect(&server.http_uri()).await.unwrap();
    let client = Client::new(
        connection,
        ClientConfig::new(server.http_uri()).protocol(Protocol::Grpc),
    )
    .timer(TokioTimer::new());

    for (fault, code) in [
        (Fault::Undecodable, Code::Internal),
        (Fault::CutEnvelope, Code::Internal),
        (Fault::NoTrailers, Code::Internal),
    ] {
        let options = CallOptions::new().header(
            http::HeaderName::from_static("x-fault"),
            http::HeaderValue::from_static(fault.header()),
        );
        let mut stream = client
            .server_streaming::<StringValue, StringValue>(&HOSTILE, string(""), options)
            .await
            .unwrap();
        for i in 0..BEFORE {
            let got = stream.message().await;
            assert_eq!(
                got.as_ref().map(|m| m.as_ref().map(|m| m.value.as_str())),
                Ok(Some(message(i).as_str())),
                "{fault:?}: message {i}"
            );
        }
        let status = stream.message().await.unwrap_err();
        assert_eq!(status.code(), code, "{fault:?}: {status:?}");
        let again = stream.message().await;
        assert!(
            again.is_err(),
            "{fault:?}: nothing after the fault: {again:?}"
        );
        drop(stream);

        // The connection still serves calls.
        let reply = client
            .unary::<StringValue, StringValue>(&ECHO, string("next"), CallOptions::new())
            .await
            .unwrap();
        assert_eq!(reply.message().value, "next", "{fault:?}");
    }
    server.shutdown().await;
}
