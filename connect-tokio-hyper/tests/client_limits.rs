//! Client defaults that bound what a client holds: connections per host in the pooled
//! HTTP/1.1 transport.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use connect_tokio_hyper::{HttpClient, IncomingBody, Server, TokioTimer};
use connect_tower::client::{CallOptions, Client, ClientConfig};
use connect_tower::server::ConnectService;
use connect_tower::{ConnectionInfo, Protocol};
use tower::ServiceExt;

#[tokio::test]
async fn the_pool_opens_at_most_the_connections_per_host_it_is_allowed() {
    let seen: Arc<Mutex<HashSet<SocketAddr>>> = Arc::default();
    let rpc = ConnectService::builder(Echo::default())
        .timer(TokioTimer::new())
        .build();
    let record = seen.clone();
    let service = tower::service_fn(move |request: http::Request<IncomingBody>| {
        // The adapter hands the connection over per call, not in the extensions.
        let connection: Option<Arc<ConnectionInfo>> = connect_tower::rt::current_connection();
        if let Some(remote) = connection.and_then(|c| c.peer.remote_addr) {
            record.lock().unwrap().insert(remote);
        }
        rpc.clone().oneshot(request)
    });
    let server = start_service(Server::builder(), service).await;
    let transport = HttpClient::builder()
        .max_connections_per_host(2)
        .plaintext_http1();
    let client = Client::new(
        transport,
        ClientConfig::new(server.http_uri()).protocol(Protocol::Connect),
    );
    let started = Instant::now();
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .unary::<StringValue, StringValue>(&SLEEP, string("200"), CallOptions::new())
                    .await
            })
        })
        .collect();
    for call in calls {
        call.await.unwrap().expect("every call is served, in turn");
    }
    // Six 200 ms calls over two connections take three rounds.
    assert!(
        started.elapsed() >= Duration::from_millis(550),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(seen.lock().unwrap().len(), 2, "{:?}", seen.lock().unwrap());
    server.shutdown().await;
}
