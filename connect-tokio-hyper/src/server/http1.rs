//! HTTP/1.1 connections, through hyper: the per-request [`ConnectionInfo`], the call budget,
//! graceful and forced shutdown, and a watchdog that closes the connection when a response is
//! stuck past its call's deadline (a client that stopped reading: hyper then stops polling
//! the response body, so the call's own deadline handling cannot run).

use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use connect_proto_core::call::request_timeout;
use connect_proto_core::{Code, Rejection, Status};
use connect_tower::ConnectionInfo;
use connect_tower::rt::{ShutdownSignal, ShutdownTrigger, with_connection};
use http::HeaderValue;
use http::header::CONNECTION;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::conn::{ConnConfig, PhaseWatch};
use super::events::{ServerError, is_ordinary_http1_end};
use super::io::ServerIo;
use super::{CallPermit, FAR, FORCE_GRACE, IncomingBody, Phase};
use crate::BoxError;

/// Serves one HTTP/1.1 connection to its end.
#[allow(clippy::too_many_arguments)]
pub(super) async fn serve<I, S, B>(
    config: &ConnConfig,
    io: ServerIo<I>,
    activity: Arc<Activity>,
    service: S,
    info: Arc<ConnectionInfo>,
    trigger: ShutdownTrigger,
    remote: SocketAddr,
    server: ShutdownSignal,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: tower_service::Service<http::Request<IncomingBody>, Response = http::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let inner = &*config.0;
    let hyper_service = Http1Service {
        inner: service,
        info,
        config: config.clone(),
        activity: activity.clone(),
    };
    let connection = inner
        .http1
        .serve_connection(TokioIo::new(io), hyper_service);
    let mut connection = std::pin::pin!(connection);
    let far = || Instant::now() + FAR;
    let first = match activity.next(Instant::now()) {
        Next::Wait(at) => at,
        Next::Expired(_) => Instant::now(),
    };
    let timer = tokio::time::sleep_until(first);
    let mut timer = std::pin::pin!(timer);
    let forced_close = tokio::time::sleep_until(far());
    let mut forced_close = std::pin::pin!(forced_close);
    let mut phase = Phase::Running;
    let mut phases = PhaseWatch::new(server);
    // Kept across iterations, as the phase watch is.
    let mut activity_changed = std::pin::pin!(activity.changed.notified());
    let mut idle_closing = false;
    loop {
        tokio::select! {
            ended = connection.as_mut() => {
                if let Err(error) = ended {
                    if !is_ordinary_http1_end(&error) {
                        inner.on_error.report(ServerError::Connection {
                            remote,
                            error: Box::new(error),
                        });
                    }
                }
                return;
            }
            () = activity_changed.as_mut() => {
                // A timeout came nearer than the timer: the timer branch reads it at once.
                activity_changed.set(activity.changed.notified());
                timer.as_mut().reset(Instant::now());
            }
            () = timer.as_mut() => match activity.next(Instant::now()) {
                Next::Wait(at) => timer.as_mut().reset(at),
                // A response stuck past its call's deadline (its client stopped reading):
                // closing the connection drops the response and its handler.
                Next::Expired(Expired::Deadline) => return,
                // A request head that never completed.
                Next::Expired(Expired::Head) => {
                    inner.on_error.report(ServerError::Silent { remote });
                    return;
                }
                // Idle too long between requests: close like a graceful shutdown.
                Next::Expired(Expired::Idle) => {
                    if !idle_closing {
                        idle_closing = true;
                        connection.as_mut().graceful_shutdown();
                    }
                    timer.as_mut().reset(far());
                }
            },
            next = poll_fn(|cx| phases.poll_change(phase, cx)), if phase != Phase::Forced => {
                if next >= Phase::Draining && phase < Phase::Draining {
                    trigger.drain();
                    connection.as_mut().graceful_shutdown();
                }
                if next == Phase::Forced {
                    trigger.force();
                    forced_close.as_mut().reset(Instant::now() + FORCE_GRACE);
                }
                phase = next;
            }
            () = forced_close.as_mut(), if phase == Phase::Forced => return,
        }
    }
}

/// What an HTTP/1.1 connection is waiting for, and since when: the server's own header read
/// and idle timeouts (hyper's header read timeout would also cut idle keep-alive connections
/// after 30 s, shorter than clients keep them: Go's keep idle connections 90 s, and a request
/// racing the close fails), and the watchdog of a response stuck past its call's deadline.
///
/// The connection's timer is lazy: it is armed at the next timeout or at most a
/// [recheck](Activity::recheck) ahead, and when it fires it reads the state again. A request
/// or response moves the next timeout later (a head read starts its header read timeout, a
/// response's end the idle timeout, both at least a recheck ahead), which the timer finds
/// when it fires; only an event that brings the next timeout nearer than the armed time (a
/// call's deadline, a timeout shorter than the recheck) wakes the connection's loop. So a
/// connection serving requests back to back does not wake its loop for them.
pub(super) struct Activity {
    state: Mutex<ActivityState>,
    /// Whether the connection is idle (no call, no byte since the last response): reads then
    /// record the start of the next head. Read without the lock on every socket read.
    idle: AtomicBool,
    /// When the timer is armed, in nanoseconds since `started` (`u64::MAX`: not armed).
    /// Written under the state's lock.
    armed: AtomicU64,
    started: Instant,
    header_read_timeout: Option<Duration>,
    idle_timeout: Option<Duration>,
    /// How far ahead the timer is armed at most, when it is armed at all.
    recheck: Option<Duration>,
    changed: Notify,
}

struct ActivityState {
    /// The connection is closing (hyper shut its write side down).
    closing: bool,
    /// A call is in flight (its response is not done).
    in_flight: bool,
    /// The deadline (plus grace) of the call in flight, if it has one.
    deadline: Option<Instant>,
    /// When the connection became idle.
    idle_since: Option<Instant>,
    /// When the first byte of the next request head arrived (or the connection started).
    head_since: Option<Instant>,
    /// The request body of the call in flight was read to its end (or failed).
    body_read: bool,
}

/// Which timeout passed.
enum Expired {
    Deadline,
    Head,
    Idle,
}

/// What the connection's timer does next.
enum Next {
    /// Waits until this instant, then reads the state again.
    Wait(Instant),
    /// A timeout passed.
    Expired(Expired),
}

/// The shortest recheck: with shorter timeouts, the events that start them wake the loop.
const MIN_RECHECK: Duration = Duration::from_secs(1);

impl Activity {
    /// A connection whose first request head starts at `started`.
    pub(super) fn new(
        started: Instant,
        header_read_timeout: Option<Duration>,
        idle_timeout: Option<Duration>,
    ) -> Arc<Self> {
        let recheck = header_read_timeout.into_iter().chain(idle_timeout).min();
        Arc::new(Activity {
            state: Mutex::new(ActivityState {
                closing: false,
                in_flight: false,
                deadline: None,
                idle_since: None,
                head_since: Some(started),
                body_read: false,
            }),
            idle: AtomicBool::new(false),
            armed: AtomicU64::new(u64::MAX),
            started,
            header_read_timeout,
            idle_timeout,
            recheck: recheck.map(|recheck| recheck.max(MIN_RECHECK)),
            changed: Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ActivityState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `at` as the timer's nanoseconds.
    fn nanos(&self, at: Instant) -> u64 {
        let nanos = at.saturating_duration_since(self.started).as_nanos();
        u64::try_from(nanos).unwrap_or(u64::MAX - 1)
    }

    /// Wakes the loop if a timeout now passes at `at`, before the timer fires.
    fn wake_if_nearer(&self, at: Option<Instant>) {
        if at.is_some_and(|at| self.nanos(at) < self.armed.load(Ordering::Acquire)) {
            self.changed.notify_one();
        }
    }

    /// Bytes arrived on the socket.
    pub(super) fn read(&self) {
        if !self.idle.load(Ordering::Acquire) {
            return;
        }
        let mut state = self.lock();
        if state.idle_since.take().is_some() {
            let now = Instant::now();
            state.head_since = Some(now);
            self.idle.store(false, Ordering::Release);
            drop(state);
            self.wake_if_nearer(self.header_read_timeout.map(|timeout| now + timeout));
        }
    }

    /// The connection started closing: no more timeouts apply (the timer finds that out
    /// when it fires).
    pub(super) fn closing(&self) {
        self.lock().closing = true;
        self.idle.store(false, Ordering::Release);
    }

    /// The request body of the call in flight was read to its end (or failed).
    pub(super) fn body_read(&self) {
        self.lock().body_read = true;
    }

    /// Whether the call in flight left its request body unread (so far).
    fn body_unread(&self) -> bool {
        !self.lock().body_read
    }

    /// A request head was read: a call is in flight until its guard drops.
    fn call_started(&self, deadline: Option<Instant>) {
        let mut state = self.lock();
        state.in_flight = true;
        state.body_read = false;
        state.deadline = deadline;
        state.idle_since = None;
        state.head_since = None;
        self.idle.store(false, Ordering::Release);
        drop(state);
        self.wake_if_nearer(deadline);
    }

    /// The response of the call in flight is done (or dropped).
    fn call_ended(&self) {
        let now = Instant::now();
        let mut state = self.lock();
        state.in_flight = false;
        state.deadline = None;
        state.idle_since = Some(now);
        state.head_since = None;
        self.idle.store(true, Ordering::Release);
        drop(state);
        self.wake_if_nearer(self.idle_timeout.map(|timeout| now + timeout));
    }

    /// The timeout that passed, or when to look again (recorded as the armed time).
    fn next(&self, now: Instant) -> Next {
        let state = self.lock();
        let next = if state.closing {
            None
        } else if state.in_flight {
            state.deadline.map(|at| (at, Expired::Deadline))
        } else if let (Some(since), Some(timeout)) = (state.head_since, self.header_read_timeout) {
            Some((since + timeout, Expired::Head))
        } else if let (Some(since), Some(timeout)) = (state.idle_since, self.idle_timeout) {
            Some((since + timeout, Expired::Idle))
        } else {
            None
        };
        let (wait, armed) = match next {
            Some((at, expired)) if at <= now => (Next::Expired(expired), None),
            _ if state.closing => (Next::Wait(now + FAR), None),
            next => {
                let recheck = self.recheck.map(|recheck| now + recheck);
                let at = next.map(|(at, _)| at).into_iter().chain(recheck).min();
                (Next::Wait(at.unwrap_or(now + FAR)), at)
            }
        };
        self.armed.store(
            armed.map_or(u64::MAX, |at| self.nanos(at)),
            Ordering::Release,
        );
        wait
    }
}

/// The per-connection hyper service: request bodies become [`IncomingBody`]s, the service
/// sees the [`ConnectionInfo`] (`with_connection`), the call budget is checked, and the tower
/// service is called once ready.
struct Http1Service<S> {
    inner: S,
    info: Arc<ConnectionInfo>,
    config: ConnConfig,
    activity: Arc<Activity>,
}

impl<S, B> hyper::service::Service<http::Request<Incoming>> for Http1Service<S>
where
    S: tower_service::Service<http::Request<IncomingBody>, Response = http::Response<B>> + Clone,
    S::Error: Into<BoxError>,
{
    type Response = http::Response<ResponseBody<B>>;
    type Error = BoxError;
    type Future = Http1Future<S, B>;

    fn call(&self, request: http::Request<Incoming>) -> Self::Future {
        let (parts, body) = request.into_parts();
        let deadline = request_timeout(&parts.headers)
            .and_then(|timeout| Instant::now().checked_add(timeout + self.config.0.deadline_grace));
        self.activity.call_started(deadline);
        let guard = CallGuard {
            activity: self.activity.clone(),
        };
        let Some(permit) = self.config.0.calls.try_acquire() else {
            let status = Status::new(Code::Unavailable, "the server is at its call limit");
            let (mut head, bytes) = Rejection::for_request(&parts, status).into_parts();
            if !body.is_end_stream() {
                head.headers
                    .insert(CONNECTION, HeaderValue::from_static("close"));
            }
            let response = http::Response::from_parts(head, ResponseBody::full(bytes, guard));
            return Http1Future::Ready {
                response: Some(response),
            };
        };
        let body = IncomingBody::http1(body, self.activity.clone());
        let request = http::Request::from_parts(parts, body);
        Http1Future::Serving {
            info: Some(self.info.clone()),
            step: Step::NotReady {
                service: self.inner.clone(),
                request: Some(request),
                guard: Some((guard, permit)),
            },
        }
    }
}

/// A call on the connection, until its response body is done or dropped.
struct CallGuard {
    activity: Arc<Activity>,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.activity.call_ended();
    }
}

pin_project_lite::pin_project! {
    /// Waits for the service to be ready, calls it, and wraps the response body.
    #[project = Http1FutureProj]
    enum Http1Future<S, B>
    where
        S: tower_service::Service<http::Request<IncomingBody>>,
    {
        Ready { response: Option<http::Response<ResponseBody<B>>> },
        // The connection goes to the service per call (no per-request extension): one scope
        // per poll of this future covers `poll_ready`, `call` and the response future's polls.
        // `None` once the response is out.
        Serving { info: Option<Arc<ConnectionInfo>>, #[pin] step: Step<S> },
    }
}

pin_project_lite::pin_project! {
    /// Where a served call is: waiting for the service, or its response future.
    #[project = StepProj]
    enum Step<S>
    where
        S: tower_service::Service<http::Request<IncomingBody>>,
    {
        NotReady { service: S, request: Option<http::Request<IncomingBody>>, guard: Option<(CallGuard, CallPermit)> },
        Called { #[pin] future: S::Future, guard: Option<(CallGuard, CallPermit)> },
    }
}

impl<S, B> Future for Http1Future<S, B>
where
    S: tower_service::Service<http::Request<IncomingBody>, Response = http::Response<B>>,
    S::Error: Into<BoxError>,
{
    type Output = Result<http::Response<ResponseBody<B>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            Http1FutureProj::Ready { response } => Poll::Ready(
                response
                    .take()
                    .ok_or_else(|| "the response was already taken".into()),
            ),
            Http1FutureProj::Serving { info, step } => {
                let Some(connection) = info.as_ref() else {
                    return Poll::Ready(Err("the response was already taken".into()));
                };
                let polled = with_connection(connection, || poll_step(step, cx));
                if polled.is_ready() {
                    *info = None;
                }
                polled
            }
        }
    }
}

/// Advances a served call: the service's readiness, its call, then its response future.
fn poll_step<S, B>(
    mut step: Pin<&mut Step<S>>,
    cx: &mut Context<'_>,
) -> Poll<Result<http::Response<ResponseBody<B>>, BoxError>>
where
    S: tower_service::Service<http::Request<IncomingBody>, Response = http::Response<B>>,
    S::Error: Into<BoxError>,
{
    loop {
        match step.as_mut().project() {
            StepProj::NotReady {
                service,
                request,
                guard,
            } => {
                match service.poll_ready(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(error)) => return Poll::Ready(Err(error.into())),
                    Poll::Ready(Ok(())) => {}
                }
                let (Some(request), guard) = (request.take(), guard.take()) else {
                    return Poll::Ready(Err("the request was already sent".into()));
                };
                let future = service.call(request);
                step.set(Step::Called { future, guard });
            }
            StepProj::Called { future, guard } => {
                return match future.poll(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Err(error)) => Poll::Ready(Err(error.into())),
                    Poll::Ready(Ok(mut response)) => {
                        let guard = guard.take();
                        // A response that comes before the request body was read to its end
                        // closes the connection after it (the rest of the body is not read):
                        // say so, so the client does not reuse the connection and race the
                        // close.
                        if guard
                            .as_ref()
                            .is_some_and(|(guard, _)| guard.activity.body_unread())
                        {
                            response
                                .headers_mut()
                                .insert(CONNECTION, HeaderValue::from_static("close"));
                        }
                        Poll::Ready(Ok(response.map(|body| ResponseBody::inner(body, guard))))
                    }
                };
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body as hyper writes it: the service's or one the server rendered itself,
    /// holding the call's guard (and budget slot) until it is done.
    pub(super) struct ResponseBody<B> {
        #[pin]
        inner: Option<B>,
        full: Option<Bytes>,
        guard: Option<(CallGuard, Option<CallPermit>)>,
    }
}

impl<B> ResponseBody<B> {
    fn inner(body: B, guard: Option<(CallGuard, CallPermit)>) -> Self {
        ResponseBody {
            inner: Some(body),
            full: None,
            guard: guard.map(|(guard, permit)| (guard, Some(permit))),
        }
    }

    fn full(bytes: Bytes, guard: CallGuard) -> Self {
        ResponseBody {
            inner: None,
            full: (!bytes.is_empty()).then_some(bytes),
            guard: Some((guard, None)),
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = ResponseData<B::Data>;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, BoxError>>> {
        let this = self.project();
        let Some(inner) = this.inner.as_pin_mut() else {
            let frame = this.full.take();
            if frame.is_none() {
                this.guard.take();
            }
            return Poll::Ready(frame.map(|bytes| Ok(Frame::data(ResponseData::Full(bytes)))));
        };
        match inner.poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                // Done: the call no longer counts against the budget or the watchdog.
                this.guard.take();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(error.into()))),
            Poll::Ready(Some(Ok(frame))) => {
                Poll::Ready(Some(Ok(frame.map_data(ResponseData::Inner))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Some(inner) => inner.is_end_stream(),
            None => self.full.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Some(inner) => inner.size_hint(),
            None => SizeHint::with_exact(self.full.as_ref().map_or(0, |b| b.len() as u64)),
        }
    }
}

/// The data of a [`ResponseBody`].
pub(super) enum ResponseData<D> {
    Inner(D),
    Full(Bytes),
}

impl<D: bytes::Buf> bytes::Buf for ResponseData<D> {
    fn remaining(&self) -> usize {
        match self {
            ResponseData::Inner(data) => data.remaining(),
            ResponseData::Full(bytes) => bytes.remaining(),
        }
    }

    fn chunk(&self) -> &[u8] {
        match self {
            ResponseData::Inner(data) => data.chunk(),
            ResponseData::Full(bytes) => bytes.chunk(),
        }
    }

    fn advance(&mut self, cnt: usize) {
        match self {
            ResponseData::Inner(data) => data.advance(cnt),
            ResponseData::Full(bytes) => bytes.advance(cnt),
        }
    }
}
