//! [`Routes`]: several services behind one [`Dispatch`], routed by path through a table built
//! once; whole generated services and single methods registered at run time side by side.

use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use connect_proto_core::{MethodKind, MethodSpec, Status};

use super::handler::{ResponseSender, Streaming};
use super::{Dispatch, IncomingCall, UnaryCall, UnaryFuture};
use crate::codec::{DecodeMessage, EncodeMessage};
use crate::message::{Request, Response};

/// A call's future, as dispatchers return it.
type CallFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Routes calls to several services and single methods. Paths are looked up in a hash table
/// built as routes are added; a path served twice is served by the route added last.
///
/// Generated services are added with [`service`](Routes::service); methods known only at run
/// time (a plugin, a method over a message type that is not buffa's, a test double) with
/// [`unary`](Routes::unary), [`server_streaming`](Routes::server_streaming),
/// [`client_streaming`](Routes::client_streaming) and
/// [`bidi_streaming`](Routes::bidi_streaming), whose request and response types are any
/// [`DecodeMessage`] and [`EncodeMessage`].
///
/// ```
/// use connect_tower::server::{ConnectService, Routes};
/// use buffa_types::google::protobuf::Empty;
/// use connect_tower::{MethodKind, MethodSpec, Request, Response, Status};
///
/// let routes = Routes::new().unary(
///     MethodSpec::owned("/health.v1.Health/Ping", MethodKind::Unary, Default::default()),
///     |_request: Request<Empty>| async { Ok::<_, Status>(Response::new(Empty::default())) },
/// );
/// let service = ConnectService::new(routes);
/// # let _ = service;
/// ```
#[derive(Clone, Default)]
pub struct Routes {
    services: Vec<Arc<dyn Dispatch>>,
    routes: HashMap<Cow<'static, str>, (usize, MethodSpec)>,
    methods: Vec<MethodSpec>,
    /// Some service does not serve unary calls through `dispatch_unary`.
    unary_through_dispatch: bool,
}

impl Routes {
    /// An empty router (every call is `unimplemented`).
    pub fn new() -> Self {
        Routes::default()
    }

    /// Adds a service.
    #[must_use]
    pub fn service(mut self, service: impl Dispatch) -> Self {
        let index = self.services.len();
        for spec in service.methods() {
            self.routes.insert(spec.path.clone(), (index, spec.clone()));
        }
        self.unary_through_dispatch |= !service.dispatches_unary();
        self.services.push(Arc::new(service));
        self.methods = self.routes.values().map(|(_, spec)| spec.clone()).collect();
        self.methods.sort_by(|a, b| a.path.cmp(&b.path));
        self
    }

    /// Adds a unary method: `handler` gets the request and returns the response.
    ///
    /// # Panics
    ///
    /// If `spec.kind` is not [`MethodKind::Unary`] (a programming error, found at startup).
    #[must_use]
    pub fn unary<Req, Resp, F, Fut>(self, spec: MethodSpec, handler: F) -> Self
    where
        Req: DecodeMessage,
        Resp: EncodeMessage,
        F: Fn(Request<Req>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Response<Resp>, Status>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let direct = handler.clone();
        let unary: UnaryRun = Box::new(move |call| {
            let handler = direct.clone();
            Box::pin(super::unary_call(
                call,
                Req::decode_message,
                move |request| handler(request),
            ))
        });
        self.method_with(spec, MethodKind::Unary, Some(unary), move |call| {
            let handler = handler.clone();
            Box::pin(super::unary(call, Req::decode_message, move |request| {
                handler(request)
            }))
        })
    }

    /// Adds a server-streaming method: `handler` gets the request and a sender for the
    /// response stream.
    ///
    /// # Panics
    ///
    /// If `spec.kind` is not [`MethodKind::ServerStreaming`].
    #[must_use]
    pub fn server_streaming<Req, Resp, F, Fut>(self, spec: MethodSpec, handler: F) -> Self
    where
        Req: DecodeMessage,
        Resp: EncodeMessage,
        F: Fn(Request<Req>, ResponseSender<Resp>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Status>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        self.method(spec, MethodKind::ServerStreaming, move |call| {
            let handler = handler.clone();
            Box::pin(super::server_streaming(
                call,
                Req::decode_message,
                move |request, responses| handler(request, responses),
            ))
        })
    }

    /// Adds a client-streaming method: `handler` reads the request stream and returns the
    /// response.
    ///
    /// # Panics
    ///
    /// If `spec.kind` is not [`MethodKind::ClientStreaming`].
    #[must_use]
    pub fn client_streaming<Req, Resp, F, Fut>(self, spec: MethodSpec, handler: F) -> Self
    where
        Req: DecodeMessage,
        Resp: EncodeMessage,
        F: Fn(Request<Streaming<Req>>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Response<Resp>, Status>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        self.method(spec, MethodKind::ClientStreaming, move |call| {
            let handler = handler.clone();
            Box::pin(super::client_streaming(
                call,
                Req::decode_message,
                move |requests| handler(requests),
            ))
        })
    }

    /// Adds a bidi-streaming method: `handler` reads the request stream and writes the
    /// response stream.
    ///
    /// # Panics
    ///
    /// If `spec.kind` is not [`MethodKind::BidiStreaming`].
    #[must_use]
    pub fn bidi_streaming<Req, Resp, F, Fut>(self, spec: MethodSpec, handler: F) -> Self
    where
        Req: DecodeMessage,
        Resp: EncodeMessage,
        F: Fn(Request<Streaming<Req>>, ResponseSender<Resp>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Status>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        self.method(spec, MethodKind::BidiStreaming, move |call| {
            let handler = handler.clone();
            Box::pin(super::bidi_streaming(
                call,
                Req::decode_message,
                move |requests, responses| handler(requests, responses),
            ))
        })
    }

    fn method(
        self,
        spec: MethodSpec,
        kind: MethodKind,
        run: impl Fn(IncomingCall) -> CallFuture + Send + Sync + 'static,
    ) -> Self {
        self.method_with(spec, kind, None, run)
    }

    fn method_with(
        self,
        spec: MethodSpec,
        kind: MethodKind,
        unary: Option<UnaryRun>,
        run: impl Fn(IncomingCall) -> CallFuture + Send + Sync + 'static,
    ) -> Self {
        assert!(
            spec.kind == kind,
            "{} is declared {:?} but registered as {kind:?}",
            spec.path,
            spec.kind
        );
        self.service(SingleMethod {
            methods: [spec],
            run: Box::new(run),
            unary,
        })
    }
}

/// How a unary method registered at run time is run on the fast path.
type UnaryRun = Box<dyn Fn(UnaryCall) -> UnaryFuture + Send + Sync>;

/// One method registered at run time, as a [`Dispatch`].
struct SingleMethod {
    methods: [MethodSpec; 1],
    run: Box<dyn Fn(IncomingCall) -> CallFuture + Send + Sync>,
    /// Unary methods: the fast path.
    unary: Option<UnaryRun>,
}

impl Dispatch for SingleMethod {
    fn methods(&self) -> &[MethodSpec] {
        &self.methods
    }

    fn method(&self, path: &str) -> Option<MethodSpec> {
        let [spec] = &self.methods;
        (spec.path() == path).then(|| spec.clone())
    }

    fn dispatch(&self, call: IncomingCall) -> CallFuture {
        (self.run)(call)
    }

    fn dispatches_unary(&self) -> bool {
        // Its only method is not unary, or it is served on the fast path.
        self.methods[0].kind != MethodKind::Unary || self.unary.is_some()
    }

    fn dispatch_unary(&self, call: UnaryCall) -> UnaryFuture {
        match &self.unary {
            Some(run) => run(call),
            None => Box::pin(super::unimplemented_unary(call)),
        }
    }
}

impl Dispatch for Routes {
    fn methods(&self) -> &[MethodSpec] {
        &self.methods
    }

    fn method(&self, path: &str) -> Option<MethodSpec> {
        self.routes.get(path).map(|(_, spec)| spec.clone())
    }

    fn dispatch(&self, call: IncomingCall) -> CallFuture {
        match self.routes.get(call.method().path()) {
            Some((index, _)) => self.services[*index].dispatch(call),
            None => Box::pin(super::unimplemented(call)),
        }
    }

    fn dispatches_unary(&self) -> bool {
        !self.unary_through_dispatch
    }

    fn dispatch_unary(&self, call: UnaryCall) -> UnaryFuture {
        match self.routes.get(call.method().path()) {
            Some((index, _)) => self.services[*index].dispatch_unary(call),
            None => Box::pin(super::unimplemented_unary(call)),
        }
    }
}

impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routes")
            .field("methods", &self.routes.len())
            .finish()
    }
}
