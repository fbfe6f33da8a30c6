//! `ServerCall::send_message_with`, which encodes a response message straight into the open
//! output chunk (room for the envelope prefix first, patched once the length is known) when
//! the call [writes in place](ServerCall::writes_in_place), and into a buffer of its own
//! otherwise. The wire must not tell the two apart from `send_message`: the same head, body
//! bytes and trailers, whatever is popped between sends; the send limit and encoder failures
//! leave nothing behind; the usual state rules apply.

mod common;

use bytes::{Bytes, BytesMut};
use connect_proto_core::codec::{Codec, CodecError};
use connect_proto_core::{
    Idempotency, MethodKind, MethodSpec, ServerCall, ServerConfig, ServerOutput, UsageError,
};
use http::{HeaderMap, Method, StatusCode};

use common::{Clock, env, headers, msg, parse_envelopes, request_head, string_value};

const UNARY: MethodSpec = MethodSpec::new("/t.S/Unary", MethodKind::Unary, Idempotency::Unknown);
const SERVER_STREAM: MethodSpec = MethodSpec::new(
    "/t.S/ServerStream",
    MethodKind::ServerStreaming,
    Idempotency::Unknown,
);
const CODECS: [Codec; 2] = [Codec::Proto, Codec::Json];

fn lookup(path: &str) -> Option<MethodSpec> {
    [UNARY, SERVER_STREAM].into_iter().find(|m| m.path == path)
}

/// The enveloped response forms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    Grpc,
    GrpcWeb,
    GrpcWebText,
    ConnectStream,
}

const FORMS: [Form; 4] = [
    Form::Grpc,
    Form::GrpcWeb,
    Form::GrpcWebText,
    Form::ConnectStream,
];

impl Form {
    fn content_type(self, codec: Codec) -> String {
        let base = match self {
            Form::Grpc => "application/grpc",
            Form::GrpcWeb => "application/grpc-web",
            Form::GrpcWebText => "application/grpc-web-text",
            Form::ConnectStream => "application/connect",
        };
        format!("{base}+{}", codec.name())
    }

    fn text(self) -> bool {
        self == Form::GrpcWebText
    }

    /// Whether the body ends with an end frame (gRPC ends with HTTP trailers instead).
    fn end_frame(self) -> bool {
        self != Form::Grpc
    }
}

/// Accepts a call whose request head has `content_type` and the `extra` headers.
fn accept_with(
    config: &ServerConfig,
    method: &MethodSpec,
    content_type: &str,
    extra: &[(&str, &str)],
) -> ServerCall {
    let mut pairs = vec![("content-type", content_type), ("te", "trailers")];
    pairs.extend_from_slice(extra);
    let head = request_head(Method::POST, method.path(), &pairs);
    ServerCall::accept(config, Clock::new().now(), &head, lookup).expect("accepted")
}

fn accept(form: Form, codec: Codec) -> ServerCall {
    let content_type = form.content_type(codec);
    accept_with(&ServerConfig::new(), &SERVER_STREAM, &content_type, &[])
}

/// Everything a call wrote, outputs concatenated.
#[derive(Debug, Default, PartialEq)]
struct Wire {
    head: Option<(StatusCode, HeaderMap)>,
    body: Vec<u8>,
    data_chunks: usize,
    trailers: Option<HeaderMap>,
    ended: bool,
}

impl Wire {
    /// Pops every queued output, checking the call's count of buffered body bytes.
    fn drain(&mut self, call: &mut ServerCall) {
        let buffered = call.buffered_output_bytes();
        let before = self.body.len();
        while let Some(out) = call.poll_output() {
            assert!(!self.ended, "output after the end: {out:?}");
            match out {
                ServerOutput::Head(head) => {
                    assert!(self.head.is_none(), "a second head");
                    self.head = Some((head.status, head.headers));
                }
                ServerOutput::Data(data) => {
                    assert!(!data.is_empty(), "an empty data chunk");
                    self.body.extend_from_slice(&data);
                    self.data_chunks += 1;
                }
                ServerOutput::Trailers(trailers) => {
                    self.trailers = Some(trailers);
                    self.ended = true;
                }
                ServerOutput::End => self.ended = true,
                other => panic!("unexpected: {other:?}"),
            }
        }
        assert_eq!(buffered, self.body.len() - before, "buffered_output_bytes");
        assert_eq!(call.buffered_output_bytes(), 0);
    }

    /// What the peer sees (how the body was cut aside).
    fn seen(&self) -> (&Option<(StatusCode, HeaderMap)>, &[u8], &Option<HeaderMap>) {
        (&self.head, &self.body, &self.trailers)
    }

    /// The body's envelopes.
    fn envelopes(&self, text: bool) -> Vec<(u8, Bytes)> {
        parse_envelopes(&self.body, text)
    }
}

/// Sends with `send_message_with`, encoding with the codec's `write_message`.
fn send_with(call: &mut ServerCall, codec: Codec, s: &str) -> Result<(), UsageError> {
    call.send_message_with(|buf| codec.write_message(&string_value(s), buf))
}

fn trailers() -> HeaderMap {
    headers(&[("x-trailer", "done")])
}

/// Message texts: `n` short ones, or (n = 0) a mix with empty ones and one of 20 KB.
fn texts(n: usize) -> Vec<String> {
    if n == 0 {
        let sizes = [0, 1, 17, 0, 300, 20_000, 0, 5, 1_000, 0];
        return sizes.iter().map(|&len| "x".repeat(len)).collect();
    }
    (0..n).map(|i| format!("message {i}")).collect()
}

/// One call sending every text by `send_message` or by `send_message_with`, then finishing.
fn send_all(form: Form, codec: Codec, texts: &[String], in_place: bool) -> Wire {
    let mut call = accept(form, codec);
    assert_eq!(call.writes_in_place(), !form.text(), "{form:?} {codec:?}");
    for s in texts {
        if in_place {
            send_with(&mut call, codec, s).expect("send_message_with");
        } else {
            call.send_message(msg(codec, s)).expect("send_message");
        }
    }
    call.finish(Ok(trailers())).expect("finish");
    let mut wire = Wire::default();
    wire.drain(&mut call);
    assert!(wire.ended);
    wire
}

#[test]
fn in_place_sends_put_the_same_bytes_on_the_wire_as_send_message() {
    for form in FORMS {
        for codec in CODECS {
            for n in [1, 3, 50, 0] {
                let texts = texts(n);
                let case = format!("{form:?} {codec:?} n={n}");
                let copied = send_all(form, codec, &texts, false);
                let in_place = send_all(form, codec, &texts, true);
                assert_eq!(in_place.head, copied.head, "{case}");
                assert_eq!(in_place.body, copied.body, "{case}");
                assert_eq!(in_place.trailers, copied.trailers, "{case}");
                // And those bytes are the messages, each in its own envelope, in order.
                let envelopes = in_place.envelopes(form.text());
                let extra = usize::from(form.end_frame());
                assert_eq!(envelopes.len(), texts.len() + extra, "{case}");
                for (got, s) in envelopes.iter().zip(&texts) {
                    assert_eq!(got, &(0, msg(codec, s)), "{case}");
                }
                if form.end_frame() && !form.text() {
                    let messages: Vec<u8> =
                        texts.iter().flat_map(|s| env(0, &msg(codec, s))).collect();
                    assert_eq!(in_place.body[..messages.len()], messages[..], "{case}");
                }
                if n == 50 && !form.text() {
                    // Nothing popped between sends: the messages share a chunk or two.
                    assert!(
                        in_place.data_chunks <= 2,
                        "{case}: {}",
                        in_place.data_chunks
                    );
                }
            }
        }
    }
}

/// Alternates the two ways to send, popping outputs after every `pop_every` sends (never for
/// 0), and returns what went out.
fn interleaved(form: Form, codec: Codec, texts: &[String], pop_every: usize) -> Wire {
    let mut call = accept(form, codec);
    let mut wire = Wire::default();
    for (i, s) in texts.iter().enumerate() {
        if i % 2 == 0 {
            call.send_message(msg(codec, s)).expect("send_message");
        } else {
            send_with(&mut call, codec, s).expect("send_message_with");
        }
        if pop_every > 0 && (i + 1) % pop_every == 0 {
            wire.drain(&mut call);
        }
    }
    call.finish(Ok(trailers())).expect("finish");
    wire.drain(&mut call);
    wire
}

#[test]
fn interleaved_sends_and_pops_keep_every_message_in_order() {
    let mut texts: Vec<String> = (0..40).map(|i| "m".repeat(i * 7 % 90)).collect();
    texts.insert(11, "big".repeat(7_000));
    texts.insert(24, "big".repeat(6_000));
    for form in FORMS {
        for codec in CODECS {
            let reference = send_all(form, codec, &texts, false);
            for pop_every in [0, 1, 3] {
                let case = format!("{form:?} {codec:?} pop every {pop_every}");
                let wire = interleaved(form, codec, &texts, pop_every);
                let envelopes = wire.envelopes(form.text());
                let got: Vec<_> = envelopes.iter().take(texts.len()).cloned().collect();
                let want: Vec<_> = texts.iter().map(|s| (0, msg(codec, s))).collect();
                assert_eq!(got, want, "{case}");
                assert_eq!(
                    envelopes.len(),
                    texts.len() + usize::from(form.end_frame()),
                    "{case}"
                );
                assert_eq!(wire.seen(), reference.seen(), "{case}");
            }
        }
    }
}

/// Whether outputs are popped right before and right after a failed send: a failure then
/// opens a fresh chunk, and nothing may be left of it to pop.
const POPS: [(bool, bool); 3] = [(false, false), (true, false), (true, true)];

#[test]
fn the_send_limit_applies_to_the_written_length_and_leaves_nothing_behind() {
    const LIMIT: usize = 100;
    let config = ServerConfig::new().max_send_message_size(Some(LIMIT));
    // A `StringValue` of `len` (< 128) characters is `len + 2` bytes of protobuf.
    let at_limit = "a".repeat(LIMIT - 2);
    let over = "o".repeat(LIMIT - 1);
    assert_eq!(msg(Codec::Proto, &at_limit).len(), LIMIT);
    let too_large = UsageError::MessageTooLarge {
        size: LIMIT + 1,
        limit: LIMIT,
    };
    for form in FORMS {
        for (pop_before, pop_after) in POPS {
            let case = format!("{form:?} pop before/after the failure: {pop_before}/{pop_after}");
            let content_type = form.content_type(Codec::Proto);
            let mut call = accept_with(&config, &SERVER_STREAM, &content_type, &[]);
            let mut wire = Wire::default();
            send_with(&mut call, Codec::Proto, "first").unwrap();
            if pop_before {
                wire.drain(&mut call);
            }
            let buffered = call.buffered_output_bytes();
            assert_eq!(
                send_with(&mut call, Codec::Proto, &over),
                Err(too_large.clone()),
                "{case}"
            );
            assert_eq!(call.buffered_output_bytes(), buffered, "{case}");
            if pop_after {
                wire.drain(&mut call);
            }
            // `send_message` agrees on the size and limit.
            assert_eq!(
                call.send_message(msg(Codec::Proto, &over)),
                Err(too_large.clone()),
                "{case}"
            );
            send_with(&mut call, Codec::Proto, &at_limit).expect("at the limit");
            send_with(&mut call, Codec::Proto, "last").unwrap();
            call.finish(Ok(trailers())).unwrap();
            wire.drain(&mut call);
            let good = ["first", at_limit.as_str(), "last"];
            let envelopes = wire.envelopes(form.text());
            let want: Vec<_> = good.iter().map(|s| (0, msg(Codec::Proto, s))).collect();
            assert_eq!(envelopes[..good.len()], want[..], "{case}");
            assert_eq!(envelopes.len(), 3 + usize::from(form.end_frame()), "{case}");
            // Byte for byte what the good messages alone produce.
            let good: Vec<String> = good.iter().map(|s| s.to_string()).collect();
            assert_eq!(wire.body, send_all(form, Codec::Proto, &good, false).body);
        }
    }
}

/// A writer that leaves part of a message in the buffer and then fails.
fn failing_write(buf: &mut BytesMut) -> Result<(), CodecError> {
    buf.extend_from_slice(b"\x0a\x40half a message");
    Err(CodecError::encoding(Codec::Proto, "the encoder gave up"))
}

#[test]
fn an_encoder_failure_is_an_encoding_error_and_leaves_nothing_behind() {
    let failed = UsageError::Encoding(CodecError::encoding(Codec::Proto, "the encoder gave up"));
    for form in FORMS {
        for (pop_before, pop_after) in POPS {
            let case = format!("{form:?} pop before/after the failure: {pop_before}/{pop_after}");
            let mut call = accept(form, Codec::Proto);
            let mut wire = Wire::default();
            send_with(&mut call, Codec::Proto, "before").unwrap();
            if pop_before {
                wire.drain(&mut call);
            }
            let buffered = call.buffered_output_bytes();
            assert_eq!(
                call.send_message_with(failing_write),
                Err(failed.clone()),
                "{case}"
            );
            assert_eq!(call.buffered_output_bytes(), buffered, "{case}");
            if pop_after {
                wire.drain(&mut call);
            }
            send_with(&mut call, Codec::Proto, "after").unwrap();
            call.finish(Ok(trailers())).unwrap();
            wire.drain(&mut call);
            let texts = ["before".to_owned(), "after".to_owned()];
            let reference = send_all(form, Codec::Proto, &texts, false);
            assert_eq!(wire.seen(), reference.seen(), "{case}");
        }
    }
}

#[test]
fn a_failed_first_send_leaves_the_call_as_a_failed_send_message_does() {
    let config = ServerConfig::new().max_send_message_size(Some(4));
    let big = msg(Codec::Proto, "too large");
    for form in FORMS {
        let content_type = form.content_type(Codec::Proto);
        let mut wires = Vec::new();
        for how in 0..3 {
            let mut call = accept_with(&config, &SERVER_STREAM, &content_type, &[]);
            let result = match how {
                0 => call.send_message(big.clone()),
                1 => send_with(&mut call, Codec::Proto, "too large"),
                _ => call.send_message_with(failing_write),
            };
            assert!(result.is_err());
            // The application may still set response headers and fail the call.
            assert!(call.response_headers_mut().is_some(), "{form:?} way {how}");
            call.finish(Err(connect_proto_core::Status::internal("no")))
                .unwrap();
            let mut wire = Wire::default();
            wire.drain(&mut call);
            wires.push(wire);
        }
        assert_eq!(wires[1], wires[0], "{form:?}: over the limit");
        assert_eq!(wires[2], wires[0], "{form:?}: encoder failure");
    }
}

#[test]
#[cfg(feature = "gzip")]
fn negotiated_compression_is_not_in_place_and_still_compresses() {
    let gzip = common::algorithm("gzip");
    let texts = ["tiny".to_owned(), "z".repeat(2_000), String::new()];
    for (form, accept) in [
        (Form::Grpc, "grpc-accept-encoding"),
        (Form::GrpcWeb, "grpc-accept-encoding"),
        (Form::ConnectStream, "connect-accept-encoding"),
    ] {
        for codec in CODECS {
            let case = format!("{form:?} {codec:?}");
            let content_type = form.content_type(codec);
            let mut wires = Vec::new();
            for in_place in [false, true] {
                let config = ServerConfig::new();
                let extra = [(accept, "gzip")];
                let mut call = accept_with(&config, &SERVER_STREAM, &content_type, &extra);
                assert_eq!(call.response_compression(), Some("gzip"), "{case}");
                assert!(!call.writes_in_place(), "{case}");
                for s in &texts {
                    if in_place {
                        send_with(&mut call, codec, s).unwrap();
                    } else {
                        call.send_message(msg(codec, s)).unwrap();
                    }
                }
                call.finish(Ok(trailers())).unwrap();
                let mut wire = Wire::default();
                wire.drain(&mut call);
                wires.push(wire);
            }
            assert_eq!(wires[1], wires[0], "{case}");
            let envelopes = wires[1].envelopes(false);
            // Below the 1 KiB threshold messages go out uncompressed.
            let flags: Vec<u8> = envelopes.iter().take(3).map(|e| e.0).collect();
            assert_eq!(flags, [0, 1, 0], "{case}");
            for ((flags, payload), s) in envelopes.iter().zip(&texts) {
                let plain = if flags & 1 == 1 {
                    gzip.decompress(payload, usize::MAX).unwrap()
                } else {
                    payload.clone()
                };
                assert_eq!(plain, msg(codec, s), "{case}");
            }
        }
    }
    // Turning compression off before the first message makes the call write in place again.
    let extra = [("grpc-accept-encoding", "gzip")];
    let mut call = accept_with(
        &ServerConfig::new(),
        &SERVER_STREAM,
        "application/grpc",
        &extra,
    );
    assert!(!call.writes_in_place());
    call.set_response_compression(None);
    assert!(call.writes_in_place());
}

#[test]
fn text_and_connect_unary_responses_are_not_in_place() {
    for codec in CODECS {
        assert!(!accept(Form::GrpcWebText, codec).writes_in_place());
        let content_type = format!("application/{}", codec.name());
        let mut call = accept_with(&ServerConfig::new(), &UNARY, &content_type, &[]);
        assert!(!call.writes_in_place(), "{codec:?}");
        call.handle_data(Clock::new().now(), msg(codec, "question"));
        call.handle_end(None);
        while call.poll_event().is_some() {}
        send_with(&mut call, codec, "answer").unwrap();
        call.finish(Ok(trailers())).unwrap();
        let out: Vec<_> = std::iter::from_fn(|| call.poll_output()).collect();
        match &out[..] {
            [
                ServerOutput::Head(head),
                ServerOutput::Data(body),
                ServerOutput::End,
            ] => {
                assert_eq!(head.status, StatusCode::OK);
                assert_eq!(head.headers["content-type"], content_type.as_str());
                assert_eq!(head.headers["trailer-x-trailer"], "done");
                assert_eq!(body, &msg(codec, "answer"), "{codec:?}");
            }
            other => panic!("{codec:?}: {other:?}"),
        }
    }
}

#[test]
fn sends_after_the_end_or_a_second_unary_message_are_refused() {
    for form in FORMS {
        // After finish, and after the client went away.
        let mut call = accept(form, Codec::Proto);
        call.finish(Ok(HeaderMap::new())).unwrap();
        let result = send_with(&mut call, Codec::Proto, "late");
        assert_eq!(result, Err(UsageError::AlreadyFinished), "{form:?}");
        let mut call = accept(form, Codec::Proto);
        call.handle_reset();
        let result = send_with(&mut call, Codec::Proto, "late");
        assert_eq!(result, Err(UsageError::AlreadyFinished), "{form:?}");
    }
    // A unary method carries exactly one message, however the second one is sent.
    for form in [Form::Grpc, Form::GrpcWeb, Form::GrpcWebText] {
        let content_type = form.content_type(Codec::Proto);
        let mut call = accept_with(&ServerConfig::new(), &UNARY, &content_type, &[]);
        send_with(&mut call, Codec::Proto, "one").unwrap();
        assert_eq!(
            send_with(&mut call, Codec::Proto, "two"),
            Err(UsageError::SecondUnaryMessage),
            "{form:?}"
        );
        assert_eq!(
            call.send_message(msg(Codec::Proto, "two")),
            Err(UsageError::SecondUnaryMessage),
            "{form:?}"
        );
        call.finish(Ok(trailers())).unwrap();
        let mut wire = Wire::default();
        wire.drain(&mut call);
        let envelopes = wire.envelopes(form.text());
        assert_eq!(envelopes[0], (0, msg(Codec::Proto, "one")), "{form:?}");
        let messages = envelopes.iter().filter(|e| e.0 == 0).count();
        assert_eq!(messages, 1, "{form:?}: {envelopes:?}");
        if form == Form::Grpc {
            assert_eq!(wire.body, env(0, &msg(Codec::Proto, "one")));
        }
    }
    // Connect unary holds its message until the end: a second one is refused too.
    let mut call = accept_with(&ServerConfig::new(), &UNARY, "application/proto", &[]);
    send_with(&mut call, Codec::Proto, "one").unwrap();
    assert_eq!(
        send_with(&mut call, Codec::Proto, "two"),
        Err(UsageError::SecondUnaryMessage)
    );
}
