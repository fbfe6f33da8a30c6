//! Decoders not covered by the unit tests, each fed whole, one byte at a time, pseudo-randomly
//! split, and with trailing bytes: gRPC-Web trailer frames inside a response, Connect
//! end-stream messages, Connect unary bodies, GET queries, `grpc-status-details-bin`, and
//! gRPC-Web text bodies.

// These tests exercise gzip and zstd (not a default feature): `cargo test -p connect-proto-core
// --features zstd`, or `cargo test --workspace`, where other members turn it on.
#![cfg(all(feature = "gzip", feature = "zstd"))]

mod common;

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, Method};

use common::*;
use connect_proto_core::codec::Codec;
use connect_proto_core::error::Rule;
use connect_proto_core::internal::connect::error_json::{
    decode_end_stream, decode_error_body, encode_end_stream,
};
use connect_proto_core::internal::connect::get::{
    GetQueryError, decode_get_query, encode_get_query,
};
use connect_proto_core::internal::grpc::status_proto::{decode_rpc_status, encode_rpc_status};
use connect_proto_core::internal::grpc::{decode_status, encode_status};
use connect_proto_core::internal::grpc_web::{
    TextDecoder, decode_trailer_block, encode_text_chunk, encode_trailer_block,
};
use connect_proto_core::{
    CallOptions, ClientCall, ClientEvent, Code, ErrorDetail, Idempotency, MethodKind, MethodSpec,
    ServerCall, ServerConfig, ServerEvent, Status,
};

const UNARY: MethodSpec = MethodSpec::new("/d.S/Unary", MethodKind::Unary, Idempotency::Unknown);
const GET: MethodSpec = MethodSpec::new("/d.S/Get", MethodKind::Unary, Idempotency::NoSideEffects);
const SERVER_STREAM: MethodSpec =
    MethodSpec::new("/d.S/SS", MethodKind::ServerStreaming, Idempotency::Unknown);
const CLIENT_STREAM: MethodSpec =
    MethodSpec::new("/d.S/CS", MethodKind::ClientStreaming, Idempotency::Unknown);

/// Feeds a response into a fresh client call; returns its events.
fn client_reads(
    wire: Wire,
    spec: MethodSpec,
    head: &[(&str, &str)],
    body: &[u8],
    trailers: Option<HeaderMap>,
    chunking: Chunking,
) -> Vec<ClientEvent> {
    let now = Clock::new().now();
    let mut client = ClientCall::start(
        &wire.client_config(Codec::Proto),
        now,
        &spec,
        CallOptions::new(),
    )
    .unwrap();
    if spec.kind.streams_requests() {
        client.close_send().unwrap();
    } else {
        client
            .send_message(now, Bytes::from_static(b"\x0a\x01q"))
            .unwrap();
    }
    client.handle_response_head(response_head(200, head));
    for chunk in chunks(body, chunking) {
        client.handle_data(chunk);
    }
    if let Some(t) = trailers {
        client.handle_trailers(t);
    }
    client.handle_end();
    std::iter::from_fn(|| client.poll_event()).collect()
}

/// Feeds a request into a fresh server call; returns its events.
fn server_reads(head: http::request::Parts, body: &[u8], chunking: Chunking) -> Vec<ServerEvent> {
    let now = Clock::new().now();
    let lookup = |p: &str| {
        [UNARY, GET, SERVER_STREAM, CLIENT_STREAM]
            .into_iter()
            .find(|m| m.path == p)
    };
    let mut call = ServerCall::accept(&ServerConfig::new(), now, &head, lookup).unwrap();
    let mut events = Vec::new();
    for chunk in chunks(body, chunking) {
        call.handle_data(now, chunk);
        events.extend(std::iter::from_fn(|| call.poll_event()));
    }
    call.handle_end(None);
    events.extend(std::iter::from_fn(|| call.poll_event()));
    events
}

fn last_status(events: &[ClientEvent]) -> &Result<HeaderMap, Status> {
    match events.last() {
        Some(ClientEvent::Finished(outcome)) => outcome,
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// gRPC-Web trailer frames inside a response.

#[test]
fn grpc_web_trailer_frame_in_a_response() {
    let message = msg(Codec::Proto, "m");
    let block =
        "grpc-status: 7\r\ngrpc-message: no%20way\r\nx-multi: a\r\nx-multi: b\r\nx-bin: AAEC\r\n";
    let body = [env(0, &message), env(0x80, block.as_bytes())].concat();
    for wire in [Wire::GrpcWeb, Wire::GrpcWebText] {
        let body = if wire.text() {
            encode_text_chunk(&body).to_vec()
        } else {
            body.clone()
        };
        let ct = if wire.text() {
            "application/grpc-web-text"
        } else {
            "application/grpc-web"
        };
        for chunking in SPLITS {
            let events = client_reads(
                wire,
                SERVER_STREAM,
                &[("content-type", ct)],
                &body,
                None,
                chunking,
            );
            assert_eq!(
                events[1],
                ClientEvent::Message(message.clone()),
                "{chunking:?}"
            );
            let expected = Status::new(Code::PermissionDenied, "no way").with_metadata(headers(&[
                ("x-multi", "a"),
                ("x-multi", "b"),
                ("x-bin", "AAEC"),
            ]));
            assert_eq!(
                last_status(&events),
                &Err(expected),
                "{wire:?} {chunking:?}"
            );
            // With trailing bytes after the frame: a protocol error, whatever the split.
            let mut trailing = [env(0, &message), env(0x80, block.as_bytes()), vec![0]].concat();
            if wire.text() {
                trailing = encode_text_chunk(&trailing).to_vec();
            }
            let events = client_reads(
                wire,
                SERVER_STREAM,
                &[("content-type", ct)],
                &trailing,
                None,
                chunking,
            );
            assert_eq!(
                last_status(&events).as_ref().unwrap_err().code(),
                Code::Internal,
                "{wire:?} {chunking:?}"
            );
        }
    }
}

#[test]
fn trailer_block_forms() {
    // Lenient forms a server may send: LF-only lines, mixed case, no space, no final newline.
    let block = b"Grpc-Status:0\nX-A:  1 \nx-a:2";
    let t = decode_trailer_block(block, usize::MAX).unwrap();
    assert_eq!(t.get("grpc-status").unwrap(), "0");
    assert_eq!(
        t.get_all("x-a").iter().collect::<Vec<_>>(),
        [" 1 ".trim(), "2"]
    );
    // Encode → decode is the identity on header maps, in any order of insertion.
    let mut rng = Rng::new(5);
    for _ in 0..50 {
        let mut map = HeaderMap::new();
        for _ in 0..rng.below(6) {
            let name = format!("x-{}", rng.below(4));
            let len = 1 + rng.below(20) as usize;
            let value = rng.text(len).trim().replace(' ', "-");
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        assert_eq!(
            decode_trailer_block(&encode_trailer_block(&map), usize::MAX).unwrap(),
            map
        );
    }
    // Every prefix of a block decodes or fails cleanly.
    let full = encode_trailer_block(&headers(&[
        ("grpc-status", "13"),
        ("grpc-message", "x%20y"),
    ]));
    for cut in 0..=full.len() {
        let _ = decode_trailer_block(&full[..cut], usize::MAX);
    }
    assert!(matches!(
        decode_trailer_block(b"grpc-status: 0\r\n\x00junk", usize::MAX),
        Err(Rule::InvalidTrailers(_))
    ));
}

// ---------------------------------------------------------------------------------------------
// Connect end-stream messages.

#[test]
fn connect_end_stream_in_a_response() {
    let message = msg(Codec::Proto, "m");
    let mut trailers = HeaderMap::new();
    trailers.append("x-cost", "1".parse().unwrap());
    trailers.append("x-cost", "2".parse().unwrap());
    let status = Status::new(Code::ResourceExhausted, "quota \u{2603}")
        .with_detail(ErrorDetail::from_message(&string_value("why")))
        .with_metadata(trailers.clone());
    for (outcome, end) in [
        (Ok(trailers.clone()), encode_end_stream(None, &trailers)),
        (
            Err(status.clone()),
            encode_end_stream(Some(&status), &trailers),
        ),
    ] {
        let body = [env(0, &message), env(0x02, &end)].concat();
        for chunking in SPLITS {
            let events = client_reads(
                Wire::Connect,
                SERVER_STREAM,
                &[("content-type", "application/connect+proto")],
                &body,
                None,
                chunking,
            );
            assert_eq!(events[1], ClientEvent::Message(message.clone()));
            assert_eq!(last_status(&events), &outcome, "{chunking:?}");
            let trailing = [body.clone(), vec![0, 0, 0, 0, 0]].concat();
            let events = client_reads(
                Wire::Connect,
                SERVER_STREAM,
                &[("content-type", "application/connect+proto")],
                &trailing,
                None,
                chunking,
            );
            assert_eq!(
                last_status(&events).as_ref().unwrap_err().code(),
                Code::Internal,
                "{chunking:?}"
            );
        }
    }
}

#[test]
fn end_stream_json_forms() {
    // Whitespace and unknown keys are fine; trailing bytes inside the payload are not JSON.
    assert_eq!(
        decode_end_stream(b" { \"x\" : 1 } ", usize::MAX)
            .unwrap()
            .error,
        None
    );
    assert!(decode_end_stream(b"{} x", usize::MAX).is_err());
    assert!(decode_end_stream(b"{}{}", usize::MAX).is_err());
    let with_error = br#"{"error":{"code":"unknown","details":[]},"metadata":{}}"#;
    assert_eq!(
        decode_end_stream(with_error, usize::MAX)
            .unwrap()
            .error
            .unwrap()
            .code(),
        Code::Unknown
    );
    // Every prefix of a valid end-stream fails cleanly except the whole.
    let status = Status::new(Code::Internal, "m")
        .with_detail(ErrorDetail::new("a.B", Bytes::from_static(b"\x01")));
    let full = encode_end_stream(Some(&status), &headers(&[("k", "v")]));
    for cut in 0..full.len() {
        assert!(
            decode_end_stream(&full[..cut], usize::MAX).is_err(),
            "{cut}"
        );
    }
    assert!(decode_end_stream(&full, usize::MAX).is_ok());
    // Error bodies likewise.
    let body = connect_proto_core::internal::connect::error_json::encode_error_body(&status);
    for cut in 0..body.len() {
        assert!(decode_error_body(&body[..cut]).is_err(), "{cut}");
    }
    assert_eq!(decode_error_body(&body).unwrap(), status);
}

// ---------------------------------------------------------------------------------------------
// Connect unary bodies.

#[test]
fn connect_unary_bodies_in_requests_and_responses() {
    let mut rng = Rng::new(17);
    for len in [0usize, 1, 5, 6, 300, 70_000] {
        let body = rng.bytes(len);
        for chunking in SPLITS {
            if len > 1000 && matches!(chunking, Chunking::Fixed(_)) {
                continue;
            }
            // Server side: the whole body is the message, trailing bytes included (no framing).
            let head = request_head(
                Method::POST,
                UNARY.path(),
                &[("content-type", "application/proto")],
            );
            let events = server_reads(head, &body, chunking);
            assert_eq!(
                events,
                vec![
                    ServerEvent::Message(Bytes::from(body.clone())),
                    ServerEvent::RequestEnd
                ]
            );
            // Client side.
            let events = client_reads(
                Wire::Connect,
                UNARY,
                &[("content-type", "application/proto")],
                &body,
                None,
                chunking,
            );
            assert_eq!(
                events[1],
                ClientEvent::Message(Bytes::from(body.clone())),
                "{len} {chunking:?}"
            );
            assert!(last_status(&events).is_ok());
        }
    }
}

#[test]
fn compressed_unary_bodies_with_trailing_bytes() {
    let message = msg(Codec::Proto, &"z".repeat(2000));
    for alg in algorithms() {
        let compressed = alg.compress(&message).unwrap();
        for chunking in [Chunking::Whole, Chunking::Fixed(1), Chunking::Random(4)] {
            let head = || {
                request_head(
                    Method::POST,
                    UNARY.path(),
                    &[
                        ("content-type", "application/proto"),
                        ("content-encoding", alg.name()),
                    ],
                )
            };
            let events = server_reads(head(), &compressed, chunking);
            assert_eq!(
                events,
                vec![
                    ServerEvent::Message(message.clone()),
                    ServerEvent::RequestEnd
                ],
                "{}",
                alg.name()
            );
            let events = client_reads(
                Wire::Connect,
                UNARY,
                &[
                    ("content-type", "application/proto"),
                    ("content-encoding", alg.name()),
                ],
                &compressed,
                None,
                chunking,
            );
            assert_eq!(
                events[1],
                ClientEvent::Message(message.clone()),
                "{}",
                alg.name()
            );
            // Junk after the compressed stream: depending on the format it is ignored (raw
            // DEFLATE ends at its final block) or rejected; it never changes the message.
            let junk = [&compressed[..], b"\x00junk"].concat();
            match &server_reads(head(), &junk, chunking)[..] {
                [ServerEvent::Message(m), ServerEvent::RequestEnd] => {
                    assert_eq!(m, &message, "{}", alg.name())
                }
                [ServerEvent::Failed(s)] => {
                    assert_eq!(s.code(), Code::InvalidArgument, "{}", alg.name())
                }
                other => panic!("{}: {other:?}", alg.name()),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// GET queries.

#[test]
fn get_queries_in_any_order_with_unknown_and_trailing_parameters() {
    let message = msg(Codec::Proto, "the request \u{e9}");
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&message);
    let b64_padded = base64::engine::general_purpose::URL_SAFE
        .encode(&message)
        .replace('=', "%3D");
    let queries = [
        format!("connect=v1&encoding=proto&base64=1&message={b64}"),
        format!("message={b64}&base64=1&encoding=proto&connect=v1"),
        format!("encoding=proto&message={b64}&base64=1&x=1&&y&"),
        format!("encoding=proto&base64=1&message={b64_padded}"),
        format!("encoding=proto&base64=1&message={b64}&message=ignored&encoding=json"),
        format!("%65ncoding=proto&base64=%31&message={b64}"),
    ];
    for query in &queries {
        let decoded = decode_get_query(query).unwrap();
        assert_eq!(decoded.message, message, "{query}");
        assert_eq!(decoded.encoding.as_deref(), Some("proto"), "{query}");
        let head = request_head(Method::GET, &format!("{}?{query}", GET.path()), &[]);
        assert_eq!(
            server_reads(head, b"", Chunking::Whole),
            vec![
                ServerEvent::Message(message.clone()),
                ServerEvent::RequestEnd
            ],
            "{query}"
        );
    }
    // Text messages: percent-encoding with '+' for spaces, no base64.
    let json = br#"{"a": "b c+d&e=f"}"#;
    let q = encode_get_query(Codec::Json, None, json);
    assert_eq!(
        decode_get_query(&q).unwrap().message,
        Bytes::from_static(json)
    );
    assert_eq!(
        decode_get_query("encoding=json&message=%7B+%7D")
            .unwrap()
            .message,
        Bytes::from_static(b"{ }")
    );
    // Trailing bytes after a base64 message are part of it, so they must be base64 too.
    assert_eq!(
        decode_get_query(&format!("encoding=proto&base64=1&message={b64}!")),
        Err(GetQueryError::InvalidBase64)
    );
    // Every prefix of an encoded query decodes or fails cleanly; the whole one round-trips.
    let gz = algorithm("gzip").compress(&message).unwrap();
    let full = encode_get_query(Codec::Proto, Some("gzip"), &gz);
    for cut in 0..full.len() {
        let _ = decode_get_query(&full[..cut]);
    }
    let decoded = decode_get_query(&full).unwrap();
    assert_eq!(decoded.compression.as_deref(), Some("gzip"));
    assert_eq!(decoded.message, gz);
}

// ---------------------------------------------------------------------------------------------
// grpc-status-details-bin.

#[test]
fn grpc_status_details_bin_forms() {
    let details = vec![
        ErrorDetail::from_message(&string_value("one")),
        ErrorDetail::new("x.Empty", Bytes::new()),
        ErrorDetail::new("type.googleapis.com/a.B", Bytes::from_static(b"\xff\x00")),
    ];
    let proto = encode_rpc_status(3, "msg", &details);
    let std = base64::engine::general_purpose::STANDARD;
    let url = base64::engine::general_purpose::URL_SAFE;
    let forms = [
        std.encode(&proto),
        std.encode(&proto).trim_end_matches('=').to_owned(),
        url.encode(&proto),
        url.encode(&proto).trim_end_matches('=').to_owned(),
    ];
    for form in forms {
        let trailers = headers(&[("grpc-status", "3"), ("grpc-status-details-bin", &form)]);
        let status = decode_status(&trailers).unwrap().unwrap();
        assert_eq!(status.details(), &details[..], "{form}");
        assert_eq!(
            status.message(),
            "msg",
            "message comes from the details when grpc-message is absent"
        );
        // Through a client, whole and byte by byte.
        for chunking in [Chunking::Whole, Chunking::Fixed(1)] {
            let events = client_reads(
                Wire::Grpc,
                UNARY,
                &[("content-type", "application/grpc")],
                b"",
                Some(trailers.clone()),
                chunking,
            );
            assert_eq!(
                last_status(&events).as_ref().unwrap_err().details(),
                &details[..]
            );
        }
    }
    // grpc-message wins over the details' message.
    let trailers = headers(&[
        ("grpc-status", "3"),
        ("grpc-message", "outer"),
        ("grpc-status-details-bin", &std.encode(&proto)),
    ]);
    assert_eq!(
        decode_status(&trailers).unwrap().unwrap().message(),
        "outer"
    );
    // Trailing bytes after the Status: a well-formed unknown field is skipped, junk is rejected.
    let mut extra = proto.clone();
    extra.extend_from_slice(&[0x78, 0x01]); // field 15, varint 1
    let trailers = headers(&[
        ("grpc-status", "3"),
        ("grpc-status-details-bin", &std.encode(&extra)),
    ]);
    assert_eq!(
        decode_status(&trailers).unwrap().unwrap().details().len(),
        3
    );
    let mut junk = proto.clone();
    junk.push(0xff);
    let trailers = headers(&[
        ("grpc-status", "3"),
        ("grpc-status-details-bin", &std.encode(&junk)),
    ]);
    assert!(matches!(
        decode_status(&trailers),
        Err(Rule::InvalidTrailers(_))
    ));
    // Every truncation decodes or fails cleanly; none silently yields all details.
    for cut in 0..proto.len() {
        if let Ok(partial) = decode_rpc_status(&proto[..cut]) {
            assert!(partial.details.len() < 3, "{cut}");
        }
    }
    // Encoding through the server side and back is the identity.
    let status = Status::new(Code::Aborted, "a").with_detail(details[0].clone());
    let mut out = HeaderMap::new();
    encode_status(Some(&status), &HeaderMap::new(), &mut out);
    assert_eq!(decode_status(&out).unwrap().unwrap(), status);
}

// ---------------------------------------------------------------------------------------------
// gRPC-Web text bodies.

#[test]
fn text_decoder_any_split_and_trailing_characters() {
    let mut rng = Rng::new(23);
    for _ in 0..100 {
        // A sender that flushes at arbitrary points pads each flush independently.
        let len = rng.below(200) as usize;
        let payload = rng.bytes(len);
        let mut body = Vec::new();
        let mut i = 0;
        while i < payload.len() {
            let n = 1 + rng.below(20) as usize;
            let end = (i + n).min(payload.len());
            body.extend_from_slice(&encode_text_chunk(&payload[i..end]));
            if rng.below(5) == 0 {
                body.extend_from_slice(b"\r\n");
            }
            i = end;
        }
        for chunking in [
            Chunking::Whole,
            Chunking::Fixed(1),
            Chunking::Fixed(3),
            Chunking::Random(rng.next()),
        ] {
            let mut decoder = TextDecoder::new();
            let mut out = Vec::new();
            for chunk in chunks(&body, chunking) {
                out.extend_from_slice(&decoder.decode(&chunk).unwrap());
            }
            decoder.finish().unwrap();
            assert_eq!(out, payload);
        }
        // A dangling partial group at the end is an error at finish.
        if !body.is_empty() {
            let mut decoder = TextDecoder::new();
            let mut with_trailing = body.clone();
            with_trailing.extend_from_slice(b"QQ");
            let _ = decoder.decode(&with_trailing).unwrap();
            assert_eq!(decoder.finish(), Err(Rule::InvalidBase64));
        }
    }
    // Characters outside the alphabet fail wherever they sit.
    for bad in [
        &b"AA-A"[..],
        b"AA_A",
        b"AAA\0",
        b"A=AA",
        b"====",
        b"AAAA====",
        b"AAA=A",
    ] {
        let mut decoder = TextDecoder::new();
        let result = decoder.decode(bad).and_then(|_| decoder.finish());
        assert_eq!(
            result,
            Err(Rule::InvalidBase64),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn text_requests_byte_by_byte() {
    let messages: Vec<Bytes> = (0..4)
        .map(|i| msg(Codec::Proto, &"t".repeat(i * 7)))
        .collect();
    let mut body = Vec::new();
    for m in &messages {
        body.extend_from_slice(&encode_text_chunk(&env(0, m)));
    }
    for chunking in SPLITS {
        let head = request_head(
            Method::POST,
            CLIENT_STREAM.path(),
            &[("content-type", "application/grpc-web-text")],
        );
        let mut expected: Vec<ServerEvent> =
            messages.iter().cloned().map(ServerEvent::Message).collect();
        expected.push(ServerEvent::RequestEnd);
        assert_eq!(
            server_reads(head, &body, chunking),
            expected,
            "{chunking:?}"
        );
        // Trailing characters that do not complete a group fail the request.
        let head = request_head(
            Method::POST,
            CLIENT_STREAM.path(),
            &[("content-type", "application/grpc-web-text")],
        );
        let events = server_reads(head, &[&body[..], b"AA"].concat(), chunking);
        assert!(
            matches!(events.last(), Some(ServerEvent::Failed(s)) if s.code() == Code::InvalidArgument),
            "{events:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// gRPC-Web calls read either gRPC-Web form of their codec.

#[test]
fn grpc_web_calls_read_the_other_form_too() {
    let message = msg(Codec::Proto, "m");
    let block = "grpc-status: 0\r\n";
    let binary = [env(0, &message), env(0x80, block.as_bytes())].concat();
    let text = encode_text_chunk(&binary).to_vec();
    // (request form, response content type, response body)
    let cases = [
        (Wire::GrpcWebText, "application/grpc-web+proto", &binary),
        (Wire::GrpcWebText, "application/grpc-web-text+proto", &text),
        (Wire::GrpcWeb, "application/grpc-web-text", &text),
        (Wire::GrpcWeb, "application/grpc-web", &binary),
    ];
    for (wire, ct, body) in cases {
        for chunking in SPLITS {
            let events = client_reads(
                wire,
                SERVER_STREAM,
                &[("content-type", ct)],
                body,
                None,
                chunking,
            );
            let messages: Vec<_> = events
                .iter()
                .filter_map(|e| match e {
                    ClientEvent::Message(m) => Some(m.clone()),
                    _ => None,
                })
                .collect();
            assert_eq!(
                messages,
                std::slice::from_ref(&message),
                "{wire:?} {ct} {chunking:?}"
            );
            assert!(
                last_status(&events).is_ok(),
                "{wire:?} {ct} {chunking:?}: {events:?}"
            );
        }
        // With trailing bytes after the trailer frame: an error, whatever the form.
        let mut trailing = body.to_vec();
        trailing.extend_from_slice(if ct.contains("text") { b"AAAA" } else { b"\0" });
        let events = client_reads(
            wire,
            SERVER_STREAM,
            &[("content-type", ct)],
            &trailing,
            None,
            Chunking::Whole,
        );
        assert!(
            last_status(&events).is_err(),
            "{wire:?} {ct}: trailing bytes accepted"
        );
    }
    // Another codec in either form is still wrong.
    let events = client_reads(
        Wire::GrpcWebText,
        SERVER_STREAM,
        &[("content-type", "application/grpc-web+json")],
        &binary,
        None,
        Chunking::Whole,
    );
    assert_eq!(
        last_status(&events).as_ref().unwrap_err().code(),
        connect_proto_core::Code::Internal
    );
}

#[test]
fn grpc_web_text_requests_ask_for_text_responses() {
    let now = Clock::new().now();
    for (wire, accept) in [
        (Wire::GrpcWebText, Some("application/grpc-web-text+proto")),
        (Wire::GrpcWeb, None),
    ] {
        let mut client = ClientCall::start(
            &wire.client_config(Codec::Proto),
            now,
            &UNARY,
            CallOptions::new(),
        )
        .unwrap();
        client
            .send_message(now, Bytes::from_static(b"\x0a\x01q"))
            .unwrap();
        let head = std::iter::from_fn(|| client.poll_output())
            .find_map(|output| match output {
                connect_proto_core::ClientOutput::Head(head) => Some(head),
                _ => None,
            })
            .expect("a request head");
        assert_eq!(
            head.headers.get("accept").map(|v| v.to_str().unwrap()),
            accept,
            "{wire:?}"
        );
    }
}
