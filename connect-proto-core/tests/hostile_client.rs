//! Hostile responses, one table: each row is a response head, body and trailers for a client
//! call and the exact outcome the client must report, whatever the chunking.

// These tests exercise gzip and zstd (not a default feature): `cargo test -p connect-proto-core
// --features zstd`, or `cargo test --workspace`, where other members turn it on.
#![cfg(all(feature = "gzip", feature = "zstd"))]

mod common;

use bytes::Bytes;
use http::HeaderMap;

use common::*;
use connect_proto_core::codec::Codec;
use connect_proto_core::internal::grpc_web::encode_text_chunk;
use connect_proto_core::{
    CallOptions, ClientCall, ClientEvent, ClientOutput, Code, Idempotency, MethodKind, MethodSpec,
};

const UNARY: MethodSpec = MethodSpec::new("/t.S/Unary", MethodKind::Unary, Idempotency::Unknown);
const CLIENT_STREAM: MethodSpec =
    MethodSpec::new("/t.S/CS", MethodKind::ClientStreaming, Idempotency::Unknown);
const SERVER_STREAM: MethodSpec =
    MethodSpec::new("/t.S/SS", MethodKind::ServerStreaming, Idempotency::Unknown);

/// Receive limit used by every row.
const LIMIT: usize = 64 * 1024;

#[derive(Clone, Debug)]
struct Row {
    name: String,
    wire: Wire,
    method: MethodSpec,
    status: u16,
    headers: Vec<(&'static str, String)>,
    /// The binary body (base64-encoded automatically for gRPC-Web text unless `raw`).
    body: Vec<u8>,
    raw: bool,
    trailers: Option<Vec<(&'static str, String)>>,
    /// `Ok(n)`: success after `n` messages; `Err(code)`: the call fails with `code`.
    expect: Result<usize, Code>,
    /// Messages delivered before a failure.
    delivered: usize,
}

fn row(name: &str, wire: Wire, method: MethodSpec) -> Row {
    let content_type = match (wire, method.kind.is_streaming()) {
        (Wire::Connect, false) => "application/proto",
        (Wire::Connect, true) => "application/connect+proto",
        (Wire::Grpc, _) => "application/grpc",
        (Wire::GrpcWeb, _) => "application/grpc-web+proto",
        (Wire::GrpcWebText, _) => "application/grpc-web-text+proto",
    };
    Row {
        name: name.to_owned(),
        wire,
        method,
        status: 200,
        headers: vec![("content-type", content_type.to_owned())],
        body: Vec::new(),
        raw: false,
        trailers: None,
        expect: Ok(0),
        delivered: 0,
    }
}

impl Row {
    fn status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }
    fn ct(mut self, content_type: &str) -> Self {
        self.headers.retain(|(k, _)| *k != "content-type");
        if !content_type.is_empty() {
            self.headers.push(("content-type", content_type.to_owned()));
        }
        self
    }
    fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }
    fn body(mut self, body: impl AsRef<[u8]>) -> Self {
        self.body = body.as_ref().to_vec();
        self
    }
    fn raw_body(mut self, body: impl AsRef<[u8]>) -> Self {
        self.body = body.as_ref().to_vec();
        self.raw = true;
        self
    }
    fn trailers(mut self, pairs: &[(&'static str, &str)]) -> Self {
        self.trailers = Some(pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect());
        self
    }
    fn ok(mut self, messages: usize) -> Self {
        self.expect = Ok(messages);
        self
    }
    fn fails(mut self, code: Code) -> Self {
        self.expect = Err(code);
        self
    }
    fn after(mut self, delivered: usize) -> Self {
        self.delivered = delivered;
        self
    }
}

/// Plays one response into a fresh client call and returns its events and whether it asked to
/// abandon the exchange.
fn run(r: &Row, chunking: Chunking) -> (Vec<ClientEvent>, bool) {
    let now = Clock::new().now();
    let config = r.wire.client_config(Codec::Proto);
    let options = CallOptions::new().max_receive_message_size(LIMIT);
    let mut client = ClientCall::start(&config, now, &r.method, options).unwrap();
    if r.method.kind.streams_requests() {
        client.close_send().unwrap();
    } else {
        client
            .send_message(now, Bytes::from_static(b"\x0a\x01q"))
            .unwrap();
    }
    while client.poll_output().is_some() {}
    let pairs: Vec<(&str, &str)> = r.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    client.handle_response_head(response_head(r.status, &pairs));
    let body = if r.wire.text() && !r.raw {
        encode_text_chunk(&r.body).to_vec()
    } else {
        r.body.clone()
    };
    for chunk in chunks(&body, chunking) {
        client.handle_data(chunk);
    }
    if let Some(t) = &r.trailers {
        let pairs: Vec<(&str, &str)> = t.iter().map(|(k, v)| (*k, v.as_str())).collect();
        client.handle_trailers(headers(&pairs));
    }
    client.handle_end();
    let events: Vec<ClientEvent> = std::iter::from_fn(|| client.poll_event()).collect();
    let mut cancelled = false;
    while let Some(out) = client.poll_output() {
        cancelled |= matches!(out, ClientOutput::Cancel);
    }
    // Inputs after the outcome change nothing.
    client.handle_data(Bytes::from_static(b"\0\0\0\0\0"));
    client.handle_trailers(HeaderMap::new());
    client.handle_end();
    assert!(client.poll_event().is_none(), "{}", r.name);
    (events, cancelled)
}

fn check(rows: &[Row]) {
    for r in rows {
        for chunking in [Chunking::Whole, Chunking::Fixed(1), Chunking::Random(3)] {
            let (events, _) = run(r, chunking);
            let what = format!(
                "{} ({:?}, {:?}, {chunking:?})",
                r.name, r.wire, r.method.kind
            );
            assert!(
                matches!(events.first(), Some(ClientEvent::Headers(_))),
                "{what}: {events:?}"
            );
            let messages = events
                .iter()
                .filter(|e| matches!(e, ClientEvent::Message(_)))
                .count();
            match (&r.expect, events.last()) {
                (Ok(n), Some(ClientEvent::Finished(Ok(_)))) => assert_eq!(messages, *n, "{what}"),
                (Err(code), Some(ClientEvent::Finished(Err(status)))) => {
                    assert_eq!(status.code(), *code, "{what}: {status:?}");
                    assert_eq!(messages, r.delivered, "{what}");
                }
                (expected, _) => panic!("{what}: expected {expected:?}, got {events:?}"),
            }
            assert_eq!(
                events
                    .iter()
                    .filter(|e| matches!(e, ClientEvent::Finished(_)))
                    .count(),
                1,
                "{what}: {events:?}"
            );
        }
    }
}

fn m() -> Vec<u8> {
    msg(Codec::Proto, "payload").to_vec()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    algorithm("gzip").compress(data).unwrap().to_vec()
}

/// A few KB that inflate past [`LIMIT`].
fn gzip_bomb() -> Vec<u8> {
    let bomb = gzip(&vec![0u8; 4 * LIMIT]);
    assert!(bomb.len() < 4096, "{}", bomb.len());
    bomb
}

fn corrupt_gzip() -> Vec<u8> {
    let full = gzip(&m().repeat(50));
    full[..full.len() / 2].to_vec()
}

/// The HTTP → code table for responses without an RPC status.
const HTTP_TABLE: [(u16, Code); 14] = [
    (400, Code::Internal),
    (401, Code::Unauthenticated),
    (403, Code::PermissionDenied),
    (404, Code::Unimplemented),
    (405, Code::Unknown),
    (408, Code::Unknown),
    (415, Code::Unknown),
    (429, Code::Unavailable),
    (431, Code::Unknown),
    (500, Code::Unknown),
    (502, Code::Unavailable),
    (503, Code::Unavailable),
    (504, Code::Unavailable),
    (505, Code::Unknown),
];

#[test]
fn connect_unary_hostile_responses() {
    let w = Wire::Connect;
    let mut rows = vec![
        row("ok", w, UNARY).body(m()).ok(1),
        row("empty body is the empty message", w, UNARY).ok(1),
        row("ok with a charset parameter", w, UNARY)
            .ct("application/proto; charset=utf-8")
            .body(m())
            .ok(1),
        row("foreign content type", w, UNARY)
            .ct("image/jpeg")
            .body(m())
            .fails(Code::Unknown),
        row("no content type", w, UNARY)
            .ct("")
            .body(m())
            .fails(Code::Unknown),
        row("wrong codec", w, UNARY)
            .ct("application/json")
            .body("{}")
            .fails(Code::Internal),
        row("streaming form", w, UNARY)
            .ct("application/connect+proto")
            .body(m())
            .fails(Code::Internal),
        row("unknown encoding", w, UNARY)
            .header("content-encoding", "foo")
            .body(m())
            .fails(Code::Internal),
        row("corrupt gzip", w, UNARY)
            .header("content-encoding", "gzip")
            .body(corrupt_gzip())
            .fails(Code::Internal),
        row("gzip bomb", w, UNARY)
            .header("content-encoding", "gzip")
            .body(gzip_bomb())
            .fails(Code::ResourceExhausted),
        row("body over the limit", w, UNARY)
            .body(vec![0u8; LIMIT + 1])
            .fails(Code::ResourceExhausted),
        row("identity encoding", w, UNARY)
            .header("content-encoding", "identity")
            .body(m())
            .ok(1),
        row("gzip body", w, UNARY)
            .header("content-encoding", "GZIP")
            .body(gzip(&m()))
            .ok(1),
        // Errors with bodies.
        row("error body wins", w, UNARY)
            .status(500)
            .ct("application/json")
            .body(r#"{"code":"not_found","message":"x"}"#)
            .fails(Code::NotFound),
        row("error body with charset", w, UNARY)
            .status(400)
            .ct("application/json; charset=utf-8")
            .body(r#"{"code":"aborted"}"#)
            .fails(Code::Aborted),
        row("error body compressed", w, UNARY)
            .status(500)
            .ct("application/json")
            .header("content-encoding", "gzip")
            .body(gzip(br#"{"code":"data_loss"}"#))
            .fails(Code::DataLoss),
        row("error body with unknown encoding", w, UNARY)
            .status(500)
            .ct("application/json")
            .header("content-encoding", "foo")
            .body(r#"{"code":"data_loss"}"#)
            .fails(Code::Unknown),
        row("malformed JSON error", w, UNARY)
            .status(503)
            .ct("application/json")
            .body("{")
            .fails(Code::Unavailable),
        row("JSON null error", w, UNARY)
            .status(401)
            .ct("application/json")
            .body("null")
            .fails(Code::Unauthenticated),
        row("empty JSON error", w, UNARY)
            .status(429)
            .ct("application/json")
            .body("{}")
            .fails(Code::Unavailable),
        row("unknown code name", w, UNARY)
            .status(503)
            .ct("application/json")
            .body(r#"{"code":"bogus"}"#)
            .fails(Code::Unavailable),
        row("bad details", w, UNARY)
            .status(500)
            .ct("application/json")
            .body(r#"{"code":"aborted","details":[{"type":"a.B","value":"!!"}]}"#)
            .fails(Code::Unknown),
        row("non-JSON content type ignores a JSON error body", w, UNARY)
            .status(500)
            .ct("text/plain")
            .body(r#"{"code":"not_found"}"#)
            .fails(Code::Unknown),
        row("proto error body is ignored", w, UNARY)
            .status(403)
            .ct("application/proto")
            .body(m())
            .fails(Code::PermissionDenied),
    ];
    for (status, code) in HTTP_TABLE {
        rows.push(
            row(&format!("HTTP {status}"), w, UNARY)
                .status(status)
                .ct("")
                .fails(code),
        );
    }
    check(&rows);
}

#[test]
fn connect_unary_error_metadata_and_message() {
    let r = row("rich error", Wire::Connect, UNARY)
        .status(409)
        .ct("application/json")
        .header("x-lead", "1")
        .header("trailer-x-trail", "2")
        .body(r#"{"code":"already_exists","message":"dup","details":[{"type":"a.B","value":"AAEC","debug":{"k":1}}]}"#);
    let (events, cancelled) = run(&r, Chunking::Whole);
    assert!(!cancelled);
    assert_eq!(events[0], ClientEvent::Headers(headers(&[("x-lead", "1")])));
    let ClientEvent::Finished(Err(status)) = &events[1] else {
        panic!("{events:?}")
    };
    assert_eq!(status.code(), Code::AlreadyExists);
    assert_eq!(status.message(), "dup");
    assert_eq!(status.metadata(), &headers(&[("x-trail", "2")]));
    assert_eq!(status.details()[0].type_name(), "a.B");
    assert_eq!(&status.details()[0].value()[..], &[0, 1, 2]);
    assert_eq!(
        status.details()[0].debug(),
        Some(&serde_json::json!({"k": 1}))
    );
    // Without a usable body the message names the HTTP status.
    let (events, _) = run(
        &row("bare 503", Wire::Connect, UNARY).status(503).ct(""),
        Chunking::Whole,
    );
    let ClientEvent::Finished(Err(status)) = &events[1] else {
        panic!()
    };
    assert_eq!(status.message(), "HTTP status 503 Service Unavailable");
}

fn end(json: &str) -> Vec<u8> {
    env(0x02, json.as_bytes())
}

#[test]
fn connect_streaming_hostile_responses() {
    let w = Wire::Connect;
    let ss = SERVER_STREAM;
    let mut rows = vec![
        row("ok", w, ss.clone())
            .body([env(0, &m()), end("{}")].concat())
            .ok(1),
        row("ok without messages", w, ss.clone())
            .body(end("{}"))
            .ok(0),
        row("compressed end-stream", w, ss.clone())
            .header("connect-content-encoding", "gzip")
            .body([env(1, &gzip(&m())), env(3, &gzip(b"{}"))].concat())
            .ok(1),
        row("missing end-stream", w, ss.clone())
            .body(env(0, &m()))
            .fails(Code::Internal)
            .after(1),
        row("empty body", w, ss.clone()).fails(Code::Internal),
        row("data after end-stream", w, ss.clone())
            .body([end("{}"), env(0, &m())].concat())
            .fails(Code::Internal),
        row("bytes after end-stream", w, ss.clone())
            .body([end("{}"), vec![0, 0]].concat())
            .fails(Code::Internal),
        row("two end-streams", w, ss.clone())
            .body([end("{}"), end("{}")].concat())
            .fails(Code::Internal),
        row("end-stream after error", w, ss.clone())
            .body([end(r#"{"error":{"code":"aborted"}}"#), end("{}")].concat())
            .fails(Code::Internal),
        row("malformed end-stream", w, ss.clone())
            .body(end("{"))
            .fails(Code::Unknown),
        row("end-stream is not an object", w, ss.clone())
            .body(end("[]"))
            .fails(Code::Unknown),
        row("end-stream empty error", w, ss.clone())
            .body(end(r#"{"error":{}}"#))
            .fails(Code::Unknown),
        // The conformance suite (connect_client_error_endstream.yaml) reads a null error as
        // success.
        row("end-stream null error is success", w, ss.clone())
            .body(end(r#"{"error":null}"#))
            .ok(0),
        row("end-stream bad metadata", w, ss.clone())
            .body(end(r#"{"metadata":{"k":"v"}}"#))
            .fails(Code::Unknown),
        row("end-stream error", w, ss.clone())
            .body(
                [
                    env(0, &m()),
                    end(r#"{"error":{"code":"not_found"},"metadata":{"x":["1"]}}"#),
                ]
                .concat(),
            )
            .fails(Code::NotFound)
            .after(1),
        row("reserved flag", w, ss.clone())
            .body(env(0x04, &m()))
            .fails(Code::Internal),
        row("gRPC-Web trailer flag", w, ss.clone())
            .body(env(0x80, b"grpc-status: 0\r\n"))
            .fails(Code::Internal),
        row("compressed without encoding", w, ss.clone())
            .body([env(1, &m()), end("{}")].concat())
            .fails(Code::Internal),
        row("compressed with identity", w, ss.clone())
            .header("connect-content-encoding", "identity")
            .body([env(1, &m()), end("{}")].concat())
            .fails(Code::Internal),
        row("unknown encoding", w, ss.clone())
            .header("connect-content-encoding", "foo")
            .body(end("{}"))
            .fails(Code::Internal),
        row("oversized length prefix", w, ss.clone())
            .body([0u8, 0xff, 0xff, 0xff, 0xff])
            .fails(Code::ResourceExhausted),
        row("length just over the limit", w, ss.clone())
            .body([0u8, 0, 1, 0, 1])
            .fails(Code::ResourceExhausted),
        row("truncated message", w, ss.clone())
            .body([env(0, &m()), vec![0, 0, 0, 0, 10, 1, 2, 3, 4]].concat())
            .fails(Code::Internal)
            .after(1),
        row("truncated prefix", w, ss.clone())
            .body([env(0, b""), vec![0, 0, 0]].concat())
            .fails(Code::Internal)
            .after(1),
        row("gzip bomb", w, ss.clone())
            .header("connect-content-encoding", "gzip")
            .body([env(1, &gzip_bomb()), end("{}")].concat())
            .fails(Code::ResourceExhausted),
        row("corrupt gzip", w, ss.clone())
            .header("connect-content-encoding", "gzip")
            .body([env(1, &corrupt_gzip()), end("{}")].concat())
            .fails(Code::Internal),
        row("foreign content type", w, ss.clone())
            .ct("image/jpeg")
            .body(end("{}"))
            .fails(Code::Unknown),
        row("wrong codec", w, ss.clone())
            .ct("application/connect+json")
            .body(end("{}"))
            .fails(Code::Internal),
        row("unary form", w, ss.clone())
            .ct("application/proto")
            .body(end("{}"))
            .fails(Code::Internal),
        row("HTTP 500 with an end-stream body", w, ss.clone())
            .status(500)
            .body(end("{}"))
            .fails(Code::Unknown),
        row(
            "client stream: end-stream without response",
            w,
            CLIENT_STREAM,
        )
        .body(end(r#"{"code":"out_of_range","message":"oops"}"#))
        .fails(Code::Unimplemented),
        row("client stream: two responses", w, CLIENT_STREAM)
            .body([env(0, &m()), env(0, &m()), end("{}")].concat())
            .fails(Code::Unimplemented)
            .after(1),
    ];
    for (status, code) in HTTP_TABLE {
        rows.push(
            row(&format!("HTTP {status}"), w, ss.clone())
                .status(status)
                .ct("")
                .fails(code),
        );
    }
    check(&rows);
}

fn trailer_frame(block: &str) -> Vec<u8> {
    env(0x80, block.as_bytes())
}

#[test]
fn grpc_hostile_responses() {
    let w = Wire::Grpc;
    let ok = [("grpc-status", "0")];
    let mut rows = vec![
        row("ok", w, UNARY).body(env(0, &m())).trailers(&ok).ok(1),
        row("ok stream", w, SERVER_STREAM)
            .body([env(0, &m()), env(0, &m())].concat())
            .trailers(&ok)
            .ok(2),
        row("trailers-only error", w, UNARY)
            .header("grpc-status", "5")
            .fails(Code::NotFound),
        row("trailers-only ok without response", w, UNARY)
            .header("grpc-status", "0")
            .fails(Code::Unimplemented),
        row("trailers-only ok stream", w, SERVER_STREAM)
            .header("grpc-status", "0")
            .ok(0),
        row("trailers-only without status", w, UNARY)
            .header("grpc-message", "error")
            .fails(Code::Unknown),
        row("trailers without status", w, UNARY)
            .trailers(&[("grpc-message", "error")])
            .fails(Code::Unknown),
        row("ok but no response", w, UNARY)
            .trailers(&ok)
            .fails(Code::Unimplemented),
        row("two responses", w, UNARY)
            .body([env(0, &m()), env(0, &m())].concat())
            .trailers(&ok)
            .fails(Code::Unimplemented)
            .after(1),
        row("no trailers", w, UNARY)
            .body(env(0, &m()))
            .fails(Code::Internal)
            .after(1),
        row("stream without trailers", w, SERVER_STREAM)
            .body(env(0, &m()))
            .fails(Code::Internal)
            .after(1),
        row("status header ignored when a body follows", w, UNARY)
            .header("grpc-status", "9")
            .body(env(0, &m()))
            .fails(Code::Internal)
            .after(1),
        row("status header ignored when trailers follow", w, UNARY)
            .header("grpc-status", "8")
            .trailers(&[("grpc-status", "9")])
            .fails(Code::FailedPrecondition),
        row("foreign content type", w, UNARY)
            .ct("image/jpeg")
            .fails(Code::Unknown),
        row("no content type", w, UNARY)
            .ct("")
            .body(env(0, &m()))
            .trailers(&ok)
            .fails(Code::Unknown),
        row("wrong codec", w, UNARY)
            .ct("application/grpc+json")
            .body(env(0, b"{}"))
            .trailers(&ok)
            .fails(Code::Internal),
        row("unknown encoding", w, UNARY)
            .header("grpc-encoding", "foo")
            .body(env(1, &m()))
            .trailers(&ok)
            .fails(Code::Internal),
        row("compressed with identity", w, UNARY)
            .header("grpc-encoding", "identity")
            .body(env(1, &m()))
            .trailers(&ok)
            .fails(Code::Internal),
        row("compressed without encoding", w, UNARY)
            .body(env(1, &m()))
            .trailers(&ok)
            .fails(Code::Internal),
        row("gzip message", w, UNARY)
            .header("grpc-encoding", "gzip")
            .body(env(1, &gzip(&m())))
            .trailers(&ok)
            .ok(1),
        row("gzip bomb", w, UNARY)
            .header("grpc-encoding", "gzip")
            .body(env(1, &gzip_bomb()))
            .trailers(&ok)
            .fails(Code::ResourceExhausted),
        row("corrupt gzip", w, UNARY)
            .header("grpc-encoding", "gzip")
            .body(env(1, &corrupt_gzip()))
            .trailers(&ok)
            .fails(Code::Internal),
        row("end-stream flag", w, UNARY)
            .body(env(0x02, b"{}"))
            .trailers(&ok)
            .fails(Code::Internal),
        row("trailer flag", w, UNARY)
            .body(env(0x80, b"grpc-status: 0"))
            .trailers(&ok)
            .fails(Code::Internal),
        row("oversized length prefix", w, UNARY)
            .body([0u8, 0x7f, 0, 0, 0])
            .trailers(&ok)
            .fails(Code::ResourceExhausted),
        row("truncated message then trailers", w, SERVER_STREAM)
            .body([env(0, &m()), vec![0, 0, 0, 0, 10, 0, 0, 0, 0]].concat())
            .trailers(&ok)
            .fails(Code::Internal)
            .after(1),
        row("truncated prefix then trailers", w, SERVER_STREAM)
            .body([env(0, b""), vec![0, 0, 0]].concat())
            .trailers(&ok)
            .fails(Code::Internal)
            .after(1),
        row("grpc-status not a number", w, UNARY)
            .trailers(&[("grpc-status", "abc")])
            .fails(Code::Unknown),
        row("grpc-status negative", w, UNARY)
            .trailers(&[("grpc-status", "-1")])
            .fails(Code::Unknown),
        row("grpc-status empty", w, UNARY)
            .trailers(&[("grpc-status", "")])
            .fails(Code::Unknown),
        row("grpc-status out of range", w, UNARY)
            .trailers(&[("grpc-status", "99")])
            .fails(Code::Unknown),
        row("grpc-status huge", w, UNARY)
            .trailers(&[("grpc-status", "99999999999999999999")])
            .fails(Code::Unknown),
        row("malformed grpc-message is kept", w, UNARY)
            .trailers(&[("grpc-status", "3"), ("grpc-message", "bad %zz escape %")])
            .fails(Code::InvalidArgument),
        row("details not base64", w, UNARY)
            .trailers(&[("grpc-status", "3"), ("grpc-status-details-bin", "!!")])
            .fails(Code::Unknown),
        row("details not a Status", w, UNARY)
            .trailers(&[("grpc-status", "3"), ("grpc-status-details-bin", "/w")])
            .fails(Code::Unknown),
        row("details on an OK status are ignored", w, UNARY)
            .body(env(0, &m()))
            .trailers(&[("grpc-status", "0"), ("grpc-status-details-bin", "!!")])
            .ok(1),
    ];
    for (status, code) in HTTP_TABLE {
        rows.push(
            row(&format!("HTTP {status}"), w, UNARY)
                .status(status)
                .ct("")
                .fails(code),
        );
        rows.push(
            row(
                &format!("HTTP {status} with gRPC content type"),
                w,
                SERVER_STREAM,
            )
            .status(status)
            .fails(code),
        );
    }
    check(&rows);
}

#[test]
fn grpc_web_hostile_responses() {
    for w in [Wire::GrpcWeb, Wire::GrpcWebText] {
        let ok = trailer_frame("grpc-status: 0\r\n");
        let rows = vec![
            row("ok", w, UNARY)
                .body([env(0, &m()), ok.clone()].concat())
                .ok(1),
            row("ok with HTTP trailers too", w, UNARY)
                .body([env(0, &m()), ok.clone()].concat())
                .trailers(&[("grpc-status", "13")])
                .ok(1),
            row("trailers in HTTP trailers", w, UNARY)
                .body(env(0, &m()))
                .trailers(&[("grpc-status", "0")])
                .ok(1),
            row("compressed trailer frame", w, UNARY)
                .header("grpc-encoding", "gzip")
                .body([env(0, &m()), env(0x81, &gzip(b"grpc-status: 0\r\n"))].concat())
                .ok(1),
            row("trailer frame without status", w, UNARY)
                .body(trailer_frame("grpc-message: error\r\n"))
                .fails(Code::Unknown),
            row("malformed trailer frame", w, UNARY)
                .body(trailer_frame("no colon\r\n"))
                .fails(Code::Unknown),
            row("trailer frame with error", w, SERVER_STREAM)
                .body(
                    [
                        env(0, &m()),
                        trailer_frame("grpc-status: 14\r\ngrpc-message: later\r\nx-a: 1\r\n"),
                    ]
                    .concat(),
                )
                .fails(Code::Unavailable)
                .after(1),
            row("missing trailer frame", w, UNARY)
                .body(env(0, &m()))
                .fails(Code::Internal)
                .after(1),
            row("data after trailer frame", w, SERVER_STREAM)
                .body([ok.clone(), env(0, &m())].concat())
                .fails(Code::Internal),
            row("bytes after trailer frame", w, SERVER_STREAM)
                .body([ok.clone(), vec![0]].concat())
                .fails(Code::Internal),
            row("two trailer frames", w, SERVER_STREAM)
                .body([ok.clone(), ok.clone()].concat())
                .fails(Code::Internal),
            row("header status ignored when a body follows", w, UNARY)
                .header("grpc-status", "8")
                .body(trailer_frame("grpc-status: 9\r\n"))
                .fails(Code::FailedPrecondition),
            row("trailers-only ok without response", w, UNARY)
                .header("grpc-status", "0")
                .fails(Code::Unimplemented),
            row("trailers-only without status", w, UNARY)
                .header("grpc-message", "error")
                .fails(Code::Unknown),
            row("end-stream flag", w, UNARY)
                .body([env(0x02, b"{}"), ok.clone()].concat())
                .fails(Code::Internal),
            row("foreign content type", w, UNARY)
                .ct("image/jpeg")
                .fails(Code::Unknown),
            row("wrong codec", w, UNARY)
                .ct("application/grpc-web+json")
                .body(ok.clone())
                .fails(Code::Internal),
            row("unknown encoding", w, UNARY)
                .header("grpc-encoding", "foo")
                .body(ok.clone())
                .fails(Code::Internal),
            row("oversized prefix", w, UNARY)
                .body([0u8, 0xff, 0xff, 0xff, 0xff])
                .fails(Code::ResourceExhausted),
            row("HTTP 503", w, UNARY)
                .status(503)
                .ct("")
                .fails(Code::Unavailable),
        ];
        check(&rows);
    }
    // Text mode, over the raw body.
    let w = Wire::GrpcWebText;
    let good =
        encode_text_chunk(&[env(0, &m()), trailer_frame("grpc-status: 0\r\n")].concat()).to_vec();
    let mut padded_per_frame = encode_text_chunk(&env(0, &m())).to_vec();
    padded_per_frame.extend_from_slice(&encode_text_chunk(&trailer_frame("grpc-status: 0\r\n")));
    let rows = vec![
        row("text ok", w, UNARY).raw_body(&good).ok(1),
        row("text padded per frame", w, UNARY)
            .raw_body(&padded_per_frame)
            .ok(1),
        row("text with line breaks", w, UNARY)
            .raw_body([&good[..8], b"\r\n", &good[8..]].concat())
            .ok(1),
        row("text not base64", w, UNARY)
            .raw_body("!!!!")
            .fails(Code::Internal),
        row("text cut inside a group", w, UNARY)
            .raw_body(&good[..good.len() - 1])
            .fails(Code::Internal)
            .after(1),
        row("binary body for text", w, UNARY)
            .raw_body([env(0, &m()), trailer_frame("grpc-status: 0\r\n")].concat())
            .fails(Code::Internal),
    ];
    check(&rows);
}

#[test]
fn protocol_errors_abandon_the_exchange_but_remote_outcomes_do_not() {
    // A protocol error asks the adapter to reset the stream…
    let r = row("reserved flag", Wire::Connect, SERVER_STREAM).body(env(0x04, &m()));
    assert!(run(&r, Chunking::Whole).1);
    // …an error the server reported does not.
    let r = row("end-stream error", Wire::Connect, SERVER_STREAM)
        .body(end(r#"{"error":{"code":"aborted"}}"#));
    assert!(!run(&r, Chunking::Whole).1);
    let r = row("trailers", Wire::Grpc, UNARY).trailers(&[("grpc-status", "10")]);
    assert!(!run(&r, Chunking::Whole).1);
}

#[test]
fn body_before_head_is_a_protocol_error() {
    let now = Clock::new().now();
    let mut client = ClientCall::start(
        &Wire::Grpc.client_config(Codec::Proto),
        now,
        &SERVER_STREAM,
        CallOptions::new(),
    )
    .unwrap();
    client
        .send_message(now, Bytes::from_static(b"\x0a\x01q"))
        .unwrap();
    client.handle_data(Bytes::from_static(b"\0\0\0\0\0"));
    let events: Vec<_> = std::iter::from_fn(|| client.poll_event()).collect();
    assert_eq!(events.len(), 2);
    assert_eq!(finished_code(&events), Code::Internal);
    // A response that ends before its head.
    let mut client = ClientCall::start(
        &Wire::Connect.client_config(Codec::Proto),
        now,
        &UNARY,
        CallOptions::new(),
    )
    .unwrap();
    client
        .send_message(now, Bytes::from_static(b"\x0a\x01q"))
        .unwrap();
    client.handle_end();
    let events: Vec<_> = std::iter::from_fn(|| client.poll_event()).collect();
    assert_eq!(finished_code(&events), Code::Internal);
}

#[test]
fn grpc_status_details_and_message_from_the_wire() {
    // A details blob whose Status carries the message when grpc-message is absent.
    let details = connect_proto_core::internal::grpc::status_proto::encode_rpc_status(
        7,
        "from details",
        &[connect_proto_core::ErrorDetail::new(
            "a.B",
            Bytes::from_static(b"\x08\x01"),
        )],
    );
    let encoded = connect_proto_core::internal::metadata::encode_binary_value(&details);
    let r = row("details", Wire::Grpc, UNARY).trailers(&[
        ("grpc-status", "7"),
        ("grpc-status-details-bin", encoded.to_str().unwrap()),
        ("x-m", "v"),
    ]);
    let (events, _) = run(&r, Chunking::Whole);
    let ClientEvent::Finished(Err(status)) = events.last().unwrap() else {
        panic!()
    };
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(status.message(), "from details");
    assert_eq!(status.details().len(), 1);
    assert_eq!(status.metadata(), &headers(&[("x-m", "v")]));
    let r = row("bad escape", Wire::Grpc, UNARY)
        .trailers(&[("grpc-status", "3"), ("grpc-message", "50%zz %41")]);
    let (events, _) = run(&r, Chunking::Whole);
    let ClientEvent::Finished(Err(status)) = events.last().unwrap() else {
        panic!()
    };
    assert_eq!(status.message(), "50%zz A");
}
