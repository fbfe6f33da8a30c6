//! How calls end early: the client drops its call object (every kind), the server's response
//! future or body is dropped (the client went away), handlers and dispatchers panic or return
//! without answering — each observed on the handler's side (its future dropped, its request
//! stream or sender failing) and on the client's (the status), and followed by a call that
//! must still be served. Three `#[ignore]`d tests pin down bugs (see their reasons).

mod support;

use std::future::pending;

use buffa_types::google::protobuf::StringValue;
use connect_tower::client::{BidiStreamingCall, CallOptions};
use connect_tower::server::{ResponseSender, Streaming};
use connect_tower::{Code, Codec, Response, Status};
use support::*;

/// Counts handler starts and drops of handler futures.
#[derive(Clone, Default)]
struct Probe {
    started: Counter,
    dropped: Counter,
}

impl Probe {
    /// Records a start; the guard records the drop.
    fn enter(&self) -> DropGuard {
        self.started.incr();
        self.dropped.guard()
    }

    fn counts(&self) -> (usize, usize) {
        (self.started.get(), self.dropped.get())
    }
}

/// An echo service whose four handlers wait forever (the server-streaming one after a first
/// message), reporting to `probe`.
fn hanging_echo(probe: &Probe) -> Echo {
    let [p1, p2, p3, p4] = [(); 4].map(|()| probe.clone());
    Echo::new()
        .on_unary(move |_request| {
            let guard = p1.enter();
            async move {
                let _guard = guard;
                pending().await
            }
        })
        .on_client_stream(move |_request| {
            let guard = p2.enter();
            async move {
                let _guard = guard;
                pending().await
            }
        })
        .on_server_stream(move |_request, mut responses| {
            let guard = p3.enter();
            async move {
                let _guard = guard;
                responses.send(sv("first")).await?;
                pending().await
            }
        })
        .on_bidi(move |_request, _responses| {
            let guard = p4.enter();
            async move {
                let _guard = guard;
                pending().await
            }
        })
}

#[test]
fn dropping_a_call_object_drops_the_server_handler_for_every_kind() {
    for wire in PROTOCOLS {
        let timer = ManualTimer::new();
        let probe = Probe::default();
        let client = client(
            serve(hanging_echo(&probe), &timer),
            wire,
            Codec::Proto,
            &timer,
        );
        let options = CallOptions::new;

        // Unary: the call future.
        let mut unary =
            Task::new(client.unary::<StringValue, StringValue>(&UNARY, sv(""), options()));
        unary.pending();
        assert_eq!(probe.counts(), (1, 0), "{wire:?}");
        drop(unary);
        assert_eq!(probe.dropped.get(), 1, "{wire:?}: unary");

        // Server streaming: the response stream (after a message).
        let mut stream = block_on(client.server_streaming::<StringValue, StringValue>(
            &SERVER_STREAM,
            sv(""),
            options(),
        ))
        .unwrap();
        assert_eq!(block_on(stream.message()).unwrap().unwrap().value, "first");
        assert_eq!(probe.dropped.get(), 1);
        drop(stream);
        assert_eq!(probe.dropped.get(), 2, "{wire:?}: server streaming");

        // Client streaming: the call, waiting for its response.
        let mut call = block_on(
            client.client_streaming::<StringValue, StringValue>(&CLIENT_STREAM, options()),
        )
        .unwrap();
        assert!(Task::new(call.send(sv("a"))).ready().is_ok());
        let mut finish = Task::new(call.finish());
        finish.pending();
        assert_eq!(probe.counts(), (3, 2), "{wire:?}");
        drop(finish);
        assert_eq!(probe.dropped.get(), 3, "{wire:?}: client streaming");

        // Bidi: the call, waiting for response headers.
        let mut call =
            block_on(client.bidi_streaming::<StringValue, StringValue>(&BIDI, options())).unwrap();
        Task::new(call.headers()).pending();
        assert_eq!(probe.counts(), (4, 3), "{wire:?}");
        drop(call);
        assert_eq!(probe.dropped.get(), 4, "{wire:?}: bidi");
    }
}

#[test]
fn cancelling_a_call_ends_it_with_canceled_and_drops_the_handler() {
    let timer = ManualTimer::new();
    let probe = Probe::default();
    let client = client(
        serve(hanging_echo(&probe), &timer),
        Wire::Grpc,
        Codec::Proto,
        &timer,
    );
    let mut call =
        block_on(client.bidi_streaming::<StringValue, StringValue>(&BIDI, CallOptions::new()))
            .unwrap();
    Task::new(call.headers()).pending();
    call.cancel();
    assert_eq!(probe.dropped.get(), 1);
    assert_eq!(block_on(call.message()).unwrap_err().code(), Code::Canceled);
}

#[test]
fn dropping_the_response_future_or_body_drops_the_handler() {
    let timer = ManualTimer::new();
    let probe = Probe::default();
    let service = serve(hanging_echo(&probe), &timer);

    // Before the head: the response future.
    let (_raw, request) =
        RawCall::request(Wire::Connect, Codec::Proto, &UNARY, &[sv("")], timer.now());
    let mut response = Task::new(service.serve(request));
    response.pending();
    assert_eq!(probe.counts(), (1, 0));
    drop(response);
    assert_eq!(probe.dropped.get(), 1, "dropping the response future");

    // After the head: the body.
    let (_raw, request) = RawCall::request(
        Wire::Connect,
        Codec::Proto,
        &SERVER_STREAM,
        &[sv("")],
        timer.now(),
    );
    let response = Task::new(service.serve(request)).ready();
    assert_eq!(probe.counts(), (2, 1));
    drop(response);
    assert_eq!(probe.dropped.get(), 2, "dropping the response body");
    assert_eq!(timer.registered_sleeps(), 0);
}

/// A bidi call whose handler handed its request stream to the test (and then waits forever).
fn request_stream_outside_the_handler() -> (
    BidiStreamingCall<StringValue, StringValue>,
    Streaming<StringValue>,
) {
    let timer = ManualTimer::new();
    let streams: Slot<Streaming<StringValue>> = Slot::new();
    let handler_streams = streams.clone();
    let echo = Echo::new().on_bidi(move |request, _responses| {
        handler_streams.put(request.into_message());
        pending::<Result<(), Status>>()
    });
    let client = client(serve(echo, &timer), Wire::Grpc, Codec::Proto, &timer);
    let mut call =
        block_on(client.bidi_streaming::<StringValue, StringValue>(&BIDI, CallOptions::new()))
            .unwrap();
    // Waiting for the response headers runs the handler.
    Task::new(call.headers()).pending();
    (call, streams.take())
}

#[test]
fn a_request_stream_held_outside_the_handler_fails_once_the_client_is_gone() {
    let (call, mut stream) = request_stream_outside_the_handler();
    let mut reader = Task::new(stream.message());
    reader.pending();
    drop(call);
    // Woken by the request body's reset and by the response body going away.
    assert!(
        reader.wakes() >= 1,
        "the client's departure wakes the reader"
    );
    assert_eq!(reader.ready().unwrap_err().code(), Code::Canceled);
}

#[test]
fn a_request_stream_sees_a_cancelled_client_as_canceled() {
    let (mut call, mut stream) = request_stream_outside_the_handler();
    call.cancel();
    let status = block_on(stream.message()).unwrap_err();
    assert_eq!(status.code(), Code::Canceled, "{status:?}");
}

#[test]
fn a_response_sender_held_outside_the_handler_fails_once_the_client_is_gone() {
    let timer = ManualTimer::new();
    let senders: Slot<ResponseSender<StringValue>> = Slot::new();
    let handler_senders = senders.clone();
    let echo = Echo::new().on_server_stream(move |_request, responses| {
        handler_senders.put(responses);
        pending::<Result<(), Status>>()
    });
    let message = sv("0123456789");
    let service = connect_tower::server::ConnectService::builder(echo)
        .timer(timer.clone())
        .max_queued_bytes(framed_len(Codec::Proto, &message))
        .build();
    let client = client(service, Wire::Grpc, Codec::Proto, &timer);
    let stream = block_on(client.server_streaming::<StringValue, StringValue>(
        &SERVER_STREAM,
        sv(""),
        CallOptions::new(),
    ))
    .unwrap();
    let mut sender = senders.take();
    drop(stream);
    // The call is over for good: the send must fail, not queue bytes nobody reads (a second
    // send would then wait on the full queue forever).
    let first = Task::new(sender.send(message.clone())).ready();
    assert!(
        first.is_err(),
        "a send succeeded after the client went away"
    );
}

#[test]
fn a_panicking_handler_yields_internal_and_the_service_keeps_serving() {
    for (wire, general) in WIRES
        .iter()
        .flat_map(|wire| [(*wire, false), (*wire, true)])
    {
        let timer = ManualTimer::new();
        let echo = if general {
            Echo::new().general_path()
        } else {
            Echo::new()
        };
        let echo = echo
            .on_unary(|request| async move {
                if request.message().value == "panic" {
                    panic!("the unary handler panicked");
                }
                Ok(Response::new(request.into_message()))
            })
            .on_server_stream(|_request, mut responses| async move {
                responses.send(sv("before")).await?;
                panic!("the streaming handler panicked");
            });
        let client = client(serve(echo, &timer), wire, Codec::Proto, &timer);
        let unary = |value| {
            block_on(client.unary::<StringValue, StringValue>(
                &UNARY,
                sv(value),
                CallOptions::new(),
            ))
        };
        assert_eq!(
            unary("panic").unwrap_err().code(),
            Code::Internal,
            "{wire:?}"
        );
        assert_eq!(unary("calm").unwrap().message().value, "calm", "{wire:?}");

        block_on(async {
            let mut stream = client
                .server_streaming::<StringValue, StringValue>(
                    &SERVER_STREAM,
                    sv(""),
                    CallOptions::new(),
                )
                .await
                .unwrap();
            assert_eq!(
                stream.message().await.unwrap().unwrap().value,
                "before",
                "{wire:?}"
            );
            assert_eq!(
                stream.message().await.unwrap_err().code(),
                Code::Internal,
                "{wire:?}"
            );
        });
        assert_eq!(
            unary("still serving").unwrap().message().value,
            "still serving"
        );
    }
}

#[test]
fn a_dispatcher_that_panics_yields_internal_and_the_service_keeps_serving() {
    for (wire, echo) in PROTOCOLS
        .iter()
        .flat_map(|wire| [(*wire, Echo::new()), (*wire, Echo::new().general_path())])
    {
        let timer = ManualTimer::new();
        let dispatched = echo.dispatched.clone();
        let client = client(serve(echo, &timer), wire, Codec::Proto, &timer);
        let status = block_on(client.unary::<StringValue, StringValue>(
            &EXPLODE,
            sv(""),
            CallOptions::new(),
        ))
        .unwrap_err();
        assert_eq!(status.code(), Code::Internal, "{wire:?}: {status:?}");
        assert_eq!(dispatched.get(), 1);
        let next = block_on(client.unary::<StringValue, StringValue>(
            &UNARY,
            sv("next"),
            CallOptions::new(),
        ));
        assert_eq!(next.unwrap().message().value, "next", "{wire:?}");
    }
}

#[test]
fn a_dispatch_future_that_ends_without_answering_yields_internal() {
    for wire in PROTOCOLS {
        let timer = ManualTimer::new();
        // Only `dispatch` can end without answering (the fast path's future always answers).
        let echo = Echo::new().general_path();
        let client = client(serve(echo, &timer), wire, Codec::Proto, &timer);
        let status =
            block_on(client.unary::<StringValue, StringValue>(&FORGET, sv(""), CallOptions::new()))
                .unwrap_err();
        assert_eq!(status.code(), Code::Internal, "{wire:?}: {status:?}");
    }
}
