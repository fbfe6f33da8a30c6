//! The `server_ops` target: a [`ServerCall`] driven by an arbitrary sequence of operations.

use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use connect_proto_core::internal::envelope::{FLAG_COMPRESSED, encode_envelope};
use connect_proto_core::internal::grpc_web::encode_text_chunk;
use connect_proto_core::{MethodKind, Protocol, ServerCall, ServerEvent, ServerOutput, UsageError};
use http::{HeaderMap, StatusCode};

use crate::head::{HeadSpec, ServerConfigSpec};
use crate::spec::{Alg, HeaderSpec, MAX_OPS, StatusSpec, chunks, header_map, lookup};

#[derive(Arbitrary, Debug)]
struct ServerScenario {
    config: ServerConfigSpec,
    head: HeadSpec,
    ops: Vec<ServerOp>,
}

#[derive(Arbitrary, Debug)]
enum ServerOp {
    /// A request message framed for the call (envelope or bare body, compression, text).
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
    End(Vec<HeaderSpec>),
    Reset,
    Advance(u16),
    Timeout,
    AdvancePastDeadline,
    SetHeader(HeaderSpec),
    SendHeaders,
    Send(Vec<u8>),
    FinishOk(Vec<HeaderSpec>),
    FinishErr(StatusSpec),
    SetResponseCompression(Option<Alg>),
    SetPassThrough(bool),
}

/// Drives a server call: admission of a generated head, then request data, ends, resets,
/// timeouts with an advancing fake clock, and the application's sends and finish, draining
/// every event and output after each step. Checks: one `Head`, first; nothing after `End` or
/// `Trailers` (gRPC only); a terminal output exactly when finished (unless reset); at most one
/// `Failed`/`RequestEnd`, nothing after `Failed`; unary requests carry at most one message;
/// once finished, sends fail with `AlreadyFinished` and `poll_timeout` is `None`; an expired
/// deadline always finishes the call.
pub fn server_ops(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(scenario) = ServerScenario::arbitrary(&mut u) else {
        return;
    };
    crate::spec::debug(&scenario);
    let config = scenario.config.config();
    let head = scenario.head.build();
    let start = Instant::now();
    let mut now = start;
    let Ok(mut call) = ServerCall::accept(&config, now, &head, lookup) else {
        return;
    };
    if let Some(deadline) = call.deadline() {
        assert!(deadline >= now);
    }
    let mut check = ServerCheck::new(&call);
    let _ = check.drain(&mut call);
    for op in scenario.ops.iter().take(MAX_OPS) {
        match op {
            ServerOp::Message {
                payload,
                compress,
                pattern,
            } => {
                for chunk in chunks(&frame_request(&call, payload, *compress), pattern) {
                    call.handle_data(now, chunk);
                }
            }
            ServerOp::Frame { flags, payload } => {
                let frame = encode_envelope(*flags, payload).expect("small payload");
                let frame = if call.content_type().form.is_text() {
                    encode_text_chunk(&frame)
                } else {
                    frame
                };
                call.handle_data(now, frame);
            }
            ServerOp::Raw(raw) => call.handle_data(now, Bytes::copy_from_slice(raw)),
            ServerOp::End(trailers) => {
                let trailers = (!trailers.is_empty()).then(|| header_map(trailers));
                call.handle_end(trailers);
                // A finished call ignores its inputs.
                assert!(call.is_request_done() || call.is_finished());
            }
            ServerOp::Reset => {
                check.reset |= !call.is_finished();
                call.handle_reset();
                assert!(call.is_finished());
            }
            ServerOp::Advance(ms) => {
                now += Duration::from_millis(u64::from(*ms));
                call.handle_timeout(now);
            }
            ServerOp::Timeout => call.handle_timeout(now),
            ServerOp::AdvancePastDeadline => {
                if let Some(deadline) = call.poll_timeout() {
                    now = now.max(deadline);
                    call.handle_timeout(now);
                    assert!(call.is_finished(), "the deadline passed");
                }
            }
            ServerOp::SetHeader(spec) => {
                if let Some(headers) = call.response_headers_mut() {
                    spec.append_to(headers);
                }
            }
            ServerOp::SendHeaders => {
                let result = call.send_headers();
                check.usage(&call, result);
            }
            ServerOp::Send(message) => {
                let result = call.send_message(Bytes::copy_from_slice(message));
                if result.is_ok() {
                    check.sent += 1;
                    if !call.method().kind.streams_responses() {
                        assert_eq!(check.sent, 1, "a second unary response was accepted");
                    }
                }
                check.usage(&call, result);
            }
            ServerOp::FinishOk(trailers) => {
                let was_finished = call.is_finished();
                let result = call.finish(Ok(header_map(trailers)));
                if !was_finished {
                    assert!(call.is_finished());
                }
                check.usage(&call, result);
            }
            ServerOp::FinishErr(spec) => {
                let was_finished = call.is_finished();
                let result = call.finish(Err(spec.status()));
                if !was_finished {
                    assert!(result.is_ok());
                    assert!(call.is_finished());
                }
                check.usage(&call, result);
            }
            ServerOp::SetResponseCompression(alg) => {
                call.set_response_compression(alg.map(Alg::get));
            }
            ServerOp::SetPassThrough(on) => {
                call.set_pass_through(*on);
                check.pass_through |= *on;
            }
        }
        let _ = check.drain(&mut call);
    }
}

/// A request message framed as the call's client would send it.
fn frame_request(call: &ServerCall, payload: &[u8], compress: bool) -> Vec<u8> {
    let alg = call
        .request_compression()
        .and_then(Alg::by_name)
        .filter(|_| compress && !payload.is_empty());
    let body = match alg {
        Some(alg) => alg.get().compress(payload).expect("compresses").to_vec(),
        None => payload.to_vec(),
    };
    let ct = call.content_type();
    let framed = if ct.form.is_enveloped() {
        let flags = if alg.is_some() { FLAG_COMPRESSED } else { 0 };
        encode_envelope(flags, &body)
            .expect("small payload")
            .to_vec()
    } else {
        body
    };
    if ct.form.is_text() {
        encode_text_chunk(&framed).to_vec()
    } else {
        framed
    }
}

/// What a server call has emitted so far.
pub(crate) struct ServerCheck {
    protocol: Protocol,
    streaming: bool,
    kind: MethodKind,
    head: bool,
    terminal: bool,
    pub(crate) reset: bool,
    request_end: bool,
    failed: bool,
    messages: usize,
    sent: usize,
    /// The request messages received.
    pub(crate) received: Vec<Bytes>,
    /// Whether pass-through was ever turned on (messages read before it is turned off again
    /// may still arrive compressed).
    pub(crate) pass_through: bool,
    /// The status of a `Failed` event.
    pub(crate) failure: Option<connect_proto_core::Status>,
}

impl ServerCheck {
    pub(crate) fn new(call: &ServerCall) -> Self {
        ServerCheck {
            protocol: call.protocol(),
            streaming: call.content_type().form.is_enveloped(),
            kind: call.method().kind,
            head: false,
            terminal: false,
            reset: false,
            request_end: false,
            failed: false,
            messages: 0,
            sent: 0,
            received: Vec::new(),
            pass_through: false,
            failure: None,
        }
    }

    /// A usage error is only ever `AlreadyFinished` on a finished call, and a finished call
    /// always answers with it.
    fn usage(&self, call: &ServerCall, result: Result<(), UsageError>) {
        if result == Err(UsageError::AlreadyFinished) {
            assert!(call.is_finished());
        }
    }

    /// Drains the call, checking every event and output; returns the outputs.
    pub(crate) fn drain(&mut self, call: &mut ServerCall) -> Vec<ServerOutput> {
        let mut outputs = Vec::new();
        while let Some(event) = call.poll_event() {
            assert!(!self.failed, "event after Failed: {event:?}");
            match event {
                ServerEvent::CompressedMessage(payload) => {
                    assert!(
                        self.pass_through,
                        "a compressed message without pass-through: {payload:?}"
                    );
                    assert!(!self.request_end, "message after the request end");
                    assert!(!payload.is_empty(), "an empty payload passed through");
                    // Bounded by the receive limit, like any message: decompressing may fail
                    // (a corrupt payload), but it must not panic.
                    if let Ok(message) = call.decompress_message(payload) {
                        self.received.push(message);
                    }
                    self.messages += 1;
                    if !self.kind.streams_requests() {
                        assert_eq!(self.messages, 1, "a second unary request message");
                    }
                }
                ServerEvent::Message(message) => {
                    assert!(!self.request_end, "message after the request end");
                    self.received.push(message);
                    self.messages += 1;
                    if !self.kind.streams_requests() {
                        assert_eq!(self.messages, 1, "a second unary request message");
                    }
                }
                ServerEvent::RequestEnd => {
                    assert!(!self.request_end, "two request ends");
                    self.request_end = true;
                    if !self.kind.streams_requests() {
                        assert_eq!(
                            self.messages, 1,
                            "a unary request ended without its message"
                        );
                    }
                }
                ServerEvent::Failed(status) => {
                    self.failed = true;
                    crate::spec::assert_only_metadata(status.metadata(), "failure metadata");
                    self.failure = Some(status);
                }
                other => panic!("an event the harness does not know: {other:?}"),
            }
        }
        while let Some(output) = call.poll_output() {
            assert!(!self.terminal, "output after the end: {output:?}");
            match &output {
                ServerOutput::Head(head) => {
                    assert!(!self.head, "two response heads");
                    self.head = true;
                    if self.protocol != Protocol::Connect || self.streaming {
                        assert_eq!(head.status, StatusCode::OK);
                    }
                }
                ServerOutput::Data(_) => assert!(self.head, "data before the head"),
                ServerOutput::Trailers(trailers) => {
                    assert!(self.head, "trailers before the head");
                    assert_eq!(self.protocol, Protocol::Grpc, "HTTP trailers");
                    assert!(trailers.contains_key("grpc-status"));
                    self.terminal = true;
                }
                ServerOutput::End => {
                    assert!(self.head, "end before the head");
                    self.terminal = true;
                }
                other => panic!("an output the harness does not know: {other:?}"),
            }
            outputs.push(output);
        }
        assert_eq!(call.buffered_output_bytes(), 0);
        if call.is_finished() {
            assert!(
                self.terminal || self.reset,
                "finished without ending the response"
            );
            assert_eq!(call.poll_timeout(), None);
            assert_eq!(
                call.send_message(Bytes::from_static(b"x")),
                Err(UsageError::AlreadyFinished)
            );
            assert_eq!(call.send_headers(), Err(UsageError::AlreadyFinished));
            assert_eq!(
                call.finish(Ok(HeaderMap::new())),
                Err(UsageError::AlreadyFinished)
            );
            assert!(call.poll_output().is_none() && call.poll_event().is_none());
        } else {
            assert!(
                !self.terminal,
                "response ended but the call is not finished"
            );
            assert!(!self.failed, "Failed but the call is not finished");
            // The deadline, or earlier while a unary request body is open, its pause limit.
            match (call.poll_timeout(), call.deadline()) {
                (timeout, deadline) if call.is_request_done() => assert_eq!(timeout, deadline),
                (Some(timeout), Some(deadline)) => assert!(timeout <= deadline),
                (timeout, None) => assert!(
                    timeout.is_none() || !call.method().kind.streams_requests(),
                    "only unary request bodies have a pause limit"
                ),
                (None, Some(_)) => panic!("a deadline but no timeout"),
            }
        }
        outputs
    }
}
