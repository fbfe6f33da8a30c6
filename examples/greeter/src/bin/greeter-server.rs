//! The greeter as a standalone server that stops gracefully on SIGTERM or Ctrl-C: it stops
//! accepting, lets calls in flight finish for up to 10 s, ends what is left with
//! `unavailable`, and exits.
//!
//! ```text
//! cargo run -p greeter-example --bin greeter-server -- 127.0.0.1:8080
//! ```

use std::time::Duration;

use connect_tokio_hyper::Server;
use connect_tower::server::ConnectService;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let service = ConnectService::new(greeter_example::service());
    let server = Server::builder()
        .drain_timeout(Duration::from_secs(10))
        .on_error(|error| eprintln!("greeter-server: {error}"))
        .bind(addr.as_str())
        .await?;
    println!("greeter listening on http://{}", server.local_addr()?);
    let shutdown = server
        .serve_with_shutdown(service, greeter_example::stop_signal())
        .await;
    println!(
        "greeter stopped ({})",
        if shutdown.drained() {
            "every call finished".to_owned()
        } else {
            format!(
                "{} connections ended at the drain deadline",
                shutdown.aborted_connections
            )
        }
    );
    Ok(())
}
