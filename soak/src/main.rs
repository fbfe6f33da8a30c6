//! The soak test (`scripts/soak [--quick]`).
//!
//! `connect-soak run` starts `connect-soak serve` (the greeter behind the standalone server) as
//! a child process, so what it samples is the server's own: resident memory and open file
//! descriptors from `/proc`. It then opens idle HTTP/2 connections and keeps them open while
//! it drives unary calls and server streams over Connect (HTTP/1.1 JSON, h2c proto), gRPC
//! (h2c) and gRPC-Web (HTTP/1.1), closes everything, checks that the descriptors came back,
//! stops the server with SIGTERM (a graceful shutdown), and writes `target/soak/report.json`:
//! calls, errors by code (intended ones apart), latency percentiles, RSS (peak, final, growth
//! over the second half of the load) and descriptors.

mod load;
mod report;
mod sampler;

use std::process::{Command, Stdio};
use std::time::Duration;

use connect_tokio_hyper::Server;
use connect_tower::server::ConnectService;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How much load a run applies.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub unary_calls: u64,
    pub streams: u64,
    pub idle_connections: usize,
    pub concurrency: usize,
    pub mode: &'static str,
}

impl Plan {
    const FULL: Plan = Plan {
        unary_calls: 1_000_000,
        streams: 10_000,
        idle_connections: 5_000,
        concurrency: 64,
        mode: "full",
    };
    const QUICK: Plan = Plan {
        unary_calls: 300_000,
        streams: 5_000,
        idle_connections: 1_000,
        concurrency: 64,
        mode: "quick",
    };
}

fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("serve") => serve(),
        Some("run") => {
            let mut plan = Plan::FULL;
            let mut out = String::from("target/soak/report.json");
            while let Some(arg) = args.next() {
                match arg.as_str() {
                    "--quick" => plan = Plan::QUICK,
                    "--out" => out = args.next().ok_or("--out needs a path")?,
                    other => return Err(format!("unknown argument {other:?}").into()),
                }
            }
            run(plan, &out)
        }
        _ => Err("usage: connect-soak run [--quick] [--out PATH] | connect-soak serve".into()),
    }
}

/// The server process: prints its address, serves until SIGTERM, drains, reports and exits.
fn serve() -> Result<(), BoxError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let service = ConnectService::new(greeter_example::service());
        let server = Server::builder()
            .drain_timeout(Duration::from_secs(10))
            .bind("127.0.0.1:0")
            .await?;
        println!("listening {}", server.local_addr()?);
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let shutdown = server
            .serve_with_shutdown(service, async move {
                terminate.recv().await;
            })
            .await;
        println!("stopped drained={}", shutdown.drained());
        Ok(())
    })
}

/// The driver process.
fn run(plan: Plan, out: &str) -> Result<(), BoxError> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .arg("serve")
        .stdout(Stdio::piped())
        .spawn()?;
    let mut stdout = std::io::BufReader::new(child.stdout.take().ok_or("no stdout")?);
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line)?;
    let addr: std::net::SocketAddr = line
        .trim()
        .strip_prefix("listening ")
        .ok_or_else(|| format!("unexpected server output {line:?}"))?
        .parse()?;
    let pid = child.id();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(load::drive(plan, addr, pid));
    // Graceful shutdown: SIGTERM, then the server reports whether it drained.
    let signalled = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest)?;
    let status = child.wait()?;
    let stopped_cleanly = signalled.success() && status.success() && rest.contains("stopped");

    let outcome = outcome?;
    let report = report::Report::new(plan, &outcome, stopped_cleanly);
    let json = report.to_json();
    if let Some(dir) = std::path::Path::new(out).parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(out, serde_json::to_string_pretty(&json)?)?;
    report.print();
    println!("report written to {out}");
    if report.failures().is_empty() {
        Ok(())
    } else {
        Err(format!("soak targets missed: {}", report.failures().join("; ")).into())
    }
}
