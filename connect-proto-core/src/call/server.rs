//! The server side of one call.
//!
//! ```text
//!  request side                          response side
//!  ────────────                          ─────────────
//!  Open ──handle_data──> Open            Idle ──send_headers / send_message──> Streaming
//!   │ └─ protocol error ─┐                 │                                      │
//!   │                    v                 ├──finish──> Finished <──finish────────┘
//!   └─handle_end──> Ended   Failed         │   (trailers-only / unary error / unary response)
//!                                           └─ deadline, reset, request error ──> Finished
//! ```
//!
//! Inputs are `handle_*`; outputs are drained with [`ServerCall::poll_event`] (what the
//! application must act on) and [`ServerCall::poll_output`] (what the adapter must write).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, response};

use crate::call::accept::{Admitted, ServerConfig};
use crate::call::inbound::{Framing, Inbound, Reader, frame_envelope, frame_message};
use crate::call::output_queue::{OutputQueue, SmallQueue};
use crate::call::render;
use crate::code::Code;
use crate::codec::{Codec, EncodedMessage};
use crate::compression::Compression;
use crate::connect::error_json::encode_end_stream;
use crate::connect::prefix_trailers;
use crate::envelope::{FLAG_END_STREAM, FLAG_TRAILERS};
use crate::error::{ProtocolError, Rule, UsageError};
use crate::grpc::encode_status;
use crate::grpc_web::encode_trailer_block;
use crate::metadata::copy_metadata;
use crate::method::MethodSpec;
use crate::protocol::names::{
    ACCEPT_ENCODING, CONNECT_ACCEPT_ENCODING, CONNECT_CONTENT_ENCODING, CONTENT_ENCODING,
    CONTENT_TYPE, GRPC_ACCEPT_ENCODING, GRPC_ENCODING,
};
use crate::protocol::{ContentType, Protocol};
use crate::status::Status;

/// Something the application must act on.
#[derive(Debug, PartialEq)]
#[must_use]
pub enum ServerEvent {
    /// A request message (decompressed, still encoded with the call's codec).
    Message(Bytes),
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RequestState {
    Open,
    Ended,
    Failed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ResponseState {
    Idle,
    Streaming,
    Finished,
}

/// One server-side call: request bytes in, response bytes out, no I/O.
#[derive(Debug)]
pub struct ServerCall {
    content_type: ContentType,
    method: MethodSpec,
    deadline: Option<Instant>,
    /// The longest pause allowed in a unary request body, while it is open.
    body_timeout: Option<Duration>,
    /// When the unary request body times out unless more of it arrives.
    body_deadline: Option<Instant>,
    request_compression: Option<Arc<dyn Compression>>,
    response_compression: Option<Arc<dyn Compression>>,
    accept_encoding: Option<HeaderValue>,
    compress_min_bytes: usize,
    send_limit: Option<usize>,
    reader: Reader,
    request: RequestState,
    request_messages: usize,
    response: ResponseState,
    response_headers: HeaderMap,
    response_messages: usize,
    /// The Connect unary response message, held until `finish` writes the head.
    unary_response: Option<Bytes>,
    unary_response_compressed: bool,
    events: SmallQueue<ServerEvent>,
    outputs: OutputQueue<ServerOutput>,
    scratch: SmallQueue<Inbound>,
}

impl ServerCall {
    pub(crate) fn from_admitted(config: &ServerConfig, now: Instant, admitted: Admitted) -> Self {
        let Admitted {
            content_type,
            method,
            deadline,
            request_compression,
            response_compression,
            get_message,
        } = admitted;
        let framing = if content_type.streaming {
            Framing::Enveloped
        } else {
            Framing::Bare
        };
        let reader = Reader::new(
            content_type.protocol,
            framing,
            false,
            content_type.text,
            request_compression.clone(),
            config.max_receive_message_size,
        );
        // Only unary request bodies have a pause limit: a streaming request's pauses are the
        // application's.
        let body_timeout = config
            .body_timeout
            .filter(|_| !method.kind.streams_requests());
        let mut call = ServerCall {
            content_type,
            method,
            deadline,
            body_timeout,
            body_deadline: body_timeout.and_then(|t| now.checked_add(t)),
            request_compression,
            response_compression,
            accept_encoding: config.compression.accept_encoding().cloned(),
            compress_min_bytes: config.compress_min_bytes,
            send_limit: config.max_send_message_size,
            reader,
            request: RequestState::Open,
            request_messages: 0,
            response: ResponseState::Idle,
            response_headers: HeaderMap::new(),
            response_messages: 0,
            unary_response: None,
            unary_response_compressed: false,
            events: SmallQueue::new(),
            outputs: OutputQueue::new(),
            scratch: SmallQueue::new(),
        };
        if let Some(message) = get_message {
            // A GET carries its whole request in the query: feed it as a bare body, and end
            // it unless feeding it already failed the call.
            call.feed(message);
            if call.request == RequestState::Open {
                call.end_request();
            }
        }
        call
    }

    /// The call's protocol.
    pub fn protocol(&self) -> Protocol {
        self.content_type.protocol
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

    /// The deadline derived from the request's timeout header, if any.
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

    /// Overrides the response compression (for example to disable it per call).
    pub fn set_response_compression(&mut self, compression: Option<Arc<dyn Compression>>) {
        if self.response == ResponseState::Idle {
            self.response_compression = compression;
        }
    }

    /// Delivers request payloads still compressed (`Message` bytes are then compressed with
    /// [`request_compression`](Self::request_compression) when their envelope says so), for
    /// proxies that forward without recompressing. Unary Connect bodies are unaffected.
    pub fn set_pass_through(&mut self, pass_through: bool) {
        self.reader.set_pass_through(pass_through);
    }

    /// Whether the response has been completely queued (or the call failed).
    pub fn is_finished(&self) -> bool {
        self.response == ResponseState::Finished
    }

    /// Whether the request side is done (ended or failed).
    pub fn is_request_done(&self) -> bool {
        self.request != RequestState::Open
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next: the call's deadline,
    /// or earlier while a unary request body is open, the end of its allowed pause.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_finished() {
            return None;
        }
        match (self.deadline, self.body_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A chunk of the request body arrived. For a unary request body, `now` restarts the
    /// allowed pause (see [`ServerConfig::body_timeout`]).
    pub fn handle_data(&mut self, now: Instant, chunk: Bytes) {
        if self.request != RequestState::Open || self.is_finished() {
            return;
        }
        if let Some(timeout) = self.body_timeout {
            self.body_deadline = now.checked_add(timeout);
        }
        self.feed(chunk);
    }

    /// The request body broke off (the transport found it truncated or malformed, as an
    /// HTTP/1.1 body shorter than its `content-length`): the call fails with
    /// `invalid_argument`, and the error is answered if nothing was sent yet. A stream the
    /// client reset is [`handle_reset`](Self::handle_reset) instead.
    pub fn handle_body_error(&mut self, _now: Instant, why: &str) {
        if self.request != RequestState::Open || self.is_finished() {
            return;
        }
        self.request_error(Rule::BrokenBody(why.to_owned()));
    }

    /// The request body ended. Request trailers carry no protocol meaning and are ignored.
    pub fn handle_end(&mut self, _now: Instant, _trailers: Option<HeaderMap>) {
        if self.request != RequestState::Open || self.is_finished() {
            return;
        }
        self.end_request();
    }

    /// The client reset the stream or went away: the call is cancelled, nothing more is sent.
    pub fn handle_reset(&mut self, _now: Instant) {
        if self.is_finished() {
            return;
        }
        self.request = RequestState::Failed;
        self.response = ResponseState::Finished;
        self.outputs.clear();
        self.events.push_back(ServerEvent::Failed(Status::new(
            Code::Canceled,
            "the client cancelled the call",
        )));
    }

    /// Time passed: if the deadline expired, the call fails with `deadline_exceeded`; if a
    /// unary request body paused too long, with the [`Rule::BodyTimeout`] protocol error.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.is_finished() {
            return;
        }
        if self.deadline.is_some_and(|deadline| now >= deadline) {
            let status = Status::new(Code::DeadlineExceeded, "the call's deadline expired");
            self.fail(status);
        } else if self.request == RequestState::Open
            && self.body_deadline.is_some_and(|deadline| now >= deadline)
        {
            self.request_error(Rule::BodyTimeout);
        }
    }

    /// Response headers (leading metadata) to send with the head. Changes after the head was
    /// sent have no effect.
    pub fn response_headers_mut(&mut self) -> &mut HeaderMap {
        &mut self.response_headers
    }

    /// Sends the response head now (streaming responses only; Connect unary responses need the
    /// outcome first and ignore this).
    pub fn send_headers(&mut self, _now: Instant) -> Result<(), UsageError> {
        match self.response {
            ResponseState::Finished => Err(UsageError::AlreadyFinished),
            ResponseState::Streaming => Ok(()),
            ResponseState::Idle => {
                if self.content_type.streaming {
                    self.write_head();
                }
                Ok(())
            }
        }
    }

    /// Sends one response message (encoded with the call's codec): [`Bytes`] or an
    /// [`EncodedMessage`] from [`Codec::encode_message`] (which frames without copying).
    pub fn send_message(
        &mut self,
        _now: Instant,
        message: impl Into<EncodedMessage>,
    ) -> Result<(), UsageError> {
        let message = message.into();
        if self.response == ResponseState::Finished {
            return Err(UsageError::AlreadyFinished);
        }
        if let Some(limit) = self.send_limit {
            if message.len() > limit {
                return Err(UsageError::MessageTooLarge {
                    size: message.len(),
                    limit,
                });
            }
        }
        if !self.method.kind.streams_responses() && self.response_messages > 0 {
            return Err(UsageError::SecondUnaryMessage);
        }
        let (framed, compressed) = frame_message(
            message,
            self.content_type.streaming,
            self.response_compression.as_ref(),
            self.compress_min_bytes,
            self.content_type.text,
        )?;
        self.response_messages += 1;
        if !self.content_type.streaming {
            self.unary_response = Some(framed);
            self.unary_response_compressed = compressed;
            return Ok(());
        }
        if self.response == ResponseState::Idle {
            self.write_head();
        }
        self.push_output(ServerOutput::Data(framed));
        Ok(())
    }

    /// Ends the call: `Ok(trailers)` for success, `Err(status)` for failure (the status's
    /// metadata are the trailers). A unary response without its message is a usage error; the
    /// call then ends with `internal` so the wire is never left open.
    pub fn finish(
        &mut self,
        _now: Instant,
        outcome: Result<HeaderMap, Status>,
    ) -> Result<(), UsageError> {
        if self.response == ResponseState::Finished {
            return Err(UsageError::AlreadyFinished);
        }
        match outcome {
            Ok(trailers) => {
                if !self.method.kind.streams_responses() && self.response_messages == 0 {
                    self.fail(Status::new(
                        Code::Internal,
                        "the handler returned no response message",
                    ));
                    return Err(UsageError::MissingUnaryMessage);
                }
                self.finish_ok(trailers);
            }
            Err(status) => self.finish_err(status),
        }
        Ok(())
    }

    /// Next event for the application.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// Next output for the adapter.
    pub fn poll_output(&mut self) -> Option<ServerOutput> {
        self.outputs.pop()
    }

    /// Body bytes queued for the adapter but not yet taken with `poll_output` (after
    /// compression and framing): what back-pressure should be measured in.
    pub fn buffered_output_bytes(&self) -> usize {
        self.outputs.data_bytes()
    }

    fn push_output(&mut self, output: ServerOutput) {
        self.outputs.push(output);
    }

    fn feed(&mut self, chunk: Bytes) {
        let mut items = std::mem::take(&mut self.scratch);
        let result = self.reader.push(chunk, &mut items);
        self.take_items(&mut items);
        self.scratch = items;
        if let Err(rule) = result {
            self.request_error(rule);
        }
    }

    fn end_request(&mut self) {
        self.body_deadline = None;
        let mut items = std::mem::take(&mut self.scratch);
        let result = self.reader.finish(&mut items);
        self.take_items(&mut items);
        self.scratch = items;
        if let Err(rule) = result {
            self.request_error(rule);
            return;
        }
        if self.request != RequestState::Open {
            return;
        }
        if !self.method.kind.streams_requests() && self.request_messages == 0 {
            self.request_error(Rule::MissingMessage);
            return;
        }
        self.request = RequestState::Ended;
        self.events.push_back(ServerEvent::RequestEnd);
    }

    fn take_items(&mut self, items: &mut SmallQueue<Inbound>) {
        for item in items.drain() {
            if self.request != RequestState::Open {
                return;
            }
            match item {
                Inbound::Message(message) => {
                    if !self.method.kind.streams_requests() && self.request_messages > 0 {
                        self.request_error(Rule::ExtraMessage);
                        return;
                    }
                    self.request_messages += 1;
                    self.events.push_back(ServerEvent::Message(message));
                }
                // Requests never carry end-of-stream frames (the reader rejects the flags).
                Inbound::EndStream(_) | Inbound::Trailers(_) => {
                    self.request_error(Rule::UnexpectedEndStream);
                    return;
                }
            }
        }
    }

    fn request_error(&mut self, rule: Rule) {
        self.body_deadline = None;
        let status = ProtocolError::in_request(rule).to_status();
        self.request = RequestState::Failed;
        self.fail(status);
    }

    /// Ends the call with an error and tells the application.
    fn fail(&mut self, status: Status) {
        if self.request == RequestState::Open {
            self.request = RequestState::Failed;
        }
        if self.response != ResponseState::Finished {
            self.finish_err(status.clone());
        }
        self.events.push_back(ServerEvent::Failed(status));
    }

    fn head_parts(&self) -> response::Parts {
        let mut head = render::parts(StatusCode::OK);
        copy_metadata(&self.response_headers, &mut head.headers);
        head.headers
            .insert(CONTENT_TYPE, self.content_type.header_value());
        let (encoding, accept) = match (self.content_type.protocol, self.content_type.streaming) {
            (Protocol::Connect, false) => (CONTENT_ENCODING, ACCEPT_ENCODING),
            (Protocol::Connect, true) => (CONNECT_CONTENT_ENCODING, CONNECT_ACCEPT_ENCODING),
            (Protocol::Grpc | Protocol::GrpcWeb, _) => (GRPC_ENCODING, GRPC_ACCEPT_ENCODING),
        };
        let compressing = if self.content_type.streaming {
            self.response_compression.as_ref()
        } else {
            self.response_compression
                .as_ref()
                .filter(|_| self.unary_response_compressed)
        };
        if let Some(alg) = compressing {
            head.headers
                .insert(encoding, HeaderValue::from_static(alg.name()));
        }
        if let Some(value) = &self.accept_encoding {
            head.headers.insert(accept, value.clone());
        }
        head
    }

    fn write_head(&mut self) {
        let head = self.head_parts();
        self.push_output(ServerOutput::Head(head));
        self.response = ResponseState::Streaming;
    }

    fn finish_ok(&mut self, trailers: HeaderMap) {
        match (self.content_type.protocol, self.content_type.streaming) {
            (Protocol::Connect, false) => {
                let mut head = self.head_parts();
                prefix_trailers(&trailers, &mut head.headers);
                self.push_output(ServerOutput::Head(head));
                if let Some(body) = self.unary_response.take() {
                    self.push_output(ServerOutput::Data(body));
                }
                self.push_output(ServerOutput::End);
            }
            (Protocol::Connect, true) => {
                if self.response == ResponseState::Idle {
                    self.write_head();
                }
                let end = encode_end_stream(None, &trailers);
                self.push_frame(FLAG_END_STREAM, &end);
                self.push_output(ServerOutput::End);
            }
            (Protocol::Grpc, _) => {
                let mut block = HeaderMap::new();
                encode_status(None, &trailers, &mut block);
                self.end_grpc(block);
            }
            (Protocol::GrpcWeb, _) => {
                let mut block = HeaderMap::new();
                encode_status(None, &trailers, &mut block);
                self.end_grpc_web(block);
            }
        }
        self.response = ResponseState::Finished;
    }

    fn finish_err(&mut self, status: Status) {
        self.unary_response = None;
        if self.response == ResponseState::Idle && self.headers_need_their_own_frame() {
            // gRPC with response headers: headers, then the status in trailers, so clients
            // keep the two apart (a trailers-only response would merge them).
            self.write_head();
        }
        if self.response == ResponseState::Idle {
            let rendered =
                render::error_response(self.content_type, &status, &self.response_headers);
            let mut head = rendered.head;
            if let Some(value) = &self.accept_encoding {
                let accept = match (self.content_type.protocol, self.content_type.streaming) {
                    (Protocol::Connect, false) => ACCEPT_ENCODING,
                    (Protocol::Connect, true) => CONNECT_ACCEPT_ENCODING,
                    _ => GRPC_ACCEPT_ENCODING,
                };
                head.headers.insert(accept, value.clone());
            }
            self.push_output(ServerOutput::Head(head));
            if !rendered.body.is_empty() {
                let body = if self.content_type.text {
                    crate::grpc_web::encode_text_chunk(&rendered.body)
                } else {
                    rendered.body
                };
                self.push_output(ServerOutput::Data(body));
            }
            self.push_output(ServerOutput::End);
        } else {
            match self.content_type.protocol {
                Protocol::Connect => {
                    let end = encode_end_stream(Some(&status), status.metadata());
                    self.push_frame(FLAG_END_STREAM, &end);
                    self.push_output(ServerOutput::End);
                }
                Protocol::Grpc => {
                    let mut block = HeaderMap::new();
                    encode_status(Some(&status), &HeaderMap::new(), &mut block);
                    self.end_grpc(block);
                }
                Protocol::GrpcWeb => {
                    let mut block = HeaderMap::new();
                    encode_status(Some(&status), &HeaderMap::new(), &mut block);
                    self.end_grpc_web(block);
                }
            }
        }
        self.response = ResponseState::Finished;
    }

    /// gRPC: trailers after a streaming response, or a trailers-only response.
    fn end_grpc(&mut self, block: HeaderMap) {
        if self.response == ResponseState::Idle && self.headers_need_their_own_frame() {
            self.write_head();
        }
        if self.response == ResponseState::Idle {
            let mut head = self.head_parts();
            head.headers.extend(block);
            self.push_output(ServerOutput::Head(head));
            self.push_output(ServerOutput::End);
        } else {
            self.push_output(ServerOutput::Trailers(block));
        }
    }

    /// Whether a gRPC or gRPC-Web response must not be trailers-only because the application
    /// set response headers.
    fn headers_need_their_own_frame(&self) -> bool {
        self.content_type.protocol != Protocol::Connect
            && self
                .response_headers
                .keys()
                .any(|name| !crate::metadata::is_protocol_header(name.as_str()))
    }

    /// gRPC-Web: the trailer frame, after a head that is written if it was not yet.
    fn end_grpc_web(&mut self, block: HeaderMap) {
        if self.response == ResponseState::Idle {
            self.write_head();
        }
        self.push_frame(FLAG_TRAILERS, &encode_trailer_block(&block));
        self.push_output(ServerOutput::End);
    }

    fn push_frame(&mut self, flags: u8, payload: &[u8]) {
        // End-of-stream frames are small JSON or header blocks; never compressed.
        if let Ok(frame) = frame_envelope(flags, payload) {
            let frame = if self.content_type.text {
                crate::grpc_web::encode_text_chunk(&frame)
            } else {
                frame
            };
            self.push_output(ServerOutput::Data(frame));
        }
    }
}

// The regression needs a compression algorithm; without one the module would be empty.
#[cfg(all(test, feature = "gzip"))]
mod tests {
    use super::*;
    use crate::connect::get::encode_get_query;
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
