//! A server's shutdown as calls see it, without sockets: a transport layer records a
//! `ConnectionInfo` (peer and `ShutdownSignal`) in each request, as runtime adapters do, and
//! the test moves the `ShutdownTrigger`. Draining is visible to handlers and ends nothing by
//! itself; forcing ends every open call with `unavailable` and drops its handler.

mod support;

use std::future::pending;
use std::net::SocketAddr;

use buffa_types::google::protobuf::StringValue;
use connect_tower::client::{CallOptions, Client};
use connect_tower::rt::ShutdownTrigger;
use connect_tower::server::ConnectService;
use connect_tower::{Code, Codec, ConnectionInfo, PeerInfo, Response, Status};
use support::*;

fn peer() -> PeerInfo {
    let remote: SocketAddr = "192.0.2.7:40000".parse().unwrap();
    let local: SocketAddr = "192.0.2.1:443".parse().unwrap();
    PeerInfo::new(Some(remote), Some(local))
}

/// A client whose requests reach `echo` through a connection that shuts down with the
/// returned trigger.
fn connected(
    echo: Echo,
    wire: Wire,
    timer: &ManualTimer,
) -> (
    Client<WithConnection<ConnectService<Echo>>>,
    ShutdownTrigger,
) {
    let (trigger, signal) = ShutdownTrigger::new();
    let transport = WithConnection {
        inner: serve(echo, timer),
        info: ConnectionInfo::new(peer(), signal),
    };
    (client(transport, wire, Codec::Proto, timer), trigger)
}

/// A server-streaming handler that sends one message and then waits forever.
fn one_then_wait(dropped: &Counter) -> Echo {
    let dropped = dropped.clone();
    Echo::new().on_server_stream(move |_request, mut responses| {
        let guard = dropped.guard();
        async move {
            let _guard = guard;
            responses.send(sv("first")).await?;
            pending().await
        }
    })
}

#[test]
fn a_forced_shutdown_ends_open_calls_with_unavailable() {
    for wire in PROTOCOLS {
        let timer = ManualTimer::new();
        let dropped = Counter::new();
        let (client, trigger) = connected(one_then_wait(&dropped), wire, &timer);
        let mut call = Task::new(async {
            let mut stream = client
                .server_streaming::<StringValue, StringValue>(
                    &SERVER_STREAM,
                    sv(""),
                    CallOptions::new(),
                )
                .await?;
            let first = stream.message().await?;
            Ok::<_, Status>((first, stream.message().await))
        });
        call.pending();

        // Draining alone ends nothing.
        trigger.drain();
        call.pending();
        assert_eq!(dropped.get(), 0, "{wire:?}");

        let before = call.wakes();
        trigger.force();
        assert!(call.wakes() > before, "{wire:?}: forcing wakes the call");
        let (first, second) = call.ready().unwrap();
        assert_eq!(first.unwrap().value, "first", "{wire:?}");
        let status = second.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{wire:?}: {status:?}");
        assert_eq!(dropped.get(), 1, "{wire:?}: the handler was dropped");
    }
}

#[test]
fn calls_arriving_after_a_forced_shutdown_fail_with_unavailable() {
    let timer = ManualTimer::new();
    let (client, trigger) = connected(Echo::new(), Wire::Connect, &timer);
    let served = block_on(client.unary::<StringValue, StringValue>(
        &UNARY,
        sv("before"),
        CallOptions::new(),
    ));
    assert_eq!(served.unwrap().message().value, "before");
    trigger.drain();
    let draining = block_on(client.unary::<StringValue, StringValue>(
        &UNARY,
        sv("draining"),
        CallOptions::new(),
    ));
    assert_eq!(
        draining.unwrap().message().value,
        "draining",
        "draining still serves"
    );
    trigger.force();
    let status =
        block_on(client.unary::<StringValue, StringValue>(&UNARY, sv("late"), CallOptions::new()))
            .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
}

#[test]
fn handlers_see_draining_and_end_their_streams_with_a_last_message() {
    for wire in PROTOCOLS {
        let timer = ManualTimer::new();
        let echo = Echo::new().on_server_stream(|request, mut responses| async move {
            let shutdown = request.context().shutdown();
            responses.send(sv("hello")).await?;
            shutdown.draining().await;
            assert!(shutdown.is_draining() && !shutdown.is_forced());
            responses.send(sv("goodbye")).await
        });
        let (client, trigger) = connected(echo, wire, &timer);
        let method = SERVER_STREAM;
        let mut call = Task::new(collect_server_stream(&client, &method, sv("")));
        call.pending();
        call.pending();
        assert_eq!(call.wakes(), 0, "{wire:?}");
        trigger.drain();
        // (The driver's watch for the forced phase is woken too: at least one wake.)
        assert!(
            call.wakes() >= 1,
            "{wire:?}: draining wakes the handler's task"
        );
        let received = call.run().unwrap();
        assert_eq!(values(&received), ["hello", "goodbye"], "{wire:?}");
    }
}

#[test]
fn handlers_see_the_connection_peer_and_no_shutdown_without_one() {
    let timer = ManualTimer::new();
    let echo = Echo::new().on_unary(|request| async move {
        let ctx = request.context();
        let peer = ctx
            .peer()
            .map(|p| format!("{:?}->{:?}", p.remote_addr, p.local_addr));
        let shutdown = ctx.shutdown();
        let seen = format!("{peer:?} draining={}", shutdown.is_draining());
        Ok(Response::new(StringValue::from(seen)))
    });
    let (connected_client, trigger) = connected(echo.clone(), Wire::Grpc, &timer);
    trigger.drain();
    let seen = block_on(connected_client.unary::<StringValue, StringValue>(
        &UNARY,
        sv(""),
        CallOptions::new(),
    ))
    .unwrap();
    assert_eq!(
        seen.message().value,
        "Some(\"Some(192.0.2.7:40000)->Some(192.0.2.1:443)\") draining=true"
    );

    // Without a ConnectionInfo (no adapter recorded one): no peer, a signal that never fires.
    let bare = client(serve(echo, &timer), Wire::Grpc, Codec::Proto, &timer);
    let seen = block_on(bare.unary::<StringValue, StringValue>(&UNARY, sv(""), CallOptions::new()))
        .unwrap();
    assert_eq!(seen.message().value, "None draining=false");
}
