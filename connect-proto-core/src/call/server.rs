//! The server side of one call.
//!
//! Two halves, each a state holding the data it needs:
//!
//! ```text
//!  request                                   response
//!  ───────                                   ────────
//!  Open{reader, pause limit} ─handle_end─> Ended      Idle{headers} ─send_headers / message─> Streaming
//!    │ └ protocol error, body error, pause ─> Failed     │ └ message (Connect unary) ─> Held{headers, message}
//!    └ handle_reset ───────────────────────> Failed     │                                │
//!                                                        ├─ finish ─> Finished <─ finish ─┤ (Held: head, body, end)
//!                                                        └─ deadline, reset, request error, drain ─> Finished
//! ```
//!
//! A Connect unary response is held until `finish`, because its HTTP status, content type and
//! `trailer-` headers depend on the outcome. A gRPC call that finishes before any message is
//! sent answers trailers-only (unless the application set response headers); gRPC-Web writes
//! its trailers as a `0x80` frame; Connect streaming ends with an end-stream message.
//!
//! Inputs are `handle_*`; outputs are drained with [`ServerCall::poll_event`] (what the
//! application must act on) and [`ServerCall::poll_output`] (what the adapter must write).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, StatusCode, request, response};

use crate::call::accept::{Admitted, Rejection, admit};
use crate::call::framed_run::{FramedMessages, frame_message};
use crate::call::inbound::{Direction, Inbound, Reader, decompress_with};
use crate::call::outbound::{Outgoing, frame_end, frame_outgoing, text_encoded_for};
use crate::call::output_queue::{OutputQueue, SmallQueue};
use crate::call::render;
use crate::call::response_heads::ResponseHeads;
use crate::call::server_config::ServerConfig;
use crate::codec::{Codec, CodecError, EncodedMessage};
use crate::compression::Compression;
use crate::error::{ProtocolError, Rule, UsageError};
use crate::internal::connect::error_json::encode_end_stream;
use crate::internal::connect::prefix_trailers;
use crate::internal::envelope::{FLAG_END_STREAM, FLAG_TRAILERS, PREFIX_LEN};
use crate::internal::grpc::encode_status;
use crate::internal::grpc_web::encode_trailer_block;
use crate::method::MethodSpec;
use crate::protocol::{ContentType, Protocol, WireForm};
use crate::status::Status;

/// Something the application must act on.
#[derive(Debug, PartialEq)]
#[must_use]
#[non_exhaustive]
pub enum ServerEvent {
    /// A request message (decompressed, still encoded with the call's codec).
    Message(Bytes),
    /// A request message still compressed with the call's
    /// [`request_compression`](ServerCall::request_compression): only with
    /// [`set_pass_through`](ServerCall::set_pass_through), for envelopes (or a Connect unary
    /// body) the client compressed. Forward it with
    /// [`ClientCall::send_compressed_message`](crate::ClientCall::send_compressed_message) when
    /// the next hop uses the same compression, or decompress it with
    /// [`ServerCall::decompress_message`].
    CompressedMessage(Bytes),
    /// The client finished sending; no more messages will arrive.
    RequestEnd,
    /// The call ended abnormally (protocol error in the request, deadline, client reset).
    /// Any response has already been queued; later sends fail with
    /// [`UsageError::AlreadyFinished`].
    Failed(Status),
}

/// Something the adapter must write to the HTTP response.
#[derive(Debug)]
#[must_use]
#[non_exhaustive]
pub enum ServerOutput {
    /// The response head. Always first.
    Head(response::Parts),
    /// A chunk of the response body.
    Data(Bytes),
    /// The response trailers; the response ends after them.
    Trailers(HeaderMap),
    /// The response ends (no trailers).
    End,
}

/// A request head the server admitted, before its call is built: made by
/// [`ServerCall::admit`], turned into the call by [`into_call`](Admission::into_call) (with
/// the configuration and time it was admitted with).
#[derive(Debug)]
#[must_use]
pub struct Admission<'c> {
    admitted: Admitted,
    config: &'c ServerConfig,
    now: Instant,
}

impl Admission<'_> {
    /// The method being called.
    pub fn method(&self) -> &MethodSpec {
        &self.admitted.method
    }

    /// The call's protocol.
    pub fn protocol(&self) -> Protocol {
        self.admitted.content_type.protocol()
    }

    /// The request (and response) content type.
    pub fn content_type(&self) -> ContentType {
        self.admitted.content_type
    }

    /// The message codec.
    pub fn codec(&self) -> Codec {
        self.admitted.content_type.codec
    }

    /// The call's deadline, as [`ServerCall::deadline`] will report it.
    pub fn deadline(&self) -> Option<Instant> {
        self.admitted.deadline
    }

    /// The compression of request messages (`None` for identity).
    pub fn request_compression(&self) -> Option<&'static str> {
        self.admitted.request_compression.as_ref().map(|c| c.name())
    }

    /// The call, as [`ServerCall::accept`] returns it: a Connect GET's message (from its
    /// query) is already fed and its request ended, which may have finished the call (a
    /// message over the receive limit, say).
    pub fn into_call(self) -> ServerCall {
        let Admission {
            mut admitted,
            config,
            now,
        } = self;
        let Some(message) = admitted.get_message.take() else {
            return ServerCall::from_admitted(config, now, admitted);
        };
        // A GET carries its whole request in the query: feed it as a bare body, and end it
        // unless feeding it already failed the call.
        let mut call = ServerCall::from_admitted(config, now, admitted);
        call.feed(message);
        call.end_request();
        call
    }
}

/// The request half. Its variants differ in size on purpose: the call lives inline in its
/// owner, and boxing the reader would cost an allocation on every call.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
enum RequestSide {
    /// The body is arriving.
    Open {
        reader: Reader,
        /// Messages received so far.
        messages: usize,
        /// The longest pause allowed (unary request bodies only).
        pause_limit: Option<Duration>,
        /// When the body times out unless more of it arrives.
        pause_deadline: Option<Instant>,
    },
    /// The body ended.
    Ended,
    /// The body broke a rule, failed, or the client went away.
    Failed,
}

/// The response half.
#[derive(Debug)]
enum ResponseSide {
    /// Nothing written yet; the headers the application set so far.
    Idle { headers: HeaderMap },
    /// Connect unary: the one message, held until `finish` writes head, body and end at once.
    Held {
        headers: HeaderMap,
        message: Bytes,
        compressed: bool,
    },
    /// The head is written; messages follow.
    Streaming { messages: usize },
    /// Everything is queued (or the client is gone).
    Finished,
}

/// A call's queues: the events for the application and the outputs for the HTTP writer.
///
/// They hold their first few items inline (a unary call never allocates for them), which
/// makes them most of a call's size; kept in an allocation of their own, the call and the
/// state an adapter keeps it in stay small enough for the allocator's fast size classes (a
/// single block above 1 KiB costs several times two small ones with glibc's allocator).
#[derive(Debug, Default)]
struct Queues {
    events: SmallQueue<ServerEvent>,
    outputs: OutputQueue<ServerOutput>,
}

/// One server-side call: request bytes in, response bytes out, no I/O.
#[derive(Debug)]
pub struct ServerCall {
    content_type: ContentType,
    method: MethodSpec,
    deadline: Option<Instant>,
    request_compression: Option<Arc<dyn Compression>>,
    response_compression: Option<Arc<dyn Compression>>,
    /// The server's rendered header blocks (and the compressions it accepts).
    heads: Arc<ResponseHeads>,
    compress_min_bytes: usize,
    send_limit: Option<usize>,
    receive_limit: usize,
    request: RequestSide,
    response: ResponseSide,
    /// The events and outputs, in their own allocation (see [`Queues`]).
    queues: Box<Queues>,
    /// How the call ended, once it has.
    outcome: Option<Result<(), crate::code::Code>>,
}

impl ServerCall {
    /// Admits a request head, or returns the response that rejects it.
    ///
    /// `lookup` maps the request path to its method; `None` means the method is unknown and
    /// renders `unimplemented` in the detected protocol (404 for Connect). `now` starts the
    /// call's deadline (from its timeout header, or [`ServerConfig::max_timeout`]) and the pause
    /// limit of a unary request body.
    pub fn accept(
        config: &ServerConfig,
        now: Instant,
        head: &request::Parts,
        lookup: impl FnOnce(&str) -> Option<MethodSpec>,
    ) -> Result<ServerCall, Rejection> {
        // Built in place (a call is 0.5 KB; a named value would be moved once more).
        Ok(ServerCall::admit(config, now, head, lookup)?.into_call())
    }

    /// Admits a request head as [`accept`](ServerCall::accept) does, but stops short of
    /// building the call: the [`Admission`] tells what the call will be (method, protocol,
    /// codec, deadline), and [`Admission::into_call`] builds it where the caller keeps it. A
    /// call is about 0.5 KB and each move of it is a copy; a driver that sets up around the
    /// call (a context, a span, an observer) before placing it saves those copies.
    pub fn admit<'c>(
        config: &'c ServerConfig,
        now: Instant,
        head: &request::Parts,
        lookup: impl FnOnce(&str) -> Option<MethodSpec>,
    ) -> Result<Admission<'c>, Rejection> {
        let admitted = admit(config, now, head, lookup)?;
        Ok(Admission {
            admitted,
            config,
            now,
        })
    }

    /// The call for an admitted request (whose GET message, if any, is fed by the caller).
    fn from_admitted(config: &ServerConfig, now: Instant, admitted: Admitted) -> Self {
        let Admitted {
            content_type,
            method,
            deadline,
            request_compression,
            response_compression,
            get_message: _,
        } = admitted;
        let reader = Reader::new(
            content_type.form,
            Direction::Request,
            request_compression.clone(),
            config.max_receive_message_size,
            // Requests carry no end-of-stream frames.
            config.max_receive_message_size,
        );
        // Only unary request bodies have a pause limit: a streaming request's pauses are the
        // application's.
        let pause_limit = config
            .body_timeout
            .filter(|_| !method.kind.streams_requests());
        ServerCall {
            content_type,
            method,
            deadline,
            request_compression,
            response_compression,
            heads: config.heads.clone(),
            compress_min_bytes: config.compress_min_bytes,
            send_limit: config.max_send_message_size,
            receive_limit: config.max_receive_message_size,
            request: RequestSide::Open {
                reader,
                messages: 0,
                pause_limit,
                pause_deadline: pause_limit.and_then(|t| now.checked_add(t)),
            },
            response: ResponseSide::Idle {
                headers: HeaderMap::new(),
            },
            // `Box::default` builds the queues in their allocation (no copy from the stack).
            queues: Box::default(),
            outcome: None,
        }
    }

    /// The call's protocol.
    pub fn protocol(&self) -> Protocol {
        self.content_type.protocol()
    }

    /// The request (and response) content type.
    pub fn content_type(&self) -> ContentType {
        self.content_type
    }

    /// The message codec.
    pub fn codec(&self) -> Codec {
        self.content_type.codec
    }

    /// The method being called.
    pub fn method(&self) -> &MethodSpec {
        &self.method
    }

    /// The deadline derived from the request's timeout header (or the server's bound), if any.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The compression of request messages (`None` for identity).
    pub fn request_compression(&self) -> Option<&'static str> {
        self.request_compression.as_ref().map(|c| c.name())
    }

    /// The negotiated compression of response messages (`None` for identity).
    pub fn response_compression(&self) -> Option<&'static str> {
        self.response_compression.as_ref().map(|c| c.name())
    }

    /// Overrides the response compression (for example to disable it per call), until the
    /// first message is sent.
    pub fn set_response_compression(&mut self, compression: Option<Arc<dyn Compression>>) {
        if matches!(self.response, ResponseSide::Idle { .. }) {
            self.response_compression = compression;
        }
    }

    /// Delivers compressed request messages still compressed, as
    /// [`ServerEvent::CompressedMessage`], for proxies that forward without recompressing
    /// (uncompressed ones remain [`ServerEvent::Message`]). Set it before feeding the body.
    pub fn set_pass_through(&mut self, pass_through: bool) {
        if let RequestSide::Open { reader, .. } = &mut self.request {
            reader.set_pass_through(pass_through);
        }
    }

    /// Decompresses a [`ServerEvent::CompressedMessage`] payload with the request
    /// compression, bounded by the receive limit: for a pass-through caller that needs the
    /// plain message after all (the next hop uses another compression).
    pub fn decompress_message(&self, payload: Bytes) -> Result<Bytes, ProtocolError> {
        decompress_with(
            self.request_compression.as_ref(),
            payload,
            self.receive_limit,
        )
        .map_err(ProtocolError::in_request)
    }

    /// Whether the response has been completely queued (or the call failed).
    pub fn is_finished(&self) -> bool {
        matches!(self.response, ResponseSide::Finished)
    }

    /// How the call ended, once it has: `Ok` when the application finished it successfully,
    /// else the code it ended with — the application's error, a protocol error, the deadline,
    /// or the client going away (`canceled`). For drivers that report calls (metrics, logs)
    /// without reading the events meant for the handler.
    pub fn outcome(&self) -> Option<Result<(), crate::code::Code>> {
        self.outcome
    }

    /// Whether the request side is done (ended or failed).
    pub fn is_request_done(&self) -> bool {
        !matches!(self.request, RequestSide::Open { .. })
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next: the call's deadline,
    /// or earlier while a unary request body is open, the end of its allowed pause.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_finished() {
            return None;
        }
        let pause = match &self.request {
            RequestSide::Open { pause_deadline, .. } => *pause_deadline,
            _ => None,
        };
        match (self.deadline, pause) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A chunk of the request body arrived. For a unary request body, `now` restarts the
    /// allowed pause (see [`ServerConfig::body_timeout`]).
    pub fn handle_data(&mut self, now: Instant, chunk: Bytes) {
        if self.is_finished() {
            return;
        }
        if let RequestSide::Open {
            pause_limit: Some(limit),
            pause_deadline,
            ..
        } = &mut self.request
        {
            *pause_deadline = now.checked_add(*limit);
        }
        self.feed(chunk);
    }

    /// The request body ended. Request trailers carry no protocol meaning and are ignored.
    pub fn handle_end(&mut self, _trailers: Option<HeaderMap>) {
        if !self.is_finished() {
            self.end_request();
        }
    }

    /// The request body broke off (the transport found it truncated or malformed, as an
    /// HTTP/1.1 body shorter than its `content-length`): the call fails with
    /// `invalid_argument`, and the error is answered if nothing was sent yet. A stream the
    /// client reset is [`handle_reset`](Self::handle_reset) instead.
    pub fn handle_body_error(&mut self, why: &str) {
        if self.is_request_open() && !self.is_finished() {
            self.request_error(Rule::BrokenBody(why.to_owned()));
        }
    }

    /// The client reset the stream or went away: the call is cancelled, nothing more is sent.
    pub fn handle_reset(&mut self) {
        if self.is_finished() {
            return;
        }
        self.request = RequestSide::Failed;
        self.response = ResponseSide::Finished;
        self.queues.outputs.clear();
        let status = ProtocolError::in_request(Rule::Reset { code: None }).to_status();
        self.outcome.get_or_insert(Err(status.code()));
        self.queues.events.push_back(ServerEvent::Failed(status));
    }

    /// Time passed: if the deadline expired, the call fails with `deadline_exceeded`; if a
    /// unary request body paused too long, with the [`Rule::BodyTimeout`] protocol error.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.is_finished() {
            return;
        }
        if self.deadline.is_some_and(|deadline| now >= deadline) {
            self.fail(Status::deadline_exceeded("the call's deadline expired"));
        } else if let RequestSide::Open {
            pause_deadline: Some(deadline),
            ..
        } = self.request
        {
            if now >= deadline {
                self.request_error(Rule::BodyTimeout);
            }
        }
    }

    /// Response headers (leading metadata) to send with the head; `None` once the head is
    /// written (or the call finished).
    pub fn response_headers_mut(&mut self) -> Option<&mut HeaderMap> {
        match &mut self.response {
            ResponseSide::Idle { headers } | ResponseSide::Held { headers, .. } => Some(headers),
            ResponseSide::Streaming { .. } | ResponseSide::Finished => None,
        }
    }

    /// Sends the response head now (enveloped forms; a Connect unary response needs the
    /// outcome first and ignores this).
    pub fn send_headers(&mut self) -> Result<(), UsageError> {
        match &self.response {
            ResponseSide::Finished => Err(UsageError::AlreadyFinished),
            ResponseSide::Idle { .. } if self.content_type.form.is_enveloped() => {
                self.write_head();
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Sends one response message (encoded with the call's codec): [`Bytes`] or an
    /// [`EncodedMessage`] from [`Codec::encode_message`] (which frames without copying).
    pub fn send_message(&mut self, message: impl Into<EncodedMessage>) -> Result<(), UsageError> {
        self.send(Outgoing::Encoded(message.into()))
    }

    /// Whether [`send_message_with`](Self::send_message_with) writes messages straight into
    /// the response body: an enveloped, uncompressed, binary (not base64) response. Otherwise
    /// it encodes each message into a buffer of its own first, as [`send_message`](Self::send_message)
    /// takes it.
    pub fn writes_in_place(&self) -> bool {
        let form = self.content_type.form;
        form.is_enveloped() && !form.is_text() && self.response_compression.is_none()
    }

    /// Sends one response message that `write` encodes: it appends the message (and only
    /// it) to the buffer it is given. Where the call [writes in place](Self::writes_in_place),
    /// that buffer is the response body's open chunk, after room for the envelope prefix
    /// (filled in once the length is known): a stream of small messages is encoded straight
    /// into the chunks it leaves in, with no buffer, copy or queue entry of its own (the
    /// first message, which writes the response head, is encoded on its own). The send
    /// limit is checked on the encoded length; a failed or oversized message leaves nothing
    /// behind.
    pub fn send_message_with(
        &mut self,
        write: impl FnOnce(&mut BytesMut) -> Result<(), CodecError>,
    ) -> Result<(), UsageError> {
        // A first message goes the way `send_message` takes it too, so a failure leaves the
        // head unwritten (the error can still be a trailers-only response).
        if !self.writes_in_place() || !matches!(self.response, ResponseSide::Streaming { .. }) {
            let mut buf = BytesMut::new();
            buf.put_bytes(0, PREFIX_LEN);
            write(&mut buf)?;
            return self.send_message(EncodedMessage::prefixed(buf));
        }
        self.check_can_send()?;
        let limit = self.send_limit;
        self.queues
            .outputs
            .write_data(|buf| frame_message(buf, limit, write))?;
        if let ResponseSide::Streaming { messages } = &mut self.response {
            *messages += 1;
        }
        Ok(())
    }

    /// Whether [`send_framed_messages`](Self::send_framed_messages) may be used now: the
    /// method streams responses, the call [writes in place](Self::writes_in_place), and it
    /// can still send. A run sent before the response head writes the head first (a run that
    /// is refused leaves it unwritten).
    pub fn accepts_framed_messages(&self) -> bool {
        self.writes_in_place()
            && self.check_can_send().is_ok()
            && matches!(
                self.response,
                ResponseSide::Streaming { .. } | ResponseSide::Idle { .. }
            )
            && self.method.kind.streams_responses()
    }

    /// The largest message this call may send (encoded, before any compression), if limited.
    pub fn send_limit(&self) -> Option<usize> {
        self.send_limit
    }

    /// Sends response messages its caller framed already: `framed` is a run of whole
    /// envelopes (a 5-byte prefix with flags `0` and the length, then the message), each
    /// within the [send limit](Self::send_limit), queued as response body data like any
    /// other: a run left alone goes out as it is, without a copy; one that small chunks
    /// queued before or after it (not yet taken) can join is copied into their joined chunk.
    /// For a stream whose messages are framed away from the call (without holding it, with
    /// [`frame_message`]) and handed over a run at a time. Only when
    /// [`accepts_framed_messages`](Self::accepts_framed_messages); a run that is not whole
    /// uncompressed envelopes is refused whole ([`UsageError::MalformedFraming`], or
    /// [`UsageError::MessageTooLarge`]). Returns the number of messages sent.
    pub fn send_framed_messages(&mut self, framed: Bytes) -> Result<usize, UsageError> {
        if !self.accepts_framed_messages() {
            self.check_can_send()?;
            return Err(UsageError::MalformedFraming);
        }
        let limit = self.send_limit.unwrap_or(u32::MAX as usize);
        let mut rest = &framed[..];
        let mut count = 0;
        while !rest.is_empty() {
            let Some((prefix, after)) = rest.split_first_chunk::<PREFIX_LEN>() else {
                return Err(UsageError::MalformedFraming);
            };
            let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
            if prefix[0] != 0 || len > after.len() {
                return Err(UsageError::MalformedFraming);
            }
            if len > limit {
                return Err(UsageError::MessageTooLarge { size: len, limit });
            }
            rest = &after[len..];
            count += 1;
        }
        Ok(self.queue_framed(framed, count))
    }

    /// Sends a run of response messages framed by a [`FramedRun`](crate::call::FramedRun):
    /// as [`send_framed_messages`](Self::send_framed_messages) does, but a run framed under
    /// this call's send limit (or a lower one) is queued without reading its envelopes
    /// again. Returns the number of messages sent.
    pub fn send_framed_run(&mut self, run: FramedMessages) -> Result<usize, UsageError> {
        if !run.framed_within(self.send_limit) {
            return self.send_framed_messages(run.bytes);
        }
        if !self.accepts_framed_messages() {
            self.check_can_send()?;
            return Err(UsageError::MalformedFraming);
        }
        Ok(self.queue_framed(run.bytes, run.messages))
    }

    /// Queues `count` framed messages as response body data (after the head, if this is the
    /// first send).
    fn queue_framed(&mut self, framed: Bytes, count: usize) -> usize {
        if count == 0 {
            return 0;
        }
        self.ensure_head();
        self.queues.outputs.push(ServerOutput::Data(framed));
        if let ResponseSide::Streaming { messages } = &mut self.response {
            *messages += count;
        }
        count
    }

    /// Sends one response message that is already compressed with the call's
    /// [`response_compression`](Self::response_compression): a proxy forwarding a payload it
    /// received compressed with the same algorithm (see [`ServerEvent::CompressedMessage`]).
    /// The send limit applies to the compressed size. Without a negotiated compression this
    /// is a [`UsageError::Compression`].
    pub fn send_compressed_message(&mut self, payload: Bytes) -> Result<(), UsageError> {
        self.send(Outgoing::Compressed(payload))
    }

    /// Whether another response message may be sent.
    fn check_can_send(&self) -> Result<(), UsageError> {
        let unary = !self.method.kind.streams_responses();
        match &self.response {
            ResponseSide::Finished => Err(UsageError::AlreadyFinished),
            ResponseSide::Held { .. } => Err(UsageError::SecondUnaryMessage),
            ResponseSide::Streaming { messages } if unary && *messages > 0 => {
                Err(UsageError::SecondUnaryMessage)
            }
            _ => Ok(()),
        }
    }

    fn send(&mut self, message: Outgoing) -> Result<(), UsageError> {
        self.check_can_send()?;
        if let Some(limit) = self.send_limit {
            if message.len() > limit {
                return Err(UsageError::MessageTooLarge {
                    size: message.len(),
                    limit,
                });
            }
        }
        let (framed, compressed) = frame_outgoing(
            message,
            self.content_type.form,
            self.response_compression.as_ref(),
            self.compress_min_bytes,
        )?;
        if !self.content_type.form.is_enveloped() {
            let headers = self.take_headers();
            self.response = ResponseSide::Held {
                headers,
                message: framed,
                compressed,
            };
            return Ok(());
        }
        if matches!(self.response, ResponseSide::Idle { .. }) {
            self.write_head();
        }
        if let ResponseSide::Streaming { messages } = &mut self.response {
            *messages += 1;
        }
        self.queues.outputs.push(ServerOutput::Data(framed));
        Ok(())
    }

    /// Ends the call: `Ok(trailers)` for success, `Err(status)` for failure (the status's
    /// metadata are the trailers). A unary response without its message is a usage error; the
    /// call then ends with `internal` so the wire is never left open.
    pub fn finish(&mut self, outcome: Result<HeaderMap, Status>) -> Result<(), UsageError> {
        let sent_one = match &self.response {
            ResponseSide::Finished => return Err(UsageError::AlreadyFinished),
            ResponseSide::Idle { .. } => false,
            ResponseSide::Held { .. } => true,
            ResponseSide::Streaming { messages } => *messages > 0,
        };
        match outcome {
            Ok(_) if !self.method.kind.streams_responses() && !sent_one => {
                self.fail(Status::internal("the handler returned no response message"));
                Err(UsageError::MissingUnaryMessage)
            }
            Ok(trailers) => {
                self.finish_ok(trailers);
                Ok(())
            }
            Err(status) => {
                self.finish_err(status);
                Ok(())
            }
        }
    }

    /// Next event for the application.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.queues.events.pop_front()
    }

    /// Next output for the adapter.
    pub fn poll_output(&mut self) -> Option<ServerOutput> {
        self.queues.outputs.pop()
    }

    /// Body bytes queued for the adapter but not yet taken with `poll_output` (after
    /// compression and framing): what back-pressure should be measured in.
    pub fn buffered_output_bytes(&self) -> usize {
        self.queues.outputs.data_bytes()
    }

    fn is_request_open(&self) -> bool {
        matches!(self.request, RequestSide::Open { .. })
    }

    fn feed(&mut self, chunk: Bytes) {
        let RequestSide::Open { reader, .. } = &mut self.request else {
            return;
        };
        let read = match reader.push(chunk) {
            Ok(()) => self.read_items(),
            Err(rule) => Err(rule),
        };
        if let Err(rule) = read {
            self.request_error(rule);
        }
    }

    fn end_request(&mut self) {
        let RequestSide::Open { reader, .. } = &mut self.request else {
            return;
        };
        let last = match reader.finish() {
            Ok(Some(item)) => self.take_item(item),
            Ok(None) => Ok(()),
            Err(rule) => Err(rule),
        };
        if let Err(rule) = last {
            return self.request_error(rule);
        }
        let RequestSide::Open { messages, .. } = self.request else {
            return;
        };
        if !self.method.kind.streams_requests() && messages == 0 {
            return self.request_error(Rule::MissingMessage);
        }
        self.request = RequestSide::Ended;
        self.queues.events.push_back(ServerEvent::RequestEnd);
    }

    /// Reads every item the buffered request completes into events, each straight from the
    /// reader; the first rule broken stops reading.
    fn read_items(&mut self) -> Result<(), Rule> {
        loop {
            let RequestSide::Open {
                reader, messages, ..
            } = &mut self.request
            else {
                return Ok(());
            };
            match reader.next_item()? {
                // A stream's message, the common item, is queued here: handed on by value it
                // would be copied once more.
                Some(Inbound::Message(message)) if self.method.kind.streams_requests() => {
                    *messages += 1;
                    self.queues.events.push_back(ServerEvent::Message(message));
                }
                Some(item) => self.take_item(item)?,
                None => return Ok(()),
            }
        }
    }

    /// Turns an item read from the request into an event.
    fn take_item(&mut self, item: Inbound) -> Result<(), Rule> {
        let RequestSide::Open { messages, .. } = &mut self.request else {
            return Ok(());
        };
        let event = match item {
            Inbound::Message(_) | Inbound::Compressed(_)
                if *messages > 0 && !self.method.kind.streams_requests() =>
            {
                return Err(Rule::ExtraMessage);
            }
            Inbound::Message(message) => ServerEvent::Message(message),
            Inbound::Compressed(payload) => ServerEvent::CompressedMessage(payload),
            // Requests never carry end-of-stream frames (the reader rejects the flags).
            Inbound::EndStream(_) | Inbound::Trailers(_) => return Err(Rule::UnexpectedEndStream),
        };
        *messages += 1;
        self.queues.events.push_back(event);
        Ok(())
    }

    fn request_error(&mut self, rule: Rule) {
        let status = ProtocolError::in_request(rule).to_status();
        self.request = RequestSide::Failed;
        self.fail(status);
    }

    /// Ends the call with an error and tells the application.
    fn fail(&mut self, status: Status) {
        if self.is_request_open() {
            self.request = RequestSide::Failed;
        }
        if !self.is_finished() {
            self.finish_err(status.clone());
        }
        self.queues.events.push_back(ServerEvent::Failed(status));
    }

    /// The application's headers, leaving an empty map (before the head is written).
    fn take_headers(&mut self) -> HeaderMap {
        match &mut self.response {
            ResponseSide::Idle { headers } | ResponseSide::Held { headers, .. } => {
                std::mem::take(headers)
            }
            _ => HeaderMap::new(),
        }
    }

    /// A success head: content type, encodings, the application's headers; room for `extra`
    /// more (trailers the caller adds).
    fn head_parts(&self, headers: &HeaderMap, compressed: bool, extra: usize) -> response::Parts {
        let encoding = self
            .response_compression
            .as_ref()
            .filter(|_| compressed)
            .map(|alg| alg.name());
        let mut head = render::parts(StatusCode::OK);
        head.headers = self
            .heads
            .success(self.content_type, encoding, headers, extra);
        head
    }

    /// Writes the head of an enveloped response; messages follow.
    fn write_head(&mut self) {
        let headers = self.take_headers();
        // An enveloped response names its compression in the head even if a message goes
        // out uncompressed (each envelope says so).
        let head = self.head_parts(&headers, true, 0);
        self.queues.outputs.push(ServerOutput::Head(head));
        self.response = ResponseSide::Streaming { messages: 0 };
    }

    fn finish_ok(&mut self, trailers: HeaderMap) {
        self.outcome.get_or_insert(Ok(()));
        match self.content_type.form {
            WireForm::ConnectUnary => {
                if let ResponseSide::Held {
                    headers,
                    message,
                    compressed,
                } = std::mem::replace(&mut self.response, ResponseSide::Finished)
                {
                    let mut head = self.head_parts(&headers, compressed, trailers.len());
                    prefix_trailers(&trailers, &mut head.headers);
                    self.queues.outputs.push(ServerOutput::Head(head));
                    self.queues.outputs.push(ServerOutput::Data(message));
                    self.queues.outputs.push(ServerOutput::End);
                }
            }
            WireForm::ConnectStreaming => {
                self.ensure_head();
                let end = encode_end_stream(None, &trailers);
                self.end_with_frame(FLAG_END_STREAM, &end);
            }
            WireForm::Grpc => {
                let block = self.heads.grpc_ok(&trailers).into_owned();
                self.end_grpc(block);
            }
            WireForm::GrpcWeb | WireForm::GrpcWebText => {
                let block = encode_trailer_block(&self.heads.grpc_ok(&trailers));
                self.ensure_head();
                self.end_with_frame(FLAG_TRAILERS, &block);
            }
        }
        self.response = ResponseSide::Finished;
    }

    fn finish_err(&mut self, status: Status) {
        self.outcome.get_or_insert(Err(status.code()));
        if matches!(self.response, ResponseSide::Held { .. }) {
            // A held unary message is never sent once the call fails.
            let headers = self.take_headers();
            self.response = ResponseSide::Idle { headers };
        }
        if matches!(self.response, ResponseSide::Idle { .. }) && self.headers_need_their_own_frame()
        {
            // gRPC with response headers: headers, then the status in trailers, so clients
            // keep the two apart (a trailers-only response would merge them).
            self.write_head();
        }
        if let ResponseSide::Idle { headers } = &self.response {
            let rendered = render::error_response(self.content_type, &status, headers);
            let mut head = rendered.head;
            if let Some(value) = self.heads.accept_encoding() {
                head.headers.insert(
                    self.content_type.form.compression_headers().1,
                    value.clone(),
                );
            }
            self.queues.outputs.push(ServerOutput::Head(head));
            if !rendered.body.is_empty() {
                let body = text_encoded_for(rendered.body, self.content_type.form);
                self.queues.outputs.push(ServerOutput::Data(body));
            }
            self.queues.outputs.push(ServerOutput::End);
        } else {
            match self.content_type.form {
                WireForm::ConnectUnary | WireForm::ConnectStreaming => {
                    let end = encode_end_stream(Some(&status), status.metadata());
                    self.end_with_frame(FLAG_END_STREAM, &end);
                }
                WireForm::Grpc => {
                    let mut block = HeaderMap::new();
                    encode_status(Some(&status), &HeaderMap::new(), &mut block);
                    self.queues.outputs.push(ServerOutput::Trailers(block));
                }
                WireForm::GrpcWeb | WireForm::GrpcWebText => {
                    let mut block = HeaderMap::new();
                    encode_status(Some(&status), &HeaderMap::new(), &mut block);
                    self.end_with_frame(FLAG_TRAILERS, &encode_trailer_block(&block));
                }
            }
        }
        self.response = ResponseSide::Finished;
    }

    /// Writes the head if it was not yet (a response that ends without messages).
    fn ensure_head(&mut self) {
        if matches!(self.response, ResponseSide::Idle { .. }) {
            self.write_head();
        }
    }

    /// gRPC: trailers after a streaming response, or a trailers-only response.
    fn end_grpc(&mut self, block: HeaderMap) {
        if matches!(self.response, ResponseSide::Idle { .. }) && self.headers_need_their_own_frame()
        {
            self.write_head();
        }
        if let ResponseSide::Idle { .. } = &self.response {
            let headers = self.take_headers();
            let mut head = self.head_parts(&headers, true, block.len());
            head.headers.extend(block);
            self.queues.outputs.push(ServerOutput::Head(head));
            self.queues.outputs.push(ServerOutput::End);
        } else {
            self.queues.outputs.push(ServerOutput::Trailers(block));
        }
    }

    /// Whether a gRPC or gRPC-Web response must not be trailers-only because the application
    /// set response headers.
    fn headers_need_their_own_frame(&self) -> bool {
        let ResponseSide::Idle { headers } = &self.response else {
            return false;
        };
        self.content_type.protocol() != Protocol::Connect
            && headers
                .keys()
                .any(|name| !crate::internal::metadata::is_protocol_header(name.as_str()))
    }

    /// An end-of-stream frame (never compressed), then the end of the response.
    fn end_with_frame(&mut self, flags: u8, payload: &[u8]) {
        let frame = frame_end(flags, payload, self.content_type.form);
        self.queues.outputs.push(ServerOutput::Data(frame));
        self.queues.outputs.push(ServerOutput::End);
    }
}

// The regression needs a compression algorithm; without one the module would be empty.
#[cfg(all(test, feature = "gzip"))]
mod tests {
    use super::*;
    use crate::code::Code;
    use crate::internal::connect::get::encode_get_query;
    use crate::method::{Idempotency, MethodKind};

    /// Found by fuzzing (`fuzz/regressions/server_ops`): a compressed GET message over the
    /// receive limit failed the call twice, once when fed and again when its end was read.
    #[test]
    fn get_over_the_limit_fails_once() {
        const GET: MethodSpec =
            MethodSpec::new("/s.S/Get", MethodKind::Unary, Idempotency::NoSideEffects);
        let message = crate::compression::Gzip.compress(b"{}").unwrap();
        let query = encode_get_query(Codec::Json, Some("gzip"), &message);
        let (head, ()) = http::Request::get(format!("/s.S/Get?{query}"))
            .body(())
            .unwrap()
            .into_parts();
        let config = ServerConfig::new().max_receive_message_size(0);
        let mut call = ServerCall::accept(&config, Instant::now(), &head, |_| Some(GET)).unwrap();
        let events: Vec<_> = std::iter::from_fn(|| call.poll_event()).collect();
        assert!(
            matches!(&events[..], [ServerEvent::Failed(s)] if s.code() == Code::ResourceExhausted),
            "{events:?}"
        );
        assert!(call.is_finished());
    }
}
