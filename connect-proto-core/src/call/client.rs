//! The client side of one call.
//!
//! ```text
//!  request side                               response side
//!  ────────────                               ─────────────
//!  start ─┬─ streaming requests: Head ──┐     AwaitingHead ──handle_response_head──> Body
//!         └─ unary requests: (nothing)  │        │  (trailers-only, HTTP error)          │
//!  send_message ── Head? Data (End) ────┤        v                                       v
//!  close_send ──── End ─────────────────┘     Finished <── end-stream / trailers / end ──┘
//!                                               ^── deadline, cancel, reset, protocol error (+ Cancel output)
//! ```
//!
//! Inputs are `handle_*`; drain [`ClientCall::poll_output`] (what the adapter must send) and
//! [`ClientCall::poll_event`] (what the application receives) after every input.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, request, response};

use crate::call::client_config::{CallOptions, ClientConfig};
use crate::call::inbound::{Framing, Inbound, Reader, frame_message};
use crate::call::output_queue::{OutputQueue, SmallQueue};
use crate::code::Code;
use crate::codec::{Codec, EncodedMessage};
use crate::compression::{Compression, CompressionRegistry};
use crate::connect::error_json::{decode_end_stream, decode_error_body_or};
use crate::connect::get::encode_get_query;
use crate::connect::split_unary_headers;
use crate::error::{ProtocolError, Rule, UsageError};
use crate::grpc::decode_status;
use crate::grpc_web::decode_trailer_block;
use crate::metadata::{copy_metadata, metadata_of};
use crate::method::MethodSpec;
use crate::protocol::headers::{CONNECT_PROTOCOL_VERSION_1, TE_TRAILERS};
use crate::protocol::names::{
    ACCEPT_ENCODING, CONNECT_ACCEPT_ENCODING, CONNECT_CONTENT_ENCODING, CONNECT_PROTOCOL_VERSION,
    CONNECT_TIMEOUT_MS, CONTENT_ENCODING, CONTENT_TYPE, GRPC_ACCEPT_ENCODING, GRPC_ENCODING,
    GRPC_STATUS, GRPC_TIMEOUT, TE, USER_AGENT, X_USER_AGENT,
};
use crate::protocol::{ContentType, ContentTypeMatch, Protocol};
use crate::status::Status;
use crate::timeout::{format_connect_timeout, format_grpc_timeout};

/// `x-grpc-web`, sent by gRPC-Web clients.
const X_GRPC_WEB: &str = "x-grpc-web";

/// Something the application receives.
#[derive(Debug, PartialEq)]
#[must_use]
pub enum ClientEvent {
    /// The response headers (application metadata only). Comes once, before any message.
    Headers(HeaderMap),
    /// A response message (decompressed, encoded with the call's codec).
    Message(Bytes),
    /// The call ended: `Ok(trailers)` on success, `Err(status)` on failure (its metadata are
    /// the trailers). Always the last event.
    Finished(Result<HeaderMap, Status>),
}

/// Something the adapter must do with the HTTP request.
#[derive(Debug)]
#[must_use]
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SendState {
    /// Nothing sent yet (unary requests send their head with the message).
    Idle,
    /// Head sent, body open.
    Open,
    /// Body complete.
    Closed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReceiveState {
    AwaitingHead,
    /// Reading a normal response body.
    Body,
    /// Reading a Connect unary error body (non-200).
    ErrorBody {
        status: StatusCode,
        json: bool,
    },
    Finished,
}

/// One client-side call: application messages in, HTTP request out; HTTP response in,
/// messages and the outcome out. No I/O.
#[derive(Debug)]
pub struct ClientCall {
    content_type: ContentType,
    method: MethodSpec,
    uri: Uri,
    deadline: Option<Instant>,
    send_compression: Option<Arc<dyn Compression>>,
    accept_compression: CompressionRegistry,
    compress_min_bytes: usize,
    send_limit: Option<usize>,
    metadata_limit: usize,
    use_get: bool,
    max_get_url_bytes: usize,
    headers: HeaderMap,
    user_agent: HeaderValue,
    send: SendState,
    sent_messages: usize,
    receive: ReceiveState,
    reader: Reader,
    received_messages: usize,
    /// Trailing metadata carried in Connect unary response headers.
    unary_trailers: HeaderMap,
    /// gRPC response head, read as trailers-only if the response ends without a body.
    grpc_head: HeaderMap,
    /// Whether any response body byte arrived.
    body_received: bool,
    /// The outcome read from a Connect end-stream message or gRPC-Web trailer frame, reported
    /// when the body ends (nothing may follow it).
    end_outcome: Option<Result<HeaderMap, Status>>,
    events: SmallQueue<ClientEvent>,
    outputs: OutputQueue<ClientOutput>,
    scratch: SmallQueue<Inbound>,
}

impl ClientCall {
    /// Starts a call. Streaming-request methods queue their request head at once (so a
    /// full-duplex peer can answer before the first message); unary-request methods send the
    /// head together with their one message.
    pub fn start(
        config: &ClientConfig,
        now: Instant,
        method: &MethodSpec,
        options: CallOptions,
    ) -> Result<Self, UsageError> {
        let protocol = config.protocol;
        let codec = config.codec;
        let content_type = match protocol {
            Protocol::Connect if method.kind.is_streaming() => {
                ContentType::connect_streaming(codec)
            }
            Protocol::Connect => ContentType::connect_unary(codec),
            Protocol::Grpc => ContentType::grpc(codec),
            Protocol::GrpcWeb if config.grpc_web_text => ContentType::grpc_web_text(codec),
            Protocol::GrpcWeb => ContentType::grpc_web(codec),
        };
        let uri = join_uri(&config.base_uri, method.path)?;
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
        let framing = if content_type.streaming {
            Framing::Enveloped
        } else {
            Framing::Bare
        };
        let mut call = ClientCall {
            content_type,
            method: *method,
            uri,
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
            use_get: protocol == Protocol::Connect
                && method.allows_get()
                && options.use_get.unwrap_or(config.use_get),
            max_get_url_bytes: config.max_get_url_bytes,
            headers,
            user_agent: config.user_agent.clone(),
            send: SendState::Idle,
            sent_messages: 0,
            receive: ReceiveState::AwaitingHead,
            reader: Reader::new(
                protocol,
                framing,
                true,
                content_type.text,
                None,
                receive_limit,
            ),
            received_messages: 0,
            unary_trailers: HeaderMap::new(),
            grpc_head: HeaderMap::new(),
            body_received: false,
            end_outcome: None,
            events: SmallQueue::new(),
            outputs: OutputQueue::new(),
            scratch: SmallQueue::new(),
        };
        if call.deadline.is_some_and(|deadline| now >= deadline) {
            // Out of time before anything was sent (a propagated deadline that already
            // passed): the call fails here, and no request is made.
            call.abort(Status::new(
                Code::DeadlineExceeded,
                "the call's deadline expired before it started",
            ));
            call.outputs.clear();
            call.send = SendState::Closed;
            return Ok(call);
        }
        if method.kind.streams_requests() {
            let uri = std::mem::take(&mut call.uri);
            let head = call.request_head(now, Method::POST, uri, call.send_compression.is_some());
            call.outputs.push(ClientOutput::Head(head));
            call.send = SendState::Open;
        }
        Ok(call)
    }

    /// The protocol of the call.
    pub fn protocol(&self) -> Protocol {
        self.content_type.protocol
    }

    /// The codec of the call.
    pub fn codec(&self) -> Codec {
        self.content_type.codec
    }

    /// The method being called.
    pub fn method(&self) -> &MethodSpec {
        &self.method
    }

    /// The call's deadline, if it has a timeout.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Whether the outcome is known ([`ClientEvent::Finished`] was queued).
    pub fn is_finished(&self) -> bool {
        self.receive == ReceiveState::Finished
    }

    /// Whether the request body is complete.
    pub fn is_send_closed(&self) -> bool {
        self.send == SendState::Closed
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
    /// this also sends the head and ends the request body.
    ///
    /// `message` is [`Bytes`] or an [`EncodedMessage`] from [`Codec::encode_message`] (which
    /// frames without copying).
    pub fn send_message(
        &mut self,
        now: Instant,
        message: impl Into<EncodedMessage>,
    ) -> Result<(), UsageError> {
        let message = message.into();
        if self.is_finished() {
            return Err(UsageError::AlreadyFinished);
        }
        if self.send == SendState::Idle && self.deadline.is_some_and(|deadline| now >= deadline) {
            // The head is not written yet and there is no time left to put in it.
            self.handle_timeout(now);
            return Err(UsageError::AlreadyFinished);
        }
        if self.send == SendState::Closed {
            return Err(if self.method.kind.streams_requests() {
                UsageError::SendClosed
            } else {
                UsageError::SecondUnaryMessage
            });
        }
        if let Some(limit) = self.send_limit {
            if message.len() > limit {
                return Err(UsageError::MessageTooLarge {
                    size: message.len(),
                    limit,
                });
            }
        }
        self.sent_messages += 1;
        if self.method.kind.streams_requests() {
            let (framed, _) = self.frame(message)?;
            self.push_output(ClientOutput::Data(framed));
            return Ok(());
        }
        if self.use_get {
            let (payload, compressed) = match &self.send_compression {
                Some(alg)
                    if message.len() >= self.compress_min_bytes
                        && (self.compress_min_bytes == 0 || !message.is_empty()) =>
                {
                    let compressed = alg
                        .compress(message.as_bytes())
                        .map_err(|e| UsageError::Compression(e.to_string()))?;
                    (compressed, Some(alg.name()))
                }
                _ => (Bytes::copy_from_slice(message.as_bytes()), None),
            };
            let query = encode_get_query(self.content_type.codec, compressed, &payload);
            let uri = with_query(&self.uri, &query)?;
            if uri.to_string().len() <= self.max_get_url_bytes {
                let head = self.request_head(now, Method::GET, uri, false);
                self.push_output(ClientOutput::Head(head));
                self.push_output(ClientOutput::End);
                self.send = SendState::Closed;
                return Ok(());
            }
        }
        let (framed, compressed) = self.frame(message)?;
        // The request needs the URI no more after its head: moved, not cloned.
        let uri = std::mem::take(&mut self.uri);
        let head = self.request_head(now, Method::POST, uri, compressed);
        self.push_output(ClientOutput::Head(head));
        self.push_output(ClientOutput::Data(framed));
        self.push_output(ClientOutput::End);
        self.send = SendState::Closed;
        Ok(())
    }

    /// Ends the request stream (streaming-request methods). Unary-request methods must send
    /// their message instead.
    pub fn close_send(&mut self, _now: Instant) -> Result<(), UsageError> {
        match self.send {
            SendState::Closed => Ok(()),
            SendState::Idle => Err(UsageError::MissingUnaryMessage),
            SendState::Open => {
                self.send = SendState::Closed;
                if !self.is_finished() {
                    self.push_output(ClientOutput::End);
                }
                Ok(())
            }
        }
    }

    /// Cancels the call: the outcome becomes `canceled` and the exchange is abandoned.
    pub fn cancel(&mut self, _now: Instant) {
        if !self.is_finished() {
            self.abort(Status::new(Code::Canceled, "the call was cancelled"));
        }
    }

    /// Time passed: if the deadline expired, the call fails with `deadline_exceeded`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if !self.is_finished() && self.deadline.is_some_and(|d| now >= d) {
            self.abort(Status::new(
                Code::DeadlineExceeded,
                "the call's deadline expired",
            ));
        }
    }

    /// The response head arrived.
    pub fn handle_response_head(&mut self, _now: Instant, head: response::Parts) {
        if self.receive != ReceiveState::AwaitingHead {
            return;
        }
        match self.content_type.protocol {
            Protocol::Connect if !self.content_type.streaming => self.connect_unary_head(head),
            Protocol::Connect => self.connect_streaming_head(head),
            Protocol::Grpc | Protocol::GrpcWeb => self.grpc_head(head),
        }
    }

    /// A chunk of the response body arrived.
    pub fn handle_data(&mut self, _now: Instant, chunk: Bytes) {
        match self.receive {
            ReceiveState::Body | ReceiveState::ErrorBody { .. } => {}
            ReceiveState::AwaitingHead => {
                return self.protocol_error(Rule::InvalidHeader(
                    "body data before the response head".into(),
                ));
            }
            ReceiveState::Finished => return,
        }
        self.body_received |= !chunk.is_empty();
        let mut items = std::mem::take(&mut self.scratch);
        let result = self.reader.push(chunk, &mut items);
        self.take_items(&mut items);
        self.scratch = items;
        if let Err(rule) = result {
            self.protocol_error(rule);
        }
    }

    /// The response trailers arrived (gRPC; tolerated from gRPC-Web servers).
    pub fn handle_trailers(&mut self, _now: Instant, trailers: HeaderMap) {
        if self.receive != ReceiveState::Body {
            return;
        }
        match self.content_type.protocol {
            // A gRPC-Web trailer frame in the body wins over HTTP trailers.
            Protocol::Grpc | Protocol::GrpcWeb if self.end_outcome.is_none() => {
                // Trailers end the body, which must end on an envelope boundary.
                if self.finish_body() {
                    self.finish_with_trailers(&trailers);
                }
            }
            Protocol::Grpc | Protocol::GrpcWeb | Protocol::Connect => {}
        }
    }

    /// The response body ended (after trailers, if any).
    pub fn handle_end(&mut self, _now: Instant) {
        match self.receive {
            ReceiveState::Finished => {}
            ReceiveState::AwaitingHead => self.protocol_error(Rule::InvalidHeader(
                "the response ended before its head".into(),
            )),
            ReceiveState::ErrorBody { status, json } => {
                let body = self.reader.take_raw();
                let error = if json {
                    self.decode_unary_error(body, status)
                } else {
                    None
                };
                let mut error = error.unwrap_or_else(|| http_status_error(status));
                *error.metadata_mut() = std::mem::take(&mut self.unary_trailers);
                self.finish(Err(error));
            }
            ReceiveState::Body => {
                if !self.finish_body() {
                    return;
                }
                match self.end_outcome.take() {
                    Some(Ok(trailers)) => return self.finish_success(trailers),
                    Some(Err(error)) => return self.finish(Err(error)),
                    None => {}
                }
                match self.content_type.protocol {
                    Protocol::Connect if !self.content_type.streaming => {
                        let trailers = std::mem::take(&mut self.unary_trailers);
                        self.finish_success(trailers);
                    }
                    Protocol::Grpc | Protocol::GrpcWeb if !self.body_received => {
                        // Trailers-only: the head was the whole response.
                        let head = std::mem::take(&mut self.grpc_head);
                        self.finish_with_trailers(&head);
                    }
                    Protocol::Connect | Protocol::Grpc | Protocol::GrpcWeb => {
                        self.protocol_error(Rule::MissingEndStream)
                    }
                }
            }
        }
    }

    /// The server reset the stream (`h2_error_code` is the HTTP/2 error code, when known).
    /// A `CANCEL` reset once the call's deadline has passed is `deadline_exceeded`: servers
    /// cancel streams whose deadline expired.
    pub fn handle_reset(&mut self, now: Instant, h2_error_code: Option<u32>) {
        if self.is_finished() {
            return;
        }
        let expired = self.deadline.is_some_and(|deadline| now >= deadline);
        let code = match h2_error_code {
            Some(0x7) => Code::Unavailable,                 // REFUSED_STREAM
            Some(0x8) if expired => Code::DeadlineExceeded, // CANCEL after the deadline
            Some(0x8) => Code::Canceled,                    // CANCEL
            Some(0xb) => Code::ResourceExhausted,           // ENHANCE_YOUR_CALM
            Some(0xc) => Code::PermissionDenied,            // INADEQUATE_SECURITY
            Some(_) => Code::Internal,
            None => Code::Unavailable,
        };
        let reason = match h2_error_code {
            Some(c) => format!("the server reset the stream (HTTP/2 error 0x{c:x})"),
            None => "the server reset the stream".into(),
        };
        self.finish(Err(Status::new(code, reason)));
    }

    /// The transport failed (connection refused, closed, TLS error…): `unavailable`.
    pub fn handle_transport_error(&mut self, _now: Instant, message: &str) {
        if !self.is_finished() {
            self.finish(Err(Status::new(Code::Unavailable, message.to_owned())));
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

    fn push_output(&mut self, output: ClientOutput) {
        self.outputs.push(output);
    }

    /// Next event for the application.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    fn frame(&self, message: EncodedMessage) -> Result<(Bytes, bool), UsageError> {
        frame_message(
            message,
            self.content_type.streaming,
            self.send_compression.as_ref(),
            self.compress_min_bytes,
            self.content_type.text,
        )
    }

    /// The request head. The timeout header carries the time left at `now`, so a call started
    /// late (or re-sent) never announces more time than it has.
    fn request_head(
        &self,
        now: Instant,
        method: Method,
        uri: Uri,
        compressed: bool,
    ) -> request::Parts {
        let timeout = self
            .deadline
            .map(|deadline| deadline.saturating_duration_since(now));
        let (mut head, ()) = http::Request::new(()).into_parts();
        head.method = method.clone();
        head.uri = uri;
        let h = &mut head.headers;
        copy_metadata(&self.headers, h);
        let protocol = self.content_type.protocol;
        if method == Method::POST {
            h.insert(CONTENT_TYPE, self.content_type.header_value());
        }
        let accept = self.accept_compression.accept_encoding().cloned();
        let encoding = self
            .send_compression
            .as_ref()
            .filter(|_| compressed)
            .map(|a| HeaderValue::from_static(a.name()));
        match protocol {
            Protocol::Connect => {
                h.insert(USER_AGENT, self.user_agent.clone());
                if method == Method::POST {
                    h.insert(
                        CONNECT_PROTOCOL_VERSION,
                        HeaderValue::from_static(CONNECT_PROTOCOL_VERSION_1),
                    );
                }
                if let Some(timeout) = timeout {
                    insert_str(h, CONNECT_TIMEOUT_MS, &format_connect_timeout(timeout));
                }
                let (enc, acc) = if self.content_type.streaming {
                    (CONNECT_CONTENT_ENCODING, CONNECT_ACCEPT_ENCODING)
                } else {
                    (CONTENT_ENCODING, ACCEPT_ENCODING)
                };
                if let Some(v) = encoding {
                    h.insert(enc, v);
                }
                if let Some(v) = accept {
                    h.insert(acc, v);
                }
            }
            Protocol::Grpc | Protocol::GrpcWeb => {
                if protocol == Protocol::Grpc {
                    h.insert(TE, HeaderValue::from_static(TE_TRAILERS));
                    h.insert(USER_AGENT, self.user_agent.clone());
                } else {
                    h.insert(X_GRPC_WEB, HeaderValue::from_static("1"));
                    h.insert(X_USER_AGENT, self.user_agent.clone());
                }
                if let Some(timeout) = timeout {
                    insert_str(h, GRPC_TIMEOUT, &format_grpc_timeout(timeout));
                }
                if let Some(v) = encoding {
                    h.insert(GRPC_ENCODING, v);
                }
                if let Some(v) = accept {
                    h.insert(GRPC_ACCEPT_ENCODING, v);
                }
            }
        }
        head
    }

    fn resolve_encoding(&mut self, head: &response::Parts, header: HeaderName) -> Result<(), Rule> {
        let name = head.headers.get(header).and_then(|v| v.to_str().ok());
        let alg = self
            .accept_compression
            .resolve(name)
            .map_err(Rule::UnsupportedCompression)?;
        self.reader.set_compression(alg);
        Ok(())
    }

    fn connect_unary_head(&mut self, head: response::Parts) {
        let (leading, trailing) = split_unary_headers(&head.headers);
        self.unary_trailers = trailing;
        let content_type = head
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if head.status != StatusCode::OK {
            let json = matches!(ContentType::parse(content_type), ContentTypeMatch::Supported(ct)
                if ct.protocol == Protocol::Connect && !ct.streaming && ct.codec == Codec::Json);
            // An unsupported encoding leaves the error body unreadable; the HTTP status still
            // tells the code.
            let json = json && self.resolve_encoding(&head, CONTENT_ENCODING).is_ok();
            self.events.push_back(ClientEvent::Headers(leading));
            self.receive = ReceiveState::ErrorBody {
                status: head.status,
                json,
            };
            return;
        }
        if ContentType::parse(content_type) != ContentTypeMatch::Supported(self.content_type) {
            return self.unexpected_content_type(head.status, content_type);
        }
        if let Err(rule) = self.resolve_encoding(&head, CONTENT_ENCODING) {
            return self.protocol_error(rule);
        }
        self.events.push_back(ClientEvent::Headers(leading));
        self.receive = ReceiveState::Body;
    }

    fn connect_streaming_head(&mut self, head: response::Parts) {
        if head.status != StatusCode::OK {
            let mut error = http_status_error(head.status);
            *error.metadata_mut() = metadata_of(&head.headers);
            return self.finish(Err(error));
        }
        let content_type = head
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if ContentType::parse(content_type) != ContentTypeMatch::Supported(self.content_type) {
            return self.unexpected_content_type(head.status, content_type);
        }
        if let Err(rule) = self.resolve_encoding(&head, CONNECT_CONTENT_ENCODING) {
            return self.protocol_error(rule);
        }
        self.events
            .push_back(ClientEvent::Headers(metadata_of(&head.headers)));
        self.receive = ReceiveState::Body;
    }

    fn grpc_head(&mut self, head: response::Parts) {
        if head.status != StatusCode::OK && head.headers.contains_key(GRPC_STATUS) {
            // A status in the head wins over the HTTP status (http-grpc-status-mapping.md).
            self.events
                .push_back(ClientEvent::Headers(HeaderMap::new()));
            self.receive = ReceiveState::Body;
            return self.finish_with_trailers(&head.headers);
        }
        if head.status != StatusCode::OK {
            let mut error = http_status_error(head.status);
            *error.metadata_mut() = metadata_of(&head.headers);
            return self.finish(Err(error));
        }
        let content_type = head
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let matches = match ContentType::parse(content_type) {
            ContentTypeMatch::Supported(ct) => {
                ct.protocol == self.content_type.protocol
                    && ct.codec == self.content_type.codec
                    && ct.text == self.content_type.text
            }
            _ => false,
        };
        let has_status = head.headers.contains_key(GRPC_STATUS);
        if has_status && !matches {
            // Trailers-only with a body we could not read anyway: the head is the response.
            self.events
                .push_back(ClientEvent::Headers(HeaderMap::new()));
            self.receive = ReceiveState::Body;
            return self.finish_with_trailers(&head.headers);
        }
        if !matches {
            return self.unexpected_content_type(head.status, content_type);
        }
        if let Err(rule) = self.resolve_encoding(&head, GRPC_ENCODING) {
            return self.protocol_error(rule);
        }
        // A head carrying `grpc-status` is trailers-only only if no body follows: its metadata
        // are trailers then. The decision waits for the end of the response.
        let leading = if has_status {
            HeaderMap::new()
        } else {
            metadata_of(&head.headers)
        };
        self.events.push_back(ClientEvent::Headers(leading));
        self.grpc_head = head.headers;
        self.receive = ReceiveState::Body;
    }

    /// Checks that the body ended on a frame boundary and reads what its end completes.
    /// Returns `false` if the call is finished (by a protocol error or the items read).
    fn finish_body(&mut self) -> bool {
        let mut items = std::mem::take(&mut self.scratch);
        let result = self.reader.finish(&mut items);
        self.take_items(&mut items);
        self.scratch = items;
        if let Err(rule) = result {
            self.protocol_error(rule);
        }
        self.receive != ReceiveState::Finished
    }

    /// A `200` response whose content type is wrong. Of the call's protocol (another codec or
    /// form), it is a broken RPC response: `internal`. Of no RPC protocol at all, it is not an
    /// RPC response, and like a non-200 response without an RPC status its code comes from the
    /// HTTP status (`unknown` for `200`).
    fn unexpected_content_type(&mut self, status: StatusCode, content_type: &str) {
        let protocol = match ContentType::parse(content_type) {
            ContentTypeMatch::Supported(ct) => Some(ct.protocol),
            ContentTypeMatch::UnsupportedCodec { protocol, .. } => Some(protocol),
            ContentTypeMatch::Unrecognized => None,
        };
        let error =
            ProtocolError::in_response(Rule::UnexpectedContentType(content_type.to_owned()));
        if protocol == Some(self.content_type.protocol) {
            return self.abort(error.to_status());
        }
        let code = Code::from_http_status(status).unwrap_or(Code::Unknown);
        self.abort(Status::new(code, format!("protocol error: {error}")));
    }

    fn take_items(&mut self, items: &mut SmallQueue<Inbound>) {
        for item in items.drain() {
            if self.receive == ReceiveState::Finished {
                return;
            }
            match item {
                Inbound::Message(message) => {
                    if !self.method.kind.streams_responses() && self.received_messages > 0 {
                        return self.protocol_error(Rule::ExtraMessage);
                    }
                    self.received_messages += 1;
                    self.events.push_back(ClientEvent::Message(message));
                }
                Inbound::EndStream(json) => match decode_end_stream(&json, self.metadata_limit) {
                    Ok(end) => {
                        self.end_outcome = Some(match end.error {
                            Some(error) => Err(error),
                            None => Ok(end.trailers),
                        });
                    }
                    Err(rule) => self.protocol_error(rule),
                },
                Inbound::Trailers(block) => {
                    let limit = self.metadata_limit;
                    match decode_trailer_block(&block, limit)
                        .and_then(|t| Ok((decode_status(&t)?, t)))
                    {
                        Ok((None, trailers)) => self.end_outcome = Some(Ok(metadata_of(&trailers))),
                        Ok((Some(error), _)) => self.end_outcome = Some(Err(error)),
                        Err(rule) => self.protocol_error(rule),
                    }
                }
            }
        }
    }

    fn finish_with_trailers(&mut self, trailers: &HeaderMap) {
        match decode_status(trailers) {
            Ok(None) => self.finish_success(metadata_of(trailers)),
            Ok(Some(error)) => self.finish(Err(error)),
            Err(rule) => self.protocol_error(rule),
        }
    }

    fn finish_success(&mut self, trailers: HeaderMap) {
        if !self.method.kind.streams_responses() && self.received_messages == 0 {
            return self.protocol_error(Rule::MissingMessage);
        }
        self.finish(Ok(trailers));
    }

    fn decode_unary_error(&self, body: Bytes, status: StatusCode) -> Option<Status> {
        // The body may be compressed with the response's content-encoding.
        let plain = self.reader.decompress(body).ok()?;
        let fallback = Code::from_http_status(status).unwrap_or(Code::Unknown);
        decode_error_body_or(&plain, fallback).ok()
    }

    fn protocol_error(&mut self, rule: Rule) {
        self.abort(ProtocolError::in_response(rule).to_status());
    }

    /// Fails the call and abandons the exchange.
    fn abort(&mut self, status: Status) {
        self.finish(Err(status));
        self.outputs.clear();
        self.push_output(ClientOutput::Cancel);
    }

    fn finish(&mut self, outcome: Result<HeaderMap, Status>) {
        if self.receive == ReceiveState::Finished {
            return;
        }
        if self.receive == ReceiveState::AwaitingHead {
            self.events
                .push_back(ClientEvent::Headers(HeaderMap::new()));
        }
        self.receive = ReceiveState::Finished;
        self.events.push_back(ClientEvent::Finished(outcome));
    }
}

/// The status for an HTTP error without a usable RPC error in it.
fn http_status_error(status: StatusCode) -> Status {
    let code = Code::from_http_status(status).unwrap_or(Code::Unknown);
    let reason = status
        .canonical_reason()
        .map(|r| format!(" {r}"))
        .unwrap_or_default();
    Status::new(code, format!("HTTP status {}{reason}", status.as_u16()))
}

fn insert_str(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

/// `base` (scheme, authority, path prefix) joined with a method path.
fn join_uri(base: &Uri, method_path: &'static str) -> Result<Uri, UsageError> {
    let prefix = base.path().trim_end_matches('/');
    if prefix.is_empty() {
        // The usual case (no path prefix): the static method path is used as it is, not
        // copied.
        let path = PathAndQuery::from_maybe_shared(Bytes::from_static(method_path.as_bytes()))
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
