//! The `tracing` feature: one span per call on each side, captured by a hand-written
//! subscriber, for unary and streaming calls, successes and errors, over Connect, gRPC and
//! gRPC-Web — names and OpenTelemetry attributes, codes, message counts and wire bytes
//! recorded when the call ends, spans that stay open until then, and handler events and
//! nested client calls inside the server's span.
#![cfg(feature = "tracing")]

mod support;

use std::collections::BTreeMap;
use std::fmt;
use std::future::pending;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use buffa_types::google::protobuf::StringValue;
use connect_proto_core::ServerConfig;
use connect_tower::client::{CallOptions, Client};
use connect_tower::rt::ShutdownSignal;
use connect_tower::server::ConnectService;
use connect_tower::{Code, Codec, ConnectionInfo, PeerInfo, Response, Status};
use support::*;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};

// ---------------------------------------------------------------------------------------------
// A subscriber that records spans, their fields, parents and closing, and events' spans.

/// A captured span.
#[derive(Clone, Debug)]
struct Captured {
    id: u64,
    name: &'static str,
    target: String,
    parent: Option<u64>,
    fields: BTreeMap<String, String>,
    /// Open handles (the span closes when the last one is dropped).
    refs: usize,
}

impl Captured {
    /// A field's value, or `None` when it was never recorded.
    fn get(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }

    #[track_caller]
    fn field(&self, name: &str) -> &str {
        self.get(name)
            .unwrap_or_else(|| panic!("no field {name} in {self:#?}"))
    }

    fn closed(&self) -> bool {
        self.refs == 0
    }
}

#[derive(Default)]
struct Captures {
    spans: Vec<Captured>,
    /// Entered spans (one thread per test).
    stack: Vec<u64>,
    /// Each event's message and the span it happened in.
    events: Vec<(String, Option<u64>)>,
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Captures>>);

impl Capture {
    fn lock(&self) -> MutexGuard<'_, Captures> {
        self.0.lock().unwrap()
    }

    /// Every span named `name`, in creation order.
    fn named(&self, name: &str) -> Vec<Captured> {
        self.lock()
            .spans
            .iter()
            .filter(|span| span.name == name)
            .cloned()
            .collect()
    }

    /// The one server span and the one client span, both closed; clears the capture.
    #[track_caller]
    fn one_call(&self) -> (Captured, Captured) {
        let (server, client) = (self.named("rpc.server"), self.named("rpc.client"));
        assert_eq!(
            (server.len(), client.len()),
            (1, 1),
            "{server:#?}\n{client:#?}"
        );
        let (server, client) = (server[0].clone(), client[0].clone());
        assert!(server.closed(), "the server span is closed: {server:#?}");
        assert!(client.closed(), "the client span is closed: {client:#?}");
        *self.lock() = Captures::default();
        (server, client)
    }
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
}

impl Subscriber for Capture {
    fn register_callsite(&self, _metadata: &'static Metadata<'static>) -> Interest {
        Interest::sometimes()
    }

    fn enabled(&self, _metadata: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, attributes: &Attributes<'_>) -> Id {
        let mut captures = self.lock();
        let id = captures.spans.len() as u64 + 1;
        let parent = match attributes.parent() {
            Some(parent) => Some(parent.into_u64()),
            None if attributes.is_contextual() => captures.stack.last().copied(),
            None => None,
        };
        let mut fields = BTreeMap::new();
        attributes.record(&mut Fields(&mut fields));
        captures.spans.push(Captured {
            id,
            name: attributes.metadata().name(),
            target: attributes.metadata().target().to_owned(),
            parent,
            fields,
            refs: 1,
        });
        Id::from_u64(id)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        let mut captures = self.lock();
        if let Some(captured) = captures.spans.get_mut(span.into_u64() as usize - 1) {
            values.record(&mut Fields(&mut captured.fields));
        }
    }

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        let mut captures = self.lock();
        let span = captures.stack.last().copied();
        let message = fields.remove("message").unwrap_or_default();
        captures.events.push((message, span));
    }

    fn enter(&self, span: &Id) {
        self.lock().stack.push(span.into_u64());
    }

    fn exit(&self, span: &Id) {
        let mut captures = self.lock();
        if let Some(at) = captures.stack.iter().rposition(|id| *id == span.into_u64()) {
            captures.stack.remove(at);
        }
    }

    fn clone_span(&self, span: &Id) -> Id {
        if let Some(captured) = self.lock().spans.get_mut(span.into_u64() as usize - 1) {
            captured.refs += 1;
        }
        span.clone()
    }

    fn try_close(&self, span: Id) -> bool {
        match self.lock().spans.get_mut(span.into_u64() as usize - 1) {
            Some(captured) => {
                captured.refs -= 1;
                captured.refs == 0
            }
            None => false,
        }
    }
}

/// Runs `test` with a fresh capturing subscriber as this thread's default.
fn captured(test: impl FnOnce(&Capture)) {
    let capture = Capture::default();
    tracing::subscriber::with_default(capture.clone(), || test(&capture));
}

// ---------------------------------------------------------------------------------------------
// Setups.

/// Where the in-process server says its client is.
const PEER: &str = "192.0.2.7:40123";

/// An in-process client of `echo`, through a layer that records the peer as an adapter does.
fn calls(
    echo: Echo,
    wire: Wire,
    config: ServerConfig,
    timer: &ManualTimer,
) -> Client<WithConnection<ConnectService<Echo>>> {
    let service = ConnectService::builder(echo)
        .config(config)
        .timer(timer.clone())
        .build();
    let peer: SocketAddr = PEER.parse().unwrap();
    let info = ConnectionInfo::new(PeerInfo::new(Some(peer), None), ShutdownSignal::default());
    let transport = WithConnection {
        inner: service,
        info,
    };
    client(transport, wire, Codec::Proto, &timer.clone())
}

/// The attributes every span of a call to `method` over `wire` carries from its start.
#[track_caller]
fn assert_call_attributes(span: &Captured, wire: Wire, method: &str) {
    let (system, protocol) = match wire {
        Wire::Connect => ("connect_rpc", "connect"),
        Wire::Grpc => ("grpc", "grpc"),
        Wire::GrpcWeb | Wire::GrpcWebText => ("grpc", "grpc_web"),
    };
    let kind = match span.name {
        "rpc.server" => "server",
        _ => "client",
    };
    assert_eq!(span.target, format!("connect_tower::{kind}"));
    assert_eq!(span.field("otel.kind"), kind);
    assert_eq!(span.field("otel.name"), format!("test.v1.Echo/{method}"));
    assert_eq!(span.field("rpc.system"), system, "{wire:?}");
    assert_eq!(span.field("rpc.service"), "test.v1.Echo");
    assert_eq!(span.field("rpc.method"), method);
    assert_eq!(span.field("connect.protocol"), protocol);
    assert_eq!(span.field("connect.codec"), "proto");
    match kind {
        "server" => {
            assert_eq!(span.field("network.peer.address"), "192.0.2.7");
            assert_eq!(span.field("network.peer.port"), "40123");
        }
        _ => {
            assert_eq!(span.field("server.address"), "in-process.test");
            assert_eq!(span.field("server.port"), "80");
            assert_eq!(span.field("network.peer.address"), "in-process.test");
            assert_eq!(span.field("network.peer.port"), "80");
        }
    }
}

/// The outcome fields of a span: the status code field of its protocol and the error status.
#[track_caller]
fn assert_outcome(span: &Captured, wire: Wire, code: Option<Code>, error: bool) {
    match wire {
        Wire::Connect => {
            assert_eq!(span.get("rpc.grpc.status_code"), None);
            assert_eq!(
                span.get("rpc.connect_rpc.error_code"),
                code.map(Code::as_str),
                "{span:#?}"
            );
        }
        _ => {
            assert_eq!(span.get("rpc.connect_rpc.error_code"), None);
            let numeric = code.map_or(0, Code::value).to_string();
            assert_eq!(span.get("rpc.grpc.status_code"), Some(numeric.as_str()));
        }
    }
    let status = error.then_some("ERROR");
    assert_eq!(span.get("otel.status_code"), status, "{wire:?}: {span:#?}");
}

/// The traffic fields: (messages sent, received); bytes sent by one side were received by the
/// other.
#[track_caller]
fn assert_traffic(server: &Captured, client: &Captured, server_messages: (u64, u64)) {
    let (sent, received) = server_messages;
    assert_eq!(server.field("connect.messages_sent"), sent.to_string());
    assert_eq!(
        server.field("connect.messages_received"),
        received.to_string()
    );
    assert_eq!(client.field("connect.messages_sent"), received.to_string());
    assert_eq!(client.field("connect.messages_received"), sent.to_string());
    assert_eq!(
        server.field("connect.bytes_sent"),
        client.field("connect.bytes_received")
    );
    assert_eq!(
        server.field("connect.bytes_received"),
        client.field("connect.bytes_sent")
    );
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[test]
fn unary_calls_have_a_span_on_each_side_with_the_conventions_attributes() {
    captured(|capture| {
        for wire in WIRES {
            let timer = ManualTimer::new();
            let calls = calls(Echo::new(), wire, ServerConfig::new(), &timer);
            let response = block_on(calls.unary::<StringValue, StringValue>(
                &UNARY,
                sv("hello"),
                CallOptions::new(),
            ))
            .unwrap();
            assert_eq!(response.message().value, "hello");
            let (server, client) = capture.one_call();
            for span in [&server, &client] {
                assert_call_attributes(span, wire, "Unary");
                assert_outcome(span, wire, None, false);
            }
            assert_traffic(&server, &client, (1, 1));
            let framed = framed_len(Codec::Proto, &sv("hello")).to_string();
            match wire {
                Wire::Connect => assert_eq!(server.field("connect.bytes_received"), "7"),
                Wire::Grpc => {
                    assert_eq!(server.field("connect.bytes_received"), framed);
                    assert_eq!(server.field("connect.bytes_sent"), framed);
                }
                Wire::GrpcWeb => assert_eq!(server.field("connect.bytes_received"), framed),
                Wire::GrpcWebText => {}
            }
            assert_eq!(server.parent, None, "a server span is a root here");
            assert_eq!(client.parent, None);
        }
    });
}

#[test]
fn errors_set_the_code_and_the_error_status_as_the_conventions_say() {
    captured(|capture| {
        for wire in PROTOCOLS {
            let timer = ManualTimer::new();
            let echo = Echo::new()
                .on_unary(|request| async move {
                    match request.message().value.as_str() {
                        "missing" => Err(Status::new(Code::NotFound, "no such thing")),
                        _ => Err(Status::new(Code::Internal, "broken")),
                    }
                })
                .on_server_stream(|_request, mut responses| async move {
                    responses.send(sv("one")).await?;
                    responses.send(sv("two")).await?;
                    Err(Status::new(Code::Unavailable, "going away"))
                });
            let calls = calls(echo, wire, ServerConfig::new(), &timer);

            // `not_found`: the server answered on purpose. A gRPC server span is not an error
            // then; a Connect one is (any error code is), and so is every client span.
            let status = block_on(calls.unary::<StringValue, StringValue>(
                &UNARY,
                sv("missing"),
                CallOptions::new(),
            ))
            .unwrap_err();
            assert_eq!(status.code(), Code::NotFound);
            let (server, client) = capture.one_call();
            assert_call_attributes(&server, wire, "Unary");
            assert_outcome(&server, wire, Some(Code::NotFound), wire == Wire::Connect);
            assert_outcome(&client, wire, Some(Code::NotFound), true);
            assert_traffic(&server, &client, (0, 1));

            // `internal`: the server's fault, an error everywhere.
            block_on(calls.unary::<StringValue, StringValue>(
                &UNARY,
                sv("boom"),
                CallOptions::new(),
            ))
            .unwrap_err();
            let (server, client) = capture.one_call();
            assert_outcome(&server, wire, Some(Code::Internal), true);
            assert_outcome(&client, wire, Some(Code::Internal), true);

            // A stream that fails after two messages.
            let status =
                block_on(collect_server_stream(&calls, &SERVER_STREAM, sv("x"))).unwrap_err();
            assert_eq!(status.code(), Code::Unavailable);
            let (server, client) = capture.one_call();
            assert_call_attributes(&client, wire, "ServerStream");
            assert_outcome(&server, wire, Some(Code::Unavailable), true);
            assert_outcome(&client, wire, Some(Code::Unavailable), true);
            assert_traffic(&server, &client, (2, 1));
        }
    });
}

#[test]
fn streaming_spans_count_messages_and_last_until_the_stream_ends() {
    captured(|capture| {
        for wire in PROTOCOLS {
            let timer = ManualTimer::new();
            let calls = calls(Echo::new(), wire, ServerConfig::new(), &timer);

            // Server streaming: open while messages flow, closed after the trailers.
            let mut stream = block_on(calls.server_streaming::<StringValue, StringValue>(
                &SERVER_STREAM,
                sv("a,b,c,d"),
                CallOptions::new(),
            ))
            .unwrap();
            assert_eq!(block_on(stream.message()).unwrap().unwrap().value, "a");
            let client = &capture.named("rpc.client")[0];
            assert!(!client.closed(), "the client span is open mid-stream");
            assert_eq!(client.get("connect.messages_received"), None);
            while block_on(stream.message()).unwrap().is_some() {}
            drop(stream);
            let (server, client) = capture.one_call();
            assert_call_attributes(&server, wire, "ServerStream");
            assert_outcome(&server, wire, None, false);
            assert_outcome(&client, wire, None, false);
            assert_traffic(&server, &client, (4, 1));

            // Client streaming.
            block_on(async {
                let mut call = calls
                    .client_streaming::<StringValue, StringValue>(
                        &CLIENT_STREAM,
                        CallOptions::new(),
                    )
                    .await?;
                for part in ["a", "b", "c"] {
                    call.send(sv(part)).await?;
                }
                call.finish().await
            })
            .unwrap();
            let (server, client) = capture.one_call();
            assert_call_attributes(&server, wire, "ClientStream");
            assert_traffic(&server, &client, (1, 3));

            // Bidi.
            block_on(async {
                let mut call = calls
                    .bidi_streaming::<StringValue, StringValue>(&BIDI, CallOptions::new())
                    .await?;
                for part in ["p", "q"] {
                    call.send(sv(part)).await?;
                    call.message().await?;
                }
                call.close_send()?;
                assert!(call.message().await?.is_none());
                Ok::<_, Status>(())
            })
            .unwrap();
            let (server, client) = capture.one_call();
            assert_call_attributes(&client, wire, "Bidi");
            assert_traffic(&server, &client, (2, 2));
        }
    });
}

#[test]
fn cancelled_and_timed_out_calls_close_their_spans_with_the_code() {
    captured(|capture| {
        for wire in PROTOCOLS {
            let timer = ManualTimer::new();
            let echo = Echo::new()
                .on_unary(|_request| pending::<Result<Response<StringValue>, Status>>())
                .on_server_stream(|_request, mut responses| async move {
                    responses.send(sv("first")).await?;
                    pending().await
                });
            let config = ServerConfig::new().max_timeout(Some(std::time::Duration::from_secs(1)));
            let calls = calls(echo, wire, config, &timer);

            // The client drops the stream after one message.
            let mut stream = block_on(calls.server_streaming::<StringValue, StringValue>(
                &SERVER_STREAM,
                sv("x"),
                CallOptions::new(),
            ))
            .unwrap();
            block_on(stream.message()).unwrap();
            assert!(!capture.named("rpc.server")[0].closed());
            drop(stream);
            let (server, client) = capture.one_call();
            assert_outcome(&server, wire, Some(Code::Canceled), wire == Wire::Connect);
            assert_outcome(&client, wire, Some(Code::Canceled), true);
            assert_traffic(&server, &client, (1, 1));

            // The server's deadline.
            let mut call = Task::new(calls.unary::<StringValue, StringValue>(
                &UNARY,
                sv("x"),
                CallOptions::new(),
            ));
            call.pending();
            timer.advance(std::time::Duration::from_secs(1));
            assert_eq!(call.run().unwrap_err().code(), Code::DeadlineExceeded);
            drop(call);
            let (server, client) = capture.one_call();
            assert_outcome(&server, wire, Some(Code::DeadlineExceeded), true);
            assert_outcome(&client, wire, Some(Code::DeadlineExceeded), true);
        }
    });
}

#[test]
fn handler_events_and_nested_calls_belong_to_the_server_span() {
    captured(|capture| {
        let timer = ManualTimer::new();
        let inner = client(
            ConnectService::builder(Greeter)
                .timer(timer.clone())
                .build(),
            Wire::Grpc,
            Codec::Proto,
            &timer,
        );
        let echo = Echo::new().on_unary(move |request| {
            let inner = inner.clone();
            async move {
                tracing::info!("handling");
                let greeting = inner
                    .unary::<StringValue, StringValue>(
                        &GREET,
                        request.into_message(),
                        CallOptions::new(),
                    )
                    .await?;
                Ok(Response::new(greeting.into_message()))
            }
        });
        let calls = calls(echo, Wire::Connect, ServerConfig::new(), &timer);
        let response = block_on(calls.unary::<StringValue, StringValue>(
            &UNARY,
            sv("nested"),
            CallOptions::new(),
        ))
        .unwrap();
        assert_eq!(response.message().value, "hello, nested");

        let servers = capture.named("rpc.server");
        let clients = capture.named("rpc.client");
        assert_eq!((servers.len(), clients.len()), (2, 2));
        let outer_server = servers
            .iter()
            .find(|span| span.field("rpc.service") == "test.v1.Echo")
            .unwrap();
        let inner_client = clients
            .iter()
            .find(|span| span.field("rpc.service") == "test.v1.Greeter")
            .unwrap();
        assert_eq!(
            inner_client.parent,
            Some(outer_server.id),
            "the handler's call is a child of the server span"
        );
        assert_eq!(inner_client.field("rpc.system"), "grpc");
        let events = capture.lock().events.clone();
        assert!(
            events.contains(&("handling".to_owned(), Some(outer_server.id))),
            "{events:?}"
        );
        assert!(servers.iter().chain(&clients).all(Captured::closed));
    });
}
