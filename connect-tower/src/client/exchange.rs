//! One client call in flight: the core's [`ClientCall`] shared with the request body (which the
//! transport polls, possibly on another task), the transport's response future, the response
//! body, and the deadline.
//!
//! It is also where an observed call's traffic is counted and its end is known: the outcome
//! reaching the application (`Finished`), or the exchange dropped before that.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use connect_proto_core::codec::EncodedMessage;
use connect_proto_core::{ClientCall, ClientEvent, ClientOutput, Code, Status, UsageError};
use http_body::{Body, Frame, SizeHint};

use crate::BoxError;
use crate::TransportError;

/// The HTTP/2 error code a cancelled call's request body reports (RFC 9113 section 7).
const CANCEL: u32 = 0x8;
use crate::client::Transport;
use crate::intercept::{ActiveInterceptors, CallInfo, CannedResponse, Interceptors, ShortCircuit};
use crate::message::RequestContext;
use crate::observe::Side;
use crate::observe::recorder::Recorder;
use crate::rt::{SharedTimer, Sleep};

/// Default most request bytes queued ahead of the transport before `send` waits.
pub const DEFAULT_MAX_QUEUED_BYTES: usize = 256 * 1024;

pub(crate) struct Shared {
    state: Mutex<State>,
}

pub(crate) struct State {
    pub(crate) call: ClientCall,
    body_waker: Option<Waker>,
    sender_waker: Option<Waker>,
    /// The request body is complete or abandoned.
    body_done: bool,
    /// The call's observation, while anyone observes it.
    observe: Option<Box<Recorder>>,
    /// The interceptors the call went through, once its request hooks ran.
    intercept: Option<Box<(ActiveInterceptors, CallInfo)>>,
    /// Events decided here rather than by the core (an interceptor's answer or failure); once
    /// set, the core's events are not read any more. (Boxed: rare, and the state stays within
    /// the allocator's fast size classes.)
    #[allow(
        clippy::box_collection,
        reason = "the box keeps a rare field pointer-sized in a size-bound state"
    )]
    local: Option<Box<VecDeque<Event>>>,
    /// The call failed with a transport error that says the server never processed the
    /// request (connection refused, a stream refused or above a GOAWAY's last stream id).
    pub(crate) unprocessed: bool,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl State {
    fn wake_body(&mut self) {
        if let Some(waker) = self.body_waker.take() {
            waker.wake();
        }
    }

    /// Counts traffic, when the call is observed.
    fn count(&mut self, update: impl FnOnce(&mut crate::observe::Traffic)) {
        if let Some(observe) = self.observe.as_deref_mut() {
            update(&mut observe.traffic);
        }
    }

    /// Ends the call here with `events` instead of the core's (the core call is cancelled, so
    /// nothing more is sent).
    fn end_locally(&mut self, events: impl IntoIterator<Item = Event>) {
        if !self.call.is_finished() {
            self.call.cancel();
        }
        self.local = Some(Box::new(events.into_iter().collect()));
        self.wake_body();
    }

    /// Runs the request-message interceptors on a message about to be sent.
    fn intercept_request_message(&mut self, message: &[u8]) -> Result<(), Status> {
        match self.intercept.as_deref() {
            Some((active, call)) => active.on_request_message(call, message),
            None => Ok(()),
        }
    }

    /// Notes the outcome the application sees and ends the observation.
    fn end_observation(&mut self, outcome: Result<(), Code>) {
        if let Some(mut observe) = self.observe.take() {
            observe.note(outcome);
            observe.end(self.call.response_compression());
        }
    }
}

/// The HTTP request body of a client call.
pub struct RequestBody {
    kind: BodyKind,
}

enum BodyKind {
    Full(Option<Bytes>),
    Streaming(Arc<Shared>),
}

impl RequestBody {
    /// A complete body.
    pub fn full(bytes: Bytes) -> Self {
        RequestBody {
            kind: BodyKind::Full((!bytes.is_empty()).then_some(bytes)),
        }
    }

    /// An empty body.
    pub fn empty() -> Self {
        RequestBody {
            kind: BodyKind::Full(None),
        }
    }
}

impl std::fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            BodyKind::Full(_) => "full",
            BodyKind::Streaming(_) => "streaming",
        };
        f.debug_struct("RequestBody").field("kind", &kind).finish()
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().kind {
            BodyKind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            BodyKind::Streaming(shared) => {
                let mut state = shared.lock();
                if state.body_done {
                    return Poll::Ready(None);
                }
                match state.call.poll_output() {
                    Some(ClientOutput::Data(data)) => {
                        let len = data.len() as u64;
                        state.count(|traffic| traffic.request_bytes += len);
                        if let Some(waker) = state.sender_waker.take() {
                            waker.wake();
                        }
                        Poll::Ready(Some(Ok(Frame::data(data))))
                    }
                    Some(ClientOutput::End) => {
                        state.body_done = true;
                        Poll::Ready(None)
                    }
                    Some(ClientOutput::Cancel) => {
                        // A reset with CANCEL, as an HTTP/2 transport would send: the server
                        // sees a client that went away, not a broken body.
                        state.body_done = true;
                        Poll::Ready(Some(Err(Box::new(TransportError::reset(
                            CANCEL,
                            "the call was abandoned",
                        )))))
                    }
                    // The head was taken when the call started; a second one cannot occur, nor
                    // can an output this version does not know.
                    Some(_) => Poll::Ready(Some(Err("unexpected request output".into()))),
                    None if state.call.is_finished() => {
                        // The outcome is known (the server answered early): stop sending.
                        state.body_done = true;
                        Poll::Ready(None)
                    }
                    None => {
                        state.body_waker = Some(cx.waker().clone());
                        Poll::Pending
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.kind, BodyKind::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            BodyKind::Full(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            BodyKind::Full(None) => SizeHint::with_exact(0),
            BodyKind::Streaming(_) => SizeHint::default(),
        }
    }
}

type ResponseBody = crate::body::BoxBody;

enum Response<F> {
    Waiting(Pin<Box<F>>),
    Body(ResponseBody),
    Done,
}

/// A call in flight.
pub(crate) struct Exchange<T: Transport> {
    pub(crate) shared: Arc<Shared>,
    response: Response<T::Future>,
    timer: SharedTimer,
    sleep: Option<Sleep>,
    max_queued: usize,
}

impl<T: Transport> Exchange<T> {
    /// Starts the exchange: takes the request head the call queued (plus, for unary requests,
    /// the whole body), waits for the transport to be ready and hands it the request.
    /// The state a started call will share with its request body and readers. Made before
    /// any future is: a call's futures then hold a pointer to it, not the call itself (which is
    /// large, and would be copied with every move of every future holding it).
    pub(crate) fn share(call: ClientCall, observe: Option<Box<Recorder>>) -> Arc<Shared> {
        Arc::new(Shared {
            state: Mutex::new(State {
                call,
                body_waker: None,
                sender_waker: None,
                body_done: false,
                observe,
                intercept: None,
                local: None,
                unprocessed: false,
            }),
        })
    }

    /// Hands a call's request (its state made by [`share`](Self::share)) to the transport.
    pub(crate) async fn start(
        mut transport: T,
        shared: Arc<Shared>,
        timer: SharedTimer,
        max_queued: usize,
        interceptors: Interceptors,
    ) -> Result<Self, Status> {
        let (head, body, deadline) = {
            let mut state = shared.lock();
            let head = match state.call.poll_output() {
                Some(ClientOutput::Head(head)) => head,
                // The call ended before anything was sent (its deadline had already passed):
                // no request is made, the outcome is read from the call.
                _ if state.call.is_finished() => {
                    drop(state);
                    return Ok(Exchange {
                        shared,
                        response: Response::Done,
                        timer,
                        sleep: None,
                        max_queued,
                    });
                }
                _ => {
                    let status = Status::new(Code::Internal, "the call produced no request head");
                    state.end_observation(Err(status.code()));
                    return Err(status);
                }
            };
            let body = if state.call.is_send_closed() {
                // Unary request: the body is already complete, one chunk (its one message);
                // should the call ever yield more, they are joined.
                let mut body: Option<Bytes> = None;
                while let Some(output) = state.call.poll_output() {
                    if let ClientOutput::Data(data) = output {
                        body = Some(match body.take() {
                            None => data,
                            Some(before) => Bytes::from([before, data].concat()),
                        });
                    }
                }
                state.body_done = true;
                let len = body.as_ref().map_or(0, |body| body.len() as u64);
                state.count(|traffic| traffic.request_bytes += len);
                body.map_or_else(RequestBody::empty, RequestBody::full)
            } else {
                RequestBody {
                    kind: BodyKind::Streaming(shared.clone()),
                }
            };
            (head, body, state.call.deadline())
        };
        let sleep = deadline.map(|d| timer.sleep_until(d));
        let mut exchange = Exchange {
            shared,
            response: Response::Done,
            timer,
            sleep,
            max_queued,
        };
        let mut head = head;
        if !interceptors.is_empty() && !exchange.intercept_request(&interceptors, &mut head).await {
            return Ok(exchange);
        }
        // Wait for the transport, under the deadline.
        let ready = std::future::poll_fn(|cx| {
            if exchange.poll_deadline(cx) {
                return Poll::Ready(Err(None));
            }
            transport.poll_ready(cx).map_err(|e| Some(e.into()))
        })
        .await;
        match ready {
            Ok(()) => {
                let request = http::Request::from_parts(head, body);
                exchange.response = Response::Waiting(Box::pin(transport.call(request)));
            }
            Err(Some(error)) => exchange.transport_failed(&error),
            Err(None) => {}
        }
        Ok(exchange)
    }

    /// Runs the interceptors' request hooks on the request head, under the deadline. Whether
    /// the request should be sent: not when an interceptor ended the call, nor when the
    /// deadline passed meanwhile.
    async fn intercept_request(
        &mut self,
        interceptors: &Interceptors,
        head: &mut http::request::Parts,
    ) -> bool {
        let (info, deadline) = {
            let state = self.shared.lock();
            (call_info(&state.call), state.call.deadline())
        };
        let mut ctx = RequestContext {
            side: Side::Client,
            connection: None,
            method: info.method.clone(),
            protocol: info.protocol,
            codec: info.codec,
            headers: std::mem::take(&mut head.headers),
            deadline,
            extensions: std::mem::take(&mut head.extensions),
            http_method: head.method.clone(),
            uri: head.uri.clone(),
            version: head.version,
        };
        let result = {
            let mut hooks = std::pin::pin!(interceptors.on_request(&mut ctx));
            std::future::poll_fn(|cx| {
                if self.poll_deadline(cx) {
                    return Poll::Ready(None);
                }
                hooks.as_mut().poll(cx).map(Some)
            })
            .await
        };
        head.headers = ctx.headers;
        head.extensions = ctx.extensions;
        let Some((entered, outcome)) = result else {
            return false;
        };
        let mut state = self.shared.lock();
        state.intercept = Some(Box::new((interceptors.entered(entered), info)));
        let events = match outcome {
            Ok(()) => return true,
            Err(ShortCircuit::Fail(status)) => vec![Event::Finished(Err(status))],
            Err(ShortCircuit::Respond(response)) => canned_events(response),
        };
        state.end_locally(events);
        drop(state);
        self.sleep = None;
        false
    }

    /// Whether the deadline passed (and, if so, tells the call).
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(sleep) = self.sleep.as_mut() else {
            return false;
        };
        if sleep.as_mut().poll(cx).is_pending() {
            return false;
        }
        self.sleep = None;
        let mut state = self.shared.lock();
        let now = state
            .call
            .deadline()
            .map_or_else(|| self.timer.now(), |d| self.timer.now().max(d));
        state.call.handle_timeout(now);
        state.wake_body();
        self.response = Response::Done;
        true
    }

    fn transport_failed(&mut self, error: &BoxError) {
        let now = self.timer.now();
        let mut state = self.shared.lock();
        let found = TransportError::find(error.as_ref());
        state.unprocessed = found.is_some_and(TransportError::is_unprocessed);
        match found {
            Some(TransportError {
                reset_code: Some(code),
                ..
            }) => state.call.handle_reset(now, Some(*code)),
            _ => state.call.handle_transport_error(&error.to_string()),
        }
        state.wake_body();
        self.response = Response::Done;
    }

    /// Polls the transport's response future, if it is still pending: its head goes to the
    /// call, its body is kept for reading. Ready once there is no response future any more.
    fn poll_response_head(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Response::Waiting(future) = &mut self.response else {
            return Poll::Ready(());
        };
        match future.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(error)) => {
                let error: BoxError = error.into();
                self.transport_failed(&error);
                Poll::Ready(())
            }
            Poll::Ready(Ok(response)) => {
                let (head, body) = response.into_parts();
                self.shared.lock().call.handle_response_head(head);
                self.response = Response::Body(crate::body::erase(body));
                Poll::Ready(())
            }
        }
    }

    /// The next event of the call, driving the transport, the response body and the deadline.
    /// With a message, those queued right behind it go to `ahead` under the same lock (while
    /// it has room), counted as delivered (whoever drops them unread gives them back to
    /// [`uncount_messages`](Self::uncount_messages)), when the call has no interceptors: a
    /// body chunk's messages are taken a batch per lock, not one.
    pub(crate) fn poll_event(
        &mut self,
        cx: &mut Context<'_>,
        ahead: &mut MessagesAhead,
    ) -> Poll<Event> {
        loop {
            {
                let mut state = self.shared.lock();
                if let Some(event) = next_event(&mut state) {
                    if matches!(event, Event::Message(_)) {
                        take_ahead(&mut state, ahead);
                    }
                    return Poll::Ready(event);
                }
            }
            if self.poll_deadline(cx) {
                continue;
            }
            match &mut self.response {
                Response::Waiting(_) => {
                    if self.poll_response_head(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
                Response::Body(body) => match body.as_mut().poll_frame(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(frame) => {
                        let mut state = self.shared.lock();
                        match frame {
                            Some(Ok(frame)) => match frame.into_data() {
                                Ok(data) => {
                                    let len = data.len() as u64;
                                    state.count(|traffic| traffic.response_bytes += len);
                                    state.call.handle_data(data);
                                }
                                Err(frame) => {
                                    if let Ok(trailers) = frame.into_trailers() {
                                        state.call.handle_trailers(trailers);
                                    }
                                }
                            },
                            None => {
                                state.call.handle_end();
                                drop(state);
                                self.response = Response::Done;
                            }
                            Some(Err(error)) => {
                                drop(state);
                                self.transport_failed(&error);
                            }
                        }
                    }
                },
                Response::Done => {
                    let mut state = self.shared.lock();
                    if let Some(event) = next_event(&mut state) {
                        return Poll::Ready(event);
                    }
                    // No response is coming and the call has no outcome yet: this cannot
                    // happen (every path above ends the call); fail rather than hang.
                    state
                        .call
                        .handle_transport_error("the response ended unexpectedly");
                    if let Some(event) = next_event(&mut state) {
                        return Poll::Ready(event);
                    }
                    let status = Status::new(Code::Internal, "the call has no outcome");
                    state.end_observation(Err(status.code()));
                    return Poll::Ready(Event::Finished(Err(status)));
                }
            }
            let mut state = self.shared.lock();
            state.wake_body();
        }
    }

    /// Waits until another request message may be queued, driving the exchange meanwhile (so a
    /// transport that only sends when its response future is polled keeps sending).
    pub(crate) fn poll_send_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        loop {
            {
                let mut state = self.shared.lock();
                if state.call.is_finished() {
                    return Poll::Ready(Err(UsageError::AlreadyFinished.into()));
                }
                if state.call.buffered_output_bytes() < self.max_queued {
                    return Poll::Ready(Ok(()));
                }
                state.sender_waker = Some(cx.waker().clone());
            }
            if self.poll_deadline(cx) {
                continue;
            }
            // Drive the transport until the response head arrives (events stay queued); after
            // that the body reader's progress wakes the sender.
            if !matches!(self.response, Response::Waiting(_))
                || self.poll_response_head(cx).is_pending()
            {
                return Poll::Pending;
            }
        }
    }

    /// The call's codec.
    pub(crate) fn codec(&self) -> connect_proto_core::Codec {
        self.shared.lock().call.codec()
    }

    /// Queues one request message.
    pub(crate) fn send(&mut self, message: EncodedMessage) -> Result<(), Status> {
        let now = self.timer.now();
        let mut state = self.shared.lock();
        if let Err(status) = state.intercept_request_message(message.as_bytes()) {
            state.end_locally([Event::Finished(Err(status.clone()))]);
            return Err(status);
        }
        state.call.send_message(now, message)?;
        state.count(|traffic| traffic.request_messages += 1);
        state.wake_body();
        Ok(())
    }

    /// Ends the request stream.
    pub(crate) fn close_send(&mut self) -> Result<(), Status> {
        let mut state = self.shared.lock();
        state.call.close_send().map_err(Status::from)?;
        state.wake_body();
        Ok(())
    }

    /// Cancels the call because the application cannot go on with it (a response message it
    /// cannot decode): the call's outcome is `code`, as the application sees it.
    pub(crate) fn abandon(&mut self, code: Code) {
        if let Some(observe) = self.shared.lock().observe.as_deref_mut() {
            observe.note(Err(code));
        }
        self.cancel();
    }

    /// Takes back `count` response messages counted as delivered that the application never
    /// got (taken ahead, then dropped): an observer counts only those delivered.
    pub(crate) fn uncount_messages(&mut self, count: usize) {
        let count = count as u64;
        self.shared.lock().count(|traffic| {
            traffic.response_messages = traffic.response_messages.saturating_sub(count)
        });
    }

    /// Cancels the call.
    pub(crate) fn cancel(&mut self) {
        let mut state = self.shared.lock();
        state.call.cancel();
        state.wake_body();
        drop(state);
        self.response = Response::Done;
    }
}

/// The call's next event. Compressed messages only come with pass-through, which this crate
/// never asks for; they are decompressed all the same should that change (a payload that
/// does not decompress cancels the call with the core's status for it).
fn next_event(state: &mut State) -> Option<Event> {
    let event = match state.local.as_mut() {
        Some(local) => local.pop_front()?,
        None => core_event(&mut state.call)?,
    };
    let (event, failed) = match state.intercept.as_deref() {
        Some((active, call)) => intercept_response(active, call, event),
        None => (event, false),
    };
    if failed {
        state.end_locally([]);
    }
    if state.observe.is_some() {
        match &event {
            Event::Message(_) => state.count(|traffic| traffic.response_messages += 1),
            Event::Finished(outcome) => {
                let outcome = outcome.as_ref().map(drop).map_err(Status::code);
                state.end_observation(outcome);
            }
            Event::Headers(_) => {}
        }
    }
    Some(event)
}

/// Takes the plain messages queued next into `ahead` when the call has no interceptors (whose
/// hooks see each message as it is taken) and no events decided here.
fn take_ahead(state: &mut State, ahead: &mut MessagesAhead) {
    if state.local.is_none() && state.intercept.is_none() {
        let taken = ahead.fill(|| state.call.poll_message()) as u64;
        state.count(|traffic| traffic.response_messages += taken);
    }
}

/// Response messages taken from the call ahead of the application, in order: a body chunk's
/// messages are taken a batch per lock rather than one. Its room is allocated the first time
/// a second message is queued behind the one taken (never for a single response).
#[derive(Default)]
pub(crate) struct MessagesAhead {
    batch: Option<Box<Batch>>,
}

/// The most messages [`MessagesAhead`] holds.
const AHEAD: usize = 16;

struct Batch {
    messages: [Option<Bytes>; AHEAD],
    next: usize,
}

impl MessagesAhead {
    /// The next message taken ahead.
    pub(crate) fn pop(&mut self) -> Option<Bytes> {
        let batch = self.batch.as_deref_mut()?;
        let message = batch.messages.get_mut(batch.next)?.take()?;
        batch.next += 1;
        Some(message)
    }

    /// Drops the messages not yet delivered; how many there were.
    pub(crate) fn clear(&mut self) -> usize {
        let Some(batch) = self.batch.as_deref_mut() else {
            return 0;
        };
        let rest = &mut batch.messages[batch.next.min(AHEAD)..];
        let undelivered = rest.iter().filter(|slot| slot.is_some()).count();
        rest.fill(None);
        undelivered
    }

    /// Takes messages from `next` while there is room; how many. Nothing is taken while
    /// earlier messages wait to be delivered (they would be overwritten).
    fn fill(&mut self, mut next: impl FnMut() -> Option<Bytes>) -> usize {
        if let Some(batch) = self.batch.as_deref()
            && batch.messages.get(batch.next).is_some_and(Option::is_some)
        {
            return 0;
        }
        let Some(first) = next() else {
            return 0;
        };
        let batch = self.batch.get_or_insert_with(|| {
            Box::new(Batch {
                messages: [const { None }; AHEAD],
                next: 0,
            })
        });
        batch.next = 0;
        batch.messages[0] = Some(first);
        let mut taken = 1;
        for slot in &mut batch.messages[1..] {
            match next() {
                Some(message) => *slot = Some(message),
                None => break,
            }
            taken += 1;
        }
        taken
    }
}

/// The core's next event for the application.
fn core_event(call: &mut ClientCall) -> Option<Event> {
    Some(match call.poll_event()? {
        ClientEvent::Headers(headers) => Event::Headers(headers),
        ClientEvent::Message(message) => Event::Message(message),
        ClientEvent::CompressedMessage(payload) => match call.decompress_message(payload) {
            Ok(message) => Event::Message(message),
            Err(error) => {
                call.cancel();
                Event::Finished(Err(error.to_status()))
            }
        },
        ClientEvent::Finished(outcome) => Event::Finished(outcome),
        // An event a newer core might add: fail the call rather than drop it silently.
        _ => {
            call.cancel();
            Event::Finished(Err(Status::internal("the call produced an unknown event")))
        }
    })
}

/// Passes a response event through the interceptors; whether a hook failed the call (the
/// event is then that failure).
fn intercept_response(active: &ActiveInterceptors, call: &CallInfo, event: Event) -> (Event, bool) {
    let (event, failed) = match event {
        Event::Headers(mut headers) => match active.on_response_headers(call, &mut headers) {
            Ok(()) => (Event::Headers(headers), false),
            Err(status) => (Event::Finished(Err(status)), true),
        },
        Event::Message(message) => match active.on_response_message(call, &message) {
            Ok(()) => (Event::Message(message), false),
            Err(status) => (Event::Finished(Err(status)), true),
        },
        finished => (finished, false),
    };
    match event {
        Event::Finished(mut outcome) => {
            active.on_end(call, &mut outcome);
            (Event::Finished(outcome), failed)
        }
        other => (other, failed),
    }
}

/// The events of an interceptor's answer.
fn canned_events(response: Box<CannedResponse>) -> Vec<Event> {
    let CannedResponse {
        headers,
        messages,
        trailers,
        ..
    } = *response;
    let mut events = Vec::with_capacity(messages.len() + 2);
    events.push(Event::Headers(headers));
    events.extend(messages.into_iter().map(Event::Message));
    events.push(Event::Finished(Ok(trailers)));
    events
}

/// What interceptors are told about a call.
pub(crate) fn call_info(call: &ClientCall) -> CallInfo {
    CallInfo {
        side: Side::Client,
        method: call.method().clone(),
        protocol: call.protocol(),
        codec: call.codec(),
    }
}

/// What a call object reads from its exchange: the core's events, messages decompressed.
#[derive(Debug)]
pub(crate) enum Event {
    /// The response headers (application metadata).
    Headers(http::HeaderMap),
    /// A response message.
    Message(Bytes),
    /// The outcome: trailers, or the failure.
    Finished(Result<http::HeaderMap, Status>),
}

impl<T: Transport> Drop for Exchange<T> {
    fn drop(&mut self) {
        // Dropping the call cancels it: the request body stops and the transport is released.
        let mut state = self.shared.lock();
        if !state.call.is_finished() {
            state.call.cancel();
        }
        state.wake_body();
        if state.observe.is_some() {
            // The outcome the application never read (nobody reads events after this), else
            // the cancellation.
            let mut outcome = Err(Code::Canceled);
            while let Some(event) = state.call.poll_event() {
                if let ClientEvent::Finished(finished) = event {
                    outcome = finished.map(drop).map_err(|status| status.code());
                }
            }
            state.end_observation(outcome);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Shared;
    use crate::ALLOCATOR_FAST_BLOCK;

    #[test]
    fn a_calls_state_fits_the_allocators_fast_blocks() {
        // An `Arc` adds its two counts.
        let shared = std::mem::size_of::<Shared>() + 2 * std::mem::size_of::<usize>();
        assert!(
            shared <= ALLOCATOR_FAST_BLOCK,
            "a call's shared state is {shared} bytes"
        );
    }
}
