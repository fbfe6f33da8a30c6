//! The client: [`Client`] makes calls of the four RPC types over any tower [`Transport`]
//! (`tower::Service<http::Request<RequestBody>>`), speaking Connect, gRPC or gRPC-Web as its
//! [`ClientConfig`] says. Generated clients wrap it.
//!
//! Per-call [`CallOptions`] win over the client's defaults. Dropping any call object cancels
//! the call. Responses expose headers, trailers, messages (owned, or zero-copy views with
//! [`View`](crate::codec::View) as the response type), and errors with details.

mod calls;
mod exchange;
pub(crate) mod retry;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use connect_proto_core::codec::EncodedMessage;
use connect_proto_core::{ClientCall, MethodSpec, Status};
use http_body::Body;

pub use crate::TransportError;
pub use calls::{BidiStreamingCall, ClientStreamingCall, ResponseStream};
pub use connect_proto_core::{CallOptions, ClientConfig};
pub use exchange::{DEFAULT_MAX_QUEUED_BYTES, RequestBody};
pub use retry::{RetryBudget, RetryPolicy};

pub use crate::intercept::Interceptor;

use crate::BoxError;
use crate::codec::{DecodeMessage, EncodeMessage};
use crate::intercept::Interceptors;
use crate::message::Response;
use crate::observe::recorder::{Call, CallSpan, Recorder};
use crate::observe::{CallObserver, SharedObserver, Side};
use crate::rt::{SharedTimer, Timer};
use exchange::Exchange;
use retry::Attempt;

/// A transport: a cloneable tower service from HTTP requests with a [`RequestBody`] to HTTP
/// responses. Implemented for every such service; runtime adapters provide real ones.
pub trait Transport: Clone + Send + Sync + 'static {
    /// The response body.
    type ResponseBody: Body<Data = Self::Data, Error = Self::BodyError> + Send + 'static;
    /// The response body's data.
    type Data: bytes::Buf + Send;
    /// The response body's error.
    type BodyError: Into<BoxError>;
    /// The service's error.
    type Error: Into<BoxError>;
    /// The response future.
    type Future: Future<Output = Result<http::Response<Self::ResponseBody>, Self::Error>>
        + Send
        + 'static;

    /// Waits until the transport can take a request.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>>;

    /// Sends a request.
    fn call(&mut self, request: http::Request<RequestBody>) -> Self::Future;
}

impl<S, B> Transport for S
where
    S: tower_service::Service<http::Request<RequestBody>, Response = http::Response<B>>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type ResponseBody = B;
    type Data = B::Data;
    type BodyError = B::Error;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        tower_service::Service::poll_ready(self, cx)
    }

    fn call(&mut self, request: http::Request<RequestBody>) -> Self::Future {
        tower_service::Service::call(self, request)
    }
}

/// Shortens a call's deadline to that of the handler it is made from (see
/// [`current_deadline`](crate::rt::current_deadline)), unless the options opt out.
fn inherit_deadline(options: CallOptions) -> CallOptions {
    match crate::rt::current_deadline() {
        Some(deadline) if options.propagate_deadline => options.deadline_at_most(deadline),
        _ => options,
    }
}

/// How a call that encodes its whole request up front is made: once, or under a retry policy.
enum Plan<F, T: Transport> {
    Once(F),
    Retry(Box<Retrying<T>>),
}

/// A call under a retry policy: everything needed to start each attempt.
struct Retrying<T: Transport> {
    client: Client<T>,
    method: MethodSpec,
    request: bytes::Bytes,
    options: CallOptions,
    policy: RetryPolicy,
    deadline: Option<Instant>,
}

impl<T: Transport> Retrying<T> {
    /// Makes attempts, each read by `read`, as the policy allows.
    async fn run<R, F, Fut>(self: Box<Self>, read: F) -> Result<R, Status>
    where
        F: FnOnce(Exchange<T>) -> Fut + Clone,
        Fut: Future<Output = Attempt<R>>,
    {
        let Retrying {
            client,
            method,
            request,
            options,
            policy,
            deadline,
        } = *self;
        let attempt = || {
            let call = client.start_unary_call(&method, request.clone().into(), options.clone());
            let exchange = client.start_exchange(call);
            let read = read.clone();
            async move {
                match exchange.await {
                    Ok(exchange) => read(exchange).await,
                    Err(status) => Attempt::Failed {
                        status,
                        unprocessed: false,
                    },
                }
            }
        };
        policy.run(&method, &client.timer, deadline, attempt).await
    }
}

/// A client for one server (base URI), protocol and codec. Cheap to clone.
///
/// Calls made while a handler of this crate's server runs inherit that call's deadline when it
/// is earlier than their own, so the server they call sees the time the original caller has
/// left (opt out per call with [`CallOptions::propagate_deadline`]).
pub struct Client<T> {
    transport: T,
    config: Arc<ClientConfig>,
    timer: SharedTimer,
    max_queued: usize,
    observer: Option<SharedObserver>,
    interceptors: Interceptors,
    retry: Option<RetryPolicy>,
}

impl<T: Clone> Clone for Client<T> {
    fn clone(&self) -> Self {
        Client {
            transport: self.transport.clone(),
            config: self.config.clone(),
            timer: self.timer.clone(),
            max_queued: self.max_queued,
            observer: self.observer.clone(),
            interceptors: self.interceptors.clone(),
            retry: self.retry.clone(),
        }
    }
}

impl<T> fmt::Debug for Client<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.config)
            .field("timer", &self.timer)
            .field("observer", &self.observer)
            .field("interceptors", &self.interceptors)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl<T: Transport> Client<T> {
    /// A client over `transport`. Deadlines are enforced locally with the
    /// [`SystemTimer`](crate::rt::SystemTimer) (see [`timer`](Self::timer)) as well as sent to
    /// the server.
    pub fn new(transport: T, config: ClientConfig) -> Self {
        Client {
            transport,
            config: Arc::new(config),
            timer: SharedTimer::default(),
            max_queued: exchange::DEFAULT_MAX_QUEUED_BYTES,
            observer: None,
            interceptors: Interceptors::default(),
            retry: None,
        }
    }

    /// Adds an interceptor (see [`intercept`](crate::intercept)): the first added is the
    /// outermost — its request hooks run first, its response hooks last. Generated clients
    /// built on this client run them too.
    #[must_use]
    pub fn interceptor(mut self, interceptor: impl Interceptor) -> Self {
        self.interceptors.push(Arc::new(interceptor));
        self
    }

    /// Retries failed calls as `policy` says (see [`RetryPolicy`]); none by default.
    #[must_use]
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// The most request bytes (framed, after compression) a streaming call may queue ahead of
    /// the transport before `send` waits. A message always fits into an empty queue, so `0`
    /// sends one message at a time. Default [`DEFAULT_MAX_QUEUED_BYTES`] (256 KiB).
    #[must_use]
    pub fn max_queued_bytes(mut self, bytes: usize) -> Self {
        self.max_queued = bytes.max(1);
        self
    }

    /// Enforces deadlines locally with `timer` instead of the
    /// [`SystemTimer`](crate::rt::SystemTimer).
    #[must_use]
    pub fn timer(mut self, timer: impl Timer) -> Self {
        self.timer = SharedTimer::new(timer);
        self
    }

    /// Observes every call made (see [`observe`](crate::observe)): `on_call_start` when the
    /// call is made, `on_call_end` once its outcome reached the application, or when the
    /// application dropped the call. Replaces an observer set before; none by default.
    #[must_use]
    pub fn observer(mut self, observer: impl CallObserver) -> Self {
        self.observer = Some(SharedObserver(Arc::new(observer)));
        self
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The transport.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// Starts a streaming-request call now; the returned future hands it to the transport.
    fn exchange(
        &self,
        method: &MethodSpec,
        options: CallOptions,
    ) -> impl Future<Output = Result<Exchange<T>, Status>> + Send + use<T> {
        let now = self.timer.now();
        let options = inherit_deadline(options);
        let started = ClientCall::start(&self.config, now, method, options)
            .map_err(Status::from)
            .map(|call| {
                let observe = self.observe(&call, now);
                (call, observe)
            });
        self.start_exchange(started)
    }

    /// Hands a started call to the transport.
    fn start_exchange(
        &self,
        call: Result<(ClientCall, Option<Box<Recorder>>), Status>,
    ) -> impl Future<Output = Result<Exchange<T>, Status>> + Send + use<T> {
        // The call moves to its shared state now: the future holds a pointer, not the call.
        let shared = call.map(|(call, observe)| Exchange::<T>::share(call, observe));
        let (transport, timer, max_queued) =
            (self.transport.clone(), self.timer.clone(), self.max_queued);
        let interceptors = self.interceptors.clone();
        async move { Exchange::start(transport, shared?, timer, max_queued, interceptors).await }
    }

    fn start_unary_call(
        &self,
        method: &MethodSpec,
        request: EncodedMessage,
        options: CallOptions,
    ) -> Result<(ClientCall, Option<Box<Recorder>>), Status> {
        let now = self.timer.now();
        let options = inherit_deadline(options);
        let mut call =
            ClientCall::start(&self.config, now, method, options).map_err(Status::from)?;
        let mut observe = self.observe(&call, now);
        if !call.is_finished() {
            let intercepted = if self.interceptors.is_empty() {
                Ok(())
            } else {
                let info = exchange::call_info(&call);
                let all = self.interceptors.entered(usize::MAX);
                all.on_request_message(&info, request.as_bytes())
            };
            let sent = intercepted.and_then(|()| {
                match call.send_message(now, request) {
                    Ok(()) => Ok(true),
                    // A call whose deadline passed before its head was written fails inside
                    // the core, which keeps the outcome for the exchange to report.
                    Err(connect_proto_core::UsageError::AlreadyFinished) => Ok(false),
                    Err(other) => Err(Status::from(other)),
                }
            });
            match sent {
                Ok(sent) => {
                    if let Some(observe) = observe.as_deref_mut().filter(|_| sent) {
                        observe.traffic.request_messages = 1;
                    }
                }
                Err(status) => {
                    if let Some(mut observe) = observe {
                        observe.note(Err(status.code()));
                        observe.end(None);
                    }
                    return Err(status);
                }
            }
        }
        Ok((call, observe))
    }

    /// The retry policy for calls of `method`, if they are retried.
    fn retry_policy_for(&self, method: &MethodSpec) -> Option<RetryPolicy> {
        self.retry
            .as_ref()
            .filter(|policy| policy.covers(method))
            .cloned()
    }

    /// Prepares a retried call: its request kept for every attempt, its deadline fixed now so
    /// that every attempt shares it.
    fn retrying(
        &self,
        method: &MethodSpec,
        request: EncodedMessage,
        options: CallOptions,
        policy: RetryPolicy,
    ) -> Box<Retrying<T>> {
        let now = self.timer.now();
        let mut options = inherit_deadline(options);
        let from_timeout = options.timeout.take().and_then(|t| now.checked_add(t));
        let deadline = match (from_timeout, options.deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        options.deadline = deadline;
        Box::new(Retrying {
            client: self.clone(),
            method: method.clone(),
            request: request.into_bytes(),
            options,
            policy,
            deadline,
        })
    }

    /// Starts observing a call started at `now`, if anyone observes it.
    fn observe(&self, call: &ClientCall, now: Instant) -> Option<Box<Recorder>> {
        let span = CallSpan::client(
            call.method(),
            call.protocol(),
            call.codec(),
            self.config.base_uri(),
        );
        let started = || Call {
            side: Side::Client,
            method: call.method(),
            protocol: call.protocol(),
            codec: call.codec(),
            request_compression: call.send_compression(),
        };
        Recorder::start(started, self.observer.as_ref(), &self.timer, now, span)
    }

    /// Calls a unary method. On failure the status's metadata holds the response headers and
    /// trailers.
    ///
    /// `Resp` is an owned message, or [`View<M>`](crate::codec::View) to read the response as a
    /// zero-copy view over the received bytes; the same holds for every call kind below.
    ///
    /// The call starts (its timeout runs, the request is encoded) when this is called; the
    /// returned future does not borrow `method` or `request`.
    pub fn unary<Req, Resp>(
        &self,
        method: &MethodSpec,
        request: Req,
        options: CallOptions,
    ) -> impl Future<Output = Result<Response<Resp>, Status>> + Send + use<T, Req, Resp>
    where
        Req: EncodeMessage,
        Resp: DecodeMessage,
    {
        let encoded = request
            .encode_message(self.config.configured_codec())
            .map_err(crate::codec::encoding_failed);
        let plan = match (encoded, self.retry_policy_for(method)) {
            (Ok(bytes), Some(policy)) => Plan::Retry(self.retrying(method, bytes, options, policy)),
            (encoded, _) => {
                let call = encoded.and_then(|bytes| self.start_unary_call(method, bytes, options));
                Plan::Once(self.start_exchange(call))
            }
        };
        async move {
            match plan {
                Plan::Once(exchange) => {
                    // The receiver is read right here: no boxed stream, no boxed future.
                    let exchange = exchange.await?;
                    let codec = exchange.codec();
                    calls::Receiver::new(exchange, codec).into_unary().await
                }
                // Boxed: retry attempts hold more than a single call does, and the future
                // of every call would otherwise be as large.
                Plan::Retry(retrying) => {
                    Box::pin(retrying.run(|exchange: Exchange<T>| async move {
                        let codec = exchange.codec();
                        calls::Receiver::new(exchange, codec)
                            .into_unary_attempt()
                            .await
                    }))
                    .await
                }
            }
        }
    }

    /// Calls a server-streaming method; the returned stream yields the responses.
    ///
    /// Returns once the server started the call — its response head arrived (this crate's
    /// servers write it as soon as the handler first waits) — or the call ended: an event the
    /// server publishes after this returns reaches the stream. A failure is reported by the
    /// stream (`message()`), with the response headers and trailers it came with. Under a
    /// [`RetryPolicy`] covering the method, it returns at the first response message (or
    /// the call's end) instead, so that a failure before any message can be retried.
    pub fn server_streaming<Req, Resp>(
        &self,
        method: &MethodSpec,
        request: Req,
        options: CallOptions,
    ) -> impl Future<Output = Result<ResponseStream<Resp>, Status>> + Send + use<T, Req, Resp>
    where
        Req: EncodeMessage,
        Resp: DecodeMessage,
    {
        let encoded = request
            .encode_message(self.config.configured_codec())
            .map_err(crate::codec::encoding_failed);
        // (A unary method read as a stream, for example to cancel it, returns at once.)
        let wait_for_start = method.kind == crate::MethodKind::ServerStreaming;
        let policy = self.retry_policy_for(method).filter(|_| wait_for_start);
        let plan = match (encoded, policy) {
            (Ok(bytes), Some(policy)) => Plan::Retry(self.retrying(method, bytes, options, policy)),
            (encoded, _) => {
                let call = encoded.and_then(|bytes| self.start_unary_call(method, bytes, options));
                Plan::Once(self.start_exchange(call))
            }
        };
        async move {
            match plan {
                Plan::Once(exchange) => {
                    let mut stream = ResponseStream::new(exchange.await?);
                    if wait_for_start {
                        stream.started().await;
                    }
                    Ok(stream)
                }
                // Boxed, as for unary calls.
                Plan::Retry(retrying) => {
                    Box::pin(retrying.run(|exchange: Exchange<T>| async move {
                        // The application sees nothing of an attempt until its first
                        // message (or its end): until then it can be retried.
                        let mut stream = ResponseStream::new(exchange);
                        stream.first_response().await;
                        match stream.start_failure() {
                            Some((status, unprocessed)) => Attempt::Failed {
                                status,
                                unprocessed,
                            },
                            None => Attempt::Done(Ok(stream)),
                        }
                    }))
                    .await
                }
            }
        }
    }

    /// Starts a client-streaming call: send messages, then [`finish`](ClientStreamingCall::finish)
    /// for the response.
    pub fn client_streaming<Req, Resp>(
        &self,
        method: &MethodSpec,
        options: CallOptions,
    ) -> impl Future<Output = Result<ClientStreamingCall<Req, Resp>, Status>> + Send + use<T, Req, Resp>
    where
        Req: EncodeMessage,
        Resp: DecodeMessage,
    {
        let exchange = self.exchange(method, options);
        let codec = self.config.configured_codec();
        async move { Ok(ClientStreamingCall::new(exchange.await?, codec)) }
    }

    /// Starts a bidi-streaming call: full duplex over HTTP/2, half duplex over HTTP/1.1 (send
    /// everything and [`close_send`](BidiStreamingCall::close_send) before reading).
    pub fn bidi_streaming<Req, Resp>(
        &self,
        method: &MethodSpec,
        options: CallOptions,
    ) -> impl Future<Output = Result<BidiStreamingCall<Req, Resp>, Status>> + Send + use<T, Req, Resp>
    where
        Req: EncodeMessage,
        Resp: DecodeMessage,
    {
        let exchange = self.exchange(method, options);
        let codec = self.config.configured_codec();
        async move { Ok(BidiStreamingCall::new(exchange.await?, codec)) }
    }
}
