//! Serves the greeter with the blocking server until the process is killed.
//!
//! ```text
//! cargo run -p blocking-server-example -- --addr 127.0.0.1:8080 --stream-interval-ms 200
//! curl -s http://127.0.0.1:8080/connectrpc.greet.v1.Greeter/SayHello \
//!     -H 'content-type: application/json' -d '{"name": "Ada"}'
//! ```

use std::process::ExitCode;
use std::time::Duration;

use blocking_server_example::{GreeterOptions, Server, ServerOptions};

const USAGE: &str = "usage: blocking-greeter-server [--addr HOST:PORT] [--stream-interval-ms N]";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let mut addr = String::from("127.0.0.1:8080");
    let mut greeter = GreeterOptions::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{arg} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--addr" => addr = value()?,
            "--stream-interval-ms" => {
                let ms = value()?
                    .parse()
                    .map_err(|e| format!("--stream-interval-ms: {e}\n{USAGE}"))?;
                greeter = greeter.stream_interval(Duration::from_millis(ms));
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let options = ServerOptions::new().greeter(greeter);
    let server = Server::bind(&addr, options).map_err(|e| format!("binding {addr}: {e}"))?;
    let local = server.local_addr().map_err(|e| e.to_string())?;
    println!("greeter (Connect and gRPC-Web over HTTP/1.1) listening on http://{local}");
    server.serve().map_err(|e| e.to_string())?;
    Ok(())
}
