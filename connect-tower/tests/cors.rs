//! The CORS layer in front of a service: preflights for Connect (POST and GET) and gRPC-Web
//! are answered with what the protocols need, actual responses expose the status headers,
//! and origins not allowed get no CORS headers. (A real browser runs against it in
//! examples/browser.)
#![cfg(feature = "cors")]

mod support;

use buffa_types::google::protobuf::StringValue;
use connect_tower::Codec;
use connect_tower::client::{CallOptions, Client, RequestBody};
use connect_tower::cors;
use connect_tower::server::ConnectService;
use http::{HeaderValue, Method, Request};
use support::*;
use tower::{Layer, ServiceExt};

const ORIGIN: &str = "http://app.test";

type Cors = <cors::CorsLayer as Layer<ConnectService<Greeter>>>::Service;

fn service() -> Cors {
    let timer = ManualTimer::new();
    let layer = cors::layer(cors::AllowOrigin::list([HeaderValue::from_static(ORIGIN)]));
    layer.layer(serve(Greeter, &timer))
}

fn preflight(method: &str, request_headers: &str, origin: &str) -> Request<RequestBody> {
    Request::builder()
        .method(Method::OPTIONS)
        .uri(format!("http://api.test{}", GREET.path()))
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header("access-control-request-headers", request_headers)
        .body(RequestBody::empty())
        .unwrap()
}

fn header<'a>(
    response: &'a http::Response<connect_tower::server::ResponseBody>,
    name: &str,
) -> &'a str {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or("")
}

fn listed(list: &str, wanted: &str) -> bool {
    list.split(',')
        .any(|item| item.trim().eq_ignore_ascii_case(wanted))
}

#[test]
fn preflights_allow_what_connect_and_grpc_web_send() {
    // What connect-web sends for a Connect POST with a timeout, and for gRPC-Web.
    let cases = [
        (
            "POST",
            "connect-protocol-version,content-type,connect-timeout-ms",
        ),
        ("POST", "content-type,x-grpc-web,x-user-agent,grpc-timeout"),
        ("GET", "connect-protocol-version"),
    ];
    for (method, requested) in cases {
        let response = block_on(service().oneshot(preflight(method, requested, ORIGIN))).unwrap();
        assert!(
            response.status().is_success(),
            "{method} {requested}: {}",
            response.status()
        );
        assert_eq!(header(&response, "access-control-allow-origin"), ORIGIN);
        let methods = header(&response, "access-control-allow-methods");
        assert!(listed(methods, method), "{methods}");
        let allowed = header(&response, "access-control-allow-headers");
        for name in requested.split(',') {
            assert!(listed(allowed, name), "{name} not in {allowed}");
        }
        assert_eq!(header(&response, "access-control-max-age"), "7200");
    }
}

#[test]
fn other_origins_get_no_permission() {
    let response =
        block_on(service().oneshot(preflight("POST", "content-type", "http://evil.test"))).unwrap();
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

#[test]
fn calls_through_the_layer_expose_the_status_headers() {
    for wire in PROTOCOLS {
        let timer = ManualTimer::new();
        // The client's requests carry an Origin header, as a browser's do.
        let inner = service();
        let transport = tower::service_fn(move |mut request: Request<RequestBody>| {
            request
                .headers_mut()
                .insert("origin", HeaderValue::from_static(ORIGIN));
            inner.clone().oneshot(request)
        });
        let client = Client::new(transport, wire.config(Codec::Proto)).timer(timer.clone());
        let response = block_on(client.unary::<StringValue, StringValue>(
            &GREET,
            sv("cors"),
            CallOptions::new(),
        ))
        .expect("call through the CORS layer");
        assert_eq!(response.message().value, "hello, cors", "{wire:?}");
        assert_eq!(
            response.headers()["access-control-allow-origin"],
            ORIGIN,
            "{wire:?}"
        );
        let exposed = response.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap();
        for name in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
            assert!(listed(exposed, name), "{wire:?}: {name} not in {exposed}");
        }
    }
}
