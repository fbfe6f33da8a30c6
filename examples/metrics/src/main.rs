//! The greeter served and called over a loopback socket with [`RpcMetrics`] on both sides,
//! then the Prometheus text a scrape would return.
//!
//! ```text
//! cargo run -p metrics-example
//! ```

use connect_tokio_hyper::{HttpClient, Server, TokioTimer};
use connect_tower::Protocol;
use connect_tower::client::{Client, ClientConfig};
use connect_tower::server::ConnectService;
use greeter_example::greet::greeter::GreeterClient;
use metrics_example::RpcMetrics;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let prometheus = metrics_example::prometheus_builder()?.install_recorder()?;

    let service = ConnectService::builder(greeter_example::service())
        .timer(TokioTimer::new())
        .observer(RpcMetrics::new())
        .build();
    let server = Server::builder().bind("127.0.0.1:0").await?;
    let base: http::Uri = format!("http://{}", server.local_addr()?).parse()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve_with_shutdown(service, async {
        let _ = stopped.await;
    }));

    for (protocol, transport) in [
        (Protocol::Connect, HttpClient::plaintext_http1()),
        (Protocol::Grpc, HttpClient::plaintext_h2c()),
        (Protocol::GrpcWeb, HttpClient::plaintext_http1()),
    ] {
        let config = ClientConfig::new(base.clone()).protocol(protocol);
        let client = Client::new(transport, config)
            .timer(TokioTimer::new())
            .observer(RpcMetrics::new());
        metrics_example::call_every_kind(&GreeterClient::new(client)).await?;
    }

    let _ = stop.send(());
    serving.await?;
    print!("{}", prometheus.render());
    Ok(())
}
