//! The greeter behind connect-tower's CORS layer, for browser pages served from another
//! origin: `greeter-browser-server ORIGIN [ADDR]` allows calls from `ORIGIN` (for example
//! `http://127.0.0.1:5173`), prints `listening on http://HOST:PORT`, and serves until stdin
//! closes or Ctrl-C.

use connect_tokio_hyper::{Server, TokioTimer};
use connect_tower::cors::{self, AllowOrigin};
use connect_tower::server::ConnectService;
use http::HeaderValue;
use tokio::io::AsyncReadExt;
use tower::Layer;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let origin = args
        .next()
        .ok_or("usage: greeter-browser-server ORIGIN [ADDR]")?;
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let service = ConnectService::builder(greeter_example::service())
        .timer(TokioTimer::new())
        .build();
    let cors = cors::layer(AllowOrigin::list([HeaderValue::from_str(&origin)?]));
    let server = Server::builder().bind(addr.as_str()).await?;
    println!("listening on http://{}", server.local_addr()?);
    server
        .serve_with_shutdown(cors.layer(service), async {
            // The driver closes stdin when it is done; Ctrl-C works by hand.
            let mut stdin = tokio::io::stdin();
            let mut buf = [0u8; 64];
            tokio::select! {
                _ = async { while let Ok(n) = stdin.read(&mut buf).await { if n == 0 { break; } } } => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        })
        .await;
    Ok(())
}
