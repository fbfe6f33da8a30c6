//! Complete RPCs through the Pair harness: every RPC type × protocol × codec × compression ×
//! chunking, with headers, trailers, empty and compressible messages, and error outcomes with
//! details and metadata. Exact events are asserted on both sides, plus the wire shape.

// These tests exercise gzip and zstd (not a default feature): `cargo test -p connect-proto-core
// --features zstd`, or `cargo test --workspace`, where other members turn it on.
#![cfg(all(feature = "gzip", feature = "zstd"))]

mod common;

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method};

use common::*;
use connect_proto_core::codec::Codec;
use connect_proto_core::compression::{Compression, CompressionRegistry};
use connect_proto_core::internal::envelope::{FLAG_COMPRESSED, FLAG_END_STREAM, FLAG_TRAILERS};
use connect_proto_core::{
    CallOptions, ClientConfig, ClientEvent, Code, Idempotency, MethodKind, MethodSpec,
    ServerConfig, ServerEvent, Status,
};

pub const UNARY: MethodSpec = MethodSpec::new(
    "/test.v1.Svc/Unary",
    MethodKind::Unary,
    Idempotency::Unknown,
);
pub const CLIENT_STREAM: MethodSpec = MethodSpec::new(
    "/test.v1.Svc/ClientStream",
    MethodKind::ClientStreaming,
    Idempotency::Unknown,
);
pub const SERVER_STREAM: MethodSpec = MethodSpec::new(
    "/test.v1.Svc/ServerStream",
    MethodKind::ServerStreaming,
    Idempotency::Unknown,
);
pub const BIDI: MethodSpec = MethodSpec::new(
    "/test.v1.Svc/Bidi",
    MethodKind::BidiStreaming,
    Idempotency::Unknown,
);
const KINDS: [MethodSpec; 4] = [UNARY, CLIENT_STREAM, SERVER_STREAM, BIDI];

/// Messages at least this long are compressed (both sides).
const MIN: usize = 48;

#[derive(Clone)]
struct Case {
    method: MethodSpec,
    wire: Wire,
    codec: Codec,
    compression: Option<Arc<dyn Compression>>,
    chunking: Chunking,
}

impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {:?} {} {} {:?}",
            self.method.method_name(),
            self.wire,
            self.codec,
            self.compression.as_ref().map_or("identity", |c| c.name()),
            self.chunking
        )
    }
}

impl Case {
    fn client_config(&self) -> ClientConfig {
        let accept = match &self.compression {
            Some(alg) => CompressionRegistry::identity_only().with(alg.clone()),
            None => CompressionRegistry::identity_only(),
        };
        self.wire
            .client_config(self.codec)
            .send_compression(self.compression.clone())
            .accept_compression(accept)
            .compress_min_bytes(MIN)
    }

    fn server_config(&self) -> ServerConfig {
        ServerConfig::new().compress_min_bytes(MIN)
    }

    fn options(&self) -> CallOptions {
        CallOptions::new().header(
            http::HeaderName::from_static("x-request-id"),
            http::HeaderValue::from_static("req-42"),
        )
    }

    fn start(&self) -> Pair {
        Pair::start(
            &self.client_config(),
            self.server_config(),
            self.method.clone(),
            self.options(),
            self.chunking,
            self.chunking,
        )
    }

    fn compressed(&self, message: &[u8]) -> bool {
        self.compression.is_some() && message.len() >= MIN && !message.is_empty()
    }

    fn content_type(&self) -> &'static str {
        let streaming = self.method.kind.is_streaming();
        match (self.wire, self.codec, streaming) {
            (Wire::Connect, Codec::Proto, false) => "application/proto",
            (Wire::Connect, Codec::Json, false) => "application/json",
            (Wire::Connect, Codec::Proto, true) => "application/connect+proto",
            (Wire::Connect, Codec::Json, true) => "application/connect+json",
            (Wire::Grpc, Codec::Proto, _) => "application/grpc",
            (Wire::Grpc, Codec::Json, _) => "application/grpc+json",
            (Wire::GrpcWeb, Codec::Proto, _) => "application/grpc-web+proto",
            (Wire::GrpcWeb, Codec::Json, _) => "application/grpc-web+json",
            (Wire::GrpcWebText, Codec::Proto, _) => "application/grpc-web-text+proto",
            (Wire::GrpcWebText, Codec::Json, _) => "application/grpc-web-text+json",
            _ => unreachable!(),
        }
    }

    fn connect_unary(&self) -> bool {
        self.wire == Wire::Connect && !self.method.kind.is_streaming()
    }
}

fn all_cases(chunkings: &[Chunking]) -> Vec<Case> {
    let mut compressions: Vec<Option<Arc<dyn Compression>>> = vec![None];
    compressions.extend(algorithms().into_iter().map(Some));
    let mut cases = Vec::new();
    for method in KINDS {
        for wire in WIRES {
            for codec in [Codec::Proto, Codec::Json] {
                for compression in &compressions {
                    for chunking in chunkings {
                        cases.push(Case {
                            method: method.clone(),
                            wire,
                            codec,
                            compression: compression.clone(),
                            chunking: *chunking,
                        });
                    }
                }
            }
        }
    }
    cases
}

fn response_headers() -> HeaderMap {
    headers(&[
        ("x-resp", "lead"),
        ("x-resp-bin", "AAEC"),
        ("x-multi", "a"),
        ("x-multi", "b"),
    ])
}

fn response_trailers() -> HeaderMap {
    headers(&[
        ("x-trail", "t1"),
        ("x-trail", "t2"),
        ("x-trail-bin", "3q2+7w"),
    ])
}

/// Request and response messages for a case: an empty message, one below the compression
/// threshold and one above it.
fn messages(case: &Case, rng: &mut Rng) -> (Vec<Bytes>, Vec<Bytes>) {
    let small = msg(case.codec, "hi");
    let empty = msg(case.codec, "");
    let medium = msg(case.codec, &rng.text(200));
    let medium2 = msg(case.codec, &rng.text(333));
    let requests = if case.method.kind.streams_requests() {
        vec![empty.clone(), medium.clone(), small.clone()]
    } else {
        vec![medium.clone()]
    };
    let responses = if case.method.kind.streams_responses() {
        vec![medium2, empty, small]
    } else {
        vec![medium2]
    };
    (requests, responses)
}

/// Plays a successful RPC and checks both sides' events and the wire.
fn play_success(case: &Case) {
    let mut rng = Rng::new(0x5eed);
    let (requests, responses) = messages(case, &mut rng);
    let mut p = case.start();
    match case.method.kind {
        MethodKind::Unary | MethodKind::ServerStreaming => {
            p.client_send(requests[0].clone());
            assert_eq!(
                p.take_server_events(),
                vec![
                    ServerEvent::Message(requests[0].clone()),
                    ServerEvent::RequestEnd
                ],
                "{case:?}"
            );
            p.server_headers(&response_headers());
            for r in &responses {
                p.server_send(r.clone());
            }
        }
        MethodKind::ClientStreaming => {
            for r in &requests {
                p.client_send(r.clone());
            }
            p.client_close();
            p.server_headers(&response_headers());
            p.server_send(responses[0].clone());
        }
        MethodKind::BidiStreaming => {
            p.server_headers(&response_headers());
            for (req, resp) in requests.iter().zip(&responses) {
                p.client_send(req.clone());
                p.server_send(resp.clone());
            }
            p.client_close();
        }
    }
    p.server_finish(Ok(response_trailers()));

    // Events, exactly.
    let mut expected_server: Vec<ServerEvent> =
        requests.iter().cloned().map(ServerEvent::Message).collect();
    expected_server.push(ServerEvent::RequestEnd);
    let server_events = p.take_server_events();
    if !case.method.kind.streams_requests() {
        assert!(server_events.is_empty(), "{case:?}: {server_events:?}");
    } else {
        assert_eq!(server_events, expected_server, "{case:?}");
    }
    let mut expected_client = vec![ClientEvent::Headers(response_headers())];
    expected_client.extend(responses.iter().cloned().map(ClientEvent::Message));
    expected_client.push(ClientEvent::Finished(Ok(response_trailers())));
    assert_eq!(p.client_events, expected_client, "{case:?}");
    for event in &p.client_events {
        if let ClientEvent::Message(m) = event {
            // The bytes decode as the message that was sent.
            let _ = unmsg(case.codec, m);
        }
    }
    assert!(!p.client_cancelled, "{case:?}");
    assert!(p.request_ended && p.response_ended, "{case:?}");
    assert!(
        p.server().is_finished() && p.server().is_request_done(),
        "{case:?}"
    );
    assert!(
        p.client.is_finished() && p.client.is_send_closed(),
        "{case:?}"
    );
    assert_eq!(p.client.poll_timeout(), None);

    check_request_wire(case, &p, &requests);
    check_response_wire(case, &p, &responses);
}

fn check_request_wire(case: &Case, p: &Pair, requests: &[Bytes]) {
    let head = p.request_head.as_ref().expect("request head");
    let h = &head.headers;
    assert_eq!(head.method, Method::POST, "{case:?}");
    assert_eq!(
        head.uri.path(),
        format!("/prefix{}", case.method.path()),
        "{case:?}"
    );
    assert_eq!(
        h.get("content-type").unwrap(),
        case.content_type(),
        "{case:?}"
    );
    assert_eq!(h.get("x-request-id").unwrap(), "req-42", "{case:?}");
    let any_compressed = requests.iter().any(|m| case.compressed(m));
    match case.wire {
        Wire::Connect => {
            assert_eq!(h.get("connect-protocol-version").unwrap(), "1");
            assert!(h.contains_key("user-agent"));
            let (enc, acc) = if case.method.kind.is_streaming() {
                ("connect-content-encoding", "connect-accept-encoding")
            } else {
                ("content-encoding", "accept-encoding")
            };
            // Streaming requests announce the encoding up front; unary requests only when used.
            let announced = if case.method.kind.streams_requests() {
                case.compression.is_some()
            } else {
                any_compressed
            };
            assert_eq!(
                h.get(enc).map(|v| v.to_str().unwrap()),
                announced.then(|| case.compression.as_ref().unwrap().name()),
                "{case:?}"
            );
            assert_eq!(
                h.get(acc).map(|v| v.to_str().unwrap()),
                case.compression.as_ref().map(|c| c.name()),
                "{case:?}"
            );
        }
        Wire::Grpc | Wire::GrpcWeb | Wire::GrpcWebText => {
            if case.wire == Wire::Grpc {
                assert_eq!(h.get("te").unwrap(), "trailers");
                assert!(h.contains_key("user-agent"));
            } else {
                assert_eq!(h.get("x-grpc-web").unwrap(), "1");
                assert!(h.contains_key("x-user-agent"));
            }
            let announced = if case.method.kind.streams_requests() {
                case.compression.is_some()
            } else {
                any_compressed
            };
            assert_eq!(
                h.get("grpc-encoding").map(|v| v.to_str().unwrap()),
                announced.then(|| case.compression.as_ref().unwrap().name()),
                "{case:?}"
            );
            assert_eq!(
                h.get("grpc-accept-encoding").map(|v| v.to_str().unwrap()),
                case.compression.as_ref().map(|c| c.name())
            );
        }
    }
    if case.connect_unary() {
        let body = Bytes::from(p.request_body.clone());
        let plain = match &case.compression {
            Some(alg) if any_compressed => alg.decompress(&body, 1 << 20).unwrap(),
            _ => body,
        };
        assert_eq!(plain, requests[0], "{case:?}");
    } else {
        let envelopes = p.request_envelopes();
        assert_eq!(envelopes.len(), requests.len(), "{case:?}");
        for ((flags, payload), message) in envelopes.iter().zip(requests) {
            let compressed = case.compressed(message);
            assert_eq!(
                *flags,
                if compressed { FLAG_COMPRESSED } else { 0 },
                "{case:?}"
            );
            let plain = if compressed {
                case.compression
                    .as_ref()
                    .unwrap()
                    .decompress(payload, 1 << 20)
                    .unwrap()
            } else {
                payload.clone()
            };
            assert_eq!(&plain, message, "{case:?}");
        }
    }
}

fn check_response_wire(case: &Case, p: &Pair, responses: &[Bytes]) {
    let head = p.response_head.as_ref().expect("response head");
    assert_eq!(head.status, 200, "{case:?}");
    let h = &head.headers;
    assert_eq!(
        h.get("content-type").unwrap(),
        case.content_type(),
        "{case:?}"
    );
    assert_eq!(h.get("x-resp").unwrap(), "lead");
    let any_compressed = responses.iter().any(|m| case.compressed(m));
    let name = case.compression.as_ref().map(|c| c.name());
    match (case.wire, case.method.kind.is_streaming()) {
        (Wire::Connect, false) => {
            assert_eq!(
                h.get("content-encoding").map(|v| v.to_str().unwrap()),
                name.filter(|_| any_compressed)
            );
            assert_eq!(
                h.get_all("trailer-x-trail").iter().collect::<Vec<_>>(),
                ["t1", "t2"]
            );
            let body = Bytes::from(p.response_body.clone());
            let plain = match &case.compression {
                Some(alg) if any_compressed => alg.decompress(&body, 1 << 20).unwrap(),
                _ => body,
            };
            assert_eq!(plain, responses[0], "{case:?}");
            assert!(p.response_trailers.is_none());
            return;
        }
        (Wire::Connect, true) => {
            assert_eq!(
                h.get("connect-content-encoding")
                    .map(|v| v.to_str().unwrap()),
                name
            );
        }
        _ => {
            assert_eq!(h.get("grpc-encoding").map(|v| v.to_str().unwrap()), name);
            // The server advertises everything it supports.
            assert!(
                h.get("grpc-accept-encoding")
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .contains("gzip")
            );
        }
    }
    let envelopes = p.response_envelopes();
    let (messages, end) = match case.wire {
        Wire::Grpc => (&envelopes[..], None),
        _ => {
            let (last, rest) = envelopes.split_last().expect("an end frame");
            (rest, Some(last))
        }
    };
    assert_eq!(messages.len(), responses.len(), "{case:?}");
    for ((flags, payload), message) in messages.iter().zip(responses) {
        let compressed = case.compressed(message);
        assert_eq!(
            *flags,
            if compressed { FLAG_COMPRESSED } else { 0 },
            "{case:?}"
        );
        let plain = if compressed {
            case.compression
                .as_ref()
                .unwrap()
                .decompress(payload, 1 << 20)
                .unwrap()
        } else {
            payload.clone()
        };
        assert_eq!(&plain, message, "{case:?}");
    }
    match (case.wire, end) {
        (Wire::Grpc, None) => {
            let trailers = p.response_trailers.as_ref().expect("HTTP trailers");
            assert_eq!(trailers.get("grpc-status").unwrap(), "0");
            assert_eq!(
                trailers.get_all("x-trail").iter().collect::<Vec<_>>(),
                ["t1", "t2"]
            );
        }
        (Wire::Connect, Some((flags, payload))) => {
            assert_eq!(*flags, FLAG_END_STREAM);
            let text = std::str::from_utf8(payload).unwrap();
            assert_eq!(
                text,
                r#"{"metadata":{"x-trail":["t1","t2"],"x-trail-bin":["3q2+7w"]}}"#
            );
        }
        (_, Some((flags, payload))) => {
            assert_eq!(*flags, FLAG_TRAILERS);
            assert_eq!(
                &payload[..],
                b"grpc-status: 0\r\nx-trail: t1\r\nx-trail: t2\r\nx-trail-bin: 3q2+7w\r\n"
            );
            assert!(p.response_trailers.is_none());
        }
        other => panic!("{case:?}: {other:?}"),
    }
}

#[test]
fn every_rpc_type_protocol_codec_compression_and_chunking_succeeds() {
    let cases = all_cases(&CHUNKINGS);
    assert_eq!(cases.len(), 4 * 4 * 2 * (1 + algorithms().len()) * 3);
    for case in &cases {
        play_success(case);
    }
}

#[test]
fn pseudo_random_chunkings_in_each_direction() {
    // Different seeds per direction, many of them, for the enveloped forms.
    let mut rng = Rng::new(99);
    for case in all_cases(&[Chunking::Whole]) {
        if case
            .compression
            .as_ref()
            .is_some_and(|c| c.name() != "gzip")
        {
            continue;
        }
        for _ in 0..3 {
            let req = Chunking::Random(rng.next());
            let resp = Chunking::Random(rng.next());
            let mut messages_rng = Rng::new(rng.next());
            let (requests, responses) = messages(&case, &mut messages_rng);
            let mut p = Pair::start(
                &case.client_config(),
                case.server_config(),
                case.method.clone(),
                case.options(),
                req,
                resp,
            );
            for r in &requests {
                p.client_send(r.clone());
            }
            if case.method.kind.streams_requests() {
                p.client_close();
            }
            for r in &responses {
                p.server_send(r.clone());
            }
            p.server_finish(Ok(HeaderMap::new()));
            let mut expected = vec![ClientEvent::Headers(HeaderMap::new())];
            expected.extend(responses.iter().cloned().map(ClientEvent::Message));
            expected.push(ClientEvent::Finished(Ok(HeaderMap::new())));
            assert_eq!(p.client_events, expected, "{case:?} {req:?} {resp:?}");
        }
    }
}

/// Where the server fails the call.
#[derive(Clone, Copy, Debug, PartialEq)]
enum FailAt {
    /// Before any response byte (trailers-only, unary error, end-stream-only).
    BeforeResponse,
    /// After the response head and one message.
    AfterMessage,
}

fn play_error(case: &Case, at: FailAt) {
    let mut rng = Rng::new(0xe77);
    let (requests, responses) = messages(case, &mut rng);
    let mut p = case.start();
    for r in &requests {
        p.client_send(r.clone());
    }
    if case.method.kind.streams_requests() {
        p.client_close();
    }
    let mut expected_server: Vec<ServerEvent> =
        requests.iter().cloned().map(ServerEvent::Message).collect();
    expected_server.push(ServerEvent::RequestEnd);
    assert_eq!(p.take_server_events(), expected_server, "{case:?}");

    for (name, value) in &response_headers() {
        p.server()
            .response_headers_mut()
            .unwrap()
            .append(name.clone(), value.clone());
    }
    if at == FailAt::AfterMessage {
        p.server_send(responses[0].clone());
    }
    let status = rich_status(Code::FailedPrecondition);
    p.server_finish(Err(status.clone()));
    assert!(p.take_server_events().is_empty(), "{case:?}");

    // What the client sees depends on whether the head had gone out already.
    let head_sent = at == FailAt::AfterMessage && !case.connect_unary();
    let message_delivered = head_sent;
    // With response headers set, gRPC answers headers then trailers (never trailers-only), so
    // the client keeps headers and error metadata apart.
    let trailers_only = !head_sent
        && matches!(case.wire, Wire::Grpc | Wire::GrpcWeb | Wire::GrpcWebText)
        && response_headers().is_empty();
    let mut expected_status = status.clone();
    let mut expected = Vec::new();
    if trailers_only {
        // The response headers travel with the status in one block: they become error metadata.
        expected.push(ClientEvent::Headers(HeaderMap::new()));
        let mut meta = response_headers();
        for (k, v) in status.metadata() {
            meta.append(k.clone(), v.clone());
        }
        expected_status = expected_status.with_metadata(meta);
    } else {
        expected.push(ClientEvent::Headers(response_headers()));
    }
    if message_delivered {
        expected.push(ClientEvent::Message(responses[0].clone()));
    }
    expected.push(ClientEvent::Finished(Err(expected_status)));
    assert_eq!(p.client_events, expected, "{case:?} {at:?}");

    let head = p.response_head.as_ref().unwrap();
    if case.connect_unary() {
        assert_eq!(head.status, 400, "failed_precondition is 400");
        assert_eq!(
            head.headers.get("content-type").unwrap(),
            "application/json"
        );
        assert_eq!(
            head.headers.get("trailer-x-error-meta").unwrap(),
            "meta-value"
        );
        let body: serde_json::Value = serde_json::from_slice(&p.response_body).unwrap();
        assert_eq!(body["code"], "failed_precondition");
        assert_eq!(body["details"][0]["type"], "google.protobuf.StringValue");
        // Unpadded standard base64 of the encoded detail.
        assert!(!body["details"][0]["value"].as_str().unwrap().ends_with('='));
    } else {
        assert_eq!(head.status, 200);
    }
    if trailers_only {
        assert_eq!(head.headers.get("grpc-status").unwrap(), "9");
        assert_eq!(
            head.headers.get("grpc-message").unwrap(),
            "it went wrong: 100%25 caf%C3%A9"
        );
        assert!(head.headers.contains_key("grpc-status-details-bin"));
        assert!(p.response_body.is_empty(), "{case:?}");
    }
}

#[test]
fn error_outcomes_with_details_and_metadata_everywhere() {
    let mut compressions: Vec<Option<Arc<dyn Compression>>> = vec![None];
    compressions.extend(
        algorithms()
            .into_iter()
            .filter(|a| a.name() == "gzip")
            .map(Some),
    );
    for method in KINDS {
        for wire in WIRES {
            for codec in [Codec::Proto, Codec::Json] {
                for compression in &compressions {
                    for chunking in [Chunking::Whole, Chunking::Fixed(1), Chunking::Random(3)] {
                        let case = Case {
                            method: method.clone(),
                            wire,
                            codec,
                            compression: compression.clone(),
                            chunking,
                        };
                        play_error(&case, FailAt::BeforeResponse);
                        play_error(&case, FailAt::AfterMessage);
                    }
                }
            }
        }
    }
}

#[test]
fn every_code_round_trips_through_every_protocol() {
    for code in connect_proto_core::code::ALL_CODES {
        for wire in WIRES {
            for method in [UNARY, SERVER_STREAM] {
                let case = Case {
                    method,
                    wire,
                    codec: Codec::Proto,
                    compression: None,
                    chunking: Chunking::Whole,
                };
                let mut p = case.start();
                p.client_send(msg(Codec::Proto, "x"));
                p.server_finish(Err(Status::new(code, format!("code {code}"))));
                let status = match p.outcome() {
                    Err(status) => status.clone(),
                    Ok(t) => panic!("{case:?}: ok {t:?}"),
                };
                assert_eq!(status.code(), code, "{case:?}");
                assert_eq!(status.message(), format!("code {code}"));
                if case.connect_unary() {
                    assert_eq!(p.response_head.as_ref().unwrap().status, code.http_status());
                }
            }
        }
    }
}

#[test]
fn connect_error_detail_debug_survives_connect_only() {
    let detail = connect_proto_core::ErrorDetail::from_message(&string_value("d"))
        .with_debug(serde_json::json!({"value": "d"}));
    for wire in WIRES {
        let case = Case {
            method: UNARY,
            wire,
            codec: Codec::Json,
            compression: None,
            chunking: Chunking::Whole,
        };
        let mut p = case.start();
        p.client_send(msg(Codec::Json, "x"));
        p.server_finish(Err(
            Status::new(Code::Aborted, "").with_detail(detail.clone())
        ));
        let Err(status) = p.outcome().clone() else {
            panic!()
        };
        assert_eq!(status.code(), Code::Aborted);
        assert_eq!(status.message(), "");
        assert_eq!(
            status.details()[0].type_name(),
            "google.protobuf.StringValue"
        );
        assert_eq!(status.details()[0].value(), detail.value());
        let debug_kept = wire == Wire::Connect;
        assert_eq!(
            status.details()[0].debug().is_some(),
            debug_kept,
            "{wire:?}"
        );
    }
}
