//! Hostile requests, one table: each row is a request head and body and the exact outcome the
//! server must produce (rejection HTTP status and code, or the code the accepted call fails
//! with), whatever the chunking. Every response is also read back by a client of the same
//! protocol, which must see the same code.

// These tests exercise gzip and zstd (not a default feature): `cargo test -p connect-proto-core
// --features zstd`, or `cargo test --workspace`, where other members turn it on.
#![cfg(all(feature = "gzip", feature = "zstd"))]

mod common;

use bytes::Bytes;
use http::{Method, response};

use base64::Engine as _;
use common::*;
use connect_proto_core::codec::Codec;
use connect_proto_core::internal::grpc_web::encode_text_chunk;
use connect_proto_core::{
    CallOptions, ClientCall, ClientEvent, Code, Idempotency, MethodKind, MethodSpec, ServerCall,
    ServerConfig, ServerEvent, ServerOutput,
};

const UNARY: MethodSpec = MethodSpec::new("/t.S/Unary", MethodKind::Unary, Idempotency::Unknown);
const GET: MethodSpec = MethodSpec::new("/t.S/Get", MethodKind::Unary, Idempotency::NoSideEffects);
const CLIENT_STREAM: MethodSpec =
    MethodSpec::new("/t.S/CS", MethodKind::ClientStreaming, Idempotency::Unknown);
const SERVER_STREAM: MethodSpec =
    MethodSpec::new("/t.S/SS", MethodKind::ServerStreaming, Idempotency::Unknown);
const BIDI: MethodSpec =
    MethodSpec::new("/t.S/Bidi", MethodKind::BidiStreaming, Idempotency::Unknown);
const METHODS: [MethodSpec; 5] = [UNARY, GET, CLIENT_STREAM, SERVER_STREAM, BIDI];

const LIMIT: usize = 64 * 1024;

fn config() -> ServerConfig {
    ServerConfig::new().max_receive_message_size(LIMIT)
}

fn lookup(path: &str) -> Option<MethodSpec> {
    METHODS.iter().find(|m| m.path == path).cloned()
}

#[derive(Clone, Debug, PartialEq)]
enum Expect {
    /// Admission rejects the request: HTTP status and the RPC code it carries (if any).
    Reject(u16, Option<Code>),
    /// Admitted, then the call fails with this code; the response has this HTTP status.
    Fail(Code, u16),
    /// Admitted and read completely, with this many messages.
    Accept(usize),
}

#[derive(Clone, Debug)]
struct Req {
    name: String,
    method: Method,
    uri: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    /// How a client of the detected protocol reads the response back (`None`: not an RPC).
    reader: Option<(Wire, MethodSpec, Codec)>,
    expect: Expect,
    /// Response header that must be present, with a substring of its value.
    must_have: Vec<(&'static str, String)>,
    config: Option<ServerConfig>,
}

fn post(name: &str, spec: MethodSpec, content_type: &str) -> Req {
    let wire = match content_type {
        ct if ct.starts_with("application/grpc-web-text") => Some(Wire::GrpcWebText),
        ct if ct.starts_with("application/grpc-web") => Some(Wire::GrpcWeb),
        ct if ct.starts_with("application/grpc") => Some(Wire::Grpc),
        "application/proto"
        | "application/json"
        | "application/connect+proto"
        | "application/connect+json" => Some(Wire::Connect),
        _ => None,
    };
    let codec = if content_type.contains("json") {
        Codec::Json
    } else {
        Codec::Proto
    };
    let mut headers = Vec::new();
    if !content_type.is_empty() {
        headers.push(("content-type", content_type.to_owned()));
    }
    Req {
        name: name.to_owned(),
        method: Method::POST,
        uri: spec.path().to_owned(),
        headers,
        body: Vec::new(),
        reader: wire.map(|w| (w, spec, codec)),
        expect: Expect::Accept(0),
        must_have: Vec::new(),
        config: None,
    }
}

fn get(name: &str, query: &str) -> Req {
    Req {
        name: name.to_owned(),
        method: Method::GET,
        uri: format!("{}?{query}", GET.path()),
        headers: Vec::new(),
        body: Vec::new(),
        reader: Some((
            Wire::Connect,
            GET,
            if query.contains("encoding=json") {
                Codec::Json
            } else {
                Codec::Proto
            },
        )),
        expect: Expect::Accept(1),
        must_have: Vec::new(),
        config: None,
    }
}

impl Req {
    fn verb(mut self, method: Method) -> Self {
        self.method = method;
        self
    }
    fn path(mut self, path: &str) -> Self {
        self.uri = path.to_owned();
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
    fn rejects(mut self, http: u16, code: Option<Code>) -> Self {
        self.expect = Expect::Reject(http, code);
        self
    }
    fn fails(mut self, code: Code) -> Self {
        let connect_unary = self
            .reader
            .clone()
            .is_some_and(|(w, m, _)| w == Wire::Connect && !m.kind.is_streaming());
        let http = if connect_unary {
            code.http_status().as_u16()
        } else {
            200
        };
        self.expect = Expect::Fail(code, http);
        self
    }
    fn accepts(mut self, messages: usize) -> Self {
        self.expect = Expect::Accept(messages);
        self
    }
    fn with(mut self, header: &'static str, contains: &str) -> Self {
        self.must_have.push((header, contains.to_owned()));
        self
    }
    fn config(mut self, config: ServerConfig) -> Self {
        self.config = Some(config);
        self
    }
}

/// What the server did with one request.
struct Served {
    expect: Expect,
    head: response::Parts,
    body: Vec<u8>,
    trailers: Option<http::HeaderMap>,
    /// Whether the failure was decided before the request body ended.
    failed_early: bool,
}

fn serve(r: &Req, chunking: Chunking) -> Served {
    let now = Clock::new().now();
    let pairs: Vec<(&str, &str)> = r.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let head = request_head(r.method.clone(), &r.uri, &pairs);
    let config = r.config.clone().unwrap_or_else(config);
    let mut call = match ServerCall::accept(&config, now, &head, lookup) {
        Ok(call) => call,
        Err(rejection) => {
            let code = rejection.status().map(|s| s.code());
            let http = rejection.http_status().as_u16();
            let (head, body) = rejection.into_parts();
            return Served {
                expect: Expect::Reject(http, code),
                head,
                body: body.to_vec(),
                trailers: None,
                failed_early: false,
            };
        }
    };
    let mut events = Vec::new();
    let mut failed_early = false;
    for chunk in chunks(&r.body, chunking) {
        call.handle_data(now, chunk);
        events.extend(std::iter::from_fn(|| call.poll_event()));
        failed_early |= events.iter().any(|e| matches!(e, ServerEvent::Failed(_)));
    }
    call.handle_end(None);
    events.extend(std::iter::from_fn(|| call.poll_event()));
    let failures: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, ServerEvent::Failed(_)))
        .collect();
    assert!(failures.len() <= 1, "{}: {events:?}", r.name);
    let messages = events
        .iter()
        .filter(|e| matches!(e, ServerEvent::Message(_)))
        .count();
    if failures.is_empty() {
        // Answer so there is a response to read back.
        assert_eq!(events.last(), Some(&ServerEvent::RequestEnd), "{}", r.name);
        call.send_message(Bytes::new()).unwrap();
        call.finish(Ok(http::HeaderMap::new())).unwrap();
    }
    let outputs: Vec<ServerOutput> = std::iter::from_fn(|| call.poll_output()).collect();
    let mut head = None;
    let mut body = Vec::new();
    let mut trailers = None;
    for out in outputs {
        match out {
            ServerOutput::Head(h) => head = Some(h),
            ServerOutput::Data(d) => body.extend_from_slice(&d),
            ServerOutput::Trailers(t) => trailers = Some(t),
            ServerOutput::End => {}
            other => panic!("unexpected: {other:?}"),
        }
    }
    let head = head.expect("a response head");
    let expect = match failures.first() {
        Some(ServerEvent::Failed(status)) => Expect::Fail(status.code(), head.status.as_u16()),
        _ => Expect::Accept(messages),
    };
    Served {
        expect,
        head,
        body,
        trailers,
        failed_early,
    }
}

/// Reads a response back with a client of `wire`.
fn client_code(wire: Wire, spec: MethodSpec, codec: Codec, served: &Served) -> Option<Code> {
    let now = Clock::new().now();
    let config = wire.client_config(codec);
    let mut client = ClientCall::start(&config, now, &spec, CallOptions::new()).unwrap();
    if spec.kind.streams_requests() {
        client.close_send().unwrap();
    } else {
        client.send_message(now, Bytes::new()).unwrap();
    }
    client.handle_response_head(served.head.clone());
    client.handle_data(Bytes::from(served.body.clone()));
    if let Some(t) = &served.trailers {
        client.handle_trailers(t.clone());
    }
    client.handle_end();
    match std::iter::from_fn(|| client.poll_event()).last() {
        Some(ClientEvent::Finished(Err(status))) => Some(status.code()),
        Some(ClientEvent::Finished(Ok(_))) => None,
        other => panic!("client did not finish: {other:?}"),
    }
}

fn check(rows: &[Req]) {
    for r in rows {
        for chunking in [Chunking::Whole, Chunking::Fixed(1), Chunking::Random(5)] {
            let what = format!("{} ({chunking:?})", r.name);
            let served = serve(r, chunking);
            assert_eq!(
                served.expect,
                r.expect,
                "{what}: {:?} {:?}",
                served.head,
                String::from_utf8_lossy(&served.body)
            );
            for (name, contains) in &r.must_have {
                let value = served
                    .head
                    .headers
                    .get(*name)
                    .unwrap_or_else(|| panic!("{what}: no {name}"));
                assert!(
                    value.to_str().unwrap().contains(contains.as_str()),
                    "{what}: {name}: {value:?}"
                );
            }
            // A client reading the response sees the same code (plain HTTP rejections map
            // through the HTTP status table).
            let wire_code = match &r.expect {
                Expect::Reject(_, Some(code)) | Expect::Fail(code, _) => Some(*code),
                Expect::Reject(http, None) => Some(
                    Code::from_http_status(http::StatusCode::from_u16(*http).unwrap()).unwrap(),
                ),
                Expect::Accept(_) => None,
            };
            let (wire, spec, codec) =
                r.reader
                    .clone()
                    .unwrap_or((Wire::Connect, UNARY, Codec::Proto));
            assert_eq!(
                client_code(wire, spec, codec, &served),
                wire_code,
                "{what}: read back"
            );
        }
    }
}

fn m() -> Vec<u8> {
    msg(Codec::Proto, "request").to_vec()
}

#[test]
fn admission_rejections() {
    let strict = config().require_connect_protocol_header(true);
    let rows =
        vec![
            // Unknown methods.
            post("gRPC unknown method", UNARY, "application/grpc")
                .path("/t.S/Nope")
                .rejects(200, Some(Code::Unimplemented))
                .with("grpc-status", "12"),
            post(
                "gRPC-Web unknown method",
                UNARY,
                "application/grpc-web+proto",
            )
            .path("/t.S/Nope")
            .rejects(200, Some(Code::Unimplemented))
            .with("grpc-status", "12"),
            post(
                "gRPC-Web text unknown method",
                UNARY,
                "application/grpc-web-text",
            )
            .path("/t.S/Nope")
            .rejects(200, Some(Code::Unimplemented)),
            post("Connect unknown method", UNARY, "application/proto")
                .path("/t.S/Nope")
                .rejects(404, Some(Code::Unimplemented))
                .with("content-type", "application/json"),
            post(
                "Connect streaming unknown method",
                CLIENT_STREAM,
                "application/connect+proto",
            )
            .path("/nope")
            .rejects(404, Some(Code::Unimplemented)),
            post("non-RPC unknown path", UNARY, "text/html")
                .path("/index.html")
                .rejects(404, None),
            // Content types.
            post("text/plain", UNARY, "text/plain")
                .rejects(415, None)
                .with(
                    "accept-post",
                    "application/proto, application/json, application/grpc",
                ),
            post("no content type", UNARY, "")
                .rejects(415, None)
                .with("accept-post", "application/grpc-web-text+json"),
            post("application/xml", UNARY, "application/xml").rejects(415, None),
            post("gRPC unknown codec", UNARY, "application/grpc+thrift").rejects(415, None),
            post(
                "Connect streaming unknown codec",
                CLIENT_STREAM,
                "application/connect+xml",
            )
            .rejects(415, None)
            .with("accept-post", "application/connect+proto"),
            post(
                "streaming type on unary",
                UNARY,
                "application/connect+proto",
            )
            .rejects(415, None),
            post(
                "unary type on client stream",
                CLIENT_STREAM,
                "application/proto",
            )
            .rejects(415, None),
            post(
                "unary type on server stream",
                SERVER_STREAM,
                "application/json",
            )
            .rejects(415, None),
            post("disabled protocol", UNARY, "application/grpc")
                .config(config().protocols(true, false, true))
                .rejects(415, None),
            // HTTP methods.
            post("PUT", UNARY, "application/proto")
                .verb(Method::PUT)
                .rejects(405, None)
                .with("allow", "POST"),
            post("PUT on a GET method", GET, "application/proto")
                .verb(Method::PUT)
                .rejects(405, None)
                .with("allow", "GET, POST"),
            post("DELETE gRPC", UNARY, "application/grpc")
                .verb(Method::DELETE)
                .rejects(405, None),
            get(
                "GET on a method with side effects",
                "encoding=proto&message=",
            )
            .path("/t.S/Unary?encoding=proto")
            .rejects(405, None)
            .with("allow", "POST"),
            get("GET on a streaming method", "encoding=proto")
                .path("/t.S/SS?encoding=proto")
                .rejects(405, None),
            get(
                "GET with Connect disabled",
                "encoding=proto&base64=1&message=",
            )
            .config(config().protocols(false, true, true))
            .rejects(405, None),
            // Connect protocol version.
            post("bad connect-protocol-version", UNARY, "application/proto")
                .header("connect-protocol-version", "2")
                .rejects(400, Some(Code::InvalidArgument)),
            post("bad version, streaming", BIDI, "application/connect+proto")
                .header("connect-protocol-version", "v1")
                .rejects(200, Some(Code::InvalidArgument)),
            post("missing required version", UNARY, "application/json")
                .config(strict.clone())
                .rejects(400, Some(Code::InvalidArgument)),
            post("present required version", UNARY, "application/json")
                .config(strict.clone())
                .header("connect-protocol-version", "1")
                .body("\"\"")
                .accepts(1),
            post("gRPC needs no version", UNARY, "application/grpc")
                .config(strict.clone())
                .body(env(0, &m()))
                .accepts(1),
            get(
                "bad GET version",
                "connect=v2&encoding=proto&base64=1&message=",
            )
            .rejects(400, Some(Code::InvalidArgument)),
            get(
                "missing required GET version",
                "encoding=proto&base64=1&message=",
            )
            .config(strict.clone())
            .rejects(400, Some(Code::InvalidArgument)),
            get(
                "present required GET version",
                "connect=v1&encoding=proto&base64=1&message=",
            )
            .config(strict)
            .accepts(1),
            // GET queries.
            get("GET unknown codec", "encoding=xml&message=x").rejects(415, None),
            get("GET without codec", "message=x").rejects(415, None),
            get("GET without query", "")
                .path("/t.S/Get")
                .rejects(415, None),
            get("GET bad base64", "encoding=proto&base64=1&message=!!!")
                .rejects(400, Some(Code::InvalidArgument)),
            get(
                "GET percent-encoded binary",
                "encoding=proto&message=%FF%FE",
            )
            .rejects(400, Some(Code::InvalidArgument)),
            get(
                "GET unknown compression",
                "encoding=proto&base64=1&compression=lz4&message=AA",
            )
            .rejects(501, Some(Code::Unimplemented)),
            get(
                "GET base64 ignored unless 1",
                "encoding=json&base64=true&message=%22x%22",
            )
            .accepts(1),
            get(
                "GET padded base64",
                "encoding=proto&base64=1&message=CgA%3D",
            )
            .accepts(1),
            // Unknown compression.
            post("Connect unary unknown encoding", UNARY, "application/proto")
                .header("content-encoding", "lz4")
                .rejects(501, Some(Code::Unimplemented)),
            post(
                "Connect streaming unknown encoding",
                BIDI,
                "application/connect+proto",
            )
            .header("connect-content-encoding", "lz4")
            .rejects(200, Some(Code::Unimplemented)),
            post("gRPC unknown encoding", UNARY, "application/grpc")
                .header("grpc-encoding", "lz4")
                .rejects(200, Some(Code::Unimplemented))
                .with("grpc-accept-encoding", "gzip")
                .with("grpc-message", "identity"),
            post("gRPC-Web unknown encoding", UNARY, "application/grpc-web")
                .header("grpc-encoding", "lz4")
                .rejects(200, Some(Code::Unimplemented))
                .with("grpc-accept-encoding", "zstd"),
            post(
                "encoding names are case-insensitive",
                UNARY,
                "application/grpc",
            )
            .header("grpc-encoding", "GZIP")
            .body(env(0, &m()))
            .accepts(1),
            post("identity is always accepted", UNARY, "application/grpc")
                .config(config().compression(
                    connect_proto_core::compression::CompressionRegistry::identity_only(),
                ))
                .header("grpc-encoding", "identity")
                .body(env(0, &m()))
                .accepts(1),
        ];
    check(&rows);
}

#[test]
fn unknown_compression_message_lists_the_supported_encodings() {
    let r = post("m", UNARY, "application/proto").header("content-encoding", "lz4");
    let served = serve(&r, Chunking::Whole);
    let body: serde_json::Value = serde_json::from_slice(&served.body).unwrap();
    let supported =
        connect_proto_core::compression::CompressionRegistry::default().supported_list();
    assert!(supported.ends_with("identity"));
    let message = body["message"].as_str().unwrap();
    assert!(message.contains(&supported), "{message}");
    assert!(message.contains("\"lz4\""), "{message}");
}

#[test]
fn invalid_timeouts_on_both_headers() {
    let mut rows = Vec::new();
    for bad in ["12345678901", "-1", "", "1s", "+5", " 5", "1.5", "0x10"] {
        rows.push(
            post(
                &format!("connect-timeout-ms {bad:?}"),
                UNARY,
                "application/proto",
            )
            .header("connect-timeout-ms", bad)
            .rejects(400, Some(Code::InvalidArgument)),
        );
        rows.push(
            post(
                &format!("streaming connect-timeout-ms {bad:?}"),
                BIDI,
                "application/connect+proto",
            )
            .header("connect-timeout-ms", bad)
            .rejects(200, Some(Code::InvalidArgument)),
        );
    }
    for bad in [
        "123456789S",
        "1x",
        "-1S",
        "",
        "S",
        "1",
        "1.5S",
        " 1S",
        "1s",
        "1 S",
    ] {
        rows.push(
            post(&format!("grpc-timeout {bad:?}"), UNARY, "application/grpc")
                .header("grpc-timeout", bad)
                .rejects(200, Some(Code::InvalidArgument))
                .with("grpc-status", "3")
                .with("grpc-message", "timeout"),
        );
        rows.push(
            post(
                &format!("gRPC-Web grpc-timeout {bad:?}"),
                BIDI,
                "application/grpc-web",
            )
            .header("grpc-timeout", bad)
            .rejects(200, Some(Code::InvalidArgument)),
        );
    }
    // The other protocol's header is ignored, and the extremes are valid.
    rows.push(
        post("gRPC ignores connect-timeout-ms", UNARY, "application/grpc")
            .header("connect-timeout-ms", "bad")
            .body(env(0, &m()))
            .accepts(1),
    );
    rows.push(
        post("Connect ignores grpc-timeout", UNARY, "application/proto")
            .header("grpc-timeout", "bad")
            .body(m())
            .accepts(1),
    );
    rows.push(
        post("ten-digit milliseconds", UNARY, "application/proto")
            .header("connect-timeout-ms", "9999999999")
            .body(m())
            .accepts(1),
    );
    rows.push(
        post("eight-digit hours", UNARY, "application/grpc")
            .header("grpc-timeout", "99999999H")
            .body(env(0, &m()))
            .accepts(1),
    );
    check(&rows);
}

#[test]
fn request_body_rejections() {
    let ok = env(0, &m());
    let g = "application/grpc";
    let rows = vec![
        post("gRPC ok", UNARY, g).body(&ok).accepts(1),
        post("gRPC unary without message", UNARY, g).fails(Code::Unimplemented),
        post("gRPC server stream without message", SERVER_STREAM, g).fails(Code::Unimplemented),
        post("gRPC unary with two messages", UNARY, g)
            .body([ok.clone(), ok.clone()].concat())
            .fails(Code::Unimplemented),
        post(
            "Connect stream without message",
            SERVER_STREAM,
            "application/connect+proto",
        )
        .fails(Code::Unimplemented),
        post(
            "Connect stream with two messages",
            SERVER_STREAM,
            "application/connect+proto",
        )
        .body([ok.clone(), ok.clone()].concat())
        .fails(Code::Unimplemented),
        post("client stream without messages is fine", CLIENT_STREAM, g).accepts(0),
        post("truncated envelope", CLIENT_STREAM, g)
            .body(&ok[..ok.len() - 1])
            .fails(Code::InvalidArgument),
        post("truncated prefix", CLIENT_STREAM, g)
            .body([ok.clone(), vec![0, 0, 0]].concat())
            .fails(Code::InvalidArgument),
        post("oversized length prefix", CLIENT_STREAM, g)
            .body([0u8, 0, 1, 0, 1])
            .fails(Code::ResourceExhausted),
        post("u32::MAX length prefix", CLIENT_STREAM, g)
            .body([0u8, 0xff, 0xff, 0xff, 0xff])
            .fails(Code::ResourceExhausted),
        post("reserved flag", CLIENT_STREAM, g)
            .body(env(0x04, &m()))
            .fails(Code::InvalidArgument),
        post("end-stream flag in a gRPC request", CLIENT_STREAM, g)
            .body(env(0x02, b"{}"))
            .fails(Code::InvalidArgument),
        post(
            "trailer flag in a gRPC-Web request",
            CLIENT_STREAM,
            "application/grpc-web",
        )
        .body(env(0x80, b"grpc-status: 0"))
        .fails(Code::InvalidArgument),
        post(
            "end-stream flag in a Connect request",
            CLIENT_STREAM,
            "application/connect+proto",
        )
        .body(env(0x02, b"{}"))
        .fails(Code::InvalidArgument),
        post("compressed without encoding", CLIENT_STREAM, g)
            .body(env(1, &m()))
            .fails(Code::Internal),
        post("compressed with identity", CLIENT_STREAM, g)
            .header("grpc-encoding", "identity")
            .body(env(1, &m()))
            .fails(Code::Internal),
        post(
            "Connect compressed without encoding",
            CLIENT_STREAM,
            "application/connect+proto",
        )
        .body(env(1, &m()))
        .fails(Code::Internal),
        post("Connect unary over the limit", UNARY, "application/proto")
            .body(vec![0u8; LIMIT + 1])
            .fails(Code::ResourceExhausted),
        post("Connect unary at the limit", UNARY, "application/proto")
            .body(vec![0u8; LIMIT])
            .accepts(1),
        post("Connect unary empty body", UNARY, "application/proto").accepts(1),
        post(
            "Connect unary empty body is not decompressed",
            UNARY,
            "application/json",
        )
        .header("content-encoding", "gzip")
        .accepts(1),
        get(
            "GET message over the limit",
            &format!(
                "encoding=proto&base64=1&message={}",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(vec![0u8; 1001])
            ),
        )
        .config(ServerConfig::new().max_receive_message_size(1000))
        .fails(Code::ResourceExhausted),
        post(
            "gRPC-Web text not base64",
            CLIENT_STREAM,
            "application/grpc-web-text",
        )
        .body("!!!!")
        .fails(Code::InvalidArgument),
        post(
            "gRPC-Web text cut inside a group",
            CLIENT_STREAM,
            "application/grpc-web-text",
        )
        .body(&encode_text_chunk(&ok)[..7])
        .fails(Code::InvalidArgument),
        post("gRPC-Web text ok", UNARY, "application/grpc-web-text")
            .body(encode_text_chunk(&ok))
            .accepts(1),
        post(
            "gRPC-Web text padded per chunk",
            CLIENT_STREAM,
            "application/grpc-web-text",
        )
        .body(
            [
                encode_text_chunk(&ok[..4]),
                encode_text_chunk(&ok[4..]),
                encode_text_chunk(&ok),
            ]
            .concat(),
        )
        .accepts(2),
    ];
    check(&rows);
}

#[test]
fn decompression_bombs_and_corrupt_data_for_every_algorithm() {
    let mut rows = Vec::new();
    for alg in algorithms() {
        let name = alg.name();
        let bomb = alg.compress(&vec![0u8; 4 * LIMIT]).unwrap().to_vec();
        assert!(
            bomb.len() < 16 * 1024,
            "{name} bomb is {} bytes",
            bomb.len()
        );
        let full = alg.compress(&m().repeat(100)).unwrap();
        let corrupt = full[..full.len() / 2].to_vec();
        let good = alg.compress(&m()).unwrap().to_vec();
        rows.push(
            post(&format!("gRPC {name} bomb"), UNARY, "application/grpc")
                .header("grpc-encoding", name)
                .body(env(1, &bomb))
                .fails(Code::ResourceExhausted),
        );
        rows.push(
            post(
                &format!("gRPC-Web {name} bomb"),
                CLIENT_STREAM,
                "application/grpc-web",
            )
            .header("grpc-encoding", name)
            .body(env(1, &bomb))
            .fails(Code::ResourceExhausted),
        );
        rows.push(
            post(
                &format!("Connect streaming {name} bomb"),
                BIDI,
                "application/connect+proto",
            )
            .header("connect-content-encoding", name)
            .body(env(1, &bomb))
            .fails(Code::ResourceExhausted),
        );
        rows.push(
            post(
                &format!("Connect unary {name} bomb"),
                UNARY,
                "application/proto",
            )
            .header("content-encoding", name)
            .body(&bomb)
            .fails(Code::ResourceExhausted),
        );
        let query = format!(
            "encoding=proto&base64=1&compression={name}&message={}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bomb)
        );
        rows.push(get(&format!("GET {name} bomb"), &query).fails(Code::ResourceExhausted));
        rows.push(
            post(&format!("gRPC {name} corrupt"), UNARY, "application/grpc")
                .header("grpc-encoding", name)
                .body(env(1, &corrupt))
                .fails(Code::InvalidArgument),
        );
        rows.push(
            post(
                &format!("Connect unary {name} corrupt"),
                UNARY,
                "application/proto",
            )
            .header("content-encoding", name)
            .body(&corrupt)
            .fails(Code::InvalidArgument),
        );
        rows.push(
            post(&format!("gRPC {name} garbage"), UNARY, "application/grpc")
                .header("grpc-encoding", name)
                .body(env(1, b"\xff\xfe\xfd not compressed at all"))
                .fails(Code::InvalidArgument),
        );
        rows.push(
            post(&format!("gRPC {name} ok"), UNARY, "application/grpc")
                .header("grpc-encoding", name)
                .body(env(1, &good))
                .accepts(1),
        );
        rows.push(
            post(
                &format!("Connect unary {name} ok"),
                UNARY,
                "application/proto",
            )
            .header("content-encoding", name)
            .body(&good)
            .accepts(1),
        );
    }
    check(&rows);
}

#[test]
fn oversized_length_prefix_fails_before_the_payload_arrives() {
    for (content_type, spec) in [
        ("application/grpc", CLIENT_STREAM),
        ("application/grpc-web", CLIENT_STREAM),
        ("application/connect+proto", CLIENT_STREAM),
        ("application/grpc", UNARY),
    ] {
        let now = Clock::new().now();
        let head = request_head(Method::POST, spec.path(), &[("content-type", content_type)]);
        let mut call = ServerCall::accept(&config(), now, &head, lookup).unwrap();
        let len = (LIMIT as u32 + 1).to_be_bytes();
        // Four bytes of the prefix: nothing is decided yet.
        call.handle_data(now, Bytes::copy_from_slice(&[0, len[0], len[1], len[2]]));
        assert!(call.poll_event().is_none(), "{content_type}");
        // The fifth byte completes the prefix: the call fails at once, before any payload.
        call.handle_data(now, Bytes::copy_from_slice(&[len[3]]));
        let events: Vec<_> = std::iter::from_fn(|| call.poll_event()).collect();
        assert!(
            matches!(&events[..], [ServerEvent::Failed(s)] if s.code() == Code::ResourceExhausted),
            "{content_type}: {events:?}"
        );
        assert!(call.is_finished() && call.is_request_done());
        assert!(matches!(call.poll_output(), Some(ServerOutput::Head(_))));
        // Further input is ignored.
        call.handle_data(now, Bytes::from(vec![0u8; 1000]));
        call.handle_end(None);
        assert!(call.poll_event().is_none());
    }
    // A Connect unary body fails as soon as it grows past the limit.
    let now = Clock::new().now();
    let head = request_head(
        Method::POST,
        UNARY.path(),
        &[("content-type", "application/proto")],
    );
    let mut call = ServerCall::accept(&config(), now, &head, lookup).unwrap();
    call.handle_data(now, Bytes::from(vec![0u8; LIMIT]));
    assert!(call.poll_event().is_none());
    call.handle_data(now, Bytes::from_static(b"x"));
    assert!(
        matches!(call.poll_event(), Some(ServerEvent::Failed(s)) if s.code() == Code::ResourceExhausted)
    );
}

#[test]
fn failures_surface_as_soon_as_the_bytes_show_them() {
    // Early detection: everything wrong inside the body is reported without waiting for its end.
    let rows = [
        post("reserved flag", CLIENT_STREAM, "application/grpc").body(env(0x04, &m())),
        post("extra message", UNARY, "application/grpc")
            .body([env(0, &m()), env(0, &m())].concat()),
        post("bad base64", CLIENT_STREAM, "application/grpc-web-text").body("!!!!"),
    ];
    for r in &rows {
        assert!(serve(r, Chunking::Whole).failed_early, "{}", r.name);
    }
}

#[test]
fn server_reset_and_timeout_while_reading() {
    let now = Clock::new().now();
    let head = request_head(
        Method::POST,
        BIDI.path(),
        &[
            ("content-type", "application/grpc"),
            ("grpc-timeout", "10m"),
        ],
    );
    let mut call = ServerCall::accept(&config(), now, &head, lookup).unwrap();
    assert_eq!(
        call.poll_timeout(),
        Some(now + std::time::Duration::from_millis(10))
    );
    call.handle_timeout(now + std::time::Duration::from_millis(9));
    assert!(call.poll_event().is_none());
    call.handle_timeout(now + std::time::Duration::from_millis(10));
    assert!(
        matches!(call.poll_event(), Some(ServerEvent::Failed(s)) if s.code() == Code::DeadlineExceeded)
    );
    let outputs: Vec<_> = std::iter::from_fn(|| call.poll_output()).collect();
    let [ServerOutput::Head(h), ServerOutput::End] = &outputs[..] else {
        panic!("{outputs:?}")
    };
    assert_eq!(h.headers.get("grpc-status").unwrap(), "4");
    // A reset after the end changes nothing.
    call.handle_reset();
    assert!(call.poll_event().is_none());
}
