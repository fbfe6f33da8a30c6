//! The greeter inside an axum application: axum serves its own routes (`/healthz`) and hands
//! every other request to the ConnectRPC service as its fallback. The example serves it on a
//! loopback port, calls both, and exits.
//!
//! ```text
//! cargo run -p greeter-example --example axum_fallback
//! ```

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use connect_proto_core::Protocol;
use connect_tokio_hyper::{HttpClient, Server, TokioTimer};
use connect_tower::client::{Client, ClientConfig};
use connect_tower::server::ConnectService;
use greeter_example::greet::HelloRequest;
use greeter_example::greet::greeter::GreeterClient;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let rpc = ConnectService::builder(greeter_example::service())
        .timer(TokioTimer::new())
        .build();
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .fallback_service(rpc);

    let server = Server::builder().bind("127.0.0.1:0").await?;
    let addr = server.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve_with_shutdown(app, async {
        let _ = stopped.await;
    }));

    // An RPC, routed through axum's fallback to the greeter.
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
    println!("RPC via axum fallback: {:?}", reply.message().message);

    // A plain axum route, through the same client transport.
    let transport = HttpClient::plaintext_http1();
    let request = http::Request::get(format!("http://{addr}/healthz"))
        .body(connect_tower::client::RequestBody::empty())?;
    let response = tower_service_call(transport, request).await?;
    println!("GET /healthz: {}", response.status());

    let _ = stop.send(());
    serving.await?;
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
