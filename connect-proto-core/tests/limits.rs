//! Time and size limits the core enforces on its own: server deadlines (with and without a
//! timeout header), the pause limit of unary request bodies, broken bodies, the time left
//! announced by clients, and bounded metadata from response bodies. Each limit is tested at
//! the limit and one step past it.

mod common;

use std::time::Duration;

use bytes::Bytes;
use connect_proto_core::codec::Codec;
use connect_proto_core::{
    CallOptions, ClientCall, ClientEvent, ClientOutput, Code, Idempotency, MethodKind, MethodSpec,
    ServerCall, ServerConfig, ServerEvent, ServerOutput,
};
use http::{Method, StatusCode};

use common::{Clock, Wire, env, request_head, response_head};

const UNARY: MethodSpec = MethodSpec::new("/t.S/Unary", MethodKind::Unary, Idempotency::Unknown);
const SERVER_STREAM: MethodSpec = MethodSpec::new(
    "/t.S/ServerStream",
    MethodKind::ServerStreaming,
    Idempotency::Unknown,
);
const CLIENT_STREAM: MethodSpec = MethodSpec::new(
    "/t.S/ClientStream",
    MethodKind::ClientStreaming,
    Idempotency::Unknown,
);
const METHODS: [MethodSpec; 3] = [UNARY, SERVER_STREAM, CLIENT_STREAM];

fn lookup(path: &str) -> Option<MethodSpec> {
    METHODS.iter().find(|m| m.path == path).cloned()
}

fn grpc_head(method: &MethodSpec, extra: &[(&str, &str)]) -> http::request::Parts {
    let mut pairs = vec![("content-type", "application/grpc"), ("te", "trailers")];
    pairs.extend_from_slice(extra);
    request_head(Method::POST, method.path(), &pairs)
}

fn connect_unary_head(extra: &[(&str, &str)]) -> http::request::Parts {
    let mut pairs = vec![("content-type", "application/proto")];
    pairs.extend_from_slice(extra);
    request_head(Method::POST, UNARY.path(), &pairs)
}

fn events(call: &mut ServerCall) -> Vec<ServerEvent> {
    std::iter::from_fn(|| call.poll_event()).collect()
}

fn outputs(call: &mut ServerCall) -> Vec<ServerOutput> {
    std::iter::from_fn(|| call.poll_output()).collect()
}

fn failed_with(events: &[ServerEvent]) -> Option<Code> {
    events.iter().find_map(|e| match e {
        ServerEvent::Failed(status) => Some(status.code()),
        _ => None,
    })
}

#[test]
fn max_timeout_bounds_calls_without_a_timeout_header() {
    let clock = Clock::new();
    let max = Duration::from_secs(5);
    let config = ServerConfig::new().max_timeout(Some(max));
    let call = ServerCall::accept(&config, clock.now(), &grpc_head(&UNARY, &[]), lookup).unwrap();
    assert_eq!(call.deadline(), Some(clock.now() + max));
    // A longer requested timeout is clamped; a shorter one is kept.
    let long = grpc_head(&UNARY, &[("grpc-timeout", "10S")]);
    let call = ServerCall::accept(&config, clock.now(), &long, lookup).unwrap();
    assert_eq!(call.deadline(), Some(clock.now() + max));
    let short = grpc_head(&UNARY, &[("grpc-timeout", "2S")]);
    let call = ServerCall::accept(&config, clock.now(), &short, lookup).unwrap();
    assert_eq!(call.deadline(), Some(clock.now() + Duration::from_secs(2)));
    // Without the knob a call without a header has no deadline.
    let call = ServerCall::accept(
        &ServerConfig::new().body_timeout(None),
        clock.now(),
        &grpc_head(&UNARY, &[]),
        lookup,
    )
    .unwrap();
    assert_eq!((call.deadline(), call.poll_timeout()), (None, None));
}

#[test]
fn max_timeout_expires_a_call_that_sent_no_timeout() {
    let mut clock = Clock::new();
    let config = ServerConfig::new().max_timeout(Some(Duration::from_secs(1)));
    let head = grpc_head(&CLIENT_STREAM, &[]);
    let mut call = ServerCall::accept(&config, clock.now(), &head, lookup).unwrap();
    clock.advance(Duration::from_millis(999));
    call.handle_timeout(clock.now());
    assert!(events(&mut call).is_empty(), "not yet at the limit");
    clock.advance(Duration::from_millis(1));
    call.handle_timeout(clock.now());
    assert_eq!(
        failed_with(&events(&mut call)),
        Some(Code::DeadlineExceeded)
    );
}

#[test]
fn huge_timeouts_do_not_overflow() {
    let clock = Clock::new();
    let head = grpc_head(&UNARY, &[("grpc-timeout", "99999999H")]);
    let call = ServerCall::accept(&ServerConfig::new(), clock.now(), &head, lookup).unwrap();
    assert!(call.deadline().is_none_or(|d| d > clock.now()));
    let head = connect_unary_head(&[("connect-timeout-ms", "9999999999")]);
    let call = ServerCall::accept(&ServerConfig::new(), clock.now(), &head, lookup).unwrap();
    assert!(call.deadline().is_none_or(|d| d > clock.now()));
}

#[test]
fn a_stalled_unary_body_times_out_at_the_limit_and_not_before() {
    let limit = Duration::from_secs(30);
    for (method, head) in [
        (UNARY, connect_unary_head(&[])),
        (UNARY, grpc_head(&UNARY, &[])),
        (SERVER_STREAM, grpc_head(&SERVER_STREAM, &[])),
    ] {
        let mut clock = Clock::new();
        let config = ServerConfig::new().body_timeout(Some(limit));
        let mut call = ServerCall::accept(&config, clock.now(), &head, lookup).unwrap();
        assert_eq!(call.poll_timeout(), Some(clock.now() + limit));
        // A chunk restarts the allowed pause.
        clock.advance(Duration::from_secs(20));
        call.handle_data(clock.now(), Bytes::from_static(b"\0\0\0"));
        assert_eq!(call.poll_timeout(), Some(clock.now() + limit));
        clock.advance(limit - Duration::from_millis(1));
        call.handle_timeout(clock.now());
        assert!(
            events(&mut call).is_empty(),
            "{method:?}: one ms before the limit"
        );
        clock.advance(Duration::from_millis(1));
        call.handle_timeout(clock.now());
        assert_eq!(
            failed_with(&events(&mut call)),
            Some(Code::DeadlineExceeded),
            "{method:?}"
        );
        // The error is answered: never a success.
        let out = outputs(&mut call);
        match &out[0] {
            ServerOutput::Head(head)
                if method == UNARY && head.headers["content-type"] == "application/json" =>
            {
                assert_eq!(head.status, StatusCode::GATEWAY_TIMEOUT);
            }
            ServerOutput::Head(head) => {
                assert_eq!(head.status, StatusCode::OK);
                assert_eq!(head.headers["grpc-status"], "4");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(call.poll_timeout(), None);
    }
}

#[test]
fn a_finished_unary_body_and_streaming_requests_have_no_pause_limit() {
    let mut clock = Clock::new();
    let config = ServerConfig::new().body_timeout(Some(Duration::from_secs(1)));
    let mut call =
        ServerCall::accept(&config, clock.now(), &grpc_head(&UNARY, &[]), lookup).unwrap();
    call.handle_data(clock.now(), Bytes::from(env(0, b"")));
    call.handle_end(None);
    assert_eq!(call.poll_timeout(), None, "the body is complete");
    clock.advance(Duration::from_secs(60));
    call.handle_timeout(clock.now());
    assert!(failed_with(&events(&mut call)).is_none());

    let mut call = ServerCall::accept(
        &config,
        clock.now(),
        &grpc_head(&CLIENT_STREAM, &[]),
        lookup,
    )
    .unwrap();
    assert_eq!(call.poll_timeout(), None, "a streaming request may pause");
    clock.advance(Duration::from_secs(60));
    call.handle_timeout(clock.now());
    assert!(events(&mut call).is_empty());
}

#[test]
fn a_broken_body_is_answered_with_an_error_never_a_success() {
    let clock = Clock::new();
    let config = ServerConfig::new();
    for head in [connect_unary_head(&[]), grpc_head(&UNARY, &[])] {
        let connect = head.headers["content-type"] == "application/proto";
        let mut call = ServerCall::accept(&config, clock.now(), &head, lookup).unwrap();
        call.handle_data(clock.now(), Bytes::from_static(b"\0\0\0\0\x10abc"));
        call.handle_body_error("the body ended before its content-length");
        assert_eq!(failed_with(&events(&mut call)), Some(Code::InvalidArgument));
        let out = outputs(&mut call);
        let ServerOutput::Head(response) = &out[0] else {
            panic!("{out:?}")
        };
        if connect {
            assert_eq!(response.status, StatusCode::BAD_REQUEST);
            assert!(
                matches!(&out[1], ServerOutput::Data(body) if body.starts_with(b"{\"code\":\"invalid_argument\""))
            );
        } else {
            assert_eq!(response.headers["grpc-status"], "3");
        }
        assert!(call.is_finished());
    }
}

fn sent_head(call: &mut ClientCall) -> http::request::Parts {
    let mut head = None;
    while let Some(output) = call.poll_output() {
        if let ClientOutput::Head(h) = output {
            head = Some(h);
        }
    }
    head.expect("a request head")
}

#[test]
fn clients_announce_the_time_left_when_the_head_is_written() {
    for (wire, header, want) in [
        (Wire::Grpc, "grpc-timeout", "7000000u"),
        (Wire::Connect, "connect-timeout-ms", "7000"),
    ] {
        let mut clock = Clock::new();
        let config = wire.client_config(Codec::Proto);
        let options = CallOptions::new().deadline(clock.now() + Duration::from_secs(10));
        let mut call = ClientCall::start(&config, clock.now(), &UNARY, options).unwrap();
        clock.advance(Duration::from_secs(3));
        call.send_message(clock.now(), Bytes::from_static(b"\x0a\x01q"))
            .unwrap();
        let head = sent_head(&mut call);
        assert_eq!(head.headers[header], want, "{wire:?}");
    }
}

#[test]
fn the_earlier_of_timeout_and_deadline_wins() {
    let clock = Clock::new();
    let config = Wire::Grpc.client_config(Codec::Proto);
    let options = CallOptions::new()
        .timeout(Duration::from_secs(2))
        .deadline(clock.now() + Duration::from_secs(5));
    let call = ClientCall::start(&config, clock.now(), &CLIENT_STREAM, options).unwrap();
    assert_eq!(call.deadline(), Some(clock.now() + Duration::from_secs(2)));
    let options = CallOptions::new()
        .timeout(Duration::from_secs(5))
        .deadline_at_most(clock.now() + Duration::from_secs(1));
    let mut call = ClientCall::start(&config, clock.now(), &CLIENT_STREAM, options).unwrap();
    assert_eq!(sent_head(&mut call).headers["grpc-timeout"], "1000000u");
}

#[test]
fn a_call_out_of_time_before_it_starts_sends_nothing() {
    let mut clock = Clock::new();
    let config = Wire::Grpc.client_config(Codec::Proto);
    // Streaming requests would write their head at start; unary ones when the message is sent.
    let deadline = clock.now();
    let mut call = ClientCall::start(
        &config,
        clock.now(),
        &CLIENT_STREAM,
        CallOptions::new().deadline(deadline),
    )
    .unwrap();
    assert!(call.poll_output().is_none());
    let events: Vec<_> = std::iter::from_fn(|| call.poll_event()).collect();
    assert!(
        matches!(events.last(), Some(ClientEvent::Finished(Err(s))) if s.code() == Code::DeadlineExceeded),
        "{events:?}"
    );

    let deadline = clock.now() + Duration::from_secs(1);
    let mut call = ClientCall::start(
        &config,
        clock.now(),
        &UNARY,
        CallOptions::new().deadline(deadline),
    )
    .unwrap();
    clock.advance(Duration::from_secs(1));
    assert!(
        call.send_message(clock.now(), Bytes::from_static(b"x"))
            .is_err()
    );
    assert!(!std::iter::from_fn(|| call.poll_output()).any(|o| matches!(o, ClientOutput::Head(_))));
    let events: Vec<_> = std::iter::from_fn(|| call.poll_event()).collect();
    assert!(
        matches!(events.last(), Some(ClientEvent::Finished(Err(s))) if s.code() == Code::DeadlineExceeded),
        "{events:?}"
    );
}

/// Plays a response body into a client call configured with `limit` and returns its outcome.
fn outcome_with_metadata_limit(wire: Wire, body: Vec<u8>, limit: usize) -> Result<usize, Code> {
    let now = Clock::new().now();
    let config = wire.client_config(Codec::Proto).max_metadata_size(limit);
    let mut call = ClientCall::start(&config, now, &SERVER_STREAM, CallOptions::new()).unwrap();
    call.send_message(now, Bytes::from_static(b"\x0a\x01q"))
        .unwrap();
    while call.poll_output().is_some() {}
    let content_type = match wire {
        Wire::Connect => "application/connect+proto",
        _ => "application/grpc-web+proto",
    };
    call.handle_response_head(response_head(200, &[("content-type", content_type)]));
    call.handle_data(Bytes::from(body));
    call.handle_end();
    let events: Vec<_> = std::iter::from_fn(|| call.poll_event()).collect();
    match events.last() {
        Some(ClientEvent::Finished(Ok(trailers))) => Ok(trailers.len()),
        Some(ClientEvent::Finished(Err(status))) => Err(status.code()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn metadata_in_response_bodies_is_bounded() {
    // 30,000 distinct names: far past the limit (and past what an `http::HeaderMap` holds).
    let block: String = (0..30_000).map(|i| format!("k{i}: v\r\n")).collect();
    let frame = env(0x80, format!("grpc-status: 0\r\n{block}").as_bytes());
    assert_eq!(
        outcome_with_metadata_limit(Wire::GrpcWeb, frame, 64 * 1024),
        Err(Code::ResourceExhausted)
    );
    let keys: Vec<String> = (0..30_000).map(|i| format!("\"k{i}\":[\"v\"]")).collect();
    let end = env(
        0x02,
        format!("{{\"metadata\":{{{}}}}}", keys.join(",")).as_bytes(),
    );
    assert_eq!(
        outcome_with_metadata_limit(Wire::Connect, end, 64 * 1024),
        Err(Code::ResourceExhausted)
    );

    // At the limit and one byte past it: `grpc-status: 0` costs 11 + 1 + 32, `k: v` 1 + 1 + 32.
    let frame = env(0x80, b"grpc-status: 0\r\nk: v\r\n");
    assert_eq!(
        outcome_with_metadata_limit(Wire::GrpcWeb, frame.clone(), 78),
        Ok(1)
    );
    assert_eq!(
        outcome_with_metadata_limit(Wire::GrpcWeb, frame, 77),
        Err(Code::ResourceExhausted)
    );
    let end = env(0x02, br#"{"metadata":{"k":["v"]}}"#);
    assert_eq!(
        outcome_with_metadata_limit(Wire::Connect, end.clone(), 34),
        Ok(1)
    );
    assert_eq!(
        outcome_with_metadata_limit(Wire::Connect, end, 33),
        Err(Code::ResourceExhausted)
    );
}

#[test]
fn the_outcome_is_how_the_call_ended_whoever_ended_it() {
    let clock = Clock::new();
    let config = ServerConfig::new();
    let start = |extra: &[(&str, &str)]| {
        ServerCall::accept(
            &config,
            clock.now(),
            &grpc_head(&SERVER_STREAM, extra),
            lookup,
        )
        .unwrap()
    };
    // Running: no outcome yet.
    let mut call = start(&[]);
    assert_eq!(call.outcome(), None);
    // The application's success, then nothing changes it.
    call.finish(Ok(http::HeaderMap::new())).unwrap();
    assert_eq!(call.outcome(), Some(Ok(())));
    call.handle_reset();
    assert_eq!(call.outcome(), Some(Ok(())));
    // The application's error.
    let mut call = start(&[]);
    call.finish(Err(connect_proto_core::Status::not_found("no")))
        .unwrap();
    assert_eq!(call.outcome(), Some(Err(Code::NotFound)));
    // The client went away.
    let mut call = start(&[]);
    call.handle_reset();
    assert_eq!(call.outcome(), Some(Err(Code::Canceled)));
    // The deadline.
    let mut call = start(&[("grpc-timeout", "1S")]);
    call.handle_timeout(clock.now() + Duration::from_secs(2));
    assert_eq!(call.outcome(), Some(Err(Code::DeadlineExceeded)));
    // A protocol error in the request (a broken body).
    let mut call = start(&[]);
    call.handle_body_error("broken");
    assert!(
        matches!(call.outcome(), Some(Err(_))),
        "{:?}",
        call.outcome()
    );
}
