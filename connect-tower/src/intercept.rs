//! Interceptors: code that runs around every call, on either side, whatever its RPC type.
//!
//! One [`Interceptor`] trait serves clients ([`Client::interceptor`](crate::client::Client))
//! and servers ([`ConnectServiceBuilder::interceptor`](crate::server::ConnectServiceBuilder)).
//! An interceptor sees the call as it passes:
//!
//! | hook | client | server |
//! |---|---|---|
//! | [`on_request`](Interceptor::on_request) (async) | the outgoing request head | the incoming request head, before the handler runs |
//! | [`on_request_message`](Interceptor::on_request_message) | each message sent | each message received |
//! | [`on_response_headers`](Interceptor::on_response_headers) | the response headers received | the response headers, before they are written |
//! | [`on_response_message`](Interceptor::on_response_message) | each message received | each message sent |
//! | [`on_end`](Interceptor::on_end) | the outcome, before the application sees it | the handler's outcome, before it is written |
//!
//! # Order
//!
//! Interceptors nest like tower layers: the first added is the outermost. Request-side hooks
//! (`on_request`, `on_request_message`) run in the order added; response-side hooks
//! (`on_response_headers`, `on_response_message`, `on_end`) in reverse, so the first added
//! sees the final response.
//!
//! # Short-circuits
//!
//! `on_request` may end the call before it goes further: with a [`Status`] (a client then
//! sends nothing; a server never runs the handler) or with a whole [`ShortCircuit::Respond`] (`CannedResponse::into()`)
//! response (a cache, a stub). Only the interceptors outside the one that short-circuited —
//! those added before it — see the response. Any other hook that returns an error fails the
//! call with it.
//!
//! Messages are seen encoded, in the call's [codec](RequestContext::codec) and uncompressed;
//! decode them with [`DecodeMessage`](crate::codec::DecodeMessage) to read them typed.
//! Message hooks are synchronous (they run inline, once per message): do asynchronous work
//! (fetching a token, a policy lookup) in `on_request`.
//!
//! On the server, calls the core ends by itself (deadline, the client gone, a protocol error)
//! do not pass `on_end`: use a [`CallObserver`](crate::observe::CallObserver) to see every
//! ending. A hook that panics fails its call with `internal`; the process keeps serving.
//!
//! ```
//! use connect_tower::intercept::{InterceptFuture, Interceptor};
//! use connect_tower::RequestContext;
//! use http::HeaderValue;
//!
//! /// Adds a bearer token to every call (a client interceptor).
//! struct Bearer(HeaderValue);
//!
//! impl Interceptor for Bearer {
//!     fn on_request<'a>(&'a self, ctx: &'a mut RequestContext) -> InterceptFuture<'a> {
//!         Box::pin(async move {
//!             // An async token source would be awaited here.
//!             ctx.headers_mut().insert(http::header::AUTHORIZATION, self.0.clone());
//!             Ok(())
//!         })
//!     }
//! }
//! ```

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use connect_proto_core::{Code, Codec, MethodSpec, Protocol, Status};
use http::HeaderMap;

use crate::message::RequestContext;
use crate::observe::Side;

/// What [`Interceptor::on_request`] returns: `Ok(())` to go on.
pub type InterceptFuture<'a> = Pin<Box<dyn Future<Output = Result<(), ShortCircuit>> + Send + 'a>>;

/// How an interceptor ends a call in [`Interceptor::on_request`].
#[derive(Debug)]
#[non_exhaustive]
pub enum ShortCircuit {
    /// Fail the call with this status.
    Fail(Status),
    /// Answer the call with this response instead.
    Respond(Box<CannedResponse>),
}

impl From<Status> for ShortCircuit {
    fn from(status: Status) -> Self {
        ShortCircuit::Fail(status)
    }
}

impl From<CannedResponse> for ShortCircuit {
    fn from(response: CannedResponse) -> Self {
        ShortCircuit::Respond(Box::new(response))
    }
}

/// A response an interceptor answers a call with: headers, messages encoded in the call's
/// codec, and trailers. A unary call's answer has exactly one message.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct CannedResponse {
    /// Response headers.
    pub headers: HeaderMap,
    /// The messages, encoded in the call's codec.
    pub messages: Vec<Bytes>,
    /// Trailers.
    pub trailers: HeaderMap,
}

impl CannedResponse {
    /// A response of `messages` (encoded in the call's codec), without headers or trailers.
    pub fn new(messages: impl IntoIterator<Item = Bytes>) -> Self {
        CannedResponse {
            headers: HeaderMap::new(),
            messages: messages.into_iter().collect(),
            trailers: HeaderMap::new(),
        }
    }

    /// Sets the response headers.
    #[must_use]
    pub fn with_headers(mut self, headers: HeaderMap) -> Self {
        self.headers = headers;
        self
    }

    /// Sets the trailers.
    #[must_use]
    pub fn with_trailers(mut self, trailers: HeaderMap) -> Self {
        self.trailers = trailers;
        self
    }
}

/// The call a message hook runs for.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CallInfo {
    /// Which side this interceptor runs on.
    pub side: Side,
    /// The method.
    pub method: MethodSpec,
    /// The protocol.
    pub protocol: Protocol,
    /// The message codec (messages reach the hooks encoded in it).
    pub codec: Codec,
}

/// An interceptor. Every hook has a no-op default; see the [module docs](self) for when each
/// runs and in which order.
pub trait Interceptor: Send + Sync + 'static {
    /// Runs once per call with the request head — headers, extensions, method, deadline — on
    /// a client just before the request is sent (for unary and server-streaming calls, after
    /// its message passed `on_request_message`: a Connect GET request carries it in the URL),
    /// on a server before the handler runs. May change the headers and extensions, or end
    /// the call ([`ShortCircuit`]).
    fn on_request<'a>(&'a self, ctx: &'a mut RequestContext) -> InterceptFuture<'a> {
        let _ = ctx;
        Box::pin(std::future::ready(Ok(())))
    }

    /// Runs for each request message (encoded, uncompressed). An error fails the call.
    fn on_request_message(&self, call: &CallInfo, message: &[u8]) -> Result<(), Status> {
        let _ = (call, message);
        Ok(())
    }

    /// Runs once with the response headers (application metadata). An error fails the call.
    fn on_response_headers(&self, call: &CallInfo, headers: &mut HeaderMap) -> Result<(), Status> {
        let _ = (call, headers);
        Ok(())
    }

    /// Runs for each response message (encoded, uncompressed). An error fails the call.
    fn on_response_message(&self, call: &CallInfo, message: &[u8]) -> Result<(), Status> {
        let _ = (call, message);
        Ok(())
    }

    /// Runs once with the call's outcome — trailers, or the failure — and may change it.
    fn on_end(&self, call: &CallInfo, outcome: &mut Result<HeaderMap, Status>) {
        let _ = (call, outcome);
    }
}

/// The status a panicking hook ends its call with.
fn panicked() -> Status {
    Status::new(Code::Internal, "an interceptor panicked")
}

/// An ordered list of interceptors (cheap to clone).
#[derive(Clone, Default)]
pub(crate) struct Interceptors(Arc<Vec<Arc<dyn Interceptor>>>);

impl Interceptors {
    pub(crate) fn push(&mut self, interceptor: Arc<dyn Interceptor>) {
        let mut list: Vec<_> = self.0.iter().cloned().collect();
        list.push(interceptor);
        self.0 = Arc::new(list);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Runs the request hooks in order. On a short-circuit, returns it with the number of
    /// interceptors that ran before the one that short-circuited (the ones that see the
    /// response); otherwise that number is all of them.
    pub(crate) async fn on_request(
        &self,
        ctx: &mut RequestContext,
    ) -> (usize, Result<(), ShortCircuit>) {
        for (index, interceptor) in self.0.iter().enumerate() {
            let ctx = &mut *ctx;
            let started = catch_unwind(once(move || interceptor.on_request(ctx)));
            let outcome = match started {
                Ok(future) => CatchUnwind(future).await,
                Err(_) => Err(ShortCircuit::Fail(panicked())),
            };
            if let Err(short) = outcome {
                return (index, Err(short));
            }
        }
        (self.0.len(), Ok(()))
    }

    /// The active interceptors of a call that `entered` of them let through.
    pub(crate) fn entered(&self, entered: usize) -> ActiveInterceptors {
        ActiveInterceptors {
            list: self.clone(),
            entered: entered.min(self.0.len()),
        }
    }
}

impl std::fmt::Debug for Interceptors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Interceptors({})", self.0.len())
    }
}

/// A call's interceptors once its request hooks ran: the message and response hooks of
/// those it went through.
#[derive(Clone, Debug)]
pub(crate) struct ActiveInterceptors {
    list: Interceptors,
    entered: usize,
}

impl ActiveInterceptors {
    fn inner(&self) -> &[Arc<dyn Interceptor>] {
        &self.list.0[..self.entered]
    }

    /// Request message hooks, in order; the first error wins.
    pub(crate) fn on_request_message(&self, call: &CallInfo, message: &[u8]) -> Result<(), Status> {
        self.inner().iter().try_for_each(|i| {
            catch_unwind(AssertUnwindSafe(|| i.on_request_message(call, message)))
                .unwrap_or_else(|_| Err(panicked()))
        })
    }

    /// Response header hooks, in reverse order; the first error wins.
    pub(crate) fn on_response_headers(
        &self,
        call: &CallInfo,
        headers: &mut HeaderMap,
    ) -> Result<(), Status> {
        self.inner().iter().rev().try_for_each(|i| {
            catch_unwind(AssertUnwindSafe(|| i.on_response_headers(call, headers)))
                .unwrap_or_else(|_| Err(panicked()))
        })
    }

    /// Response message hooks, in reverse order; the first error wins.
    pub(crate) fn on_response_message(
        &self,
        call: &CallInfo,
        message: &[u8],
    ) -> Result<(), Status> {
        self.inner().iter().rev().try_for_each(|i| {
            catch_unwind(AssertUnwindSafe(|| i.on_response_message(call, message)))
                .unwrap_or_else(|_| Err(panicked()))
        })
    }

    /// End hooks, in reverse order. A hook that panics replaces the outcome with `internal`
    /// and the remaining hooks still run.
    pub(crate) fn on_end(&self, call: &CallInfo, outcome: &mut Result<HeaderMap, Status>) {
        for interceptor in self.inner().iter().rev() {
            if catch_unwind(AssertUnwindSafe(|| interceptor.on_end(call, outcome))).is_err() {
                *outcome = Err(panicked());
            }
        }
    }
}

/// Asserts a closure unwind-safe, letting it move out what it captured (hooks that panic are
/// reported, never resumed).
fn once<R>(f: impl FnOnce() -> R) -> AssertUnwindSafe<impl FnOnce() -> R> {
    AssertUnwindSafe(f)
}

/// Polls a hook's future, turning a panic into `internal`.
struct CatchUnwind<'a>(InterceptFuture<'a>);

impl Future for CatchUnwind<'_> {
    type Output = Result<(), ShortCircuit>;

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let future = &mut self.0;
        catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx)))
            .unwrap_or_else(|_| std::task::Poll::Ready(Err(ShortCircuit::Fail(panicked()))))
    }
}
