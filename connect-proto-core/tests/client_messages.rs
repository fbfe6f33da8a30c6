//! `ClientCall::poll_message`, the message-only form of `poll_event`: taking events with it
//! (and `poll_event` for whatever it leaves) yields the same events in the same order as
//! `poll_event` alone, for a response fed whole, one byte at a time, pseudo-randomly split,
//! and with trailing bytes; it never takes the headers, the outcome or a message left
//! compressed for a pass-through caller.

#![cfg(feature = "gzip")]

mod common;

use bytes::Bytes;
use http::HeaderMap;

use common::*;
use connect_proto_core::codec::Codec;
use connect_proto_core::{
    CallOptions, ClientCall, ClientEvent, Code, Idempotency, MethodKind, MethodSpec,
};

const SERVER_STREAM: MethodSpec = MethodSpec::new(
    "/m.S/Stream",
    MethodKind::ServerStreaming,
    Idempotency::Unknown,
);

/// A gRPC server-streaming call whose request is sent and whose response head (gzip
/// messages) has arrived.
fn call_with_head(pass_through: bool) -> ClientCall {
    let now = Clock::new().now();
    let mut call = ClientCall::start(
        &Wire::Grpc.client_config(Codec::Proto),
        now,
        &SERVER_STREAM,
        CallOptions::new(),
    )
    .unwrap();
    call.send_message(now, Bytes::from_static(b"\x0a\x01q"))
        .unwrap();
    call.set_pass_through(pass_through);
    call.handle_response_head(response_head(
        200,
        &[
            ("content-type", "application/grpc"),
            ("grpc-encoding", "gzip"),
        ],
    ));
    call
}

/// `count` messages, every third compressed; `trailing` appends the start of a cut envelope.
fn response_body(count: u8, trailing: bool) -> Vec<u8> {
    let gzip = algorithm("gzip");
    let mut body = Vec::new();
    for i in 0..count {
        let payload = vec![i; 1 + usize::from(i) * 7];
        if i % 3 == 2 {
            body.extend(env(1, &gzip.compress(&payload).unwrap()));
        } else {
            body.extend(env(0, &payload));
        }
    }
    if trailing {
        body.extend([0, 0, 0]);
    }
    body
}

fn describe(event: &ClientEvent) -> String {
    match event {
        ClientEvent::Headers(_) => "headers".into(),
        ClientEvent::Message(bytes) => format!("message {bytes:?}"),
        ClientEvent::CompressedMessage(bytes) => format!("compressed {bytes:?}"),
        ClientEvent::Finished(Ok(_)) => "ok".into(),
        ClientEvent::Finished(Err(status)) => format!("failed {:?}", status.code()),
        other => format!("{other:?}"),
    }
}

/// Every event queued, by `poll_event` alone.
fn by_events(call: &mut ClientCall, into: &mut Vec<String>) {
    into.extend(std::iter::from_fn(|| call.poll_event()).map(|e| describe(&e)));
}

/// Every event queued, by `poll_message` first and `poll_event` for what it leaves (never a
/// plain message).
fn by_messages(call: &mut ClientCall, into: &mut Vec<String>) {
    loop {
        if let Some(message) = call.poll_message() {
            into.push(format!("message {message:?}"));
            continue;
        }
        match call.poll_event() {
            None => return,
            Some(ClientEvent::Message(message)) => {
                panic!("poll_message left a plain message: {message:?}")
            }
            Some(event) => into.push(describe(&event)),
        }
    }
}

/// Feeds `body` in `chunking`'s pieces, then the trailers and the end, taking the events with
/// `take` after each step.
fn read(
    pass_through: bool,
    body: &[u8],
    chunking: Chunking,
    take: fn(&mut ClientCall, &mut Vec<String>),
) -> Vec<String> {
    let mut call = call_with_head(pass_through);
    let mut events = Vec::new();
    take(&mut call, &mut events);
    for chunk in chunks(body, chunking) {
        call.handle_data(chunk);
        take(&mut call, &mut events);
    }
    call.handle_trailers(headers(&[("grpc-status", "0")]));
    call.handle_end();
    take(&mut call, &mut events);
    events
}

#[test]
fn poll_message_takes_the_same_events_in_the_same_order() {
    for pass_through in [false, true] {
        for trailing in [false, true] {
            let body = response_body(12, trailing);
            let expected = read(pass_through, &body, Chunking::Whole, by_events);
            for chunking in SPLITS {
                let what =
                    format!("pass-through {pass_through}, trailing {trailing}, {chunking:?}");
                assert_eq!(
                    read(pass_through, &body, chunking, by_events),
                    expected,
                    "{what}: poll_event alone"
                );
                assert_eq!(
                    read(pass_through, &body, chunking, by_messages),
                    expected,
                    "{what}: poll_message first"
                );
            }
            // What the events are: the headers, twelve messages (every third left compressed
            // under pass-through), then the outcome.
            assert_eq!(expected.len(), 14, "{expected:?}");
            assert_eq!(expected[0], "headers");
            let compressed = expected
                .iter()
                .filter(|e| e.starts_with("compressed"))
                .count();
            assert_eq!(compressed, if pass_through { 4 } else { 0 }, "{expected:?}");
            let last = expected.last().unwrap();
            if trailing {
                assert_eq!(
                    last,
                    &format!("failed {:?}", Code::Internal),
                    "{expected:?}"
                );
            } else {
                assert_eq!(last, "ok", "{expected:?}");
            }
        }
    }
}

#[test]
fn poll_message_leaves_the_headers_and_the_outcome() {
    let mut call = call_with_head(false);
    assert_eq!(call.poll_message(), None, "the headers come first");
    assert!(matches!(call.poll_event(), Some(ClientEvent::Headers(_))));
    call.handle_data(Bytes::from(env(0, b"one")));
    call.handle_trailers(HeaderMap::new());
    call.handle_end();
    assert_eq!(call.poll_message(), Some(Bytes::from_static(b"one")));
    assert_eq!(call.poll_message(), None, "the outcome is not a message");
    assert!(matches!(call.poll_event(), Some(ClientEvent::Finished(_))));
    assert_eq!(call.poll_message(), None);
    assert!(call.poll_event().is_none());
}
