//! Helpers shared by the integration tests: a server on a loopback port, raw HTTP/1.1
//! requests and responses.

#![allow(dead_code, reason = "each test binary uses a different part")]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use blocking_server_example::{Server, ServerOptions, ShutdownHandle, Stats};

pub const SAY_HELLO: &str = "/connectrpc.greet.v1.Greeter/SayHello";
pub const SAY_HELLO_REPEATEDLY: &str = "/connectrpc.greet.v1.Greeter/SayHelloRepeatedly";

/// A server running on its own thread; stopped (and joined) on drop.
pub struct Running {
    pub addr: SocketAddr,
    pub handle: ShutdownHandle,
    thread: Option<JoinHandle<std::io::Result<Stats>>>,
}

impl Running {
    pub fn start(options: ServerOptions) -> Running {
        let server = Server::bind("127.0.0.1:0", options).expect("bind");
        let addr = server.local_addr().expect("local_addr");
        let handle = server.shutdown_handle();
        let thread = Some(thread::spawn(move || server.serve()));
        Running {
            addr,
            handle,
            thread,
        }
    }

    pub fn new() -> Running {
        Running::start(ServerOptions::new())
    }

    /// Stops the server and waits for `serve` to return.
    pub fn stop(mut self) -> Stats {
        self.handle.shutdown();
        let thread = self.thread.take().expect("running");
        thread.join().expect("server thread").expect("serve")
    }

    /// Waits until `check` holds for the server's counters.
    pub fn wait_for(&self, what: &str, check: impl Fn(Stats) -> bool) {
        let start = Instant::now();
        while !check(self.handle.stats()) {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "waiting for {what}"
            );
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A response as read off the wire: status, head fields (lowercase names), body (dechunked).
#[derive(Debug)]
pub struct Raw {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Raw {
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
}

/// Sends `request` on a new connection and reads until the server closes it.
pub fn exchange(addr: SocketAddr, request: &[u8]) -> Raw {
    let mut stream = connect(addr);
    stream.write_all(request).expect("write");
    let mut wire = Vec::new();
    stream.read_to_end(&mut wire).expect("read");
    parse_response(&wire).0
}

/// Reads exactly one response (framed by `content-length` or chunked) from `stream`.
pub fn read_one(stream: &mut TcpStream) -> Raw {
    let mut wire = Vec::new();
    let mut buf = [0; 4096];
    loop {
        if let Some(end) = complete_response(&wire) {
            return parse_response(&wire[..end]).0;
        }
        let n = stream.read(&mut buf).expect("read");
        assert!(n > 0, "connection closed mid-response: {wire:?}");
        wire.extend_from_slice(&buf[..n]);
    }
}

/// The length of the first complete response in `wire`, if it is all there.
pub fn complete_response(wire: &[u8]) -> Option<usize> {
    let (raw, head_len) = parse_response(wire);
    if let Some(len) = field(&raw.head, "content-length") {
        let end = head_len + len.parse::<usize>().ok()?;
        return (wire.len() >= end).then_some(end);
    }
    let tail = b"\r\n0\r\n\r\n";
    let body = wire.get(head_len..)?;
    if body.starts_with(b"0\r\n\r\n") {
        return Some(head_len + 5);
    }
    body.windows(tail.len())
        .position(|w| w == tail)
        .map(|at| head_len + at + tail.len())
}

/// Splits a response into status, head and (dechunked) body; also returns the head's length.
pub fn parse_response(wire: &[u8]) -> (Raw, usize) {
    let head_end = wire
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(wire.len(), |at| at + 4);
    let head = String::from_utf8_lossy(&wire[..head_end]).to_ascii_lowercase();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = wire.get(head_end..).unwrap_or_default();
    let body = if field(&head, "transfer-encoding") == Some("chunked".into()) {
        dechunk(body)
    } else {
        body.to_vec()
    };
    (Raw { status, head, body }, head_end)
}

pub fn field(head: &str, name: &str) -> Option<String> {
    head.lines()
        .find_map(|line| line.strip_prefix(&format!("{name}: ")))
        .map(|v| v.trim().to_string())
}

pub fn dechunk(mut wire: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(line_end) = wire.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&wire[..line_end]).unwrap();
        let size = usize::from_str_radix(size, 16).unwrap();
        if size == 0 || wire.len() < line_end + 2 + size {
            break;
        }
        body.extend_from_slice(&wire[line_end + 2..line_end + 2 + size]);
        wire = &wire[line_end + 2 + size + 2..];
    }
    body
}

pub fn post(path: &str, fields: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nhost: test\r\n{fields}content-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

/// A Connect streaming request body: one enveloped JSON message.
pub fn enveloped(json: &str) -> Vec<u8> {
    let mut body = vec![0];
    body.extend_from_slice(&(json.len() as u32).to_be_bytes());
    body.extend_from_slice(json.as_bytes());
    body
}
