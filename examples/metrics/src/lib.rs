//! RPC metrics from connect-tower's [`CallObserver`] hook, recorded through the [`metrics`]
//! facade and rendered as Prometheus text by `metrics-exporter-prometheus`.
//!
//! [`RpcMetrics`] is one observer for servers and clients alike. Per side (`rpc_server_*`,
//! `rpc_client_*`, after OpenTelemetry's RPC metrics), labelled by `rpc_system`,
//! `rpc_service` and `rpc_method`:
//!
//! | metric | kind | extra labels |
//! |---|---|---|
//! | `rpc_server_calls_total` | counter of ended calls | `code` (`ok`, `not_found`, …) |
//! | `rpc_server_active_calls` | gauge of calls in flight | |
//! | `rpc_server_duration_seconds` | histogram | `code` |
//! | `rpc_server_request_size_bytes`, `rpc_server_response_size_bytes` | histograms of wire bytes per call | |
//! | `rpc_server_requests_per_rpc`, `rpc_server_responses_per_rpc` | histograms of messages per call | |
//!
//! ```
//! use connect_tower::server::ConnectService;
//!
//! let prometheus = metrics_example::prometheus_builder()?.build_recorder();
//! let handle = prometheus.handle();
//! // Usually `metrics::set_global_recorder(prometheus)`, once per process.
//! # let _ = prometheus;
//! let service = ConnectService::builder(greeter_example::service())
//!     .observer(metrics_example::RpcMetrics::new())
//!     .build();
//! // ... serve it; on a scrape, answer with `handle.render()`.
//! # let _ = (service, handle);
//! # Ok::<(), metrics_exporter_prometheus::BuildError>(())
//! ```
//!
//! The binary (`cargo run -p metrics-example`) serves the greeter on a loopback port, calls it
//! over Connect, gRPC and gRPC-Web, and prints what a scrape would return.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use connect_tower::client::Transport;
use connect_tower::observe::{CallEnd, CallObserver, CallStart, Side};
use connect_tower::{Code, Protocol, Status};
use greeter_example::greet::greeter::GreeterClient;
use greeter_example::greet::{HelloRequest, RepeatRequest};
use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder};

/// Records every call's start and end into the global [`metrics`] recorder (see the crate
/// docs for the metrics). Register it on a server and on clients:
/// `ConnectServiceBuilder::observer(RpcMetrics::new())`, `Client::observer(RpcMetrics::new())`.
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct RpcMetrics;

impl RpcMetrics {
    /// The observer; describes its metrics (units and help texts) to the global recorder.
    pub fn new() -> Self {
        for names in [&SERVER, &CLIENT] {
            describe_counter!(names.calls, "RPCs ended, by code");
            describe_gauge!(names.active, "RPCs in flight");
            describe_histogram!(names.duration, Unit::Seconds, "RPC duration");
            describe_histogram!(names.request_size, Unit::Bytes, "Request bytes per RPC");
            describe_histogram!(names.response_size, Unit::Bytes, "Response bytes per RPC");
            describe_histogram!(
                names.requests_per_rpc,
                Unit::Count,
                "Request messages per RPC"
            );
            describe_histogram!(
                names.responses_per_rpc,
                Unit::Count,
                "Response messages per RPC"
            );
        }
        RpcMetrics
    }
}

impl CallObserver for RpcMetrics {
    fn on_call_start(&self, call: &CallStart) {
        let names = Names::of(call.side());
        gauge!(names.active, &labels(call)).increment(1.0);
    }

    fn on_call_end(&self, call: &CallEnd) {
        let start = call.start();
        let names = Names::of(start.side());
        let labels = labels(start);
        gauge!(names.active, &labels).decrement(1.0);
        let [system, service, method] = labels;
        let with_code = [
            system,
            service,
            method,
            ("code", call.code_name().to_owned()),
        ];
        counter!(names.calls, &with_code).increment(1);
        histogram!(names.duration, &with_code).record(call.duration().as_secs_f64());
        let [system, service, method, _] = with_code;
        let labels = [system, service, method];
        histogram!(names.request_size, &labels).record(call.request_bytes() as f64);
        histogram!(names.response_size, &labels).record(call.response_bytes() as f64);
        histogram!(names.requests_per_rpc, &labels).record(call.request_messages() as f64);
        histogram!(names.responses_per_rpc, &labels).record(call.response_messages() as f64);
    }
}

/// A Prometheus exporter configured for [`RpcMetrics`]: histograms with buckets (rather than
/// summaries) for durations, sizes and message counts. Build its recorder, install it as the
/// global one, and render its handle on every scrape.
///
/// # Errors
///
/// None in practice: the exporter refuses only empty bucket lists.
pub fn prometheus_builder() -> Result<PrometheusBuilder, BuildError> {
    let buckets: [(&str, &[f64]); 3] = [
        (
            "_duration_seconds",
            &[
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ],
        ),
        (
            "_size_bytes",
            &[
                16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
            ],
        ),
        (
            "s_per_rpc",
            &[0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 64.0, 256.0, 1024.0],
        ),
    ];
    let mut builder = PrometheusBuilder::new();
    for (suffix, values) in buckets {
        builder = builder.set_buckets_for_metric(Matcher::Suffix(suffix.to_owned()), values)?;
    }
    Ok(builder)
}

/// Calls every method of the greeter once (a unary call, a server stream of three, a client
/// stream of three, a bidi exchange of two) and makes one call fail (`invalid_argument`).
pub async fn call_every_kind<T: Transport>(client: &GreeterClient<T>) -> Result<(), Status> {
    client.say_hello(hello("Ada")).await?;
    let mut stream = client
        .say_hello_repeatedly(RepeatRequest {
            name: "Grace".into(),
            times: 3,
            ..Default::default()
        })
        .await?;
    while stream.message().await?.is_some() {}
    let mut call = client.say_hello_to_all().await?;
    for name in ["Alan", "Barbara", "Edsger"] {
        call.send(hello(name)).await?;
    }
    call.finish().await?;
    let mut call = client.converse().await?;
    for name in ["Ken", "Dennis"] {
        call.send(hello(name)).await?;
        call.message().await?;
    }
    call.close_send()?;
    while call.message().await?.is_some() {}
    match client.say_hello(hello("")).await {
        Err(status) if status.code() == Code::InvalidArgument => Ok(()),
        Err(status) => Err(status),
        Ok(_) => Err(Status::new(Code::Internal, "an empty name was greeted")),
    }
}

fn hello(name: &str) -> HelloRequest {
    HelloRequest {
        name: name.into(),
        ..Default::default()
    }
}

/// The metric names of one side.
struct Names {
    calls: &'static str,
    active: &'static str,
    duration: &'static str,
    request_size: &'static str,
    response_size: &'static str,
    requests_per_rpc: &'static str,
    responses_per_rpc: &'static str,
}

const SERVER: Names = Names {
    calls: "rpc_server_calls_total",
    active: "rpc_server_active_calls",
    duration: "rpc_server_duration_seconds",
    request_size: "rpc_server_request_size_bytes",
    response_size: "rpc_server_response_size_bytes",
    requests_per_rpc: "rpc_server_requests_per_rpc",
    responses_per_rpc: "rpc_server_responses_per_rpc",
};

const CLIENT: Names = Names {
    calls: "rpc_client_calls_total",
    active: "rpc_client_active_calls",
    duration: "rpc_client_duration_seconds",
    request_size: "rpc_client_request_size_bytes",
    response_size: "rpc_client_response_size_bytes",
    requests_per_rpc: "rpc_client_requests_per_rpc",
    responses_per_rpc: "rpc_client_responses_per_rpc",
};

impl Names {
    fn of(side: Side) -> &'static Names {
        match side {
            Side::Server => &SERVER,
            _ => &CLIENT,
        }
    }
}

/// The labels every metric of a call has.
fn labels(call: &CallStart) -> [(&'static str, String); 3] {
    let system = match call.protocol() {
        Protocol::Connect => "connect_rpc",
        _ => "grpc",
    };
    [
        ("rpc_system", system.to_owned()),
        ("rpc_service", call.service().to_owned()),
        ("rpc_method", call.method_name().to_owned()),
    ]
}
