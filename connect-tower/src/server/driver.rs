//! Drives one server call: polls the handler future (with the call's deadline as the current
//! one, for calls it makes), enforces the deadline and timers with the runtime's timer, ends
//! the call when the server's drain deadline passes, keeps handler panics (in `poll` and in
//! `drop`) inside the call, and hands the core's outputs to the HTTP response body.

use std::collections::VecDeque;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::Bytes;
use connect_proto_core::{Code, ServerOutput, Status};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

use crate::observe::recorder::CallSpan;
use crate::rt::{ShutdownWatch, Sleep, with_deadline};
use crate::server::handler_wake::HandlerWake;
use crate::server::shared::CallCell;
use crate::server::unary::{UnaryFuture, poll_unary};

/// The handler future of one call.
pub(crate) type HandlerFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What a driver runs for its call.
pub(crate) enum Task {
    /// A handler future sharing the call state (`Dispatch::dispatch`); with a `wake`, it is
    /// polled with that waker, and only when it was woken; without, whenever the driver is.
    Handler {
        future: HandlerFuture,
        wake: Option<HandlerWake>,
    },
    /// The unary fast path: the request is read here, then the handler's future (once
    /// dispatched) runs.
    Unary(Option<UnaryFuture>),
}

impl Task {
    /// A shared-state handler: with `when_woken`, polled only when woken (due its first
    /// poll); else whenever the driver is.
    pub(crate) fn handler(future: HandlerFuture, when_woken: bool) -> Self {
        Task::Handler {
            future,
            wake: when_woken.then(HandlerWake::new),
        }
    }
}

pub(crate) struct Driver {
    cell: CallCell,
    handler: Option<Task>,
    /// The call's deadline, current while the handler runs (calls it makes inherit it).
    deadline: Option<Instant>,
    sleep: Option<(Instant, Sleep)>,
    /// The server's drain deadline, when the adapter reported a shutdown signal.
    shutdown: Option<ShutdownWatch>,
    /// HTTP/1.x: a complete body reports its exact length (a `content-length`).
    http1: bool,
    /// The call's span (feature `tracing`), entered while the handler is polled.
    span: CallSpan,
}

impl Driver {
    pub(crate) fn new(
        mut cell: CallCell,
        handler: Task,
        http1: bool,
        shutdown: Option<ShutdownWatch>,
        span: CallSpan,
    ) -> Self {
        let deadline = cell.lock().call.deadline();
        Driver {
            cell,
            handler: Some(handler),
            deadline,
            sleep: None,
            shutdown,
            http1,
            span,
        }
    }

    /// Drops the handler future; a panic in its `drop` stays here.
    fn drop_handler(&mut self) {
        if let Some(handler) = self.handler.take() {
            let _ = catch_unwind(AssertUnwindSafe(move || drop(handler)));
        }
    }

    /// The next output, running the handler and the deadline as needed. `None` once the
    /// response is complete.
    pub(crate) fn poll_output(&mut self, cx: &mut Context<'_>) -> Poll<Option<ServerOutput>> {
        // The handler is polled at most once per call of this function, and only when it is
        // due (a handler with its own waker: woken since its last poll; others whenever the
        // driver is polled); outputs it queued are picked up by the next iteration.
        let mut handler_polled = false;
        let handler_due = match &mut self.handler {
            Some(Task::Handler {
                wake: Some(wake), ..
            }) => wake.is_due(cx),
            Some(Task::Handler { wake: None, .. } | Task::Unary(_)) => true,
            None => false,
        };
        // The driver's waker, taken from the call state while the handler is polled (`Some`
        // from the look at the call that precedes the handler's poll to the next one).
        let mut parked: Option<Option<Waker>> = None;
        loop {
            let deadline = {
                let mut state = self.cell.lock();
                if let Some(waker) = parked.take() {
                    state.unpark_driver_waker(waker);
                }
                state.register_driver(cx.waker());
                if let Some(output) = state.take_output() {
                    return Poll::Ready(Some(output));
                }
                if state.call.is_finished() {
                    // Everything is written; a handler still running is cancelled by dropping it.
                    drop(state);
                    self.drop_handler();
                    return Poll::Ready(None);
                }
                if !handler_polled && handler_due {
                    // Parked in the same lock as this look at the call: what the handler
                    // queues while it is polled is seen by the next look, without waking this
                    // task once per message. Every path back to the top puts it back.
                    parked = Some(state.park_driver_waker());
                }
                state.call.poll_timeout()
            };

            if let Some(deadline) = deadline {
                // Until the handler has been polled, only the clock is read: a call it
                // completes at once (a unary request whose body is all there) then never
                // arms a timer. Before this returns `Pending` the timer is armed (at once when
                // the handler is not due: this call returns without polling it).
                let state = if handler_polled || !handler_due || self.sleep.is_some() {
                    self.poll_deadline(deadline, cx)
                } else {
                    self.check_deadline(deadline)
                };
                if let DeadlineState::Expired = state {
                    let mut state = self.cell.lock();
                    let now = state.timer.now().max(deadline);
                    state.handle_timeout(now);
                    let finished = state.call.is_finished();
                    drop(state);
                    if finished {
                        self.drop_handler();
                    } else {
                        // A timer that moves (a unary body's pause limit): poll again.
                        self.sleep = None;
                    }
                    continue;
                }
            }

            // A call that arrives after the drain deadline is not run: the phase is read
            // (no registration) before the handler's first poll of this call of the function.
            if !handler_polled && self.shutdown.as_ref().is_some_and(ShutdownWatch::is_forced) {
                self.end_for_shutdown();
                continue;
            }

            let Some(handler) = self.handler.as_mut() else {
                // The handler is gone but the call is not finished: it returned without
                // finishing (a dispatcher that forgot to answer) — end the call rather than
                // hang.
                let status = Status::new(Code::Internal, "the handler ended without a response");
                self.cell.lock().fail(status);
                continue;
            };
            if handler_polled || !handler_due {
                // The drain deadline is watched (a waker registered with the signal every
                // call of the server shares) only by a call about to wait: one its handler
                // finishes in a poll (most unary calls) never registers.
                if let Some(shutdown) = self.shutdown.as_mut() {
                    if shutdown.poll_forced(cx).is_ready() {
                        self.end_for_shutdown();
                        continue;
                    }
                }
                return Poll::Pending;
            }
            handler_polled = true;
            let cell = &mut self.cell;
            let polled = self.span.in_scope(|| {
                with_deadline(self.deadline, || {
                    catch_unwind(AssertUnwindSafe(|| match handler {
                        Task::Handler {
                            future,
                            wake: Some(wake),
                        } => {
                            wake.begin_poll();
                            future.as_mut().poll(&mut Context::from_waker(wake.waker()))
                        }
                        Task::Handler { future, wake: None } => future.as_mut().poll(cx),
                        Task::Unary(future) => poll_unary(cell, future, cx),
                    }))
                })
            });
            match polled {
                Ok(Poll::Pending) => {}
                Ok(Poll::Ready(())) => self.drop_handler(),
                Err(_panic) => {
                    self.drop_handler();
                    self.cell
                        .lock()
                        .fail(Status::new(Code::Internal, "the handler panicked"));
                }
            }
        }
    }

    /// Ends the call with `unavailable`: the server's drain deadline passed.
    fn end_for_shutdown(&mut self) {
        self.shutdown = None;
        let status = Status::new(Code::Unavailable, "the server is shutting down");
        self.cell.lock().fail(status);
    }

    /// Whether `deadline` passed, by the clock alone (no timer armed).
    fn check_deadline(&mut self, deadline: Instant) -> DeadlineState {
        let now = self.cell.lock().timer.now();
        if now >= deadline {
            DeadlineState::Expired
        } else {
            DeadlineState::Pending
        }
    }

    fn poll_deadline(&mut self, deadline: Instant, cx: &mut Context<'_>) -> DeadlineState {
        let timer = self.cell.lock().timer.clone();
        if timer.now() >= deadline {
            return DeadlineState::Expired;
        }
        let sleep = match &mut self.sleep {
            Some((at, sleep)) if *at == deadline => sleep,
            _ => &mut self.sleep.insert((deadline, timer.sleep_until(deadline))).1,
        };
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => DeadlineState::Expired,
            Poll::Pending => DeadlineState::Pending,
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The response body was dropped (the client went away, the connection closed): the
        // call ends as cancelled, so a request reader or response sender held by another task
        // fails and is woken, and the handler is cancelled — a panic in its `drop` must not
        // reach the connection.
        self.cell.lock().client_gone();
        self.drop_handler();
    }
}

enum DeadlineState {
    Expired,
    Pending,
}

/// The HTTP response body of a call.
///
/// A response may end before the request body was read to its end (an early error, a
/// rejection): the request body is then dropped, and HTTP/1.1 servers close the connection
/// after the response (`connect-tokio-hyper`'s server first lets a client still sending see
/// the whole response: a lingering close).
pub struct ResponseBody {
    kind: Kind,
    /// Whether a complete body reports its exact length: over HTTP/1.x that makes a
    /// `content-length` instead of chunked encoding; HTTP/2 frames need no length, and the
    /// header would cost a formatted value per response.
    exact_length: bool,
}

enum Kind {
    /// A complete body known up front (rejections, unary responses).
    Full(Option<Bytes>),
    /// A body produced while the call runs.
    Streaming(Driver),
    /// The rest of a call that already finished with a message and trailers (gRPC and
    /// gRPC-Web unary responses): the data chunk, if not yet written, then the trailers.
    Trailing(Option<Bytes>, HeaderMap),
    /// The outputs of a call that already finished, in any other arrangement.
    Replay(VecDeque<ServerOutput>),
    /// Done.
    Ended,
}

impl ResponseBody {
    /// A complete body; with `exact_length` (HTTP/1.x) it reports its length.
    pub(crate) fn full(bytes: Bytes, exact_length: bool) -> Self {
        let kind = if bytes.is_empty() {
            Kind::Ended
        } else {
            Kind::Full(Some(bytes))
        };
        ResponseBody { kind, exact_length }
    }

    pub(crate) fn streaming(driver: Driver) -> Self {
        ResponseBody {
            kind: Kind::Streaming(driver),
            exact_length: false,
        }
    }

    /// An empty body.
    pub fn empty() -> Self {
        ResponseBody {
            kind: Kind::Ended,
            exact_length: false,
        }
    }
}

/// An empty body (what CORS preflight answers and other middleware-made responses carry).
impl Default for ResponseBody {
    fn default() -> Self {
        ResponseBody::empty()
    }
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            Kind::Full(_) => "full",
            Kind::Streaming(_) => "streaming",
            Kind::Trailing(..) => "trailing",
            Kind::Replay(_) => "replay",
            Kind::Ended => "ended",
        };
        f.debug_struct("ResponseBody").field("kind", &kind).finish()
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let frame = match &mut this.kind {
            Kind::Ended => None,
            Kind::Full(bytes) => {
                let frame = bytes.take().map(Frame::data);
                this.kind = Kind::Ended;
                frame
            }
            Kind::Trailing(data, trailers) => match data.take() {
                Some(data) => Some(Frame::data(data)),
                None => {
                    let trailers = std::mem::take(trailers);
                    this.kind = Kind::Ended;
                    Some(Frame::trailers(trailers))
                }
            },
            Kind::Replay(outputs) => {
                let output = outputs.pop_front();
                output_frame(&mut this.kind, output)
            }
            Kind::Streaming(driver) => loop {
                match driver.poll_output(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Some(ServerOutput::Data(data))) => break Some(Frame::data(data)),
                    Poll::Ready(Some(ServerOutput::Trailers(trailers))) => {
                        this.kind = Kind::Ended;
                        break Some(Frame::trailers(trailers));
                    }
                    // A head after the first one cannot happen; skip defensively.
                    Poll::Ready(Some(ServerOutput::Head(_))) => continue,
                    // `End`, or an output a newer core might add: the body ends (a response
                    // cut short is an error the client sees, never a silent success).
                    Poll::Ready(Some(_)) | Poll::Ready(None) => {
                        this.kind = Kind::Ended;
                        break None;
                    }
                }
            },
        };
        Poll::Ready(frame.map(Ok))
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.kind, Kind::Ended)
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Ended => SizeHint::with_exact(0),
            Kind::Full(Some(bytes)) if self.exact_length => {
                SizeHint::with_exact(bytes.len() as u64)
            }
            Kind::Full(Some(_)) => SizeHint::default(),
            Kind::Full(None) => SizeHint::with_exact(0),
            Kind::Streaming(_) | Kind::Trailing(..) | Kind::Replay(_) => SizeHint::default(),
        }
    }
}

/// The response future of a call: runs the call until its response head is known, then
/// decides the body form: the rest of the response when the call already finished (the unary
/// fast path: no driver, an exact length for a lone message), else a body that keeps driving
/// the call.
pub struct ResponseFuture {
    state: FutureState,
}

// The driver is the common case and lives inline (boxing it would cost an allocation per
// call); the rare rejection is the boxed one.
#[allow(clippy::large_enum_variant)]
enum FutureState {
    /// A rejection, answered at once (boxed: rare, and much larger than a driver).
    Ready(Option<Box<http::Response<ResponseBody>>>),
    Driving(Option<Driver>),
}

impl ResponseFuture {
    pub(crate) fn ready(response: http::Response<ResponseBody>) -> Self {
        ResponseFuture {
            state: FutureState::Ready(Some(Box::new(response))),
        }
    }

    pub(crate) fn driving(driver: Driver) -> Self {
        ResponseFuture {
            state: FutureState::Driving(Some(driver)),
        }
    }
}

impl std::fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl Future for ResponseFuture {
    type Output = Result<http::Response<ResponseBody>, std::convert::Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let response = match &mut this.state {
            FutureState::Ready(response) => response.take().map(|r| *r),
            FutureState::Driving(driver) => {
                let head = match driver.as_mut().map(|d| d.poll_output(cx)) {
                    Some(Poll::Pending) => return Poll::Pending,
                    Some(Poll::Ready(head)) => head,
                    None => None,
                };
                driver.take().map(|driver| respond(head, driver))
            }
        };
        // Polled again after completion: an empty response rather than a panic.
        Poll::Ready(Ok(
            response.unwrap_or_else(|| http::Response::new(ResponseBody::empty()))
        ))
    }
}

fn respond(head: Option<ServerOutput>, mut driver: Driver) -> http::Response<ResponseBody> {
    let Some(ServerOutput::Head(head)) = head else {
        // The core always writes a head first; an empty response is the defensive fallback.
        return http::Response::new(ResponseBody::empty());
    };
    let mut state = driver.cell.lock();
    if !state.call.is_finished() {
        drop(state);
        return http::Response::from_parts(head, ResponseBody::streaming(driver));
    }
    let first = state.take_output();
    let second = match first {
        Some(ServerOutput::Data(_)) => state.take_output(),
        _ => None,
    };
    drop(state);
    let kind = match (first, second) {
        (None, _) | (Some(ServerOutput::End), _) => {
            return http::Response::from_parts(
                head,
                ResponseBody::full(Bytes::new(), driver.http1),
            );
        }
        (Some(ServerOutput::Data(data)), Some(ServerOutput::End)) => {
            return http::Response::from_parts(head, ResponseBody::full(data, driver.http1));
        }
        (Some(ServerOutput::Data(data)), Some(ServerOutput::Trailers(trailers))) => {
            Kind::Trailing(Some(data), trailers)
        }
        (Some(ServerOutput::Trailers(trailers)), _) => Kind::Trailing(None, trailers),
        (first, second) => {
            // Not a shape a unary call makes; replayed as they come, the driver released.
            let mut outputs: VecDeque<ServerOutput> =
                [first, second].into_iter().flatten().collect();
            let mut state = driver.cell.lock();
            while let Some(output) = state.take_output() {
                outputs.push_back(output);
            }
            Kind::Replay(outputs)
        }
    };
    let body = ResponseBody {
        kind,
        exact_length: false,
    };
    http::Response::from_parts(head, body)
}

/// The frame for a replayed output; ends the body on `End`, trailers or exhaustion.
fn output_frame(kind: &mut Kind, output: Option<ServerOutput>) -> Option<Frame<Bytes>> {
    match output {
        Some(ServerOutput::Data(data)) => Some(Frame::data(data)),
        Some(ServerOutput::Trailers(trailers)) => {
            *kind = Kind::Ended;
            Some(Frame::trailers(trailers))
        }
        Some(_) | None => {
            *kind = Kind::Ended;
            None
        }
    }
}
