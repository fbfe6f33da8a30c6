//! The echo service: a hand-written [`Dispatch`] in the shape connect-codegen generates (one
//! method of each kind over `google.protobuf.StringValue`, plus methods whose dispatch
//! misbehaves), with handlers a test can replace, serving unary calls on the fast path
//! (`dispatch_unary`) like generated services, or — [`Echo::general_path`] — through
//! `dispatch` only, like a dispatcher that does not implement it; and [`Greeter`], a second
//! service for routing tests (general path only).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use buffa_types::google::protobuf::StringValue;
use connect_tower::codec::decode_owned;
use connect_tower::server::{
    Dispatch, IncomingCall, ResponseSender, Streaming, UnaryCall, UnaryFuture,
};
use connect_tower::{Idempotency, MethodKind, MethodSpec, Request, Response, Status};

use super::{Counter, sv};

pub const UNARY_PATH: &str = "/test.v1.Echo/Unary";
pub const LOOKUP_PATH: &str = "/test.v1.Echo/Lookup";
pub const CLIENT_STREAM_PATH: &str = "/test.v1.Echo/ClientStream";
pub const SERVER_STREAM_PATH: &str = "/test.v1.Echo/ServerStream";
pub const BIDI_PATH: &str = "/test.v1.Echo/Bidi";
pub const EXPLODE_PATH: &str = "/test.v1.Echo/Explode";
pub const FORGET_PATH: &str = "/test.v1.Echo/Forget";
pub const MISSING_PATH: &str = "/test.v1.Echo/Missing";

/// Unary; the handler set with [`Echo::on_unary`] (default: echoes the request).
pub const UNARY: MethodSpec = MethodSpec::new(UNARY_PATH, MethodKind::Unary, Idempotency::Unknown);
/// Unary without side effects (Connect clients use GET); same handler as [`UNARY`].
pub const LOOKUP: MethodSpec =
    MethodSpec::new(LOOKUP_PATH, MethodKind::Unary, Idempotency::NoSideEffects);
/// Client streaming (default: joins the requests with `,`).
pub const CLIENT_STREAM: MethodSpec = MethodSpec::new(
    CLIENT_STREAM_PATH,
    MethodKind::ClientStreaming,
    Idempotency::Unknown,
);
/// Server streaming (default: one response per `,`-separated part of the request).
pub const SERVER_STREAM: MethodSpec = MethodSpec::new(
    SERVER_STREAM_PATH,
    MethodKind::ServerStreaming,
    Idempotency::Unknown,
);
/// Bidi streaming (default: echoes each request as it arrives).
pub const BIDI: MethodSpec =
    MethodSpec::new(BIDI_PATH, MethodKind::BidiStreaming, Idempotency::Unknown);
/// Unary, whose dispatch panics before any handler future exists.
pub const EXPLODE: MethodSpec =
    MethodSpec::new(EXPLODE_PATH, MethodKind::Unary, Idempotency::Unknown);
/// Unary, whose dispatch future ends without answering (no adapter runs).
pub const FORGET: MethodSpec =
    MethodSpec::new(FORGET_PATH, MethodKind::Unary, Idempotency::Unknown);
/// Unary, declared and routed to `server::unimplemented`.
pub const MISSING: MethodSpec =
    MethodSpec::new(MISSING_PATH, MethodKind::Unary, Idempotency::Unknown);

static ECHO_METHODS: [MethodSpec; 8] = [
    UNARY,
    LOOKUP,
    CLIENT_STREAM,
    SERVER_STREAM,
    BIDI,
    EXPLODE,
    FORGET,
    MISSING,
];

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type UnaryFn = Arc<
    dyn Fn(Request<StringValue>) -> BoxFuture<Result<Response<StringValue>, Status>> + Send + Sync,
>;
type ClientStreamFn = Arc<
    dyn Fn(Request<Streaming<StringValue>>) -> BoxFuture<Result<Response<StringValue>, Status>>
        + Send
        + Sync,
>;
type ServerStreamFn = Arc<
    dyn Fn(Request<StringValue>, ResponseSender<StringValue>) -> BoxFuture<Result<(), Status>>
        + Send
        + Sync,
>;
type BidiFn = Arc<
    dyn Fn(
            Request<Streaming<StringValue>>,
            ResponseSender<StringValue>,
        ) -> BoxFuture<Result<(), Status>>
        + Send
        + Sync,
>;

/// The echo service: a hand-written [`Dispatch`] in the shape connect-codegen generates, with
/// handlers a test can replace. Counts the calls it dispatches.
#[derive(Clone)]
pub struct Echo {
    unary: UnaryFn,
    client_stream: ClientStreamFn,
    server_stream: ServerStreamFn,
    bidi: BidiFn,
    /// Calls dispatched (a handler future was built for them, or dispatch panicked).
    pub dispatched: Counter,
    /// Unary calls are served through `dispatch_unary` (as generated services serve them).
    fast_unary: bool,
}

impl Default for Echo {
    fn default() -> Self {
        Echo::new()
    }
}

impl Echo {
    /// The echo service with its default handlers.
    pub fn new() -> Self {
        Echo {
            unary: Arc::new(|request| {
                Box::pin(async move { Ok(Response::new(request.into_message())) })
            }),
            client_stream: Arc::new(|request| {
                Box::pin(async move {
                    let mut stream = request.into_message();
                    let mut parts = Vec::new();
                    while let Some(message) = stream.message().await? {
                        parts.push(message.value);
                    }
                    Ok(Response::new(StringValue::from(parts.join(","))))
                })
            }),
            server_stream: Arc::new(|request, mut responses| {
                Box::pin(async move {
                    for part in request.message().value.split(',') {
                        responses.send(sv(part)).await?;
                    }
                    Ok(())
                })
            }),
            bidi: Arc::new(|request, mut responses| {
                Box::pin(async move {
                    let mut stream = request.into_message();
                    while let Some(message) = stream.message().await? {
                        responses.send(message).await?;
                    }
                    Ok(())
                })
            }),
            dispatched: Counter::new(),
            fast_unary: true,
        }
    }

    /// Serves unary calls through `dispatch` only (the general path: shared call state).
    pub fn general_path(mut self) -> Self {
        self.fast_unary = false;
        self
    }

    /// Replaces the unary handler (of [`UNARY`] and [`LOOKUP`]).
    pub fn on_unary<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(Request<StringValue>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Response<StringValue>, Status>> + Send + 'static,
    {
        self.unary = Arc::new(move |request| Box::pin(handler(request)));
        self
    }

    /// Replaces the client-streaming handler.
    pub fn on_client_stream<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(Request<Streaming<StringValue>>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Response<StringValue>, Status>> + Send + 'static,
    {
        self.client_stream = Arc::new(move |request| Box::pin(handler(request)));
        self
    }

    /// Replaces the server-streaming handler.
    pub fn on_server_stream<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(Request<StringValue>, ResponseSender<StringValue>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Status>> + Send + 'static,
    {
        self.server_stream =
            Arc::new(move |request, responses| Box::pin(handler(request, responses)));
        self
    }

    /// Replaces the bidi-streaming handler.
    pub fn on_bidi<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(Request<Streaming<StringValue>>, ResponseSender<StringValue>) -> Fut
            + Send
            + Sync
            + 'static,
        Fut: Future<Output = Result<(), Status>> + Send + 'static,
    {
        self.bidi = Arc::new(move |request, responses| Box::pin(handler(request, responses)));
        self
    }
}

impl Dispatch for Echo {
    fn methods(&self) -> &[MethodSpec] {
        &ECHO_METHODS
    }

    fn method(&self, path: &str) -> Option<MethodSpec> {
        ECHO_METHODS.iter().find(|spec| spec.path == path).cloned()
    }

    fn dispatch(&self, call: IncomingCall) -> BoxFuture<()> {
        use connect_tower::server;
        self.dispatched.incr();
        let decode = decode_owned::<StringValue>;
        match call.method().path() {
            UNARY_PATH | LOOKUP_PATH => {
                let handler = self.unary.clone();
                Box::pin(server::unary(call, decode, move |request| handler(request)))
            }
            CLIENT_STREAM_PATH => {
                let handler = self.client_stream.clone();
                Box::pin(server::client_streaming(call, decode, move |request| {
                    handler(request)
                }))
            }
            SERVER_STREAM_PATH => {
                let handler = self.server_stream.clone();
                Box::pin(server::server_streaming(
                    call,
                    decode,
                    move |request, responses| handler(request, responses),
                ))
            }
            BIDI_PATH => {
                let handler = self.bidi.clone();
                Box::pin(server::bidi_streaming(
                    call,
                    decode,
                    move |request, responses| handler(request, responses),
                ))
            }
            EXPLODE_PATH => panic!("the dispatcher exploded"),
            FORGET_PATH => Box::pin(async move { drop(call) }),
            _ => Box::pin(server::unimplemented(call)),
        }
    }

    fn dispatches_unary(&self) -> bool {
        self.fast_unary
    }

    fn dispatch_unary(&self, call: UnaryCall) -> UnaryFuture {
        use connect_tower::server;
        self.dispatched.incr();
        match call.method().path() {
            UNARY_PATH | LOOKUP_PATH => {
                let handler = self.unary.clone();
                Box::pin(server::unary_call(
                    call,
                    decode_owned::<StringValue>,
                    move |request| handler(request),
                ))
            }
            EXPLODE_PATH => panic!("the dispatcher exploded"),
            // `FORGET` has no fast-path form: a unary future always answers.
            _ => Box::pin(server::unimplemented_unary(call)),
        }
    }
}

/// A second service, for routing: `Greet` answers `hello, <name>`.
#[derive(Clone, Default)]
pub struct Greeter;

pub const GREET: MethodSpec = MethodSpec::new(
    "/test.v1.Greeter/Greet",
    MethodKind::Unary,
    Idempotency::Unknown,
);

impl Dispatch for Greeter {
    fn methods(&self) -> &[MethodSpec] {
        static METHODS: [MethodSpec; 1] = [GREET];
        &METHODS
    }

    fn method(&self, path: &str) -> Option<MethodSpec> {
        (path == GREET.path).then_some(GREET)
    }

    fn dispatch(&self, call: IncomingCall) -> BoxFuture<()> {
        Box::pin(connect_tower::server::unary(
            call,
            decode_owned::<StringValue>,
            |request: Request<StringValue>| async move {
                let name = &request.message().value;
                Ok(Response::new(StringValue::from(format!("hello, {name}"))))
            },
        ))
    }
}
