//! The state a call shares between the HTTP side and the handler, observed by polling by hand
//! with counting wakers: who parks, who wakes whom, and how much may queue.
//!
//! - Server: a `ResponseSender::send` waiting on a full response queue is woken by reading
//!   the response body; the response body is woken by a send from outside the driver; sends
//!   complete until `max_queued_bytes` are queued (default 256 KiB), never further.
//! - Client: streaming sends complete until the client's `max_queued_bytes` are queued, then
//!   wait until the server reads (or fail when the deadline passes, `finish` saying why); a
//!   handler's request stream parks until the client sends.
//! - A limit of 0 bytes sends one message at a time (it used to deadlock).
//! - `send_all` sends what fits, waits holding the next message, and stops at the call's end.
//! - A streamed response's handler is polled when woken, not once per poll of the body.

mod support;

use std::future::pending;
use std::sync::Arc;

use buffa_types::google::protobuf::StringValue;
use connect_tower::client::CallOptions;
use connect_tower::server::{ConnectService, DEFAULT_MAX_QUEUED_BYTES, ResponseSender, Streaming};
use connect_tower::{Codec, Response, Status};
use http_body_util::BodyExt;
use support::*;
use tokio::sync::Notify;

/// An echo service whose server-streaming handler hands its sender to the test, then waits
/// for `finish` and ends the stream.
fn sender_to_test(senders: &Slot<ResponseSender<StringValue>>, finish: &Arc<Notify>) -> Echo {
    let (senders, finish) = (senders.clone(), finish.clone());
    Echo::new().on_server_stream(move |_request, responses| {
        senders.put(responses);
        let finish = finish.clone();
        async move {
            finish.notified().await;
            Ok(())
        }
    })
}

/// Starts a server-streaming call on `service` and returns the response body once the head is
/// written (the handler's first wait).
fn start_stream<D: connect_tower::server::Dispatch>(
    service: &ConnectService<D>,
    timer: &ManualTimer,
) -> (RawCall, http::Response<connect_tower::server::ResponseBody>) {
    let (raw, request) = RawCall::request(
        Wire::Grpc,
        Codec::Proto,
        &SERVER_STREAM,
        &[sv("")],
        timer.now(),
    );
    let response = Task::new(service.serve(request)).ready();
    (raw, response)
}

#[test]
fn a_send_waiting_on_a_full_response_queue_is_woken_by_reading_the_body() {
    let timer = ManualTimer::new();
    let (senders, finish) = (Slot::new(), Arc::new(Notify::new()));
    let message = sv("0123456789");
    let framed = framed_len(Codec::Proto, &message);
    let service = ConnectService::builder(sender_to_test(&senders, &finish))
        .timer(timer.clone())
        .max_queued_bytes(framed)
        .build();
    let (_raw, response) = start_stream(&service, &timer);
    let mut body = response.into_body();
    let mut sender = senders.take();

    // One message fills the queue; the next send waits.
    assert!(Task::new(sender.send(message.clone())).ready().is_ok());
    let mut second = Task::new(sender.send(message.clone()));
    second.pending();
    second.pending();
    assert_eq!(second.wakes(), 0, "nothing freed the queue yet");

    // Reading the body takes the queued bytes and wakes the waiting send, once.
    let frame = Task::new(body.frame()).ready().unwrap().unwrap();
    assert_eq!(frame.data_ref().map(|d| d.len()), Some(framed));
    assert_eq!(second.wakes(), 1);
    assert!(second.ready().is_ok());
}

#[test]
fn the_response_body_is_woken_by_sends_and_handler_progress_outside_its_poll() {
    let timer = ManualTimer::new();
    let (senders, finish) = (Slot::new(), Arc::new(Notify::new()));
    let service = serve(sender_to_test(&senders, &finish), &timer);
    let (mut raw, response) = start_stream(&service, &timer);
    let (head, mut body) = response.into_parts();
    raw.head(head);
    let mut sender = senders.take();

    // The body parks: nothing to write, the handler waits.
    let mut read = Task::new(body.frame());
    read.pending();
    assert_eq!(read.wakes(), 0);
    // A send from elsewhere (another task holding the sender) wakes it, once.
    assert!(Task::new(sender.send(sv("hello"))).ready().is_ok());
    assert_eq!(read.wakes(), 1);
    raw.frame(Some(read.ready().unwrap().unwrap()));
    drop(read);

    // The handler's own wake-up (its gate opening) reaches the body's poller, which drives it
    // to the end of the stream.
    let mut read = Task::new(body.frame());
    read.pending();
    finish.notify_one();
    assert_eq!(read.wakes(), 1);
    let trailers = read.ready().unwrap().unwrap();
    assert!(trailers.is_trailers(), "gRPC ends with trailers");
    raw.frame(Some(trailers));
    drop(read);
    let outcome = raw.finish(http::StatusCode::OK, body);
    assert_eq!(values(&outcome.messages), ["hello"]);
    assert!(outcome.result.is_ok(), "{outcome:?}");
}

#[test]
fn server_sends_complete_until_max_queued_bytes_are_queued_and_no_further() {
    let message = sv("0123456789");
    let framed = framed_len(Codec::Proto, &message);
    // `send` waits once the queue holds `max` bytes: ceil(max / framed) sends complete.
    for (max, expected) in [(1, 1), (framed, 1), (3 * framed, 3), (3 * framed + 1, 4)] {
        let timer = ManualTimer::new();
        let sent = Counter::new();
        let (counter, message) = (sent.clone(), message.clone());
        let echo = Echo::new().on_server_stream(move |_request, mut responses| {
            let (sent, message) = (counter.clone(), message.clone());
            async move {
                loop {
                    responses.send(message.clone()).await?;
                    sent.incr();
                }
            }
        });
        let service = ConnectService::builder(echo)
            .timer(timer.clone())
            .max_queued_bytes(max)
            .build();
        let (_raw, response) = start_stream(&service, &timer);
        assert_eq!(
            sent.get(),
            expected,
            "max {max}: sends before the body is read"
        );
        let mut body = response.into_body();
        for round in 1..=3 {
            let frame = Task::new(body.frame()).ready().unwrap().unwrap();
            let queued = frame.into_data().unwrap().len();
            assert_eq!(queued, expected * framed, "max {max}, round {round}");
            assert!(
                queued < max + framed,
                "max {max}: at most one message past the limit"
            );
            // Never more than one queue's worth sent beyond what was read.
            assert!(
                sent.get() <= expected * (round + 1),
                "max {max}, round {round}"
            );
        }
    }
}

#[test]
fn the_default_response_queue_holds_256_kib() {
    assert_eq!(DEFAULT_MAX_QUEUED_BYTES, 256 * 1024);
    let message = StringValue::from("x".repeat(1000));
    let framed = framed_len(Codec::Proto, &message);
    let timer = ManualTimer::new();
    let sent = Counter::new();
    let counter = sent.clone();
    let echo = Echo::new().on_server_stream(move |_request, mut responses| {
        let (sent, message) = (counter.clone(), message.clone());
        async move {
            loop {
                responses.send(message.clone()).await?;
                sent.incr();
            }
        }
    });
    let service = serve(echo, &timer);
    let _response = start_stream(&service, &timer);
    assert_eq!(sent.get(), DEFAULT_MAX_QUEUED_BYTES.div_ceil(framed));
}

#[test]
fn client_sends_complete_until_the_client_queue_is_full_then_wait_for_the_server() {
    let message = sv("0123456789");
    let framed = framed_len(Codec::Proto, &message);
    for (max, expected) in [(framed, 1), (3 * framed, 3)] {
        let timer = ManualTimer::new();
        let gate = Arc::new(Notify::new());
        let received = Counter::new();
        let (handler_gate, counter) = (gate.clone(), received.clone());
        let echo = Echo::new().on_client_stream(move |request| {
            let (gate, received) = (handler_gate.clone(), counter.clone());
            async move {
                gate.notified().await;
                let mut stream = request.into_message();
                while stream.message().await?.is_some() {
                    received.incr();
                }
                Ok(Response::new(StringValue::from(received.get().to_string())))
            }
        });
        let client =
            client(serve(echo, &timer), Wire::Connect, Codec::Proto, &timer).max_queued_bytes(max);
        let mut call = block_on(
            client.client_streaming::<StringValue, StringValue>(&CLIENT_STREAM, CallOptions::new()),
        )
        .unwrap();
        for _ in 0..expected {
            assert!(
                Task::new(call.send(message.clone())).ready().is_ok(),
                "max {max}"
            );
        }
        let mut waiting = Task::new(call.send(message.clone()));
        waiting.pending();
        assert_eq!(
            waiting.wakes(),
            0,
            "max {max}: the server has not read anything"
        );
        assert_eq!(received.get(), 0);

        // The server starts reading: its gate wakes the waiting send, which then completes.
        gate.notify_one();
        assert_eq!(waiting.wakes(), 1, "max {max}");
        assert!(waiting.run().is_ok());
        drop(waiting);
        assert_eq!(
            received.get(),
            expected,
            "max {max}: what was queued reached the handler"
        );
        let response = block_on(call.finish()).unwrap();
        assert_eq!(
            response.message().value,
            (expected + 1).to_string(),
            "max {max}"
        );
    }
}

#[test]
fn a_request_stream_read_by_a_handler_parks_until_the_client_sends() {
    for wire in PROTOCOLS {
        let timer = ManualTimer::new();
        let streams: Slot<Streaming<StringValue>> = Slot::new();
        let handler_streams = streams.clone();
        let echo = Echo::new().on_bidi(move |request, _responses| {
            handler_streams.put(request.into_message());
            pending::<Result<(), Status>>()
        });
        let client = client(serve(echo, &timer), wire, Codec::Proto, &timer);
        let mut call =
            block_on(client.bidi_streaming::<StringValue, StringValue>(&BIDI, CallOptions::new()))
                .unwrap();
        // Waiting for the response headers runs the handler, which hands its stream over.
        Task::new(call.headers()).pending();
        let mut stream = streams.take();

        let mut reader = Task::new(stream.message());
        reader.pending();
        reader.pending();
        assert_eq!(reader.wakes(), 0, "{wire:?}: nothing was sent");
        assert!(Task::new(call.send(sv("ping"))).ready().is_ok());
        assert_eq!(reader.wakes(), 1, "{wire:?}: the send woke the reader");
        assert_eq!(reader.ready().unwrap().unwrap().value, "ping", "{wire:?}");
        drop(reader);

        let mut reader = Task::new(stream.message());
        reader.pending();
        call.close_send().unwrap();
        assert_eq!(reader.wakes(), 1, "{wire:?}: closing woke the reader");
        assert_eq!(reader.ready().unwrap(), None, "{wire:?}");
    }
}

#[test]
fn a_client_send_waiting_on_a_full_queue_fails_at_the_deadline_and_finish_says_why() {
    let message = sv("0123456789");
    let framed = framed_len(Codec::Proto, &message);
    let timer = ManualTimer::new();
    // The server never reads, so the client queue stays full.
    let echo = Echo::new().on_client_stream(|_request| pending());
    let client =
        client(serve(echo, &timer), Wire::Connect, Codec::Proto, &timer).max_queued_bytes(framed);
    let options = CallOptions::new().timeout(std::time::Duration::from_secs(1));
    let mut call =
        block_on(client.client_streaming::<StringValue, StringValue>(&CLIENT_STREAM, options))
            .unwrap();
    assert!(Task::new(call.send(message.clone())).ready().is_ok());
    let mut waiting = Task::new(call.send(message.clone()));
    waiting.pending();
    assert_eq!(waiting.wakes(), 0);
    timer.advance(std::time::Duration::from_secs(1));
    assert!(waiting.wakes() >= 1, "the deadline wakes the waiting send");
    assert!(
        waiting.ready().is_err(),
        "the send fails once the call is over"
    );
    drop(waiting);
    let status = block_on(call.finish()).unwrap_err();
    assert_eq!(
        status.code(),
        connect_tower::Code::DeadlineExceeded,
        "{status:?}"
    );
}

#[test]
fn a_zero_queue_limit_still_lets_one_message_through_at_a_time() {
    let timer = ManualTimer::new();
    let zero_server = ConnectService::builder(Echo::new())
        .timer(timer.clone())
        .max_queued_bytes(0)
        .build();
    let to_zero_server = client(zero_server, Wire::Grpc, Codec::Proto, &timer);
    let streamed = block_on(collect_server_stream(
        &to_zero_server,
        &SERVER_STREAM,
        sv("a,b"),
    ));
    assert_eq!(values(&streamed.unwrap()), ["a", "b"]);

    let zero_client =
        client(serve(Echo::new(), &timer), Wire::Grpc, Codec::Proto, &timer).max_queued_bytes(0);
    let joined = block_on(async {
        let mut call = zero_client
            .client_streaming::<StringValue, StringValue>(&CLIENT_STREAM, CallOptions::new())
            .await?;
        call.send(sv("a")).await?;
        call.send(sv("b")).await?;
        call.finish().await
    });
    assert_eq!(joined.unwrap().message().value, "a,b");
}

/// `send_all` sends the messages that fit, holds the one that does not while it waits, takes
/// no message from the iterator before it can send the one before, and resumes where it
/// stopped when the body is read: every message arrives once, in order.
#[test]
fn send_all_sends_what_fits_waits_and_resumes_in_order() {
    let timer = ManualTimer::new();
    let (senders, finish) = (Slot::new(), Arc::new(Notify::new()));
    let framed = framed_len(Codec::Proto, &sv("message 0"));
    let service = ConnectService::builder(sender_to_test(&senders, &finish))
        .timer(timer.clone())
        .max_queued_bytes(2 * framed)
        .build();
    let (mut raw, response) = start_stream(&service, &timer);
    let (head, mut body) = response.into_parts();
    raw.head(head);
    let mut sender = senders.take();

    let taken = Counter::new();
    let counter = taken.clone();
    let messages = (0..5).map(move |i| {
        counter.incr();
        sv(&format!("message {i}"))
    });
    let mut send_all = Task::new(sender.send_all(messages));
    send_all.pending();
    // Two messages fill the queue; the third is taken and waits for room.
    assert_eq!(taken.get(), 3);
    send_all.pending();
    assert_eq!(taken.get(), 3, "a waiting send_all takes nothing more");
    assert_eq!(send_all.wakes(), 0);

    let frame = Task::new(body.frame()).ready().unwrap().unwrap();
    assert_eq!(frame.data_ref().map(|d| d.len()), Some(2 * framed));
    raw.frame(Some(frame));
    assert_eq!(
        send_all.wakes(),
        1,
        "reading the body wakes the waiting send_all"
    );
    // The third and fourth go out; the fifth waits.
    send_all.pending();
    assert_eq!(taken.get(), 5);
    raw.frame(Some(Task::new(body.frame()).ready().unwrap().unwrap()));
    assert!(send_all.ready().is_ok());
    drop(send_all);
    raw.frame(Some(Task::new(body.frame()).ready().unwrap().unwrap()));

    finish.notify_one();
    let trailers = Task::new(body.frame()).ready().unwrap().unwrap();
    assert!(trailers.is_trailers());
    raw.frame(Some(trailers));
    let outcome = raw.finish(http::StatusCode::OK, body);
    assert_eq!(
        values(&outcome.messages),
        [
            "message 0",
            "message 1",
            "message 2",
            "message 3",
            "message 4"
        ]
    );
    assert!(outcome.result.is_ok(), "{outcome:?}");
}

/// Once the call has ended (the client went away), `send_all` fails at once and takes no
/// message from the iterator past the one it could not send.
#[test]
fn send_all_stops_at_the_end_of_the_call() {
    let timer = ManualTimer::new();
    let (senders, finish) = (Slot::new(), Arc::new(Notify::new()));
    let service = serve(sender_to_test(&senders, &finish), &timer);
    let (_raw, response) = start_stream(&service, &timer);
    let mut sender = senders.take();
    drop(response);

    let taken = Counter::new();
    let counter = taken.clone();
    let messages = std::iter::repeat_with(move || {
        counter.incr();
        sv("never sent")
    });
    let result = Task::new(sender.send_all(messages)).ready();
    assert!(result.is_err(), "{result:?}");
    assert_eq!(taken.get(), 1);
    // An empty run has nothing to send: it succeeds even on an ended call.
    assert!(
        Task::new(sender.send_all(std::iter::empty()))
            .ready()
            .is_ok()
    );
}

/// A future that counts its polls and never completes (nor wakes anyone).
struct CountPolls(Counter);

impl std::future::Future for CountPolls {
    type Output = ();

    fn poll(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        self.0.incr();
        std::task::Poll::Pending
    }
}

/// A streamed response's handler is polled when something it waits on wakes it, not every
/// time the response body is polled: reading the body while the handler waits on nothing new
/// leaves it alone; a send from outside wakes the body, which writes it without polling the
/// handler either.
#[test]
fn a_streaming_handler_is_polled_when_woken_not_once_per_body_poll() {
    let timer = ManualTimer::new();
    let polls = Counter::new();
    let (senders, counter) = (Slot::new(), polls.clone());
    let slot = senders.clone();
    let echo = Echo::new().on_server_stream(move |_request, mut responses| {
        let counter = counter.clone();
        let slot = slot.clone();
        async move {
            responses.send(sv("first")).await?;
            slot.put(responses);
            CountPolls(counter).await;
            Ok(())
        }
    });
    let service = serve(echo, &timer);
    let (_raw, response) = start_stream(&service, &timer);
    let mut body = response.into_body();
    let frame = Task::new(body.frame()).ready().unwrap().unwrap();
    assert!(frame.is_data());
    let after_start = polls.get();
    assert!(after_start >= 1, "the handler reached its wait");

    let mut next = Task::new(body.frame());
    for _ in 0..5 {
        next.pending();
    }
    assert_eq!(
        polls.get(),
        after_start,
        "body polls do not poll the handler"
    );

    // A message sent from another task wakes the body; writing it polls no handler.
    let mut sender = senders.take();
    assert!(Task::new(sender.send(sv("second"))).ready().is_ok());
    assert!(next.wakes() >= 1);
    let frame = next.ready().unwrap().unwrap();
    assert!(frame.is_data());
    assert_eq!(polls.get(), after_start);
}
