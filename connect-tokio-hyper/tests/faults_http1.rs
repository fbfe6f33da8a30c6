//! Hostile HTTP/1.1 clients over raw sockets: broken and stalled request bodies get an error
//! in their protocol (never a `200` without one), partial heads and stalled bodies lose their
//! connection after the timeouts, and an oversized body still gets its whole error response
//! while the client keeps sending. The connection's lazy timer on keep-alive connections: the
//! idle timeout after a response, the header read timeout of a later request head (never of
//! the idle time before it), and the close of a connection whose client stopped reading past
//! its call's deadline and grace (not of one whose call ended in time).

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use connect_proto_core::ServerConfig;
use connect_proto_core::internal::envelope::encode_envelope;
use connect_tokio_hyper::{Server, ServerBuilder, TokioTimer};
use connect_tower::server::ConnectService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What a raw HTTP/1.1 exchange produced.
#[derive(Debug)]
struct Reply {
    status: u16,
    head: String,
    body: Vec<u8>,
    /// The server closed the connection within the wait.
    closed: bool,
    /// When the server closed it (or the wait ended).
    after: Duration,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Sends `request`, optionally half-closes, and reads until the server closes or `wait`
/// passes.
async fn exchange(addr: SocketAddr, request: &[u8], half_close: bool, wait: Duration) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    if half_close {
        stream.shutdown().await.unwrap();
    }
    let start = Instant::now();
    let (raw, closed) = read_to_close(&mut stream, start + wait).await;
    parse(raw, closed, start.elapsed())
}

/// Reads until the server closes the connection (EOF or reset: `true`) or `until` passes.
async fn read_to_close(stream: &mut TcpStream, until: Instant) -> (Vec<u8>, bool) {
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let remaining = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (raw, true),
            Ok(Ok(n)) => raw.extend_from_slice(&buf[..n]),
            Err(_) => return (raw, false),
        }
    }
}

/// Reads one response with a `content-length` from a kept-alive connection, or what came
/// before the server closed it or `wait` passed.
async fn read_response(stream: &mut TcpStream, wait: Duration) -> Reply {
    let start = Instant::now();
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let reply = parse(raw.clone(), false, start.elapsed());
            let length = reply.header("content-length").and_then(|v| v.parse().ok());
            if length.is_some_and(|length: usize| raw.len() >= end + 4 + length) {
                return reply;
            }
        }
        let remaining = wait.saturating_sub(start.elapsed());
        match tokio::time::timeout(remaining, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return parse(raw, true, start.elapsed()),
            Ok(Ok(n)) => raw.extend_from_slice(&buf[..n]),
            Err(_) => return parse(raw, false, start.elapsed()),
        }
    }
}

fn parse(raw: Vec<u8>, closed: bool, after: Duration) -> Reply {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(raw.len(), |i| i + 4);
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut body = raw[split..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    Reply {
        status,
        head,
        body,
        closed,
        after,
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(std::str::from_utf8(&raw[..eol]).unwrap_or("0"), 16).unwrap_or(0);
        raw = &raw[eol + 2..];
        if size == 0 || raw.len() < size {
            break;
        }
        out.extend_from_slice(&raw[..size]);
        raw = raw.get(size + 2..).unwrap_or_default();
    }
    out
}

fn post(path: &str, content_type: &str, extra: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nhost: test\r\ncontent-type: {content_type}\r\n{extra}\r\n"
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

/// The three protocols, each with a request whose body is broken off, and how to read the
/// error from the reply.
struct Case {
    name: &'static str,
    path: &'static str,
    content_type: &'static str,
}

const CASES: [Case; 3] = [
    Case {
        name: "Connect unary",
        path: "/test.v1.EchoService/Echo",
        content_type: "application/proto",
    },
    Case {
        name: "Connect streaming",
        path: "/test.v1.EchoService/Repeat",
        content_type: "application/connect+proto",
    },
    Case {
        name: "gRPC-Web",
        path: "/test.v1.EchoService/Echo",
        content_type: "application/grpc-web+proto",
    },
];

/// The error code the reply carries in its protocol's form, or `None` for a success (or no
/// RPC answer at all).
fn error_code(case: &Case, reply: &Reply) -> Option<String> {
    match case.content_type {
        "application/proto" => {
            let body = String::from_utf8_lossy(&reply.body);
            (reply.status >= 400).then(|| {
                body.split("\"code\":\"")
                    .nth(1)
                    .and_then(|rest| rest.split('"').next())
                    .unwrap_or("?")
                    .to_owned()
            })
        }
        "application/connect+proto" => {
            // The last envelope is the end-stream message.
            let body = String::from_utf8_lossy(&reply.body);
            body.split("\"code\":\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .map(str::to_owned)
        }
        _ => reply
            .header("grpc-status")
            .filter(|s| *s != "0")
            .map(str::to_owned)
            .or_else(|| {
                let body = String::from_utf8_lossy(&reply.body);
                body.split("grpc-status:")
                    .nth(1)
                    .map(|rest| rest.split_whitespace().next().unwrap_or("?").to_owned())
                    .filter(|s| s != "0")
            }),
    }
}

fn expect_error(case: &Case, reply: &Reply, want: &str, connect_unary_status: u16) {
    let what = format!("{}: {reply:?}", case.name);
    assert!(reply.header("content-type").is_some(), "{what}");
    let code = error_code(case, reply).unwrap_or_else(|| panic!("no error: {what}"));
    let grpc_number = match want {
        "invalid_argument" => "3",
        "deadline_exceeded" => "4",
        "resource_exhausted" => "8",
        other => other,
    };
    assert!(code == want || code == grpc_number, "{what}: code {code}");
    if case.content_type == "application/proto" {
        assert_eq!(reply.status, connect_unary_status, "{what}");
    } else {
        assert_eq!(reply.status, 200, "{what}");
    }
}

#[tokio::test]
async fn a_body_shorter_than_its_content_length_is_an_error() {
    let server = start(Server::builder(), Echo::default()).await;
    for case in &CASES {
        let request = post(
            case.path,
            case.content_type,
            "content-length: 1000\r\n",
            b"\0\0\0\0\x64abcde",
        );
        let reply = exchange(server.addr, &request, true, Duration::from_secs(5)).await;
        expect_error(case, &reply, "invalid_argument", 400);
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_complete_request_followed_by_a_half_close_is_answered() {
    let server = start(Server::builder(), Echo::default()).await;
    use connect_tower::codec::EncodeMessage;
    let message = string("half").encode(connect_tower::Codec::Proto).unwrap();
    let length = format!("content-length: {}\r\n", message.len());
    let request = post(ECHO.path(), "application/proto", &length, &message);
    let reply = exchange(server.addr, &request, true, Duration::from_secs(5)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(&reply.body[..], &message[..]);
    assert_eq!(
        reply.header("connection"),
        None,
        "a whole request keeps the connection"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn an_invalid_chunk_is_an_error() {
    let server = start(Server::builder(), Echo::default()).await;
    for case in &CASES {
        let request = post(
            case.path,
            case.content_type,
            "transfer-encoding: chunked\r\n",
            b"zz\r\nabc\r\n0\r\n\r\n",
        );
        let reply = exchange(server.addr, &request, false, Duration::from_secs(5)).await;
        expect_error(case, &reply, "invalid_argument", 400);
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_stalled_body_is_answered_and_closed_after_the_body_timeout() {
    let service = ConnectService::builder(Echo::default())
        .config(ServerConfig::new().body_timeout(Some(Duration::from_millis(300))))
        .timer(TokioTimer::new())
        .build();
    let builder = Server::builder()
        .lingering_close(Some((Duration::from_secs(1), Duration::from_millis(200))));
    let server = start_service(builder, service).await;
    for case in &CASES {
        // Ten bytes of a thousand, then silence (the connection stays open).
        let request = post(
            case.path,
            case.content_type,
            "content-length: 1000\r\n",
            b"\0\0\0\0\x64abcde",
        );
        let reply = exchange(server.addr, &request, false, Duration::from_secs(5)).await;
        expect_error(case, &reply, "deadline_exceeded", 504);
        assert!(reply.closed, "{}: the connection is closed", case.name);
        assert!(
            reply.after < Duration::from_secs(3),
            "{}: closed after {:?}",
            case.name,
            reply.after
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_partial_head_is_closed_after_the_header_read_timeout() {
    let builder = Server::builder().header_read_timeout(Some(Duration::from_millis(300)));
    let server = start(builder, Echo::default()).await;
    for partial in [&b"P"[..], b"POST /x HTTP/1.1\r\nhost: a\r\n"] {
        let reply = exchange(server.addr, partial, false, Duration::from_secs(5)).await;
        assert!(reply.closed, "{partial:?}");
        assert!(
            reply.after >= Duration::from_millis(250) && reply.after < Duration::from_secs(3),
            "{partial:?} closed after {:?}",
            reply.after
        );
    }
    server.shutdown().await;
}

/// A client that sends 20 MB as fast as it can (from a thread, with blocking writes) while
/// the server answers after 200 KiB: the error response must arrive whole, and the connection
/// must close promptly, every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_gets_its_whole_error_while_the_client_keeps_sending() {
    let service = ConnectService::builder(Echo::default())
        .config(ServerConfig::new().max_receive_message_size(200 * 1024))
        .timer(TokioTimer::new())
        .build();
    let server = start_service(ServerBuilder::default(), service).await;
    let addr = server.addr;
    for round in 0..10 {
        let reply = tokio::task::spawn_blocking(move || {
            let mut stream = std::net::TcpStream::connect(addr).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let body = vec![b' '; 20 * 1024 * 1024];
            let head = format!(
                "POST {} HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                ECHO.path,
                body.len() + 2
            );
            let mut writer = stream.try_clone().unwrap();
            let sending = std::thread::spawn(move || {
                let _ = writer.write_all(head.as_bytes());
                let _ = writer.write_all(b"{}");
                let _ = writer.write_all(&body);
            });
            let start = Instant::now();
            let mut raw = Vec::new();
            let mut buf = [0u8; 8192];
            let closed;
            loop {
                match stream.read(&mut buf) {
                    Ok(0) => {
                        closed = true;
                        break;
                    }
                    Ok(n) => raw.extend_from_slice(&buf[..n]),
                    Err(error) => {
                        // A reset after the whole response is harmless; before it, a bug.
                        assert!(
                            parse(raw.clone(), true, start.elapsed()).body.len()
                                >= content_length(&raw),
                            "connection failed before the response was read: {error}"
                        );
                        closed = true;
                        break;
                    }
                }
            }
            let _ = sending.join();
            parse(raw, closed, start.elapsed())
        })
        .await
        .unwrap();
        let what = format!("round {round}: {reply:?}");
        assert_eq!(reply.status, 429, "{what}");
        // The rest of the body is not read: the response says the connection closes, so the
        // client does not reuse it (and race the close).
        assert_eq!(reply.header("connection"), Some("close"), "{what}");
        let length: usize = reply.header("content-length").unwrap().parse().unwrap();
        assert_eq!(reply.body.len(), length, "{what}");
        assert!(
            String::from_utf8_lossy(&reply.body).contains("resource_exhausted"),
            "{what}"
        );
        assert!(reply.closed, "{what}");
        assert!(reply.after < Duration::from_secs(5), "{what}");
    }
    server.shutdown().await;
}

fn content_length(raw: &[u8]) -> usize {
    let reply = parse(raw.to_vec(), true, Duration::ZERO);
    reply
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(usize::MAX)
}

// The connection's lazy timer: it is armed at most a recheck (1 s here) ahead, and the events
// that bring a timeout nearer than that must wake the connection's loop. Each test below would
// see its connection closed about a recheck late (or never) if such a wake-up were missed.

/// A complete Connect unary `Echo` request for `value`.
fn echo_request(value: &str, extra: &str) -> Vec<u8> {
    use connect_tower::codec::EncodeMessage;
    let message = string(value).encode(connect_tower::Codec::Proto).unwrap();
    let extra = format!("content-length: {}\r\n{extra}", message.len());
    post(ECHO.path(), "application/proto", &extra, &message)
}

/// Sends an `Echo` request on `stream` and checks its answer (the connection kept).
async fn echo_on(stream: &mut TcpStream, value: &str) {
    use connect_tower::codec::EncodeMessage;
    stream.write_all(&echo_request(value, "")).await.unwrap();
    let reply = read_response(stream, Duration::from_secs(5)).await;
    let what = format!("{value}: {reply:?}");
    assert_eq!(reply.status, 200, "{what}");
    let message = string(value).encode(connect_tower::Codec::Proto).unwrap();
    assert_eq!(&reply.body[..], &message[..], "{what}");
    assert!(!reply.closed, "{what}");
    assert_eq!(reply.header("connection"), None, "{what}");
}

/// Reads `stream` until the server closes it (at most 3 s after `since`): it must close
/// without sending a byte, `within` after `since`.
async fn expect_silent_close(
    stream: &mut TcpStream,
    since: Instant,
    within: std::ops::Range<Duration>,
    what: &str,
) {
    let (raw, closed) = read_to_close(stream, since + Duration::from_secs(3)).await;
    let after = since.elapsed();
    assert!(closed, "{what}: the connection is closed: {raw:?}");
    assert!(raw.is_empty(), "{what}: nothing is sent: {raw:?}");
    assert!(within.contains(&after), "{what}: closed after {after:?}");
}

/// On one keep-alive connection: an idle period longer than the header read timeout does not
/// close the connection (only the idle timeout governs it), and a partial head sent right
/// after a response is cut after the header read timeout counted from its first byte, although
/// the timer was armed up to a second ahead.
#[tokio::test]
async fn a_keep_alive_connection_idles_past_the_header_read_timeout_but_not_a_partial_head() {
    const HEAD: Duration = Duration::from_millis(150);
    let builder = Server::builder()
        .header_read_timeout(Some(HEAD))
        .idle_timeout(Some(Duration::from_secs(3)));
    let server = start(builder, Echo::default()).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let connected = Instant::now();
    echo_on(&mut stream, "first").await;
    // Idle for over a second: longer than the header read timeout, shorter than the idle one.
    // (Without the wake-ups the timer fires at the connection's start + 150 ms + n s: the next
    // heads come 100 ms after one of those, so a missed wake-up delays the close by 750 ms.)
    tokio::time::sleep_until((connected + Duration::from_millis(1250)).into()).await;
    echo_on(&mut stream, "second").await;
    let partial = Instant::now();
    stream
        .write_all(b"POST /x HTTP/1.1\r\nhost: a\r\n")
        .await
        .unwrap();
    expect_silent_close(
        &mut stream,
        partial,
        HEAD * 8 / 10..Duration::from_millis(700),
        "a partial head (header read timeout 150 ms)",
    )
    .await;
    server.shutdown().await;
}

/// The idle timeout, shorter than the timer's recheck, starts when a response ends: the
/// connection is closed (gracefully, without a byte) that long after the response, not when
/// the timer armed at the connection's start (1 s ahead) fires.
#[tokio::test]
async fn a_keep_alive_connection_is_closed_after_the_idle_timeout() {
    const IDLE: Duration = Duration::from_millis(300);
    let builder = Server::builder().idle_timeout(Some(IDLE));
    let server = start(builder, Echo::default()).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    echo_on(&mut stream, "idle").await;
    let answered = Instant::now();
    expect_silent_close(
        &mut stream,
        answered,
        IDLE * 8 / 10..Duration::from_millis(800),
        "an idle connection after its response (idle timeout 300 ms)",
    )
    .await;
    server.shutdown().await;
}

/// A call with a short deadline that ends in time leaves no watchdog behind: its keep-alive
/// connection still serves a request well after the deadline (and its grace) passed.
#[tokio::test]
async fn a_call_that_ended_in_time_leaves_its_connection_open_past_its_deadline() {
    let builder = Server::builder()
        .deadline_grace(Duration::from_millis(100))
        .idle_timeout(Some(Duration::from_secs(3)));
    let server = start(builder, Echo::default()).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(&echo_request("quick", "connect-timeout-ms: 200\r\n"))
        .await
        .unwrap();
    let reply = read_response(&mut stream, Duration::from_secs(5)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(!reply.closed, "{reply:?}");
    // Past the deadline and its grace: nothing happens to the idle connection.
    let (raw, closed) =
        read_to_close(&mut stream, Instant::now() + Duration::from_millis(600)).await;
    assert!(!closed && raw.is_empty(), "closed: {closed}, {raw:?}");
    echo_on(&mut stream, "later").await;
    server.shutdown().await;
}

/// The size of the messages the flooding handler below sends.
const FLOOD_CHUNK: usize = 16 * 1024;

/// A Connect streaming client of a flooding handler that never reads its socket, with a
/// 300 ms timeout: the response is stuck (the socket buffers and the response queue full, the
/// handler blocked), so the call cannot end by its own deadline; the connection is closed once
/// the deadline and its grace passed (not before), and the server serves a new connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_loses_its_connection_after_the_deadline_and_grace() {
    use connect_tower::codec::EncodeMessage;
    const TIMEOUT: Duration = Duration::from_millis(300);
    const GRACE: Duration = Duration::from_millis(500);
    let flood = Flood::with_message_size(FLOOD_CHUNK);
    let service = ConnectService::builder(flood.clone())
        .timer(TokioTimer::new())
        .build();
    let server = start_service(Server::builder().deadline_grace(GRACE), service).await;
    let payload = string("go").encode(connect_tower::Codec::Proto).unwrap();
    let message = encode_envelope(0, &payload).unwrap();
    let extra = format!(
        "content-length: {}\r\nconnect-timeout-ms: {}\r\n",
        message.len(),
        TIMEOUT.as_millis()
    );
    let request = post(FLOOD.path(), "application/connect+proto", &extra, &message);
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let started = Instant::now();
    stream.write_all(&request).await.unwrap();

    // Not a byte read: the handler fills the socket buffers and the response queue, then
    // blocks. Watch it stall, then get dropped with the connection.
    let mut last = (0, Instant::now());
    let mut stalled_for = Duration::ZERO;
    while !flood.dropped.load(Ordering::SeqCst) {
        assert!(
            started.elapsed() < TIMEOUT + GRACE + Duration::from_millis(1500),
            "the handler was not dropped ({} messages sent)",
            flood.sent.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
        let sent = flood.sent.load(Ordering::SeqCst);
        if sent != last.0 {
            last = (sent, Instant::now());
        } else {
            stalled_for = stalled_for.max(last.1.elapsed());
        }
    }
    let dropped_after = started.elapsed();
    let sent = flood.sent.load(Ordering::SeqCst);
    assert!(
        dropped_after >= (TIMEOUT + GRACE) * 8 / 10,
        "dropped {dropped_after:?} after the request: before its deadline and grace"
    );
    // The handler was blocked (the client's socket full) for a while before the close.
    assert!(
        stalled_for >= Duration::from_millis(200),
        "the handler never stalled ({sent} messages of {FLOOD_CHUNK} bytes sent, stalled for \
         {stalled_for:?}): the socket buffers did not fill"
    );
    assert!(sent * FLOOD_CHUNK >= 1 << 20, "only {sent} messages sent");

    // What was buffered arrives, then the end of the connection (the response cut short).
    let (raw, closed) = read_to_close(&mut stream, Instant::now() + Duration::from_secs(3)).await;
    assert!(
        closed,
        "the connection is still open {:?} after the request ({} bytes read)",
        started.elapsed(),
        raw.len()
    );
    assert!(
        raw.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        &raw[..raw.len().min(200)]
    );
    assert!(
        !raw.ends_with(b"\r\n0\r\n\r\n"),
        "the response ended by itself, {} bytes",
        raw.len()
    );

    // The server goes on.
    let reply = exchange(
        server.addr,
        &echo_request("after", "connection: close\r\n"),
        false,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    server.shutdown().await;
}
