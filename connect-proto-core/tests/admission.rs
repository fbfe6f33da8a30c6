//! `ServerCall::admit` + `Admission::into_call` is `ServerCall::accept` in two steps: the same
//! rejections, the same facts before and after the call is built, the same call (a GET's
//! message fed, an oversized one refused). And admission reads a request's headers as a
//! lookup would: the first value of a repeated header, every value of a repeated accept list.

mod common;

use std::time::{Duration, Instant};

use common::*;
use connect_proto_core::{
    Codec, Idempotency, MethodKind, MethodSpec, Protocol, ServerCall, ServerConfig, ServerEvent,
    ServerOutput,
};
use http::{Method, request};

const UNARY: MethodSpec = MethodSpec::new("/t.S/Unary", MethodKind::Unary, Idempotency::Unknown);
const GETTABLE: MethodSpec =
    MethodSpec::new("/t.S/Get", MethodKind::Unary, Idempotency::NoSideEffects);
const STREAM: MethodSpec = MethodSpec::new(
    "/t.S/Stream",
    MethodKind::ServerStreaming,
    Idempotency::Unknown,
);

fn lookup(path: &str) -> Option<MethodSpec> {
    [UNARY, GETTABLE, STREAM]
        .into_iter()
        .find(|m| m.path() == path)
}

/// Requests of every kind admission tells apart: accepted, rejected early and late.
fn heads() -> Vec<(&'static str, request::Parts)> {
    let get_message = "/t.S/Get?connect=v1&encoding=proto&base64=1&message=CgJoaQ";
    vec![
        (
            "grpc with timeout and encodings",
            request_head(
                Method::POST,
                "/t.S/Unary",
                &[
                    ("content-type", "application/grpc+proto"),
                    ("grpc-timeout", "2S"),
                    ("grpc-encoding", "gzip"),
                    ("grpc-accept-encoding", "gzip"),
                ],
            ),
        ),
        (
            "grpc-web stream",
            request_head(
                Method::POST,
                "/t.S/Stream",
                &[("content-type", "application/grpc-web+proto")],
            ),
        ),
        (
            "connect unary",
            request_head(
                Method::POST,
                "/t.S/Unary",
                &[
                    ("content-type", "application/proto"),
                    ("connect-protocol-version", "1"),
                    ("connect-timeout-ms", "250"),
                    ("accept-encoding", "gzip"),
                ],
            ),
        ),
        (
            "connect stream",
            request_head(
                Method::POST,
                "/t.S/Stream",
                &[
                    ("content-type", "application/connect+json"),
                    ("connect-content-encoding", "gzip"),
                    ("connect-accept-encoding", "gzip"),
                ],
            ),
        ),
        ("connect get", request_head(Method::GET, get_message, &[])),
        (
            "connect get over the limit",
            request_head(Method::GET, get_message, &[]),
        ),
        (
            "unknown method",
            request_head(
                Method::POST,
                "/t.S/Nope",
                &[("content-type", "application/grpc")],
            ),
        ),
        (
            "unsupported content type",
            request_head(
                Method::POST,
                "/t.S/Unary",
                &[("content-type", "text/plain")],
            ),
        ),
        (
            "malformed timeout",
            request_head(
                Method::POST,
                "/t.S/Unary",
                &[
                    ("content-type", "application/grpc"),
                    ("grpc-timeout", "soon"),
                ],
            ),
        ),
        (
            "unknown compression",
            request_head(
                Method::POST,
                "/t.S/Unary",
                &[
                    ("content-type", "application/grpc"),
                    ("grpc-encoding", "lz9"),
                ],
            ),
        ),
    ]
}

fn config(name: &str) -> ServerConfig {
    let config = ServerConfig::new();
    if name.ends_with("over the limit") {
        config.max_receive_message_size(1)
    } else {
        config
    }
}

/// Everything a call has produced so far, rendered for comparison.
fn drain(call: &mut ServerCall) -> (Vec<ServerEvent>, Vec<String>) {
    let mut events = Vec::new();
    while let Some(event) = call.poll_event() {
        events.push(event);
    }
    let mut outputs = Vec::new();
    while let Some(output) = call.poll_output() {
        outputs.push(match output {
            ServerOutput::Head(head) => format!("head {} {:?}", head.status, head.headers),
            ServerOutput::Data(data) => format!("data {data:?}"),
            ServerOutput::Trailers(trailers) => format!("trailers {trailers:?}"),
            other => format!("{other:?}"),
        });
    }
    (events, outputs)
}

#[test]
fn admitting_then_building_is_accepting() {
    let now = Instant::now();
    for (name, head) in heads() {
        let config = config(name);
        let accepted = ServerCall::accept(&config, now, &head, lookup);
        let admitted = ServerCall::admit(&config, now, &head, lookup);
        match (accepted, admitted) {
            (Err(accepted), Err(admitted)) => {
                assert_eq!(accepted.http_status(), admitted.http_status(), "{name}");
                assert_eq!(accepted.status(), admitted.status(), "{name}");
                let (a, b) = (accepted.into_parts(), admitted.into_parts());
                assert_eq!(a.0.headers, b.0.headers, "{name}");
                assert_eq!(a.1, b.1, "{name}");
            }
            (Ok(mut accepted), Ok(admission)) => {
                assert_eq!(admission.method(), accepted.method(), "{name}");
                assert_eq!(admission.protocol(), accepted.protocol(), "{name}");
                assert_eq!(admission.content_type(), accepted.content_type(), "{name}");
                assert_eq!(admission.codec(), accepted.codec(), "{name}");
                assert_eq!(admission.deadline(), accepted.deadline(), "{name}");
                assert_eq!(
                    admission.request_compression(),
                    accepted.request_compression(),
                    "{name}"
                );
                let mut built = admission.into_call();
                assert_eq!(built.is_finished(), accepted.is_finished(), "{name}");
                assert_eq!(
                    built.is_request_done(),
                    accepted.is_request_done(),
                    "{name}"
                );
                assert_eq!(
                    built.response_compression(),
                    accepted.response_compression(),
                    "{name}"
                );
                assert_eq!(drain(&mut built), drain(&mut accepted), "{name}");
            }
            (accepted, admitted) => panic!(
                "{name}: accept {:?}, admit {:?}",
                accepted.map(|_| ()),
                admitted.map(|_| ())
            ),
        }
    }
}

#[test]
fn the_facts_are_known_before_the_call_is_built() {
    let now = Instant::now();
    let config = ServerConfig::new();
    let heads = heads();
    let grpc = request_head(
        Method::POST,
        "/t.S/Unary",
        &[
            ("content-type", "application/grpc+proto"),
            ("grpc-timeout", "2S"),
        ],
    );
    let admission = ServerCall::admit(&config, now, &grpc, lookup).expect("admitted");
    assert_eq!(admission.method(), &UNARY);
    assert_eq!(admission.protocol(), Protocol::Grpc);
    assert_eq!(admission.codec(), Codec::Proto);
    assert_eq!(admission.deadline(), Some(now + Duration::from_secs(2)));
    assert_eq!(admission.request_compression(), None);
    // A compressed request (where gzip is compiled in) names its compression.
    #[cfg(feature = "gzip")]
    {
        let (_, compressed) = &heads[0];
        let admission = ServerCall::admit(&config, now, compressed, lookup).expect("admitted");
        assert_eq!(admission.request_compression(), Some("gzip"));
    }

    // A GET's message is fed when the call is built: its request has ended, and the message
    // waits as an event.
    let (_, get) = &heads[4];
    let mut call = ServerCall::admit(&config, now, get, lookup)
        .expect("admitted")
        .into_call();
    assert!(call.is_request_done() && !call.is_finished());
    assert!(matches!(call.poll_event(), Some(ServerEvent::Message(m)) if m[..] == b"\n\x02hi"[..]));
    assert_eq!(call.poll_event(), Some(ServerEvent::RequestEnd));

    // Over the receive limit, building the call finishes it with the error response.
    let (name, get) = &heads[5];
    let call = ServerCall::admit(&self::config(name), now, get, lookup)
        .expect("admitted")
        .into_call();
    assert!(call.is_finished(), "{name}");
}

#[test]
fn repeated_headers_read_as_a_lookup_reads_them() {
    let now = Instant::now();
    let config = ServerConfig::new();
    // The first of two timeouts counts, as `HeaderMap::get` returns it.
    let mut head = request_head(
        Method::POST,
        "/t.S/Unary",
        &[("content-type", "application/grpc"), ("grpc-timeout", "1S")],
    );
    head.headers
        .append("grpc-timeout", http::HeaderValue::from_static("9S"));
    let admission = ServerCall::admit(&config, now, &head, lookup).expect("admitted");
    assert_eq!(admission.deadline(), Some(now + Duration::from_secs(1)));
    assert_eq!(
        connect_proto_core::internal::timeout::request_timeout(&head.headers),
        Some(Duration::from_secs(1))
    );
}

/// Accept lists on several lines are one list: gzip, named only on the second line, is
/// negotiated; without that line, nothing is.
#[cfg(feature = "gzip")]
#[test]
fn repeated_accept_lists_are_one_list() {
    let now = Instant::now();
    let config = ServerConfig::new();
    let mut head = request_head(
        Method::POST,
        "/t.S/Unary",
        &[
            ("content-type", "application/grpc"),
            ("grpc-accept-encoding", "lz9"),
        ],
    );
    let call = ServerCall::accept(&config, now, &head, lookup).expect("admitted");
    assert_eq!(call.response_compression(), None);
    head.headers.append(
        "grpc-accept-encoding",
        http::HeaderValue::from_static("gzip"),
    );
    let call = ServerCall::admit(&config, now, &head, lookup)
        .expect("admitted")
        .into_call();
    assert_eq!(call.response_compression(), Some("gzip"));
}
