//! The protocol-level client the round-trip tests check generated servers with.
//!
//! `call` drives `connect_proto_core::ClientCall` by hand: the request is built from its
//! outputs, the service is called in process with `tower_service::Service::call`, and the
//! collected response is fed back. This checks a server against the wire rules of Connect,
//! gRPC and gRPC-Web independently of `connect_tower`'s own client.

#![allow(dead_code, reason = "each test binary uses a different part")]

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use connect_proto_core::codec::CodecMessage;
use connect_proto_core::{
    CallOptions, ClientCall, ClientConfig, ClientEvent, ClientOutput, Codec, Protocol,
};
use connect_tower::server::{ConnectService, Dispatch};
use connect_tower::{MethodSpec, Status};
use http::{HeaderMap, Uri};
use http_body_util::{BodyExt, Full};

/// Every protocol, for the tests that run over each.
pub const PROTOCOLS: [Protocol; 3] = [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb];
/// The largest response message the protocol client decodes.
const RECEIVE_LIMIT: usize = 4 << 20;

/// What the protocol client saw of one call.
#[derive(Debug)]
pub struct Outcome<M> {
    /// The response headers (application metadata).
    pub headers: HeaderMap,
    /// The response messages, decoded.
    pub messages: Vec<M>,
    /// `Ok(trailers)` or the failure.
    pub result: Result<HeaderMap, Status>,
    /// The HTTP method the request went out with.
    pub http_method: http::Method,
}

/// Calls `method` on `service` with `requests`, half duplex: every request is sent before the
/// response is read.
pub async fn call<D, Req, Resp>(
    service: &ConnectService<D>,
    protocol: Protocol,
    codec: Codec,
    method: &MethodSpec,
    requests: &[Req],
    options: CallOptions,
) -> Outcome<Resp>
where
    D: Dispatch,
    Req: CodecMessage,
    Resp: CodecMessage,
{
    let now = Instant::now();
    let config = ClientConfig::new(Uri::from_static("http://localhost"))
        .protocol(protocol)
        .codec(codec);
    let mut client = ClientCall::start(&config, now, method, options).expect("start call");
    for request in requests {
        let bytes = codec.encode(request).expect("encode request");
        client.send_message(now, bytes).expect("send request");
    }
    if method.kind.streams_requests() {
        client.close_send().expect("close send");
    }
    let mut head = None;
    let mut body = BytesMut::new();
    while let Some(output) = client.poll_output() {
        match output {
            ClientOutput::Head(parts) => head = Some(parts),
            ClientOutput::Data(chunk) => body.extend_from_slice(&chunk),
            ClientOutput::End => {}
            ClientOutput::Cancel => panic!("the client cancelled"),
            other => panic!("unexpected: {other:?}"),
        }
    }
    let head = head.expect("request head");
    let http_method = head.method.clone();
    let request = http::Request::from_parts(head, Full::new(body.freeze()));

    let mut service = service.clone();
    let response = match tower_service::Service::call(&mut service, request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let (parts, body) = response.into_parts();
    let collected = match body.collect().await {
        Ok(collected) => collected,
        Err(never) => match never {},
    };
    let trailers = collected.trailers().cloned();
    let data: Bytes = collected.to_bytes();

    client.handle_response_head(parts);
    if !data.is_empty() {
        client.handle_data(data);
    }
    if let Some(trailers) = trailers {
        client.handle_trailers(trailers);
    }
    client.handle_end();

    let mut headers = HeaderMap::new();
    let mut messages = Vec::new();
    let mut result = None;
    while let Some(event) = client.poll_event() {
        match event {
            ClientEvent::Headers(received) => headers = received,
            ClientEvent::Message(bytes) => messages.push(
                codec
                    .decode::<Resp>(&bytes, RECEIVE_LIMIT)
                    .expect("decode response"),
            ),
            // Only with `set_pass_through`, which this driver does not use.
            ClientEvent::CompressedMessage(_) => unreachable!("no pass-through"),
            ClientEvent::Finished(finished) => result = Some(finished),
            other => panic!("unexpected: {other:?}"),
        }
    }
    Outcome {
        headers,
        messages,
        result: result.expect("the call finished"),
        http_method,
    }
}
