//! Drives one server call: polls the handler future, enforces the deadline with the runtime's
//! timer, catches handler panics, and hands the core's outputs to the HTTP response body.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use connect_proto_core::{Code, ServerOutput, Status};
use http_body::{Body, Frame, SizeHint};

use crate::rt::Sleep;
use crate::server::shared::{RequestBody, Shared};

/// The handler future of one call.
pub(crate) type HandlerFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

pub(crate) struct Driver {
    shared: Arc<Shared>,
    handler: Option<HandlerFuture>,
    sleep: Option<(Instant, Sleep)>,
    /// HTTP/1.x: an unread request body is drained when the response ends.
    drain_unread: bool,
}

impl Driver {
    pub(crate) fn new(shared: Arc<Shared>, handler: HandlerFuture, drain_unread: bool) -> Self {
        Driver {
            shared,
            handler: Some(handler),
            sleep: None,
            drain_unread,
        }
    }

    /// The request body the response ended before reading, if it should be drained.
    fn unread_body(&mut self) -> Option<Drain> {
        if !self.drain_unread {
            return None;
        }
        let body = self.shared.lock().take_unread_body()?;
        Some(Drain {
            body,
            budget: DRAIN_BUDGET,
        })
    }

    /// The next output, running the handler and the deadline as needed. `None` once the
    /// response is complete.
    pub(crate) fn poll_output(&mut self, cx: &mut Context<'_>) -> Poll<Option<ServerOutput>> {
        // The handler is polled at most once per call of this function; outputs it queued are
        // picked up by the next iteration.
        let mut handler_polled = false;
        loop {
            let deadline = {
                let mut state = self.shared.lock();
                state.register_driver(cx.waker());
                if let Some(output) = state.take_output() {
                    return Poll::Ready(Some(output));
                }
                if state.call.is_finished() {
                    // Everything is written; a handler still running is cancelled by dropping it.
                    self.handler = None;
                    return Poll::Ready(None);
                }
                state.call.poll_timeout()
            };

            if let Some(deadline) = deadline {
                if let DeadlineState::Expired = self.poll_deadline(deadline, cx) {
                    let mut state = self.shared.lock();
                    let now = state.timer.now().max(deadline);
                    state.call.handle_timeout(now);
                    drop(state);
                    self.handler = None;
                    continue;
                }
            }

            if handler_polled {
                return Poll::Pending;
            }
            let Some(handler) = self.handler.as_mut() else {
                // The handler is gone but the call is not finished: it returned without
                // finishing (adapters always finish) — end the call rather than hang.
                let status = Status::new(Code::Internal, "the handler ended without a response");
                self.shared.lock().fail(status);
                continue;
            };
            handler_polled = true;
            let parked = self.shared.lock().park_driver_waker();
            let polled = catch_unwind(AssertUnwindSafe(|| handler.as_mut().poll(cx)));
            self.shared.lock().unpark_driver_waker(parked);
            match polled {
                Ok(Poll::Pending) => {}
                Ok(Poll::Ready(())) => self.handler = None,
                Err(_panic) => {
                    self.handler = None;
                    self.shared
                        .lock()
                        .fail(Status::new(Code::Internal, "the handler panicked"));
                }
            }
        }
    }

    fn poll_deadline(&mut self, deadline: Instant, cx: &mut Context<'_>) -> DeadlineState {
        let state = self.shared.lock();
        let timer = state.timer.clone();
        drop(state);
        if timer.now() >= deadline {
            return DeadlineState::Expired;
        }
        if self.sleep.as_ref().is_none_or(|(at, _)| *at != deadline) {
            self.sleep = timer.sleep_until(deadline).map(|sleep| (deadline, sleep));
        }
        match &mut self.sleep {
            Some((_, sleep)) => match sleep.as_mut().poll(cx) {
                Poll::Ready(()) => DeadlineState::Expired,
                Poll::Pending => DeadlineState::Pending,
            },
            None => DeadlineState::Pending,
        }
    }
}

enum DeadlineState {
    Expired,
    Pending,
}

/// The HTTP response body of a call.
pub struct ResponseBody {
    kind: Kind,
    /// An HTTP/1.x request body the response ended before reading, read (and discarded) up to
    /// a budget before the response ends, so the connection survives and a client still
    /// writing its body sees the response instead of a broken pipe.
    drain: Option<Drain>,
    /// Whether a complete body reports its exact length: over HTTP/1.x that makes a
    /// `content-length` instead of chunked encoding; HTTP/2 frames need no length, and the
    /// header would cost a formatted value per response.
    exact_length: bool,
}

struct Drain {
    body: RequestBody,
    budget: usize,
}

/// Most unread request bytes an HTTP/1.x response reads away before ending.
const DRAIN_BUDGET: usize = 1024 * 1024;

enum Kind {
    /// A complete body known up front (rejections, unary responses).
    Full(Option<Bytes>),
    /// A body produced while the call runs.
    Streaming(Driver),
    /// The remaining outputs of a call that already finished: the ones already taken, then
    /// the rest from the call.
    Rest([Option<ServerOutput>; 2], Arc<Shared>),
    /// Done.
    Ended,
}

impl ResponseBody {
    pub(crate) fn full(bytes: Bytes) -> Self {
        if bytes.is_empty() {
            ResponseBody {
                kind: Kind::Ended,
                drain: None,
                exact_length: false,
            }
        } else {
            ResponseBody {
                kind: Kind::Full(Some(bytes)),
                drain: None,
                exact_length: false,
            }
        }
    }

    /// A rejection's body; an HTTP/1.x request body is drained after it (see [`Drain`]).
    pub(crate) fn rejection(bytes: Bytes, unread: Option<RequestBody>) -> Self {
        let drain = unread.map(|body| Drain {
            body,
            budget: DRAIN_BUDGET,
        });
        ResponseBody {
            exact_length: drain.is_some(),
            drain,
            ..ResponseBody::full(bytes)
        }
    }

    pub(crate) fn streaming(driver: Driver) -> Self {
        ResponseBody {
            kind: Kind::Streaming(driver),
            drain: None,
            exact_length: false,
        }
    }

    /// An empty body.
    pub fn empty() -> Self {
        ResponseBody {
            kind: Kind::Ended,
            drain: None,
            exact_length: false,
        }
    }
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            Kind::Full(_) => "full",
            Kind::Streaming(_) => "streaming",
            Kind::Rest(..) => "rest",
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
            Kind::Rest(taken, shared) => {
                let output = taken[0]
                    .take()
                    .or_else(|| taken[1].take())
                    .or_else(|| shared.lock().take_output());
                output_frame(&mut this.kind, output)
            }
            Kind::Streaming(driver) => loop {
                match driver.poll_output(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Some(ServerOutput::Data(data))) => break Some(Frame::data(data)),
                    Poll::Ready(Some(ServerOutput::Trailers(trailers))) => {
                        this.drain = driver.unread_body().or(this.drain.take());
                        this.kind = Kind::Ended;
                        break Some(Frame::trailers(trailers));
                    }
                    // A head after the first one cannot happen; skip defensively.
                    Poll::Ready(Some(ServerOutput::Head(_))) => continue,
                    Poll::Ready(Some(ServerOutput::End)) | Poll::Ready(None) => {
                        this.drain = driver.unread_body().or(this.drain.take());
                        this.kind = Kind::Ended;
                        break None;
                    }
                }
            },
        };
        match frame {
            Some(frame) => Poll::Ready(Some(Ok(frame))),
            None => match this.drain.as_mut().map(|drain| drain.poll(cx)) {
                Some(Poll::Pending) => Poll::Pending,
                _ => {
                    this.drain = None;
                    Poll::Ready(None)
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.kind, Kind::Ended) && self.drain.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        if self.drain.is_some() {
            // An exact length would let the HTTP/1 writer finish without polling the body to
            // its end, and the drain would never run.
            return SizeHint::default();
        }
        match &self.kind {
            Kind::Ended => SizeHint::with_exact(0),
            Kind::Full(Some(bytes)) if self.exact_length => {
                SizeHint::with_exact(bytes.len() as u64)
            }
            Kind::Full(Some(_)) => SizeHint::default(),
            Kind::Full(None) => SizeHint::with_exact(0),
            Kind::Streaming(_) | Kind::Rest(..) => SizeHint::default(),
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
    let mut state = driver.shared.lock();
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
    let body = match (first, second) {
        (None, _) | (Some(ServerOutput::End), _) => ResponseBody::empty(),
        (Some(ServerOutput::Data(data)), Some(ServerOutput::End)) => ResponseBody::full(data),
        (first, second) => ResponseBody {
            kind: Kind::Rest([first, second], driver.shared.clone()),
            drain: None,
            exact_length: false,
        },
    };
    let body = ResponseBody {
        drain: driver.unread_body(),
        exact_length: driver.drain_unread,
        ..body
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
        Some(ServerOutput::Head(_)) | Some(ServerOutput::End) | None => {
            *kind = Kind::Ended;
            None
        }
    }
}

impl Drain {
    /// Reads and discards request frames until the end, an error, or the budget runs out.
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            match self.body.as_mut().poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => {
                    let len = frame.data_ref().map_or(0, Bytes::len);
                    if len > self.budget {
                        return Poll::Ready(());
                    }
                    self.budget -= len;
                }
                Poll::Ready(Some(Err(_)) | None) => return Poll::Ready(()),
            }
        }
    }
}
