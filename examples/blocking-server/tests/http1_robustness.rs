//! HTTP/1.1 robustness over raw sockets: chunked and broken bodies, timeouts, the connection
//! limit, clients that leave, and a graceful stop.

mod common;

use std::io::{Read, Write};
use std::thread;
use std::time::{Duration, Instant};

use blocking_server_example::{GreeterOptions, ServerOptions};
use connect_proto_core::ServerConfig;

use common::{
    Running, SAY_HELLO, SAY_HELLO_REPEATEDLY, connect, enveloped, exchange, parse_response, post,
};

#[test]
fn chunked_request_bodies() {
    let server = Running::new();
    let head = format!(
        "POST {SAY_HELLO} HTTP/1.1\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    );
    let raw = exchange(
        server.addr,
        format!("{head}4\r\n{{\"na\r\n9;ext=1\r\nme\":\"Ada\"\r\n1\r\n}}\r\n0\r\n\r\n").as_bytes(),
    );
    assert_eq!(raw.status, 200, "{raw:?}");
    assert_eq!(raw.body_text(), r#"{"message":"Hello, Ada!"}"#);

    // A broken chunk is a broken body: the core's invalid_argument (400 in Connect).
    let raw = exchange(server.addr, format!("{head}zz\r\n").as_bytes());
    assert_eq!(raw.status, 400, "{raw:?}");
    assert!(raw.body_text().contains("invalid_argument"), "{raw:?}");
}

#[test]
fn expect_continue_is_answered_before_the_body() {
    let server = Running::new();
    let mut stream = connect(server.addr);
    let body = br#"{"name":"Ada"}"#;
    let head = format!(
        "POST {SAY_HELLO} HTTP/1.1\r\ncontent-type: application/json\r\n\
         expect: 100-continue\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut interim = [0; 25];
    stream.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(body).unwrap();
    let mut wire = Vec::new();
    stream.read_to_end(&mut wire).unwrap();
    let raw = parse_response(&wire).0;
    assert_eq!(raw.status, 200, "{raw:?}");
    assert_eq!(raw.body_text(), r#"{"message":"Hello, Ada!"}"#);
}

#[test]
fn a_body_cut_short_is_a_broken_body() {
    let server = Running::new();
    let mut stream = connect(server.addr);
    stream
        .write_all(
            format!(
                "POST {SAY_HELLO} HTTP/1.1\r\ncontent-type: application/json\r\n\
                 content-length: 100\r\n\r\n{{\"name\""
            )
            .as_bytes(),
        )
        .unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut wire = Vec::new();
    stream.read_to_end(&mut wire).unwrap();
    let raw = parse_response(&wire).0;
    assert_eq!(raw.status, 400, "{raw:?}");
    assert!(raw.body_text().contains("invalid_argument"), "{raw:?}");
}

#[test]
fn timeouts_close_idle_and_slow_connections() {
    let options = ServerOptions::new()
        .idle_timeout(Duration::from_millis(100))
        .head_timeout(Duration::from_millis(100))
        .protocol(ServerConfig::new().body_timeout(Some(Duration::from_millis(100))));
    let server = Running::start(options);

    let mut idle = connect(server.addr);
    assert_eq!(
        idle.read(&mut [0; 16]).unwrap(),
        0,
        "idle connection closed"
    );

    // A head that never ends.
    let raw = exchange(server.addr, b"POST / HTTP/1.1\r\nx-slow: 1\r\n");
    assert_eq!(raw.status, 408, "{raw:?}");

    // A body that stops half-way: the core's body timer (deadline_exceeded: 504 in Connect).
    let raw = exchange(
        server.addr,
        format!(
            "POST {SAY_HELLO} HTTP/1.1\r\ncontent-type: application/json\r\n\
             content-length: 100\r\n\r\n{{\"name\""
        )
        .as_bytes(),
    );
    assert_eq!(raw.status, 504, "{raw:?}");
    assert!(raw.body_text().contains("deadline_exceeded"), "{raw:?}");
}

#[test]
fn connections_beyond_the_limit_are_refused() {
    let server = Running::start(ServerOptions::new().max_connections(1));
    let _first = connect(server.addr);
    server.wait_for("one open connection", |s| s.open_connections == 1);
    let raw = exchange(server.addr, b"");
    assert_eq!(raw.status, 503, "{raw:?}");
    assert_eq!(server.handle.stats().connections_refused, 1);
}

#[test]
fn a_client_that_leaves_mid_stream_frees_its_thread() {
    let greeter = GreeterOptions::new().stream_interval(Duration::from_millis(100));
    let server = Running::start(ServerOptions::new().greeter(greeter));
    let mut stream = connect(server.addr);
    stream
        .write_all(&post(
            SAY_HELLO_REPEATEDLY,
            "content-type: application/connect+json\r\n",
            &enveloped(r#"{"name":"Bob","times":10}"#),
        ))
        .unwrap();
    let mut first = [0; 64];
    assert!(stream.read(&mut first).unwrap() > 0);
    drop(stream);
    server.wait_for("the connection to close", |s| s.open_connections == 0);
}

#[test]
fn stopping_lets_requests_in_flight_finish() {
    let greeter = GreeterOptions::new().stream_interval(Duration::from_millis(50));
    let server = Running::start(ServerOptions::new().greeter(greeter));
    let idle = connect(server.addr);
    let addr = server.addr;
    let in_flight = thread::spawn(move || {
        let mut stream = connect(addr);
        stream
            .write_all(&post(
                SAY_HELLO_REPEATEDLY,
                "content-type: application/connect+json\r\n",
                &enveloped(r#"{"name":"Bob","times":5}"#),
            ))
            .unwrap();
        let mut wire = Vec::new();
        stream.read_to_end(&mut wire).unwrap();
        parse_response(&wire).0
    });
    server.wait_for("two connections", |s| s.open_connections == 2);
    thread::sleep(Duration::from_millis(60));
    let started = Instant::now();
    let stats = server.stop();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(stats.open_connections, 0);
    let raw = in_flight.join().unwrap();
    let body = raw.body_text();
    assert_eq!(body.matches("Hello, Bob!").count(), 5, "{body}");
    assert!(!body.contains("\"error\""), "{body}");
    let mut idle = idle;
    assert_eq!(
        idle.read(&mut [0; 16]).unwrap(),
        0,
        "idle connection closed"
    );
}
