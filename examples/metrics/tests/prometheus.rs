//! `RpcMetrics` on a greeter server and its clients over a real socket (Connect over HTTP/1.1,
//! gRPC over h2c, gRPC-Web over HTTP/1.1): after one call of each kind and one failure per
//! protocol, the Prometheus text has the counters by code, the histograms (buckets, sum,
//! count) of durations, sizes and messages per call, and no call left in flight.

use std::collections::BTreeMap;

use connect_tokio_hyper::{HttpClient, Server, TokioTimer};
use connect_tower::Protocol;
use connect_tower::client::{Client, ClientConfig};
use connect_tower::server::ConnectService;
use greeter_example::greet::greeter::GreeterClient;
use metrics_example::RpcMetrics;

/// One sample line: the metric name, its labels and its value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The samples of a Prometheus text exposition (comments skipped).
fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => (name, labels.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (key, value) = pair.split_once('=').expect("label=value");
                    (key.to_owned(), value.trim_matches('"').to_owned())
                })
                .collect();
            Sample {
                name: name.to_owned(),
                labels,
                value: value.parse().expect("a numeric value"),
            }
        })
        .collect()
}

/// The value of the one sample of `name` whose labels include `labels`.
#[track_caller]
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|sample| sample.name == name)
        .filter(|sample| {
            labels
                .iter()
                .all(|(key, value)| sample.labels.get(*key).map(String::as_str) == Some(*value))
        })
        .collect();
    match found.as_slice() {
        [one] => one.value,
        other => panic!("expected one {name} sample with {labels:?}, found {other:#?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_after_real_calls_has_counters_and_histograms() {
    let prometheus = metrics_example::prometheus_builder()
        .unwrap()
        .install_recorder()
        .unwrap();
    let service = ConnectService::builder(greeter_example::service())
        .timer(TokioTimer::new())
        .observer(RpcMetrics::new())
        .build();
    let server = Server::builder().bind("127.0.0.1:0").await.unwrap();
    let base: http::Uri = format!("http://{}", server.local_addr().unwrap())
        .parse()
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve_with_shutdown(service, async {
        let _ = stopped.await;
    }));

    let setups = [
        (Protocol::Connect, HttpClient::plaintext_http1()),
        (Protocol::Grpc, HttpClient::plaintext_h2c()),
        (Protocol::GrpcWeb, HttpClient::plaintext_http1()),
    ];
    for (protocol, transport) in setups {
        let config = ClientConfig::new(base.clone()).protocol(protocol);
        let client = Client::new(transport, config)
            .timer(TokioTimer::new())
            .observer(RpcMetrics::new());
        metrics_example::call_every_kind(&GreeterClient::new(client))
            .await
            .unwrap_or_else(|status| panic!("{protocol:?}: {status:?}"));
    }
    let _ = stop.send(());
    assert!(serving.await.unwrap().drained());

    let text = prometheus.render();
    for line in [
        "# TYPE rpc_server_calls_total counter",
        "# TYPE rpc_client_calls_total counter",
        "# TYPE rpc_server_duration_seconds histogram",
        "# TYPE rpc_client_duration_seconds histogram",
        "# TYPE rpc_server_request_size_bytes histogram",
        "# TYPE rpc_server_responses_per_rpc histogram",
        "# TYPE rpc_server_active_calls gauge",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    let samples = samples(&text);
    let service = ("rpc_service", "connectrpc.greet.v1.Greeter");
    for side in ["server", "client"] {
        let calls = format!("rpc_{side}_calls_total");
        for (system, count) in [("connect_rpc", 1.0), ("grpc", 2.0)] {
            let system = ("rpc_system", system);
            let say_hello = ("rpc_method", "SayHello");
            // One success and one failure per protocol (gRPC and gRPC-Web share a system).
            assert_eq!(
                value(
                    &samples,
                    &calls,
                    &[system, service, say_hello, ("code", "ok")]
                ),
                count,
                "{side} {system:?}"
            );
            assert_eq!(
                value(
                    &samples,
                    &calls,
                    &[system, service, say_hello, ("code", "invalid_argument")]
                ),
                count,
                "{side} {system:?}"
            );
            for method in ["SayHelloRepeatedly", "SayHelloToAll", "Converse"] {
                let labels = [system, service, ("rpc_method", method), ("code", "ok")];
                assert_eq!(value(&samples, &calls, &labels), count, "{side} {method}");
            }

            // Histograms: buckets up to +Inf, a sum and a count.
            let duration = format!("rpc_{side}_duration_seconds");
            let ok = [system, service, say_hello, ("code", "ok")];
            let count_name = format!("{duration}_count");
            assert_eq!(value(&samples, &count_name, &ok), count);
            let inf = [system, service, say_hello, ("code", "ok"), ("le", "+Inf")];
            assert_eq!(value(&samples, &format!("{duration}_bucket"), &inf), count);
            assert!(value(&samples, &format!("{duration}_sum"), &ok) > 0.0);

            // Messages per call: the stream of three, the client stream of three.
            let repeated = [system, service, ("rpc_method", "SayHelloRepeatedly")];
            let responses = format!("rpc_{side}_responses_per_rpc_sum");
            assert_eq!(value(&samples, &responses, &repeated), 3.0 * count);
            let to_all = [system, service, ("rpc_method", "SayHelloToAll")];
            let requests = format!("rpc_{side}_requests_per_rpc_sum");
            assert_eq!(value(&samples, &requests, &to_all), 3.0 * count);

            // Sizes: some bytes each way, in a bucket.
            let sizes = format!("rpc_{side}_response_size_bytes");
            let hello = [system, service, say_hello];
            assert!(value(&samples, &format!("{sizes}_sum"), &hello) > 0.0);
            assert_eq!(
                value(&samples, &format!("{sizes}_count"), &hello),
                2.0 * count
            );

            // Nothing in flight any more.
            let active = format!("rpc_{side}_active_calls");
            assert_eq!(value(&samples, &active, &[system, service, say_hello]), 0.0);
        }
    }
}
