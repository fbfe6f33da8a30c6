//! HTTP/2 connections, served directly with `h2`: one task per stream (counted by the
//! connection, which waits for them before it returns), the call budget (`REFUSED_STREAM`
//! past it), an idle timeout, keep-alive pings, graceful and forced shutdown, and a watchdog
//! that resets a stream whose response is stuck past its call's deadline. That last one is
//! why the server drives `h2` itself: while a client grants no flow-control window, a
//! response body is not polled, so nothing else could end the call on time.

use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Buf, Bytes};
use connect_proto_core::call::request_timeout;
use connect_tower::ConnectionInfo;
use connect_tower::rt::{ShutdownSignal, ShutdownTrigger, with_connection};
use h2::server::SendResponse;
use h2::{Reason, SendStream};
use http::HeaderMap;
use http::header::{CONNECTION, TE, TRANSFER_ENCODING, UPGRADE};
use http_body::Body;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, Sleep};

use super::conn::{ConnConfig, PhaseWatch};
use super::events::{ServerError, is_ordinary_http2_end};
use super::io::ServerIo;
use super::streams::{StreamCount, StreamGuard};
use super::{CallPermit, FAR, FORCE_GRACE, IncomingBody, Phase};
use crate::BoxError;

/// Serves one HTTP/2 connection to its end. Stream tasks are detached but counted: when this
/// returns they have ended, unless one still ran [`STREAM_END_GRACE`] after the connection
/// was dropped (every stream task waits on its stream's reset whenever it waits, so dropping
/// the connection wakes and ends it; only a handler that blocks its thread outlasts that).
#[allow(clippy::too_many_arguments)]
pub(super) async fn serve<I, S, B>(
    config: &ConnConfig,
    io: ServerIo<I>,
    service: S,
    info: Arc<ConnectionInfo>,
    trigger: ShutdownTrigger,
    remote: SocketAddr,
    server: ShutdownSignal,
    handshake_deadline: Option<Instant>,
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
    let handshake = inner.http2.handshake::<_, Bytes>(io);
    let handshake = match handshake_deadline {
        Some(deadline) => match tokio::time::timeout_at(deadline, handshake).await {
            Ok(result) => result,
            Err(_) => {
                inner.on_error.report(ServerError::Silent { remote });
                return;
            }
        },
        None => handshake.await,
    };
    let mut connection = match handshake {
        Ok(connection) => connection,
        Err(error) => {
            if !is_ordinary_http2_end(&error) {
                inner.on_error.report(ServerError::Connection {
                    remote,
                    error: Box::new(error),
                });
            }
            return;
        }
    };

    let mut pinger = inner.keep_alive.and_then(|(interval, timeout)| {
        connection.ping_pong().map(|pings| Pinger {
            pings,
            interval,
            timeout,
            awaiting_pong: false,
        })
    });
    let far = || Instant::now() + FAR;
    let ping_timer = tokio::time::sleep_until(match &pinger {
        Some(pinger) => Instant::now() + pinger.interval,
        None => far(),
    });
    let mut ping_timer = pin!(ping_timer);
    let idle = tokio::time::sleep_until(match inner.idle_timeout {
        Some(timeout) => Instant::now() + timeout,
        None => far(),
    });
    let mut idle = pin!(idle);
    let forced_close = tokio::time::sleep_until(far());
    let mut forced_close = pin!(forced_close);
    let streams = StreamCount::new();
    // The idle timer fired while streams ran: waiting for the last one to end.
    let mut awaiting_empty = false;
    let mut phase = Phase::Running;
    let mut phases = PhaseWatch::new(server);
    let mut closing = false;

    loop {
        tokio::select! {
            accepted = poll_fn(|cx| connection.poll_accept(cx)) => match accepted {
                Some(Ok((request, mut respond))) => match inner.calls.try_acquire() {
                    Some(permit) => {
                        // Detached: the task is freed when it ends, and its end does not
                        // wake this one (see `StreamCount`).
                        drop(tokio::spawn(StreamTask::new(
                            request,
                            respond,
                            service.clone(),
                            info.clone(),
                            (permit, streams.start()),
                            inner.deadline_grace,
                        )));
                    }
                    // Over the server's call limit: refused before anything ran, which
                    // clients may retry safely.
                    None => respond.send_reset(Reason::REFUSED_STREAM),
                },
                Some(Err(error)) => {
                    if !is_ordinary_http2_end(&error) {
                        inner.on_error.report(ServerError::Connection {
                            remote,
                            error: Box::new(error),
                        });
                    }
                    break;
                }
                // The connection is closed (after a GOAWAY, once its streams are done).
                None => break,
            },
            () = poll_fn(|cx| streams.poll_empty(cx)), if awaiting_empty => {
                // The idle time counts from the end of the last stream.
                awaiting_empty = false;
                if let Some(timeout) = inner.idle_timeout {
                    idle.as_mut().reset(streams.emptied_at() + timeout);
                }
            }
            () = idle.as_mut(), if !closing && !awaiting_empty && inner.idle_timeout.is_some() => {
                let timeout = inner.idle_timeout.unwrap_or_default();
                let idle_until = streams.emptied_at() + timeout;
                if !streams.is_empty() {
                    awaiting_empty = true;
                } else if Instant::now() < idle_until {
                    // Streams ran since the timer was set.
                    idle.as_mut().reset(idle_until);
                } else {
                    closing = true;
                    connection.graceful_shutdown();
                }
            }
            () = ping_timer.as_mut(), if pinger.is_some() => {
                let Some(pinger) = pinger.as_mut() else { continue };
                if pinger.awaiting_pong || pinger.pings.send_ping(h2::Ping::opaque()).is_err() {
                    // No answer within the keep-alive timeout: the peer is gone.
                    inner.on_error.report(ServerError::Connection {
                        remote,
                        error: "the peer did not answer a keep-alive ping".into(),
                    });
                    break;
                }
                pinger.awaiting_pong = true;
                ping_timer.as_mut().reset(Instant::now() + pinger.timeout);
            }
            pong = poll_fn(|cx| poll_pong(&mut pinger, cx)) => {
                if pong.is_err() {
                    break;
                }
                if let Some(pinger) = pinger.as_mut() {
                    pinger.awaiting_pong = false;
                    ping_timer.as_mut().reset(Instant::now() + pinger.interval);
                }
            }
            next = poll_fn(|cx| phases.poll_change(phase, cx)), if phase != Phase::Forced => {
                if next >= Phase::Draining && phase < Phase::Draining {
                    trigger.drain();
                    closing = true;
                    connection.graceful_shutdown();
                }
                if next == Phase::Forced {
                    // Calls end with `unavailable` now; what has not ended when the grace
                    // passes is reset with the connection.
                    trigger.force();
                    forced_close.as_mut().reset(Instant::now() + FORCE_GRACE);
                }
                phase = next;
            }
            () = forced_close.as_mut(), if phase == Phase::Forced => {
                connection.abrupt_shutdown(Reason::NO_ERROR);
                let _ = tokio::time::timeout(
                    Duration::from_millis(100),
                    poll_fn(|cx| connection.poll_closed(cx)),
                )
                .await;
                break;
            }
        }
    }
    // The connection is gone: dropping it fails every stream still open, so their tasks see
    // why (a reset, the connection closing) and end the usual way, promptly.
    drop(connection);
    let ended = poll_fn(|cx| streams.poll_empty(cx));
    let _ = tokio::time::timeout(STREAM_END_GRACE, ended).await;
}

/// How long stream tasks have to end by themselves once their connection is gone.
const STREAM_END_GRACE: Duration = Duration::from_millis(100);

/// Keep-alive pings of one connection.
struct Pinger {
    pings: h2::PingPong,
    interval: Duration,
    timeout: Duration,
    awaiting_pong: bool,
}

fn poll_pong(pinger: &mut Option<Pinger>, cx: &mut Context<'_>) -> Poll<Result<(), h2::Error>> {
    match pinger {
        Some(pinger) if pinger.awaiting_pong => pinger.pings.poll_pong(cx).map_ok(drop),
        _ => Poll::Pending,
    }
}

pin_project_lite::pin_project! {
    /// Serves one stream: calls the service (unless the client resets the stream first, or the
    /// watchdog fires), sends the response head, then pipes the body within flow control.
    /// Written as a state machine rather than an `async fn` so the task holds each phase's
    /// state once: the task is copied whole when it is spawned, and an `async fn` held the
    /// request and the response several times over (1.8 KB against this type's few hundred
    /// bytes).
    struct StreamTask<S, F, B> {
        #[pin]
        step: Step<S, F, B>,
        respond: SendResponse<Bytes>,
        info: Arc<ConnectionInfo>,
        watchdog: Option<Pin<Box<Sleep>>>,
        // The server's call budget and the connection's count of running streams.
        _permit: (CallPermit, StreamGuard),
    }
}

pin_project_lite::pin_project! {
    #[project = StepProj]
    enum Step<S, F, B> {
        /// Waiting for the service to be ready for the request.
        Ready { service: S, request: Option<http::Request<IncomingBody>> },
        /// Waiting for the response head.
        Calling { #[pin] future: F },
        /// Sending the response body.
        Piping {
            #[pin]
            body: B,
            send: SendStream<Bytes>,
            // A chunk taken from the body and not yet sent, and whether the body ends with it.
            pending: Option<(Bytes, bool)>,
        },
        Done,
    }
}

impl<S, B> StreamTask<S, S::Future, B>
where
    S: tower_service::Service<http::Request<IncomingBody>, Response = http::Response<B>>,
{
    fn new(
        request: http::Request<h2::RecvStream>,
        respond: SendResponse<Bytes>,
        service: S,
        info: Arc<ConnectionInfo>,
        permit: (CallPermit, StreamGuard),
        deadline_grace: Duration,
    ) -> Self {
        let (parts, recv) = request.into_parts();
        let watchdog = request_timeout(&parts.headers)
            .and_then(|timeout| Instant::now().checked_add(timeout + deadline_grace))
            .map(|at| Box::pin(tokio::time::sleep_until(at)));
        let request = http::Request::from_parts(parts, IncomingBody::http2(recv));
        StreamTask {
            step: Step::Ready {
                service,
                request: Some(request),
            },
            respond,
            info,
            watchdog,
            _permit: permit,
        }
    }
}

impl<S, B> Future for StreamTask<S, S::Future, B>
where
    S: tower_service::Service<http::Request<IncomingBody>, Response = http::Response<B>>,
    S::Error: Into<BoxError>,
    B: Body,
    B::Error: Into<BoxError>,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        // The connection goes to the service per call (no per-request extension): while it is
        // called and while its future is polled — one scope for the whole poll.
        let info = this.info;
        let (mut step, respond, watchdog) = (this.step, this.respond, this.watchdog);
        with_connection(info, || poll_stream(step.as_mut(), respond, watchdog, cx))
    }
}

/// One poll of a stream's task (see [`StreamTask`]).
fn poll_stream<S, B>(
    mut step: Pin<&mut Step<S, S::Future, B>>,
    respond: &mut SendResponse<Bytes>,
    watchdog: &mut Option<Pin<Box<Sleep>>>,
    cx: &mut Context<'_>,
) -> Poll<()>
where
    S: tower_service::Service<http::Request<IncomingBody>, Response = http::Response<B>>,
    S::Error: Into<BoxError>,
    B: Body,
    B::Error: Into<BoxError>,
{
    loop {
        let called = match step.as_mut().project() {
            StepProj::Ready { service, request } => match service.poll_ready(cx) {
                Poll::Ready(Ok(())) => match request.take() {
                    Some(request) => {
                        let future = service.call(request);
                        step.set(Step::Calling { future });
                        continue;
                    }
                    None => Poll::Ready(Err("the stream's request was taken".into())),
                },
                Poll::Ready(Err(error)) => Poll::Ready(Err(error.into())),
                Poll::Pending => Poll::Pending,
            },
            StepProj::Calling { future } => future.poll(cx).map_err(Into::into),
            StepProj::Piping {
                body,
                send,
                pending,
            } => {
                let piped = poll_pipe(body, send, pending, watchdog, cx);
                if piped.is_ready() {
                    step.set(Step::Done);
                }
                return piped;
            }
            StepProj::Done => return Poll::Ready(()),
        };
        let response = match called {
            Poll::Ready(Ok(response)) => response,
            Poll::Ready(Err(error)) => {
                respond.send_reset(reset_reason(&error));
                step.set(Step::Done);
                return Poll::Ready(());
            }
            // The call first: a reset it sees through its request body ends it the usual
            // way. Then the client resetting the stream, or the watchdog, ends it here
            // (dropping the call cancels it).
            Poll::Pending => {
                if respond.poll_reset(cx).is_ready() {
                    step.set(Step::Done);
                    return Poll::Ready(());
                }
                if poll_watchdog(watchdog, cx) {
                    respond.send_reset(Reason::CANCEL);
                    step.set(Step::Done);
                    return Poll::Ready(());
                }
                return Poll::Pending;
            }
        };
        let (mut head, body) = response.into_parts();
        strip_connection_headers(&mut head.headers);
        let head = http::Response::from_parts(head, ());
        let end = body.is_end_stream();
        match respond.send_response(head, end) {
            Ok(send) if !end => {
                step.set(Step::Piping {
                    body,
                    send,
                    pending: None,
                });
            }
            Ok(_) => {
                step.set(Step::Done);
                return Poll::Ready(());
            }
            Err(_) => {
                respond.send_reset(Reason::INTERNAL_ERROR);
                step.set(Step::Done);
                return Poll::Ready(());
            }
        }
    }
}

/// The reset code for a service or body error: the code of an HTTP/2 reset found in it (a
/// [`TransportError::reset`](connect_tower::TransportError::reset) or an `h2::Error`), else
/// `INTERNAL_ERROR`.
fn reset_reason(error: &BoxError) -> Reason {
    if let Some(code) =
        connect_tower::TransportError::find(error.as_ref()).and_then(|e| e.reset_code)
    {
        return Reason::from(code);
    }
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error.as_ref());
    while let Some(error) = current {
        if let Some(reason) = error
            .downcast_ref::<h2::Error>()
            .and_then(h2::Error::reason)
        {
            return reason;
        }
        current = error.source();
    }
    Reason::INTERNAL_ERROR
}

/// Before the pipe waits (for the body, or for window): the client resetting the stream ends
/// it (dropping the body cancels the call), and so does the watchdog (stuck past the call's
/// deadline: the client grants no window), which resets it. Checked only then: while the pipe
/// makes progress, a reset shows as a failed send or capacity poll.
fn wait_unless_ended(
    send: &mut SendStream<Bytes>,
    watchdog: &mut Option<Pin<Box<Sleep>>>,
    cx: &mut Context<'_>,
) -> Poll<()> {
    if send.poll_reset(cx).is_ready() {
        return Poll::Ready(());
    }
    if poll_watchdog(watchdog, cx) {
        send.send_reset(Reason::CANCEL);
        return Poll::Ready(());
    }
    Poll::Pending
}

/// Whether the watchdog (if any) fired.
fn poll_watchdog(watchdog: &mut Option<Pin<Box<Sleep>>>, cx: &mut Context<'_>) -> bool {
    watchdog
        .as_mut()
        .is_some_and(|sleep| sleep.as_mut().poll(cx).is_ready())
}

/// Removes the headers HTTP/2 forbids (RFC 9113, section 8.2.2), as a service written for
/// HTTP/1.1 may set them: `h2` would refuse the response otherwise.
fn strip_connection_headers(headers: &mut HeaderMap) {
    // Looked for in one pass over the names first: a response rarely carries any, and a
    // removal per name would hash each name.
    let forbidden = |name: &http::HeaderName| {
        name == CONNECTION || name == TRANSFER_ENCODING || name == UPGRADE || name == TE
    };
    if !headers.keys().any(forbidden) {
        return;
    }
    if let Some(connection) = headers.remove(CONNECTION) {
        if let Ok(names) = connection.to_str() {
            for name in names.split(',') {
                headers.remove(name.trim());
            }
        }
    }
    headers.remove(TRANSFER_ENCODING);
    headers.remove(UPGRADE);
    headers.remove(TE);
}

/// Sends a response body to a stream: one chunk at a time, each only as the peer's window
/// allows (so a client that stops reading holds at most one chunk here, besides what the call
/// itself queues); ends with trailers or an empty end-of-stream frame; resets the stream when
/// the body fails or the watchdog fires, and stops when the client resets it. Ready once the
/// stream is done with.
fn poll_pipe<B>(
    mut body: Pin<&mut B>,
    send: &mut SendStream<Bytes>,
    pending: &mut Option<(Bytes, bool)>,
    watchdog: &mut Option<Pin<Box<Sleep>>>,
    cx: &mut Context<'_>,
) -> Poll<()>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    loop {
        if let Some((chunk, end)) = pending {
            let mut capacity = send.capacity();
            if capacity == 0 {
                // `h2` assigns window at once when the connection has some, and wakes the
                // task registered on the stream's send side: this one, by its last wait
                // (`wait_unless_ended`), so each chunk would cost the task a poll for nothing.
                // A no-op waker takes that place first; every path from here that returns
                // `Pending` registers this task's waker again.
                if send
                    .poll_reset(&mut Context::from_waker(Waker::noop()))
                    .is_ready()
                {
                    return Poll::Ready(());
                }
                send.reserve_capacity(chunk.len());
                // A ready capacity poll reports the stream's capacity (h2 answers `Pending`
                // rather than 0): no second look at it, as each look takes the connection's
                // stream lock.
                match send.poll_capacity(cx) {
                    Poll::Pending => return wait_unless_ended(send, watchdog, cx),
                    Poll::Ready(Some(Ok(assigned))) => capacity = assigned,
                    Poll::Ready(Some(Err(_)) | None) => return Poll::Ready(()),
                }
                if capacity == 0 {
                    continue;
                }
            }
            let part = chunk.split_to(capacity.min(chunk.len()));
            let last = chunk.is_empty() && *end;
            if send.send_data(part, last).is_err() {
                return Poll::Ready(());
            }
            if chunk.is_empty() {
                let end = *end;
                *pending = None;
                if end {
                    return Poll::Ready(());
                }
            }
            continue;
        }
        match body.as_mut().poll_frame(cx) {
            Poll::Pending => return wait_unless_ended(send, watchdog, cx),
            Poll::Ready(None) => {
                let _ = send.send_data(Bytes::new(), true);
                return Poll::Ready(());
            }
            Poll::Ready(Some(Err(error))) => {
                send.send_reset(reset_reason(&error.into()));
                return Poll::Ready(());
            }
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(mut data) => {
                    let end = body.is_end_stream();
                    let data = data.copy_to_bytes(data.remaining());
                    if data.is_empty() {
                        if end {
                            let _ = send.send_data(data, true);
                            return Poll::Ready(());
                        }
                        continue;
                    }
                    *pending = Some((data, end));
                }
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        send.reserve_capacity(0);
                        let _ = send.send_trailers(trailers);
                        return Poll::Ready(());
                    }
                }
            },
        }
    }
}
