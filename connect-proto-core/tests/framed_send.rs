//! `ServerCall::send_framed_messages`, which queues a run of envelopes its caller framed
//! already as response body data (handed over as it is, not copied, when the outputs are
//! taken around it), and `accepts_framed_messages`, which says
//! when it may be used (the call writes in place, it can still send and the method streams
//! responses; a run before the head writes the head first). The wire must not tell a run from the same messages sent
//! one by one; a run that is not whole uncompressed envelopes within the send limit is refused
//! whole and leaves nothing behind.

mod common;

use bytes::Bytes;
use connect_proto_core::codec::Codec;
use connect_proto_core::{
    Idempotency, MethodKind, MethodSpec, ServerCall, ServerConfig, ServerOutput, Status, UsageError,
};
use http::{HeaderMap, Method, StatusCode};

use common::{Clock, env, headers, msg, parse_envelopes, request_head, string_value};

const UNARY: MethodSpec = MethodSpec::new("/t.S/Unary", MethodKind::Unary, Idempotency::Unknown);
const CLIENT_STREAM: MethodSpec = MethodSpec::new(
    "/t.S/ClientStream",
    MethodKind::ClientStreaming,
    Idempotency::Unknown,
);
const SERVER_STREAM: MethodSpec = MethodSpec::new(
    "/t.S/ServerStream",
    MethodKind::ServerStreaming,
    Idempotency::Unknown,
);
const BIDI: MethodSpec =
    MethodSpec::new("/t.S/Bidi", MethodKind::BidiStreaming, Idempotency::Unknown);
const CODECS: [Codec; 2] = [Codec::Proto, Codec::Json];

/// The size up to which small data chunks queued in a row are joined (a whole HTTP/2 frame).
const JOIN_BYTES: usize = 16 * 1024;

fn lookup(path: &str) -> Option<MethodSpec> {
    [UNARY, CLIENT_STREAM, SERVER_STREAM, BIDI]
        .into_iter()
        .find(|m| m.path == path)
}

/// The enveloped response forms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    Grpc,
    GrpcWeb,
    GrpcWebText,
    ConnectStream,
}

/// The forms that write in place (binary, enveloped).
const IN_PLACE_FORMS: [Form; 3] = [Form::Grpc, Form::GrpcWeb, Form::ConnectStream];

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

/// Everything a call wrote, outputs concatenated, with the data chunks as they came.
#[derive(Debug, Default)]
struct Wire {
    head: Option<(StatusCode, HeaderMap)>,
    body: Vec<u8>,
    chunks: Vec<Bytes>,
    trailers: Option<HeaderMap>,
    ended: bool,
}

impl Wire {
    /// Pops every queued output, checking the call's count of buffered body bytes; returns
    /// the data chunks popped.
    fn drain(&mut self, call: &mut ServerCall) -> Vec<Bytes> {
        let buffered = call.buffered_output_bytes();
        let before = self.body.len();
        let mut popped = Vec::new();
        while let Some(out) = call.poll_output() {
            assert!(!self.ended, "output after the end: {out:?}");
            match out {
                ServerOutput::Head(head) => {
                    assert!(self.head.is_none(), "a second head");
                    assert!(self.body.is_empty(), "the head after body bytes");
                    self.head = Some((head.status, head.headers));
                }
                ServerOutput::Data(data) => {
                    assert!(self.head.is_some(), "body bytes before the head");
                    assert!(!data.is_empty(), "an empty data chunk");
                    self.body.extend_from_slice(&data);
                    self.chunks.push(data.clone());
                    popped.push(data);
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
        popped
    }

    /// What the peer sees (however the body was cut).
    fn seen(&self) -> (&Option<(StatusCode, HeaderMap)>, &[u8], &Option<HeaderMap>) {
        (&self.head, &self.body, &self.trailers)
    }

    /// The body's envelopes.
    fn envelopes(&self, text: bool) -> Vec<(u8, Bytes)> {
        parse_envelopes(&self.body, text)
    }
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

/// The messages framed as `send_message` frames them, one envelope each, in a row.
fn run<S: AsRef<str>>(codec: Codec, texts: &[S]) -> Bytes {
    let framed: Vec<u8> = texts
        .iter()
        .flat_map(|s| env(0, &msg(codec, s.as_ref())))
        .collect();
    Bytes::from(framed)
}

/// One call sending every text with `send_message`, then finishing: the reference wire.
fn send_all<S: AsRef<str>>(form: Form, codec: Codec, texts: &[S]) -> Wire {
    let mut call = accept(form, codec);
    for s in texts {
        call.send_message(msg(codec, s.as_ref()))
            .expect("send_message");
    }
    call.finish(Ok(trailers())).expect("finish");
    let mut wire = Wire::default();
    wire.drain(&mut call);
    assert!(wire.ended);
    wire
}

/// One step of a sending script.
#[derive(Clone, Debug)]
enum Step {
    /// `send_message`.
    Send(String),
    /// `send_message_with`.
    With(String),
    /// `send_framed_messages` of these messages.
    Framed(Vec<String>),
}

impl Step {
    fn texts(&self) -> Vec<String> {
        match self {
            Step::Send(s) | Step::With(s) => vec![s.clone()],
            Step::Framed(texts) => texts.clone(),
        }
    }
}

/// Plays `steps` on a fresh call (outputs drained after every step if `drain_between`), then
/// finishes it. Every run must be accepted, return its count and (drained between, or of a
/// whole HTTP/2 frame or more) leave as exactly one chunk: the run itself, not copied.
fn play(form: Form, codec: Codec, steps: &[Step], drain_between: bool) -> Wire {
    let mut call = accept(form, codec);
    let mut wire = Wire::default();
    let mut runs = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let case = format!("{form:?} {codec:?} step {i} drain between: {drain_between}");
        match step {
            Step::Send(s) => call.send_message(msg(codec, s)).expect("send_message"),
            Step::With(s) => call
                .send_message_with(|buf| codec.write_message(&string_value(s), buf))
                .expect("send_message_with"),
            Step::Framed(texts) => {
                assert!(call.accepts_framed_messages(), "{case}");
                let framed = run(codec, texts);
                let buffered = call.buffered_output_bytes();
                let sent = call.send_framed_messages(framed.clone());
                assert_eq!(sent, Ok(texts.len()), "{case}");
                if texts.is_empty() {
                    assert_eq!(call.buffered_output_bytes(), buffered, "{case}");
                } else {
                    assert_eq!(
                        call.buffered_output_bytes(),
                        buffered + framed.len(),
                        "{case}"
                    );
                    runs.push(framed.clone());
                }
                if drain_between && !texts.is_empty() {
                    let popped = wire.drain(&mut call);
                    assert_eq!(
                        popped,
                        std::slice::from_ref(&framed),
                        "{case}: the run as one chunk"
                    );
                    assert_eq!(popped[0].as_ptr(), framed.as_ptr(), "{case}: copied");
                }
            }
        }
        if drain_between {
            wire.drain(&mut call);
        }
        assert!(call.accepts_framed_messages(), "{case}");
    }
    call.finish(Ok(trailers())).expect("finish");
    assert!(!call.accepts_framed_messages());
    wire.drain(&mut call);
    assert!(wire.ended);
    // A run of a whole HTTP/2 frame or more goes out as a chunk of its own, not copied, even
    // with small chunks queued right before and after it (a smaller one may be joined with
    // them when nobody takes the outputs between).
    for framed in runs.iter().filter(|r| r.len() >= JOIN_BYTES) {
        let chunk = wire.chunks.iter().find(|c| c.as_ptr() == framed.as_ptr());
        let lens: Vec<_> = wire.chunks.iter().map(Bytes::len).collect();
        let case = format!("{form:?} {codec:?} drain between: {drain_between}");
        let chunk = chunk.unwrap_or_else(|| panic!("{case}: a run was copied: {lens:?}"));
        assert_eq!(chunk, framed, "{case}: a run was joined");
    }
    wire
}

/// Scripts: a first message, then runs mixed with the other ways to send.
fn scripts() -> Vec<Vec<Step>> {
    let s = |s: &str| s.to_owned();
    let mix = texts(0);
    let many = texts(60);
    vec![
        // One run of everything after the first message.
        vec![Step::Send(s("first")), Step::Framed(many[..].to_vec())],
        // A run with empty messages and a large one.
        vec![Step::Send(s("first")), Step::Framed(mix.clone())],
        // Runs of one, runs in a row, and runs between single sends of both kinds.
        vec![
            Step::Send(s("first")),
            Step::Framed(vec![s("solo")]),
            Step::Framed(many[..3].to_vec()),
            Step::Framed(many[3..7].to_vec()),
            Step::Send(s("between")),
            Step::Framed(mix[..4].to_vec()),
            Step::With(s("in place")),
            Step::With(s("in place again")),
            Step::Framed(mix[4..].to_vec()),
            Step::Send(String::new()),
            Step::Framed(vec![]),
            Step::With(s("last but one")),
            Step::Framed(many[7..].to_vec()),
            Step::Send(s("last")),
        ],
        // The first message sent in place.
        vec![
            Step::With(s("first in place")),
            Step::Framed(many[..10].to_vec()),
            Step::With(s("after")),
        ],
    ]
}

#[test]
fn framed_runs_put_the_same_bytes_on_the_wire_as_send_message() {
    for form in IN_PLACE_FORMS {
        for codec in CODECS {
            assert!(accept(form, codec).writes_in_place(), "{form:?}");
            for (n, steps) in scripts().iter().enumerate() {
                let all: Vec<String> = steps.iter().flat_map(Step::texts).collect();
                let reference = send_all(form, codec, &all);
                for drain_between in [false, true] {
                    let case = format!("{form:?} {codec:?} script {n} drain: {drain_between}");
                    let wire = play(form, codec, steps, drain_between);
                    assert_eq!(wire.seen(), reference.seen(), "{case}");
                    // And those bytes are the messages in order, then the end.
                    let envelopes = wire.envelopes(form.text());
                    assert_eq!(
                        envelopes.len(),
                        all.len() + usize::from(form.end_frame()),
                        "{case}"
                    );
                    for (got, s) in envelopes.iter().zip(&all) {
                        assert_eq!(got, &(0, msg(codec, s)), "{case}");
                    }
                    assert_eq!(wire.body[..run(codec, &all).len()], run(codec, &all)[..]);
                    assert_eq!(
                        wire.trailers.is_some(),
                        form == Form::Grpc,
                        "{case}: gRPC ends with trailers"
                    );
                }
            }
        }
    }
}

#[test]
fn bidi_streams_take_framed_runs_too() {
    for form in [Form::Grpc, Form::GrpcWeb] {
        let content_type = form.content_type(Codec::Proto);
        let mut call = accept_with(&ServerConfig::new(), &BIDI, &content_type, &[]);
        call.send_message(msg(Codec::Proto, "first")).unwrap();
        assert!(call.accepts_framed_messages(), "{form:?}");
        let texts = ["a", "b", "c"];
        assert_eq!(
            call.send_framed_messages(run(Codec::Proto, &texts)),
            Ok(3),
            "{form:?}"
        );
        call.finish(Ok(trailers())).unwrap();
        let mut wire = Wire::default();
        wire.drain(&mut call);
        let envelopes = wire.envelopes(false);
        let want: Vec<_> = ["first", "a", "b", "c"]
            .iter()
            .map(|s| (0, msg(Codec::Proto, s)))
            .collect();
        assert_eq!(envelopes[..4], want[..], "{form:?}");
    }
}

/// Asserts that `send_framed_messages` refuses a valid run with `error` and queues nothing:
/// the buffered bytes are unchanged, and (when nothing was queued before) nothing pops.
fn assert_refused(call: &mut ServerCall, codec: Codec, error: UsageError, case: &str) {
    let buffered = call.buffered_output_bytes();
    let framed = run(codec, &["refused 1", "refused 2"]);
    assert_eq!(
        call.send_framed_messages(framed),
        Err(error.clone()),
        "{case}"
    );
    assert_eq!(call.buffered_output_bytes(), buffered, "{case}");
    // A lone empty envelope is refused the same way.
    let framed = run(codec, &[""]);
    assert_eq!(call.send_framed_messages(framed), Err(error), "{case}");
    assert_eq!(call.buffered_output_bytes(), buffered, "{case}");
    if buffered == 0 {
        assert!(
            call.poll_output().is_none(),
            "{case}: output after a refusal"
        );
    }
}

#[test]
fn framed_runs_open_the_response_and_end_with_the_call() {
    for form in IN_PLACE_FORMS {
        for codec in CODECS {
            let case = format!("{form:?} {codec:?}");
            // Before anything is written, a run writes the head first; the wire is that of
            // the same messages sent one by one.
            let mut call = accept(form, codec);
            assert!(call.writes_in_place(), "{case}");
            assert!(call.accepts_framed_messages(), "{case}: before the head");
            let opening = ["one", "", "three"];
            assert_eq!(call.send_framed_messages(run(codec, &opening)), Ok(3));
            call.finish(Ok(trailers())).unwrap();
            let mut wire = Wire::default();
            wire.drain(&mut call);
            assert_eq!(
                wire.seen(),
                send_all(form, codec, &opening).seen(),
                "{case}"
            );

            // A run refused before the head leaves it unwritten: the application may still
            // set headers, and the first message writes the head as usual.
            let mut call = accept(form, codec);
            let malformed = Bytes::from_static(&[0, 0, 0, 0, 9, 1]);
            assert_eq!(
                call.send_framed_messages(malformed),
                Err(UsageError::MalformedFraming),
                "{case}"
            );
            assert!(
                call.poll_output().is_none(),
                "{case}: output after a refusal"
            );
            assert!(call.response_headers_mut().is_some(), "{case}");
            call.send_message(msg(codec, "first")).unwrap();
            assert!(call.accepts_framed_messages(), "{case}: after a message");
            assert_eq!(
                call.send_framed_messages(run(codec, &["second"])),
                Ok(1),
                "{case}"
            );
            let mut wire = Wire::default();
            wire.drain(&mut call);
            assert!(call.accepts_framed_messages(), "{case}: after a drain");
            call.finish(Ok(trailers())).unwrap();
            assert!(!call.accepts_framed_messages(), "{case}: after finish");
            wire.drain(&mut call);
            assert_refused(&mut call, codec, UsageError::AlreadyFinished, &case);
            assert_eq!(
                wire.seen(),
                send_all(form, codec, &["first", "second"]).seen(),
                "{case}"
            );

            // Refused after finish even before the outputs are taken.
            let mut call = accept(form, codec);
            call.send_message(msg(codec, "first")).unwrap();
            call.finish(Ok(trailers())).unwrap();
            assert!(!call.accepts_framed_messages(), "{case}");
            assert_refused(&mut call, codec, UsageError::AlreadyFinished, &case);
            let mut wire = Wire::default();
            wire.drain(&mut call);
            assert_eq!(
                wire.seen(),
                send_all(form, codec, &["first"]).seen(),
                "{case}"
            );

            // `send_headers` writes the head: runs are taken from then on, the first one
            // included, and the wire is that of the same messages sent one by one.
            let mut call = accept(form, codec);
            call.send_headers().unwrap();
            assert!(call.accepts_framed_messages(), "{case}: after send_headers");
            let texts = texts(5);
            assert_eq!(call.send_framed_messages(run(codec, &texts)), Ok(5));
            call.finish(Ok(trailers())).unwrap();
            let mut wire = Wire::default();
            wire.drain(&mut call);
            assert_eq!(wire.seen(), send_all(form, codec, &texts).seen(), "{case}");

            // A failed call or a client gone: the call cannot send any more.
            let mut call = accept(form, codec);
            call.send_message(msg(codec, "first")).unwrap();
            call.finish(Err(Status::internal("no"))).unwrap();
            assert!(!call.accepts_framed_messages(), "{case}");
            assert_refused(&mut call, codec, UsageError::AlreadyFinished, &case);
            let mut call = accept(form, codec);
            call.send_message(msg(codec, "first")).unwrap();
            call.handle_reset();
            assert!(!call.accepts_framed_messages(), "{case}");
            assert_refused(&mut call, codec, UsageError::AlreadyFinished, &case);
        }
    }
}

#[test]
fn grpc_web_text_never_takes_framed_runs() {
    for codec in CODECS {
        let mut call = accept(Form::GrpcWebText, codec);
        assert!(!call.writes_in_place());
        assert!(!call.accepts_framed_messages(), "{codec:?}");
        call.send_message(msg(codec, "first")).unwrap();
        assert!(!call.accepts_framed_messages(), "{codec:?}");
        assert_refused(&mut call, codec, UsageError::MalformedFraming, "text");
        let mut wire = Wire::default();
        wire.drain(&mut call);
        assert_refused(&mut call, codec, UsageError::MalformedFraming, "text");
        call.send_message(msg(codec, "second")).unwrap();
        call.finish(Ok(trailers())).unwrap();
        wire.drain(&mut call);
        let reference = send_all(Form::GrpcWebText, codec, &["first", "second"]);
        assert_eq!(wire.seen(), reference.seen(), "{codec:?}");
        let envelopes = wire.envelopes(true);
        assert_eq!(envelopes.len(), 3, "{codec:?}: two messages and the end");
    }
}

#[test]
#[cfg(feature = "gzip")]
fn negotiated_response_compression_never_takes_framed_runs() {
    for (form, accept_header) in [
        (Form::Grpc, "grpc-accept-encoding"),
        (Form::GrpcWeb, "grpc-accept-encoding"),
        (Form::ConnectStream, "connect-accept-encoding"),
    ] {
        for codec in CODECS {
            let case = format!("{form:?} {codec:?}");
            let content_type = form.content_type(codec);
            let extra = [(accept_header, "gzip")];
            let config = ServerConfig::new();
            let mut call = accept_with(&config, &SERVER_STREAM, &content_type, &extra);
            assert_eq!(call.response_compression(), Some("gzip"), "{case}");
            call.send_message(msg(codec, "first")).unwrap();
            assert!(!call.writes_in_place(), "{case}");
            assert!(!call.accepts_framed_messages(), "{case}");
            assert_refused(&mut call, codec, UsageError::MalformedFraming, &case);
            let mut wire = Wire::default();
            wire.drain(&mut call);
            assert_refused(&mut call, codec, UsageError::MalformedFraming, &case);
            call.finish(Ok(trailers())).unwrap();
            wire.drain(&mut call);
            let envelopes = wire.envelopes(false);
            assert_eq!(envelopes.len(), 1 + usize::from(form.end_frame()), "{case}");
            assert_eq!(envelopes[0], (0, msg(codec, "first")), "{case}");

            // Compression turned off before the first message: runs are taken again.
            let mut call = accept_with(&config, &SERVER_STREAM, &content_type, &extra);
            call.set_response_compression(None);
            call.send_message(msg(codec, "first")).unwrap();
            assert!(call.accepts_framed_messages(), "{case}");
            assert_eq!(call.send_framed_messages(run(codec, &["a", "b"])), Ok(2));
        }
    }
}

#[test]
fn methods_without_a_response_stream_never_take_framed_runs() {
    for form in [Form::Grpc, Form::GrpcWeb, Form::ConnectStream] {
        for method in [UNARY, CLIENT_STREAM] {
            if form == Form::ConnectStream && method.kind == MethodKind::Unary {
                continue; // Connect unary is not enveloped: below.
            }
            let case = format!("{form:?} {:?}", method.kind);
            let content_type = form.content_type(Codec::Proto);
            let mut call = accept_with(&ServerConfig::new(), &method, &content_type, &[]);
            assert!(call.writes_in_place(), "{case}");
            assert!(!call.accepts_framed_messages(), "{case}");
            assert_refused(&mut call, Codec::Proto, UsageError::MalformedFraming, &case);
            // The head written, no message yet: still not.
            call.send_headers().unwrap();
            assert!(
                !call.accepts_framed_messages(),
                "{case}: after send_headers"
            );
            let mut wire = Wire::default();
            wire.drain(&mut call);
            assert_refused(&mut call, Codec::Proto, UsageError::MalformedFraming, &case);
            // After the one message the call cannot send at all: that error.
            call.send_message(msg(Codec::Proto, "one")).unwrap();
            assert!(!call.accepts_framed_messages(), "{case}: after the message");
            wire.drain(&mut call);
            assert_refused(
                &mut call,
                Codec::Proto,
                UsageError::SecondUnaryMessage,
                &case,
            );
            call.finish(Ok(trailers())).unwrap();
            wire.drain(&mut call);
            let envelopes = wire.envelopes(false);
            let messages = envelopes.iter().filter(|e| e.0 == 0).count();
            assert_eq!(messages, 1, "{case}: {envelopes:?}");
            assert_eq!(envelopes[0], (0, msg(Codec::Proto, "one")), "{case}");
        }
    }
    // Connect unary: not enveloped, never in place.
    for codec in CODECS {
        let content_type = format!("application/{}", codec.name());
        let mut call = accept_with(&ServerConfig::new(), &UNARY, &content_type, &[]);
        assert!(!call.accepts_framed_messages(), "{codec:?}");
        assert_refused(
            &mut call,
            codec,
            UsageError::MalformedFraming,
            "connect unary",
        );
        call.send_headers().unwrap();
        assert!(!call.accepts_framed_messages(), "{codec:?}");
        assert_refused(
            &mut call,
            codec,
            UsageError::MalformedFraming,
            "connect unary",
        );
    }
}

/// Runs that are not whole uncompressed envelopes, each after a valid one (`good`).
fn malformed(good: &[u8]) -> Vec<(String, Vec<u8>)> {
    let next = env(0, b"\x0a\x04next");
    let mut cases = Vec::new();
    for cut in 1..=4 {
        cases.push((format!("a lone prefix of {cut}"), next[..cut].to_vec()));
        let mut bytes = good.to_vec();
        bytes.extend_from_slice(&next[..cut]);
        cases.push((format!("a trailing prefix of {cut}"), bytes));
    }
    cases.push(("a whole prefix, no message".into(), next[..5].to_vec()));
    let mut bytes = good.to_vec();
    bytes.extend_from_slice(&next[..next.len() - 1]);
    cases.push(("the last message one byte short".into(), bytes));
    cases.push((
        "the first message one byte short".into(),
        good[..good.len() - 1].to_vec(),
    ));
    let mut bytes = good.to_vec();
    bytes.extend_from_slice(&[0, 0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
    cases.push(("a length of 4 GiB".into(), bytes));
    let mut bytes = next.clone();
    bytes[4] += 1;
    bytes.extend_from_slice(good);
    cases.push(("a length one too many, then a message".into(), bytes));
    for flags in [1u8, 2, 0x80, 0xff] {
        let mut bytes = env(flags, b"\x0a\x01x");
        bytes.extend_from_slice(good);
        cases.push((format!("flags {flags} first"), bytes));
        let mut bytes = good.to_vec();
        bytes.extend_from_slice(good);
        bytes.extend(env(flags, b""));
        bytes.extend_from_slice(good);
        cases.push((format!("flags {flags} later"), bytes));
    }
    cases
}

#[test]
fn malformed_runs_are_refused_whole_and_leave_nothing_behind() {
    for form in IN_PLACE_FORMS {
        for codec in CODECS {
            for drain_before in [false, true] {
                let case = format!("{form:?} {codec:?} drain before: {drain_before}");
                let mut call = accept(form, codec);
                let mut wire = Wire::default();
                call.send_message(msg(codec, "first")).unwrap();
                assert_eq!(call.send_framed_messages(run(codec, &["a"])), Ok(1));
                if drain_before {
                    wire.drain(&mut call);
                }
                let good = run(codec, &["b", "c"]);
                let buffered = call.buffered_output_bytes();
                for (what, bytes) in malformed(&good) {
                    assert_eq!(
                        call.send_framed_messages(Bytes::from(bytes)),
                        Err(UsageError::MalformedFraming),
                        "{case}: {what}"
                    );
                    assert_eq!(call.buffered_output_bytes(), buffered, "{case}: {what}");
                    assert!(call.accepts_framed_messages(), "{case}: {what}");
                }
                if drain_before {
                    assert!(
                        call.poll_output().is_none(),
                        "{case}: output after refusals"
                    );
                }
                // The call goes on as if nothing had happened.
                assert_eq!(call.send_framed_messages(good.clone()), Ok(2), "{case}");
                call.send_message(msg(codec, "d")).unwrap();
                call.finish(Ok(trailers())).unwrap();
                wire.drain(&mut call);
                let reference = send_all(form, codec, &["first", "a", "b", "c", "d"]);
                assert_eq!(wire.seen(), reference.seen(), "{case}");
            }
        }
    }
}

#[test]
fn the_send_limit_applies_to_each_envelope_of_a_run() {
    const LIMIT: usize = 100;
    let config = ServerConfig::new().max_send_message_size(Some(LIMIT));
    // A `StringValue` of `len` (< 128) characters is `len + 2` bytes of protobuf.
    let at_limit = "a".repeat(LIMIT - 2);
    let over = "o".repeat(LIMIT - 1);
    assert_eq!(msg(Codec::Proto, &at_limit).len(), LIMIT);
    assert_eq!(msg(Codec::Proto, &over).len(), LIMIT + 1);
    let too_large = |size| UsageError::MessageTooLarge { size, limit: LIMIT };
    for form in IN_PLACE_FORMS {
        for drain_before in [false, true] {
            let case = format!("{form:?} drain before: {drain_before}");
            let content_type = form.content_type(Codec::Proto);
            assert_eq!(accept(form, Codec::Proto).send_limit(), None, "{case}");
            let mut call = accept_with(&config, &SERVER_STREAM, &content_type, &[]);
            assert_eq!(call.send_limit(), Some(LIMIT), "{case}");
            let mut wire = Wire::default();
            call.send_message(msg(Codec::Proto, "first")).unwrap();
            if drain_before {
                wire.drain(&mut call);
            }
            let buffered = call.buffered_output_bytes();
            let refused = [
                (run(Codec::Proto, &[&over]), LIMIT + 1),
                (run(Codec::Proto, &["ok", &over]), LIMIT + 1),
                (run(Codec::Proto, &[over.as_str(), "ok"]), LIMIT + 1),
                (
                    run(Codec::Proto, &["ok", &at_limit, &over, "ok"]),
                    LIMIT + 1,
                ),
                (Bytes::from(env(0, &[7; LIMIT + 50])), LIMIT + 50),
                (Bytes::from(env(0, &vec![7; 100_000])), 100_000),
            ];
            for (framed, size) in refused {
                assert_eq!(
                    call.send_framed_messages(framed),
                    Err(too_large(size)),
                    "{case}: {size}"
                );
                assert_eq!(call.buffered_output_bytes(), buffered, "{case}");
            }
            if drain_before {
                assert!(
                    call.poll_output().is_none(),
                    "{case}: output after refusals"
                );
            }
            // `send_message` agrees on the size and limit.
            assert_eq!(
                call.send_message(msg(Codec::Proto, &over)),
                Err(too_large(LIMIT + 1)),
                "{case}"
            );
            // Exactly at the limit is fine, alone or in a run.
            let framed = run(Codec::Proto, &[&at_limit]);
            assert_eq!(call.send_framed_messages(framed), Ok(1), "{case}");
            let framed = run(Codec::Proto, &["ok", &at_limit, "ok"]);
            assert_eq!(call.send_framed_messages(framed), Ok(3), "{case}");
            call.finish(Ok(trailers())).unwrap();
            wire.drain(&mut call);
            let good = ["first", &at_limit, "ok", &at_limit, "ok"];
            let envelopes = wire.envelopes(false);
            let want: Vec<_> = good.iter().map(|s| (0, msg(Codec::Proto, s))).collect();
            assert_eq!(envelopes[..good.len()], want[..], "{case}");
            assert_eq!(
                envelopes.len(),
                good.len() + usize::from(form.end_frame()),
                "{case}"
            );
            assert_eq!(
                wire.body,
                send_all(form, Codec::Proto, &good).body,
                "{case}"
            );
        }
    }
    // Without a limit, a large message goes in a run too.
    let mut call = accept(Form::Grpc, Codec::Proto);
    call.send_message(msg(Codec::Proto, "first")).unwrap();
    let big = "b".repeat(200_000);
    assert_eq!(call.send_framed_messages(run(Codec::Proto, &[&big])), Ok(1));
}

#[test]
fn an_empty_run_sends_nothing() {
    for form in IN_PLACE_FORMS {
        for codec in CODECS {
            for drain_before in [false, true] {
                let case = format!("{form:?} {codec:?} drain before: {drain_before}");
                let mut call = accept(form, codec);
                let mut wire = Wire::default();
                call.send_message(msg(codec, "first")).unwrap();
                if drain_before {
                    wire.drain(&mut call);
                }
                let buffered = call.buffered_output_bytes();
                assert_eq!(call.send_framed_messages(Bytes::new()), Ok(0), "{case}");
                assert_eq!(call.buffered_output_bytes(), buffered, "{case}");
                if drain_before {
                    assert!(call.poll_output().is_none(), "{case}: output for nothing");
                }
                assert!(call.accepts_framed_messages(), "{case}");
                call.send_message(msg(codec, "second")).unwrap();
                call.finish(Ok(trailers())).unwrap();
                wire.drain(&mut call);
                let reference = send_all(form, codec, &["first", "second"]);
                assert_eq!(wire.seen(), reference.seen(), "{case}");
            }
        }
    }
}
