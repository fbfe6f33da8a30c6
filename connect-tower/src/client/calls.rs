//! The call objects applications hold: [`ResponseStream`] (server streaming, and the basis of
//! unary), [`ClientStreamingCall`] and [`BidiStreamingCall`].

use std::fmt;
use std::future::poll_fn;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use connect_proto_core::codec::EncodedMessage;
use connect_proto_core::{Codec, ProtocolError, Rule, Status};
use futures_core::Stream;
use http::HeaderMap;

use crate::client::Transport;
use crate::client::exchange::{Event, Exchange, MessagesAhead};
use crate::codec::{DecodeMessage, EncodeMessage};
use crate::message::Response;

/// The receiving half of a call: headers, messages, then the outcome.
pub(crate) struct Receiver<T: Transport> {
    exchange: Exchange<T>,
    codec: Codec,
    headers: Option<HeaderMap>,
    trailers: Option<HeaderMap>,
    /// Set once `Finished` arrived: `Some(Err)` on failure.
    outcome: Option<Result<(), Status>>,
    /// A message read ahead (by [`poll_first_response`](Self::poll_first_response)).
    first: Option<Bytes>,
    /// Messages taken from the call ahead of the application.
    ahead: MessagesAhead,
}

impl<T: Transport> Receiver<T> {
    pub(crate) fn new(exchange: Exchange<T>, codec: Codec) -> Self {
        Receiver {
            exchange,
            codec,
            headers: None,
            trailers: None,
            outcome: None,
            first: None,
            ahead: MessagesAhead::default(),
        }
    }

    /// The next message; `Ok(None)` after a successful end.
    fn poll_message<M: DecodeMessage>(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<M>, Status>> {
        if let Some(bytes) = self.first.take() {
            return Poll::Ready(self.decode(bytes));
        }
        // Once the call failed (a message did not decode), no message taken ahead is read.
        if self.outcome.is_none()
            && let Some(bytes) = self.ahead.pop()
        {
            return Poll::Ready(self.decode(bytes));
        }
        loop {
            if let Some(outcome) = &self.outcome {
                return Poll::Ready(outcome.clone().map(|()| None));
            }
            let event = match self.exchange.poll_event(cx, &mut self.ahead) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(event) => event,
            };
            match event {
                Event::Headers(headers) => self.headers = Some(headers),
                Event::Message(bytes) => return Poll::Ready(self.decode(bytes)),
                Event::Finished(outcome) => self.finished(outcome),
            }
        }
    }

    /// Keeps the call's outcome: trailers, or the failure (whose metadata are the trailers).
    fn finished(&mut self, outcome: Result<HeaderMap, Status>) {
        match outcome {
            Ok(trailers) => {
                self.trailers = Some(trailers);
                self.outcome = Some(Ok(()));
            }
            Err(status) => {
                self.trailers = Some(status.metadata().clone());
                self.outcome = Some(Err(status));
            }
        }
    }

    /// Drops the messages taken ahead and not read (once the call failed, or is dropped),
    /// the one read ahead for the reader included: they are not counted as delivered.
    fn drop_ahead(&mut self) {
        let undelivered = self.ahead.clear() + usize::from(self.first.take().is_some());
        if undelivered > 0 {
            self.exchange.uncount_messages(undelivered);
        }
    }

    /// Decodes a received message; a message that does not decode ends the call.
    fn decode<M: DecodeMessage>(&mut self, bytes: Bytes) -> Result<Option<M>, Status> {
        // The core already enforced the receive limit on the wire bytes.
        match M::decode_message(self.codec, bytes, usize::MAX) {
            Ok(message) => Ok(Some(message)),
            Err(e) => {
                let status = Status::from(ProtocolError::in_response(e.into()));
                self.drop_ahead();
                self.exchange.abandon(status.code());
                self.outcome = Some(Err(status.clone()));
                Err(status)
            }
        }
    }

    /// Waits for the first response message (kept for the reader) or the outcome.
    fn poll_first_response(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.first.is_none() {
            self.first = self.ahead.pop();
        }
        while self.first.is_none() && self.outcome.is_none() {
            match self.exchange.poll_event(cx, &mut self.ahead) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Event::Headers(headers)) => self.headers = Some(headers),
                Poll::Ready(Event::Message(bytes)) => self.first = Some(bytes),
                Poll::Ready(Event::Finished(outcome)) => self.finished(outcome),
            }
        }
        Poll::Ready(())
    }

    /// Waits for the response headers (or the outcome, if the call ends first).
    fn poll_headers(&mut self, cx: &mut Context<'_>) -> Poll<Result<&HeaderMap, Status>> {
        loop {
            if self.headers.is_some() || self.outcome.is_some() {
                break;
            }
            match self.exchange.poll_event(cx, &mut self.ahead) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Event::Headers(headers)) => self.headers = Some(headers),
                Poll::Ready(Event::Finished(outcome)) => self.finished(outcome),
                // Messages never precede headers.
                Poll::Ready(Event::Message(_)) => {}
            }
        }
        if let (None, Some(Err(status))) = (&self.headers, &self.outcome) {
            return Poll::Ready(Err(status.clone()));
        }
        // The core reports headers before any success, so a header-less end is a failure;
        // should that ever change, an empty map is the honest answer.
        Poll::Ready(Ok(self.headers.get_or_insert_with(HeaderMap::new)))
    }

    /// Reads a unary response as one attempt of a retried call: any failure happened before
    /// the application saw the response.
    pub(crate) async fn into_unary_attempt<M: DecodeMessage>(
        self,
    ) -> crate::client::retry::Attempt<Response<M>> {
        let shared = self.exchange.shared.clone();
        match self.into_unary().await {
            Ok(response) => crate::client::retry::Attempt::Done(Ok(response)),
            Err(status) => crate::client::retry::Attempt::Failed {
                status,
                unprocessed: shared.lock().unprocessed,
            },
        }
    }

    /// The failure of a call that ended before any response message reached the reader, and
    /// whether the server never processed it.
    fn start_failure(&self) -> Option<(Status, bool)> {
        match (&self.first, &self.outcome) {
            (None, Some(Err(status))) => {
                Some((status.clone(), self.exchange.shared.lock().unprocessed))
            }
            _ => None,
        }
    }

    /// Reads exactly one message then the end: a unary response.
    pub(crate) async fn into_unary<M: DecodeMessage>(mut self) -> Result<Response<M>, Status> {
        let first = poll_fn(|cx| self.poll_message::<M>(cx)).await;
        let message = match first {
            Ok(Some(message)) => message,
            // The core fails a unary response without its message before it ends; these
            // arms only keep a misdeclared method kind from producing a wrong answer.
            Ok(None) => return Err(ProtocolError::in_response(Rule::MissingMessage).into()),
            Err(status) => return Err(self.with_headers(status)),
        };
        match poll_fn(|cx| self.poll_message::<M>(cx)).await {
            Ok(None) => {}
            Ok(Some(_)) => return Err(ProtocolError::in_response(Rule::ExtraMessage).into()),
            Err(status) => return Err(self.with_headers(status)),
        }
        Ok(Response::new(message)
            .with_headers(self.headers.take().unwrap_or_default())
            .with_trailers(self.trailers.take().unwrap_or_default()))
    }

    /// A failure's metadata: the response headers followed by the trailers.
    fn with_headers(&self, status: Status) -> Status {
        match &self.headers {
            Some(headers) if !headers.is_empty() => {
                let mut merged = headers.clone();
                for (name, value) in status.metadata() {
                    merged.append(name.clone(), value.clone());
                }
                status.with_metadata(merged)
            }
            _ => status,
        }
    }
}

impl<T: Transport> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.drop_ahead();
    }
}

/// The responses of a call: headers, a stream of messages, then trailers or an error.
/// Also a [`Stream`] of `Result<M, Status>`. Dropping it cancels the call.
pub struct ResponseStream<M> {
    receiver: Box<dyn ErasedReceiver<M>>,
    /// The stream reported its end or its error.
    done: bool,
}

/// The receiving half without the transport type, so call objects name only message types.
trait ErasedReceiver<M>: Send {
    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<M>, Status>>;
    /// Ready once the response head arrived or the call ended.
    fn poll_started(&mut self, cx: &mut Context<'_>) -> Poll<()>;
    fn poll_headers(&mut self, cx: &mut Context<'_>) -> Poll<Result<HeaderMap, Status>>;
    fn headers(&self) -> Option<&HeaderMap>;
    fn trailers(&self) -> Option<&HeaderMap>;
    fn start_failure(&self) -> Option<(Status, bool)>;
    /// Ready once the first response message was read ahead or the call ended.
    fn poll_first_response(&mut self, cx: &mut Context<'_>) -> Poll<()>;
    fn into_unary(
        self: Box<Self>,
    ) -> Pin<Box<dyn std::future::Future<Output = Result<Response<M>, Status>> + Send>>;
    fn sender(&mut self) -> &mut dyn ErasedSender;
}

/// The sending half without the transport type.
trait ErasedSender: Send {
    fn poll_send_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>>;
    fn send(&mut self, message: EncodedMessage) -> Result<(), Status>;
    fn close_send(&mut self) -> Result<(), Status>;
    fn cancel(&mut self);
}

impl<T: Transport, M: DecodeMessage> ErasedReceiver<M> for Receiver<T> {
    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<M>, Status>> {
        Receiver::poll_message(self, cx)
    }

    fn poll_started(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        Receiver::poll_headers(self, cx).map(drop)
    }

    fn poll_headers(&mut self, cx: &mut Context<'_>) -> Poll<Result<HeaderMap, Status>> {
        Receiver::poll_headers(self, cx).map(|r| r.cloned())
    }

    fn headers(&self) -> Option<&HeaderMap> {
        self.headers.as_ref()
    }

    fn trailers(&self) -> Option<&HeaderMap> {
        self.trailers.as_ref()
    }

    fn start_failure(&self) -> Option<(Status, bool)> {
        Receiver::start_failure(self)
    }

    fn poll_first_response(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        Receiver::poll_first_response(self, cx)
    }

    fn into_unary(
        self: Box<Self>,
    ) -> Pin<Box<dyn std::future::Future<Output = Result<Response<M>, Status>> + Send>> {
        Box::pin(Receiver::into_unary(*self))
    }

    fn sender(&mut self) -> &mut dyn ErasedSender {
        self
    }
}

impl<T: Transport> ErasedSender for Receiver<T> {
    fn poll_send_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        self.exchange.poll_send_ready(cx)
    }

    fn send(&mut self, message: EncodedMessage) -> Result<(), Status> {
        self.exchange.send(message)
    }

    fn close_send(&mut self) -> Result<(), Status> {
        self.exchange.close_send()
    }

    fn cancel(&mut self) {
        self.exchange.cancel();
    }
}

impl<M: DecodeMessage> ResponseStream<M> {
    pub(crate) fn new<T: Transport>(exchange: Exchange<T>) -> Self {
        let codec = exchange.codec();
        ResponseStream {
            receiver: Box::new(Receiver::new(exchange, codec)),
            done: false,
        }
    }

    /// The next message: `Ok(None)` after the call ended successfully, `Err` if it failed.
    pub async fn message(&mut self) -> Result<Option<M>, Status> {
        poll_fn(|cx| self.receiver.poll_message(cx)).await
    }

    /// Waits until the response head arrived (the server started the call) or the call
    /// ended; the outcome stays with the stream.
    pub(crate) async fn started(&mut self) {
        poll_fn(|cx| self.receiver.poll_started(cx)).await;
    }

    /// The failure of a call that ended before any response message was read (and whether
    /// the server never processed it).
    pub(crate) fn start_failure(&self) -> Option<(Status, bool)> {
        self.receiver.start_failure()
    }

    /// Waits until the first response message arrived (it stays with the stream) or the call
    /// ended.
    pub(crate) async fn first_response(&mut self) {
        poll_fn(|cx| self.receiver.poll_first_response(cx)).await;
    }

    /// Waits for the response headers.
    pub async fn headers(&mut self) -> Result<HeaderMap, Status> {
        poll_fn(|cx| self.receiver.poll_headers(cx)).await
    }

    /// The response headers, once received.
    pub fn received_headers(&self) -> Option<&HeaderMap> {
        self.receiver.headers()
    }

    /// The trailers (on failure, the error's metadata), once the call ended.
    pub fn trailers(&self) -> Option<&HeaderMap> {
        self.receiver.trailers()
    }

    /// Cancels the call.
    pub fn cancel(&mut self) {
        self.receiver.sender().cancel();
    }

    /// Reads the response as a unary one (exactly one message).
    pub async fn into_unary(self) -> Result<Response<M>, Status> {
        self.receiver.into_unary().await
    }
}

impl<M: DecodeMessage> Stream for ResponseStream<M> {
    type Item = Result<M, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match this.receiver.poll_message(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(Some(message))) => Poll::Ready(Some(Ok(message))),
            Poll::Ready(Ok(None)) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Err(status)) => {
                // An error is reported once; afterwards the stream ends.
                this.done = true;
                Poll::Ready(Some(Err(status)))
            }
        }
    }
}

impl<M> fmt::Debug for ResponseStream<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseStream").finish_non_exhaustive()
    }
}

/// A client-streaming call: [`send`](Self::send) messages, then [`finish`](Self::finish).
pub struct ClientStreamingCall<Req, Resp> {
    stream: ResponseStream<Resp>,
    codec: Codec,
    /// Scratch space the requests are encoded in (small messages share its allocations).
    buf: BytesMut,
    _request: PhantomData<fn(Req)>,
}

impl<Req: EncodeMessage, Resp: DecodeMessage> ClientStreamingCall<Req, Resp> {
    pub(crate) fn new<T: Transport>(exchange: Exchange<T>, codec: Codec) -> Self {
        ClientStreamingCall {
            stream: ResponseStream::new(exchange),
            codec,
            buf: BytesMut::new(),
            _request: PhantomData,
        }
    }

    /// Sends one message, waiting while too much is queued ahead of the transport.
    pub async fn send(&mut self, message: Req) -> Result<(), Status> {
        let sender = self.stream.receiver.sender();
        poll_fn(|cx| sender.poll_send_ready(cx)).await?;
        let bytes = message
            .encode_message_into(self.codec, &mut self.buf)
            .map_err(crate::codec::encoding_failed)?;
        self.stream.receiver.sender().send(bytes)
    }

    /// The receiving half, for reading the response as a stream (headers, the message, then
    /// trailers or the error) after [`close_send`](Self::close_send).
    pub fn into_response_stream(self) -> ResponseStream<Resp> {
        self.stream
    }

    /// Ends the request stream; the response can then be read from
    /// [`into_response_stream`](Self::into_response_stream).
    pub fn close_send(&mut self) -> Result<(), Status> {
        self.stream.receiver.sender().close_send()
    }

    /// Ends the request stream and waits for the response.
    pub async fn finish(mut self) -> Result<Response<Resp>, Status> {
        // A call that already ended keeps its outcome; closing is then a no-op.
        let _ = self.stream.receiver.sender().close_send();
        self.stream.into_unary().await
    }

    /// Cancels the call.
    pub fn cancel(&mut self) {
        self.stream.cancel();
    }
}

impl<Req, Resp> fmt::Debug for ClientStreamingCall<Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientStreamingCall")
            .finish_non_exhaustive()
    }
}

/// A bidi-streaming call: send and receive independently.
pub struct BidiStreamingCall<Req, Resp> {
    stream: ResponseStream<Resp>,
    codec: Codec,
    /// Scratch space the requests are encoded in (small messages share its allocations).
    buf: BytesMut,
    _request: PhantomData<fn(Req)>,
}

impl<Req: EncodeMessage, Resp: DecodeMessage> BidiStreamingCall<Req, Resp> {
    pub(crate) fn new<T: Transport>(exchange: Exchange<T>, codec: Codec) -> Self {
        BidiStreamingCall {
            stream: ResponseStream::new(exchange),
            codec,
            buf: BytesMut::new(),
            _request: PhantomData,
        }
    }

    /// Sends one message, waiting while too much is queued ahead of the transport.
    pub async fn send(&mut self, message: Req) -> Result<(), Status> {
        let sender = self.stream.receiver.sender();
        poll_fn(|cx| sender.poll_send_ready(cx)).await?;
        let bytes = message
            .encode_message_into(self.codec, &mut self.buf)
            .map_err(crate::codec::encoding_failed)?;
        self.stream.receiver.sender().send(bytes)
    }

    /// Ends the request stream.
    pub fn close_send(&mut self) -> Result<(), Status> {
        self.stream.receiver.sender().close_send()
    }

    /// The receiving half alone (the request stream should be closed first).
    pub fn into_response_stream(self) -> ResponseStream<Resp> {
        self.stream
    }

    /// The next response message: `Ok(None)` after a successful end.
    pub async fn message(&mut self) -> Result<Option<Resp>, Status> {
        self.stream.message().await
    }

    /// Waits for the response headers.
    pub async fn headers(&mut self) -> Result<HeaderMap, Status> {
        self.stream.headers().await
    }

    /// The response headers, once received.
    pub fn received_headers(&self) -> Option<&HeaderMap> {
        self.stream.received_headers()
    }

    /// The trailers, once the call ended.
    pub fn trailers(&self) -> Option<&HeaderMap> {
        self.stream.trailers()
    }

    /// Cancels the call.
    pub fn cancel(&mut self) {
        self.stream.cancel();
    }
}

impl<Req, Resp> fmt::Debug for BidiStreamingCall<Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BidiStreamingCall").finish_non_exhaustive()
    }
}
