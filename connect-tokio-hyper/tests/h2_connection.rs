//! `H2Connection`: honest readiness (stream limit, dead connection) and `tower::balance`.

mod common;

use std::future::poll_fn;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::{Duration, Instant};

use common::*;
use connect_tokio_hyper::{H2Connection, Server, TokioTimer};
use connect_tower::client::{CallOptions, Client, ClientConfig, RequestBody};
use connect_tower::{Code, Protocol};
use tower::Service;

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Polls `poll_ready` once.
async fn ready_now(
    connection: &mut H2Connection,
) -> Poll<Result<(), connect_tokio_hyper::BoxError>> {
    poll_fn(|cx| {
        Poll::Ready(Service::<http::Request<RequestBody>>::poll_ready(
            connection, cx,
        ))
    })
    .await
}

async fn ready(connection: &mut H2Connection) -> Result<(), connect_tokio_hyper::BoxError> {
    tokio::time::timeout(
        Duration::from_secs(5),
        poll_fn(|cx| Service::<http::Request<RequestBody>>::poll_ready(connection, cx)),
    )
    .await
    .expect("poll_ready settles")
}

#[tokio::test]
async fn poll_ready_follows_the_stream_limit_and_the_connection() {
    let echo = Echo::default();
    let server = start(
        Server::builder()
            .http2_max_concurrent_streams(1)
            .drain_timeout(Duration::from_millis(100)),
        echo.clone(),
    )
    .await;
    let connection = H2Connection::connect(&server.http_uri()).await.unwrap();
    let client = Client::new(
        connection.clone(),
        ClientConfig::new(server.http_uri()).protocol(Protocol::Grpc),
    )
    .timer(TokioTimer::new());
    // One call, so the server's SETTINGS have arrived.
    client
        .unary::<StringValue, StringValue>(&ECHO, string("hi"), CallOptions::default())
        .await
        .unwrap();
    assert_eq!(connection.max_concurrent_streams(), 1);
    assert_eq!(connection.in_flight(), 0);

    // Occupy the only stream.
    let slow = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .unary::<StringValue, StringValue>(&SLEEP, string("300"), CallOptions::default())
                .await
        }
    });
    wait_until("the call started", || {
        echo.started.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(connection.in_flight(), 1);
    let mut handle = connection.clone();
    assert!(ready_now(&mut handle).await.is_pending(), "at the limit");
    // Ready again once the stream ends (the waiter is woken).
    ready(&mut handle).await.expect("ready after the call");
    slow.await.unwrap().unwrap();
    // The reservation is held by `handle` until it calls or is dropped.
    assert_eq!(connection.in_flight(), 1);
    drop(handle);
    assert_eq!(connection.in_flight(), 0);

    // A dead connection fails readiness.
    server.shutdown().await;
    wait_until("the connection closes", || connection.is_closed()).await;
    let mut handle = connection.clone();
    assert!(ready(&mut handle).await.is_err());
    let status = client
        .unary::<StringValue, StringValue>(&ECHO, string("late"), CallOptions::default())
        .await
        .expect_err("the connection is closed");
    assert_eq!(status.code(), Code::Unavailable);
}

#[tokio::test]
async fn requests_queue_client_side_beyond_the_limit() {
    let echo = Echo::default();
    let server = start(
        Server::builder().http2_max_concurrent_streams(2),
        echo.clone(),
    )
    .await;
    let connection = H2Connection::connect(&server.http_uri()).await.unwrap();
    let client = Client::new(
        connection.clone(),
        ClientConfig::new(server.http_uri()).protocol(Protocol::Grpc),
    );
    client
        .unary::<StringValue, StringValue>(&ECHO, string("settings"), CallOptions::default())
        .await
        .unwrap();
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .unary::<StringValue, StringValue>(
                        &SLEEP,
                        string("100"),
                        CallOptions::default(),
                    )
                    .await
            })
        })
        .collect();
    let mut peak = 0;
    for call in calls {
        while !call.is_finished() {
            peak = peak.max(connection.in_flight());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(call.await.unwrap().unwrap().message().value, "slept");
    }
    assert!(peak <= 2, "in flight {peak} over the peer's limit");
    assert_eq!(echo.started.load(Ordering::SeqCst), 6);
    server.shutdown().await;
}

#[tokio::test]
async fn balance_p2c_over_two_connections() {
    use tower::balance::p2c::Balance;
    use tower::buffer::Buffer;
    use tower::discover::ServiceList;
    use tower::load::Constant;

    let first_echo = Echo::default();
    let second_echo = Echo::default();
    let first = start(Server::builder(), first_echo.clone()).await;
    let second = start(
        Server::builder().drain_timeout(Duration::from_millis(50)),
        second_echo.clone(),
    )
    .await;
    let first_connection = H2Connection::connect(&first.http_uri()).await.unwrap();
    let second_connection = H2Connection::connect(&second.http_uri()).await.unwrap();
    let balance = Balance::new(ServiceList::new(vec![
        Constant::new(first_connection.clone(), 1),
        Constant::new(second_connection.clone(), 1),
    ]));
    let transport = Buffer::new(balance, 64);
    // Requests carry no authority of their own beyond the base URI's; each connection sends
    // them to its own server regardless.
    let client = Client::new(
        transport,
        ClientConfig::new(first.http_uri()).protocol(Protocol::Grpc),
    )
    .timer(TokioTimer::new());

    for _ in 0..40 {
        let reply = client
            .unary::<StringValue, StringValue>(&SLEEP, string("0"), CallOptions::default())
            .await
            .unwrap();
        assert_eq!(reply.message().value, "slept");
    }
    let on_first = first_echo.started.load(Ordering::SeqCst);
    let on_second = second_echo.started.load(Ordering::SeqCst);
    assert_eq!(on_first + on_second, 40);
    assert!(on_first > 0 && on_second > 0, "{on_first} / {on_second}");

    // The second server goes away; its connection fails readiness and leaves the balancer.
    second.shutdown().await;
    wait_until("the connection closes", || second_connection.is_closed()).await;
    for _ in 0..20 {
        client
            .unary::<StringValue, StringValue>(&SLEEP, string("0"), CallOptions::default())
            .await
            .expect("served by the remaining connection");
    }
    assert_eq!(first_echo.started.load(Ordering::SeqCst), on_first + 20);
    first.shutdown().await;
}
