//! Hostile HTTP/1.1 clients over raw sockets: broken and stalled request bodies get an error
//! in their protocol (never a `200` without one), partial heads and stalled bodies lose their
//! connection after the timeouts, and an oversized body still gets its whole error response
//! while the client keeps sending.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use connect_proto_core::ServerConfig;
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
    let mut raw = Vec::new();
    let mut closed = false;
    let mut buf = [0u8; 8192];
    loop {
        let remaining = wait.saturating_sub(start.elapsed());
        match tokio::time::timeout(remaining, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(n)) => raw.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    parse(raw, closed, start.elapsed())
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
