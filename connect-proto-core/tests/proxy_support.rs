//! What a proxy needs from the core, played with real calls on both legs (client → proxy's
//! `ServerCall`, proxy's `ClientCall` → backend): compressed payloads passed through untouched
//! in both directions, for every wire form; uncompressed messages stay plain; decompression
//! on demand, bounded; usage errors without a compression; methods inferred from requests for
//! any path; owned method paths; application metadata.

#![cfg(feature = "gzip")]

mod common;

use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, request};

use common::*;
use connect_proto_core::call::application_metadata;
use connect_proto_core::codec::Codec;
use connect_proto_core::compression::CompressionRegistry;
use connect_proto_core::internal::envelope::FLAG_COMPRESSED;
use connect_proto_core::{
    CallOptions, ClientCall, ClientConfig, ClientEvent, ClientOutput, Code, Idempotency,
    MethodKind, MethodSpec, Protocol, ServerCall, ServerConfig, ServerEvent, ServerOutput,
    UsageError,
};

/// A request as it left a client: head, body, and whether it ended.
struct Request {
    head: request::Parts,
    body: Vec<Bytes>,
}

fn take_request(client: &mut ClientCall) -> Request {
    let mut head = None;
    let mut body = Vec::new();
    while let Some(output) = client.poll_output() {
        match output {
            ClientOutput::Head(h) => head = Some(h),
            ClientOutput::Data(d) => body.push(d),
            ClientOutput::End | ClientOutput::Cancel => {}
            other => panic!("unexpected: {other:?}"),
        }
    }
    Request {
        head: head.expect("a request head"),
        body,
    }
}

/// Admits `request` with `spec` as the only method and feeds its whole body. The server
/// compresses every response message when compression was negotiated.
fn serve(request: &Request, spec: &MethodSpec, pass_through: bool, now: Instant) -> ServerCall {
    serve_with(
        ServerConfig::new().compress_min_bytes(0),
        request,
        spec,
        pass_through,
        now,
    )
}

fn serve_with(
    config: ServerConfig,
    request: &Request,
    spec: &MethodSpec,
    pass_through: bool,
    now: Instant,
) -> ServerCall {
    let mut server =
        ServerCall::accept(&config, now, &request.head, |_| Some(spec.clone())).expect("admitted");
    server.set_pass_through(pass_through);
    for chunk in &request.body {
        server.handle_data(now, chunk.clone());
    }
    server.handle_end(None);
    server
}

/// The server's whole response fed to `client`.
fn respond(server: &mut ServerCall, client: &mut ClientCall) -> Vec<Bytes> {
    let mut body = Vec::new();
    while let Some(output) = server.poll_output() {
        match output {
            ServerOutput::Head(head) => client.handle_response_head(head),
            ServerOutput::Data(data) => {
                body.push(data.clone());
                client.handle_data(data);
            }
            ServerOutput::Trailers(trailers) => client.handle_trailers(trailers),
            ServerOutput::End => client.handle_end(),
            other => panic!("unexpected: {other:?}"),
        }
    }
    body
}

fn server_events(call: &mut ServerCall) -> Vec<ServerEvent> {
    std::iter::from_fn(|| call.poll_event()).collect()
}

fn client_events(call: &mut ClientCall) -> Vec<ClientEvent> {
    std::iter::from_fn(|| call.poll_event()).collect()
}

/// Compressed envelopes (or a compressed Connect unary body) of a wire body.
fn compressed_payloads(body: &[Bytes], wire: Wire, unary_connect: bool) -> Vec<Bytes> {
    let joined = concat(&body.iter().map(|b| &b[..]).collect::<Vec<_>>());
    if unary_connect {
        return vec![joined];
    }
    parse_envelopes(&joined, wire.text())
        .into_iter()
        .filter(|(flags, _)| flags & FLAG_COMPRESSED != 0)
        .map(|(_, payload)| payload)
        .collect()
}

const SPEC_UNARY: MethodSpec = MethodSpec::new(
    "/acme.v1.Svc/Unary",
    MethodKind::Unary,
    Idempotency::Unknown,
);
const SPEC_BIDI: MethodSpec = MethodSpec::new(
    "/acme.v1.Svc/Bidi",
    MethodKind::BidiStreaming,
    Idempotency::Unknown,
);

#[test]
fn compressed_messages_pass_through_untouched_in_both_directions() {
    let gzip = algorithm("gzip");
    let message = Bytes::from(vec![7u8; 600]);
    for wire in WIRES {
        for spec in [SPEC_UNARY, SPEC_BIDI] {
            let what = format!("{wire:?} {}", spec.path());
            let now = Clock::new().now();
            let compressing = |wire: Wire| {
                wire.client_config(Codec::Proto)
                    .send_compression(Some(gzip.clone()))
                    .compress_min_bytes(0)
            };
            // Leg 1: the client compresses; the proxy's server call hands the payload over.
            let mut client =
                ClientCall::start(&compressing(wire), now, &spec, CallOptions::new()).unwrap();
            client.send_message(now, message.clone()).unwrap();
            if spec.kind.streams_requests() {
                client.close_send().unwrap();
            }
            let sent = take_request(&mut client);
            let unary_connect = wire == Wire::Connect && !spec.kind.is_streaming();
            let on_wire = compressed_payloads(&sent.body, wire, unary_connect);
            let mut proxy_server = serve(&sent, &spec, true, now);
            assert_eq!(proxy_server.request_compression(), Some("gzip"), "{what}");
            let events = server_events(&mut proxy_server);
            let payload = match &events[..] {
                [
                    ServerEvent::CompressedMessage(payload),
                    ServerEvent::RequestEnd,
                ] => payload.clone(),
                other => panic!("{what}: {other:?}"),
            };
            assert_eq!(on_wire, vec![payload.clone()], "{what}: the bytes as sent");
            assert_eq!(
                proxy_server.decompress_message(payload.clone()).unwrap(),
                message
            );

            // Leg 2: the proxy's client call forwards it as it is (over gRPC to the backend).
            let mut proxy_client =
                ClientCall::start(&compressing(Wire::Grpc), now, &spec, CallOptions::new())
                    .unwrap();
            assert_eq!(proxy_client.send_compression(), Some("gzip"));
            proxy_client
                .send_compressed_message(now, payload.clone())
                .unwrap();
            if spec.kind.streams_requests() {
                proxy_client.close_send().unwrap();
            }
            let forwarded = take_request(&mut proxy_client);
            assert_eq!(
                compressed_payloads(&forwarded.body, Wire::Grpc, false),
                vec![payload],
                "{what}: forwarded untouched"
            );
            let mut backend = serve(&forwarded, &spec, false, now);
            let events = server_events(&mut backend);
            assert_eq!(
                events,
                [
                    ServerEvent::Message(message.clone()),
                    ServerEvent::RequestEnd
                ],
                "{what}"
            );

            // The response: the backend compresses (the proxy accepted gzip), the proxy's
            // client call hands the payload over, the proxy's server call forwards it.
            assert_eq!(backend.response_compression(), Some("gzip"), "{what}");
            backend.send_message(message.clone()).unwrap();
            backend.finish(Ok(HeaderMap::new())).unwrap();
            proxy_client.set_pass_through(true);
            respond(&mut backend, &mut proxy_client);
            assert_eq!(proxy_client.response_compression(), Some("gzip"), "{what}");
            let events = client_events(&mut proxy_client);
            let [
                ClientEvent::Headers(_),
                ClientEvent::CompressedMessage(payload),
                ClientEvent::Finished(Ok(_)),
            ] = &events[..]
            else {
                panic!("{what}: {events:?}")
            };
            assert_eq!(
                proxy_client.decompress_message(payload.clone()).unwrap(),
                message
            );
            assert_eq!(proxy_server.response_compression(), Some("gzip"), "{what}");
            proxy_server
                .send_compressed_message(payload.clone())
                .unwrap();
            proxy_server.finish(Ok(HeaderMap::new())).unwrap();
            let body = respond(&mut proxy_server, &mut client);
            assert_eq!(
                compressed_payloads(&body, wire, unary_connect),
                vec![payload.clone()],
                "{what}: the response bytes as the backend compressed them"
            );
            let events = client_events(&mut client);
            assert!(
                matches!(&events[..], [ClientEvent::Headers(_), ClientEvent::Message(m), ClientEvent::Finished(Ok(_))] if *m == message),
                "{what}: {events:?}"
            );
        }
    }
}

#[test]
fn uncompressed_messages_stay_plain_under_pass_through() {
    let gzip = algorithm("gzip");
    let now = Clock::new().now();
    // Below the threshold: sent uncompressed although gzip was negotiated.
    let config = Wire::Grpc
        .client_config(Codec::Proto)
        .send_compression(Some(gzip))
        .compress_min_bytes(1024);
    let mut client = ClientCall::start(&config, now, &SPEC_BIDI, CallOptions::new()).unwrap();
    client
        .send_message(now, Bytes::from_static(b"small"))
        .unwrap();
    client
        .send_message(now, Bytes::from(vec![1u8; 2000]))
        .unwrap();
    client.close_send().unwrap();
    let mut server = serve(&take_request(&mut client), &SPEC_BIDI, true, now);
    let events = server_events(&mut server);
    assert!(
        matches!(&events[..], [ServerEvent::Message(m), ServerEvent::CompressedMessage(_), ServerEvent::RequestEnd] if &m[..] == b"small"),
        "{events:?}"
    );
}

#[test]
fn compressed_sends_need_a_negotiated_compression() {
    let now = Clock::new().now();
    let config = Wire::Grpc.client_config(Codec::Proto);
    let mut client = ClientCall::start(&config, now, &SPEC_BIDI, CallOptions::new()).unwrap();
    assert_eq!(client.send_compression(), None);
    assert!(matches!(
        client.send_compressed_message(now, Bytes::from_static(b"x")),
        Err(UsageError::Compression(_))
    ));
    client.close_send().unwrap();
    let identity_only = ServerConfig::new().compression(CompressionRegistry::identity_only());
    let mut server = serve_with(
        identity_only,
        &take_request(&mut client),
        &SPEC_BIDI,
        true,
        now,
    );
    assert_eq!(server.response_compression(), None);
    assert!(matches!(
        server.send_compressed_message(Bytes::from_static(b"x")),
        Err(UsageError::Compression(_))
    ));
    // Without a compression there is nothing to decompress: the payload is returned as is.
    assert_eq!(
        server.decompress_message(Bytes::from_static(b"x")).unwrap(),
        Bytes::from_static(b"x")
    );
}

#[test]
fn decompression_on_demand_is_bounded_by_the_receive_limit() {
    let gzip = algorithm("gzip");
    let now = Clock::new().now();
    let config = Wire::Grpc
        .client_config(Codec::Proto)
        .send_compression(Some(gzip.clone()))
        .compress_min_bytes(0);
    let mut client = ClientCall::start(&config, now, &SPEC_BIDI, CallOptions::new()).unwrap();
    client.close_send().unwrap();
    let request = take_request(&mut client);
    let server = ServerCall::accept(
        &ServerConfig::new().max_receive_message_size(100),
        now,
        &request.head,
        |_| Some(SPEC_BIDI),
    )
    .unwrap();
    let bomb = gzip.compress(&[0u8; 10_000]).unwrap();
    let error = server.decompress_message(bomb.clone()).unwrap_err();
    assert_eq!(error.code(), Code::ResourceExhausted);
    let garbage = server
        .decompress_message(Bytes::from_static(b"not gzip"))
        .unwrap_err();
    assert_eq!(garbage.code(), Code::InvalidArgument);
    assert_eq!(
        server
            .decompress_message(gzip.compress(&[1u8; 100]).unwrap())
            .unwrap(),
        Bytes::from(vec![1u8; 100])
    );
}

#[test]
fn methods_are_inferred_from_the_request_for_any_path() {
    let path = "/any.pkg.v9.Thing/DoIt";
    let post =
        |content_type: &str| request_head(Method::POST, path, &[("content-type", content_type)]);
    let cases = [
        (
            post("application/proto"),
            MethodKind::Unary,
            Idempotency::Unknown,
        ),
        (
            post("application/json; charset=utf-8"),
            MethodKind::Unary,
            Idempotency::Unknown,
        ),
        (
            post("application/connect+proto"),
            MethodKind::BidiStreaming,
            Idempotency::Unknown,
        ),
        (
            post("application/grpc"),
            MethodKind::BidiStreaming,
            Idempotency::Unknown,
        ),
        (
            post("application/grpc-web-text+proto"),
            MethodKind::BidiStreaming,
            Idempotency::Unknown,
        ),
        (
            post("text/html"),
            MethodKind::BidiStreaming,
            Idempotency::Unknown,
        ),
        (
            request_head(
                Method::GET,
                &format!("{path}?connect=v1&encoding=proto&message="),
                &[],
            ),
            MethodKind::Unary,
            Idempotency::NoSideEffects,
        ),
    ];
    let now = Clock::new().now();
    for (head, kind, idempotency) in cases {
        let spec = MethodSpec::inferred(&head);
        assert_eq!(
            (spec.path(), spec.kind, spec.idempotency),
            (path, kind, idempotency)
        );
        assert_eq!(
            (spec.service_name(), spec.method_name()),
            ("any.pkg.v9.Thing", "DoIt")
        );
        // Every well-formed request is admitted with its inferred spec.
        let admitted = ServerCall::accept(&ServerConfig::new(), now, &head, |p| {
            assert_eq!(p, path);
            Some(spec.clone())
        });
        let content_type = head.headers.get("content-type");
        let html = content_type.is_some_and(|v| v == "text/html");
        assert_eq!(admitted.is_ok(), !html, "{head:?}");
    }
}

#[test]
fn owned_method_paths_reach_the_wire() {
    let now = Clock::new().now();
    let spec = MethodSpec::owned(
        format!("/dyn.v1.Svc/{}", "Made"),
        MethodKind::Unary,
        Idempotency::Unknown,
    );
    for base in ["http://backend:8080", "http://backend:8080/prefix/"] {
        let config = ClientConfig::new(base.parse().unwrap()).protocol(Protocol::Grpc);
        let mut client = ClientCall::start(&config, now, &spec, CallOptions::new()).unwrap();
        client.send_message(now, Bytes::new()).unwrap();
        let request = take_request(&mut client);
        let expected = base.trim_end_matches('/').to_owned() + "/dyn.v1.Svc/Made";
        assert_eq!(request.head.uri.to_string(), expected);
    }
}

#[test]
fn application_metadata_leaves_the_protocol_headers_behind() {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("content-type", "application/grpc"),
        ("grpc-timeout", "1S"),
        ("grpc-encoding", "gzip"),
        ("te", "trailers"),
        ("connect-protocol-version", "1"),
        ("x-grpc-web", "1"),
        ("x-user-agent", "grpc-web-javascript/0.1"),
        ("x-request-id", "abc"),
        ("x-trace-bin", "AAEC"),
        ("authorization", "Bearer t"),
    ] {
        headers.append(name, HeaderValue::from_static(value));
    }
    headers.append("x-request-id", HeaderValue::from_static("def"));
    let metadata = application_metadata(&headers);
    let mut names: Vec<&str> = metadata.keys().map(|k| k.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["authorization", "x-request-id", "x-trace-bin"]);
    assert_eq!(metadata.get_all("x-request-id").iter().count(), 2);
}
