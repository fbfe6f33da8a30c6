//! Hostile HTTP/2 clients over raw sockets: a partial preface, an idle connection, a client
//! that stops reading a stream with a deadline, a connection that goes away with streams open,
//! broken request bodies, request bodies ended in every way a client may end them, a server
//! at its call limit, and a window so small that a response goes out in many parts.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use connect_proto_core::internal::envelope::encode_envelope;
use connect_tokio_hyper::{HttpClient, Server, TokioTimer};
use connect_tower::client::{CallOptions, Client, ClientConfig};
use connect_tower::codec::decode_owned;
use connect_tower::server::ConnectService;
use connect_tower::{Code, Protocol};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn grpc_request(
    addr: std::net::SocketAddr,
    path: &str,
    extra: &[(&str, &str)],
) -> http::Request<()> {
    let mut builder = http::Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (name, value) in extra {
        builder = builder.header(*name, *value);
    }
    builder.body(()).unwrap()
}

fn message(value: &str) -> Bytes {
    use connect_tower::codec::EncodeMessage;
    let payload = string(value).encode(connect_tower::Codec::Proto).unwrap();
    encode_envelope(0, &payload).unwrap()
}

/// A raw HTTP/2 client: the `h2` crate, with its connection driven in a task.
async fn h2_client(
    addr: std::net::SocketAddr,
    builder: h2::client::Builder,
) -> (h2::client::SendRequest<Bytes>, tokio::task::JoinHandle<()>) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, connection) = builder.handshake::<_, Bytes>(tcp).await.unwrap();
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    (send, driver)
}

#[tokio::test]
async fn a_partial_preface_is_closed_after_the_header_read_timeout() {
    let builder = Server::builder().header_read_timeout(Some(Duration::from_millis(300)));
    let server = start(builder, Echo::default()).await;
    for partial in [
        &b"PRI * HTTP/2.0\r\n"[..],
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    ] {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream.write_all(partial).await.unwrap();
        let started = Instant::now();
        let mut sink = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut sink)).await;
        assert!(read.is_ok(), "{partial:?}: still open after 5 s");
        let after = started.elapsed();
        assert!(
            after >= Duration::from_millis(250) && after < Duration::from_secs(3),
            "{partial:?}: closed after {after:?}"
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn an_idle_connection_is_closed_with_goaway() {
    let builder = Server::builder().idle_timeout(Some(Duration::from_millis(300)));
    let server = start(builder, Echo::default()).await;
    let (mut client, driver) = h2_client(server.addr, h2::client::Builder::new()).await;
    // One call first: the idle time counts from the end of the last stream.
    let (response, mut send) = client
        .send_request(grpc_request(server.addr, ECHO.path(), &[]), false)
        .unwrap();
    send.send_data(message("hi"), true).unwrap();
    let response = response.await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    while body.data().await.is_some() {}
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), driver)
        .await
        .expect("the idle connection is closed")
        .unwrap();
    let after = started.elapsed();
    assert!(
        after >= Duration::from_millis(250) && after < Duration::from_secs(3),
        "closed after {after:?}"
    );
    server.shutdown().await;
}

/// A `Flood` call from a client that grants the server no flow-control window, its response
/// head received.
struct Windowless {
    server: Running,
    response: http::Response<h2::RecvStream>,
    send: h2::SendStream<Bytes>,
    _driver: tokio::task::JoinHandle<()>,
}

/// Serves `flood`, and opens a `Flood` call (with `extra` request headers) from a client whose
/// streams start with a window of zero.
async fn windowless_flood(flood: &Flood, extra: &[(&str, &str)]) -> Windowless {
    let service = ConnectService::builder(flood.clone())
        .timer(TokioTimer::new())
        .build();
    let server = start_service(Server::builder(), service).await;
    let mut builder = h2::client::Builder::new();
    builder.initial_window_size(0);
    let (mut client, driver) = h2_client(server.addr, builder).await;
    let request = grpc_request(server.addr, FLOOD.path(), extra);
    let (response, mut send) = client.send_request(request, false).unwrap();
    send.send_data(message("go"), true).unwrap();
    let response = tokio::time::timeout(Duration::from_secs(5), response)
        .await
        .expect("the response head arrives")
        .unwrap();
    Windowless {
        server,
        response,
        send,
        _driver: driver,
    }
}

/// A client that grants no flow-control window to a server stream with a deadline: the
/// server cannot send a byte, yet the call ends (the stream is reset or trailed) within the
/// deadline plus a small bound, its handler is dropped, and what it queued stays bounded.
#[tokio::test]
async fn a_client_that_stops_reading_still_gets_its_deadline() {
    let flood = Flood::with_message_size(1024);
    let started = Instant::now();
    let windowless = windowless_flood(&flood, &[("grpc-timeout", "500m")]).await;
    let mut body = windowless.response.into_body();
    // No window: no data can arrive; the stream must end by a reset or trailers.
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match body.data().await {
                Some(Ok(_)) => {}
                Some(Err(error)) => return format!("reset: {error}"),
                None => {
                    let trailers = body.trailers().await;
                    return format!("trailers: {trailers:?}");
                }
            }
        }
    })
    .await
    .expect("the stream ends");
    let after = started.elapsed();
    assert!(
        after < Duration::from_millis(500) + Duration::from_millis(1500),
        "ended ({ended}) after {after:?}"
    );
    // The handler was dropped, and it could queue no more than the response budget (256 KiB
    // of 1 KiB messages, plus the chunk in hand).
    let start = Instant::now();
    while !flood.dropped.load(Ordering::SeqCst) {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "handler not dropped"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let sent = flood.sent.load(Ordering::SeqCst);
    assert!(
        sent <= 300,
        "{sent} messages queued for a reader that never reads"
    );
    windowless.server.shutdown().await;
}

/// A client that grants no window to a server stream without a deadline, then resets it: the
/// server's pipe waits for window when the reset comes, and the reset alone ends the call —
/// the handler is dropped. (The pipe swaps a no-op waker onto the stream's send side before it
/// asks h2 for window; a wait that left it there would never see the reset.)
#[tokio::test]
async fn a_reset_reaches_a_stream_waiting_for_window() {
    let flood = Flood::with_message_size(1024);
    let Windowless {
        server,
        response,
        mut send,
        ..
    } = windowless_flood(&flood, &[]).await;
    // The handler fills what the call may queue, then waits: the pipe is waiting for window.
    wait_for(Duration::from_secs(5), "the handler is running", || {
        flood.live.load(Ordering::SeqCst) == 1
    })
    .await;
    let mut last = flood.sent.load(Ordering::SeqCst);
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let sent = flood.sent.load(Ordering::SeqCst);
        if sent == last {
            break;
        }
        last = sent;
    }
    assert!(
        !flood.dropped.load(Ordering::SeqCst),
        "nothing ended the call yet"
    );
    drop(response);
    send.send_reset(h2::Reason::CANCEL);
    wait_for(
        Duration::from_secs(3),
        "the reset call's handler is dropped",
        || flood.dropped.load(Ordering::SeqCst),
    )
    .await;
    assert_eq!(flood.live.load(Ordering::SeqCst), 0);
    server.shutdown().await;
}

/// Waits up to `limit` for `done`, polling every few milliseconds.
async fn wait_for(limit: Duration, what: &str, done: impl Fn() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A Flood stream opened on a raw HTTP/2 connection and read to its first message.
async fn open_flood(
    client: &mut h2::client::SendRequest<Bytes>,
    addr: std::net::SocketAddr,
) -> h2::RecvStream {
    let (response, mut send) = client
        .send_request(grpc_request(addr, FLOOD.path(), &[]), false)
        .unwrap();
    send.send_data(message("go"), true).unwrap();
    let response = response.await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let first = body.data().await.expect("a first message").unwrap();
    assert!(!first.is_empty());
    body
}

/// Clients whose TCP connections go away with streams open (no RST_STREAM, no GOAWAY, no end
/// of the HTTP/1.1 body) while their handlers are blocked on a full flow-control window: every
/// call on them is cancelled (its handler dropped), the server keeps serving new connections,
/// and a graceful shutdown is not held up by the dead connections' streams although its
/// drain timeout is long.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_dropped_mid_stream_cancel_their_calls_and_the_server_goes_on() {
    let flood = Flood::with_message_size(1024);
    let service = ConnectService::builder(flood.clone())
        .timer(TokioTimer::new())
        .build();
    let builder = Server::builder().drain_timeout(Duration::from_secs(30));
    let server = start_service(builder, service).await;

    // HTTP/2: three streams on one connection, each read to its first message. Nothing read
    // is released: each stream's window fills (the connection's has room for all three).
    let mut h2_builder = h2::client::Builder::new();
    h2_builder.initial_connection_window_size(1 << 20);
    let (mut client, driver) = h2_client(server.addr, h2_builder).await;
    let mut bodies = Vec::new();
    for _ in 0..3 {
        bodies.push(open_flood(&mut client, server.addr).await);
    }
    // HTTP/1.1: a Connect server stream, read to its first bytes.
    let mut http1 = TcpStream::connect(server.addr).await.unwrap();
    let envelope = message("go");
    let head = format!(
        "POST {} HTTP/1.1\r\nhost: test\r\ncontent-type: application/connect+proto\r\n\
         content-length: {}\r\n\r\n",
        FLOOD.path(),
        envelope.len()
    );
    http1.write_all(head.as_bytes()).await.unwrap();
    http1.write_all(&envelope).await.unwrap();
    let mut first = [0u8; 64];
    let read = http1.read(&mut first).await.unwrap();
    assert!(
        first[..read].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&first[..read])
    );
    wait_for(Duration::from_secs(5), "four handlers running", || {
        flood.live.load(Ordering::SeqCst) == 4
    })
    .await;
    // Let the handlers fill the windows and block on their sends.
    tokio::time::sleep(Duration::from_millis(100)).await;

    // The sockets close under the calls.
    driver.abort();
    let _ = driver.await;
    drop((client, bodies, http1));
    wait_for(Duration::from_secs(3), "every handler dropped", || {
        flood.live.load(Ordering::SeqCst) == 0
    })
    .await;

    // The server goes on: a new connection's stream is served, then reset by its client.
    let (mut client, driver) = h2_client(server.addr, h2::client::Builder::new()).await;
    let body = open_flood(&mut client, server.addr).await;
    assert_eq!(flood.live.load(Ordering::SeqCst), 1);
    drop(body);
    wait_for(
        Duration::from_secs(3),
        "the reset stream's handler dropped",
        || flood.live.load(Ordering::SeqCst) == 0,
    )
    .await;
    drop(client);
    let _ = tokio::time::timeout(Duration::from_secs(3), driver).await;

    let started = Instant::now();
    let shutdown = server.shutdown().await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
    assert!(shutdown.drained(), "nothing was left to force");
}

#[tokio::test]
async fn broken_request_bodies_over_http2_are_errors() {
    let server = start(Server::builder(), Echo::default()).await;
    let (mut client, _driver) = h2_client(server.addr, h2::client::Builder::new()).await;

    // A content-length the body does not reach: h2 itself resets the stream.
    let request = grpc_request(server.addr, ECHO.path(), &[("content-length", "1000")]);
    let (response, mut send) = client.send_request(request, false).unwrap();
    send.send_data(Bytes::from_static(b"\0\0\0\0\x64abcde"), true)
        .unwrap();
    match response.await {
        Err(error) => assert!(error.is_reset(), "{error}"),
        Ok(response) => {
            let status = response.headers().get("grpc-status").cloned();
            let mut body = response.into_body();
            let trailers = loop {
                match body.data().await {
                    Some(Ok(_)) => {}
                    Some(Err(_)) => break None,
                    None => break body.trailers().await.ok().flatten(),
                }
            };
            let code = status.or_else(|| trailers.and_then(|t| t.get("grpc-status").cloned()));
            assert!(code.as_ref().is_some_and(|c| c != "0"), "{code:?}");
        }
    }

    // The body ends inside an envelope, for every protocol: invalid_argument.
    for (content_type, path) in [
        ("application/grpc", ECHO.path),
        ("application/grpc-web+proto", ECHO.path),
        ("application/connect+proto", REPEAT.path),
    ] {
        let request = http::Request::post(format!("http://{}{path}", server.addr))
            .header("content-type", content_type)
            .header("te", "trailers")
            .body(())
            .unwrap();
        let (response, mut send) = client.send_request(request, false).unwrap();
        send.send_data(Bytes::from_static(b"\0\0\0\0\x64abcde"), true)
            .unwrap();
        let response = response.await.unwrap();
        assert_eq!(response.status(), 200, "{content_type}");
        let head_status = response.headers().get("grpc-status").cloned();
        let mut body = response.into_body();
        let mut data = Vec::new();
        while let Some(chunk) = body.data().await {
            data.extend_from_slice(&chunk.unwrap());
        }
        let trailers = body.trailers().await.unwrap();
        let text = String::from_utf8_lossy(&data);
        let invalid = head_status.is_some_and(|s| s == "3")
            || trailers.is_some_and(|t| t.get("grpc-status").is_some_and(|s| s == "3"))
            || text.contains("grpc-status:3")
            || text.contains("invalid_argument");
        assert!(invalid, "{content_type}: {text}");
    }
    server.shutdown().await;
}

/// Sends a gRPC request as the given DATA frames (each with its END_STREAM flag) and optional
/// request trailers; returns the response's `grpc-status` and its decoded messages.
async fn grpc_exchange(
    client: &mut h2::client::SendRequest<Bytes>,
    addr: std::net::SocketAddr,
    path: &str,
    frames: &[(Bytes, bool)],
    trailers: Option<http::HeaderMap>,
) -> (Option<String>, Vec<String>) {
    let (response, mut send) = client
        .send_request(
            grpc_request(addr, path, &[]),
            frames.is_empty() && trailers.is_none(),
        )
        .unwrap();
    for (data, end) in frames {
        send.send_data(data.clone(), *end).unwrap();
    }
    if let Some(trailers) = trailers {
        send.send_trailers(trailers).unwrap();
    }
    let response = response.await.unwrap();
    let head_status = response.headers().get("grpc-status").cloned();
    let mut body = response.into_body();
    let mut data = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await.unwrap();
    let status = head_status
        .or_else(|| trailers.and_then(|t| t.get("grpc-status").cloned()))
        .map(|v| v.to_str().unwrap().to_owned());
    let mut messages = Vec::new();
    let mut rest = &data[..];
    while rest.len() >= 5 {
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        let payload = Bytes::copy_from_slice(&rest[5..5 + len]);
        let value: StringValue = decode_owned(connect_tower::Codec::Proto, payload, usize::MAX)
            .expect("a response message");
        messages.push(value.value);
        rest = &rest[5 + len..];
    }
    (status, messages)
}

/// However a client ends a request body — END_STREAM on its only DATA frame, on a later one,
/// on an empty frame, or with request trailers — the call is answered in full; a request cut
/// off half-way by a reset does not disturb the connection; every call after it still works.
#[tokio::test]
async fn request_bodies_ended_every_way_are_answered_and_the_connection_goes_on() {
    let server = start(Server::builder(), Echo::default()).await;
    let (mut client, _driver) = h2_client(server.addr, h2::client::Builder::new()).await;
    let one = message("one");
    let (head, tail) = (one.slice(..3), one.slice(3..));
    let mut request_trailers = http::HeaderMap::new();
    request_trailers.insert("x-request-trailer", "1".parse().unwrap());
    let ok = |messages: &[&str]| {
        (
            Some("0".to_owned()),
            messages.iter().map(|m| m.to_string()).collect::<Vec<_>>(),
        )
    };

    for _round in 0..2 {
        // Unary, the end on the only DATA frame.
        let answer = grpc_exchange(
            &mut client,
            server.addr,
            ECHO.path(),
            &[(one.clone(), true)],
            None,
        )
        .await;
        assert_eq!(answer, ok(&["one"]));
        // Unary, the message split over two frames, the end on the second.
        let frames = [(head.clone(), false), (tail.clone(), true)];
        let answer = grpc_exchange(&mut client, server.addr, ECHO.path(), &frames, None).await;
        assert_eq!(answer, ok(&["one"]));
        // Unary, the end on an empty frame after the message.
        let frames = [(one.clone(), false), (Bytes::new(), true)];
        let answer = grpc_exchange(&mut client, server.addr, ECHO.path(), &frames, None).await;
        assert_eq!(answer, ok(&["one"]));
        // Unary, the end with request trailers after the message.
        let frames = [(one.clone(), false)];
        let answer = grpc_exchange(
            &mut client,
            server.addr,
            ECHO.path(),
            &frames,
            Some(request_trailers.clone()),
        )
        .await;
        assert_eq!(answer, ok(&["one"]));
        // A client stream of three frames, the end on the last.
        let frames = [
            (message("a"), false),
            (message("b"), false),
            (message("c"), true),
        ];
        let answer = grpc_exchange(&mut client, server.addr, COLLECT.path(), &frames, None).await;
        assert_eq!(answer, ok(&["a,b,c"]));
        // A client stream whose first frame holds every message and ends the stream.
        let all = [message("a"), message("b")].concat();
        let frames = [(Bytes::from(all), true)];
        let answer = grpc_exchange(&mut client, server.addr, COLLECT.path(), &frames, None).await;
        assert_eq!(answer, ok(&["a,b"]));
        // Cut off half-way: half an envelope, then the client resets the stream.
        let (response, mut send) = client
            .send_request(grpc_request(server.addr, ECHO.path(), &[]), false)
            .unwrap();
        send.send_data(head.clone(), false).unwrap();
        send.send_reset(h2::Reason::CANCEL);
        drop(response);
    }
    server.shutdown().await;
}

#[tokio::test]
async fn calls_past_the_server_limit_are_refused_at_once() {
    let echo = Echo::default();
    let server = start(Server::builder().max_concurrent_calls(2), echo.clone()).await;
    for (protocol, transport) in [
        (Protocol::Grpc, HttpClient::plaintext_h2c()),
        (Protocol::Connect, HttpClient::plaintext_http1()),
    ] {
        let client = Client::new(
            transport,
            ClientConfig::new(server.http_uri()).protocol(protocol),
        );
        let slow = || {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .unary::<StringValue, StringValue>(&SLEEP, string("500"), CallOptions::new())
                    .await
            })
        };
        let (a, b) = (slow(), slow());
        let start = Instant::now();
        while echo.started.load(Ordering::SeqCst) < 2 {
            assert!(start.elapsed() < Duration::from_secs(5));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let refused = Instant::now();
        let status = client
            .unary::<StringValue, StringValue>(&ECHO, string("third"), CallOptions::new())
            .await
            .expect_err("past the limit");
        assert_eq!(status.code(), Code::Unavailable, "{protocol:?}: {status}");
        assert!(
            refused.elapsed() < Duration::from_millis(400),
            "refused at once"
        );
        assert!(a.await.unwrap().is_ok() && b.await.unwrap().is_ok());
        echo.started.store(0, Ordering::SeqCst);
        // Below the limit again, calls are served.
        client
            .unary::<StringValue, StringValue>(&ECHO, string("again"), CallOptions::new())
            .await
            .unwrap();
    }
    server.shutdown().await;
}

/// A service written for HTTP/1.1 may set connection-specific headers, which HTTP/2 forbids
/// (h2 would refuse the head): over HTTP/2 they are removed, with the headers `connection`
/// names, and the rest of the response is sent as it is.
#[tokio::test]
async fn connection_specific_response_headers_are_removed_over_http2() {
    let service = tower::service_fn(
        |_: http::Request<connect_tokio_hyper::IncomingBody>| async {
            let response = http::Response::builder()
                .header("connection", "x-hop, keep-alive")
                .header("x-hop", "1")
                .header("keep-alive", "timeout=5")
                .header("transfer-encoding", "chunked")
                .header("upgrade", "h2c")
                .header("te", "trailers")
                .header("x-kept", "yes")
                .body(http_body_util::Full::new(Bytes::from_static(b"body")))
                .unwrap();
            Ok::<_, std::convert::Infallible>(response)
        },
    );
    let server = start_service(Server::builder(), service).await;
    let (mut client, _driver) = h2_client(server.addr, h2::client::Builder::new()).await;
    let request = http::Request::get(format!("http://{}/", server.addr))
        .body(())
        .unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    let response = tokio::time::timeout(Duration::from_secs(5), response)
        .await
        .expect("the response arrives")
        .expect("the response is not refused");
    let headers = response.headers();
    for name in [
        "connection",
        "x-hop",
        "keep-alive",
        "transfer-encoding",
        "upgrade",
        "te",
    ] {
        assert!(!headers.contains_key(name), "{name} was sent: {headers:?}");
    }
    assert_eq!(headers["x-kept"], "yes");
    let mut body = response.into_body();
    let data = body.data().await.expect("a body").expect("body data");
    assert_eq!(&data[..], b"body");
    server.shutdown().await;
}

/// A client with a small stream window (1 KiB) asks for a unary response of 40 KiB: the
/// server's pipe waits for window about forty times (each grant comes only once the client
/// releases what it read), and the parts make the whole response, in order, followed by its
/// trailers — no byte lost, none repeated, no stall — and a second such response on the same
/// connection (past the connection's own 64 KiB window) arrives whole too. (That no part
/// exceeds the window is h2's to enforce on both ends, not something this test can see.)
#[tokio::test]
async fn a_response_larger_than_the_window_arrives_whole_in_window_sized_parts() {
    let server = start(Server::builder(), Echo::default()).await;
    let mut builder = h2::client::Builder::new();
    builder.initial_window_size(1024);
    let (mut client, _driver) = h2_client(server.addr, builder).await;
    let text = "window ".repeat(40 * 1024 / 7);
    let (response, mut send) = client
        .send_request(grpc_request(server.addr, ECHO.path(), &[]), false)
        .unwrap();
    send.send_data(message(&text), true).unwrap();
    let response = tokio::time::timeout(Duration::from_secs(5), response)
        .await
        .expect("the response head arrives")
        .unwrap();
    let mut body = response.into_body();
    let mut received = Vec::new();
    let mut parts = 0;
    tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(data) = body.data().await {
            let data = data.unwrap();
            body.flow_control().release_capacity(data.len()).unwrap();
            received.extend_from_slice(&data);
            parts += 1;
        }
    })
    .await
    .expect("the body ends");
    assert_eq!(received, message(&text), "the response, reassembled");
    assert!(parts >= 40, "the window split the response: {parts} parts");
    let trailers = body.trailers().await.unwrap().expect("trailers");
    assert_eq!(trailers["grpc-status"], "0");

    // A second 40 KiB response on the same connection: the two together exceed the
    // connection's 64 KiB window, so this one arrives only if the window the first used
    // was given back and the server's pipe took it up again.
    let (status, messages) = tokio::time::timeout(
        Duration::from_secs(5),
        grpc_exchange(
            &mut client,
            server.addr,
            ECHO.path(),
            &[(message(&text), true)],
            None,
        ),
    )
    .await
    .expect("the second call ends");
    assert_eq!(status.as_deref(), Some("0"));
    assert_eq!(messages, [text]);
    server.shutdown().await;
}
