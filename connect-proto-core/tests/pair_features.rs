//! Pair-harness scenarios beyond the plain matrix: Connect GET (and its POST fallback),
//! compression thresholds, large messages, deadlines on both sides, cancellation, resets,
//! trailers-only responses, limits, pass-through and API usage errors.

// These tests exercise gzip and zstd (not a default feature): `cargo test -p connect-proto-core
// --features zstd`, or `cargo test --workspace`, where other members turn it on.
#![cfg(all(feature = "gzip", feature = "zstd"))]

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method};

use common::*;
use connect_proto_core::codec::Codec;
use connect_proto_core::compression::{Compression, CompressionRegistry};
use connect_proto_core::internal::envelope::FLAG_COMPRESSED;
use connect_proto_core::{
    CallOptions, ClientCall, ClientConfig, ClientEvent, Code, Idempotency, MethodKind, MethodSpec,
    ServerConfig, ServerEvent, ServerOutput, Status, UsageError,
};

const UNARY: MethodSpec = MethodSpec::new(
    "/test.v1.Svc/Unary",
    MethodKind::Unary,
    Idempotency::Unknown,
);
const GET: MethodSpec = MethodSpec::new(
    "/test.v1.Svc/Get",
    MethodKind::Unary,
    Idempotency::NoSideEffects,
);
const CLIENT_STREAM: MethodSpec = MethodSpec::new(
    "/test.v1.Svc/ClientStream",
    MethodKind::ClientStreaming,
    Idempotency::Unknown,
);
const SERVER_STREAM: MethodSpec = MethodSpec::new(
    "/test.v1.Svc/ServerStream",
    MethodKind::ServerStreaming,
    Idempotency::Unknown,
);
const BIDI: MethodSpec = MethodSpec::new(
    "/test.v1.Svc/Bidi",
    MethodKind::BidiStreaming,
    Idempotency::Unknown,
);

fn compressions() -> Vec<Option<Arc<dyn Compression>>> {
    let mut out: Vec<Option<Arc<dyn Compression>>> = vec![None];
    out.extend(algorithms().into_iter().map(Some));
    out
}

fn ok_unary(p: &mut Pair, response: Bytes, trailers: HeaderMap) {
    p.server_send(response);
    p.server_finish(Ok(trailers));
}

// ---------------------------------------------------------------------------------------------
// Connect GET.

#[test]
fn connect_get_every_codec_compression_and_chunking() {
    for codec in [Codec::Proto, Codec::Json] {
        for compression in compressions() {
            for chunking in CHUNKINGS {
                let what = format!(
                    "{codec} {:?} {chunking:?}",
                    compression.as_ref().map(|c| c.name())
                );
                let config = Wire::Connect
                    .client_config(codec)
                    .send_compression(compression.clone())
                    .compress_min_bytes(16);
                let mut p = Pair::new(
                    &config,
                    ServerConfig::new().compress_min_bytes(16),
                    GET,
                    chunking,
                );
                // Nothing goes out before the message: the GET head carries it.
                assert!(p.request_head.is_none());
                let request = msg(
                    codec,
                    "a query that is long enough to be compressed & \u{e9}scaped",
                );
                p.client_send(request.clone());

                let head = p.request_head.clone().unwrap();
                assert_eq!(head.method, Method::GET, "{what}");
                assert!(p.request_body.is_empty(), "{what}");
                assert!(!head.headers.contains_key("content-type"), "{what}");
                assert!(
                    !head.headers.contains_key("connect-protocol-version"),
                    "{what}"
                );
                assert_eq!(head.uri.path(), "/prefix/test.v1.Svc/Get");
                let query = head.uri.query().unwrap().to_owned();
                assert!(
                    query.starts_with(&format!("connect=v1&encoding={codec}")),
                    "{what}: {query}"
                );
                let base64 = codec == Codec::Proto || compression.is_some();
                assert_eq!(query.contains("&base64=1"), base64, "{what}: {query}");
                match &compression {
                    Some(alg) => assert!(
                        query.contains(&format!("&compression={}", alg.name())),
                        "{query}"
                    ),
                    None => assert!(!query.contains("compression="), "{query}"),
                }
                // The server had the whole request at admission.
                assert_eq!(
                    p.take_server_events(),
                    vec![
                        ServerEvent::Message(request.clone()),
                        ServerEvent::RequestEnd
                    ],
                    "{what}"
                );
                assert_eq!(
                    p.server().request_compression(),
                    compression.as_ref().map(|c| c.name())
                );
                let response = msg(codec, "the answer");
                p.server()
                    .response_headers_mut()
                    .unwrap()
                    .insert("cache-control", "max-age=60".parse().unwrap());
                ok_unary(&mut p, response.clone(), headers(&[("x-t", "1")]));
                assert_eq!(
                    p.client_events,
                    vec![
                        ClientEvent::Headers(headers(&[("cache-control", "max-age=60")])),
                        ClientEvent::Message(response),
                        ClientEvent::Finished(Ok(headers(&[("x-t", "1")]))),
                    ],
                    "{what}"
                );
            }
        }
    }
}

#[test]
fn connect_get_of_an_empty_message() {
    for codec in [Codec::Proto, Codec::Json] {
        let mut p = Pair::new(
            &Wire::Connect.client_config(codec),
            ServerConfig::new(),
            GET,
            Chunking::Whole,
        );
        let empty = msg(codec, "");
        p.client_send(empty.clone());
        assert_eq!(p.request_head.as_ref().unwrap().method, Method::GET);
        assert_eq!(
            p.take_server_events(),
            vec![ServerEvent::Message(empty), ServerEvent::RequestEnd]
        );
    }
}

#[test]
fn connect_get_falls_back_to_post_when_the_url_is_too_long() {
    let small = msg(Codec::Proto, "short");
    let long = msg(Codec::Proto, &"x".repeat(200));
    for (message, expected) in [(small, Method::GET), (long, Method::POST)] {
        let config = Wire::Connect
            .client_config(Codec::Proto)
            .max_get_url_bytes(120);
        let mut p = Pair::new(&config, ServerConfig::new(), GET, Chunking::Fixed(3));
        p.client_send(message.clone());
        let head = p.request_head.clone().unwrap();
        assert_eq!(head.method, expected);
        assert!(head.uri.to_string().len() <= 120 || expected == Method::POST);
        if expected == Method::POST {
            assert_eq!(
                head.headers.get("content-type").unwrap(),
                "application/proto"
            );
            assert_eq!(head.uri.query(), None);
            assert_eq!(p.request_body, message.to_vec());
        }
        assert_eq!(
            p.take_server_events(),
            vec![ServerEvent::Message(message), ServerEvent::RequestEnd]
        );
        ok_unary(&mut p, msg(Codec::Proto, "ok"), HeaderMap::new());
        assert!(p.outcome().is_ok());
    }
}

#[test]
fn connect_get_can_be_disabled_per_client_and_per_call() {
    let config = Wire::Connect.client_config(Codec::Json).use_get(false);
    let p = {
        let mut p = Pair::new(&config, ServerConfig::new(), GET, Chunking::Whole);
        p.client_send(msg(Codec::Json, "a"));
        p
    };
    assert_eq!(p.request_head.as_ref().unwrap().method, Method::POST);
    let config = Wire::Connect.client_config(Codec::Json);
    let mut p = Pair::start(
        &config,
        ServerConfig::new(),
        GET,
        CallOptions::new().use_get(false),
        Chunking::Whole,
        Chunking::Whole,
    );
    p.client_send(msg(Codec::Json, "a"));
    assert_eq!(p.request_head.as_ref().unwrap().method, Method::POST);
    // Methods with side effects never use GET, and neither do other protocols.
    for (wire, method) in [
        (Wire::Connect, UNARY),
        (Wire::Grpc, GET),
        (Wire::GrpcWeb, GET),
    ] {
        let mut p = Pair::new(
            &wire.client_config(Codec::Proto),
            ServerConfig::new(),
            method,
            Chunking::Whole,
        );
        p.client_send(msg(Codec::Proto, "a"));
        assert_eq!(
            p.request_head.as_ref().unwrap().method,
            Method::POST,
            "{wire:?}"
        );
    }
}

#[test]
fn connect_get_errors_and_timeouts_travel_in_headers() {
    let mut p = Pair::start(
        &Wire::Connect.client_config(Codec::Proto),
        ServerConfig::new(),
        GET,
        CallOptions::new().timeout(Duration::from_millis(1500)),
        Chunking::Whole,
        Chunking::Whole,
    );
    p.client_send(msg(Codec::Proto, "q"));
    assert_eq!(
        p.request_head
            .as_ref()
            .unwrap()
            .headers
            .get("connect-timeout-ms")
            .unwrap(),
        "1500"
    );
    assert_eq!(
        p.server().deadline(),
        Some(p.now() + Duration::from_millis(1500))
    );
    p.server_finish(Err(Status::new(Code::NotFound, "no such thing")));
    assert_eq!(p.response_head.as_ref().unwrap().status, 404);
    assert_eq!(
        p.outcome().as_ref().unwrap_err(),
        &Status::new(Code::NotFound, "no such thing")
    );
}

// ---------------------------------------------------------------------------------------------
// Compression thresholds and large messages.

#[test]
fn compress_min_bytes_is_an_inclusive_threshold_on_both_sides() {
    for wire in WIRES {
        let gzip = algorithm("gzip");
        let min = 40;
        let config = wire
            .client_config(Codec::Proto)
            .send_compression(Some(gzip.clone()))
            .compress_min_bytes(min);
        let server = ServerConfig::new().compress_min_bytes(min);
        let mut p = Pair::new(&config, server, BIDI, Chunking::Whole);
        let below = Bytes::from(vec![7u8; min - 1]);
        let at = Bytes::from(vec![7u8; min]);
        for m in [&below, &at, &Bytes::new()] {
            p.client_send(m.clone());
            p.server_send(m.clone());
        }
        p.client_close();
        p.server_finish(Ok(HeaderMap::new()));
        let flags =
            |envs: Vec<(u8, Bytes)>| envs.into_iter().map(|(f, _)| f).take(3).collect::<Vec<_>>();
        assert_eq!(
            flags(p.request_envelopes()),
            [0, FLAG_COMPRESSED, 0],
            "{wire:?}"
        );
        assert_eq!(
            flags(p.response_envelopes()),
            [0, FLAG_COMPRESSED, 0],
            "{wire:?}"
        );
        assert!(p.outcome().is_ok());
    }
    // Connect unary: the header is only present when the body is compressed.
    for (len, compressed) in [(39usize, false), (40, true)] {
        let config = Wire::Connect
            .client_config(Codec::Proto)
            .send_compression(Some(algorithm("gzip")))
            .compress_min_bytes(40);
        let mut p = Pair::new(
            &config,
            ServerConfig::new().compress_min_bytes(40),
            UNARY,
            Chunking::Whole,
        );
        p.client_send(Bytes::from(vec![1u8; len]));
        ok_unary(&mut p, Bytes::from(vec![2u8; len]), HeaderMap::new());
        let req = p.request_head.as_ref().unwrap();
        assert_eq!(
            req.headers.contains_key("content-encoding"),
            compressed,
            "{len}"
        );
        let resp = p.response_head.as_ref().unwrap();
        assert_eq!(
            resp.headers.get("content-encoding").is_some(),
            compressed,
            "{len}"
        );
        assert_eq!(
            p.client_events[1],
            ClientEvent::Message(Bytes::from(vec![2u8; len]))
        );
    }
}

#[test]
fn server_can_switch_response_compression_off_per_call() {
    let config = Wire::Grpc
        .client_config(Codec::Proto)
        .send_compression(Some(algorithm("gzip")))
        .compress_min_bytes(0);
    let mut p = Pair::new(
        &config,
        ServerConfig::new().compress_min_bytes(0),
        SERVER_STREAM,
        Chunking::Whole,
    );
    p.client_send(Bytes::from_static(b"\x0a\x01a"));
    assert_eq!(p.server().response_compression(), Some("gzip"));
    p.server().set_response_compression(None);
    p.server_send(Bytes::from(vec![5u8; 500]));
    p.server_finish(Ok(HeaderMap::new()));
    assert!(
        !p.response_head
            .as_ref()
            .unwrap()
            .headers
            .contains_key("grpc-encoding")
    );
    assert_eq!(p.response_envelopes()[0].0, 0);
    assert!(p.outcome().is_ok());
}

#[test]
fn large_messages_over_64_kib_in_every_protocol() {
    let mut rng = Rng::new(64);
    let big_request = msg(Codec::Proto, &rng.text(100 * 1024));
    let big_response = msg(Codec::Json, &rng.text(150 * 1024));
    assert!(big_request.len() > 64 * 1024);
    for wire in WIRES {
        for compression in [None, Some(algorithm("gzip")), Some(algorithm("zstd"))] {
            for chunking in [Chunking::Whole, Chunking::Random(11), Chunking::Fixed(4093)] {
                for (codec, message) in [(Codec::Proto, &big_request), (Codec::Json, &big_response)]
                {
                    let config = wire
                        .client_config(codec)
                        .send_compression(compression.clone());
                    let mut p = Pair::new(&config, ServerConfig::new(), BIDI, chunking);
                    p.client_send(message.clone());
                    p.client_send(message.clone());
                    p.client_close();
                    p.server_send(message.clone());
                    p.server_finish(Ok(HeaderMap::new()));
                    assert_eq!(
                        p.take_server_events(),
                        vec![
                            ServerEvent::Message(message.clone()),
                            ServerEvent::Message(message.clone()),
                            ServerEvent::RequestEnd
                        ]
                    );
                    assert_eq!(p.client_events[1], ClientEvent::Message(message.clone()));
                    assert!(p.outcome().is_ok(), "{wire:?} {chunking:?}");
                }
            }
        }
    }
    // And one byte at a time, once, for the unary Connect body.
    let config = Wire::Connect.client_config(Codec::Proto);
    let mut p = Pair::new(&config, ServerConfig::new(), UNARY, Chunking::Fixed(1));
    p.client_send(big_request.clone());
    ok_unary(&mut p, big_request.clone(), HeaderMap::new());
    assert_eq!(p.client_events[1], ClientEvent::Message(big_request));
}

#[test]
fn messages_at_the_receive_limit_pass_and_one_byte_more_fails() {
    for wire in WIRES {
        for compression in [None, Some(algorithm("gzip"))] {
            let limit = 1000;
            let config = wire
                .client_config(Codec::Proto)
                .send_compression(compression.clone())
                .compress_min_bytes(0);
            let server = ServerConfig::new().max_receive_message_size(limit);
            let mut p = Pair::new(&config, server.clone(), CLIENT_STREAM, Chunking::Random(5));
            p.client_send(Bytes::from(vec![1u8; limit]));
            assert_eq!(
                p.take_server_events(),
                vec![ServerEvent::Message(Bytes::from(vec![1u8; limit]))]
            );
            p.client_send(Bytes::from(vec![1u8; limit + 1]));
            let events = p.take_server_events();
            let [ServerEvent::Failed(status)] = &events[..] else {
                panic!("{wire:?}: {events:?}")
            };
            assert_eq!(status.code(), Code::ResourceExhausted, "{wire:?}");
            assert_eq!(
                p.outcome().as_ref().unwrap_err().code(),
                Code::ResourceExhausted,
                "{wire:?}"
            );
        }
    }
}

#[test]
fn client_receive_limit_fails_the_call_and_abandons_the_exchange() {
    for wire in WIRES {
        let options = CallOptions::new().max_receive_message_size(10);
        let config = wire.client_config(Codec::Proto);
        let mut p = Pair::start(
            &config,
            ServerConfig::new(),
            SERVER_STREAM,
            options,
            Chunking::Whole,
            Chunking::Whole,
        );
        p.client_send(Bytes::from_static(b"\x0a\x01a"));
        p.server_send(Bytes::from(vec![0u8; 10]));
        p.server_send(Bytes::from(vec![0u8; 11]));
        assert_eq!(
            finished_code(&p.client_events),
            Code::ResourceExhausted,
            "{wire:?}"
        );
        assert_eq!(
            p.client_events[1],
            ClientEvent::Message(Bytes::from(vec![0u8; 10]))
        );
        assert!(p.client_cancelled);
        // The cancel reached the server as a reset.
        let events = p.take_server_events();
        assert!(
            matches!(events.last(), Some(ServerEvent::Failed(s)) if s.code() == Code::Canceled),
            "{events:?}"
        );
        assert_eq!(
            p.server().send_message(Bytes::new()),
            Err(UsageError::AlreadyFinished)
        );
    }
}

#[test]
fn send_limits_are_usage_errors() {
    let config = Wire::Grpc
        .client_config(Codec::Proto)
        .max_send_message_size(Some(4));
    let mut p = Pair::new(
        &config,
        ServerConfig::new().max_send_message_size(Some(3)),
        BIDI,
        Chunking::Whole,
    );
    let now = p.now();
    assert_eq!(
        p.client.send_message(now, Bytes::from_static(b"12345")),
        Err(UsageError::MessageTooLarge { size: 5, limit: 4 })
    );
    assert_eq!(
        p.server().send_message(Bytes::from_static(b"1234")),
        Err(UsageError::MessageTooLarge { size: 4, limit: 3 })
    );
    // Neither attempt changed the call.
    p.client_send(Bytes::from_static(b"1234"));
    p.server_send(Bytes::from_static(b"123"));
    p.client_close();
    p.server_finish(Ok(HeaderMap::new()));
    assert!(p.outcome().is_ok());
}

// ---------------------------------------------------------------------------------------------
// Deadlines.

#[test]
fn timeouts_are_sent_and_become_server_deadlines() {
    let cases = [
        (Wire::Connect, "connect-timeout-ms", "1500"),
        (Wire::Grpc, "grpc-timeout", "1500000u"),
        (Wire::GrpcWeb, "grpc-timeout", "1500000u"),
        (Wire::GrpcWebText, "grpc-timeout", "1500000u"),
    ];
    for (wire, header, value) in cases {
        let options = CallOptions::new().timeout(Duration::from_millis(1500));
        let mut p = Pair::start(
            &wire.client_config(Codec::Proto),
            ServerConfig::new(),
            BIDI,
            options,
            Chunking::Whole,
            Chunking::Whole,
        );
        let start = p.now();
        assert_eq!(
            p.request_head
                .as_ref()
                .unwrap()
                .headers
                .get(header)
                .unwrap(),
            value
        );
        assert_eq!(
            p.client.poll_timeout(),
            Some(start + Duration::from_millis(1500))
        );
        assert_eq!(
            p.client.deadline(),
            Some(start + Duration::from_millis(1500))
        );
        assert_eq!(
            p.server().deadline(),
            Some(start + Duration::from_millis(1500))
        );
        assert_eq!(
            p.server().poll_timeout(),
            Some(start + Duration::from_millis(1500))
        );
        p.client_close();
        p.server_finish(Ok(HeaderMap::new()));
        assert_eq!(p.server().poll_timeout(), None);
        assert_eq!(p.client.poll_timeout(), None);
    }
    // The client's default timeout applies when the call sets none; the server clamps.
    let config = Wire::Grpc
        .client_config(Codec::Proto)
        .default_timeout(Some(Duration::from_secs(3600)));
    let server = ServerConfig::new().max_timeout(Some(Duration::from_millis(250)));
    let mut p = Pair::new(&config, server, BIDI, Chunking::Whole);
    assert_eq!(
        p.request_head
            .as_ref()
            .unwrap()
            .headers
            .get("grpc-timeout")
            .unwrap(),
        "3600000m"
    );
    let start = p.now();
    assert_eq!(
        p.server().deadline(),
        Some(start + Duration::from_millis(250))
    );
}

#[test]
fn server_deadline_expires_before_and_after_the_response_started() {
    for wire in WIRES {
        for started in [false, true] {
            let options = CallOptions::new().timeout(Duration::from_secs(1));
            let mut p = Pair::start(
                &wire.client_config(Codec::Proto),
                ServerConfig::new(),
                SERVER_STREAM,
                options,
                Chunking::Whole,
                Chunking::Whole,
            );
            p.client_send(Bytes::from_static(b"\x0a\x01a"));
            assert_eq!(p.take_server_events().len(), 2);
            if started {
                p.server_send(Bytes::from_static(b"\x0a\x01b"));
            }
            // Only the server's timer runs: one tick early nothing happens, then it fires.
            p.advance(Duration::from_millis(999), false, true);
            assert!(p.take_server_events().is_empty());
            p.advance(Duration::from_millis(1), false, true);
            let events = p.take_server_events();
            assert!(
                matches!(&events[..], [ServerEvent::Failed(s)] if s.code() == Code::DeadlineExceeded),
                "{wire:?}: {events:?}"
            );
            assert!(p.server().is_finished());
            let expected_messages = usize::from(started);
            assert_eq!(
                p.client_events.len(),
                2 + expected_messages,
                "{wire:?}: {:?}",
                p.client_events
            );
            let status = p.outcome().as_ref().unwrap_err();
            assert_eq!(status.code(), Code::DeadlineExceeded, "{wire:?}");
            assert!(!p.client_cancelled);
            // Later sends are refused.
            assert_eq!(
                p.server().send_message(Bytes::new()),
                Err(UsageError::AlreadyFinished)
            );
            assert_eq!(
                p.server().finish(Ok(HeaderMap::new())),
                Err(UsageError::AlreadyFinished)
            );
        }
    }
}

#[test]
fn client_deadline_expires_and_resets_the_server() {
    for wire in WIRES {
        for method in [UNARY, CLIENT_STREAM, SERVER_STREAM, BIDI] {
            let options = CallOptions::new().timeout(Duration::from_millis(20));
            let mut p = Pair::start(
                &wire.client_config(Codec::Proto),
                ServerConfig::new(),
                method.clone(),
                options,
                Chunking::Whole,
                Chunking::Whole,
            );
            p.client_send(Bytes::from_static(b"\x0a\x01a"));
            p.advance(Duration::from_millis(19), true, false);
            assert!(!p.client.is_finished());
            p.advance(Duration::from_millis(1), true, false);
            // No response head had arrived: the client synthesises an empty one.
            assert_eq!(
                p.client_events.len(),
                2,
                "{wire:?} {method:?}: {:?}",
                p.client_events
            );
            assert_eq!(p.client_events[0], ClientEvent::Headers(HeaderMap::new()));
            assert_eq!(finished_code(&p.client_events), Code::DeadlineExceeded);
            assert!(p.client_cancelled);
            let events = p.take_server_events();
            assert!(
                matches!(events.last(), Some(ServerEvent::Failed(s)) if s.code() == Code::Canceled),
                "{wire:?} {method:?}: {events:?}"
            );
            // Both timers are now disarmed.
            assert_eq!(p.client.poll_timeout(), None);
            assert_eq!(p.server().poll_timeout(), None);
        }
    }
}

#[test]
fn both_deadlines_at_once_give_deadline_exceeded_to_both() {
    for wire in WIRES {
        let options = CallOptions::new().timeout(Duration::from_secs(2));
        let mut p = Pair::start(
            &wire.client_config(Codec::Json),
            ServerConfig::new(),
            BIDI,
            options,
            Chunking::Fixed(2),
            Chunking::Fixed(2),
        );
        p.client_send(msg(Codec::Json, "a"));
        p.server_send(msg(Codec::Json, "b"));
        p.advance(Duration::from_secs(5), true, true);
        assert_eq!(finished_code(&p.client_events), Code::DeadlineExceeded);
        let events = p.take_server_events();
        assert!(
            matches!(events.last(), Some(ServerEvent::Failed(s)) if s.code() == Code::DeadlineExceeded),
            "{events:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Cancellation and resets.

#[test]
fn client_cancel_mid_stream() {
    for wire in WIRES {
        let mut p = Pair::new(
            &wire.client_config(Codec::Proto),
            ServerConfig::new(),
            BIDI,
            Chunking::Random(2),
        );
        p.server_headers(&headers(&[("x-h", "1")]));
        p.client_send(Bytes::from_static(b"\x0a\x01a"));
        p.server_send(Bytes::from_static(b"\x0a\x01b"));
        p.client_cancel();
        assert_eq!(
            p.client_events[..2],
            [
                ClientEvent::Headers(headers(&[("x-h", "1")])),
                ClientEvent::Message(Bytes::from_static(b"\x0a\x01b"))
            ]
        );
        assert_eq!(finished_code(&p.client_events), Code::Canceled);
        assert!(p.client_cancelled);
        assert_eq!(
            p.take_server_events(),
            vec![
                ServerEvent::Message(Bytes::from_static(b"\x0a\x01a")),
                ServerEvent::Failed(Status::new(Code::Canceled, "the client reset the stream")),
            ]
        );
        // Nothing more is produced or accepted.
        let now = p.now();
        assert_eq!(
            p.client.send_message(now, Bytes::new()),
            Err(UsageError::AlreadyFinished)
        );
        assert!(p.client.close_send().is_ok());
        assert!(p.client.poll_output().is_none());
        assert_eq!(
            p.server().send_message(Bytes::new()),
            Err(UsageError::AlreadyFinished)
        );
        assert!(p.server().poll_output().is_none());
        // Cancelling twice is harmless.
        p.client_cancel();
        assert_eq!(p.client_events.len(), 3);
    }
}

#[test]
fn client_cancel_before_anything_was_sent() {
    let mut p = Pair::new(
        &Wire::Connect.client_config(Codec::Proto),
        ServerConfig::new(),
        UNARY,
        Chunking::Whole,
    );
    p.client_cancel();
    assert_eq!(
        p.client_events,
        vec![
            ClientEvent::Headers(HeaderMap::new()),
            ClientEvent::Finished(Err(Status::new(Code::Canceled, "the call was cancelled")))
        ]
    );
    assert!(p.server.is_none());
}

#[test]
fn server_resets_map_http2_error_codes() {
    let table = [
        (None, Code::Unavailable),
        (Some(0x0), Code::Internal),
        (Some(0x1), Code::Internal),
        (Some(0x2), Code::Internal),
        (Some(0x7), Code::Unavailable),
        (Some(0x8), Code::Canceled),
        (Some(0xb), Code::ResourceExhausted),
        (Some(0xc), Code::PermissionDenied),
    ];
    for wire in WIRES {
        for (h2, code) in table {
            let mut p = Pair::new(
                &wire.client_config(Codec::Proto),
                ServerConfig::new(),
                BIDI,
                Chunking::Whole,
            );
            p.server_send(Bytes::from_static(b"\x0a\x01b"));
            p.server_reset(h2);
            assert_eq!(finished_code(&p.client_events), code, "{wire:?} {h2:?}");
            assert_eq!(
                p.client_events[1],
                ClientEvent::Message(Bytes::from_static(b"\x0a\x01b"))
            );
            // The stream is gone already: no Cancel output.
            assert!(!p.client_cancelled);
        }
    }
}

#[test]
fn transport_errors_are_unavailable() {
    let mut p = Pair::new(
        &Wire::Grpc.client_config(Codec::Proto),
        ServerConfig::new(),
        BIDI,
        Chunking::Whole,
    );
    p.client.handle_transport_error("connection refused");
    p.pump();
    assert_eq!(
        p.outcome().as_ref().unwrap_err(),
        &Status::new(Code::Unavailable, "transport failed: connection refused")
    );
}

// ---------------------------------------------------------------------------------------------
// Trailers-only and half-duplex.

#[test]
fn grpc_trailers_only_responses() {
    for wire in [Wire::Grpc, Wire::GrpcWeb, Wire::GrpcWebText] {
        // An immediate error: one head, no body, no trailers.
        let mut p = Pair::new(
            &wire.client_config(Codec::Proto),
            ServerConfig::new(),
            SERVER_STREAM,
            Chunking::Whole,
        );
        p.client_send(Bytes::from_static(b"\x0a\x01a"));
        let now = p.now();
        p.server()
            .finish(Err(Status::new(Code::NotFound, "nope")))
            .unwrap();
        let outputs: Vec<ServerOutput> = std::iter::from_fn(|| p.server().poll_output()).collect();
        let [ServerOutput::Head(head), ServerOutput::End] = &outputs[..] else {
            panic!("{wire:?}: {outputs:?}")
        };
        assert_eq!(head.status, 200);
        assert_eq!(head.headers.get("grpc-status").unwrap(), "5");
        assert_eq!(head.headers.get("grpc-message").unwrap(), "nope");
        let mut client = ClientCall::start(
            &wire.client_config(Codec::Proto),
            now,
            &SERVER_STREAM,
            CallOptions::new(),
        )
        .unwrap();
        client
            .send_message(now, Bytes::from_static(b"\x0a\x01a"))
            .unwrap();
        client.handle_response_head(head.clone());
        client.handle_end();
        let events: Vec<_> = std::iter::from_fn(|| client.poll_event()).collect();
        assert_eq!(
            events,
            vec![
                ClientEvent::Headers(HeaderMap::new()),
                ClientEvent::Finished(Err(Status::new(Code::NotFound, "nope")))
            ]
        );

        // A server stream that succeeds with no messages: gRPC sends trailers-only; gRPC-Web a
        // head and the trailer frame.
        let mut p = Pair::new(
            &wire.client_config(Codec::Proto),
            ServerConfig::new(),
            SERVER_STREAM,
            Chunking::Fixed(1),
        );
        p.client_send(Bytes::from_static(b"\x0a\x01a"));
        p.server_finish(Ok(headers(&[("x-t", "v")])));
        assert_eq!(
            p.client_events,
            vec![
                ClientEvent::Headers(HeaderMap::new()),
                ClientEvent::Finished(Ok(headers(&[("x-t", "v")])))
            ],
            "{wire:?}"
        );
        if wire == Wire::Grpc {
            assert!(p.response_body.is_empty());
            assert_eq!(
                p.response_head
                    .as_ref()
                    .unwrap()
                    .headers
                    .get("grpc-status")
                    .unwrap(),
                "0"
            );
        } else {
            assert!(!p.response_body.is_empty());
        }
    }
}

#[test]
fn half_duplex_bidi_and_streams_without_messages() {
    for wire in WIRES {
        let mut p = Pair::new(
            &wire.client_config(Codec::Json),
            ServerConfig::new(),
            BIDI,
            Chunking::Whole,
        );
        for i in 0..5 {
            p.client_send(msg(Codec::Json, &format!("m{i}")));
        }
        p.client_close();
        assert_eq!(p.take_server_events().len(), 6);
        for i in 0..5 {
            p.server_send(msg(Codec::Json, &format!("r{i}")));
        }
        p.server_finish(Ok(HeaderMap::new()));
        assert_eq!(p.client_events.len(), 7, "{wire:?}");
        let texts: Vec<String> = p.client_events[1..6]
            .iter()
            .map(|e| match e {
                ClientEvent::Message(m) => unmsg(Codec::Json, m),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(texts, ["r0", "r1", "r2", "r3", "r4"]);

        // A client stream with zero messages is legal; so is a bidi with none either way.
        let mut p = Pair::new(
            &wire.client_config(Codec::Proto),
            ServerConfig::new(),
            BIDI,
            Chunking::Whole,
        );
        p.client_close();
        assert_eq!(p.take_server_events(), vec![ServerEvent::RequestEnd]);
        p.server_finish(Ok(HeaderMap::new()));
        assert_eq!(
            p.client_events,
            vec![
                ClientEvent::Headers(HeaderMap::new()),
                ClientEvent::Finished(Ok(HeaderMap::new()))
            ]
        );
    }
}

#[test]
fn server_responds_before_the_request_ends() {
    // Full duplex: the server finishes while the client is still sending.
    for wire in WIRES {
        let mut p = Pair::new(
            &wire.client_config(Codec::Proto),
            ServerConfig::new(),
            CLIENT_STREAM,
            Chunking::Whole,
        );
        p.client_send(Bytes::from_static(b"\x0a\x01a"));
        p.server_send(Bytes::from_static(b"\x0a\x01z"));
        p.server_finish(Ok(HeaderMap::new()));
        assert!(p.outcome().is_ok(), "{wire:?}: {:?}", p.client_events);
        // Once the outcome is known the client sends nothing more; closing is a no-op.
        let now = p.now();
        assert_eq!(
            p.client.send_message(now, Bytes::from_static(b"\x0a\x01b")),
            Err(UsageError::AlreadyFinished)
        );
        assert!(p.client.close_send().is_ok());
        assert!(p.client.poll_output().is_none());
        assert_eq!(
            p.take_server_events(),
            vec![ServerEvent::Message(Bytes::from_static(b"\x0a\x01a"))],
            "{wire:?}"
        );
        assert!(p.server().is_finished() && !p.server().is_request_done());
    }
}

// ---------------------------------------------------------------------------------------------
// Pass-through and usage errors.

#[test]
fn pass_through_delivers_still_compressed_request_payloads() {
    let gzip = algorithm("gzip");
    let config = Wire::Grpc
        .client_config(Codec::Proto)
        .send_compression(Some(gzip.clone()))
        .compress_min_bytes(0);
    let mut p = Pair::new(
        &config,
        ServerConfig::new(),
        CLIENT_STREAM,
        Chunking::Fixed(3),
    );
    p.server().set_pass_through(true);
    assert_eq!(p.server().request_compression(), Some("gzip"));
    let message = Bytes::from(vec![9u8; 300]);
    p.client_send(message.clone());
    let events = p.take_server_events();
    let [ServerEvent::CompressedMessage(raw)] = &events[..] else {
        panic!("{events:?}")
    };
    assert_ne!(raw, &message);
    assert_eq!(gzip.decompress(raw, 1000).unwrap(), message);
    assert_eq!(p.server().decompress_message(raw.clone()).unwrap(), message);
}

#[test]
fn api_usage_errors() {
    let now = Clock::new().now();
    // Client: unary sides carry exactly one message.
    let config = Wire::Connect.client_config(Codec::Proto);
    let mut client = ClientCall::start(&config, now, &UNARY, CallOptions::new()).unwrap();
    assert_eq!(client.close_send(), Err(UsageError::MissingUnaryMessage));
    client.send_message(now, Bytes::new()).unwrap();
    assert_eq!(
        client.send_message(now, Bytes::new()),
        Err(UsageError::SecondUnaryMessage)
    );
    assert!(client.close_send().is_ok());
    let mut stream = ClientCall::start(&config, now, &CLIENT_STREAM, CallOptions::new()).unwrap();
    stream.close_send().unwrap();
    assert_eq!(
        stream.send_message(now, Bytes::new()),
        Err(UsageError::SendClosed)
    );
    // An invalid base URI path is reported, not panicked on.
    let bad = ClientConfig::new(http::Uri::from_static("http://h/"))
        .protocol(connect_proto_core::Protocol::Grpc);
    let weird = MethodSpec::new("/a b/c", MethodKind::Unary, Idempotency::Unknown);
    assert!(matches!(
        ClientCall::start(&bad, now, &weird, CallOptions::new()),
        Err(UsageError::InvalidRequest(_))
    ));

    // Server: a second unary response; finishing a unary call without its message.
    for wire in WIRES {
        let mut p = Pair::new(
            &wire.client_config(Codec::Proto),
            ServerConfig::new(),
            UNARY,
            Chunking::Whole,
        );
        p.client_send(Bytes::from_static(b"\x0a\x01a"));
        assert_eq!(
            p.server().finish(Ok(HeaderMap::new())),
            Err(UsageError::MissingUnaryMessage)
        );
        p.pump();
        // The wire is never left open: the call ended with `internal`.
        assert_eq!(finished_code(&p.client_events), Code::Internal, "{wire:?}");
        let events = p.take_server_events();
        assert!(
            matches!(events.last(), Some(ServerEvent::Failed(s)) if s.code() == Code::Internal),
            "{events:?}"
        );

        let mut p = Pair::new(
            &wire.client_config(Codec::Proto),
            ServerConfig::new(),
            UNARY,
            Chunking::Whole,
        );
        p.client_send(Bytes::from_static(b"\x0a\x01a"));
        p.server().send_message(Bytes::from_static(b"1")).unwrap();
        assert_eq!(
            p.server().send_message(Bytes::from_static(b"2")),
            Err(UsageError::SecondUnaryMessage)
        );
        p.server().finish(Ok(HeaderMap::new())).unwrap();
        p.pump();
        assert_eq!(
            p.client_events[1],
            ClientEvent::Message(Bytes::from_static(b"1"))
        );
        assert!(p.outcome().is_ok());
    }
}

#[test]
fn request_and_response_metadata_round_trip() {
    for wire in WIRES {
        let mut defaults = HeaderMap::new();
        defaults.insert("x-default", "d".parse().unwrap());
        let config = wire.client_config(Codec::Proto).default_headers(defaults);
        let options = CallOptions::new()
            .header(
                http::HeaderName::from_static("x-call"),
                "c1".parse().unwrap(),
            )
            .header(
                http::HeaderName::from_static("x-call"),
                "c2".parse().unwrap(),
            )
            .header(
                http::HeaderName::from_static("x-call-bin"),
                "AAEC".parse().unwrap(),
            );
        let mut p = Pair::start(
            &config,
            ServerConfig::new(),
            SERVER_STREAM,
            options,
            Chunking::Whole,
            Chunking::Whole,
        );
        p.client_send(Bytes::from_static(b"\x0a\x01a"));
        let h = &p.request_head.as_ref().unwrap().headers;
        assert_eq!(h.get("x-default").unwrap(), "d");
        assert_eq!(h.get_all("x-call").iter().collect::<Vec<_>>(), ["c1", "c2"]);
        assert_eq!(h.get("x-call-bin").unwrap(), "AAEC");
        // Protocol headers set by the application never leak into trailers or headers events.
        let mut trailers = headers(&[("x-t", "1")]);
        trailers.insert("content-type", "text/plain".parse().unwrap());
        trailers.insert("grpc-status", "13".parse().unwrap());
        trailers.insert("connect-foo", "x".parse().unwrap());
        p.server_headers(&headers(&[
            ("x-h", "1"),
            ("grpc-message", "x"),
            ("content-length", "5"),
        ]));
        p.server_finish(Ok(trailers));
        assert_eq!(
            p.client_events,
            vec![
                ClientEvent::Headers(headers(&[("x-h", "1")])),
                ClientEvent::Finished(Ok(headers(&[("x-t", "1")])))
            ],
            "{wire:?}"
        );
    }
}

#[test]
fn routing_prefix_and_compression_negotiation_order() {
    // The client prefers zstd over gzip for responses; the server honours the order.
    let config = Wire::Grpc.client_config(Codec::Proto).accept_compression(
        CompressionRegistry::identity_only()
            .with(algorithm("zstd"))
            .with(algorithm("gzip")),
    );
    let mut p = Pair::new(
        &config,
        ServerConfig::new().compress_min_bytes(0),
        SERVER_STREAM,
        Chunking::Whole,
    );
    p.client_send(Bytes::from_static(b"\x0a\x01a"));
    assert_eq!(
        p.request_head
            .as_ref()
            .unwrap()
            .headers
            .get("grpc-accept-encoding")
            .unwrap(),
        "zstd, gzip"
    );
    assert_eq!(p.server().response_compression(), Some("zstd"));
    p.server_send(Bytes::from(vec![3u8; 100]));
    p.server_finish(Ok(HeaderMap::new()));
    assert_eq!(
        p.client_events[1],
        ClientEvent::Message(Bytes::from(vec![3u8; 100]))
    );
    // A compressed request wins over the accept list.
    let config = Wire::Grpc
        .client_config(Codec::Proto)
        .send_compression(Some(algorithm("gzip")))
        .accept_compression(
            CompressionRegistry::identity_only()
                .with(algorithm("zstd"))
                .with(algorithm("gzip")),
        );
    let mut p = Pair::new(&config, ServerConfig::new(), SERVER_STREAM, Chunking::Whole);
    p.client_send(Bytes::from(vec![3u8; 2000]));
    assert_eq!(p.server().response_compression(), Some("gzip"));
}
