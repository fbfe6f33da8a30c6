//! `FramedRun`, which frames a run of response messages away from the call into a scratch
//! buffer, and `ServerCall::send_framed_run`, which queues the run without reading its
//! envelopes again when it was framed under the call's send limit (or a lower one), and reads
//! them (refusing the run whole) when it was not. A run must put the same bytes on the wire as
//! the same messages sent one by one.

mod common;

use bytes::BytesMut;
use connect_proto_core::call::{FramedMessages, FramedRun};
use connect_proto_core::codec::{Codec, CodecError};
use connect_proto_core::{
    Idempotency, MethodKind, MethodSpec, ServerCall, ServerConfig, ServerOutput, UsageError,
};
use http::Method;

use common::{Clock, env, msg, request_head, string_value};

const SERVER_STREAM: MethodSpec = MethodSpec::new(
    "/t.S/ServerStream",
    MethodKind::ServerStreaming,
    Idempotency::Unknown,
);
const CODECS: [Codec; 2] = [Codec::Proto, Codec::Json];
const LIMIT: usize = 100;

/// Message texts: empty ones, short ones, one of 20 KB (a varint length of three bytes).
fn texts() -> Vec<String> {
    [0, 1, 17, 0, 126, 127, 300, 20_000, 5]
        .iter()
        .map(|&len| "x".repeat(len))
        .collect()
}

/// The messages framed one envelope each, in a row, as `send_message` frames them.
fn reference(codec: Codec, texts: &[String]) -> Vec<u8> {
    texts.iter().flat_map(|s| env(0, &msg(codec, s))).collect()
}

/// A server-streaming call whose request has `content_type`.
fn accept(config: &ServerConfig, content_type: &str) -> ServerCall {
    let head = request_head(
        Method::POST,
        SERVER_STREAM.path(),
        &[("content-type", content_type), ("te", "trailers")],
    );
    let lookup = |path: &str| (path == SERVER_STREAM.path()).then_some(SERVER_STREAM);
    ServerCall::accept(config, Clock::new().now(), &head, lookup).expect("accepted")
}

/// A gRPC server-streaming call (its send limit from `config`) that sent a first message, so
/// it takes framed runs; its outputs so far are drained.
fn streaming_call(config: &ServerConfig, codec: Codec) -> ServerCall {
    let mut call = accept(config, &format!("application/grpc+{}", codec.name()));
    call.send_message(msg(codec, "first"))
        .expect("first message");
    while call.poll_output().is_some() {}
    assert!(call.accepts_framed_messages());
    call
}

/// Frames `texts` with `push_message` into a run under `limit`.
fn framed(
    buf: &mut BytesMut,
    codec: Codec,
    limit: Option<usize>,
    texts: &[&str],
) -> FramedMessages {
    let mut run = FramedRun::new(buf, limit);
    for s in texts {
        run.push_message(codec, &string_value(s)).expect("framed");
    }
    run.finish()
}

/// The data chunks the call queued, in order.
fn drained_data(call: &mut ServerCall) -> Vec<bytes::Bytes> {
    let mut chunks = Vec::new();
    while let Some(output) = call.poll_output() {
        match output {
            ServerOutput::Data(data) => chunks.push(data),
            other => panic!("unexpected output: {other:?}"),
        }
    }
    chunks
}

#[test]
fn a_run_frames_its_messages_as_send_message_does() {
    let texts = texts();
    for codec in CODECS {
        let want = reference(codec, &texts);
        // Measured up front (binary) or patched after writing (JSON), and by a caller's writer.
        let mut buf = BytesMut::new();
        let mut run = FramedRun::new(&mut buf, None);
        assert!(run.is_empty());
        for (i, s) in texts.iter().enumerate() {
            run.push_message(codec, &string_value(s))
                .expect("push_message");
            assert_eq!(run.messages(), i + 1, "{codec:?}");
        }
        assert_eq!(run.len(), want.len(), "{codec:?}");
        let messages = run.finish();
        assert_eq!(messages.messages(), texts.len(), "{codec:?}");
        assert_eq!(messages.as_bytes()[..], want[..], "{codec:?}: push_message");
        assert!(
            buf.is_empty(),
            "{codec:?}: the run was taken out of the buffer"
        );

        let mut run = FramedRun::new(&mut buf, None);
        for s in &texts {
            run.push_with(|out| codec.write_message(&string_value(s), out))
                .expect("push_with");
        }
        assert_eq!(
            run.finish().as_bytes()[..],
            want[..],
            "{codec:?}: push_with"
        );
    }
}

#[test]
fn a_run_starts_by_discarding_what_its_scratch_buffer_held() {
    for codec in CODECS {
        let mut buf = BytesMut::from(&b"left over"[..]);
        let messages = framed(&mut buf, codec, None, &["a", "b"]);
        assert_eq!(messages.messages(), 2);
        assert_eq!(
            messages.as_bytes()[..],
            reference(codec, &["a".into(), "b".into()])[..]
        );
        let empty = FramedRun::new(&mut buf, None).finish();
        assert_eq!((empty.messages(), empty.as_bytes().len()), (0, 0));
    }
}

#[test]
fn a_message_over_the_limit_or_failing_to_encode_leaves_the_run_as_it_was() {
    // A `StringValue` of `len` (< 128) characters is `len + 2` bytes of protobuf.
    let at_limit = "a".repeat(LIMIT - 2);
    let over = "o".repeat(LIMIT - 1);
    let too_large = |size| UsageError::MessageTooLarge { size, limit: LIMIT };
    for codec in CODECS {
        let mut buf = BytesMut::new();
        let mut run = FramedRun::new(&mut buf, Some(LIMIT));
        run.push_message(codec, &string_value("ok")).expect("small");
        let (len, messages) = (run.len(), run.messages());
        let size = msg(codec, &over).len();
        assert!(size > LIMIT, "{codec:?}");
        assert_eq!(
            run.push_message(codec, &string_value(&over)),
            Err(too_large(size)),
            "{codec:?}"
        );
        assert_eq!(
            run.push_with(|out| codec.write_message(&string_value(&over), out)),
            Err(too_large(size)),
            "{codec:?}"
        );
        let failure = CodecError::encoding(codec, "no");
        assert_eq!(
            run.push_with(|out| {
                out.extend_from_slice(b"partial");
                Err(failure.clone())
            }),
            Err(UsageError::Encoding(failure)),
            "{codec:?}"
        );
        assert_eq!((run.len(), run.messages()), (len, messages), "{codec:?}");
        if codec == Codec::Proto {
            run.push_message(codec, &string_value(&at_limit))
                .expect("at the limit");
        }
        run.push_message(codec, &string_value("ok"))
            .expect("after the refusals");
        let mut want = vec!["ok".to_owned()];
        if codec == Codec::Proto {
            want.push(at_limit.clone());
        }
        want.push("ok".to_owned());
        assert_eq!(
            run.finish().as_bytes()[..],
            reference(codec, &want)[..],
            "{codec:?}"
        );
    }
}

#[test]
fn a_run_framed_under_the_calls_limit_is_queued_as_it_is() {
    let texts = texts();
    let strs: Vec<&str> = texts.iter().map(String::as_str).collect();
    for codec in CODECS {
        let config = ServerConfig::new();
        let mut call = streaming_call(&config, codec);
        let mut buf = BytesMut::new();
        let run = framed(&mut buf, codec, call.send_limit(), &strs);
        let bytes = run.as_bytes().clone();
        assert_eq!(call.send_framed_run(run), Ok(texts.len()), "{codec:?}");
        assert_eq!(call.buffered_output_bytes(), bytes.len(), "{codec:?}");
        let chunks = drained_data(&mut call);
        assert_eq!(chunks, std::slice::from_ref(&bytes), "{codec:?}");
        assert_eq!(chunks[0].as_ptr(), bytes.as_ptr(), "{codec:?}: copied");
        // An empty run sends nothing.
        let empty = FramedRun::new(&mut buf, call.send_limit()).finish();
        assert_eq!(call.send_framed_run(empty), Ok(0), "{codec:?}");
        assert!(call.poll_output().is_none(), "{codec:?}");
    }
    // Framed under a lower limit than the call's is within it too.
    let config = ServerConfig::new().max_send_message_size(Some(LIMIT));
    let mut call = streaming_call(&config, Codec::Proto);
    let mut buf = BytesMut::new();
    let run = framed(&mut buf, Codec::Proto, Some(LIMIT / 2), &["a", "b"]);
    assert_eq!(call.send_framed_run(run), Ok(2));
}

#[test]
fn a_run_framed_under_a_larger_limit_is_read_again_and_refused_whole() {
    let config = ServerConfig::new().max_send_message_size(Some(LIMIT));
    let over = "o".repeat(LIMIT - 1);
    let mut buf = BytesMut::new();
    for run_limit in [None, Some(LIMIT + 1), Some(usize::MAX)] {
        let case = format!("framed under {run_limit:?}");
        let mut call = streaming_call(&config, Codec::Proto);
        let run = framed(&mut buf, Codec::Proto, run_limit, &["ok", &over, "ok"]);
        assert_eq!(
            call.send_framed_run(run),
            Err(UsageError::MessageTooLarge {
                size: LIMIT + 1,
                limit: LIMIT
            }),
            "{case}"
        );
        assert_eq!(call.buffered_output_bytes(), 0, "{case}");
        assert!(call.poll_output().is_none(), "{case}");
        // Within the call's limit after all: read, then queued.
        let run = framed(&mut buf, Codec::Proto, run_limit, &["ok", "fine"]);
        assert_eq!(call.send_framed_run(run), Ok(2), "{case}");
        let want = reference(Codec::Proto, &["ok".into(), "fine".into()]);
        assert_eq!(drained_data(&mut call).concat(), want, "{case}");
    }
}

#[test]
fn a_run_is_refused_where_framed_messages_are() {
    let mut buf = BytesMut::new();
    for codec in CODECS {
        // Before the head is written: taken, the head written first.
        let mut call = accept(
            &ServerConfig::new(),
            &format!("application/grpc+{}", codec.name()),
        );
        let run = framed(&mut buf, codec, None, &["a"]);
        assert_eq!(call.send_framed_run(run), Ok(1), "{codec:?}");
        assert!(
            matches!(call.poll_output(), Some(ServerOutput::Head(_))),
            "{codec:?}"
        );
        assert_eq!(
            drained_data(&mut call).concat(),
            reference(codec, &["a".into()])
        );
        // After the call finished.
        let mut call = streaming_call(&ServerConfig::new(), codec);
        call.finish(Ok(http::HeaderMap::new())).unwrap();
        let run = framed(&mut buf, codec, None, &["a"]);
        assert_eq!(
            call.send_framed_run(run),
            Err(UsageError::AlreadyFinished),
            "{codec:?}"
        );
    }
    // gRPC-Web text never takes framed runs.
    let mut call = accept(&ServerConfig::new(), "application/grpc-web-text+proto");
    call.send_message(msg(Codec::Proto, "first")).unwrap();
    let run = framed(&mut buf, Codec::Proto, None, &["a"]);
    assert_eq!(call.send_framed_run(run), Err(UsageError::MalformedFraming));
}
