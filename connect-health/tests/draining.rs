//! A draining server is not serving: Check and List report every known service as
//! `NOT_SERVING` once graceful shutdown starts, and a Watch reports `NOT_SERVING` and ends.
//! In process: the transport is the `ConnectService` itself, with the `ConnectionInfo` a
//! runtime adapter records (whose shutdown signal the test moves).

use std::task::{Context, Poll};

use connect_health::health::{HealthClient, HealthServer};
use connect_health::v1::{HealthCheckRequest, HealthListRequest};
use connect_health::{HealthService, ServingStatus};
use connect_proto_core::{Codec, Protocol};
use connect_tower::client::{Client, ClientConfig};
use connect_tower::rt::{ShutdownSignal, ShutdownTrigger};
use connect_tower::server::ConnectService;
use connect_tower::{Code, ConnectionInfo, PeerInfo};

/// The service, with the connection information an adapter would add to each request.
#[derive(Clone)]
struct Adapter {
    service: ConnectService<HealthServer<HealthService>>,
    shutdown: ShutdownSignal,
}

impl<B> tower_service::Service<http::Request<B>> for Adapter
where
    ConnectService<HealthServer<HealthService>>: tower_service::Service<http::Request<B>>,
{
    type Response = <ConnectService<HealthServer<HealthService>> as tower_service::Service<
        http::Request<B>,
    >>::Response;
    type Error = <ConnectService<HealthServer<HealthService>> as tower_service::Service<
        http::Request<B>,
    >>::Error;
    type Future = <ConnectService<HealthServer<HealthService>> as tower_service::Service<
        http::Request<B>,
    >>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.service.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let info = ConnectionInfo::new(PeerInfo::new(None, None), self.shutdown.clone());
        request.extensions_mut().insert(info);
        self.service.call(request)
    }
}

fn ask(service: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: service.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn draining_servers_report_not_serving() {
    for protocol in [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb] {
        let (health, server) = connect_health::server();
        health.set_serving("a");
        let (trigger, shutdown) = ShutdownTrigger::new();
        let transport = Adapter {
            service: ConnectService::new(server),
            shutdown,
        };
        let config = ClientConfig::new(http::Uri::from_static("http://localhost"))
            .protocol(protocol)
            .codec(Codec::Proto);
        let client = HealthClient::new(Client::new(transport, config));

        let before = client.check(ask("a")).await.expect("check");
        assert_eq!(
            before.message().status,
            ServingStatus::SERVING,
            "{protocol:?}"
        );
        trigger.drain();
        for service in ["", "a"] {
            let during = client.check(ask(service)).await.expect("check");
            assert_eq!(
                during.message().status,
                ServingStatus::NOT_SERVING,
                "{protocol:?} {service:?}"
            );
        }
        let unknown = client.check(ask("b")).await.expect_err("unknown");
        assert_eq!(unknown.code(), Code::NotFound, "{protocol:?}");
        let list = client
            .list(HealthListRequest::default())
            .await
            .expect("list");
        assert!(
            list.message()
                .statuses
                .values()
                .all(|s| s.status == ServingStatus::NOT_SERVING),
            "{protocol:?}: {:?}",
            list.message().statuses
        );
        let mut watch = client.watch(ask("a")).await.expect("watch");
        let last = watch.message().await.expect("a status").expect("one");
        assert_eq!(last.status, ServingStatus::NOT_SERVING, "{protocol:?}");
        assert!(matches!(watch.message().await, Ok(None)), "{protocol:?}");
        // The reporter itself is unchanged: a restarted server reports from it again.
        assert_eq!(health.status("a"), Some(ServingStatus::SERVING));
    }
}
