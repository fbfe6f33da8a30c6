//! The state one server call shares between its driver (which feeds the HTTP response) and
//! the handler (which reads requests and sends responses, possibly from other tasks).
//!
//! Everything protocol-related happens in the core's [`ServerCall`]; this module only moves
//! bytes between it, the request body and the handler, and wakes whoever waits.
//!
//! It is also where an observed call's traffic is counted and its end is known: the response
//! is complete when its last output (trailers, or the end) is taken; a call the client
//! abandons ends when the response body is dropped; the state's drop is the backstop.

use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::Bytes;
use connect_proto_core::call::{Admission, FramedMessages};
use connect_proto_core::codec::EncodedMessage;
use connect_proto_core::{ServerCall, ServerEvent, ServerOutput, Status, UsageError};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::TransportError;
use crate::intercept::{ActiveInterceptors, CallInfo, CannedResponse};
use crate::observe::recorder::Recorder;
use crate::rt::SharedTimer;

/// The request body, type-erased.
pub(crate) type RequestBody = crate::body::BoxBody;

/// Default most response bytes queued ahead of the HTTP writer before `send` waits.
pub const DEFAULT_MAX_QUEUED_BYTES: usize = 256 * 1024;

/// What reading the request produced.
pub(crate) enum Received {
    Message(Bytes),
    End,
    Failed(Status),
}

pub(crate) struct Shared {
    state: Mutex<State>,
}

pub(crate) struct State {
    pub(crate) call: ServerCall,
    pub(crate) timer: SharedTimer,
    /// When the request arrived.
    started: Instant,
    body: Option<RequestBody>,
    /// The request side ended (end event delivered to the reader) or failed.
    request_done: bool,
    driver_waker: Option<Waker>,
    writer_waker: Option<Waker>,
    /// A request reader waiting for the request body (possibly on another task).
    reader_waker: Option<Waker>,
    /// Trailers the handler added, once it adds one.
    trailers: Option<Box<HeaderMap>>,
    /// The interceptors the call went through, once its request hooks ran.
    intercept: Option<Box<(ActiveInterceptors, CallInfo)>>,
    headers_finalized: bool,
    /// Most response bytes queued before `send` waits.
    max_queued: usize,
    /// The call's observation, while anyone observes it.
    observe: Option<Box<Recorder>>,
}

impl State {
    // Inlined so the state is built where it is stored (it is over 600 bytes).
    #[inline(always)]
    pub(crate) fn new(
        admission: Admission<'_>,
        body: RequestBody,
        timer: SharedTimer,
        started: Instant,
        max_queued: usize,
        observe: Option<Box<Recorder>>,
    ) -> Self {
        State {
            // Built here, in place (a call is 0.5 KB: a call passed in is one more copy).
            call: admission.into_call(),
            timer,
            started,
            body: Some(body),
            request_done: false,
            driver_waker: None,
            writer_waker: None,
            reader_waker: None,
            trailers: None,
            intercept: None,
            headers_finalized: false,
            max_queued,
            observe,
        }
    }
}

impl Shared {
    pub(crate) fn new(state: State) -> Arc<Self> {
        Arc::new(Shared {
            state: Mutex::new(state),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking handler is caught by the driver; the state itself stays consistent
        // because every mutation completes before any user code runs.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A call's state as its driver holds it: shared with a handler that may run on other tasks
/// (every call [`Dispatch::dispatch`](super::Dispatch::dispatch) runs), or owned outright by
/// the driver (the unary fast path, whose handler never touches it).
pub(crate) enum CallCell {
    Shared(Arc<Shared>),
    Owned(Box<UnaryState>),
}

/// The state of a call on the unary fast path: the call, and what its handler is made from
/// once the request message is in.
pub(crate) struct UnaryState {
    pub(crate) state: State,
    /// The request message, once received.
    pub(crate) message: Option<Bytes>,
    /// What the handler is dispatched with, until it is.
    pub(crate) pending: Option<PendingUnary>,
}

/// A unary call waiting for its request message before it is dispatched.
pub(crate) struct PendingUnary {
    pub(crate) context: crate::message::RequestContext,
    pub(crate) limit: usize,
    pub(crate) dispatcher: Arc<dyn super::unary::UnaryDispatcher>,
}

impl CallCell {
    /// The call state: locked when shared, borrowed when owned.
    pub(crate) fn lock(&mut self) -> StateGuard<'_> {
        match self {
            CallCell::Shared(shared) => StateGuard::Locked(shared.lock()),
            CallCell::Owned(owned) => StateGuard::Owned(&mut owned.state),
        }
    }
}

/// Access to a call's state through a [`CallCell`].
pub(crate) enum StateGuard<'a> {
    Locked(MutexGuard<'a, State>),
    Owned(&'a mut State),
}

impl std::ops::Deref for StateGuard<'_> {
    type Target = State;

    fn deref(&self) -> &State {
        match self {
            StateGuard::Locked(guard) => guard,
            StateGuard::Owned(state) => state,
        }
    }
}

impl std::ops::DerefMut for StateGuard<'_> {
    fn deref_mut(&mut self) -> &mut State {
        match self {
            StateGuard::Locked(guard) => &mut *guard,
            StateGuard::Owned(state) => state,
        }
    }
}

impl State {
    /// The time to hand the core: the clock when the call has a timer running (a deadline, or
    /// the pause limit of an open unary request body); without one time has no protocol
    /// meaning, and the arrival time saves reading the clock.
    fn now(&self) -> Instant {
        if self.call.poll_timeout().is_some() {
            self.timer.now()
        } else {
            self.started
        }
    }

    /// Reads the request of a call with one request message to its end: `Some` with the
    /// message, or `None` when the call already ended (its response is queued). `slot` keeps
    /// the message between polls until the request's end is read. (The core enforces
    /// cardinality: a second message never arrives here.)
    pub(crate) fn poll_receive_one(
        &mut self,
        slot: &mut Option<Bytes>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Bytes>> {
        loop {
            match self.poll_receive(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Received::Message(bytes)) => *slot = Some(bytes),
                Poll::Ready(Received::End) => return Poll::Ready(slot.take()),
                Poll::Ready(Received::Failed(_)) => return Poll::Ready(None),
            }
        }
    }

    /// Reads the next request item, pulling body frames as needed.
    pub(crate) fn poll_receive(&mut self, cx: &mut Context<'_>) -> Poll<Received> {
        loop {
            if let Some(event) = self.call.poll_event() {
                let received = match event {
                    ServerEvent::Message(bytes) => self.received(bytes),
                    // Only with pass-through, which this crate never asks for; decompressed
                    // all the same should that change.
                    ServerEvent::CompressedMessage(payload) => {
                        match self.call.decompress_message(payload) {
                            Ok(bytes) => self.received(bytes),
                            Err(error) => {
                                let status = error.to_status();
                                self.fail(status.clone());
                                Received::Failed(status)
                            }
                        }
                    }
                    ServerEvent::RequestEnd => {
                        self.request_done = true;
                        Received::End
                    }
                    ServerEvent::Failed(status) => {
                        self.request_done = true;
                        self.wake_driver();
                        Received::Failed(status)
                    }
                    // An event a newer core might add: fail the call rather than drop it.
                    _ => {
                        let status = Status::internal("the call produced an unknown event");
                        self.fail(status.clone());
                        Received::Failed(status)
                    }
                };
                return Poll::Ready(received);
            }
            if self.request_done {
                return Poll::Ready(Received::End);
            }
            if self.call.is_finished() {
                // The response ended (deadline, error) while the request was still open.
                self.request_done = true;
                return Poll::Ready(Received::Failed(UsageError::AlreadyFinished.into()));
            }
            if self.call.is_request_done() {
                self.request_done = true;
                return Poll::Ready(Received::End);
            }
            // The call is not finished here: any input that finishes it is the core's doing.
            let Some(body) = self.body.as_mut() else {
                self.call.handle_end(None);
                continue;
            };
            match body.as_mut().poll_frame(cx) {
                Poll::Pending => {
                    match &self.reader_waker {
                        Some(waker) if waker.will_wake(cx.waker()) => {}
                        _ => self.reader_waker = Some(cx.waker().clone()),
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        let now = self.now();
                        let len = data.len() as u64;
                        self.count(|traffic| traffic.request_bytes += len);
                        self.call.handle_data(now, data);
                    }
                    Err(frame) => {
                        self.body = None;
                        self.call.handle_end(frame.into_trailers().ok());
                    }
                },
                Poll::Ready(Some(Err(error))) => {
                    self.body = None;
                    match TransportError::find(error.as_ref()) {
                        // The client reset the stream: nobody listens for an answer.
                        Some(TransportError {
                            reset_code: Some(_),
                            ..
                        }) => self.call.handle_reset(),
                        // The body broke off (an HTTP/1.1 body shorter than announced, a bad
                        // chunk): the client may still read the error.
                        _ => self.call.handle_body_error(&error.to_string()),
                    }
                }
                Poll::Ready(None) => {
                    self.body = None;
                    self.call.handle_end(None);
                }
            }
            // Feeding may have queued a response (a request error): let the driver write it.
            self.wake_driver();
        }
    }

    /// A request message arrived: counted, and passed through the interceptors.
    fn received(&mut self, bytes: Bytes) -> Received {
        self.count(|traffic| traffic.request_messages += 1);
        let intercepted = match self.intercept.as_deref() {
            Some((active, call)) => active.on_request_message(call, &bytes),
            None => Ok(()),
        };
        if let Err(status) = intercepted {
            self.fail(status.clone());
            return Received::Failed(status);
        }
        Received::Message(bytes)
    }

    /// Sets the interceptors the call went through (once their request hooks ran).
    pub(crate) fn intercept(&mut self, active: ActiveInterceptors, call: CallInfo) {
        self.intercept = Some(Box::new((active, call)));
    }

    /// Answers a unary or client-streaming call with its handler's outcome.
    pub(crate) fn reply(&mut self, outcome: Result<super::unary::UnaryReply, Status>) {
        match outcome {
            Ok(reply) => {
                let (message, headers, trailers) = reply.into_parts();
                self.add_header_map(headers);
                match self.send_message(message) {
                    Ok(()) => self.finish(Ok(trailers)),
                    Err(status) => self.finish(Err(status)),
                }
            }
            Err(status) => self.finish(Err(status)),
        }
    }

    /// Answers the call with an interceptor's response instead of the handler's.
    pub(crate) fn respond(&mut self, response: Box<CannedResponse>) {
        let CannedResponse {
            headers,
            messages,
            trailers,
            ..
        } = *response;
        self.add_header_map(headers);
        for message in messages {
            if let Err(status) = self.send_message(message.into()) {
                self.finish(Err(status));
                return;
            }
        }
        self.finish(Ok(trailers));
    }

    /// Runs the response-header interceptors once, before the head can be written.
    fn finalize_headers(&mut self) -> Result<(), Status> {
        if self.headers_finalized {
            return Ok(());
        }
        self.headers_finalized = true;
        match (self.intercept.as_deref(), self.call.response_headers_mut()) {
            (Some((active, call)), Some(headers)) => active.on_response_headers(call, headers),
            _ => Ok(()),
        }
    }

    /// Whether a message may be queued now; otherwise registers the writer's waker.
    pub(crate) fn poll_send_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        if self.call.is_finished() {
            return Poll::Ready(Err(UsageError::AlreadyFinished.into()));
        }
        if self.call.buffered_output_bytes() >= self.max_queued {
            self.writer_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        Poll::Ready(Ok(()))
    }

    pub(crate) fn send_message(&mut self, message: EncodedMessage) -> Result<(), Status> {
        let intercepted = self
            .finalize_headers()
            .and_then(|()| match self.intercept.as_deref() {
                Some((active, call)) => active.on_response_message(call, message.as_bytes()),
                None => Ok(()),
            });
        if let Err(status) = intercepted {
            self.fail(status.clone());
            return Err(status);
        }
        self.call.send_message(message)?;
        self.count(|traffic| traffic.response_messages += 1);
        self.wake_driver();
        Ok(())
    }

    /// Whether messages can be written straight into the response body: the core allows it
    /// and no interceptor needs to see each message first.
    pub(crate) fn writes_in_place(&self) -> bool {
        self.intercept.is_none() && self.call.writes_in_place()
    }

    /// Sends a message `write` encodes straight into the response body (see
    /// [`writes_in_place`](Self::writes_in_place)).
    pub(crate) fn send_message_with(
        &mut self,
        write: impl FnOnce(&mut bytes::BytesMut) -> Result<(), connect_proto_core::codec::CodecError>,
    ) -> Result<(), Status> {
        if let Err(status) = self.finalize_headers() {
            self.fail(status.clone());
            return Err(status);
        }
        self.call.send_message_with(write)?;
        self.count(|traffic| traffic.response_messages += 1);
        self.wake_driver();
        Ok(())
    }

    /// Where a run of messages may be framed away from the call and handed over whole
    /// ([`send_framed`](Self::send_framed)): the bytes the queue has room for and the send
    /// limit; `None` when messages must go one at a time (interceptors see each one, the
    /// response is compressed or text, the method answers with one message). A first run
    /// writes the response head.
    pub(crate) fn framed_room(&self) -> Option<(usize, Option<usize>)> {
        if self.intercept.is_some() || !self.call.accepts_framed_messages() {
            return None;
        }
        let room = self
            .max_queued
            .saturating_sub(self.call.buffered_output_bytes());
        Some((room, self.call.send_limit()))
    }

    /// Sends a run of messages framed by the caller (see [`framed_room`](Self::framed_room)).
    pub(crate) fn send_framed(&mut self, framed: FramedMessages) -> Result<(), Status> {
        if let Err(status) = self.finalize_headers() {
            self.fail(status.clone());
            return Err(status);
        }
        let sent = self.call.send_framed_run(framed)? as u64;
        self.count(|traffic| traffic.response_messages += sent);
        self.wake_driver();
        Ok(())
    }

    pub(crate) fn send_headers(&mut self) -> Result<(), Status> {
        if let Err(status) = self.finalize_headers() {
            self.fail(status.clone());
            return Err(status);
        }
        self.call.send_headers()?;
        self.wake_driver();
        Ok(())
    }

    /// Adds every value of `headers` (appended, as [`add_headers`](Self::add_headers) does).
    pub(crate) fn add_header_map(&mut self, headers: HeaderMap) {
        // Most replies add none: an empty map is not walked (its iterator alone costs more
        // than the rest of a reply's bookkeeping).
        if headers.is_empty() {
            return;
        }
        let mut last = None;
        let entries = headers.into_iter().filter_map(|(name, value)| {
            // `HeaderMap::into_iter` names only the first of a name's values.
            last = name.or(last.clone());
            last.clone().map(|name| (name, value))
        });
        self.add_headers(entries);
    }

    /// Adds a trailer, sent when the call finishes.
    pub(crate) fn add_trailer(&mut self, name: HeaderName, value: HeaderValue) {
        self.trailers
            .get_or_insert_with(Default::default)
            .append(name, value);
    }

    /// Adds response headers, until the head is written (later ones are not sent).
    pub(crate) fn add_headers(
        &mut self,
        headers: impl IntoIterator<Item = (HeaderName, HeaderValue)>,
    ) {
        if let Some(target) = self.call.response_headers_mut() {
            for (name, value) in headers {
                target.append(name, value);
            }
        }
    }

    /// Ends the call. A call that already ended (deadline, client gone) ignores this.
    pub(crate) fn finish(&mut self, outcome: Result<HeaderMap, Status>) {
        if self.call.is_finished() {
            return;
        }
        let outcome = match self.finalize_headers() {
            Ok(()) => outcome,
            Err(status) => Err(status),
        };
        // The handler's own trailers (from its sender) come first; the outcome's replace
        // any of the same name.
        let added = self.trailers.take();
        let mut outcome = match (outcome, added) {
            (Ok(trailers), None) => Ok(trailers),
            (Ok(trailers), Some(mut all)) => {
                all.extend(trailers);
                Ok(*all)
            }
            (Err(mut status), Some(added)) => {
                status.metadata_mut().extend(*added);
                Err(status)
            }
            (Err(status), None) => Err(status),
        };
        if let Some((active, call)) = self.intercept.as_deref() {
            active.on_end(call, &mut outcome);
        }
        // A usage error here (a unary handler without a message) still ends the call: the
        // core then answers `internal` itself (and reports it as the call's outcome).
        let _ = self.call.finish(outcome);
        self.wake_driver();
    }

    /// Takes the next response output for the HTTP writer.
    pub(crate) fn take_output(&mut self) -> Option<ServerOutput> {
        let output = self.call.poll_output()?;
        match &output {
            ServerOutput::Data(data) => {
                let len = data.len() as u64;
                self.count(|traffic| traffic.response_bytes += len);
                if self.call.buffered_output_bytes() < self.max_queued {
                    if let Some(waker) = self.writer_waker.take() {
                        waker.wake();
                    }
                }
            }
            // The response is complete.
            ServerOutput::Trailers(_) | ServerOutput::End => self.end_observation(),
            _ => {}
        }
        Some(output)
    }

    pub(crate) fn register_driver(&mut self, waker: &Waker) {
        match &self.driver_waker {
            Some(existing) if existing.will_wake(waker) => {}
            _ => self.driver_waker = Some(waker.clone()),
        }
    }

    /// Takes the driver's waker while the driver itself polls the handler: what the handler
    /// queues then is picked up by the driver's next look at the call, without waking its
    /// own task once per message.
    pub(crate) fn park_driver_waker(&mut self) -> Option<Waker> {
        self.driver_waker.take()
    }

    /// Puts a parked waker back (unless the driver registered a newer one meanwhile).
    pub(crate) fn unpark_driver_waker(&mut self, waker: Option<Waker>) {
        if self.driver_waker.is_none() {
            self.driver_waker = waker;
        }
    }

    fn wake_driver(&mut self) {
        if let Some(waker) = &self.driver_waker {
            waker.wake_by_ref();
        }
    }

    /// The response body is gone (the client went away, the connection closed): the call
    /// ends as the core ends a call whose client reset it, and whoever waits on another task
    /// (a request reader, a response sender) is woken to see it.
    pub(crate) fn client_gone(&mut self) {
        if !self.call.is_finished() {
            self.call.handle_reset();
            self.end_observation();
        }
        self.body = None;
        for waker in [self.writer_waker.take(), self.reader_waker.take()]
            .into_iter()
            .flatten()
        {
            waker.wake();
        }
    }

    /// Fails the call from the driver's side (deadline, handler panic).
    pub(crate) fn fail(&mut self, status: Status) {
        self.finish(Err(status));
        if let Some(waker) = self.writer_waker.take() {
            waker.wake();
        }
    }

    /// Times the call out at `now` (its deadline, or a unary body's pause limit).
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.call.handle_timeout(now);
    }

    /// Counts traffic, when the call is observed.
    fn count(&mut self, update: impl FnOnce(&mut crate::observe::Traffic)) {
        if let Some(observe) = self.observe.as_deref_mut() {
            update(&mut observe.traffic);
        }
    }

    /// Ends the call's observation (once).
    fn end_observation(&mut self) {
        if let Some(mut observe) = self.observe.take() {
            // The core knows how the call ended, whoever ended it (the handler, a protocol
            // error, the deadline, the client).
            if let Some(outcome) = self.call.outcome() {
                observe.note(outcome);
            }
            observe.end(self.call.response_compression());
        }
    }
}

impl Drop for State {
    fn drop(&mut self) {
        // A response never completed nor abandoned through the driver (its body dropped
        // while replaying the outputs of a finished call).
        self.end_observation();
    }
}

#[cfg(test)]
mod tests {
    use super::{Shared, UnaryState};
    use crate::ALLOCATOR_FAST_BLOCK;

    #[test]
    fn a_calls_state_fits_the_allocators_fast_blocks() {
        // An `Arc` adds its two counts.
        let shared = std::mem::size_of::<Shared>() + 2 * std::mem::size_of::<usize>();
        assert!(
            shared <= ALLOCATOR_FAST_BLOCK,
            "a shared call state is {shared} bytes"
        );
        let owned = std::mem::size_of::<UnaryState>();
        assert!(
            owned <= ALLOCATOR_FAST_BLOCK,
            "a unary call state is {owned} bytes"
        );
    }
}
