//! Server behaviour: deadlines, graceful shutdown and its drain deadline, the connection
//! limit, timeouts, limits, and failing connections that must not take the server down.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use connect_tokio_hyper::{HttpClient, Server, TokioTimer};
use connect_tower::client::{CallOptions, Client, ClientConfig, RequestBody};
use connect_tower::{Code, Protocol};
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::ServiceExt;

fn h2c_client(uri: http::Uri) -> Client<HttpClient> {
    Client::new(
        HttpClient::plaintext_h2c(),
        ClientConfig::new(uri).protocol(Protocol::Grpc),
    )
}

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

#[tokio::test]
async fn server_enforces_the_deadline() {
    let echo = Echo::default();
    let server = start(Server::builder(), echo.clone()).await;
    for protocol in [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb] {
        // No client timer: only the server enforces the deadline it is sent.
        let client = Client::new(
            HttpClient::plaintext_h2c(),
            ClientConfig::new(server.http_uri()).protocol(protocol),
        );
        let options = CallOptions::new().timeout(Duration::from_millis(100));
        let started = Instant::now();
        let status = client
            .unary::<StringValue, StringValue>(&SLEEP, string("10000"), options)
            .await
            .expect_err("the deadline passes first");
        assert_eq!(status.code(), Code::DeadlineExceeded, "{protocol:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    // Every abandoned handler was dropped.
    wait_until("handlers are dropped", || {
        echo.abandoned.load(Ordering::SeqCst) == 3
    })
    .await;
    server.shutdown().await;
}

#[tokio::test]
async fn client_timer_enforces_the_deadline_too() {
    let server = start(Server::builder(), Echo::default()).await;
    let client = h2c_client(server.http_uri()).timer(TokioTimer::new());
    let options = CallOptions::new().timeout(Duration::from_millis(50));
    let status = client
        .unary::<StringValue, StringValue>(&SLEEP, string("10000"), options)
        .await
        .expect_err("the deadline passes first");
    assert_eq!(status.code(), Code::DeadlineExceeded);
    server.shutdown().await;
}

#[tokio::test]
async fn graceful_shutdown_drains_in_flight_calls() {
    for http1 in [false, true] {
        let echo = Echo::default();
        let mut server = start(Server::builder(), echo.clone()).await;
        let transport = if http1 {
            HttpClient::plaintext_http1()
        } else {
            HttpClient::plaintext_h2c()
        };
        let client = Client::new(transport, ClientConfig::new(server.http_uri()));
        let call = tokio::spawn({
            let client = client.clone();
            async move {
                client
                    .unary::<StringValue, StringValue>(
                        &SLEEP,
                        string("300"),
                        CallOptions::default(),
                    )
                    .await
            }
        });
        wait_until("the call started", || {
            echo.started.load(Ordering::SeqCst) == 1
        })
        .await;
        server.begin_shutdown();
        let reply = call.await.unwrap().expect("the in-flight call completes");
        assert_eq!(reply.message().value, "slept");
        let outcome = server.shutdown().await;
        assert!(outcome.drained(), "http1={http1}: {outcome:?}");
        assert_eq!(echo.abandoned.load(Ordering::SeqCst), 0);
    }
}

#[tokio::test]
async fn shutdown_stops_accepting() {
    let server = start(Server::builder(), Echo::default()).await;
    let addr = server.addr;
    server.shutdown().await;
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn drain_deadline_closes_what_is_left() {
    let echo = Echo::default();
    let mut server = start(
        Server::builder().drain_timeout(Duration::from_millis(200)),
        echo.clone(),
    )
    .await;
    let client = h2c_client(server.http_uri());
    let call = tokio::spawn(async move {
        client
            .unary::<StringValue, StringValue>(&SLEEP, string("60000"), CallOptions::default())
            .await
    });
    wait_until("the call started", || {
        echo.started.load(Ordering::SeqCst) == 1
    })
    .await;
    let begun = Instant::now();
    server.begin_shutdown();
    let outcome = server.shutdown().await;
    assert!(begun.elapsed() < Duration::from_secs(5));
    assert_eq!(outcome.aborted_connections, 1);
    let status = call.await.unwrap().expect_err("the connection was closed");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    wait_until("the handler is dropped", || {
        echo.abandoned.load(Ordering::SeqCst) == 1
    })
    .await;
}

#[tokio::test]
async fn connection_limit_holds_back_new_connections() {
    let server = start(Server::builder().max_connections(1), Echo::default()).await;
    // A silent connection takes the only slot.
    let occupant = TcpStream::connect(server.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let client = h2c_client(server.http_uri());
    let call = tokio::spawn(async move {
        client
            .unary::<StringValue, StringValue>(&ECHO, string("queued"), CallOptions::default())
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!call.is_finished(), "the second connection was served");
    drop(occupant);
    let reply = tokio::time::timeout(Duration::from_secs(5), call)
        .await
        .expect("served once the slot is free")
        .unwrap()
        .unwrap();
    assert_eq!(reply.message().value, "queued");
    server.shutdown().await;
}

#[tokio::test]
async fn silent_connections_are_closed() {
    let server = start(
        Server::builder().header_read_timeout(Some(Duration::from_millis(100))),
        Echo::default(),
    )
    .await;
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf))
        .await
        .expect("the server closes the connection");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");

    // A request head that never completes is cut off too.
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"POST /x HTTP/1.1\r\nhost: a\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut response))
        .await
        .expect("the server closes the connection");
    assert!(read.is_ok() || response.is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn oversized_headers_are_refused() {
    let server = start(
        Server::builder().max_header_list_size(8 * 1024),
        Echo::default(),
    )
    .await;
    let request = |size: usize| {
        http::Request::post(format!("http://{}/test.v1.EchoService/Echo", server.addr))
            .header("x-big", "a".repeat(size))
            .body(RequestBody::empty())
            .unwrap()
    };
    let response = HttpClient::plaintext_http1()
        .oneshot(request(16 * 1024))
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    let response = HttpClient::plaintext_h2c()
        .oneshot(request(16 * 1024))
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    // The server still works.
    let reply = h2c_client(server.http_uri())
        .unary::<StringValue, StringValue>(&ECHO, string("fine"), CallOptions::default())
        .await
        .unwrap();
    assert_eq!(reply.message().value, "fine");
    server.shutdown().await;
}

#[tokio::test]
async fn garbage_and_panics_do_not_take_the_server_down() {
    // Any tower service fits; this one panics on one path.
    let service = tower::service_fn(
        |request: http::Request<connect_tokio_hyper::IncomingBody>| async move {
            if request.uri().path() == "/panic" {
                panic!("the service panicked");
            }
            // Read while the adapter polls this future (it hands the connection over per
            // call, not in the request's extensions).
            let peer = connect_tower::rt::current_connection()
                .map(|connection| connection.peer.remote_addr.is_some());
            let body = request.into_body().collect().await?.to_bytes();
            let text = format!("{peer:?} {}", String::from_utf8_lossy(&body));
            Ok::<_, connect_tokio_hyper::BoxError>(http::Response::new(Full::new(Bytes::from(
                text,
            ))))
        },
    );
    let server = Server::builder().bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.serve_with_shutdown(service, async {
        let _ = stopped.await;
    }));

    // Garbage bytes: the connection ends, nothing else.
    let mut garbage = TcpStream::connect(addr).await.unwrap();
    garbage
        .write_all(b"\x00\x01\x02 not http at all\r\n\r\n")
        .await
        .unwrap();
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), garbage.read_to_end(&mut sink)).await;

    for transport in [HttpClient::plaintext_http1(), HttpClient::plaintext_h2c()] {
        let panicking = http::Request::post(format!("http://{addr}/panic"))
            .body(RequestBody::empty())
            .unwrap();
        let result = transport.clone().oneshot(panicking).await;
        assert!(
            result.is_err() || result.unwrap().status().is_server_error(),
            "a panicking service cannot answer normally"
        );
        let request = http::Request::post(format!("http://{addr}/echo"))
            .body(RequestBody::full(Bytes::from_static(b"still up")))
            .unwrap();
        let response = transport.oneshot(request).await.expect("the server is up");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"Some(true) still up");
    }
    let _ = stop.send(());
    running.await.unwrap();
}

#[cfg(all(feature = "tls", any(feature = "aws-lc-rs", feature = "ring")))]
#[tokio::test]
async fn stalled_tls_handshakes_are_dropped() {
    let pki = Pki::new();
    let server = start(
        Server::builder()
            .tls(pki.server_config(connect_tokio_hyper::tls::ClientAuth::None))
            .tls_handshake_timeout(Duration::from_millis(100))
            .max_connections(1),
        Echo::default(),
    )
    .await;
    // A client that never says hello holds the only slot until the handshake times out.
    let mut stalled = TcpStream::connect(server.addr).await.unwrap();
    let client = Client::new(
        HttpClient::tls(pki.client_config(false)),
        ClientConfig::new(server.https_uri()),
    );
    let reply = tokio::time::timeout(
        Duration::from_secs(5),
        client.unary::<StringValue, StringValue>(&ECHO, string("after"), CallOptions::new()),
    )
    .await
    .expect("served once the stalled handshake is dropped")
    .unwrap();
    assert_eq!(reply.message().value, "after");
    let mut buf = [0u8; 8];
    assert!(matches!(stalled.read(&mut buf).await, Ok(0) | Err(_)));
    server.shutdown().await;
}

/// Opens a raw HTTP/2 connection (preface and empty SETTINGS) and then ignores everything the
/// server sends, PINGs included. Returns once the server closes it, or `None` if it is still
/// open after `wait`.
async fn unresponsive_h2_peer(addr: std::net::SocketAddr, wait: Duration) -> Option<Duration> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let started = Instant::now();
    let mut sink = Vec::new();
    match tokio::time::timeout(wait, stream.read_to_end(&mut sink)).await {
        Ok(_) => Some(started.elapsed()),
        Err(_) => None,
    }
}

#[tokio::test]
async fn http2_peers_that_stop_answering_pings_are_dropped() {
    let server = start(
        Server::builder()
            .http2_keep_alive_interval(Some(Duration::from_millis(100)))
            .http2_keep_alive_timeout(Duration::from_millis(200)),
        Echo::default(),
    )
    .await;
    let closed = unresponsive_h2_peer(server.addr, Duration::from_secs(5)).await;
    assert!(
        closed.is_some(),
        "a peer that never answers a PING is disconnected"
    );
    server.shutdown().await;

    // Without keep-alive pings the same silent peer keeps its connection.
    let server = start(Server::builder(), Echo::default()).await;
    let closed = unresponsive_h2_peer(server.addr, Duration::from_millis(800)).await;
    assert_eq!(closed, None, "no keep-alive, no disconnection");
    server.shutdown().await;
}

/// An error hook that records what it is told.
fn recording_hook() -> (
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    impl Fn(&connect_tokio_hyper::ServerError) + Send + Sync + 'static,
) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    let hook = move |error: &connect_tokio_hyper::ServerError| {
        assert!(error.remote().is_some(), "{error}");
        let kind = match error {
            connect_tokio_hyper::ServerError::Silent { .. } => "silent",
            connect_tokio_hyper::ServerError::Connection { .. } => "connection",
            connect_tokio_hyper::ServerError::TlsHandshake { .. } => "tls",
            connect_tokio_hyper::ServerError::TlsHandshakeTimeout { .. } => "tls timeout",
            _ => "other",
        };
        record.lock().unwrap().push(kind.to_string());
    };
    (seen, hook)
}

#[tokio::test]
async fn connection_failures_reach_the_error_hook() {
    let (seen, hook) = recording_hook();
    let server = start(
        Server::builder()
            .header_read_timeout(Some(Duration::from_millis(100)))
            .on_error(hook),
        Echo::default(),
    )
    .await;
    // A served call reports nothing.
    let client = h2c_client(server.http_uri());
    client
        .unary::<StringValue, StringValue>(&ECHO, string("fine"), CallOptions::new())
        .await
        .unwrap();
    // Garbage instead of a request head: an HTTP error ends the connection.
    let mut garbage = TcpStream::connect(server.addr).await.unwrap();
    garbage
        .write_all(b"\x01\x02 not http\r\n\r\n")
        .await
        .unwrap();
    let mut sink = Vec::new();
    let _ = garbage.read_to_end(&mut sink).await;
    wait_until("the HTTP error is reported", || {
        seen.lock().unwrap().iter().any(|k| k == "connection")
    })
    .await;
    // A client that says nothing is closed and reported.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let _ = silent.read_to_end(&mut sink).await;
    wait_until("the silent client is reported", || {
        seen.lock().unwrap().iter().any(|k| k == "silent")
    })
    .await;
    server.shutdown().await;
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .all(|k| k == "connection" || k == "silent"),
        "{:?}",
        seen.lock().unwrap()
    );
}

#[cfg(all(feature = "tls", any(feature = "aws-lc-rs", feature = "ring")))]
#[tokio::test]
async fn tls_handshake_failures_reach_the_error_hook() {
    let pki = Pki::new();
    let (seen, hook) = recording_hook();
    let server = start(
        Server::builder()
            .tls(pki.server_config(connect_tokio_hyper::tls::ClientAuth::None))
            .tls_handshake_timeout(Duration::from_millis(100))
            .on_error(hook),
        Echo::default(),
    )
    .await;
    // Plaintext HTTP to a TLS port: the handshake fails.
    let mut plaintext = TcpStream::connect(server.addr).await.unwrap();
    plaintext
        .write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
        .await
        .unwrap();
    let mut sink = Vec::new();
    let _ = plaintext.read_to_end(&mut sink).await;
    // Silence: the handshake times out.
    let mut stalled = TcpStream::connect(server.addr).await.unwrap();
    let _ = stalled.read_to_end(&mut sink).await;
    wait_until("both handshake failures are reported", || {
        let seen = seen.lock().unwrap();
        seen.iter().any(|k| k == "tls") && seen.iter().any(|k| k == "tls timeout")
    })
    .await;
    server.shutdown().await;
}

/// Ordinary traffic reports nothing: clients that cancel calls (HTTP/2 resets), close idle
/// keep-alive connections, or go away mid-call are not failures.
#[tokio::test]
async fn ordinary_cancels_and_closes_are_not_reported() {
    let (seen, hook) = recording_hook();
    let echo = Echo::default();
    let server = start(Server::builder().on_error(hook), echo.clone()).await;
    for (protocol, transport) in [
        (Protocol::Grpc, HttpClient::plaintext_h2c()),
        (Protocol::Connect, HttpClient::plaintext_http1()),
    ] {
        let client = Client::new(
            transport,
            ClientConfig::new(server.http_uri()).protocol(protocol),
        );
        // A served call, then the client (and its idle keep-alive connection) goes away.
        client
            .unary::<StringValue, StringValue>(&ECHO, string("fine"), CallOptions::new())
            .await
            .unwrap();
        // A call cancelled mid-way (a reset over HTTP/2, a closed connection over HTTP/1.1).
        let mut call = client
            .client_streaming::<StringValue, StringValue>(&COLLECT, CallOptions::new())
            .await
            .unwrap();
        call.send(string("a")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(call);
        drop(client);
    }
    // A raw client that closes mid-request.
    let mut raw = TcpStream::connect(server.addr).await.unwrap();
    raw.write_all(b"POST /x HTTP/1.1\r\nhost: a\r\ncontent-length: 10\r\n\r\n01")
        .await
        .unwrap();
    drop(raw);
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.shutdown().await;
    assert!(
        seen.lock().unwrap().is_empty(),
        "{:?}",
        seen.lock().unwrap()
    );
}
