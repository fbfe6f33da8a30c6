//! The `CallObserver` metrics hook, on both sides of in-process calls over Connect, gRPC and
//! gRPC-Web: one start and one end per call on each side, with the outcome, message counts,
//! wire bytes (the same on both sides) and durations on the manual clock — for successes,
//! handler errors, protocol errors the core detects, interceptor rejections, a client that
//! drops its call mid-stream, and deadlines enforced by either side.

mod support;

use std::future::pending;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use buffa_types::google::protobuf::StringValue;
use connect_proto_core::ServerConfig;
use connect_tower::client::{CallOptions, Client, RetryPolicy};
use connect_tower::intercept::InterceptFuture;
use connect_tower::observe::{CallEnd, CallObserver, CallStart, Side};
use connect_tower::server::{ConnectService, Interceptor};
use connect_tower::{Code, Codec, MethodSpec, RequestContext, Response, Status};
use support::*;

const MILLI: Duration = Duration::from_millis(1);

#[derive(Clone, Debug)]
enum Seen {
    Start(CallStart),
    End(CallEnd),
}

/// Records every start and end it hears of.
#[derive(Clone, Default)]
struct Recording(Arc<Mutex<Vec<Seen>>>);

impl CallObserver for Recording {
    fn on_call_start(&self, call: &CallStart) {
        self.0.lock().unwrap().push(Seen::Start(call.clone()));
    }

    fn on_call_end(&self, call: &CallEnd) {
        self.0.lock().unwrap().push(Seen::End(call.clone()));
    }
}

impl Recording {
    /// The one call seen: exactly one start, then exactly one end.
    #[track_caller]
    fn one_call(&self) -> (CallStart, CallEnd) {
        let seen = std::mem::take(&mut *self.0.lock().unwrap());
        match seen.as_slice() {
            [Seen::Start(start), Seen::End(end)] => (start.clone(), end.clone()),
            other => panic!("expected one start, then one end; saw {other:#?}"),
        }
    }

    /// How many starts and ends were seen.
    fn counts(&self) -> (usize, usize) {
        let seen = self.0.lock().unwrap();
        let starts = seen.iter().filter(|s| matches!(s, Seen::Start(_))).count();
        (starts, seen.len() - starts)
    }
}

/// An in-process client and server, each with a recording observer.
struct Observed {
    timer: ManualTimer,
    server: Recording,
    client: Recording,
    calls: Client<ConnectService<Echo>>,
}

fn observed(echo: Echo, wire: Wire, config: ServerConfig) -> Observed {
    observed_with(echo, wire, config, |builder| builder)
}

fn observed_with(
    echo: Echo,
    wire: Wire,
    config: ServerConfig,
    build: impl FnOnce(
        connect_tower::server::ConnectServiceBuilder<Echo>,
    ) -> connect_tower::server::ConnectServiceBuilder<Echo>,
) -> Observed {
    let timer = ManualTimer::new();
    let (server, client_seen) = (Recording::default(), Recording::default());
    let service = build(
        ConnectService::builder(echo)
            .config(config)
            .timer(timer.clone())
            .observer(server.clone()),
    )
    .build();
    let calls = client(service, wire, Codec::Proto, &timer).observer(client_seen.clone());
    Observed {
        timer,
        server,
        client: client_seen,
        calls,
    }
}

/// Checks what both sides saw of one call: the start of each, the same outcome, message
/// counts and wire bytes on both sides; returns the two ends (server, client).
#[track_caller]
fn both_ends(
    observed: &Observed,
    wire: Wire,
    method: &MethodSpec,
    code: Option<Code>,
    messages: (u64, u64),
) -> (CallEnd, CallEnd) {
    let (server_start, server_end) = observed.server.one_call();
    let (client_start, client_end) = observed.client.one_call();
    for (start, side) in [(&server_start, Side::Server), (&client_start, Side::Client)] {
        assert_eq!(start.side(), side, "{wire:?}");
        assert_eq!(start.method(), method, "{wire:?}");
        assert_eq!(start.path(), method.path(), "{wire:?}");
        assert_eq!(start.service(), "test.v1.Echo", "{wire:?}");
        assert_eq!(start.protocol(), wire.protocol(), "{wire:?}");
        assert_eq!(start.codec(), Codec::Proto, "{wire:?}");
        assert_eq!(start.request_compression(), None, "{wire:?}");
    }
    for (end, side) in [(&server_end, "server"), (&client_end, "client")] {
        assert_eq!(end.code(), code, "{wire:?} {side}");
        assert_eq!(end.code_name(), code.map_or("ok", Code::as_str));
        assert_eq!(
            (end.request_messages(), end.response_messages()),
            messages,
            "{wire:?} {side}: messages"
        );
    }
    // The server negotiated gzip (the client accepts it); small messages go uncompressed, so
    // a Connect unary response names none, while enveloped ones name it in their head.
    assert_eq!(server_end.response_compression(), Some("gzip"), "{wire:?}");
    assert!(
        matches!(client_end.response_compression(), None | Some("gzip")),
        "{wire:?}: {client_end:?}"
    );
    assert_eq!(
        server_end.request_bytes(),
        client_end.request_bytes(),
        "{wire:?}: request bytes on both sides"
    );
    assert_eq!(
        server_end.response_bytes(),
        client_end.response_bytes(),
        "{wire:?}: response bytes on both sides"
    );
    (server_end, client_end)
}

/// The encoded size of a message.
fn encoded_len(message: &StringValue) -> u64 {
    Codec::Proto.encode(message).expect("encode").len() as u64
}

#[test]
fn unary_calls_are_observed_once_on_each_side_with_exact_sizes() {
    // The unary fast path and the general path (shared call state).
    for (wire, echo) in WIRES
        .iter()
        .flat_map(|wire| [(*wire, Echo::new()), (*wire, Echo::new().general_path())])
    {
        let observed = observed(echo, wire, ServerConfig::new());
        let response = block_on(observed.calls.unary::<StringValue, StringValue>(
            &UNARY,
            sv("hello"),
            CallOptions::new(),
        ))
        .unwrap();
        assert_eq!(response.message().value, "hello");
        let (server, _) = both_ends(&observed, wire, &UNARY, None, (1, 1));
        let message = encoded_len(&sv("hello"));
        let framed = framed_len(Codec::Proto, &sv("hello")) as u64;
        match wire {
            // A Connect unary body is the bare message.
            Wire::Connect => {
                assert_eq!(server.request_bytes(), message);
                assert_eq!(server.response_bytes(), message);
            }
            // gRPC: one envelope each way (the status travels in HTTP trailers).
            Wire::Grpc => {
                assert_eq!(server.request_bytes(), framed);
                assert_eq!(server.response_bytes(), framed);
            }
            // gRPC-Web: an envelope, and the response adds its trailer frame.
            Wire::GrpcWeb => {
                assert_eq!(server.request_bytes(), framed);
                assert!(server.response_bytes() > framed, "{server:?}");
            }
            // Base64 text: a third larger.
            Wire::GrpcWebText => assert!(server.request_bytes() > framed, "{server:?}"),
        }
        assert_eq!(server.duration(), Duration::ZERO, "the clock stood still");
    }
}

#[test]
fn a_connect_get_has_no_request_body_but_one_request_message() {
    let observed = observed(Echo::new(), Wire::Connect, ServerConfig::new());
    block_on(observed.calls.unary::<StringValue, StringValue>(
        &LOOKUP,
        sv("query"),
        CallOptions::new(),
    ))
    .unwrap();
    let (server, _) = both_ends(&observed, Wire::Connect, &LOOKUP, None, (1, 1));
    assert_eq!(server.request_bytes(), 0);
    assert_eq!(server.response_bytes(), encoded_len(&sv("query")));
}

#[test]
fn streams_count_every_message_on_both_sides() {
    for wire in PROTOCOLS {
        // Server streaming: one request, three responses.
        let observed = observed(Echo::new(), wire, ServerConfig::new());
        let received = block_on(collect_server_stream(
            &observed.calls,
            &SERVER_STREAM,
            sv("x,y,z"),
        ))
        .unwrap();
        assert_eq!(values(&received), ["x", "y", "z"]);
        let (server, _) = both_ends(&observed, wire, &SERVER_STREAM, None, (1, 3));
        assert!(server.response_bytes() >= 3 * framed_len(Codec::Proto, &sv("x")) as u64);

        // Client streaming: four requests, one response.
        let response = block_on(async {
            let mut call = observed
                .calls
                .client_streaming::<StringValue, StringValue>(&CLIENT_STREAM, CallOptions::new())
                .await?;
            for part in ["a", "b", "c", "d"] {
                call.send(sv(part)).await?;
            }
            call.finish().await
        })
        .unwrap();
        assert_eq!(response.message().value, "a,b,c,d");
        let (server, _) = both_ends(&observed, wire, &CLIENT_STREAM, None, (4, 1));
        assert_eq!(
            server.request_bytes(),
            4 * framed_len(Codec::Proto, &sv("a")) as u64
        );

        // Bidi: two each way.
        block_on(async {
            let mut call = observed
                .calls
                .bidi_streaming::<StringValue, StringValue>(&BIDI, CallOptions::new())
                .await?;
            for part in ["p", "q"] {
                call.send(sv(part)).await?;
                assert_eq!(call.message().await?.unwrap().value, part);
            }
            call.close_send()?;
            assert!(call.message().await?.is_none());
            Ok::<_, Status>(())
        })
        .unwrap();
        both_ends(&observed, wire, &BIDI, None, (2, 2));
    }
}

#[test]
fn handler_errors_carry_their_code_on_both_sides() {
    for wire in PROTOCOLS {
        let echo = Echo::new()
            .on_unary(|_request| async { Err(Status::new(Code::NotFound, "no such thing")) })
            .on_server_stream(|_request, mut responses| async move {
                responses.send(sv("one")).await?;
                Err(Status::new(Code::FailedPrecondition, "stopped"))
            });
        let observed = observed(echo, wire, ServerConfig::new());
        let status = block_on(observed.calls.unary::<StringValue, StringValue>(
            &UNARY,
            sv("x"),
            CallOptions::new(),
        ))
        .unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
        let (_, client) = both_ends(&observed, wire, &UNARY, Some(Code::NotFound), (1, 0));
        assert_eq!(client.code_name(), "not_found");

        let status = block_on(collect_server_stream(
            &observed.calls,
            &SERVER_STREAM,
            sv("x"),
        ))
        .unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition);
        both_ends(
            &observed,
            wire,
            &SERVER_STREAM,
            Some(Code::FailedPrecondition),
            (1, 1),
        );
    }
}

#[test]
fn statuses_the_core_decides_are_observed() {
    for wire in PROTOCOLS {
        // A request larger than the server accepts: `resource_exhausted`, from the core.
        let limited = || ServerConfig::new().max_receive_message_size(8);
        let observed = observed(Echo::new(), wire, limited());
        let big = sv("far too long for the limit");
        let status = block_on(observed.calls.unary::<StringValue, StringValue>(
            &UNARY,
            big.clone(),
            CallOptions::new(),
        ))
        .unwrap_err();
        assert_eq!(status.code(), Code::ResourceExhausted, "{wire:?}");
        let (_, server) = observed.server.one_call();
        let (_, client) = observed.client.one_call();
        assert_eq!(server.code(), Some(Code::ResourceExhausted));
        assert_eq!(client.code(), Some(Code::ResourceExhausted));
        // The client sent its message; the server never delivered it to the handler.
        assert_eq!(server.request_messages(), 0);
        assert_eq!(client.request_messages(), 1);
        assert_eq!(server.request_bytes(), client.request_bytes());
        assert_eq!(server.response_bytes(), client.response_bytes());

        // The same in a request stream after a message that fits: the handler reads the
        // first, then the core's status.
        let status = block_on(async {
            let mut call = observed
                .calls
                .client_streaming::<StringValue, StringValue>(&CLIENT_STREAM, CallOptions::new())
                .await?;
            call.send(sv("ok")).await?;
            call.send(big.clone()).await?;
            call.finish().await
        })
        .unwrap_err();
        assert_eq!(status.code(), Code::ResourceExhausted, "{wire:?}");
        let (server_start, server_end) = observed.server.one_call();
        let (_, client_end) = observed.client.one_call();
        assert_eq!(server_start.method(), &CLIENT_STREAM);
        assert_eq!(server_end.code(), Some(Code::ResourceExhausted));
        assert_eq!(server_end.request_messages(), 1, "the one that fit");
        assert_eq!(client_end.code(), Some(Code::ResourceExhausted));
        assert_eq!(client_end.request_messages(), 2);
    }

    // A Connect GET whose message is over the limit fails at admission, before any handler.
    let observed = observed(
        Echo::new(),
        Wire::Connect,
        ServerConfig::new().max_receive_message_size(8),
    );
    let status = block_on(observed.calls.unary::<StringValue, StringValue>(
        &LOOKUP,
        sv("far too long for the limit"),
        CallOptions::new(),
    ))
    .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    let (_, server) = observed.server.one_call();
    assert_eq!(server.code(), Some(Code::ResourceExhausted));
    assert_eq!(
        observed.client.one_call().1.code(),
        Some(Code::ResourceExhausted)
    );
}

/// Rejects every call.
struct Deny;

impl Interceptor for Deny {
    fn on_request<'a>(&'a self, _ctx: &'a mut RequestContext) -> InterceptFuture<'a> {
        Box::pin(std::future::ready(Err(Status::new(
            Code::PermissionDenied,
            "no",
        )
        .into())))
    }
}

#[test]
fn interceptor_rejections_and_unimplemented_methods_are_observed() {
    for wire in PROTOCOLS {
        let observed = observed_with(Echo::new(), wire, ServerConfig::new(), |builder| {
            builder.interceptor(Deny)
        });
        let status = block_on(observed.calls.unary::<StringValue, StringValue>(
            &UNARY,
            sv("x"),
            CallOptions::new(),
        ))
        .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied);
        let (_, server) = observed.server.one_call();
        let (_, client) = observed.client.one_call();
        assert_eq!(server.code(), Some(Code::PermissionDenied));
        assert_eq!(client.code(), Some(Code::PermissionDenied));
        // The request body was never read, nor a response message sent.
        assert_eq!((server.request_bytes(), server.request_messages()), (0, 0));
        assert_eq!(server.response_messages(), 0);
        assert_eq!(server.response_bytes(), client.response_bytes());

        let observed = observed_with(Echo::new(), wire, ServerConfig::new(), |b| b);
        let status = block_on(observed.calls.unary::<StringValue, StringValue>(
            &MISSING,
            sv("x"),
            CallOptions::new(),
        ))
        .unwrap_err();
        assert_eq!(status.code(), Code::Unimplemented);
        assert_eq!(
            observed.server.one_call().1.code(),
            Some(Code::Unimplemented)
        );
        assert_eq!(
            observed.client.one_call().1.code(),
            Some(Code::Unimplemented)
        );
    }
}

/// An echo service whose handlers wait forever (the server-streaming one after a message).
fn hanging_echo() -> Echo {
    Echo::new()
        .on_unary(|_request| pending::<Result<Response<StringValue>, Status>>())
        .on_server_stream(|_request, mut responses| async move {
            responses.send(sv("first")).await?;
            pending().await
        })
        .on_bidi(|_request, _responses| pending())
}

#[test]
fn a_client_counts_the_messages_it_delivered_not_those_that_arrived() {
    // Twenty messages arrive in one chunk; the application reads five and drops the stream.
    for wire in PROTOCOLS {
        let observed = observed(Echo::new(), wire, ServerConfig::new());
        let parts: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
        let mut stream = block_on(observed.calls.server_streaming::<StringValue, StringValue>(
            &SERVER_STREAM,
            sv(&parts.join(",")),
            CallOptions::new(),
        ))
        .unwrap();
        for part in &parts[..5] {
            assert_eq!(&block_on(stream.message()).unwrap().unwrap().value, part);
        }
        drop(stream);
        let (_, client) = observed.client.one_call();
        assert_eq!(client.response_messages(), 5, "{wire:?}");
        let (_, server) = observed.server.one_call();
        assert_eq!(server.response_messages(), 20, "{wire:?}");

        // Under a retry policy the first message is read before the application gets the
        // stream (until then the attempt may be retried); dropped unread, none was delivered.
        let retrying = observed.calls.clone().retry_policy(RetryPolicy::default());
        let stream = block_on(retrying.server_streaming::<StringValue, StringValue>(
            &SERVER_STREAM,
            sv(&parts.join(",")),
            CallOptions::new(),
        ))
        .unwrap();
        drop(stream);
        let (_, client) = observed.client.one_call();
        assert_eq!(client.response_messages(), 0, "{wire:?}: retried stream");
        observed.server.one_call();
    }
}

#[test]
fn a_client_that_drops_its_call_is_observed_as_cancelled_on_both_sides() {
    for wire in PROTOCOLS {
        let observed = observed(hanging_echo(), wire, ServerConfig::new());

        // Mid-stream: after one response message.
        let mut stream = block_on(observed.calls.server_streaming::<StringValue, StringValue>(
            &SERVER_STREAM,
            sv("x"),
            CallOptions::new(),
        ))
        .unwrap();
        assert_eq!(block_on(stream.message()).unwrap().unwrap().value, "first");
        assert_eq!(observed.server.counts(), (1, 0), "the call is in flight");
        assert_eq!(observed.client.counts(), (1, 0));
        observed.timer.advance(7 * MILLI);
        drop(stream);
        let (server, client) = both_ends(
            &observed,
            wire,
            &SERVER_STREAM,
            Some(Code::Canceled),
            (1, 1),
        );
        assert_eq!(server.duration(), 7 * MILLI);
        assert_eq!(client.duration(), 7 * MILLI);

        // A unary call future dropped while waiting for its answer.
        let mut call = Task::new(observed.calls.unary::<StringValue, StringValue>(
            &UNARY,
            sv("x"),
            CallOptions::new(),
        ));
        call.pending();
        drop(call);
        both_ends(&observed, wire, &UNARY, Some(Code::Canceled), (1, 0));

        // A bidi call cancelled explicitly, then dropped.
        let mut call = block_on(
            observed
                .calls
                .bidi_streaming::<StringValue, StringValue>(&BIDI, CallOptions::new()),
        )
        .unwrap();
        block_on(call.send(sv("a"))).unwrap();
        Task::new(call.headers()).pending();
        call.cancel();
        drop(call);
        let (server_start, server_end) = observed.server.one_call();
        let (_, client_end) = observed.client.one_call();
        assert_eq!(server_start.method(), &BIDI);
        assert_eq!(server_end.code(), Some(Code::Canceled));
        assert_eq!(client_end.code(), Some(Code::Canceled));
        assert_eq!(client_end.request_messages(), 1);

        // A unary call future dropped before it was ever polled: the client saw it start,
        // the server never did.
        drop(
            observed
                .calls
                .unary::<StringValue, StringValue>(&UNARY, sv("x"), CallOptions::new()),
        );
        let (_, client_end) = observed.client.one_call();
        assert_eq!(client_end.code(), Some(Code::Canceled));
        assert_eq!(observed.server.counts(), (0, 0));
    }
}

#[test]
fn deadlines_are_observed_on_both_sides_with_exact_durations() {
    for wire in PROTOCOLS {
        // The server's deadline comes first (its `max_timeout`): it answers
        // `deadline_exceeded`, which the client reports.
        let observed = observed(
            hanging_echo(),
            wire,
            ServerConfig::new().max_timeout(Some(50 * MILLI)),
        );
        let mut call = Task::new(observed.calls.unary::<StringValue, StringValue>(
            &UNARY,
            sv("x"),
            CallOptions::new().timeout(100 * MILLI),
        ));
        call.pending();
        observed.timer.advance(50 * MILLI);
        assert_eq!(call.run().unwrap_err().code(), Code::DeadlineExceeded);
        let (server, client) = both_ends(
            &observed,
            wire,
            &UNARY,
            Some(Code::DeadlineExceeded),
            (1, 0),
        );
        assert_eq!(server.duration(), 50 * MILLI);
        assert_eq!(client.duration(), 50 * MILLI);

        // The client's deadline comes first, mid-stream: the client gives up, and the server
        // sees a client that went away.
        let mut stream = block_on(observed.calls.server_streaming::<StringValue, StringValue>(
            &SERVER_STREAM,
            sv("x"),
            CallOptions::new().timeout(30 * MILLI),
        ))
        .unwrap();
        assert_eq!(block_on(stream.message()).unwrap().unwrap().value, "first");
        let mut next = Task::new(stream.message());
        next.pending();
        observed.timer.advance(30 * MILLI);
        assert_eq!(next.run().unwrap_err().code(), Code::DeadlineExceeded);
        drop(next);
        let (_, client) = observed.client.one_call();
        assert_eq!(client.code(), Some(Code::DeadlineExceeded));
        assert_eq!(client.response_messages(), 1);
        assert_eq!(client.duration(), 30 * MILLI);
        drop(stream);
        // In process, nobody polls the server after the client gave up: it sees the client
        // go away (over a network its own deadline, sent in the timeout header, could fire
        // first).
        let (_, server) = observed.server.one_call();
        assert_eq!(server.code(), Some(Code::Canceled), "{wire:?}");
        assert_eq!(server.response_messages(), 1);
        assert_eq!(server.duration(), 30 * MILLI);
    }
}

#[test]
fn many_calls_make_as_many_starts_and_ends() {
    let observed = observed(Echo::new(), Wire::Grpc, ServerConfig::new());
    for round in 0..20 {
        let message = format!("call {round}");
        block_on(observed.calls.unary::<StringValue, StringValue>(
            &UNARY,
            sv(&message),
            CallOptions::new(),
        ))
        .unwrap();
        block_on(collect_server_stream(
            &observed.calls,
            &SERVER_STREAM,
            sv("a,b"),
        ))
        .unwrap();
    }
    assert_eq!(observed.server.counts(), (40, 40));
    assert_eq!(observed.client.counts(), (40, 40));
}

/// An observer that panics.
struct Panicky;

impl CallObserver for Panicky {
    fn on_call_start(&self, _call: &CallStart) {
        panic!("observer panicked at the start");
    }

    fn on_call_end(&self, _call: &CallEnd) {
        panic!("observer panicked at the end");
    }
}

#[test]
fn a_panicking_observer_does_not_break_calls() {
    let timer = ManualTimer::new();
    let service = ConnectService::builder(Echo::new())
        .timer(timer.clone())
        .observer(Panicky)
        .build();
    let calls = client(service, Wire::Grpc, Codec::Proto, &timer).observer(Arc::new(Panicky));
    for _ in 0..3 {
        let response = block_on(calls.unary::<StringValue, StringValue>(
            &UNARY,
            sv("still here"),
            CallOptions::new(),
        ))
        .unwrap();
        assert_eq!(response.message().value, "still here");
        let received = block_on(collect_server_stream(&calls, &SERVER_STREAM, sv("a,b"))).unwrap();
        assert_eq!(values(&received), ["a", "b"]);
    }
}
