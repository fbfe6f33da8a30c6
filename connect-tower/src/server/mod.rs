//! The server: [`ConnectService`], a `tower::Service<http::Request<B>>` that serves Connect,
//! gRPC and gRPC-Web for a [`Dispatch`] (a generated service, or a [`Routes`] of several).
//!
//! Per request it admits the head with the core (`ServerCall::accept`: rejections are answered
//! at once), runs the interceptors, dispatches to the handler, and streams the core's outputs
//! as the response body. A unary call no interceptor sees, on a dispatcher that
//! [`dispatches_unary`](Dispatch::dispatches_unary), takes a fast path: the server reads its one
//! message and hands the handler a [`UnaryCall`], sharing no state with it. Deadlines are always enforced, with the configured [`Timer`] (the
//! [`SystemTimer`](crate::rt::SystemTimer) unless another is set). User code that panics — a
//! handler (polled or dropped), an interceptor, a generated dispatcher — ends its call with
//! `internal` and nothing else. When the adapter records a [`ConnectionInfo`] (per connection
//! with [`with_connection`](crate::rt::with_connection), or in the request's extensions), calls
//! still open when the server's drain deadline passes end with `unavailable`.

mod driver;
mod handler;
mod handler_wake;
mod routes;
mod shared;
mod unary;

use std::convert::Infallible;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use connect_proto_core::{Code, MethodKind, MethodSpec, ServerCall, ServerConfig, Status};
use http_body::Body;

pub use crate::intercept::Interceptor;
pub use driver::{ResponseBody, ResponseFuture};
pub use handler::{
    IncomingCall, ResponseSender, Streaming, bidi_streaming, client_streaming, server_streaming,
    unary, unimplemented,
};
pub use routes::Routes;
pub use shared::DEFAULT_MAX_QUEUED_BYTES;
pub use unary::{UnaryCall, UnaryFuture, UnaryReply, unary_call, unimplemented_unary};

use crate::BoxError;
use crate::intercept::{CallInfo, Interceptors, ShortCircuit};
use crate::message::{ConnectionInfo, RequestContext};
use crate::observe::recorder::{Call, CallSpan, Recorder};
use crate::observe::{CallObserver, SharedObserver, Side};
use crate::rt::{SharedTimer, Timer};
use driver::{Driver, HandlerFuture, Task};
use shared::{CallCell, PendingUnary, Shared, State, UnaryState};

/// A set of methods and the code that runs them. Generated servers implement it with a
/// compile-time `match` on the path; [`Routes`] combines several.
pub trait Dispatch: Send + Sync + 'static {
    /// Every method served, for routing tables and reflection.
    fn methods(&self) -> &[MethodSpec];

    /// The method at `path`, if served.
    fn method(&self, path: &str) -> Option<MethodSpec>;

    /// Runs a call routed to this service (`call.method()` is one of [`methods`](Self::methods)).
    fn dispatch(&self, call: IncomingCall) -> Pin<Box<dyn Future<Output = ()> + Send>>;

    /// Whether [`dispatch_unary`](Self::dispatch_unary) serves every unary method of this
    /// service (default `false`). When it does, a unary call that no interceptor sees takes
    /// the fast path: the server reads its request message itself and hands the handler the
    /// message, with no call state shared between them. Implement both methods or neither.
    fn dispatches_unary(&self) -> bool {
        false
    }

    /// Runs a unary call whose request message has arrived (only called when
    /// [`dispatches_unary`](Self::dispatches_unary) is `true`; generated services pass the
    /// call to [`unary_call`]). The default answers `unimplemented`.
    fn dispatch_unary(&self, call: UnaryCall) -> UnaryFuture {
        Box::pin(unimplemented_unary(call))
    }
}

impl<D: Dispatch + ?Sized> Dispatch for Arc<D> {
    fn methods(&self) -> &[MethodSpec] {
        (**self).methods()
    }

    fn method(&self, path: &str) -> Option<MethodSpec> {
        (**self).method(path)
    }

    fn dispatch(&self, call: IncomingCall) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        (**self).dispatch(call)
    }

    fn dispatches_unary(&self) -> bool {
        (**self).dispatches_unary()
    }

    fn dispatch_unary(&self, call: UnaryCall) -> UnaryFuture {
        (**self).dispatch_unary(call)
    }
}

/// Serves a [`Dispatch`] over HTTP as a tower service. Cheap to clone.
pub struct ConnectService<D> {
    inner: Arc<Inner<D>>,
}

struct Inner<D> {
    dispatch: D,
    config: ServerConfig,
    timer: SharedTimer,
    interceptors: Interceptors,
    max_queued: usize,
    observer: Option<SharedObserver>,
}

impl<D: Dispatch> unary::UnaryDispatcher for Inner<D> {
    fn dispatch_unary(&self, call: UnaryCall) -> UnaryFuture {
        self.dispatch.dispatch_unary(call)
    }
}

impl<D> Clone for ConnectService<D> {
    fn clone(&self) -> Self {
        ConnectService {
            inner: self.inner.clone(),
        }
    }
}

impl<D> std::fmt::Debug for ConnectService<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectService")
            .field("config", &self.inner.config)
            .field("timer", &self.inner.timer)
            .field("interceptors", &self.inner.interceptors)
            .field("observer", &self.inner.observer)
            .finish_non_exhaustive()
    }
}

impl<D: Dispatch> ConnectService<D> {
    /// A service with the default protocol configuration, enforcing deadlines with the
    /// [`SystemTimer`](crate::rt::SystemTimer).
    pub fn new(dispatch: D) -> Self {
        ConnectService::builder(dispatch).build()
    }

    /// A builder.
    pub fn builder(dispatch: D) -> ConnectServiceBuilder<D> {
        ConnectServiceBuilder {
            dispatch,
            config: ServerConfig::default(),
            timer: SharedTimer::default(),
            interceptors: Interceptors::default(),
            max_queued: shared::DEFAULT_MAX_QUEUED_BYTES,
            observer: None,
        }
    }

    /// The protocol configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// Every method served (for routing tables, such as an axum router's).
    pub fn methods(&self) -> &[MethodSpec] {
        self.inner.dispatch.methods()
    }

    /// Serves one request.
    pub fn serve<B>(
        &self,
        request: http::Request<B>,
    ) -> impl Future<Output = http::Response<ResponseBody>> + Send + 'static
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let future = serve(&self.inner, request);
        async move {
            match future.await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        }
    }
}

/// Builds a [`ConnectService`].
pub struct ConnectServiceBuilder<D> {
    dispatch: D,
    config: ServerConfig,
    timer: SharedTimer,
    interceptors: Interceptors,
    max_queued: usize,
    observer: Option<SharedObserver>,
}

impl<D: Dispatch> ConnectServiceBuilder<D> {
    /// The protocol configuration (limits, compression, protocols).
    #[must_use]
    pub fn config(mut self, config: ServerConfig) -> Self {
        self.config = config;
        self
    }

    /// The timer that enforces deadlines (default: the
    /// [`SystemTimer`](crate::rt::SystemTimer), which needs no runtime; a runtime's own timer,
    /// such as `connect-tokio-hyper`'s `TokioTimer`, saves its background thread).
    #[must_use]
    pub fn timer(mut self, timer: impl Timer) -> Self {
        self.timer = SharedTimer::new(timer);
        self
    }

    /// The most response bytes (framed, after compression) a call may queue ahead of the
    /// network before [`ResponseSender::send`] waits: the memory a client that reads slowly
    /// can make a stream hold. A message always fits into an empty queue, so `0` sends one
    /// message at a time. Default [`DEFAULT_MAX_QUEUED_BYTES`] (256 KiB).
    #[must_use]
    pub fn max_queued_bytes(mut self, bytes: usize) -> Self {
        self.max_queued = bytes.max(1);
        self
    }

    /// Adds an interceptor (see [`intercept`](crate::intercept)): the first added is the
    /// outermost — its request hooks run first, its response hooks last.
    #[must_use]
    pub fn interceptor(mut self, interceptor: impl Interceptor) -> Self {
        self.interceptors.push(Arc::new(interceptor));
        self
    }

    /// Observes every call served (see [`observe`](crate::observe)): `on_call_start` once its
    /// request head is admitted, `on_call_end` once its response is complete or it ended
    /// otherwise (cancelled, timed out, the client gone). Replaces an observer set before;
    /// none by default.
    #[must_use]
    pub fn observer(mut self, observer: impl CallObserver) -> Self {
        self.observer = Some(SharedObserver(Arc::new(observer)));
        self
    }

    /// The service.
    pub fn build(self) -> ConnectService<D> {
        ConnectService {
            inner: Arc::new(Inner {
                dispatch: self.dispatch,
                config: self.config,
                timer: self.timer,
                interceptors: self.interceptors,
                max_queued: self.max_queued,
                observer: self.observer,
            }),
        }
    }
}

impl<D, B> tower_service::Service<http::Request<B>> for ConnectService<D>
where
    D: Dispatch,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = http::Response<ResponseBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        serve(&self.inner, request)
    }
}

/// Admits the request, runs the interceptors and dispatches the handler, all at once; the
/// returned future waits for the response head.
fn serve<D, B>(inner: &Arc<Inner<D>>, request: http::Request<B>) -> ResponseFuture
where
    D: Dispatch,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let now = inner.timer.now();
    let (parts, body) = request.into_parts();
    let http1 = parts.version < http::Version::HTTP_2;
    // The call itself is built where it lives (in its box or shared state): admission first.
    let admission = match ServerCall::admit(&inner.config, now, &parts, |path| {
        inner.dispatch.method(path)
    }) {
        Ok(admission) => admission,
        Err(rejection) => {
            // The request body is dropped unread (an HTTP/1.1 server then closes the
            // connection after the response).
            let (head, bytes) = rejection.into_parts();
            let response = http::Response::from_parts(head, ResponseBody::full(bytes, http1));
            return ResponseFuture::ready(response);
        }
    };
    // The connection: handed over by the adapter for this call, else from the extensions
    // (which the context reads too).
    let connection = crate::rt::current_connection();
    let on_connection = connection
        .as_deref()
        .or_else(|| parts.extensions.get::<ConnectionInfo>());
    let peer = match on_connection {
        Some(connection) => Some(&connection.peer),
        None => parts.extensions.get::<crate::PeerInfo>(),
    };
    let span = CallSpan::server(
        admission.method(),
        admission.protocol(),
        admission.codec(),
        peer,
    );
    let observe = Recorder::start(
        || Call {
            side: Side::Server,
            method: admission.method(),
            protocol: admission.protocol(),
            codec: admission.codec(),
            request_compression: admission.request_compression(),
        },
        inner.observer.as_ref(),
        &inner.timer,
        now,
        span.clone(),
    );
    let shutdown = on_connection.map(|connection| connection.shutdown.watch());
    let mut context = RequestContext {
        side: Side::Server,
        connection,
        method: admission.method().clone(),
        protocol: admission.protocol(),
        codec: admission.codec(),
        deadline: admission.deadline(),
        headers: parts.headers,
        extensions: parts.extensions,
        http_method: parts.method,
        uri: parts.uri,
        version: parts.version,
    };
    let limit = inner.config.receive_limit();
    // A call that admission already finished (a GET whose query message is refused) takes
    // the fast path too: its driver writes the queued response and never dispatches.
    let fast = admission.method().kind == MethodKind::Unary
        && inner.interceptors.is_empty()
        && inner.dispatch.dispatches_unary();
    let body = crate::body::erase(body);
    let state = |admission| {
        State::new(
            admission,
            body,
            inner.timer.clone(),
            now,
            inner.max_queued,
            observe,
        )
    };
    if fast {
        let dispatcher: Arc<dyn unary::UnaryDispatcher> = inner.clone();
        // Built in the box's argument: the call state (about 1 KB) is not moved once more.
        let cell = CallCell::Owned(Box::new(UnaryState {
            state: state(admission),
            message: None,
            pending: Some(PendingUnary {
                context,
                limit,
                dispatcher,
            }),
        }));
        let driver = Driver::new(cell, Task::Unary(None), http1, shutdown, span);
        return ResponseFuture::driving(driver);
    }
    let streams_responses = admission.method().kind.streams_responses();
    let shared = Shared::new(state(admission));
    let handler: HandlerFuture = if shared.lock().call.is_finished() {
        Box::pin(async {})
    } else if inner.interceptors.is_empty() {
        dispatch(&inner.dispatch, context, &shared, limit)
    } else {
        let inner = inner.clone();
        let shared = shared.clone();
        Box::pin(async move {
            let (entered, outcome) = inner.interceptors.on_request(&mut context).await;
            let call = CallInfo {
                side: Side::Server,
                method: context.method.clone(),
                protocol: context.protocol,
                codec: context.codec,
            };
            shared
                .lock()
                .intercept(inner.interceptors.entered(entered), call);
            match outcome {
                Ok(()) => dispatch(&inner.dispatch, context, &shared, limit).await,
                Err(ShortCircuit::Fail(status)) => shared.lock().finish(Err(status)),
                Err(ShortCircuit::Respond(response)) => shared.lock().respond(response),
            }
        })
    };
    let cell = CallCell::Shared(shared);
    // A streamed response's body is polled once per message written: its handler is polled
    // only when woken. Other handlers are polled whenever the driver is (their response body
    // is polled a few times; their own waker would cost more than it saves).
    let task = Task::handler(handler, streams_responses);
    ResponseFuture::driving(Driver::new(cell, task, http1, shutdown, span))
}

/// Hands a call to its handler (a dispatcher that panics ends the call with `internal`).
fn dispatch<D: Dispatch>(
    dispatch: &D,
    context: RequestContext,
    shared: &Arc<Shared>,
    limit: usize,
) -> HandlerFuture {
    let incoming = IncomingCall {
        context,
        shared: shared.clone(),
        limit,
    };
    // Generated dispatchers only build a future, but user code may run here too.
    match catch_unwind(AssertUnwindSafe(|| dispatch.dispatch(incoming))) {
        Ok(handler) => handler,
        Err(_panic) => {
            let status = Status::new(Code::Internal, "the handler panicked");
            shared.lock().fail(status);
            Box::pin(async {})
        }
    }
}
