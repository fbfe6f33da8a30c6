//! The greeter inside an axum application: the greeter's methods are routes of an
//! `axum::Router<AppState>` next to the application's own (`/healthz`, which reads axum
//! state), and a layer on the router stamps every response, RPCs included. Served with
//! `axum::serve` on a loopback port; the example calls both and exits.
//!
//! ```text
//! cargo run -p greeter-example --example axum_app
//! ```

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use connect_proto_core::Protocol;
use connect_tokio_hyper::{HttpClient, TokioTimer};
use connect_tower::axum::ConnectRouterExt;
use connect_tower::client::{Client, ClientConfig};
use connect_tower::server::ConnectService;
use greeter_example::greet::HelloRequest;
use greeter_example::greet::greeter::GreeterClient;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Clone)]
struct AppState {
    version: &'static str,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let rpc = ConnectService::builder(greeter_example::service())
        .timer(TokioTimer::new())
        .build();
    let app = Router::new()
        .route(
            "/healthz",
            get(|State(state): State<AppState>| async move { format!("ok {}", state.version) }),
        )
        .connect_service(rpc)
        .layer(axum::middleware::map_response(
            |mut response: axum::response::Response| async move {
                response
                    .headers_mut()
                    .insert("x-served-by", http::HeaderValue::from_static("axum"));
                response
            },
        ))
        .with_state(AppState { version: "1.0" });

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });

    // An RPC, routed by axum to the greeter's method.
    let config = ClientConfig::new(format!("http://{addr}").parse()?)
        .protocol(Protocol::GrpcWeb)
        .default_timeout(Some(Duration::from_secs(5)));
    let client = GreeterClient::new(Client::new(HttpClient::plaintext_http1(), config));
    let reply = client
        .say_hello(HelloRequest {
            name: "axum".into(),
            ..Default::default()
        })
        .await?;
    println!(
        "RPC via axum: {:?} (x-served-by: {:?})",
        reply.message().message,
        reply.headers().get("x-served-by")
    );

    // A plain axum route, through the same client transport.
    let transport = HttpClient::plaintext_http1();
    let request = http::Request::get(format!("http://{addr}/healthz"))
        .body(connect_tower::client::RequestBody::empty())?;
    let response = tower_service_call(transport, request).await?;
    println!("GET /healthz: {}", response.status());

    let _ = stop.send(());
    serving.await??;
    Ok(())
}

/// Sends one request through a tower service.
async fn tower_service_call<S>(
    mut service: S,
    request: http::Request<connect_tower::client::RequestBody>,
) -> Result<S::Response, S::Error>
where
    S: tower_service::Service<http::Request<connect_tower::client::RequestBody>>,
{
    std::future::poll_fn(|cx| service.poll_ready(cx)).await?;
    service.call(request).await
}
