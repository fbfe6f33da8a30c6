//! The health service over a real socket, with the generated client, in every protocol:
//! Check (serving, not serving, unknown, the server as a whole), List, Watch (initial status,
//! changes, unknown services, the end at shutdown).

use std::net::SocketAddr;
use std::time::Duration;

use connect_health::health::HealthClient;
use connect_health::v1::{HealthCheckRequest, HealthListRequest};
use connect_health::{HealthReporter, MAX_LIST_SERVICES, ServingStatus};
use connect_proto_core::{Codec, Protocol};
use connect_tokio_hyper::{HttpClient, Server, Shutdown, TokioTimer};
use connect_tower::Code;
use connect_tower::client::{Client, ClientConfig};
use connect_tower::server::{ConnectService, Routes};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Every protocol, with the transport it is usually spoken over.
const SETUPS: [(Protocol, Codec, bool); 4] = [
    (Protocol::Connect, Codec::Proto, false),
    (Protocol::Connect, Codec::Json, true),
    (Protocol::Grpc, Codec::Proto, true),
    (Protocol::GrpcWeb, Codec::Proto, false),
];

struct Running {
    addr: SocketAddr,
    health: HealthReporter,
    stop: oneshot::Sender<()>,
    serving: JoinHandle<Shutdown>,
}

async fn start() -> Running {
    let (health, health_server) = connect_health::server();
    let service = ConnectService::builder(Routes::new().service(health_server))
        .timer(TokioTimer::new())
        .build();
    let server = Server::builder()
        .drain_timeout(Duration::from_secs(5))
        .bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = server.local_addr().expect("local addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve_with_shutdown(service, async {
        let _ = stopped.await;
    }));
    Running {
        addr,
        health,
        stop,
        serving,
    }
}

fn client(
    addr: SocketAddr,
    protocol: Protocol,
    codec: Codec,
    h2c: bool,
) -> HealthClient<HttpClient> {
    let transport = if h2c {
        HttpClient::plaintext_h2c()
    } else {
        HttpClient::plaintext_http1()
    };
    let base = format!("http://{addr}").parse().expect("uri");
    let config = ClientConfig::new(base)
        .protocol(protocol)
        .codec(codec)
        .default_timeout(Some(Duration::from_secs(10)));
    HealthClient::new(Client::new(transport, config).timer(TokioTimer::new()))
}

fn ask(service: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: service.into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_serving_not_serving_and_unknown() {
    let running = start().await;
    running.health.set_serving("acme.v1.Up");
    running.health.set_not_serving("acme.v1.Down");
    for (protocol, codec, h2c) in SETUPS {
        let what = format!("{protocol:?} {codec:?}");
        let client = client(running.addr, protocol, codec, h2c);
        for (service, expected) in [
            ("", ServingStatus::SERVING),
            ("acme.v1.Up", ServingStatus::SERVING),
            ("acme.v1.Down", ServingStatus::NOT_SERVING),
        ] {
            let response = client.check(ask(service)).await.expect(&what);
            assert_eq!(response.message().status, expected, "{what} {service:?}");
        }
        let unknown = client
            .check(ask("acme.v1.Nobody"))
            .await
            .expect_err("unknown service");
        assert_eq!(unknown.code(), Code::NotFound, "{what}: {unknown}");
        assert!(
            unknown.message().contains("acme.v1.Nobody"),
            "{what}: {unknown}"
        );
    }
    let _ = running.stop.send(());
    assert!(running.serving.await.expect("server task").drained());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_reports_every_service_up_to_the_limit() {
    let running = start().await;
    running.health.set_serving("a");
    running.health.set_not_serving("b");
    for (protocol, codec, h2c) in SETUPS {
        let client = client(running.addr, protocol, codec, h2c);
        let list = client
            .list(HealthListRequest::default())
            .await
            .expect("list");
        let statuses = &list.message().statuses;
        assert_eq!(statuses.len(), 3, "{protocol:?}: {statuses:?}");
        assert_eq!(statuses["a"].status, ServingStatus::SERVING);
        assert_eq!(statuses["b"].status, ServingStatus::NOT_SERVING);
        assert_eq!(statuses[""].status, ServingStatus::SERVING);
    }
    // At the limit (the server itself counts), then one past it.
    for i in 0..MAX_LIST_SERVICES - 3 {
        running.health.set_serving(format!("s{i}"));
    }
    let client = client(running.addr, Protocol::Grpc, Codec::Proto, true);
    let list = client
        .list(HealthListRequest::default())
        .await
        .expect("at the limit");
    assert_eq!(list.message().statuses.len(), MAX_LIST_SERVICES);
    running.health.set_serving("one-too-many");
    let error = client
        .list(HealthListRequest::default())
        .await
        .expect_err("past the limit");
    assert_eq!(error.code(), Code::ResourceExhausted, "{error}");
    let _ = running.stop.send(());
    let _ = running.serving.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_sends_the_status_then_each_change() {
    let running = start().await;
    for (protocol, codec, h2c) in SETUPS {
        let what = format!("{protocol:?} {codec:?}");
        let service = format!("watched.{protocol:?}.{codec:?}");
        running.health.set_serving(service.as_str());
        let client = client(running.addr, protocol, codec, h2c);
        let mut stream = client.watch(ask(&service)).await.expect(&what);
        let first = stream
            .message()
            .await
            .expect(&what)
            .expect("a first status");
        assert_eq!(first.status, ServingStatus::SERVING, "{what}");

        running.health.set_not_serving(service.as_str());
        let next = stream.message().await.expect(&what).expect("a change");
        assert_eq!(next.status, ServingStatus::NOT_SERVING, "{what}");

        // Clearing makes it unknown; the stream stays open and sees it come back.
        running.health.clear(&service);
        let gone = stream.message().await.expect(&what).expect("unknown");
        assert_eq!(gone.status, ServingStatus::SERVICE_UNKNOWN, "{what}");
        running.health.set_serving(service.as_str());
        let back = stream.message().await.expect(&what).expect("known again");
        assert_eq!(back.status, ServingStatus::SERVING, "{what}");
        stream.cancel();
    }
    let _ = running.stop.send(());
    assert!(running.serving.await.expect("server task").drained());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_of_an_unknown_service_is_a_message_not_an_error() {
    let running = start().await;
    for (protocol, codec, h2c) in SETUPS {
        let what = format!("{protocol:?} {codec:?}");
        let service = format!("later.{protocol:?}.{codec:?}");
        let client = client(running.addr, protocol, codec, h2c);
        let mut stream = client.watch(ask(&service)).await.expect(&what);
        let first = stream
            .message()
            .await
            .expect(&what)
            .expect("a first status");
        assert_eq!(first.status, ServingStatus::SERVICE_UNKNOWN, "{what}");
        running.health.set_serving(service.as_str());
        let next = stream.message().await.expect(&what).expect("a change");
        assert_eq!(next.status, ServingStatus::SERVING, "{what}");
        stream.cancel();
    }
    let _ = running.stop.send(());
    let _ = running.serving.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_end_cleanly_when_the_server_shuts_down() {
    let running = start().await;
    let mut streams = Vec::new();
    for (protocol, codec, h2c) in SETUPS {
        let client = client(running.addr, protocol, codec, h2c);
        let mut stream = client.watch(ask("")).await.expect("watch");
        let first = stream
            .message()
            .await
            .expect("first")
            .expect("a first status");
        assert_eq!(first.status, ServingStatus::SERVING);
        streams.push((protocol, stream));
    }
    let _ = running.stop.send(());
    for (protocol, mut stream) in streams {
        let last = stream
            .message()
            .await
            .expect("last")
            .expect("a last status");
        assert_eq!(last.status, ServingStatus::NOT_SERVING, "{protocol:?}");
        let end = tokio::time::timeout(Duration::from_secs(5), stream.message())
            .await
            .expect("the stream ends before the drain deadline");
        assert!(matches!(end, Ok(None)), "{protocol:?}: {end:?}");
    }
    let shutdown = running.serving.await.expect("server task");
    assert!(
        shutdown.drained(),
        "watches held the server open: {shutdown:?}"
    );
}
