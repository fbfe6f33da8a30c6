//! The greeter served with the standard health and reflection services, for checks with
//! foreign tools (`grpc-health-probe`, `grpcurl`, `buf curl`; see
//! `scripts/check-health-reflection`):
//!
//! ```text
//! cargo run -p health-reflection-example -- [--addr 127.0.0.1:0] [--not-serving NAME]...
//! ```
//!
//! It prints `listening on ADDR` once bound (port 0 picks a free port), reports the server
//! (`""`) and `connectrpc.greet.v1.Greeter` as `SERVING` and every `--not-serving` name as
//! `NOT_SERVING`, lists the greeter, health and reflection services through reflection,
//! prints a `call …` line for every finished call (through a `CallObserver`, so the script
//! checks what the hook saw of the foreign clients' calls), and stops gracefully on SIGTERM
//! or Ctrl-C.

use std::io::Write;
use std::time::Duration;

use connect_reflection::ReflectionService;
use connect_tokio_hyper::Server;
use connect_tower::observe::{CallEnd, CallObserver};
use connect_tower::server::{ConnectService, Routes};

/// Prints one line per finished call: side, protocol, method, code, messages and bytes.
struct PrintCalls;

impl CallObserver for PrintCalls {
    fn on_call_end(&self, call: &CallEnd) {
        let start = call.start();
        println!(
            "call {} {:?} {} {} messages={}/{} bytes={}/{}",
            start.side(),
            start.protocol(),
            start.path(),
            call.code_name(),
            call.request_messages(),
            call.response_messages(),
            call.request_bytes(),
            call.response_bytes(),
        );
        let _ = std::io::stdout().flush();
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The greeter's descriptors, written by `build.rs`.
const GREETER_DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/greeter.binpb"));

const USAGE: &str = "usage: health-reflection-example [--addr HOST:PORT] [--not-serving NAME]...";

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut addr = "127.0.0.1:0".to_owned();
    let mut not_serving = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{arg} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--addr" => addr = value()?,
            "--not-serving" => not_serving.push(value()?),
            _ => return Err(format!("unknown argument {arg}\n{USAGE}").into()),
        }
    }

    let (health, health_server) = connect_health::server();
    health.set_serving(greeter_example::greet::greeter::SERVICE_NAME);
    for name in not_serving {
        health.set_not_serving(name);
    }
    let reflection = ReflectionService::builder()
        .register_file_descriptor_set(GREETER_DESCRIPTORS)?
        .register_file_descriptor_set(connect_health::FILE_DESCRIPTOR_SET)?
        .build()?;
    let routes = Routes::new()
        .service(greeter_example::service())
        .service(health_server)
        .service(reflection.routes());

    let server = Server::builder()
        .drain_timeout(Duration::from_secs(5))
        .on_error(|error| eprintln!("health-reflection-example: {error}"))
        .bind(addr.as_str())
        .await?;
    println!("listening on {}", server.local_addr()?);
    std::io::stdout().flush()?;
    let shutdown = server
        .serve_with_shutdown(
            ConnectService::builder(routes).observer(PrintCalls).build(),
            greeter_example::stop_signal(),
        )
        .await;
    println!("stopped (drained: {})", shutdown.drained());
    Ok(())
}
