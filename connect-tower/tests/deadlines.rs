//! Deadlines on a manual clock: client timeouts, the server's own enforcement (of the timeout
//! header and of `max_timeout`), the unary request body's pause limit, `current_deadline()`
//! in handlers and its inheritance by calls they make, and handler futures dropped (even
//! panicking in `drop`) when time runs out. Nothing happens until the test advances the clock,
//! and everything happens as soon as it passes the deadline.

mod support;

use std::future::pending;
use std::time::Duration;

use buffa_types::google::protobuf::StringValue;
use connect_proto_core::ServerConfig;
use connect_tower::client::CallOptions;
use connect_tower::rt::current_deadline;
use connect_tower::server::ConnectService;
use connect_tower::{Code, Codec, Response, Status};
use support::*;

const SECOND: Duration = Duration::from_secs(1);
const MILLI: Duration = Duration::from_millis(1);

/// An echo service whose unary and server-streaming handlers never answer (the latter after
/// one message), dropping a guard counted by `dropped` when their future is dropped.
fn hanging_echo(dropped: &Counter) -> Echo {
    let (unary_drop, stream_drop) = (dropped.clone(), dropped.clone());
    Echo::new()
        .on_unary(move |_request| {
            let guard = unary_drop.guard();
            async move {
                let _guard = guard;
                pending::<Result<Response<StringValue>, Status>>().await
            }
        })
        .on_server_stream(move |_request, mut responses| {
            let guard = stream_drop.guard();
            async move {
                let _guard = guard;
                responses.send(sv("first")).await?;
                pending().await
            }
        })
}

#[test]
fn a_client_timeout_fires_exactly_at_the_deadline_and_drops_the_handler() {
    // The unary fast path and the general path (shared call state).
    for (wire, general) in PROTOCOLS
        .iter()
        .flat_map(|wire| [(*wire, false), (*wire, true)])
    {
        let timer = ManualTimer::new();
        let dropped = Counter::new();
        let echo = hanging_echo(&dropped);
        let echo = if general { echo.general_path() } else { echo };
        let client = client(serve(echo, &timer), wire, Codec::Proto, &timer);
        let mut call = Task::new(client.unary::<StringValue, StringValue>(
            &UNARY,
            sv("anyone?"),
            CallOptions::new().timeout(SECOND),
        ));
        call.pending();
        assert_eq!(dropped.get(), 0);

        assert_eq!(
            timer.advance(999 * MILLI),
            0,
            "{wire:?}: nothing is due yet"
        );
        assert_eq!(call.wakes(), 0, "{wire:?}");
        call.pending();
        assert_eq!(dropped.get(), 0, "{wire:?}: the handler still runs");

        assert!(
            timer.advance(MILLI) >= 1,
            "{wire:?}: the deadline's sleeps fire"
        );
        assert!(call.wakes() >= 1, "{wire:?}");
        let status = call.ready().unwrap_err();
        assert_eq!(
            status.code(),
            Code::DeadlineExceeded,
            "{wire:?}: {status:?}"
        );
        assert_eq!(dropped.get(), 1, "{wire:?}: the handler future was dropped");
        drop(call);
        assert_eq!(
            timer.registered_sleeps(),
            0,
            "{wire:?}: no sleep outlives the call"
        );
    }
}

#[test]
fn a_server_streaming_call_keeps_its_messages_then_ends_at_the_deadline() {
    for wire in PROTOCOLS {
        let timer = ManualTimer::new();
        let dropped = Counter::new();
        let client = client(
            serve(hanging_echo(&dropped), &timer),
            wire,
            Codec::Proto,
            &timer,
        );
        let mut call = Task::new(async {
            let mut stream = client
                .server_streaming::<StringValue, StringValue>(
                    &SERVER_STREAM,
                    sv(""),
                    CallOptions::new().timeout(SECOND),
                )
                .await?;
            let first = stream.message().await?;
            let second = stream.message().await;
            Ok::<_, Status>((first, second))
        });
        call.pending();
        timer.advance(999 * MILLI);
        call.pending();
        timer.advance(MILLI);
        let (first, second) = call.ready().unwrap();
        assert_eq!(first.unwrap().value, "first", "{wire:?}");
        assert_eq!(
            second.unwrap_err().code(),
            Code::DeadlineExceeded,
            "{wire:?}"
        );
        assert_eq!(dropped.get(), 1, "{wire:?}");
    }
}

#[test]
fn server_max_timeout_ends_calls_that_set_no_deadline() {
    for wire in PROTOCOLS {
        let timer = ManualTimer::new();
        let dropped = Counter::new();
        let service = ConnectService::builder(hanging_echo(&dropped))
            .config(ServerConfig::new().max_timeout(Some(SECOND)))
            .timer(timer.clone())
            .build();
        let client = client(service, wire, Codec::Proto, &timer);
        let mut call =
            Task::new(client.unary::<StringValue, StringValue>(&UNARY, sv(""), CallOptions::new()));
        call.pending();
        assert_eq!(
            timer.registered_sleeps(),
            1,
            "{wire:?}: only the server's deadline"
        );
        timer.advance(999 * MILLI);
        assert_eq!(call.wakes(), 0);
        call.pending();
        assert_eq!(dropped.get(), 0);

        timer.advance(MILLI);
        assert_eq!(call.wakes(), 1, "{wire:?}");
        let status = call.ready().unwrap_err();
        assert_eq!(
            status.code(),
            Code::DeadlineExceeded,
            "{wire:?}: {status:?}"
        );
        assert_eq!(dropped.get(), 1, "{wire:?}: the server dropped the handler");
    }
}

#[test]
fn server_max_timeout_clamps_a_longer_client_timeout() {
    let timer = ManualTimer::new();
    let start = timer.now();
    let seen = Slot::new();
    let seen_in_handler = seen.clone();
    let echo = Echo::new().on_unary(move |request| {
        seen_in_handler.put(request.deadline());
        pending()
    });
    let service = ConnectService::builder(echo)
        .config(ServerConfig::new().max_timeout(Some(SECOND)))
        .timer(timer.clone())
        .build();
    let client = client(service, Wire::Grpc, Codec::Proto, &timer);
    let mut call = Task::new(client.unary::<StringValue, StringValue>(
        &UNARY,
        sv(""),
        CallOptions::new().timeout(10 * SECOND),
    ));
    call.pending();
    assert_eq!(seen.take(), Some(start + SECOND));
    timer.advance(SECOND);
    assert_eq!(call.ready().unwrap_err().code(), Code::DeadlineExceeded);
}

#[test]
fn the_server_enforces_the_timeout_header_on_its_own_clock() {
    // The client's clock stands still, so only the server can end the call.
    for wire in PROTOCOLS {
        let (server_timer, client_timer) = (ManualTimer::new(), ManualTimer::new());
        let dropped = Counter::new();
        let service = serve(hanging_echo(&dropped), &server_timer);
        let client = client(service, wire, Codec::Proto, &client_timer);
        let mut call = Task::new(client.unary::<StringValue, StringValue>(
            &UNARY,
            sv(""),
            CallOptions::new().timeout(SECOND),
        ));
        call.pending();
        server_timer.advance(999 * MILLI);
        call.pending();
        server_timer.advance(MILLI);
        let status = call.ready().unwrap_err();
        assert_eq!(
            status.code(),
            Code::DeadlineExceeded,
            "{wire:?}: {status:?}"
        );
        assert_eq!(dropped.get(), 1, "{wire:?}");
    }
}

#[test]
fn calls_that_finish_in_time_leave_no_sleep_behind() {
    for wire in PROTOCOLS {
        let timer = ManualTimer::new();
        let client = client(serve(Echo::new(), &timer), wire, Codec::Proto, &timer);
        let options = || CallOptions::new().timeout(SECOND);
        block_on(async {
            client
                .unary::<StringValue, StringValue>(&UNARY, sv("u"), options())
                .await?;
            let mut call = client
                .client_streaming::<StringValue, StringValue>(&CLIENT_STREAM, options())
                .await?;
            call.send(sv("c")).await?;
            call.finish().await?;
            let mut stream = client
                .server_streaming::<StringValue, StringValue>(&SERVER_STREAM, sv("s"), options())
                .await?;
            while stream.message().await?.is_some() {}
            drop(stream);
            let mut call = client
                .bidi_streaming::<StringValue, StringValue>(&BIDI, options())
                .await?;
            call.send(sv("b")).await?;
            call.close_send()?;
            while call.message().await?.is_some() {}
            Ok::<_, Status>(())
        })
        .unwrap();
        assert_eq!(timer.registered_sleeps(), 0, "{wire:?}");
        assert_eq!(timer.advance(SECOND), 0, "{wire:?}: nothing left to wake");
    }
}

#[test]
fn handlers_see_the_call_deadline_as_current_deadline() {
    for wire in PROTOCOLS {
        let timer = ManualTimer::new();
        let start = timer.now();
        let seen = Slot::new();
        let seen_in_handler = seen.clone();
        let echo = Echo::new().on_unary(move |request| {
            // Read while the handler is polled (not when its future is built).
            let seen = seen_in_handler.clone();
            async move {
                seen.put((current_deadline(), request.deadline()));
                Ok(Response::new(request.into_message()))
            }
        });
        let client = client(serve(echo, &timer), wire, Codec::Proto, &timer);
        block_on(client.unary::<StringValue, StringValue>(
            &UNARY,
            sv(""),
            CallOptions::new().timeout(SECOND),
        ))
        .unwrap();
        let deadline = Some(start + SECOND);
        assert_eq!(seen.take(), (deadline, deadline), "{wire:?}");
        assert_eq!(current_deadline(), None, "only while a handler is polled");
    }
}

#[test]
fn calls_made_from_a_handler_inherit_its_deadline_unless_told_not_to() {
    let timer = ManualTimer::new();
    let start = timer.now();
    // The inner service reports the deadline its handler got.
    let inner_echo = Echo::new().on_unary(|request| async move {
        let deadline = request.deadline();
        Ok(Response::new(StringValue::from(format!("{deadline:?}"))))
    });
    let inner = client(serve(inner_echo, &timer), Wire::Grpc, Codec::Proto, &timer);
    // The outer handler calls it twice: inheriting, then opting out.
    let outer_echo = Echo::new().on_unary(move |_request| {
        let inner = inner.clone();
        async move {
            let inherited = inner
                .unary::<StringValue, StringValue>(&UNARY, sv(""), CallOptions::new())
                .await?;
            let own = inner
                .unary::<StringValue, StringValue>(
                    &UNARY,
                    sv(""),
                    CallOptions::new().propagate_deadline(false),
                )
                .await?;
            let both = format!("{}|{}", inherited.message().value, own.message().value);
            Ok(Response::new(StringValue::from(both)))
        }
    });
    let outer = client(
        serve(outer_echo, &timer),
        Wire::Connect,
        Codec::Proto,
        &timer,
    );
    let response = block_on(outer.unary::<StringValue, StringValue>(
        &UNARY,
        sv(""),
        CallOptions::new().timeout(SECOND),
    ))
    .unwrap();
    let expected = format!(
        "{:?}|{:?}",
        Some(start + SECOND),
        None::<std::time::Instant>
    );
    assert_eq!(response.message().value, expected);
}

#[test]
fn a_handler_that_panics_when_dropped_at_the_deadline_is_contained() {
    let timer = ManualTimer::new();
    let echo = Echo::new().on_unary(|request| {
        // (Built only when asked for: building one and dropping it panics too.)
        let bomb = if request.message().value == "bomb" {
            Some(PanicOnDrop)
        } else {
            None
        };
        async move {
            if bomb.is_some() {
                return pending().await;
            }
            Ok(Response::new(request.into_message()))
        }
    });
    // The client sets no deadline: the server's `max_timeout` ends the call, and the
    // panicking drop happens inside the server's driver.
    let service = ConnectService::builder(echo)
        .config(ServerConfig::new().max_timeout(Some(SECOND)))
        .timer(timer.clone())
        .build();
    let client = client(service, Wire::Grpc, Codec::Proto, &timer);
    let mut call =
        Task::new(client.unary::<StringValue, StringValue>(&UNARY, sv("bomb"), CallOptions::new()));
    call.pending();
    timer.advance(SECOND);
    assert_eq!(call.ready().unwrap_err().code(), Code::DeadlineExceeded);
    // The service keeps serving.
    let next =
        block_on(client.unary::<StringValue, StringValue>(&UNARY, sv("next"), CallOptions::new()));
    assert_eq!(next.unwrap().message().value, "next");
}

#[test]
fn the_unary_request_body_pause_limit_moves_with_each_chunk() {
    let timer = ManualTimer::new();
    let dropped = Counter::new();
    let service = ConnectService::builder(hanging_echo(&dropped))
        .config(ServerConfig::new().body_timeout(Some(5 * SECOND)))
        .timer(timer.clone())
        .build();
    let mut raw = RawCall::start(
        Wire::Connect,
        Codec::Proto,
        &UNARY,
        CallOptions::new(),
        timer.now(),
    );
    raw.send(timer.now(), &sv("a message in two halves"));
    let (head, body) = raw.take_request();
    let (chunks, channel) = channel_body();
    let mut response = Task::new(service.serve(http::Request::from_parts(head.unwrap(), channel)));
    response.pending();

    // A first chunk at 3 s moves the limit from 5 s to 8 s.
    timer.advance(3 * SECOND);
    assert_eq!(response.wakes(), 0);
    chunks.send(body.slice(..4)).unwrap();
    assert_eq!(response.wakes(), 1, "a chunk wakes the call");
    response.pending();
    assert_eq!(timer.advance(4999 * MILLI), 0, "the 5 s sleep is gone");
    response.pending();

    timer.advance(MILLI);
    assert_eq!(response.wakes(), 2);
    let outcome = raw.read(response.ready());
    assert_eq!(outcome.result.unwrap_err().code(), Code::DeadlineExceeded);
    assert_eq!(
        dropped.get(),
        0,
        "the handler never got its request, so never ran"
    );
}

#[test]
fn deadlines_fire_for_calls_on_a_tokio_executor() {
    // Tokio only runs the tasks; the manual timer's wake-up reaches the spawned call.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let timer = ManualTimer::new();
        let started = std::sync::Arc::new(tokio::sync::Notify::new());
        let notify = started.clone();
        let echo = Echo::new().on_unary(move |_request| {
            notify.notify_one();
            pending()
        });
        let client = client(serve(echo, &timer), Wire::Connect, Codec::Proto, &timer);
        let call = tokio::spawn(async move {
            client
                .unary::<StringValue, StringValue>(
                    &UNARY,
                    sv(""),
                    CallOptions::new().timeout(SECOND),
                )
                .await
        });
        started.notified().await;
        timer.advance(999 * MILLI);
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!call.is_finished());
        timer.advance(MILLI);
        let status = call.await.unwrap().unwrap_err();
        assert_eq!(status.code(), Code::DeadlineExceeded);
    });
}

/// A streaming handler registered as a closure starts inside the call's deadline scope: what
/// the closure does before returning its future (start a client call, say) sees the call's
/// deadline, as it does when the handler is a generated service's `async fn`.
#[test]
fn streaming_handler_closures_start_inside_the_call_deadline_scope() {
    use connect_proto_core::{MethodKind, MethodSpec};
    use connect_tower::Request;
    use connect_tower::server::{Routes, Streaming};

    let spec = |name: &str, kind| {
        MethodSpec::owned(format!("/dyn.v1.Dyn/{name}"), kind, Default::default())
    };
    let timer = ManualTimer::new();
    let start = timer.now();
    let seen = Slot::new();
    let (in_split, in_join, in_shout) = (seen.clone(), seen.clone(), seen.clone());
    let routes = Routes::new()
        .server_streaming(
            spec("Split", MethodKind::ServerStreaming),
            move |_request: Request<StringValue>,
                  _responses: connect_tower::server::ResponseSender<StringValue>| {
                in_split.put(current_deadline());
                async { Ok(()) }
            },
        )
        .client_streaming(
            spec("Join", MethodKind::ClientStreaming),
            move |_request: Request<Streaming<StringValue>>| {
                in_join.put(current_deadline());
                async { Ok(Response::new(sv("joined"))) }
            },
        )
        .bidi_streaming(
            spec("Shout", MethodKind::BidiStreaming),
            move |_request: Request<Streaming<StringValue>>,
                  _responses: connect_tower::server::ResponseSender<StringValue>| {
                in_shout.put(current_deadline());
                async { Ok(()) }
            },
        );
    let client = client(serve(routes, &timer), Wire::Grpc, Codec::Proto, &timer);
    let options = || CallOptions::new().timeout(SECOND);
    let deadline = Some(start + SECOND);

    let split = block_on(async {
        let mut call = client
            .server_streaming::<StringValue, StringValue>(
                &spec("Split", MethodKind::ServerStreaming),
                sv(""),
                options(),
            )
            .await?;
        while call.message().await?.is_some() {}
        Ok::<_, Status>(())
    });
    assert!(split.is_ok(), "{split:?}");
    assert_eq!(seen.take(), deadline, "server stream");

    let joined = block_on(async {
        let call = client
            .client_streaming::<StringValue, StringValue>(
                &spec("Join", MethodKind::ClientStreaming),
                options(),
            )
            .await?;
        call.finish().await
    });
    assert!(joined.is_ok(), "{joined:?}");
    assert_eq!(seen.take(), deadline, "client stream");

    let shouted = block_on(async {
        let mut call = client
            .bidi_streaming::<StringValue, StringValue>(
                &spec("Shout", MethodKind::BidiStreaming),
                options(),
            )
            .await?;
        call.close_send()?;
        while call.message().await?.is_some() {}
        Ok::<_, Status>(())
    });
    assert!(shouted.is_ok(), "{shouted:?}");
    assert_eq!(seen.take(), deadline, "bidi stream");
}
