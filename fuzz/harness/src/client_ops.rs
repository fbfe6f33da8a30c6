//! The `client_ops` target: a [`ClientCall`] driven by an arbitrary sequence of operations.

use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use connect_proto_core::internal::connect::error_json::{encode_end_stream, encode_error_body};
use connect_proto_core::internal::envelope::{
    FLAG_COMPRESSED, FLAG_END_STREAM, FLAG_TRAILERS, encode_envelope,
};
use connect_proto_core::internal::grpc::encode_status;
use connect_proto_core::internal::grpc_web::{encode_text_chunk, encode_trailer_block};
use connect_proto_core::protocol::ContentType;
use connect_proto_core::{
    CallOptions, ClientCall, ClientConfig, ClientEvent, ClientOutput, Code, MethodKind, MethodSpec,
    UsageError, WireForm,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, response};

use crate::spec::{
    Alg, CodecChoice, EncodingChoice, HeaderSpec, MAX_OPS, METHODS, StatusSpec,
    assert_only_metadata, chunks, header_map, registry,
};

/// A client configuration.
#[derive(Arbitrary, Clone, Debug)]
pub(crate) struct ClientConfigSpec {
    base: BaseChoice,
    pub(crate) wire: crate::spec::Wire,
    pub(crate) codec: CodecChoice,
    send_compression: Option<Alg>,
    accept: u8,
    compress_min_bytes: u8,
    receive_limit: Option<u16>,
    send_limit: Option<u16>,
    default_timeout_ms: Option<u32>,
    default_headers: Vec<HeaderSpec>,
    use_get: bool,
    max_get_url_bytes: Option<u16>,
}

#[derive(Arbitrary, Clone, Debug)]
enum BaseChoice {
    Plain,
    Prefixed,
    Raw(String),
}

impl ClientConfigSpec {
    pub(crate) fn config(&self) -> ClientConfig {
        let base = match &self.base {
            BaseChoice::Plain => "http://localhost".parse().ok(),
            BaseChoice::Prefixed => "https://api.example.com:8443/prefix/".parse().ok(),
            BaseChoice::Raw(raw) => raw.parse().ok(),
        };
        let base = base.unwrap_or_else(|| http::Uri::from_static("http://localhost"));
        let mut config = ClientConfig::new(base)
            .protocol(self.wire.protocol())
            .codec(self.codec.codec())
            .grpc_web_text(self.wire == crate::spec::Wire::GrpcWebText)
            .send_compression(self.send_compression.map(Alg::get))
            .accept_compression(registry(self.accept))
            .compress_min_bytes(usize::from(self.compress_min_bytes))
            .max_send_message_size(self.send_limit.map(usize::from))
            .default_timeout(
                self.default_timeout_ms
                    .map(|ms| Duration::from_millis(ms.into())),
            )
            .default_headers(header_map(&self.default_headers))
            .use_get(self.use_get);
        if let Some(limit) = self.receive_limit {
            config = config.max_receive_message_size(usize::from(limit));
        }
        if let Some(max) = self.max_get_url_bytes {
            config = config.max_get_url_bytes(usize::from(max));
        }
        config
    }

    /// The content type calls of `kind` use.
    pub(crate) fn content_type(&self, kind: MethodKind) -> ContentType {
        self.wire.content_type(self.codec.codec(), kind)
    }
}

/// Per-call options.
#[derive(Arbitrary, Clone, Debug)]
pub(crate) struct OptionsSpec {
    timeout_ms: Option<u32>,
    headers: Vec<HeaderSpec>,
    send_compression: Option<Option<Alg>>,
    receive_limit: Option<u16>,
    send_limit: Option<u16>,
    use_get: Option<bool>,
}

impl OptionsSpec {
    pub(crate) fn options(&self) -> CallOptions {
        let mut options = CallOptions::new().headers(header_map(&self.headers));
        if let Some(ms) = self.timeout_ms {
            options = options.timeout(Duration::from_millis(ms.into()));
        }
        if let Some(alg) = self.send_compression {
            options = options.send_compression(alg.map(Alg::get));
        }
        if let Some(limit) = self.receive_limit {
            options = options.max_receive_message_size(usize::from(limit));
        }
        if let Some(limit) = self.send_limit {
            options = options.max_send_message_size(usize::from(limit));
        }
        if let Some(use_get) = self.use_get {
            options = options.use_get(use_get);
        }
        options
    }
}

#[derive(Arbitrary, Debug)]
struct ClientScenario {
    config: ClientConfigSpec,
    method: u8,
    options: OptionsSpec,
    ops: Vec<ClientOp>,
}

#[derive(Arbitrary, Debug)]
enum ClientOp {
    Send(Vec<u8>),
    CloseSend,
    Cancel,
    Advance(u16),
    Timeout,
    AdvancePastDeadline,
    Head(ResponseHeadSpec),
    /// A response message framed for the call (envelope or bare, compression, text).
    Message {
        payload: Vec<u8>,
        compress: bool,
        pattern: Vec<u8>,
    },
    /// An envelope with arbitrary flags (base64 in text mode).
    Frame {
        flags: u8,
        payload: Vec<u8>,
    },
    Raw(Vec<u8>),
    /// The protocol's end of a response: Connect end-stream frame, gRPC-Web trailer frame,
    /// gRPC trailers, or a Connect unary error body.
    EndOfStream {
        error: Option<StatusSpec>,
        trailers: Vec<HeaderSpec>,
        compress: bool,
    },
    Trailers(Vec<HeaderSpec>),
    End,
    Reset(Option<u32>),
    TransportError(String),
}

/// A response head.
#[derive(Arbitrary, Clone, Debug)]
pub(crate) struct ResponseHeadSpec {
    status: HttpStatusChoice,
    content_type: ResponseContentType,
    encoding: Option<EncodingChoice>,
    /// A `grpc-status` (and friends) in the head: trailers-only.
    trailers_only: Option<Option<StatusSpec>>,
    /// Connect unary trailing metadata as `trailer-` headers.
    unary_trailers: Vec<HeaderSpec>,
    extra: Vec<HeaderSpec>,
}

#[derive(Arbitrary, Clone, Debug)]
enum HttpStatusChoice {
    Ok,
    ForCode(u8),
    Raw(u16),
}

#[derive(Arbitrary, Clone, Debug)]
enum ResponseContentType {
    Matching,
    ConnectJson,
    Other(crate::spec::Wire, CodecChoice, bool),
    Raw(String),
    Absent,
}

impl ResponseHeadSpec {
    /// The head, and the compression its encoding header announces.
    pub(crate) fn build(&self, ct: ContentType) -> (response::Parts, Option<Alg>) {
        let (mut head, ()) = http::Response::new(()).into_parts();
        head.status = match self.status {
            HttpStatusChoice::Ok => StatusCode::OK,
            HttpStatusChoice::ForCode(code) => Code::from_value(u32::from(code % 16) + 1)
                .map_or(StatusCode::INTERNAL_SERVER_ERROR, Code::http_status),
            HttpStatusChoice::Raw(raw) => {
                StatusCode::from_u16(raw).unwrap_or(StatusCode::BAD_GATEWAY)
            }
        };
        let h = &mut head.headers;
        match &self.content_type {
            ResponseContentType::Matching => {
                h.insert("content-type", ct.header_value());
            }
            ResponseContentType::ConnectJson => {
                h.insert("content-type", HeaderValue::from_static("application/json"));
            }
            ResponseContentType::Other(wire, codec, streaming) => {
                let kind = if *streaming {
                    MethodKind::BidiStreaming
                } else {
                    MethodKind::Unary
                };
                h.insert(
                    "content-type",
                    wire.content_type(codec.codec(), kind).header_value(),
                );
            }
            ResponseContentType::Raw(raw) => {
                if let Ok(value) = HeaderValue::from_str(raw) {
                    h.insert("content-type", value);
                }
            }
            ResponseContentType::Absent => {}
        }
        let encoding_name = match ct.form {
            WireForm::ConnectUnary => "content-encoding",
            WireForm::ConnectStreaming => "connect-content-encoding",
            _ => "grpc-encoding",
        };
        let mut alg = None;
        if let Some(encoding) = &self.encoding {
            if let EncodingChoice::Alg(a) = encoding {
                alg = Some(*a);
            }
            if let Ok(value) = HeaderValue::from_str(&encoding.value()) {
                h.insert(HeaderName::from_static(encoding_name), value);
            }
        }
        if let Some(outcome) = &self.trailers_only {
            let status = outcome.as_ref().map(StatusSpec::status);
            encode_status(status.as_ref(), &HeaderMap::new(), h);
        }
        let trailers = header_map(&self.unary_trailers);
        connect_proto_core::internal::connect::prefix_trailers(&trailers, h);
        for extra in self.extra.iter().take(8) {
            extra.append_to(h);
        }
        (head, alg)
    }
}

/// Drives a client call: start with a generated configuration, method and options, then the
/// application's sends, close and cancel, and response heads, bodies (well-framed messages,
/// arbitrary frames, end-of-stream forms), trailers, ends, resets and timeouts with an
/// advancing fake clock, draining every output and event after each step. Checks: one
/// `Head`, first (or only a `Cancel`); nothing after `End` but a `Cancel`; nothing after
/// `Cancel`; one `Headers` event, first; `Finished` at most once, last, and exactly when
/// `is_finished()`; unary responses carry at most one message; metadata never carries
/// protocol headers; once finished, sends fail with `AlreadyFinished` and `poll_timeout` is
/// `None`; the end of the response, a reset, a cancel or an expired deadline always finish.
pub fn client_ops(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(scenario) = ClientScenario::arbitrary(&mut u) else {
        return;
    };
    crate::spec::debug(&scenario);
    let config = scenario.config.config();
    let method = METHODS[usize::from(scenario.method) % METHODS.len()].clone();
    let ct = scenario.config.content_type(method.kind);
    let start = Instant::now();
    let mut now = start;
    let Ok(mut call) = ClientCall::start(&config, now, &method, scenario.options.options()) else {
        return;
    };
    let mut check = ClientCheck::new(method, ct);
    let mut response_alg = None;
    let _ = check.drain(&mut call, now);
    for op in scenario.ops.iter().take(MAX_OPS) {
        match op {
            ClientOp::Send(message) => {
                let result = call.send_message(now, Bytes::copy_from_slice(message));
                if result == Err(UsageError::AlreadyFinished) {
                    assert!(call.is_finished());
                }
            }
            ClientOp::CloseSend => {
                let _ = call.close_send();
            }
            ClientOp::Cancel => {
                call.cancel();
                assert!(call.is_finished());
            }
            ClientOp::Advance(ms) => {
                now += Duration::from_millis(u64::from(*ms));
                call.handle_timeout(now);
            }
            ClientOp::Timeout => call.handle_timeout(now),
            ClientOp::AdvancePastDeadline => {
                if let Some(deadline) = call.poll_timeout() {
                    now = now.max(deadline);
                    call.handle_timeout(now);
                    assert!(call.is_finished(), "the deadline passed");
                }
            }
            ClientOp::Head(spec) => {
                let (head, alg) = spec.build(ct);
                response_alg = alg;
                call.handle_response_head(head);
            }
            ClientOp::Message {
                payload,
                compress,
                pattern,
            } => {
                let alg = response_alg.filter(|_| *compress && !payload.is_empty());
                for chunk in chunks(&frame(ct, payload, alg, 0), pattern) {
                    call.handle_data(chunk);
                }
            }
            ClientOp::Frame { flags, payload } => {
                let frame = encode_envelope(*flags, payload).expect("small payload");
                call.handle_data(text(ct, frame));
            }
            ClientOp::Raw(raw) => call.handle_data(Bytes::copy_from_slice(raw)),
            ClientOp::EndOfStream {
                error,
                trailers,
                compress,
            } => {
                let status = error.as_ref().map(StatusSpec::status);
                let trailers = header_map(trailers);
                match ct.form {
                    WireForm::ConnectStreaming => {
                        let json = encode_end_stream(status.as_ref(), &trailers);
                        let alg = response_alg.filter(|_| *compress);
                        call.handle_data(frame(ct, &json, alg, FLAG_END_STREAM).into());
                    }
                    WireForm::ConnectUnary => {
                        if let Some(status) = &status {
                            call.handle_data(encode_error_body(status));
                        }
                    }
                    WireForm::Grpc => {
                        let mut block = HeaderMap::new();
                        encode_status(status.as_ref(), &trailers, &mut block);
                        call.handle_trailers(block);
                    }
                    _ => {
                        let mut block = HeaderMap::new();
                        encode_status(status.as_ref(), &trailers, &mut block);
                        let payload = encode_trailer_block(&block);
                        let frame = encode_envelope(FLAG_TRAILERS, &payload).expect("small");
                        call.handle_data(text(ct, frame));
                    }
                }
            }
            ClientOp::Trailers(trailers) => call.handle_trailers(header_map(trailers)),
            ClientOp::End => {
                call.handle_end();
                assert!(call.is_finished(), "the response ended");
            }
            ClientOp::Reset(code) => {
                call.handle_reset(now, *code);
                assert!(call.is_finished());
            }
            ClientOp::TransportError(why) => {
                call.handle_transport_error(why);
                assert!(call.is_finished());
            }
        }
        let _ = check.drain(&mut call, now);
    }
}

/// A body element framed for `ct`: compressed with `alg` (if any), enveloped with `flags`
/// (plus the compressed flag) unless Connect unary, base64 in text mode.
pub(crate) fn frame(ct: ContentType, payload: &[u8], alg: Option<Alg>, flags: u8) -> Vec<u8> {
    let body = match alg {
        Some(alg) => alg.get().compress(payload).expect("compresses").to_vec(),
        None => payload.to_vec(),
    };
    if !ct.form.is_enveloped() {
        return body;
    }
    let flags = flags | if alg.is_some() { FLAG_COMPRESSED } else { 0 };
    text(ct, encode_envelope(flags, &body).expect("small payload")).to_vec()
}

fn text(ct: ContentType, frame: Bytes) -> Bytes {
    if ct.form.is_text() {
        encode_text_chunk(&frame)
    } else {
        frame
    }
}

/// What a client call has emitted so far.
pub(crate) struct ClientCheck {
    method: MethodSpec,
    ct: ContentType,
    head: bool,
    end: bool,
    cancel: bool,
    headers: bool,
    finished: bool,
    messages: usize,
    /// Request body bytes and events seen, for the pair target.
    pub(crate) outcome: Option<Result<HeaderMap, connect_proto_core::Status>>,
}

impl ClientCheck {
    pub(crate) fn new(method: MethodSpec, ct: ContentType) -> Self {
        ClientCheck {
            method,
            ct,
            head: false,
            end: false,
            cancel: false,
            headers: false,
            finished: false,
            messages: 0,
            outcome: None,
        }
    }

    /// Drains the call, checking every output and event; returns the outputs and the
    /// response messages.
    pub(crate) fn drain(
        &mut self,
        call: &mut ClientCall,
        now: Instant,
    ) -> (Vec<ClientOutput>, Vec<Bytes>) {
        let mut outputs = Vec::new();
        let mut messages = Vec::new();
        while let Some(output) = call.poll_output() {
            assert!(!self.cancel, "output after Cancel: {output:?}");
            match &output {
                ClientOutput::Head(head) => {
                    assert!(!self.head, "two request heads");
                    self.head = true;
                    assert!(
                        head.uri.path().ends_with(self.method.path()),
                        "{} for {}",
                        head.uri,
                        self.method.path()
                    );
                    if head.method == Method::POST {
                        assert_eq!(
                            head.headers.get("content-type"),
                            Some(&self.ct.header_value())
                        );
                    } else {
                        assert_eq!(head.method, Method::GET);
                        assert!(self.method.allows_get());
                    }
                }
                ClientOutput::Data(_) => {
                    assert!(self.head && !self.end, "data outside the request body");
                }
                ClientOutput::End => {
                    assert!(self.head && !self.end, "end outside the request body");
                    self.end = true;
                }
                ClientOutput::Cancel => self.cancel = true,
                other => panic!("an output the harness does not know: {other:?}"),
            }
            outputs.push(output);
        }
        while let Some(event) = call.poll_event() {
            assert!(!self.finished, "event after Finished: {event:?}");
            match event {
                ClientEvent::Headers(headers) => {
                    assert!(!self.headers, "two Headers events");
                    self.headers = true;
                    assert_only_metadata(&headers, "response headers");
                }
                ClientEvent::CompressedMessage(payload) => {
                    // Only with pass-through, which these scenarios do not enable.
                    panic!("a compressed message without pass-through: {payload:?}");
                }
                ClientEvent::Message(message) => {
                    assert!(self.headers, "message before Headers");
                    self.messages += 1;
                    if !self.method.kind.streams_responses() {
                        assert_eq!(self.messages, 1, "a second unary response message");
                    }
                    messages.push(message);
                }
                ClientEvent::Finished(outcome) => {
                    assert!(self.headers, "Finished before Headers");
                    self.finished = true;
                    match &outcome {
                        Ok(trailers) => assert_only_metadata(trailers, "trailers"),
                        Err(status) => assert_only_metadata(status.metadata(), "error metadata"),
                    }
                    self.outcome = Some(outcome);
                }
                other => panic!("an event the harness does not know: {other:?}"),
            }
        }
        assert_eq!(call.buffered_output_bytes(), 0);
        assert_eq!(call.is_finished(), self.finished);
        if self.cancel {
            assert!(self.finished, "Cancel without an outcome");
        }
        if call.is_finished() {
            assert_eq!(call.poll_timeout(), None);
            assert_eq!(
                call.send_message(now, Bytes::from_static(b"x")),
                Err(UsageError::AlreadyFinished)
            );
            assert!(call.poll_output().is_none() && call.poll_event().is_none());
        } else {
            assert_eq!(call.poll_timeout(), call.deadline());
        }
        (outputs, messages)
    }
}
