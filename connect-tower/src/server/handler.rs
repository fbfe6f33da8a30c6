//! The four handler shapes and the types they use: [`Streaming`] (a stream of request
//! messages), [`ResponseSender`] (a stream of response messages with back-pressure), and the
//! adapter functions generated dispatchers call ([`unary`], [`client_streaming`],
//! [`server_streaming`], [`bidi_streaming`]).

use std::fmt;
use std::future::{Future, poll_fn};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::BytesMut;
use connect_proto_core::call::FramedRun;
use connect_proto_core::codec::CodecError;
use connect_proto_core::{Codec, MethodSpec, ProtocolError, Status, UsageError};
use futures_core::Stream;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::codec::{DecodeFn, EncodeMessage};
use crate::message::{Request, RequestContext, Response};
use crate::server::shared::{Received, Shared};
use crate::server::unary::{UnaryCall, UnaryReply};

/// A call routed to a handler: its context and the connection to the protocol state machine.
/// Generated dispatchers pass it to one of the adapter functions of this module.
pub struct IncomingCall {
    pub(crate) context: RequestContext,
    pub(crate) shared: Arc<Shared>,
    pub(crate) limit: usize,
}

impl IncomingCall {
    /// The method being called.
    pub fn method(&self) -> &MethodSpec {
        self.context.method()
    }

    /// The call's context.
    pub fn context(&self) -> &RequestContext {
        &self.context
    }
}

impl fmt::Debug for IncomingCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IncomingCall")
            .field("method", self.context.method())
            .finish_non_exhaustive()
    }
}

/// A stream of request messages (client- and bidi-streaming handlers).
pub struct Streaming<T> {
    shared: Arc<Shared>,
    decode: DecodeFn<T>,
    codec: Codec,
    limit: usize,
    done: bool,
}

impl<T> Streaming<T> {
    /// The next message: `Ok(None)` once the client finished sending, `Err` if the call failed
    /// (the client cancelled, the deadline passed, a message could not be decoded).
    pub async fn message(&mut self) -> Result<Option<T>, Status> {
        poll_fn(|cx| self.poll_message(cx)).await
    }

    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<T>, Status>> {
        if self.done {
            return Poll::Ready(Ok(None));
        }
        let received = {
            let mut state = self.shared.lock();
            match state.poll_receive(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(received) => received,
            }
        };
        Poll::Ready(match received {
            Received::Message(bytes) => match (self.decode)(self.codec, bytes, self.limit) {
                Ok(message) => Ok(Some(message)),
                Err(error) => {
                    let status = invalid_request(error);
                    self.done = true;
                    self.shared.lock().fail(status.clone());
                    Err(status)
                }
            },
            Received::End => {
                self.done = true;
                Ok(None)
            }
            Received::Failed(status) => {
                self.done = true;
                Err(status)
            }
        })
    }
}

impl<T> Stream for Streaming<T> {
    type Item = Result<T, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // `Streaming` holds no self-references; it is `Unpin`.
        let this = self.get_mut();
        this.poll_message(cx).map(Result::transpose)
    }
}

impl<T> Unpin for Streaming<T> {}

impl<T> fmt::Debug for Streaming<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Streaming")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

/// The sending half of a streaming response (server- and bidi-streaming handlers).
///
/// `send` waits while too much output is queued ahead of the network (back-pressure) and fails
/// once the call has ended (client gone, deadline passed): handlers should stop then.
pub struct ResponseSender<T> {
    shared: Arc<Shared>,
    codec: Codec,
    /// Scratch space the messages are encoded in (small messages share its allocations).
    buf: BytesMut,
    /// The room the next run of messages starts with: the last run's size (a stream of many
    /// messages reserves whole runs), at least [`RUN_START_BYTES`].
    run_room: usize,
    _message: PhantomData<fn(T)>,
}

impl<T: EncodeMessage> ResponseSender<T> {
    /// Adds a response header. Headers are written with the first message, by
    /// [`send_headers`](Self::send_headers), or — for server-streaming calls — as soon as the
    /// handler first waits (so clients see the call started before the first message); later
    /// additions are ignored.
    pub fn add_header(&self, name: HeaderName, value: HeaderValue) {
        self.shared.lock().add_headers([(name, value)]);
    }

    /// Adds every header of `headers` (see [`add_header`](Self::add_header)).
    pub fn add_headers(&self, headers: HeaderMap) {
        self.shared.lock().add_header_map(headers);
    }

    /// Adds a trailer, sent when the handler returns.
    pub fn add_trailer(&self, name: HeaderName, value: HeaderValue) {
        self.shared.lock().add_trailer(name, value);
    }

    /// Sends the response headers now, before any message.
    pub async fn send_headers(&mut self) -> Result<(), Status> {
        self.shared.lock().send_headers()
    }

    /// Sends one message, waiting for room in the output queue.
    pub async fn send(&mut self, message: T) -> Result<(), Status> {
        let mut next = Some(message);
        poll_fn(|cx| self.poll_send_from(cx, &mut next, &mut std::iter::empty())).await
    }

    /// Sends every message of `messages` in order, waiting for room in the output queue as
    /// needed: the form for a handler with many messages at hand (a tonic handler returns a
    /// stream of them). Messages that fit are sent in one pass, with no future per message.
    /// On the first message that cannot be sent (the call ended, it fails to encode) this
    /// returns its error; later messages are not taken from the iterator.
    ///
    /// ```
    /// # use connect_tower::server::ResponseSender;
    /// # use connect_tower::Status;
    /// # async fn countdown<T: connect_tower::codec::EncodeMessage>(
    /// #     mut responses: ResponseSender<T>,
    /// #     tick: impl Fn(u32) -> T,
    /// # ) -> Result<(), Status> {
    /// responses.send_all((1..=10).rev().map(tick)).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send_all<I>(&mut self, messages: I) -> Result<(), Status>
    where
        I: IntoIterator<Item = T>,
    {
        let mut rest = messages.into_iter();
        let mut next = rest.next();
        poll_fn(|cx| self.poll_send_from(cx, &mut next, &mut rest)).await
    }

    /// Sends `next`, then the messages of `rest`, while the output queue has room; `next`
    /// holds the message waiting for room when this returns `Pending`.
    ///
    /// Where the call takes framed messages (no interceptor sees each message, the response
    /// is neither compressed nor text), the messages `rest` has at hand are framed in a run
    /// in the sender's own buffer, without the call's lock, and the run is handed over as
    /// one body chunk under a single lock (the first run writes the response head): the
    /// lock is taken per run, not per message.
    fn poll_send_from(
        &mut self,
        cx: &mut Context<'_>,
        next: &mut Option<T>,
        rest: &mut impl Iterator<Item = T>,
    ) -> Poll<Result<(), Status>> {
        let codec = self.codec;
        while let Some(message) = next.take() {
            let room = {
                let mut state = self.shared.lock();
                match state.poll_send_ready(cx) {
                    Poll::Pending => {
                        *next = Some(message);
                        return Poll::Pending;
                    }
                    Poll::Ready(Err(status)) => return Poll::Ready(Err(status)),
                    Poll::Ready(Ok(())) => {}
                }
                match state.framed_room() {
                    Some(room) => Some((room, message)),
                    None => {
                        // One message: written straight into the response body where the
                        // call allows it, else encoded in the scratch buffer first (under
                        // the same lock either way).
                        let sent = if state.writes_in_place() {
                            state.send_message_with(|out| message.write_message(codec, out))
                        } else {
                            message
                                .encode_message_into(codec, &mut self.buf)
                                .map_err(crate::codec::encoding_failed)
                                .and_then(|encoded| state.send_message(encoded))
                        };
                        if let Err(status) = sent {
                            return Poll::Ready(Err(status));
                        }
                        None
                    }
                }
            };
            match room {
                // The caller's iterator runs without the call's lock held.
                None => *next = rest.next(),
                Some(((room, limit), first)) => {
                    let mut run = FramedRun::new(&mut self.buf, limit);
                    let framed =
                        frame_run(&mut run, self.codec, first, room, self.run_room, next, rest);
                    self.run_room = run.len().clamp(RUN_START_BYTES, RUN_BYTES);
                    let sent = if run.is_empty() {
                        Ok(())
                    } else {
                        self.shared.lock().send_framed(run.finish())
                    };
                    if let Err(status) = sent.and(framed) {
                        return Poll::Ready(Err(status));
                    }
                }
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// Frames `first` and the messages `rest` has after it into `run`, up to about `room` bytes
/// (at least one message, at most [`RUN_BYTES`]); the message that did not fit is left in
/// `next`, as is one over the send limit after others (it fails once they are sent, as the
/// first of the next run). A failure ends the run with its error (the messages framed
/// before it are in the run, and are sent). The run starts with `start` bytes of room (see
/// [`RUN_START_BYTES`]).
fn frame_run<T: EncodeMessage>(
    run: &mut FramedRun<'_>,
    codec: Codec,
    first: T,
    room: usize,
    start: usize,
    next: &mut Option<T>,
    rest: &mut impl Iterator<Item = T>,
) -> Result<(), Status> {
    let budget = room.clamp(1, RUN_BYTES);
    run.reserve(budget.min(start));
    let mut message = first;
    loop {
        match message.frame_into(codec, run) {
            Ok(()) => {}
            // After the run that precedes it goes out, this one fails (as `send` would).
            Err(UsageError::MessageTooLarge { .. }) if !run.is_empty() => {
                *next = Some(message);
                return Ok(());
            }
            Err(error) => return Err(error.into()),
        }
        if run.messages() == 1 {
            // The first message's size and the messages the iterator says follow: room for
            // the run at once, rather than growing it a doubling at a time.
            let expected = run
                .len()
                .saturating_mul(rest.size_hint().0.saturating_add(1));
            run.reserve(expected.min(budget).saturating_sub(run.len()));
        }
        match rest.next() {
            None => return Ok(()),
            Some(following) if run.len() >= budget => {
                *next = Some(following);
                return Ok(());
            }
            Some(following) => message = following,
        }
    }
}

/// The most bytes of messages [`ResponseSender::send_all`] frames in one run before handing
/// them to the call (a whole HTTP/2 frame by default: runs leave as frames of their own).
const RUN_BYTES: usize = 16 * 1024;

/// The room a sender's first run starts with. Runs after it start with the size of the one
/// before: a whole [`RUN_BYTES`] reserved up front made every streaming call allocate 16 KB
/// (above the allocator's fast sizes) for a message or two, and a long stream's runs
/// growing from little each time copied them over and over.
const RUN_START_BYTES: usize = 1024;

impl<T> fmt::Debug for ResponseSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseSender").finish_non_exhaustive()
    }
}

/// Receives the one request message of a unary call that does not take the fast path: the
/// call as the fast path's handlers get it, and its shared state. `None` means the call
/// already ended (its response is queued).
async fn receive_call(call: IncomingCall) -> Option<(Arc<Shared>, UnaryCall)> {
    let mut slot = None;
    let message = poll_fn(|cx| call.shared.lock().poll_receive_one(&mut slot, cx)).await?;
    Some(call.with_message(message))
}

impl IncomingCall {
    /// The call with its one request message: its shared state, and the call as the fast
    /// path's handlers get it.
    fn with_message(self, message: bytes::Bytes) -> (Arc<Shared>, UnaryCall) {
        let IncomingCall {
            context,
            shared,
            limit,
        } = self;
        let unary = UnaryCall {
            context,
            message,
            limit,
        };
        (shared, unary)
    }
}

/// The status for a request message that does not decode (the core's mapping).
pub(crate) fn invalid_request(error: CodecError) -> Status {
    ProtocolError::in_request(error.into()).into()
}

impl<T> Streaming<T> {
    fn new(shared: Arc<Shared>, decode: DecodeFn<T>, codec: Codec, limit: usize) -> Self {
        Streaming {
            shared,
            decode,
            codec,
            limit,
            done: false,
        }
    }
}

impl<T> ResponseSender<T> {
    fn new(shared: Arc<Shared>, codec: Codec) -> Self {
        ResponseSender {
            shared,
            codec,
            buf: BytesMut::new(),
            run_room: RUN_START_BYTES,
            _message: PhantomData,
        }
    }
}

/// Runs a unary handler: one request message in, one response out. (Dispatchers that
/// [`dispatches_unary`](super::Dispatch::dispatches_unary) serve calls without interceptors
/// through [`unary_call`](super::unary_call) instead, which this runs once the message is in.)
pub async fn unary<Req, Resp, F, Fut>(call: IncomingCall, decode: DecodeFn<Req>, handler: F)
where
    F: FnOnce(Request<Req>) -> Fut,
    Fut: Future<Output = Result<Response<Resp>, Status>>,
    Resp: EncodeMessage,
{
    let Some((shared, unary)) = receive_call(call).await else {
        return;
    };
    let outcome = super::unary::unary_call(unary, decode, handler).await;
    shared.lock().reply(outcome);
}

/// Runs a client-streaming handler: a stream of request messages in, one response out.
pub fn client_streaming<Req, Resp, F, Fut>(
    call: IncomingCall,
    decode: DecodeFn<Req>,
    handler: F,
) -> impl Future<Output = ()> + use<Req, Resp, F, Fut>
where
    F: FnOnce(Request<Streaming<Req>>) -> Fut,
    Fut: Future<Output = Result<Response<Resp>, Status>>,
    Resp: EncodeMessage,
{
    Adapter::Starting {
        start: ClientStreamStart {
            pending: Some((call, handler)),
            decode,
        },
    }
}

/// Runs a server-streaming handler: one request message in, a stream of responses out.
///
/// Once the handler first waits, it has done its setup, and the response head is written,
/// so the client knows the call started (a subscription, say, is in place) before the first
/// message. Headers added after that are not sent; trailers still are.
pub fn server_streaming<Req, Resp, F, Fut>(
    call: IncomingCall,
    decode: DecodeFn<Req>,
    handler: F,
) -> impl Future<Output = ()> + use<Req, Resp, F, Fut>
where
    F: FnOnce(Request<Req>, ResponseSender<Resp>) -> Fut,
    Fut: Future<Output = Result<(), Status>>,
    Resp: EncodeMessage,
{
    Adapter::Starting {
        start: ServerStreamStart {
            pending: Some((call, handler)),
            slot: None,
            decode,
            responses: PhantomData,
        },
    }
}

/// Runs a bidi-streaming handler: streams in both directions.
pub fn bidi_streaming<Req, Resp, F, Fut>(
    call: IncomingCall,
    decode: DecodeFn<Req>,
    handler: F,
) -> impl Future<Output = ()> + use<Req, Resp, F, Fut>
where
    F: FnOnce(Request<Streaming<Req>>, ResponseSender<Resp>) -> Fut,
    Fut: Future<Output = Result<(), Status>>,
    Resp: EncodeMessage,
{
    Adapter::Starting {
        start: BidiStreamStart {
            pending: Some((call, handler)),
            decode,
            responses: PhantomData,
        },
    }
}

// The streaming adapters' futures are written by hand: they are boxed once per call, and an
// `async fn` keeps its arguments (the call, its context) and every local moved into the
// handler beside the handler's own future, more than half a kilobyte of copies. The handler
// is started on the adapter's first poll, as an `async fn` would: inside the driver's span
// and deadline scope, and never for a call that is not polled.

/// How an adapter starts its handler: at once, or once the request message is in.
trait Start {
    /// The handler's future.
    type Handler: Future;

    /// The handler, started: `Ready(None)` when the call ended first (its response is
    /// queued).
    fn poll_start(&mut self, cx: &mut Context<'_>) -> Poll<Option<Handling<Self::Handler>>>;
}

pin_project_lite::pin_project! {
    /// A streaming adapter's future: its handler started, run, and the call ended with its
    /// outcome.
    #[project = AdapterProj]
    enum Adapter<S: Start> {
        Starting {
            start: S,
        },
        Running {
            #[pin]
            handling: Handling<S::Handler>,
        },
        Done,
    }
}

impl<S: Start> Future for Adapter<S> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let started = match self.as_mut().project() {
                AdapterProj::Starting { start } => match start.poll_start(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(started) => started,
                },
                AdapterProj::Running { handling } => match handling.poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(()) => None,
                },
                AdapterProj::Done => return Poll::Ready(()),
            };
            match started {
                Some(handling) => self.set(Adapter::Running { handling }),
                None => {
                    self.set(Adapter::Done);
                    return Poll::Ready(());
                }
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// A streaming handler's future, and what ends the call with its outcome.
    struct Handling<Fut: Future> {
        #[pin]
        handler: Fut,
        shared: Arc<Shared>,
        codec: Codec,
        // Writes the response head when the handler first waits (server streams).
        head_on_first_wait: bool,
        end: fn(&Shared, Fut::Output, Codec),
    }
}

impl<Fut: Future> Future for Handling<Fut> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        match this.handler.poll(cx) {
            Poll::Pending => {
                if std::mem::take(this.head_on_first_wait) {
                    let _ = this.shared.lock().send_headers();
                }
                Poll::Pending
            }
            Poll::Ready(outcome) => {
                (this.end)(this.shared, outcome, *this.codec);
                Poll::Ready(())
            }
        }
    }
}

/// Ends a streaming-response call with its handler's outcome.
fn finish(shared: &Shared, outcome: Result<(), Status>, _codec: Codec) {
    shared.lock().finish(outcome.map(|()| HeaderMap::new()));
}

/// Answers a client-streaming call with its handler's response (encoded before the call's
/// state is locked).
fn reply<Resp: EncodeMessage>(
    shared: &Shared,
    outcome: Result<Response<Resp>, Status>,
    codec: Codec,
) {
    let reply = outcome.and_then(|response| UnaryReply::encode(codec, response));
    shared.lock().reply(reply);
}

/// The request of a call whose request messages stream, with the call's state and codec.
fn streamed_request<Req>(
    call: IncomingCall,
    decode: DecodeFn<Req>,
) -> (Request<Streaming<Req>>, Arc<Shared>, Codec) {
    let IncomingCall {
        context,
        shared,
        limit,
    } = call;
    let codec = context.codec();
    let stream = Streaming::new(shared.clone(), decode, codec, limit);
    (Request::from_parts(context, stream), shared, codec)
}

/// Starts a client-streaming handler.
struct ClientStreamStart<Req, F> {
    pending: Option<(IncomingCall, F)>,
    decode: DecodeFn<Req>,
}

impl<Req, Resp, F, Fut> Start for ClientStreamStart<Req, F>
where
    F: FnOnce(Request<Streaming<Req>>) -> Fut,
    Fut: Future<Output = Result<Response<Resp>, Status>>,
    Resp: EncodeMessage,
{
    type Handler = Fut;

    fn poll_start(&mut self, _cx: &mut Context<'_>) -> Poll<Option<Handling<Fut>>> {
        Poll::Ready(self.pending.take().map(|(call, handler)| {
            let (request, shared, codec) = streamed_request(call, self.decode);
            Handling {
                handler: handler(request),
                shared,
                codec,
                head_on_first_wait: false,
                end: reply::<Resp>,
            }
        }))
    }
}

/// Starts a bidi-streaming handler.
struct BidiStreamStart<Req, Resp, F> {
    pending: Option<(IncomingCall, F)>,
    decode: DecodeFn<Req>,
    responses: PhantomData<fn(Resp)>,
}

impl<Req, Resp, F, Fut> Start for BidiStreamStart<Req, Resp, F>
where
    F: FnOnce(Request<Streaming<Req>>, ResponseSender<Resp>) -> Fut,
    Fut: Future<Output = Result<(), Status>>,
    Resp: EncodeMessage,
{
    type Handler = Fut;

    fn poll_start(&mut self, _cx: &mut Context<'_>) -> Poll<Option<Handling<Fut>>> {
        Poll::Ready(self.pending.take().map(|(call, handler)| {
            let (request, shared, codec) = streamed_request(call, self.decode);
            let sender = ResponseSender::new(shared.clone(), codec);
            Handling {
                handler: handler(request, sender),
                shared,
                codec,
                head_on_first_wait: false,
                end: finish,
            }
        }))
    }
}

/// Starts a server-streaming handler once its request message is in.
struct ServerStreamStart<Req, Resp, F> {
    pending: Option<(IncomingCall, F)>,
    /// The request message, between polls, until the request's end is read.
    slot: Option<bytes::Bytes>,
    decode: DecodeFn<Req>,
    responses: PhantomData<fn(Resp)>,
}

impl<Req, Resp, F, Fut> Start for ServerStreamStart<Req, Resp, F>
where
    F: FnOnce(Request<Req>, ResponseSender<Resp>) -> Fut,
    Fut: Future<Output = Result<(), Status>>,
    Resp: EncodeMessage,
{
    type Handler = Fut;

    fn poll_start(&mut self, cx: &mut Context<'_>) -> Poll<Option<Handling<Fut>>> {
        let received = match &self.pending {
            Some((call, _)) => match call.shared.lock().poll_receive_one(&mut self.slot, cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(received) => received,
            },
            None => None,
        };
        // No message: the call already ended (its response is queued).
        let (Some(message), Some((call, handler))) = (received, self.pending.take()) else {
            return Poll::Ready(None);
        };
        let (shared, unary) = call.with_message(message);
        let request = match unary.into_request(self.decode) {
            Ok(request) => request,
            Err(status) => {
                shared.lock().finish(Err(status));
                return Poll::Ready(None);
            }
        };
        let codec = request.context().codec();
        let sender = ResponseSender::new(shared.clone(), codec);
        Poll::Ready(Some(Handling {
            handler: handler(request, sender),
            shared,
            codec,
            head_on_first_wait: true,
            end: finish,
        }))
    }
}

/// Answers `unimplemented` (for methods a service declares but does not implement).
pub async fn unimplemented(call: IncomingCall) {
    let status = not_implemented(call.method());
    call.shared.lock().finish(Err(status));
}

/// The status for a method a service declares but does not implement.
pub(crate) fn not_implemented(method: &MethodSpec) -> Status {
    Status::unimplemented(format!("{} is not implemented", method.path))
}
