//! Shared test helpers: a deterministic xorshift generator, body chunking, a fake clock, wire
//! builders, and the `Pair` harness that connects a `ClientCall` to a `ServerCall` in memory.
#![allow(dead_code)]

use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, request, response};

use connect_proto_core::codec::Codec;
use connect_proto_core::compression::Compression;
use connect_proto_core::internal::envelope::{EnvelopeDecoder, encode_envelope};
use connect_proto_core::internal::grpc_web::TextDecoder;
use connect_proto_core::{
    CallOptions, ClientCall, ClientConfig, ClientEvent, ClientOutput, Code, MethodSpec, Protocol,
    ServerCall, ServerConfig, ServerEvent, ServerOutput, Status,
};

// ---------------------------------------------------------------------------------------------
// Deterministic randomness and chunking.

/// xorshift64: tiny, deterministic, good enough to pick chunk sizes and payloads.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform-ish in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }

    /// Printable text that compresses somewhat but not absurdly.
    pub fn text(&mut self, len: usize) -> String {
        const WORDS: [&str; 8] = [
            "alpha ", "beta ", "gamma ", "delta ", "eps ", "zeta ", "eta ", "theta ",
        ];
        let mut s = String::with_capacity(len + 8);
        while s.len() < len {
            if self.below(4) == 0 {
                s.push(char::from(b'a' + self.below(26) as u8));
            } else {
                s.push_str(WORDS[self.below(8) as usize]);
            }
        }
        s.truncate(len);
        s
    }
}

/// How bodies are cut into chunks on their way to the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chunking {
    /// Every output chunk is delivered as is.
    Whole,
    /// Chunks of exactly this many bytes (the last may be shorter).
    Fixed(usize),
    /// Pseudo-random sizes from 1 to 64 bytes (and the odd empty chunk), from this seed.
    Random(u64),
}

pub const CHUNKINGS: [Chunking; 3] = [Chunking::Whole, Chunking::Fixed(1), Chunking::Random(7)];

/// The finer set a decoder is read with: whole, one and two bytes at a time, and two
/// pseudo-random splits.
pub const SPLITS: [Chunking; 5] = [
    Chunking::Whole,
    Chunking::Fixed(1),
    Chunking::Fixed(2),
    Chunking::Random(1),
    Chunking::Random(2),
];

/// Cuts bodies according to a [`Chunking`]; slices, never copies.
#[derive(Clone, Debug)]
pub struct Splitter {
    chunking: Chunking,
    rng: Rng,
}

impl Splitter {
    pub fn new(chunking: Chunking) -> Self {
        let seed = match chunking {
            Chunking::Random(seed) => seed,
            _ => 1,
        };
        Splitter {
            chunking,
            rng: Rng::new(seed),
        }
    }

    pub fn split(&mut self, data: &Bytes) -> Vec<Bytes> {
        match self.chunking {
            Chunking::Whole => vec![data.clone()],
            Chunking::Fixed(n) => {
                let n = n.max(1);
                (0..data.len())
                    .step_by(n)
                    .map(|i| data.slice(i..(i + n).min(data.len())))
                    .collect()
            }
            Chunking::Random(_) => {
                let mut out = Vec::new();
                let mut i = 0;
                while i < data.len() {
                    if self.rng.below(16) == 0 {
                        out.push(Bytes::new());
                    }
                    let n = 1 + self.rng.below(64) as usize;
                    let end = (i + n).min(data.len());
                    out.push(data.slice(i..end));
                    i = end;
                }
                out
            }
        }
    }
}

/// Splits `data` with a fresh splitter.
pub fn chunks(data: &[u8], chunking: Chunking) -> Vec<Bytes> {
    Splitter::new(chunking).split(&Bytes::copy_from_slice(data))
}

// ---------------------------------------------------------------------------------------------
// Allocation metering hook (used by tests/allocations.rs; a no-op elsewhere).

thread_local! {
    /// Set while the harness is inside a call into the core.
    pub static IN_CORE: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` (one call into the core) with [`IN_CORE`] set.
#[inline]
pub fn core<R>(f: impl FnOnce() -> R) -> R {
    IN_CORE.with(|c| c.set(true));
    let out = f();
    IN_CORE.with(|c| c.set(false));
    out
}

// ---------------------------------------------------------------------------------------------
// Fake clock.

#[derive(Clone, Copy, Debug)]
pub struct Clock {
    base: Instant,
    offset: Duration,
}

impl Clock {
    pub fn new() -> Self {
        Clock {
            base: Instant::now(),
            offset: Duration::ZERO,
        }
    }

    pub fn now(&self) -> Instant {
        self.base + self.offset
    }

    pub fn advance(&mut self, by: Duration) {
        self.offset += by;
    }

    pub fn base(&self) -> Instant {
        self.base
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

// ---------------------------------------------------------------------------------------------
// Protocol choices, messages, wire builders.

/// The four client-side wire forms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    Connect,
    Grpc,
    GrpcWeb,
    GrpcWebText,
}

/// The path prefix of the base URI the harness clients use.
pub const ROUTING_PREFIX: &str = "/prefix";

pub const WIRES: [Wire; 4] = [Wire::Connect, Wire::Grpc, Wire::GrpcWeb, Wire::GrpcWebText];

impl Wire {
    pub fn protocol(self) -> Protocol {
        match self {
            Wire::Connect => Protocol::Connect,
            Wire::Grpc => Protocol::Grpc,
            Wire::GrpcWeb | Wire::GrpcWebText => Protocol::GrpcWeb,
        }
    }

    pub fn text(self) -> bool {
        self == Wire::GrpcWebText
    }

    pub fn client_config(self, codec: Codec) -> ClientConfig {
        ClientConfig::new(http::Uri::from_static("http://example.test/prefix"))
            .protocol(self.protocol())
            .codec(codec)
            .grpc_web_text(self.text())
    }
}

pub fn string_value(s: &str) -> buffa_types::google::protobuf::StringValue {
    buffa_types::google::protobuf::StringValue {
        value: s.to_owned(),
        ..Default::default()
    }
}

/// A `google.protobuf.StringValue` encoded with `codec`.
pub fn msg(codec: Codec, s: &str) -> Bytes {
    codec.encode(&string_value(s)).expect("encode")
}

/// Decodes a `StringValue` back.
pub fn unmsg(codec: Codec, bytes: &[u8]) -> String {
    codec
        .decode::<buffa_types::google::protobuf::StringValue>(bytes, 1 << 30)
        .expect("decode")
        .value
}

pub fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

pub fn request_head(method: Method, uri: &str, pairs: &[(&str, &str)]) -> request::Parts {
    let mut builder = http::Request::builder().method(method).uri(uri);
    for (name, value) in pairs {
        builder = builder.header(*name, *value);
    }
    builder.body(()).unwrap().into_parts().0
}

pub fn response_head(status: u16, pairs: &[(&str, &str)]) -> response::Parts {
    let mut builder = http::Response::builder().status(status);
    for (name, value) in pairs {
        builder = builder.header(*name, *value);
    }
    builder.body(()).unwrap().into_parts().0
}

/// One envelope.
pub fn env(flags: u8, payload: &[u8]) -> Vec<u8> {
    encode_envelope(flags, payload).unwrap().to_vec()
}

/// Envelopes concatenated.
pub fn envs(items: &[(u8, &[u8])]) -> Vec<u8> {
    items.iter().flat_map(|(f, p)| env(*f, p)).collect()
}

/// Parses a whole body into envelopes (decoding gRPC-Web text first).
pub fn parse_envelopes(body: &[u8], text: bool) -> Vec<(u8, Bytes)> {
    let raw = if text {
        let mut d = TextDecoder::new();
        let out = d.decode(body).expect("valid base64 body");
        d.finish().expect("whole base64 groups");
        out
    } else {
        Bytes::copy_from_slice(body)
    };
    let mut decoder = EnvelopeDecoder::new(usize::MAX);
    decoder.push(raw);
    let mut out = Vec::new();
    while let Some(e) = decoder.decode().expect("valid envelopes") {
        out.push((e.flags, e.payload));
    }
    decoder.finish().expect("body ends on an envelope boundary");
    out
}

/// A status with two details and metadata, for error round trips.
pub fn rich_status(code: Code) -> Status {
    let mut status = Status::new(code, "it went wrong: 100% caf\u{e9}")
        .with_detail(connect_proto_core::ErrorDetail::from_message(
            &string_value("first detail"),
        ))
        .with_detail(connect_proto_core::ErrorDetail::from_message(
            &buffa_types::google::protobuf::Duration {
                seconds: 30,
                nanos: 5,
                ..Default::default()
            },
        ));
    status
        .metadata_mut()
        .insert("x-error-meta", HeaderValue::from_static("meta-value"));
    status
        .metadata_mut()
        .insert("x-error-bin", HeaderValue::from_static("AAEC"));
    status
}

/// The compression algorithms compiled in, by name.
pub fn algorithms() -> Vec<Arc<dyn Compression>> {
    let registry = connect_proto_core::compression::CompressionRegistry::default();
    registry
        .names()
        .map(|n| registry.get(n).unwrap().clone())
        .collect()
}

pub fn algorithm(name: &str) -> Arc<dyn Compression> {
    connect_proto_core::compression::CompressionRegistry::default()
        .get(name)
        .unwrap()
        .clone()
}

// ---------------------------------------------------------------------------------------------
// The Pair harness.

/// What a rejected request looked like on the wire.
#[derive(Debug)]
pub struct Rejected {
    pub head: response::Parts,
    pub body: Bytes,
    pub status: Option<Status>,
}

/// A client call wired to a server call in memory. Every `pump` moves every queued output of
/// each side into the other, chunked, until both are quiet. Events are collected in order.
pub struct Pair {
    pub clock: Clock,
    pub server_config: ServerConfig,
    pub methods: Vec<MethodSpec>,
    pub client: ClientCall,
    pub server: Option<ServerCall>,
    pub rejected: Option<Rejected>,
    pub request_head: Option<request::Parts>,
    pub response_head: Option<response::Parts>,
    pub request_body: Vec<u8>,
    pub response_body: Vec<u8>,
    pub response_trailers: Option<HeaderMap>,
    pub client_events: Vec<ClientEvent>,
    pub server_events: Vec<ServerEvent>,
    /// The client emitted `ClientOutput::Cancel`.
    pub client_cancelled: bool,
    pub request_ended: bool,
    pub response_ended: bool,
    /// Record wire bytes (off for allocation counting).
    pub record: bool,
    request_split: Splitter,
    response_split: Splitter,
}

impl Pair {
    /// Starts a call and pumps (streaming requests deliver their head at once).
    pub fn start(
        client_config: &ClientConfig,
        server_config: ServerConfig,
        method: MethodSpec,
        options: CallOptions,
        request_chunking: Chunking,
        response_chunking: Chunking,
    ) -> Pair {
        let clock = Clock::new();
        let client = core(|| ClientCall::start(client_config, clock.now(), &method, options))
            .expect("start");
        let mut pair = Pair {
            clock,
            server_config,
            methods: vec![method],
            client,
            server: None,
            rejected: None,
            request_head: None,
            response_head: None,
            request_body: Vec::new(),
            response_body: Vec::new(),
            response_trailers: None,
            client_events: Vec::new(),
            server_events: Vec::new(),
            client_cancelled: false,
            request_ended: false,
            response_ended: false,
            record: true,
            request_split: Splitter::new(request_chunking),
            response_split: Splitter::new(response_chunking),
        };
        pair.pump();
        pair
    }

    /// Both directions chunked the same way.
    pub fn new(
        client_config: &ClientConfig,
        server_config: ServerConfig,
        method: MethodSpec,
        chunking: Chunking,
    ) -> Pair {
        Pair::start(
            client_config,
            server_config,
            method,
            CallOptions::new(),
            chunking,
            chunking,
        )
    }

    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    pub fn server(&mut self) -> &mut ServerCall {
        self.server.as_mut().expect("the server accepted the call")
    }

    /// Moves outputs across until both sides are quiet.
    pub fn pump(&mut self) {
        loop {
            let mut progress = false;
            while let Some(out) = core(|| self.client.poll_output()) {
                progress = true;
                self.on_client_output(out);
            }
            while let Some(event) = core(|| self.client.poll_event()) {
                progress = true;
                self.client_events.push(event);
            }
            while let Some(out) = self
                .server
                .as_mut()
                .and_then(|server| core(|| server.poll_output()))
            {
                progress = true;
                match out {
                    ServerOutput::Head(head) => {
                        if self.record {
                            self.response_head = Some(head.clone());
                        }
                        core(|| self.client.handle_response_head(head));
                    }
                    ServerOutput::Data(data) => {
                        if self.record {
                            self.response_body.extend_from_slice(&data);
                        }
                        for chunk in self.response_split.split(&data) {
                            core(|| self.client.handle_data(chunk));
                        }
                    }
                    ServerOutput::Trailers(trailers) => {
                        if self.record {
                            self.response_trailers = Some(trailers.clone());
                        }
                        self.response_ended = true;
                        core(|| self.client.handle_trailers(trailers));
                        core(|| self.client.handle_end());
                    }
                    ServerOutput::End => {
                        self.response_ended = true;
                        core(|| self.client.handle_end());
                    }
                    other => panic!("unexpected: {other:?}"),
                }
                // Deliver client reactions (e.g. Cancel) before the next server output.
                while let Some(out) = core(|| self.client.poll_output()) {
                    self.on_client_output(out);
                }
            }
            if let Some(server) = self.server.as_mut() {
                while let Some(event) = core(|| server.poll_event()) {
                    progress = true;
                    self.server_events.push(event);
                }
            }
            if !progress {
                break;
            }
        }
    }

    fn on_client_output(&mut self, out: ClientOutput) {
        let now = self.clock.now();
        match out {
            ClientOutput::Head(head) => {
                if self.record {
                    self.request_head = Some(head.clone());
                }
                let methods = &self.methods;
                let config = &self.server_config;
                let accepted = core(|| {
                    ServerCall::accept(config, now, &head, |path| {
                        // The client's base URI carries a routing prefix.
                        let path = path.strip_prefix(ROUTING_PREFIX).unwrap_or(path);
                        methods.iter().find(|m| m.path == path).cloned()
                    })
                });
                match accepted {
                    Ok(server) => self.server = Some(server),
                    Err(rejection) => {
                        let status = rejection.status().cloned();
                        let (head, body) = rejection.into_parts();
                        self.rejected = Some(Rejected {
                            head: head.clone(),
                            body: body.clone(),
                            status,
                        });
                        core(|| self.client.handle_response_head(head));
                        for chunk in self.response_split.split(&body) {
                            core(|| self.client.handle_data(chunk));
                        }
                        self.response_ended = true;
                        core(|| self.client.handle_end());
                    }
                }
            }
            ClientOutput::Data(data) => {
                if self.record {
                    self.request_body.extend_from_slice(&data);
                }
                if let Some(server) = self.server.as_mut() {
                    for chunk in self.request_split.split(&data) {
                        core(|| server.handle_data(now, chunk));
                    }
                }
            }
            ClientOutput::End => {
                self.request_ended = true;
                if let Some(server) = self.server.as_mut() {
                    core(|| server.handle_end(None));
                }
            }
            ClientOutput::Cancel => {
                self.client_cancelled = true;
                if let Some(server) = self.server.as_mut() {
                    core(|| server.handle_reset());
                }
            }
            other => panic!("unexpected: {other:?}"),
        }
    }

    // --- client actions -----------------------------------------------------------------

    pub fn client_send(&mut self, message: Bytes) {
        let now = self.clock.now();
        core(|| self.client.send_message(now, message)).expect("client send");
        self.pump();
    }

    pub fn client_close(&mut self) {
        core(|| self.client.close_send()).expect("close send");
        self.pump();
    }

    pub fn client_cancel(&mut self) {
        core(|| self.client.cancel());
        self.pump();
    }

    /// The server (or a proxy) reset the stream with an HTTP/2 error code.
    pub fn server_reset(&mut self, h2_code: Option<u32>) {
        let now = self.clock.now();
        core(|| self.client.handle_reset(now, h2_code));
        self.pump();
    }

    // --- server actions -----------------------------------------------------------------

    pub fn server_headers(&mut self, h: &HeaderMap) {
        let server = self.server.as_mut().expect("accepted");
        for (name, value) in h {
            server
                .response_headers_mut()
                .unwrap()
                .append(name.clone(), value.clone());
        }
        core(|| server.send_headers()).expect("send headers");
        self.pump();
    }

    pub fn server_send(&mut self, message: Bytes) {
        let server = self.server.as_mut().expect("accepted");
        core(|| server.send_message(message)).expect("server send");
        self.pump();
    }

    pub fn server_finish(&mut self, outcome: Result<HeaderMap, Status>) {
        let server = self.server.as_mut().expect("accepted");
        core(|| server.finish(outcome)).expect("finish");
        self.pump();
    }

    // --- time -----------------------------------------------------------------------------

    /// Advances the clock and fires the timers of the chosen sides that are due.
    pub fn advance(&mut self, by: Duration, client: bool, server: bool) {
        self.clock.advance(by);
        let now = self.clock.now();
        if server {
            if let Some(s) = self.server.as_mut() {
                if s.poll_timeout().is_some_and(|t| t <= now) {
                    core(|| s.handle_timeout(now));
                }
            }
        }
        if client && self.client.poll_timeout().is_some_and(|t| t <= now) {
            core(|| self.client.handle_timeout(now));
        }
        self.pump();
    }

    // --- inspection -----------------------------------------------------------------------

    pub fn take_client_events(&mut self) -> Vec<ClientEvent> {
        std::mem::take(&mut self.client_events)
    }

    pub fn take_server_events(&mut self) -> Vec<ServerEvent> {
        std::mem::take(&mut self.server_events)
    }

    /// The client's outcome (the last event must be `Finished`).
    pub fn outcome(&self) -> &Result<HeaderMap, Status> {
        match self.client_events.last() {
            Some(ClientEvent::Finished(outcome)) => outcome,
            other => panic!("client not finished; last event {other:?}"),
        }
    }

    pub fn request_envelopes(&self) -> Vec<(u8, Bytes)> {
        parse_envelopes(&self.request_body, self.client_is_text())
    }

    pub fn response_envelopes(&self) -> Vec<(u8, Bytes)> {
        parse_envelopes(&self.response_body, self.client_is_text())
    }

    fn client_is_text(&self) -> bool {
        self.request_head
            .as_ref()
            .and_then(|h| h.headers.get("content-type"))
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc-web-text"))
    }
}

/// The error code of a `Finished(Err)` event list, panicking otherwise.
pub fn finished_code(events: &[ClientEvent]) -> Code {
    match events.last() {
        Some(ClientEvent::Finished(Err(status))) => status.code(),
        other => panic!("expected a failed outcome, got {other:?} in {events:?}"),
    }
}

/// Concatenates bytes.
pub fn concat(parts: &[&[u8]]) -> Bytes {
    let mut out = BytesMut::new();
    for p in parts {
        out.extend_from_slice(p);
    }
    out.freeze()
}
