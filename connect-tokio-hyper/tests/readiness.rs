//! Services that are not ready at once, served over HTTP/2: each stream's task waits for its
//! service to become ready (polled with the stream's waker), then calls it and answers; a
//! service whose readiness fails resets that stream (the client sees `internal`), and the
//! connection goes on serving.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use common::*;
use connect_tokio_hyper::{BoxError, H2Connection, IncomingBody, Server, TokioTimer};
use connect_tower::client::{CallOptions, Client, ClientConfig};
use connect_tower::server::{ConnectService, ResponseBody};
use connect_tower::{Code, Protocol};

/// The echo service behind a readiness that says "not yet" a few times per clone (the server
/// clones its service for every stream), or fails once.
#[derive(Clone)]
struct Hesitant {
    inner: ConnectService<Echo>,
    not_ready_polls: usize,
    fail_once: Arc<AtomicBool>,
    ready_polls: Arc<AtomicUsize>,
    ready: bool,
}

impl Hesitant {
    fn new(not_ready_polls: usize, fail_once: bool) -> Self {
        Hesitant {
            inner: ConnectService::builder(Echo::default())
                .timer(TokioTimer::new())
                .build(),
            not_ready_polls,
            fail_once: Arc::new(AtomicBool::new(fail_once)),
            ready_polls: Arc::new(AtomicUsize::new(0)),
            ready: false,
        }
    }
}

impl tower::Service<http::Request<IncomingBody>> for Hesitant {
    type Response = http::Response<ResponseBody>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.ready_polls.fetch_add(1, Ordering::SeqCst);
        if self.fail_once.swap(false, Ordering::SeqCst) {
            return Poll::Ready(Err("not ready, and never will be".into()));
        }
        if self.not_ready_polls > 0 {
            self.not_ready_polls -= 1;
            // Ready soon: the caller is woken to poll again.
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.ready = true;
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<IncomingBody>) -> Self::Future {
        assert!(
            std::mem::take(&mut self.ready),
            "called without being ready"
        );
        let response = self.inner.serve(request);
        Box::pin(async move { Ok(response.await) })
    }
}

async fn grpc_client(server: &Running) -> Client<H2Connection> {
    let uri = server.http_uri();
    let connection = H2Connection::connect(&uri).await.unwrap();
    Client::new(connection, ClientConfig::new(uri).protocol(Protocol::Grpc))
}

#[tokio::test]
async fn a_service_that_is_not_ready_at_once_is_waited_for() {
    let service = Hesitant::new(2, false);
    let polls = service.ready_polls.clone();
    let server = start_service(Server::builder(), service).await;
    let client = grpc_client(&server).await;
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..8 {
        let client = client.clone();
        calls.spawn(async move {
            let text = format!("call {i}");
            let response = client
                .unary::<_, StringValue>(&ECHO, string(&text), CallOptions::new())
                .await
                .unwrap();
            assert_eq!(response.into_message().value, text);
        });
    }
    while let Some(call) = calls.join_next().await {
        call.unwrap();
    }
    // Every stream's service was polled until ready: twice "not yet", then ready.
    assert!(polls.load(Ordering::SeqCst) >= 8 * 3);
    server.shutdown().await;
}

#[tokio::test]
async fn a_service_whose_readiness_fails_resets_its_stream_only() {
    let server = start_service(Server::builder(), Hesitant::new(0, true)).await;
    let client = grpc_client(&server).await;
    let failed = client
        .unary::<_, StringValue>(&ECHO, string("first"), CallOptions::new())
        .await
        .unwrap_err();
    assert_eq!(failed.code(), Code::Internal, "{failed:?}");
    // The same connection serves the next call.
    let response = client
        .unary::<_, StringValue>(&ECHO, string("second"), CallOptions::new())
        .await
        .unwrap();
    assert_eq!(response.into_message().value, "second");
    server.shutdown().await;
}
