//! `connect-bench`: server and client benchmarks of connect-rust against tonic, connectrpc and
//! a bare hyper server, over loopback.
//!
//! ```text
//! connect-bench run [--quick|--full] [--only WORKLOAD[,WORKLOAD]] [--no-clients] [--no-servers]
//!                   [--no-proxy] [--out PATH]
//! connect-bench serve ours|tonic|connectrpc|bare|proxy [--cpu N]
//! connect-bench load --addr HOST:PORT --only WORKLOAD --wire grpc|connect-h2c|connect-h1
//!                    [--client ours|tonic|connectrpc|bare] [--seconds S] [--calls N]
//!                    [--concurrency C]
//! ```
//!
//! `serve` and `load` exist for profiling one side at a time (for example
//! `perf record -p $(pidof …)` on a server while `load` drives it).
//!
//! `run` starts one process per server (pinned to CPU 1), pins itself to CPU 0, checks every
//! client against every server once, then measures (with `--full`, three rounds taken in turns
//! by the servers and by the clients, every server started afresh for each round of its
//! throughput phases; the medians are reported):
//!
//! - server throughput and server CPU per call under the shared load generator
//!   ([`loadgen`]: 8 h2 connections, or one HTTP/1.1 connection per worker),
//! - server latency at concurrency 1 (p50, p99),
//! - server heap allocations and bytes per call (the server process's counting allocator),
//! - the same three for each client implementation against the bare server,
//! - the proxy's cost: unary echo and a 100-message server stream through examples/proxy
//!   (gRPC to ours, both in one process on CPU 1) against ours directly — the throughput
//!   ratio and the server CPU a proxied call adds.
//!
//! It prints a table of ratios (ours / peer) and writes `target/bench/report.json`.

mod alloc;
mod checksum;
mod clients;
mod envelope;
mod loadgen;
mod procstat;
mod report;
mod servers;
mod workload;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use clients::ClientImpl;
use loadgen::{Caller, Plan, run_phase};
use report::Row;
use servers::Impl;
use workload::{Kind, Messages, Wire};

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

/// Our generated code (connect-codegen).
#[allow(clippy::all, missing_docs, dead_code, unused_imports)]
pub mod ours_proto {
    include!(concat!(env!("OUT_DIR"), "/ours/_include.rs"));
}

/// tonic's generated code (tonic-prost-build).
#[allow(clippy::all, missing_docs, dead_code, unused_imports)]
pub mod tonic_proto {
    include!(concat!(env!("OUT_DIR"), "/tonic/bench.v1.rs"));
}

/// connectrpc's generated code (connectrpc-build).
#[allow(clippy::all, missing_docs, dead_code, unused_imports)]
pub mod peer_proto {
    include!(concat!(env!("OUT_DIR"), "/connectrpc/_connectrpc.rs"));
}

/// How long and how hard to measure.
#[derive(Clone, Debug)]
struct Settings {
    warmup: Duration,
    measure: Duration,
    concurrency: Vec<usize>,
    client_concurrency: Vec<usize>,
    latency: Duration,
    alloc_calls: u64,
    rounds: usize,
    connections: usize,
    kinds: Vec<Kind>,
    servers: bool,
    clients: bool,
    proxy: bool,
    out: PathBuf,
}

impl Settings {
    fn quick() -> Self {
        Settings {
            warmup: Duration::from_millis(200),
            measure: Duration::from_millis(800),
            concurrency: vec![64],
            client_concurrency: vec![64],
            latency: Duration::from_millis(400),
            alloc_calls: 200,
            rounds: 1,
            connections: 8,
            kinds: Kind::ALL.to_vec(),
            servers: true,
            clients: true,
            proxy: true,
            out: PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../target/bench/report.json"
            )),
        }
    }

    fn full() -> Self {
        Settings {
            warmup: Duration::from_millis(1000),
            measure: Duration::from_millis(3000),
            concurrency: vec![16, 64, 256],
            client_concurrency: vec![16, 64],
            latency: Duration::from_millis(2000),
            alloc_calls: 2000,
            rounds: 3,
            ..Settings::quick()
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => serve_main(&args[1..]),
        Some("run") => run_main(&args[1..]),
        Some("load") => load_main(&args[1..]),
        None => run_main(&[]),
        Some(other) if other.starts_with("--") => run_main(&args),
        Some(other) => {
            eprintln!("unknown command {other:?}; see the crate docs");
            std::process::exit(2);
        }
    }
}

/// `serve IMPL [--cpu N]`: prints `port N`, serves until stdin closes, answers `stats` lines
/// with `stats ALLOCATIONS BYTES`.
fn serve_main(args: &[String]) {
    let which = args
        .first()
        .and_then(|name| Impl::from_name(name))
        .unwrap_or_else(|| {
            eprintln!("serve needs one of ours, tonic, connectrpc, bare");
            std::process::exit(2);
        });
    if let Some(cpu) = flag_value(args, "--cpu").and_then(|v| v.parse().ok()) {
        procstat::pin_to(cpu);
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    println!("port {port}");
    let _ = std::io::stdout().flush();
    std::thread::spawn(|| {
        let stdin = std::io::stdin();
        let mut line = String::with_capacity(64);
        let mut out = std::io::stdout();
        loop {
            line.clear();
            match stdin.lock().read_line(&mut line) {
                Ok(0) | Err(_) => std::process::exit(0),
                Ok(_) => {
                    let (count, bytes) = alloc::snapshot();
                    let _ = writeln!(out, "stats {count} {bytes}");
                    let _ = out.flush();
                }
            }
        }
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(servers::serve(which, listener));
}

/// `load`: drives one server with one workload for a while, for profiling.
fn load_main(args: &[String]) {
    let addr: SocketAddr = flag_value(args, "--addr")
        .and_then(|a| a.parse().ok())
        .expect("--addr HOST:PORT");
    let kind = flag_value(args, "--only")
        .and_then(Kind::from_name)
        .expect("--only WORKLOAD");
    let wire = match flag_value(args, "--wire").unwrap_or("grpc") {
        "grpc" => Wire::Grpc,
        "connect-h2c" => Wire::ConnectH2,
        "connect-h1" => Wire::ConnectH1,
        other => panic!("unknown wire {other}"),
    };
    let client = match flag_value(args, "--client").unwrap_or("bare") {
        "ours" => ClientImpl::Ours,
        "tonic" => ClientImpl::Tonic,
        "connectrpc" => ClientImpl::Connectrpc,
        _ => ClientImpl::Bare,
    };
    let seconds: f64 = flag_value(args, "--seconds")
        .and_then(|s| s.parse().ok())
        .unwrap_or(10.0);
    let concurrency: usize = flag_value(args, "--concurrency")
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    let calls: Option<u64> = flag_value(args, "--calls").and_then(|s| s.parse().ok());
    if let Some(cpu) = flag_value(args, "--cpu").and_then(|v| v.parse().ok()) {
        procstat::pin_to(cpu);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async {
        let messages = Messages::new();
        let duration = Duration::from_secs_f64(seconds);
        let result = if client == ClientImpl::Bare {
            let plan = Plan::new(&messages, kind, wire, addr);
            let callers = loadgen::raw_callers(&plan, addr, concurrency, 8)
                .await
                .expect("connect");
            run_phase(&callers, duration, calls, false).await
        } else {
            let callers = clients::callers(client, &messages, kind, wire, addr, concurrency)
                .await
                .expect("connect");
            run_phase(&callers, duration, calls, false).await
        };
        note_errors("load", &result);
        println!(
            "{} calls in {:.2} s: {:.0}/s",
            result.calls,
            result.elapsed.as_secs_f64(),
            result.rate()
        );
    });
}

fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

/// A running server process.
struct ServerProc {
    which: Impl,
    child: Child,
    addr: SocketAddr,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl ServerProc {
    fn start(which: Impl) -> Self {
        let exe = std::env::current_exe().expect("own executable");
        let mut command = Command::new(exe);
        command.arg("serve").arg(which.name());
        if procstat::can_pin() {
            command.args(["--cpu", "1"]);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn server");
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("server port");
        let port: u16 = line
            .trim()
            .strip_prefix("port ")
            .and_then(|p| p.parse().ok())
            .expect("port line");
        ServerProc {
            which,
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            stdin,
            stdout,
        }
    }

    /// Allocations and bytes the server process made so far.
    fn stats(&mut self) -> (u64, u64) {
        let _ = writeln!(self.stdin, "stats");
        let _ = self.stdin.flush();
        let mut line = String::new();
        let _ = self.stdout.read_line(&mut line);
        let mut parts = line
            .split_whitespace()
            .skip(1)
            .map(|n| n.parse().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run_main(args: &[String]) {
    let mut settings = if args.iter().any(|a| a == "--full") {
        Settings::full()
    } else {
        Settings::quick()
    };
    if let Some(only) = flag_value(args, "--only") {
        settings.kinds = only.split(',').filter_map(Kind::from_name).collect();
    }
    if let Some(out) = flag_value(args, "--out") {
        settings.out = PathBuf::from(out);
    }
    settings.clients &= !args.iter().any(|a| a == "--no-clients");
    settings.servers &= !args.iter().any(|a| a == "--no-servers");
    settings.proxy &= !args.iter().any(|a| a == "--no-proxy");

    if procstat::can_pin() {
        procstat::pin_to(0);
    } else {
        eprintln!("warning: fewer than 2 CPUs; servers and load generator share one");
    }
    let started = Instant::now();
    let mut servers: Vec<ServerProc> = Impl::ALL.into_iter().map(ServerProc::start).collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    let rows = local.block_on(&runtime, run(&settings, &mut servers));
    drop(servers);
    let proxy_rows = if settings.proxy {
        let mut pair = [
            ServerProc::start(Impl::Ours),
            ServerProc::start(Impl::Proxy),
        ];
        local.block_on(&runtime, proxy_overhead(&settings, &mut pair))
    } else {
        Vec::new()
    };

    println!();
    println!("Ratios are ours / peer; 'best' says whether higher or lower is better.");
    println!("crpc = connectrpc; bare = a hyper server with precomputed responses (server rows)");
    println!("or the raw h2/HTTP-1.1 load generator as the client (client rows).");
    println!();
    print!("{}", report::table(&rows));
    println!();
    print!("{}", report::targets(&rows, &targets(&settings)));
    if !proxy_rows.is_empty() {
        println!();
        println!("Proxy overhead: examples/proxy (gRPC to the backend) in front of ours, both in");
        println!("one process on CPU 1, against ours alone; server CPU is per call.");
        println!();
        println!(
            "{:<34} {:>12} {:>12} {:>7} {:>10} {:>10} {:>10}",
            "workload", "direct rps", "proxied rps", "ratio", "cpu us", "cpu us px", "added us"
        );
        for row in &proxy_rows {
            println!(
                "{:<34} {:>12.0} {:>12.0} {:>7.2} {:>10.1} {:>10.1} {:>10.1}",
                row.workload,
                row.direct_rps,
                row.proxied_rps,
                row.proxied_rps / row.direct_rps,
                row.direct_cpu_us,
                row.proxied_cpu_us,
                row.proxied_cpu_us - row.direct_cpu_us
            );
        }
        let json: Vec<String> = proxy_rows.iter().map(ProxyRow::json).collect();
        let path = settings.out.with_file_name("proxy.json");
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        match std::fs::write(&path, format!("[\n  {}\n]\n", json.join(",\n  "))) {
            Ok(()) => println!("\nwrote {}", path.display()),
            Err(e) => eprintln!("could not write {}: {e}", path.display()),
        }
    }
    match report::write_json(&rows, &settings.out) {
        Ok(()) => println!("\nwrote {}", settings.out.display()),
        Err(e) => eprintln!("could not write {}: {e}", settings.out.display()),
    }
    println!("total time {:.0} s", started.elapsed().as_secs_f64());
}

/// The issue's targets (performance, second pass).
fn targets(settings: &Settings) -> Vec<report::Target> {
    let c = if settings.concurrency.contains(&64) {
        64
    } else {
        settings.concurrency[0]
    };
    let rps = format!("server_rps@c{c}");
    let client_rps = format!("client_rps@c{c}");
    let ratio = |what, workload, metric: &str, peer, at_least, at_most| report::Target {
        what,
        workload,
        metric: metric.to_string(),
        peer,
        at_least,
        at_most,
        at_most_plus: None,
    };
    let faster = |what, workload, metric: &str, peer, min| {
        ratio(what, workload, metric, peer, Some(min), None)
    };
    vec![
        faster(
            "server stream 1000 >= 1.10x tonic",
            "server_stream_1000/grpc",
            &rps,
            "tonic",
            1.10,
        ),
        faster(
            "server stream 1000 >= 1.15x connectrpc",
            "server_stream_1000/grpc",
            &rps,
            "connectrpc",
            1.15,
        ),
        faster(
            "server stream 10 >= 1.10x tonic",
            "server_stream_10/grpc",
            &rps,
            "tonic",
            1.10,
        ),
        faster(
            "server stream 10 >= 1.15x connectrpc",
            "server_stream_10/grpc",
            &rps,
            "connectrpc",
            1.15,
        ),
        faster(
            "unary echo >= 1.15x tonic (gRPC)",
            "unary_echo/grpc",
            &rps,
            "tonic",
            1.15,
        ),
        faster(
            "unary echo >= 1.15x connectrpc (gRPC)",
            "unary_echo/grpc",
            &rps,
            "connectrpc",
            1.15,
        ),
        faster(
            "unary echo >= 0.88x bare hyper (gRPC)",
            "unary_echo/grpc",
            &rps,
            "bare",
            0.88,
        ),
        faster(
            "unary echo >= 1.15x connectrpc (Connect h2c)",
            "unary_echo/connect-h2c",
            &rps,
            "connectrpc",
            1.15,
        ),
        faster(
            "unary echo >= 1.15x connectrpc (Connect h1)",
            "unary_echo/connect-h1",
            &rps,
            "connectrpc",
            1.15,
        ),
        faster(
            "bidi ping-pong >= 1.10x tonic",
            "bidi_pingpong_10/grpc",
            &rps,
            "tonic",
            1.10,
        ),
        faster(
            "client stream >= 1.10x tonic",
            "client_stream_10/grpc",
            &rps,
            "tonic",
            1.10,
        ),
        ratio(
            "server allocs/unary <= 0.5x connectrpc",
            "unary_echo/grpc",
            "server_allocs",
            "connectrpc",
            None,
            Some(0.5),
        ),
        report::Target {
            what: "server allocs/unary <= bare + 3",
            workload: "unary_echo/grpc",
            metric: "server_allocs".to_string(),
            peer: "bare",
            at_least: None,
            at_most: None,
            at_most_plus: Some(3.0),
        },
        faster(
            "client throughput >= 1.10x tonic",
            "unary_echo/grpc",
            &client_rps,
            "tonic",
            1.10,
        ),
        faster(
            "client throughput >= 1.10x connectrpc",
            "unary_echo/grpc",
            &client_rps,
            "connectrpc",
            1.10,
        ),
    ]
}

/// Rows under construction.
#[derive(Default)]
struct Rows(Vec<Row>);

impl Rows {
    fn set(&mut self, workload: &str, metric: &str, higher: bool, column: &str, value: f64) {
        let index = match self
            .0
            .iter()
            .position(|r| r.workload == workload && r.metric == metric)
        {
            Some(i) => i,
            None => {
                self.0.push(Row {
                    workload: workload.to_string(),
                    metric: metric.to_string(),
                    higher_is_better: higher,
                    ours: None,
                    tonic: None,
                    connectrpc: None,
                    bare: None,
                });
                self.0.len() - 1
            }
        };
        let row = &mut self.0[index];
        let slot = match column {
            "ours" => &mut row.ours,
            "tonic" => &mut row.tonic,
            "connectrpc" => &mut row.connectrpc,
            _ => &mut row.bare,
        };
        *slot = Some(value);
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn label(kind: Kind, wire: Wire) -> String {
    format!("{}/{}", kind.name(), wire.name())
}

fn speaks(server: Impl, wire: Wire) -> bool {
    wire == Wire::Grpc || server.speaks_connect()
}

async fn run(settings: &Settings, servers: &mut [ServerProc]) -> Vec<Row> {
    let messages = Messages::new();
    let mut rows = Rows::default();
    verify(settings, servers, &messages).await;
    for &kind in &settings.kinds {
        for &wire in kind.wires() {
            let t0 = Instant::now();
            if settings.servers {
                server_side(settings, servers, &messages, kind, wire, &mut rows).await;
            }
            if settings.clients {
                let bare = servers
                    .iter()
                    .find(|s| s.which == Impl::Bare)
                    .map(|s| s.addr)
                    .expect("bare server");
                client_side(settings, bare, &messages, kind, wire, &mut rows).await;
            }
            eprintln!(
                "{:<34} done in {:.1} s",
                label(kind, wire),
                t0.elapsed().as_secs_f64()
            );
        }
    }
    rows.0
}

/// One call of every client against every server, every workload and wire.
async fn verify(settings: &Settings, servers: &[ServerProc], messages: &Messages) {
    let mut failures = 0;
    for server in servers {
        for &kind in &settings.kinds {
            for &wire in kind.wires() {
                if !speaks(server.which, wire) {
                    continue;
                }
                for client in ClientImpl::ALL {
                    if !client.speaks(wire) {
                        continue;
                    }
                    let result = match clients::callers(
                        client,
                        messages,
                        kind,
                        wire,
                        server.addr,
                        1,
                    )
                    .await
                    {
                        Ok(mut callers) => callers[0].call().await,
                        Err(e) => Err(e),
                    };
                    if let Err(e) = result {
                        failures += 1;
                        eprintln!(
                            "verify: {} client -> {} server, {}: {e}",
                            client.name(),
                            server.which.name(),
                            label(kind, wire)
                        );
                    }
                }
            }
        }
    }
    if failures > 0 {
        eprintln!("verify: {failures} failing combinations (their figures below are suspect)");
    } else {
        eprintln!("verify: every client against every server: ok");
    }
}

fn note_errors(what: &str, result: &loadgen::PhaseResult) {
    if result.errors > 0 {
        eprintln!(
            "  {what}: {} errors, first: {}",
            result.errors,
            result.first_error.as_deref().unwrap_or("?")
        );
    }
}

/// One measured phase (after a warm-up) of `concurrency` raw callers against `server`: calls
/// per second and the server's CPU microseconds per call; `None` when it cannot be reached.
async fn measure_server(
    settings: &Settings,
    server: &ServerProc,
    messages: &Messages,
    kind: Kind,
    wire: Wire,
    concurrency: usize,
    what: &str,
) -> Option<(f64, f64)> {
    let plan = Plan::new(messages, kind, wire, server.addr);
    let callers =
        match loadgen::raw_callers(&plan, server.addr, concurrency, settings.connections).await {
            Ok(callers) => callers,
            Err(e) => {
                eprintln!("  {what}: connect: {e}");
                return None;
            }
        };
    run_phase(&callers, settings.warmup, None, false).await;
    let cpu0 = procstat::cpu_ns(server.pid());
    let result = run_phase(&callers, settings.measure, None, false).await;
    let cpu = procstat::cpu_ns(server.pid()) - cpu0;
    note_errors(what, &result);
    Some((
        result.rate(),
        cpu as f64 / 1000.0 / result.calls.max(1) as f64,
    ))
}

/// With more than one round, starts every server that speaks `wire` afresh. CPU per call
/// varies by several percent between rounds that each use a fresh process (six of ours on
/// `bidi_pingpong_10`: 27.7–30.7 µs); a fresh process per round makes the median one over
/// processes as well as over time, whichever of the two the variation comes from.
fn restart_for_round(settings: &Settings, servers: &mut [ServerProc], wire: Wire) {
    if settings.rounds < 2 {
        return;
    }
    for server in servers.iter_mut() {
        if speaks(server.which, wire) {
            *server = ServerProc::start(server.which);
        }
    }
}

async fn server_side(
    settings: &Settings,
    servers: &mut [ServerProc],
    messages: &Messages,
    kind: Kind,
    wire: Wire,
    rows: &mut Rows,
) {
    let name = label(kind, wire);
    // Throughput and CPU per call.
    for &concurrency in &settings.concurrency {
        let mut rates: Vec<Vec<f64>> = vec![Vec::new(); servers.len()];
        let mut cpus: Vec<Vec<f64>> = vec![Vec::new(); servers.len()];
        for _ in 0..settings.rounds {
            restart_for_round(settings, servers, wire);
            for (i, server) in servers.iter().enumerate() {
                if !speaks(server.which, wire) {
                    continue;
                }
                let what = format!("{name} {} c{concurrency}", server.which.name());
                let Some((rate, cpu_us)) =
                    measure_server(settings, server, messages, kind, wire, concurrency, &what)
                        .await
                else {
                    continue;
                };
                rates[i].push(rate);
                cpus[i].push(cpu_us);
            }
        }
        for (i, server) in servers.iter().enumerate() {
            if rates[i].is_empty() {
                continue;
            }
            let column = server.which.name();
            rows.set(
                &name,
                &format!("server_rps@c{concurrency}"),
                true,
                column,
                median(rates[i].clone()),
            );
            rows.set(
                &name,
                &format!("server_cpu_us@c{concurrency}"),
                false,
                column,
                median(cpus[i].clone()),
            );
        }
    }
    // Latency at concurrency 1, then allocations per call.
    for server in servers.iter_mut() {
        if !speaks(server.which, wire) {
            continue;
        }
        let column = server.which.name();
        let plan = Plan::new(messages, kind, wire, server.addr);
        let Ok(callers) = loadgen::raw_callers(&plan, server.addr, 1, 1).await else {
            continue;
        };
        run_phase(&callers, settings.warmup / 2, None, false).await;
        let mut result = run_phase(&callers, settings.latency, None, true).await;
        note_errors(&format!("{name} {column} latency"), &result);
        rows.set(
            &name,
            "server_p50_us",
            false,
            column,
            result.quantile_us(0.5),
        );
        rows.set(
            &name,
            "server_p99_us",
            false,
            column,
            result.quantile_us(0.99),
        );

        run_phase(
            &callers,
            Duration::from_secs(60),
            Some(settings.alloc_calls / 2),
            false,
        )
        .await;
        let (count0, bytes0) = server.stats();
        let result = run_phase(
            &callers,
            Duration::from_secs(60),
            Some(settings.alloc_calls),
            false,
        )
        .await;
        let (count1, bytes1) = server.stats();
        let calls = result.calls.max(1) as f64;
        rows.set(
            &name,
            "server_allocs",
            false,
            column,
            (count1 - count0) as f64 / calls,
        );
        rows.set(
            &name,
            "server_alloc_bytes",
            false,
            column,
            (bytes1 - bytes0) as f64 / calls,
        );
    }
}

async fn client_side(
    settings: &Settings,
    bare: SocketAddr,
    messages: &Messages,
    kind: Kind,
    wire: Wire,
    rows: &mut Rows,
) {
    let name = label(kind, wire);
    let me = std::process::id();
    let speakers: Vec<ClientImpl> = ClientImpl::ALL
        .into_iter()
        .filter(|client| client.speaks(wire))
        .collect();
    // Throughput and CPU per call, the clients taking turns within each round (as the servers
    // do) so that every client sees the same drift of the machine.
    for &concurrency in &settings.client_concurrency {
        let mut rates: Vec<Vec<f64>> = vec![Vec::new(); speakers.len()];
        let mut cpus: Vec<Vec<f64>> = vec![Vec::new(); speakers.len()];
        for _ in 0..settings.rounds {
            for (i, &client) in speakers.iter().enumerate() {
                let column = client.name();
                let callers =
                    match clients::callers(client, messages, kind, wire, bare, concurrency).await {
                        Ok(c) => c,
                        Err(e) => {
                            eprintln!("  {name} {column} client: {e}");
                            continue;
                        }
                    };
                run_phase(&callers, settings.warmup, None, false).await;
                let cpu0 = procstat::cpu_ns(me);
                let result = run_phase(&callers, settings.measure, None, false).await;
                let cpu = procstat::cpu_ns(me) - cpu0;
                note_errors(&format!("{name} {column} client c{concurrency}"), &result);
                rates[i].push(result.rate());
                cpus[i].push(cpu as f64 / 1000.0 / result.calls.max(1) as f64);
            }
        }
        for (i, client) in speakers.iter().enumerate() {
            if rates[i].is_empty() {
                continue;
            }
            let column = client.name();
            rows.set(
                &name,
                &format!("client_rps@c{concurrency}"),
                true,
                column,
                median(rates[i].clone()),
            );
            rows.set(
                &name,
                &format!("client_cpu_us@c{concurrency}"),
                false,
                column,
                median(cpus[i].clone()),
            );
        }
    }
    // Latency at concurrency 1, then allocations per call.
    for client in speakers {
        let column = client.name();
        let Ok(callers) = clients::callers(client, messages, kind, wire, bare, 1).await else {
            continue;
        };
        run_phase(&callers, settings.warmup / 2, None, false).await;
        let mut result = run_phase(&callers, settings.latency, None, true).await;
        note_errors(&format!("{name} {column} client latency"), &result);
        rows.set(
            &name,
            "client_p50_us",
            false,
            column,
            result.quantile_us(0.5),
        );
        rows.set(
            &name,
            "client_p99_us",
            false,
            column,
            result.quantile_us(0.99),
        );

        run_phase(
            &callers,
            Duration::from_secs(60),
            Some(settings.alloc_calls / 2),
            false,
        )
        .await;
        let (count0, bytes0) = alloc::snapshot();
        let result = run_phase(
            &callers,
            Duration::from_secs(60),
            Some(settings.alloc_calls),
            false,
        )
        .await;
        let (count1, bytes1) = alloc::snapshot();
        let calls = result.calls.max(1) as f64;
        rows.set(
            &name,
            "client_allocs",
            false,
            column,
            (count1 - count0) as f64 / calls,
        );
        rows.set(
            &name,
            "client_alloc_bytes",
            false,
            column,
            (bytes1 - bytes0) as f64 / calls,
        );
    }
}

/// One workload through the proxy and directly.
struct ProxyRow {
    workload: String,
    direct_rps: f64,
    proxied_rps: f64,
    direct_cpu_us: f64,
    proxied_cpu_us: f64,
}

impl ProxyRow {
    fn json(&self) -> String {
        format!(
            "{{\"workload\": \"{}\", \"direct_rps\": {:.1}, \"proxied_rps\": {:.1}, \
             \"direct_cpu_us\": {:.2}, \"proxied_cpu_us\": {:.2}}}",
            self.workload,
            self.direct_rps,
            self.proxied_rps,
            self.direct_cpu_us,
            self.proxied_cpu_us
        )
    }
}

/// Throughput and server CPU per call of unary echo and a 100-message server stream, through
/// the proxy and directly (`pair`: ours, then the proxy), alternating within each round so both
/// see the same machine state, fresh processes for each round as for the servers.
async fn proxy_overhead(settings: &Settings, pair: &mut [ServerProc; 2]) -> Vec<ProxyRow> {
    let messages = Messages::new();
    let concurrency = if settings.concurrency.contains(&64) {
        64
    } else {
        settings.concurrency[0]
    };
    let mut rows = Vec::new();
    for kind in [Kind::Echo, Kind::Stream100] {
        for &wire in &[Wire::Grpc, Wire::ConnectH2, Wire::ConnectH1] {
            let name = format!("{}@c{concurrency}", label(kind, wire));
            let mut figures = [(Vec::new(), Vec::new()), (Vec::new(), Vec::new())];
            for _ in 0..settings.rounds {
                restart_for_round(settings, pair, wire);
                for (i, server) in pair.iter().enumerate() {
                    let what = format!("{name} {}", server.which.name());
                    let Some((rate, cpu_us)) =
                        measure_server(settings, server, &messages, kind, wire, concurrency, &what)
                            .await
                    else {
                        continue;
                    };
                    figures[i].0.push(rate);
                    figures[i].1.push(cpu_us);
                }
            }
            let [(direct_rps, direct_cpu), (proxied_rps, proxied_cpu)] = figures;
            if direct_rps.is_empty() || proxied_rps.is_empty() {
                continue;
            }
            eprintln!("{name:<34} proxy comparison done");
            rows.push(ProxyRow {
                workload: name,
                direct_rps: median(direct_rps),
                proxied_rps: median(proxied_rps),
                direct_cpu_us: median(direct_cpu),
                proxied_cpu_us: median(proxied_cpu),
            });
        }
    }
    rows
}
