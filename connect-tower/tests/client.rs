//! The client over transports that misbehave, and its own settings: a transport that never
//! becomes ready is bounded by the call's deadline; a refused request, a stream reset (by
//! HTTP/2 code) and a response body that breaks mid-stream end the call with the status the
//! core maps them to; default timeouts and headers from `ClientConfig`; a deadline already
//! past fails without a request; responses decoded as zero-copy views; call futures stay
//! smaller than the call state they point at.

mod support;

use std::convert::Infallible;
use std::future::{pending, ready};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use buffa_types::google::protobuf::StringValue;
use bytes::Bytes;
use connect_tower::client::{CallOptions, Client, RequestBody};
use connect_tower::codec::View;
use connect_tower::server::{ConnectService, ResponseBody};
use connect_tower::{BoxError, Code, Codec, Response, Status, TransportError};
use http::{HeaderMap, HeaderValue};
use http_body::{Body, Frame};
use support::*;

const SECOND: Duration = Duration::from_secs(1);
const MILLI: Duration = Duration::from_millis(1);

/// What a [`Faulty`] transport does wrong.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// `poll_ready` stays pending (and never wakes).
    NeverReady,
    /// The request fails without a stream reset (connection refused).
    Refuse,
    /// The request fails with an HTTP/2 stream reset.
    Reset(u32),
    /// The response body fails after its first frame, with a reset code or plainly.
    BreakBody(Option<u32>),
}

/// A transport in front of a [`ConnectService`] that fails in one way.
#[derive(Clone)]
struct Faulty {
    service: ConnectService<Echo>,
    fault: Fault,
}

fn failure(code: Option<u32>) -> BoxError {
    match code {
        Some(code) => Box::new(TransportError::reset(code, "stream reset")),
        None => "connection refused".into(),
    }
}

impl tower_service::Service<http::Request<RequestBody>> for Faulty {
    type Response = http::Response<BreakingBody>;
    type Error = BoxError;
    type Future = BoxFuture<Result<http::Response<BreakingBody>, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match self.fault {
            Fault::NeverReady => Poll::Pending,
            _ => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, request: http::Request<RequestBody>) -> Self::Future {
        match self.fault {
            Fault::NeverReady => unreachable!("never ready"),
            Fault::Refuse => Box::pin(ready(Err(failure(None)))),
            Fault::Reset(code) => Box::pin(ready(Err(failure(Some(code))))),
            Fault::BreakBody(code) => {
                let response = self.service.serve(request);
                Box::pin(async move {
                    let response = response.await;
                    Ok(response.map(|inner| BreakingBody {
                        inner,
                        frames_left: 1,
                        code,
                    }))
                })
            }
        }
    }
}

/// A response body that fails after `frames_left` frames.
struct BreakingBody {
    inner: ResponseBody,
    frames_left: usize,
    code: Option<u32>,
}

impl Body for BreakingBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.frames_left == 0 {
            return Poll::Ready(Some(Err(failure(this.code))));
        }
        this.frames_left -= 1;
        Pin::new(&mut this.inner)
            .poll_frame(cx)
            .map(|frame| frame.map(|f| f.map_err(|never: Infallible| match never {})))
    }
}

fn faulty(echo: Echo, fault: Fault, timer: &ManualTimer) -> Client<Faulty> {
    let transport = Faulty {
        service: serve(echo, timer),
        fault,
    };
    client(transport, Wire::Grpc, Codec::Proto, timer)
}

#[test]
fn a_transport_that_never_becomes_ready_is_bounded_by_the_deadline() {
    let timer = ManualTimer::new();
    let echo = Echo::new();
    let dispatched = echo.dispatched.clone();
    let client = faulty(echo, Fault::NeverReady, &timer);
    let mut call = Task::new(client.unary::<StringValue, StringValue>(
        &UNARY,
        sv(""),
        CallOptions::new().timeout(SECOND),
    ));
    call.pending();
    timer.advance(999 * MILLI);
    assert_eq!(call.wakes(), 0);
    call.pending();
    timer.advance(MILLI);
    assert_eq!(call.wakes(), 1);
    assert_eq!(call.ready().unwrap_err().code(), Code::DeadlineExceeded);
    assert_eq!(dispatched.get(), 0, "no request was made");
}

#[test]
fn refused_and_reset_requests_end_with_the_mapped_status() {
    let cases = [
        (Fault::Refuse, Code::Unavailable),
        (Fault::Reset(0x7), Code::Unavailable), // REFUSED_STREAM: safe to retry
        (Fault::Reset(0x8), Code::Canceled),    // CANCEL
        (Fault::Reset(0xb), Code::ResourceExhausted), // ENHANCE_YOUR_CALM
        (Fault::Reset(0x2), Code::Internal),    // INTERNAL_ERROR
    ];
    for (fault, code) in cases {
        let timer = ManualTimer::new();
        let client = faulty(Echo::new(), fault, &timer);
        let unary =
            block_on(client.unary::<StringValue, StringValue>(&UNARY, sv(""), CallOptions::new()));
        let status = unary.unwrap_err();
        assert_eq!(status.code(), code, "{fault:?}: {status:?}");
        let streamed = block_on(async {
            let mut call = client
                .bidi_streaming::<StringValue, StringValue>(&BIDI, CallOptions::new())
                .await?;
            let _ = call.send(sv("a")).await;
            call.message().await
        });
        assert_eq!(streamed.unwrap_err().code(), code, "{fault:?}: bidi");
    }
}

#[test]
fn a_response_body_that_breaks_mid_stream_keeps_the_messages_before_it() {
    for (code, expected) in [(None, Code::Unavailable), (Some(0x8), Code::Canceled)] {
        let timer = ManualTimer::new();
        let client = faulty(Echo::new(), Fault::BreakBody(code), &timer);
        block_on(async {
            // The three messages leave in one body frame (queued together); gRPC's trailers,
            // which would end the call successfully, never arrive.
            let mut stream = client
                .server_streaming::<StringValue, StringValue>(
                    &SERVER_STREAM,
                    sv("a,b,c"),
                    CallOptions::new(),
                )
                .await
                .unwrap();
            for expected in ["a", "b", "c"] {
                assert_eq!(stream.message().await.unwrap().unwrap().value, expected);
            }
            let status = stream.message().await.unwrap_err();
            assert_eq!(status.code(), expected, "{code:?}: {status:?}");
        });
    }
}

#[test]
fn the_configured_default_timeout_applies_unless_a_call_sets_its_own() {
    for (options, fires_after) in [
        (CallOptions::new(), SECOND),
        (CallOptions::new().timeout(2 * SECOND), 2 * SECOND),
    ] {
        let timer = ManualTimer::new();
        let echo = Echo::new().on_unary(|_request| pending());
        let config = Wire::Connect
            .config(Codec::Proto)
            .default_timeout(Some(SECOND));
        let client = Client::new(serve(echo, &timer), config).timer(timer.clone());
        let mut call = Task::new(client.unary::<StringValue, StringValue>(&UNARY, sv(""), options));
        call.pending();
        timer.advance(fires_after - MILLI);
        call.pending();
        timer.advance(MILLI);
        let status = call.ready().unwrap_err();
        assert_eq!(
            status.code(),
            Code::DeadlineExceeded,
            "after {fires_after:?}"
        );
    }
}

#[test]
fn a_deadline_already_past_fails_without_making_a_request() {
    for wire in PROTOCOLS {
        let timer = ManualTimer::new();
        let echo = Echo::new();
        let dispatched = echo.dispatched.clone();
        let client = client(serve(echo, &timer), wire, Codec::Proto, &timer);
        let past = CallOptions::new().deadline(timer.now());
        let status =
            block_on(client.unary::<StringValue, StringValue>(&UNARY, sv(""), past.clone()))
                .unwrap_err();
        assert_eq!(
            status.code(),
            Code::DeadlineExceeded,
            "{wire:?}: {status:?}"
        );
        let streamed = block_on(async {
            let mut call = client
                .client_streaming::<StringValue, StringValue>(&CLIENT_STREAM, past)
                .await?;
            let _ = call.send(sv("a")).await;
            call.finish().await
        });
        assert_eq!(
            streamed.unwrap_err().code(),
            Code::DeadlineExceeded,
            "{wire:?}"
        );
        assert_eq!(dispatched.get(), 0, "{wire:?}: nothing reached the server");
    }
}

#[test]
fn default_headers_are_sent_with_every_call_and_call_headers_are_added() {
    let timer = ManualTimer::new();
    let echo = Echo::new().on_unary(|request| async move {
        let tenant: Vec<_> = request
            .headers()
            .get_all("x-tenant")
            .iter()
            .cloned()
            .collect();
        Ok(Response::new(StringValue::from(format!("{tenant:?}"))))
    });
    let mut defaults = HeaderMap::new();
    defaults.insert("x-tenant", HeaderValue::from_static("acme"));
    let config = Wire::Grpc.config(Codec::Proto).default_headers(defaults);
    let client = Client::new(serve(echo, &timer), config).timer(timer.clone());
    let plain =
        block_on(client.unary::<StringValue, StringValue>(&UNARY, sv(""), CallOptions::new()));
    assert_eq!(plain.unwrap().message().value, "[\"acme\"]");
    let options = CallOptions::new().header(
        http::HeaderName::from_static("x-tenant"),
        HeaderValue::from_static("extra"),
    );
    let both = block_on(client.unary::<StringValue, StringValue>(&UNARY, sv(""), options));
    assert_eq!(both.unwrap().message().value, "[\"acme\", \"extra\"]");
}

#[test]
fn responses_decode_as_zero_copy_views_with_either_codec() {
    for codec in CODECS {
        let timer = ManualTimer::new();
        let client = client(serve(Echo::new(), &timer), Wire::Connect, codec, &timer);
        let response = block_on(client.unary::<StringValue, View<StringValue>>(
            &UNARY,
            sv("viewed"),
            CallOptions::new(),
        ))
        .unwrap();
        assert_eq!(response.message().value(), "viewed", "{codec:?}");
        let streamed = block_on(async {
            let mut stream = client
                .server_streaming::<StringValue, View<StringValue>>(
                    &SERVER_STREAM,
                    sv("v,w"),
                    CallOptions::new(),
                )
                .await?;
            let mut seen = Vec::new();
            while let Some(view) = stream.message().await? {
                seen.push(view.value().to_owned());
            }
            Ok::<_, Status>(seen)
        });
        assert_eq!(streamed.unwrap(), ["v", "w"], "{codec:?}");
    }
}

/// A call's future holds pointers to its state, not the state: the core's call moves to the
/// heap before any future is made, and retry attempts are boxed, so awaiting a call (which
/// moves its future) copies little. Before, a unary call's future held the call several
/// times over (19.6 KB here, 20.5 KB over `H2Connection`), and copying it was half of a unary
/// call's instructions in the client benchmark.
#[test]
fn call_futures_do_not_hold_the_call_state() {
    let timer = ManualTimer::new();
    let client = support::client(serve(Echo::new(), &timer), Wire::Grpc, Codec::Proto, &timer);
    let unary = client.unary::<_, StringValue>(&UNARY, sv("hi"), CallOptions::new());
    let server_stream =
        client.server_streaming::<_, StringValue>(&SERVER_STREAM, sv("hi"), CallOptions::new());
    let client_stream =
        client.client_streaming::<StringValue, StringValue>(&CLIENT_STREAM, CallOptions::new());
    let bidi = client.bidi_streaming::<StringValue, StringValue>(&BIDI, CallOptions::new());
    let sizes = [
        ("unary", std::mem::size_of_val(&unary)),
        ("server stream", std::mem::size_of_val(&server_stream)),
        ("client stream", std::mem::size_of_val(&client_stream)),
        ("bidi", std::mem::size_of_val(&bidi)),
    ];
    // The futures are about 2 KB (their own state machines): room for the compiler's layout
    // to vary, but not for the call as well (0.9 KB, its queues apart).
    let call_state = std::mem::size_of::<connect_proto_core::ClientCall>();
    let budget = 2560;
    for (kind, size) in sizes {
        assert!(
            size < budget,
            "a {kind} call's future is {size} bytes (budget {budget})"
        );
        assert!(
            size + call_state >= budget,
            "a {kind} call's future ({size} bytes) is too small for this budget to catch it \
             holding the call ({call_state} bytes)"
        );
    }
}

/// `count` comma-separated values, `m0,m1,…`: the echo server streams one message per value,
/// and they leave in one body chunk (queued together).
fn numbered(count: usize) -> String {
    (0..count)
        .map(|i| format!("m{i}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn many_messages_of_one_chunk_arrive_in_order_over_every_protocol() {
    // Forty messages: more than the client takes from the call under one lock (a batch of
    // sixteen), so batches follow one another and the last is partial.
    for wire in PROTOCOLS {
        let timer = ManualTimer::new();
        let client = client(serve(Echo::new(), &timer), wire, Codec::Proto, &timer);
        let received = block_on(async {
            let mut stream = client
                .server_streaming::<StringValue, View<StringValue>>(
                    &SERVER_STREAM,
                    sv(&numbered(40)),
                    CallOptions::new(),
                )
                .await?;
            let mut received = Vec::new();
            while let Some(message) = stream.message().await? {
                received.push(message.value().to_owned());
            }
            assert!(stream.trailers().is_some(), "{wire:?}: the call ended");
            Ok::<_, Status>(received)
        })
        .unwrap();
        let expected: Vec<String> = (0..40).map(|i| format!("m{i}")).collect();
        assert_eq!(received, expected, "{wire:?}");
    }
}

#[test]
fn a_message_that_does_not_decode_ends_the_stream_before_the_messages_after_it() {
    // Read as `Int32Value`, an empty `StringValue` decodes (no fields) and a non-empty one
    // does not (field 1 has the wrong wire type). The third of five messages fails; the two
    // after it, which would decode, arrived in the same chunk and must not be delivered.
    use buffa_types::google::protobuf::Int32Value;
    for wire in PROTOCOLS {
        let timer = ManualTimer::new();
        let client = client(serve(Echo::new(), &timer), wire, Codec::Proto, &timer);
        block_on(async {
            let mut stream = client
                .server_streaming::<StringValue, Int32Value>(
                    &SERVER_STREAM,
                    sv(",,x,,"),
                    CallOptions::new(),
                )
                .await
                .unwrap();
            for _ in 0..2 {
                assert_eq!(
                    stream.message().await.unwrap().unwrap().value,
                    0,
                    "{wire:?}"
                );
            }
            let status = stream.message().await.unwrap_err();
            assert_eq!(status.code(), Code::Internal, "{wire:?}: {status:?}");
            let again = stream.message().await.unwrap_err();
            assert_eq!(
                again.code(),
                Code::Internal,
                "{wire:?}: the stream stays failed"
            );
        });
    }
}
