//! The greeter mounted in an axum router with `ConnectRouterExt::connect_service`, served by
//! `axum::serve` on a real socket: every RPC kind over Connect, gRPC and gRPC-Web, next to a
//! stateful axum route, with a router layer that wraps RPCs too.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use connect_proto_core::Protocol;
use connect_tokio_hyper::{HttpClient, TokioTimer};
use connect_tower::Code;
use connect_tower::axum::ConnectRouterExt;
use connect_tower::client::{Client, ClientConfig};
use connect_tower::server::ConnectService;
use greeter_example::greet::greeter::GreeterClient;
use greeter_example::greet::{HelloRequest, RepeatRequest};
use http_body_util::BodyExt;

#[derive(Clone)]
struct AppState {
    name: &'static str,
}

async fn serve_app() -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let rpc = ConnectService::builder(greeter_example::service())
        .timer(TokioTimer::new())
        .build();
    let app = Router::new()
        .route(
            "/whoami",
            get(|State(state): State<AppState>| async move { state.name }),
        )
        .connect_service(rpc)
        .layer(axum::middleware::map_response(
            |mut response: axum::response::Response| async move {
                response
                    .headers_mut()
                    .insert("x-layer", http::HeaderValue::from_static("seen"));
                response
            },
        ))
        .with_state(AppState { name: "app" });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    (addr, stop)
}

fn client(addr: SocketAddr, protocol: Protocol) -> GreeterClient<HttpClient> {
    // gRPC needs HTTP/2 (h2c here); the others go over HTTP/1.1.
    let transport = match protocol {
        Protocol::Grpc => HttpClient::plaintext_h2c(),
        _ => HttpClient::plaintext_http1(),
    };
    let config = ClientConfig::new(format!("http://{addr}").parse().unwrap())
        .protocol(protocol)
        .default_timeout(Some(Duration::from_secs(10)));
    GreeterClient::new(Client::new(transport, config).timer(TokioTimer::new()))
}

fn hello(name: &str) -> HelloRequest {
    HelloRequest {
        name: name.into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_kind_over_every_protocol_through_axum() {
    let (addr, _stop) = serve_app().await;
    for protocol in [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb] {
        let greeter = client(addr, protocol);

        let reply = greeter.say_hello(hello("Ada")).await.expect("unary");
        assert_eq!(reply.message().message, "Hello, Ada!", "{protocol:?}");
        assert_eq!(
            reply.headers().get("x-layer").map(|v| v.as_bytes()),
            Some(&b"seen"[..]),
            "the router's layer wraps RPCs ({protocol:?})"
        );
        let status = greeter.say_hello(hello("")).await.expect_err("empty name");
        assert_eq!(status.code(), Code::InvalidArgument, "{protocol:?}");

        let mut stream = greeter
            .say_hello_repeatedly(RepeatRequest {
                name: "Bo".into(),
                times: 3,
                ..Default::default()
            })
            .await
            .expect("server stream");
        let mut received = Vec::new();
        while let Some(reply) = stream.message().await.expect("stream message") {
            received.push(reply.message);
        }
        assert_eq!(received.len(), 3, "{protocol:?}");

        let mut call = greeter.say_hello_to_all().await.expect("client stream");
        for name in ["A", "B"] {
            call.send(hello(name)).await.expect("send");
        }
        let reply = call.finish().await.expect("client stream reply");
        assert!(reply.message().message.contains('A'), "{protocol:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_routes_and_unknown_paths_sit_beside_the_service() {
    let (addr, _stop) = serve_app().await;
    let mut transport = HttpClient::plaintext_http1();
    let request = http::Request::get(format!("http://{addr}/whoami"))
        .body(connect_tower::client::RequestBody::empty())
        .unwrap();
    std::future::poll_fn(|cx| tower_service::Service::poll_ready(&mut transport, cx))
        .await
        .unwrap();
    let response = tower_service::Service::call(&mut transport, request)
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-layer"], "seen");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"app", "the route reads axum state");

    // A method the service does not serve: axum's fallback (404), which clients read as
    // unimplemented.
    for protocol in [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb] {
        let config = ClientConfig::new(format!("http://{addr}").parse().unwrap())
            .protocol(protocol)
            .default_timeout(Some(Duration::from_secs(10)));
        let transport = match protocol {
            Protocol::Grpc => HttpClient::plaintext_h2c(),
            _ => HttpClient::plaintext_http1(),
        };
        let client = Client::new(transport, config).timer(TokioTimer::new());
        let missing = connect_tower::MethodSpec::new(
            "/connectrpc.greet.v1.Greeter/NoSuchMethod",
            connect_tower::MethodKind::Unary,
            connect_tower::Idempotency::Unknown,
        );
        let status = client
            .unary::<HelloRequest, greeter_example::greet::HelloReply>(
                &missing,
                hello("x"),
                Default::default(),
            )
            .await
            .expect_err("no such method");
        assert_eq!(status.code(), Code::Unimplemented, "{protocol:?}");
    }
}
