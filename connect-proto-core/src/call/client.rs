//! The client side of one call.
//!
//! Two halves, each a state holding the data it needs:
//!
//! ```text
//!  send                                          receive
//!  ────                                          ───────
//!  start ─┬─ streaming request: Head ─> Open      AwaitingHead{reader} ─head─┬─> Body{reader, trailers-only head, …}
//!         └─ unary request ──────────> Pending       │                         └─> ErrorBody{reader, status}  (Connect unary, non-200)
//!  Pending{uri, headers} ─send_message─> Head, Data, End ─> Closed                │        │
//!  Open ─send_message─> Data;  close_send ─> End ─> Closed                        v        v
//!                                                  Finished <── end-stream / trailers / end of body
//!                                                     ^── deadline, cancel, reset, transport, protocol error (+ Cancel output)
//! ```
//!
//! Streaming-request methods send their head at `start` so a full-duplex server can answer
//! before the first message; unary-request methods send head, body and end together (a
//! `NO_SIDE_EFFECTS` method may use Connect GET). Inputs are `handle_*`; drain
//! [`ClientCall::poll_output`] (what the adapter must send) and [`ClientCall::poll_event`]
//! (what the application receives) after every input.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, request, response};

use crate::call::client_config::{CallOptions, ClientConfig};
use crate::call::inbound::{Direction, Inbound, Reader, decompress_with};
use crate::call::outbound::{Outgoing, frame_outgoing};
use crate::call::output_queue::{Event, EventQueue, OutputQueue, QueuedMessage};
use crate::code::Code;
use crate::codec::{Codec, EncodedMessage};
use crate::compression::{Compression, CompressionRegistry};
use crate::error::{ProtocolError, Rule, UsageError};
use crate::internal::connect::error_json::{decode_end_stream, decode_error_body_or};
use crate::internal::connect::get::encode_get_query;
use crate::internal::connect::split_unary_headers;
use crate::internal::grpc::decode_status;
use crate::internal::grpc_web::decode_trailer_block;
use crate::internal::headers::names::{
    ACCEPT, CONNECT_PROTOCOL_VERSION, CONNECT_TIMEOUT_MS, CONTENT_TYPE, GRPC_STATUS, GRPC_TIMEOUT,
    TE, USER_AGENT, X_GRPC_WEB, X_USER_AGENT,
};
use crate::internal::headers::{CONNECT_PROTOCOL_VERSION_1, TE_TRAILERS};
use crate::internal::metadata::{copy_metadata, metadata_of};
use crate::internal::timeout::{format_connect_timeout, format_grpc_timeout};
use crate::method::MethodSpec;
use crate::protocol::{ContentType, ContentTypeMatch, Protocol, WireForm};
use crate::status::Status;

/// Something the application receives.
#[derive(Debug, PartialEq)]
#[must_use]
#[non_exhaustive]
pub enum ClientEvent {
    /// The response headers (application metadata only). Comes once, before any message.
    Headers(HeaderMap),
    /// A response message (decompressed, encoded with the call's codec).
    Message(Bytes),
    /// A response message still compressed with the call's
    /// [`response_compression`](ClientCall::response_compression): only with
    /// [`set_pass_through`](ClientCall::set_pass_through), for envelopes (or a Connect unary
    /// body) the server compressed. Forward it with
    /// [`ServerCall::send_compressed_message`](crate::ServerCall::send_compressed_message) when
    /// the next hop uses the same compression, or decompress it with
    /// [`ClientCall::decompress_message`].
    CompressedMessage(Bytes),
    /// The call ended: `Ok(trailers)` on success, `Err(status)` on failure (its metadata are
    /// the trailers). Always the last event.
    Finished(Result<HeaderMap, Status>),
}

impl Event for ClientEvent {
    fn into_message(self) -> Result<QueuedMessage, Self> {
        match self {
            ClientEvent::Message(bytes) => Ok(QueuedMessage::Plain(bytes)),
            ClientEvent::CompressedMessage(bytes) => Ok(QueuedMessage::Compressed(bytes)),
            other => Err(other),
        }
    }

    fn from_message(message: QueuedMessage) -> Self {
        match message {
            QueuedMessage::Plain(bytes) => ClientEvent::Message(bytes),
            QueuedMessage::Compressed(bytes) => ClientEvent::CompressedMessage(bytes),
        }
    }
}

/// Something the adapter must do with the HTTP request.
#[derive(Debug)]
#[must_use]
#[non_exhaustive]
pub enum ClientOutput {
    /// Send the request head. Always first.
    Head(request::Parts),
    /// Send a chunk of the request body.
    Data(Bytes),
    /// The request body is complete.
    End,
    /// Abandon the exchange: reset the stream / close the connection, stop reading.
    Cancel,
}

/// The sending half.
#[derive(Debug)]
enum SendSide {
    /// A unary request: nothing sent yet; what its head needs.
    Pending {
        uri: Uri,
        headers: HeaderMap,
        use_get: bool,
    },
    /// A streaming request: the head is sent, the body open.
    Open,
    /// The body is complete (or the call ended before sending).
    Closed,
}

/// The receiving half. Its variants differ in size on purpose: the call lives inline in its
/// owner, and boxing the body state would cost an allocation on every call (pinned by the
/// allocation tests).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
enum ReceiveSide {
    AwaitingHead {
        reader: Reader,
    },
    /// Reading a response body of the call's form.
    Body(Body),
    /// Reading a Connect unary error body (non-200).
    ErrorBody {
        reader: Reader,
        status: StatusCode,
        json: bool,
        trailers: HeaderMap,
    },
    /// Placeholder while a state's data moves to the next state (never seen between calls).
    Moving,
    Finished,
}

/// What reading a response body needs.
#[derive(Debug)]
struct Body {
    reader: Reader,
    /// Messages received so far.
    messages: usize,
    /// Whether any body byte arrived.
    received_bytes: bool,
    /// Connect unary: the trailing metadata carried in `trailer-` headers.
    unary_trailers: HeaderMap,
    /// gRPC: the response head, read as trailers-only if the response ends without a body.
    grpc_head: HeaderMap,
    /// The outcome read from a Connect end-stream message or gRPC-Web trailer frame, reported
    /// when the body ends (nothing may follow it).
    end_outcome: Option<Result<HeaderMap, Status>>,
}

/// One client-side call: application messages in, HTTP request out; HTTP response in,
/// messages and the outcome out. No I/O.
#[derive(Debug)]
pub struct ClientCall {
    content_type: ContentType,
    method: MethodSpec,
    deadline: Option<Instant>,
    send_compression: Option<Arc<dyn Compression>>,
    accept_compression: CompressionRegistry,
    compress_min_bytes: usize,
    send_limit: Option<usize>,
    metadata_limit: usize,
    receive_limit: usize,
    /// The response's message compression, once its head named one.
    response_compression: Option<Arc<dyn Compression>>,
    max_get_url_bytes: usize,
    user_agent: HeaderValue,
    send: SendSide,
    receive: ReceiveSide,
    /// Whether `Headers` was queued (it comes once, first).
    headers_reported: bool,
    /// Headers, messages, the end: two events other than messages at most. The queues hold
    /// their first items inline, which makes them most of a call's size: each is kept in an
    /// allocation of its own so the call, and the state an adapter keeps it in, stay within
    /// the allocator's fast size classes (one block above 1 KiB costs several times a few
    /// small ones with glibc's allocator).
    events: Box<EventQueue<ClientEvent, 2>>,
    outputs: Box<OutputQueue<ClientOutput>>,
}

impl ClientCall {
    /// Starts a call at `now` (which starts its timeout). Streaming-request methods queue
    /// their request head at once (so a full-duplex peer can answer before the first message);
    /// unary-request methods send the head together with their one message. A call whose
    /// deadline passed already fails here, sending nothing.
    pub fn start(
        config: &ClientConfig,
        now: Instant,
        method: &MethodSpec,
        options: CallOptions,
    ) -> Result<Self, UsageError> {
        let protocol = config.protocol;
        let form = match protocol {
            Protocol::Connect if method.kind.is_streaming() => WireForm::ConnectStreaming,
            Protocol::Connect => WireForm::ConnectUnary,
            Protocol::Grpc => WireForm::Grpc,
            Protocol::GrpcWeb if config.grpc_web_text => WireForm::GrpcWebText,
            Protocol::GrpcWeb => WireForm::GrpcWeb,
        };
        let content_type = ContentType::new(form, config.codec);
        let uri = join_uri(&config.base_uri, method)?;
        // A timeout too large for the clock is no deadline at all.
        let from_timeout = options
            .timeout
            .or(config.default_timeout)
            .and_then(|t| now.checked_add(t));
        let deadline = match (from_timeout, options.deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut headers = config.default_headers.clone();
        for (name, value) in &options.headers {
            headers.append(name.clone(), value.clone());
        }
        let receive_limit = options
            .max_receive_message_size
            .unwrap_or(config.max_receive_message_size);
        let mut call = ClientCall {
            content_type,
            method: method.clone(),
            deadline,
            send_compression: options
                .send_compression
                .unwrap_or_else(|| config.send_compression.clone()),
            accept_compression: config.accept_compression.clone(),
            compress_min_bytes: config.compress_min_bytes,
            send_limit: options
                .max_send_message_size
                .or(config.max_send_message_size),
            metadata_limit: config.max_metadata_size,
            receive_limit,
            response_compression: None,
            max_get_url_bytes: config.max_get_url_bytes,
            user_agent: config.user_agent.clone(),
            send: SendSide::Pending {
                uri,
                headers,
                use_get: protocol == Protocol::Connect
                    && method.allows_get()
                    && options.use_get.unwrap_or(config.use_get),
            },
            receive: ReceiveSide::AwaitingHead {
                reader: Reader::new(
                    form,
                    Direction::Response,
                    None,
                    receive_limit,
                    config.max_metadata_size,
                ),
            },
            headers_reported: false,
            // Built in their allocations (`Box::new` would copy each from the stack).
            events: Box::default(),
            outputs: Box::default(),
        };
        if call.deadline.is_some_and(|deadline| now >= deadline) {
            // Out of time before anything was sent (a propagated deadline that already
            // passed): the call fails here, and no request is made.
            call.send = SendSide::Closed;
            call.finish(Err(Status::deadline_exceeded(
                "the call's deadline expired before it started",
            )));
            return Ok(call);
        }
        if method.kind.streams_requests() {
            if let SendSide::Pending { uri, headers, .. } =
                std::mem::replace(&mut call.send, SendSide::Open)
            {
                let compressed = call.send_compression.is_some();
                let head = call.request_head(now, Method::POST, uri, &headers, compressed);
                call.outputs.push(ClientOutput::Head(head));
            }
        }
        Ok(call)
    }

    /// The protocol of the call.
    pub fn protocol(&self) -> Protocol {
        self.content_type.protocol()
    }

    /// The content type of the request (and the expected response).
    pub fn content_type(&self) -> ContentType {
        self.content_type
    }

    /// The codec of the call.
    pub fn codec(&self) -> Codec {
        self.content_type.codec
    }

    /// The method being called.
    pub fn method(&self) -> &MethodSpec {
        &self.method
    }

    /// The call's deadline, if it has one.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The compression of request messages (`None` for identity).
    pub fn send_compression(&self) -> Option<&'static str> {
        self.send_compression.as_ref().map(|c| c.name())
    }

    /// The compression of response messages, once the response head named one (`None` for
    /// identity, or before the head).
    pub fn response_compression(&self) -> Option<&'static str> {
        self.response_compression.as_ref().map(|c| c.name())
    }

    /// Delivers compressed response messages still compressed, as
    /// [`ClientEvent::CompressedMessage`], for proxies that forward without recompressing
    /// (uncompressed ones remain [`ClientEvent::Message`]; error bodies and end-of-stream
    /// frames are always read). Set it before feeding the body.
    pub fn set_pass_through(&mut self, pass_through: bool) {
        match &mut self.receive {
            ReceiveSide::AwaitingHead { reader } => reader.set_pass_through(pass_through),
            ReceiveSide::Body(body) => body.reader.set_pass_through(pass_through),
            _ => {}
        }
    }

    /// Decompresses a [`ClientEvent::CompressedMessage`] payload with the response
    /// compression, bounded by the receive limit: for a pass-through caller that needs the
    /// plain message after all (the next hop uses another compression).
    pub fn decompress_message(&self, payload: Bytes) -> Result<Bytes, ProtocolError> {
        decompress_with(
            self.response_compression.as_ref(),
            payload,
            self.receive_limit,
        )
        .map_err(ProtocolError::in_response)
    }

    /// Whether the outcome is known ([`ClientEvent::Finished`] was queued).
    pub fn is_finished(&self) -> bool {
        matches!(self.receive, ReceiveSide::Finished)
    }

    /// Whether the request body is complete.
    pub fn is_send_closed(&self) -> bool {
        matches!(self.send, SendSide::Closed)
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_finished() {
            None
        } else {
            self.deadline
        }
    }

    /// Sends one request message (encoded with the call's codec). For unary-request methods
    /// this also sends the head — its timeout header carrying the time left at `now` — and
    /// ends the request body.
    ///
    /// `message` is [`Bytes`] or an [`EncodedMessage`] from [`Codec::encode_message`] (which
    /// frames without copying).
    pub fn send_message(
        &mut self,
        now: Instant,
        message: impl Into<EncodedMessage>,
    ) -> Result<(), UsageError> {
        self.send(now, Outgoing::Encoded(message.into()))
    }

    /// Sends one request message that is already compressed with the call's send
    /// compression ([`CallOptions::send_compression`]): a proxy forwarding a payload it
    /// received compressed with the same algorithm (see [`ClientEvent::CompressedMessage`]).
    /// The send limit applies to the compressed size. Without a send compression this is a
    /// [`UsageError::Compression`].
    pub fn send_compressed_message(
        &mut self,
        now: Instant,
        payload: Bytes,
    ) -> Result<(), UsageError> {
        self.send(now, Outgoing::Compressed(payload))
    }

    fn send(&mut self, now: Instant, message: Outgoing) -> Result<(), UsageError> {
        if self.is_finished() {
            return Err(UsageError::AlreadyFinished);
        }
        match &self.send {
            SendSide::Closed if self.method.kind.streams_requests() => {
                return Err(UsageError::SendClosed);
            }
            SendSide::Closed => return Err(UsageError::SecondUnaryMessage),
            SendSide::Pending { .. } if self.deadline.is_some_and(|d| now >= d) => {
                // The head is not written yet and there is no time left to put in it.
                self.handle_timeout(now);
                return Err(UsageError::AlreadyFinished);
            }
            _ => {}
        }
        if let Some(limit) = self.send_limit {
            if message.len() > limit {
                return Err(UsageError::MessageTooLarge {
                    size: message.len(),
                    limit,
                });
            }
        }
        let SendSide::Pending {
            uri,
            headers,
            use_get,
        } = std::mem::replace(&mut self.send, SendSide::Closed)
        else {
            // A streaming request: one more envelope.
            self.send = SendSide::Open;
            let (framed, _) = self.frame(message)?;
            self.outputs.push(ClientOutput::Data(framed));
            return Ok(());
        };
        if use_get {
            let (payload, compressed) = match (&message, &self.send_compression) {
                (Outgoing::Compressed(payload), Some(alg)) => (payload.clone(), Some(alg.name())),
                (Outgoing::Compressed(_), None) => {
                    return Err(UsageError::Compression(
                        "a compressed message needs a send compression".to_owned(),
                    ));
                }
                (Outgoing::Encoded(message), Some(alg))
                    if message.len() >= self.compress_min_bytes
                        && (self.compress_min_bytes == 0 || !message.is_empty()) =>
                {
                    let compressed = alg
                        .compress(message.as_bytes())
                        .map_err(|e| UsageError::Compression(e.to_string()))?;
                    (compressed, Some(alg.name()))
                }
                (Outgoing::Encoded(message), _) => {
                    (Bytes::copy_from_slice(message.as_bytes()), None)
                }
            };
            let query = encode_get_query(self.content_type.codec, compressed, &payload);
            let get_uri = with_query(&uri, &query)?;
            if get_uri.to_string().len() <= self.max_get_url_bytes {
                let head = self.request_head(now, Method::GET, get_uri, &headers, false);
                self.outputs.push(ClientOutput::Head(head));
                self.outputs.push(ClientOutput::End);
                return Ok(());
            }
        }
        let (framed, compressed) = self.frame(message)?;
        let head = self.request_head(now, Method::POST, uri, &headers, compressed);
        self.outputs.push(ClientOutput::Head(head));
        self.outputs.push(ClientOutput::Data(framed));
        self.outputs.push(ClientOutput::End);
        Ok(())
    }

    /// Ends the request stream (streaming-request methods). Unary-request methods must send
    /// their message instead.
    pub fn close_send(&mut self) -> Result<(), UsageError> {
        match self.send {
            SendSide::Closed => Ok(()),
            SendSide::Pending { .. } => Err(UsageError::MissingUnaryMessage),
            SendSide::Open => {
                self.send = SendSide::Closed;
                if !self.is_finished() {
                    self.outputs.push(ClientOutput::End);
                }
                Ok(())
            }
        }
    }

    /// Cancels the call: the outcome becomes `canceled` and the exchange is abandoned.
    pub fn cancel(&mut self) {
        if !self.is_finished() {
            self.abort(Status::canceled("the call was cancelled"));
        }
    }

    /// Time passed: if the deadline expired, the call fails with `deadline_exceeded`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if !self.is_finished() && self.deadline.is_some_and(|d| now >= d) {
            self.abort(Status::deadline_exceeded("the call's deadline expired"));
        }
    }

    /// The response head arrived.
    pub fn handle_response_head(&mut self, head: response::Parts) {
        let reader = match std::mem::replace(&mut self.receive, ReceiveSide::Moving) {
            ReceiveSide::AwaitingHead { reader } => reader,
            other => {
                self.receive = other;
                return;
            }
        };
        match self.content_type.form {
            WireForm::ConnectUnary => self.connect_unary_head(head, reader),
            WireForm::ConnectStreaming => self.connect_streaming_head(head, reader),
            WireForm::Grpc | WireForm::GrpcWeb | WireForm::GrpcWebText => {
                self.grpc_head(head, reader)
            }
        }
    }

    /// A chunk of the response body arrived.
    pub fn handle_data(&mut self, chunk: Bytes) {
        let reader = match &mut self.receive {
            ReceiveSide::Body(body) => {
                body.received_bytes |= !chunk.is_empty();
                &mut body.reader
            }
            ReceiveSide::ErrorBody { reader, .. } => reader,
            ReceiveSide::AwaitingHead { .. } | ReceiveSide::Moving => {
                return self.protocol_error(Rule::InvalidHeader(
                    "body data before the response head".into(),
                ));
            }
            ReceiveSide::Finished => return,
        };
        let read = match reader.push(chunk) {
            Ok(()) => self.read_items(),
            Err(rule) => Err(rule),
        };
        if let Err(rule) = read {
            self.protocol_error(rule);
        }
    }

    /// The response trailers arrived (gRPC; tolerated from gRPC-Web servers).
    pub fn handle_trailers(&mut self, trailers: HeaderMap) {
        let ReceiveSide::Body(body) = &self.receive else {
            return;
        };
        // A gRPC-Web trailer frame in the body wins over HTTP trailers; Connect ignores them.
        if self.content_type.protocol() == Protocol::Connect || body.end_outcome.is_some() {
            return;
        }
        // Trailers end the body, which must end on an envelope boundary.
        if self.finish_body() {
            self.finish_with_trailers(&trailers);
        }
    }

    /// The response body ended (after trailers, if any).
    pub fn handle_end(&mut self) {
        match &self.receive {
            ReceiveSide::Finished => {}
            ReceiveSide::AwaitingHead { .. } | ReceiveSide::Moving => self.protocol_error(
                Rule::InvalidHeader("the response ended before its head".into()),
            ),
            ReceiveSide::ErrorBody { .. } => {
                let ReceiveSide::ErrorBody {
                    mut reader,
                    status,
                    json,
                    trailers,
                } = std::mem::replace(&mut self.receive, ReceiveSide::Moving)
                else {
                    return;
                };
                let body = reader.take_raw();
                let error = json
                    .then(|| decode_unary_error(&reader, body, status))
                    .flatten()
                    .unwrap_or_else(|| {
                        let rule = Rule::UnexpectedHttpStatus(status.as_u16());
                        ProtocolError::in_response(rule).to_status()
                    });
                self.finish(Err(error.with_metadata(trailers)));
            }
            ReceiveSide::Body(_) => {
                if !self.finish_body() {
                    return;
                }
                let ReceiveSide::Body(body) = &mut self.receive else {
                    return;
                };
                let outcome = body.end_outcome.take();
                let unary_trailers = std::mem::take(&mut body.unary_trailers);
                let trailers_only =
                    (!body.received_bytes).then(|| std::mem::take(&mut body.grpc_head));
                match (outcome, self.content_type.form) {
                    (Some(Ok(trailers)), _) => self.finish_success(trailers),
                    (Some(Err(error)), _) => self.finish(Err(error)),
                    (None, WireForm::ConnectUnary) => self.finish_success(unary_trailers),
                    // Trailers-only: the head was the whole response.
                    (None, WireForm::Grpc | WireForm::GrpcWeb | WireForm::GrpcWebText)
                        if trailers_only.is_some() =>
                    {
                        let head = trailers_only.unwrap_or_default();
                        self.finish_with_trailers(&head);
                    }
                    (None, _) => self.protocol_error(Rule::MissingEndStream),
                }
            }
        }
    }

    /// The server reset the stream (`h2_error_code` is the HTTP/2 error code, when known). A
    /// `CANCEL` reset once the call's deadline has passed (at `now`) is `deadline_exceeded`:
    /// servers cancel streams whose deadline expired.
    pub fn handle_reset(&mut self, now: Instant, h2_error_code: Option<u32>) {
        if self.is_finished() {
            return;
        }
        const CANCEL: u32 = 0x8;
        if h2_error_code == Some(CANCEL) && self.deadline.is_some_and(|d| now >= d) {
            return self.finish(Err(Status::deadline_exceeded(
                "the call's deadline expired (the server cancelled the stream)",
            )));
        }
        let rule = Rule::Reset {
            code: h2_error_code,
        };
        self.finish(Err(ProtocolError::in_response(rule).to_status()));
    }

    /// The transport failed (connection refused, closed, TLS error…): `unavailable`.
    pub fn handle_transport_error(&mut self, message: &str) {
        if !self.is_finished() {
            let rule = Rule::Transport(message.to_owned());
            self.finish(Err(ProtocolError::in_response(rule).to_status()));
        }
    }

    /// Next output for the adapter.
    pub fn poll_output(&mut self) -> Option<ClientOutput> {
        self.outputs.pop()
    }

    /// Body bytes queued for the adapter but not yet taken with `poll_output` (after
    /// compression and framing): what back-pressure should be measured in.
    pub fn buffered_output_bytes(&self) -> usize {
        self.outputs.data_bytes()
    }

    /// Next event for the application.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// The next event if it is a (decompressed) response message: its bytes, as
    /// [`poll_event`](Self::poll_event) would return them in [`ClientEvent::Message`]. `None`
    /// when no event is queued or the next one is anything else (the headers, a message left
    /// compressed, the outcome), which `poll_event` then returns; the order of events is the
    /// same whichever of the two takes them. A receive loop moves a message as its 32-byte
    /// handle this way, not as the event enum (sized by its header maps).
    pub fn poll_message(&mut self) -> Option<Bytes> {
        self.events.pop_plain_message()
    }

    fn frame(&self, message: Outgoing) -> Result<(Bytes, bool), UsageError> {
        frame_outgoing(
            message,
            self.content_type.form,
            self.send_compression.as_ref(),
            self.compress_min_bytes,
        )
    }

    /// The request head. The timeout header carries the time left at `now`, so a call started
    /// late (or re-sent) never announces more time than it has.
    fn request_head(
        &self,
        now: Instant,
        method: Method,
        uri: Uri,
        headers: &HeaderMap,
        compressed: bool,
    ) -> request::Parts {
        let timeout = self
            .deadline
            .map(|deadline| deadline.saturating_duration_since(now));
        let (mut head, ()) = http::Request::new(()).into_parts();
        let post = method == Method::POST;
        head.method = method;
        head.uri = uri;
        let h = &mut head.headers;
        copy_metadata(headers, h);
        if post {
            h.insert(CONTENT_TYPE, self.content_type.header_value());
        }
        let (encoding_header, accept_header) = self.content_type.form.compression_headers();
        if let Some(alg) = self.send_compression.as_ref().filter(|_| compressed) {
            h.insert(encoding_header, HeaderValue::from_static(alg.name()));
        }
        if let Some(accept) = self.accept_compression.accept_encoding() {
            h.insert(accept_header, accept.clone());
        }
        match self.content_type.protocol() {
            Protocol::Connect => {
                h.insert(USER_AGENT, self.user_agent.clone());
                if post {
                    h.insert(
                        CONNECT_PROTOCOL_VERSION,
                        HeaderValue::from_static(CONNECT_PROTOCOL_VERSION_1),
                    );
                }
                if let Some(timeout) = timeout {
                    insert_str(h, CONNECT_TIMEOUT_MS, &format_connect_timeout(timeout));
                }
            }
            Protocol::Grpc => {
                h.insert(TE, HeaderValue::from_static(TE_TRAILERS));
                h.insert(USER_AGENT, self.user_agent.clone());
                if let Some(timeout) = timeout {
                    insert_str(h, GRPC_TIMEOUT, &format_grpc_timeout(timeout));
                }
            }
            Protocol::GrpcWeb => {
                h.insert(X_GRPC_WEB, HeaderValue::from_static("1"));
                if self.content_type.form == WireForm::GrpcWebText {
                    // Asks for a text response too, as grpc-web's own client does (servers
                    // such as tonic-web choose the response form from `accept`).
                    h.insert(ACCEPT, self.content_type.header_value());
                }
                h.insert(X_USER_AGENT, self.user_agent.clone());
                if let Some(timeout) = timeout {
                    insert_str(h, GRPC_TIMEOUT, &format_grpc_timeout(timeout));
                }
            }
        }
        head
    }

    /// Reads the response's message compression into the reader.
    fn resolve_encoding(
        &mut self,
        head: &response::Parts,
        reader: &mut Reader,
    ) -> Result<(), Rule> {
        let header = self.content_type.form.compression_headers().0;
        let name = head.headers.get(header).and_then(|v| v.to_str().ok());
        let alg = self
            .accept_compression
            .resolve(name)
            .map_err(|name| Rule::UnsupportedCompression(format!("{name:?}")))?;
        self.response_compression.clone_from(&alg);
        reader.set_compression(alg);
        Ok(())
    }

    fn start_body(&mut self, reader: Reader, unary_trailers: HeaderMap, grpc_head: HeaderMap) {
        self.receive = ReceiveSide::Body(Body {
            reader,
            messages: 0,
            received_bytes: false,
            unary_trailers,
            grpc_head,
            end_outcome: None,
        });
    }

    fn connect_unary_head(&mut self, head: response::Parts, mut reader: Reader) {
        let (leading, trailing) = split_unary_headers(&head.headers);
        let content_type = content_type_of(&head);
        if head.status != StatusCode::OK {
            let json = matches!(ContentType::parse(content_type), ContentTypeMatch::Supported(ct)
                if ct == ContentType::connect_unary(Codec::Json));
            // An unsupported encoding leaves the error body unreadable; the HTTP status still
            // tells the code.
            let json = json && self.resolve_encoding(&head, &mut reader).is_ok();
            self.report_headers(leading);
            self.receive = ReceiveSide::ErrorBody {
                reader,
                status: head.status,
                json,
                trailers: trailing,
            };
            return;
        }
        if ContentType::parse(content_type) != ContentTypeMatch::Supported(self.content_type) {
            return self.unexpected_content_type(head.status, content_type);
        }
        if let Err(rule) = self.resolve_encoding(&head, &mut reader) {
            return self.protocol_error(rule);
        }
        self.report_headers(leading);
        self.start_body(reader, trailing, HeaderMap::new());
    }

    fn connect_streaming_head(&mut self, head: response::Parts, mut reader: Reader) {
        if head.status != StatusCode::OK {
            let rule = Rule::UnexpectedHttpStatus(head.status.as_u16());
            let error = ProtocolError::in_response(rule).to_status();
            return self.finish(Err(error.with_metadata(metadata_of(&head.headers))));
        }
        let content_type = content_type_of(&head);
        if ContentType::parse(content_type) != ContentTypeMatch::Supported(self.content_type) {
            return self.unexpected_content_type(head.status, content_type);
        }
        if let Err(rule) = self.resolve_encoding(&head, &mut reader) {
            return self.protocol_error(rule);
        }
        self.report_headers(metadata_of(&head.headers));
        self.start_body(reader, HeaderMap::new(), HeaderMap::new());
    }

    fn grpc_head(&mut self, head: response::Parts, mut reader: Reader) {
        let has_status = head.headers.contains_key(GRPC_STATUS);
        if head.status != StatusCode::OK && has_status {
            // A status in the head wins over the HTTP status (http-grpc-status-mapping.md).
            self.report_headers(HeaderMap::new());
            self.start_body(reader, HeaderMap::new(), HeaderMap::new());
            return self.finish_with_trailers(&head.headers);
        }
        if head.status != StatusCode::OK {
            let rule = Rule::UnexpectedHttpStatus(head.status.as_u16());
            let error = ProtocolError::in_response(rule).to_status();
            return self.finish(Err(error.with_metadata(metadata_of(&head.headers))));
        }
        let content_type = content_type_of(&head);
        // A gRPC-Web call reads either gRPC-Web form (binary or base64 text) of its codec:
        // servers choose the response form themselves (tonic-web from `accept`, others from
        // the request's content type).
        let response_form = match ContentType::parse(content_type) {
            ContentTypeMatch::Supported(ct) if ct == self.content_type => Some(ct.form),
            ContentTypeMatch::Supported(ct)
                if ct.codec == self.content_type.codec
                    && is_grpc_web(ct.form)
                    && is_grpc_web(self.content_type.form) =>
            {
                Some(ct.form)
            }
            _ => None,
        };
        let matches = response_form.is_some();
        if let Some(form) = response_form.filter(|form| *form != self.content_type.form) {
            reader.set_grpc_web_form(form);
        }
        if has_status && !matches {
            // Trailers-only with a body we could not read anyway: the head is the response.
            self.report_headers(HeaderMap::new());
            self.start_body(reader, HeaderMap::new(), HeaderMap::new());
            return self.finish_with_trailers(&head.headers);
        }
        if !matches {
            return self.unexpected_content_type(head.status, content_type);
        }
        if let Err(rule) = self.resolve_encoding(&head, &mut reader) {
            return self.protocol_error(rule);
        }
        // A head carrying `grpc-status` is trailers-only only if no body follows: its metadata
        // are trailers then. The decision waits for the end of the response.
        let leading = if has_status {
            HeaderMap::new()
        } else {
            metadata_of(&head.headers)
        };
        self.report_headers(leading);
        self.start_body(reader, HeaderMap::new(), head.headers);
    }

    /// Checks that the body ended on a frame boundary and reads what its end completes.
    /// Returns `false` if the call is finished (by a protocol error or the items read).
    fn finish_body(&mut self) -> bool {
        let ReceiveSide::Body(body) = &mut self.receive else {
            return false;
        };
        let last = match body.reader.finish() {
            Ok(Some(item)) => self.take_item(item),
            Ok(None) => Ok(()),
            Err(rule) => Err(rule),
        };
        if let Err(rule) = last {
            self.protocol_error(rule);
        }
        !self.is_finished()
    }

    /// A `200` response whose content type is wrong. Of the call's protocol (another codec or
    /// form), it is a broken RPC response: `internal`. Of no RPC protocol at all, it is not an
    /// RPC response, and like a non-200 response without an RPC status its code comes from the
    /// HTTP status (`unknown` for `200`).
    fn unexpected_content_type(&mut self, status: StatusCode, content_type: &str) {
        let protocol = match ContentType::parse(content_type) {
            ContentTypeMatch::Supported(ct) => Some(ct.protocol()),
            ContentTypeMatch::UnsupportedCodec { form } => Some(form.protocol()),
            ContentTypeMatch::Unrecognized => None,
        };
        let rule = if protocol == Some(self.content_type.protocol()) {
            Rule::UnexpectedContentType(content_type.to_owned())
        } else {
            Rule::NotRpcResponse {
                status: status.as_u16(),
                content_type: content_type.to_owned(),
            }
        };
        self.protocol_error(rule);
    }

    /// Reads every item the buffered response body completes, each straight from the reader
    /// into the call's state; the first rule broken stops reading. (An error body is read
    /// whole at its end.)
    fn read_items(&mut self) -> Result<(), Rule> {
        loop {
            let ReceiveSide::Body(body) = &mut self.receive else {
                return Ok(());
            };
            match body.reader.next_item()? {
                // A stream's message, the common item, is queued here: handed on by value it
                // would be copied once more.
                Some(Inbound::Message(message)) if self.method.kind.streams_responses() => {
                    body.messages += 1;
                    self.events.push_message(QueuedMessage::Plain(message));
                }
                Some(item) => self.take_item(item)?,
                None => return Ok(()),
            }
        }
    }

    /// Takes an item read from the response body: a message becomes an event, an
    /// end-of-stream frame the outcome the body's end reports.
    fn take_item(&mut self, item: Inbound) -> Result<(), Rule> {
        let ReceiveSide::Body(body) = &mut self.receive else {
            return Ok(());
        };
        let metadata_limit = self.metadata_limit;
        match item {
            Inbound::Message(_) | Inbound::Compressed(_)
                if body.messages > 0 && !self.method.kind.streams_responses() =>
            {
                return Err(Rule::ExtraMessage);
            }
            Inbound::Message(message) => {
                body.messages += 1;
                self.events.push_message(QueuedMessage::Plain(message));
            }
            Inbound::Compressed(payload) => {
                body.messages += 1;
                self.events.push_message(QueuedMessage::Compressed(payload));
            }
            Inbound::EndStream(json) => {
                let end = decode_end_stream(&json, metadata_limit)?;
                body.end_outcome = Some(match end.error {
                    Some(error) => Err(error),
                    None => Ok(end.trailers),
                });
            }
            Inbound::Trailers(block) => {
                let trailers = decode_trailer_block(&block, metadata_limit)?;
                body.end_outcome = Some(match decode_status(&trailers)? {
                    None => Ok(metadata_of(&trailers)),
                    Some(error) => Err(error),
                });
            }
        }
        Ok(())
    }

    fn finish_with_trailers(&mut self, trailers: &HeaderMap) {
        match decode_status(trailers) {
            Ok(None) => self.finish_success(metadata_of(trailers)),
            Ok(Some(error)) => self.finish(Err(error)),
            Err(rule) => self.protocol_error(rule),
        }
    }

    fn finish_success(&mut self, trailers: HeaderMap) {
        let messages = match &self.receive {
            ReceiveSide::Body(body) => body.messages,
            _ => 0,
        };
        if !self.method.kind.streams_responses() && messages == 0 {
            return self.protocol_error(Rule::MissingMessage);
        }
        self.finish(Ok(trailers));
    }

    fn protocol_error(&mut self, rule: Rule) {
        self.abort(ProtocolError::in_response(rule).to_status());
    }

    /// Fails the call and abandons the exchange.
    fn abort(&mut self, status: Status) {
        self.finish(Err(status));
        self.outputs.clear();
        self.outputs.push(ClientOutput::Cancel);
    }

    fn finish(&mut self, outcome: Result<HeaderMap, Status>) {
        if self.is_finished() {
            return;
        }
        self.report_headers(HeaderMap::new());
        self.receive = ReceiveSide::Finished;
        self.events.push_back(ClientEvent::Finished(outcome));
    }

    /// Queues the `Headers` event, once (a call that ends before its head reports empty
    /// headers, so `Headers` always comes first).
    fn report_headers(&mut self, headers: HeaderMap) {
        if !std::mem::replace(&mut self.headers_reported, true) {
            self.events.push_back(ClientEvent::Headers(headers));
        }
    }
}

/// Whether `form` is one of gRPC-Web's (binary or text).
fn is_grpc_web(form: WireForm) -> bool {
    matches!(form, WireForm::GrpcWeb | WireForm::GrpcWebText)
}

/// The content type of a response head (`""` when absent or not text).
fn content_type_of(head: &response::Parts) -> &str {
    head.headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// A Connect unary error body, decompressed with the response's encoding; `None` if it is
/// not a usable error (the HTTP status then tells the code).
fn decode_unary_error(reader: &Reader, body: Bytes, status: StatusCode) -> Option<Status> {
    let plain = reader.decompress(body).ok()?;
    let fallback = Code::from_http_status(status).unwrap_or(Code::Unknown);
    decode_error_body_or(&plain, fallback).ok()
}

fn insert_str(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

/// `base` (scheme, authority, path prefix) joined with a method path.
fn join_uri(base: &Uri, method: &MethodSpec) -> Result<Uri, UsageError> {
    let method_path = &method.path;
    let prefix = base.path().trim_end_matches('/');
    if let (true, Cow::Borrowed(path)) = (prefix.is_empty(), method_path) {
        // The usual case (no path prefix, a generated method): the static method path is used
        // as it is, not copied.
        let path = PathAndQuery::from_maybe_shared(Bytes::from_static(path.as_bytes()))
            .map_err(|e| UsageError::InvalidRequest(e.to_string()))?;
        return with_path_and_query(base, path);
    }
    replace_path_and_query(base, format!("{prefix}{method_path}"))
}

/// `uri` with `query` appended to its path.
fn with_query(uri: &Uri, query: &str) -> Result<Uri, UsageError> {
    replace_path_and_query(uri, format!("{}?{query}", uri.path()))
}

fn replace_path_and_query(uri: &Uri, path_and_query: String) -> Result<Uri, UsageError> {
    let path = PathAndQuery::try_from(path_and_query)
        .map_err(|e| UsageError::InvalidRequest(e.to_string()))?;
    with_path_and_query(uri, path)
}

fn with_path_and_query(uri: &Uri, path_and_query: PathAndQuery) -> Result<Uri, UsageError> {
    let mut builder = Uri::builder().path_and_query(path_and_query);
    if let Some(scheme) = uri.scheme() {
        builder = builder.scheme(scheme.clone());
    }
    if let Some(authority) = uri.authority() {
        builder = builder.authority(authority.clone());
    }
    builder
        .build()
        .map_err(|e| UsageError::InvalidRequest(e.to_string()))
}
