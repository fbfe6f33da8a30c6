//! HTTP/1.1 requests: the connection's read buffer ([`Conn`]) and request heads, parsed with
//! httparse into `http::request::Parts` plus what HTTP/1.1 framing needs (body length,
//! `connection`, `expect: 100-continue`).

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use http::header::{CONNECTION, CONTENT_LENGTH, EXPECT, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version, request};

/// The most bytes one `read` takes from the socket.
const READ_CHUNK: usize = 16 * 1024;
/// The most header fields in a request head.
const MAX_HEADERS: usize = 64;
/// How often a connection waiting for its next request looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);
/// A lingering close reads (and drops) at most this long and this much.
const LINGER_TIME: Duration = Duration::from_millis(500);
const LINGER_BYTES: usize = 256 * 1024;

/// A connection: the socket and the bytes read from it but not yet consumed.
#[derive(Debug)]
pub(crate) struct Conn {
    stream: TcpStream,
    /// Read but unconsumed bytes: the rest of a head, body bytes, a pipelined request.
    pub(crate) buf: BytesMut,
}

/// What one read gave.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Fill {
    /// This many bytes were appended to the buffer.
    Data(usize),
    /// The peer closed its side.
    Eof,
    /// Nothing arrived in time.
    TimedOut,
}

impl Conn {
    /// Wraps an accepted socket.
    pub(crate) fn new(stream: TcpStream) -> Self {
        Conn {
            stream,
            buf: BytesMut::with_capacity(READ_CHUNK),
        }
    }

    /// Reads once, waiting at most `timeout` (which must not be zero).
    pub(crate) fn fill(&mut self, timeout: Duration) -> io::Result<Fill> {
        self.stream
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
        let start = self.buf.len();
        self.buf.resize(start + READ_CHUNK, 0);
        let result = loop {
            match self.stream.read(&mut self.buf[start..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        match result {
            Ok(0) => {
                self.buf.truncate(start);
                Ok(Fill::Eof)
            }
            Ok(n) => {
                self.buf.truncate(start + n);
                Ok(Fill::Data(n))
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                self.buf.truncate(start);
                Ok(Fill::TimedOut)
            }
            Err(e) => {
                self.buf.truncate(start);
                Err(e)
            }
        }
    }

    /// Writes all of `bytes`, bounded by the socket's write timeout.
    pub(crate) fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Closes the connection without losing the response just written: stops writing, then
    /// reads and drops what the peer still sends (briefly), so that closing a socket with
    /// unread request bytes does not reset the connection before the peer reads the response.
    pub(crate) fn linger_close(mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
        self.buf.clear();
        let until = Instant::now() + LINGER_TIME;
        let mut dropped = 0;
        while dropped < LINGER_BYTES {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match self.fill(left) {
                Ok(Fill::Data(n)) => {
                    dropped += n;
                    self.buf.clear();
                }
                _ => break,
            }
        }
    }
}

/// How long a connection waits for a request head.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HeadLimits {
    /// The largest head, in bytes.
    pub(crate) max_bytes: usize,
    /// Before the first byte of a request (between requests of a keep-alive connection).
    pub(crate) idle_timeout: Duration,
    /// From the first byte of a head to its end.
    pub(crate) read_timeout: Duration,
}

/// How a request body is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// `content-length` bytes (0 without framing headers).
    Length(u64),
    /// `transfer-encoding: chunked`.
    Chunked,
}

/// A parsed request head.
#[derive(Debug)]
pub(crate) struct RequestHead {
    /// Method, URI, version and headers, for the core.
    pub(crate) parts: request::Parts,
    /// The body's framing.
    pub(crate) framing: Framing,
    /// Whether the client allows the connection to stay open after the response.
    pub(crate) keep_alive: bool,
    /// Whether the client waits for `100 Continue` before sending the body.
    pub(crate) expect_continue: bool,
}

/// The outcome of waiting for a request head.
#[derive(Debug)]
pub(crate) enum Head {
    /// A request.
    Request(Box<RequestHead>),
    /// The connection ended cleanly: the peer closed it, it stayed idle too long, or the server
    /// is stopping, all before a request began.
    Closed,
    /// The head is unacceptable: answer with this status and close.
    Invalid(StatusCode),
}

/// Waits for, reads and parses the next request head.
pub(crate) fn read_head(
    conn: &mut Conn,
    limits: &HeadLimits,
    stopping: &AtomicBool,
) -> io::Result<Head> {
    let idle_until = after(Instant::now(), limits.idle_timeout);
    let mut head_until = None;
    loop {
        if !conn.buf.is_empty() {
            match parse_head(&conn.buf, limits.max_bytes) {
                Parsed::Complete(head, len) => {
                    let _ = conn.buf.split_to(len);
                    return Ok(Head::Request(head));
                }
                Parsed::Invalid(status) => return Ok(Head::Invalid(status)),
                Parsed::Partial => {}
            }
        }
        let now = Instant::now();
        let timeout = if conn.buf.is_empty() {
            // Idle: between requests, where a stopping server may close the connection.
            if stopping.load(Ordering::Acquire) || now >= idle_until {
                return Ok(Head::Closed);
            }
            (idle_until - now).min(STOP_POLL)
        } else {
            let until = *head_until.get_or_insert_with(|| after(now, limits.read_timeout));
            if now >= until {
                return Ok(Head::Invalid(StatusCode::REQUEST_TIMEOUT));
            }
            until - now
        };
        match conn.fill(timeout)? {
            Fill::Data(_) | Fill::TimedOut => {}
            // Closed between requests, or half-way through a head: nobody is left to answer.
            Fill::Eof => return Ok(Head::Closed),
        }
    }
}

/// `now + timeout`, or a day later for a timeout too large for the clock.
pub(crate) fn after(now: Instant, timeout: Duration) -> Instant {
    now.checked_add(timeout)
        .unwrap_or(now + Duration::from_secs(86_400))
}

enum Parsed {
    Complete(Box<RequestHead>, usize),
    Partial,
    Invalid(StatusCode),
}

/// Parses a head from the start of `buf` (which may hold more).
fn parse_head(buf: &[u8], max_bytes: usize) -> Parsed {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut fields);
    let len = match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len > max_bytes => {
            return Parsed::Invalid(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        }
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > max_bytes => {
            return Parsed::Invalid(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        }
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => {
            return Parsed::Invalid(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        }
        Err(httparse::Error::Version) => {
            return Parsed::Invalid(StatusCode::HTTP_VERSION_NOT_SUPPORTED);
        }
        Err(_) => return Parsed::Invalid(StatusCode::BAD_REQUEST),
    };
    match build_head(&request) {
        Ok(head) => Parsed::Complete(Box::new(head), len),
        Err(status) => Parsed::Invalid(status),
    }
}

/// The head as the core and the framing code need it.
fn build_head(request: &httparse::Request<'_, '_>) -> Result<RequestHead, StatusCode> {
    let bad = StatusCode::BAD_REQUEST;
    let method = Method::from_bytes(request.method.unwrap_or("").as_bytes()).map_err(|_| bad)?;
    let version = match request.version {
        Some(0) => Version::HTTP_10,
        Some(1) => Version::HTTP_11,
        _ => return Err(StatusCode::HTTP_VERSION_NOT_SUPPORTED),
    };
    let mut headers = HeaderMap::with_capacity(request.headers.len());
    for field in request.headers.iter() {
        let name = HeaderName::from_bytes(field.name.as_bytes()).map_err(|_| bad)?;
        let value = HeaderValue::from_bytes(field.value).map_err(|_| bad)?;
        headers.append(name, value);
    }
    let (mut parts, ()) = http::Request::builder()
        .method(method)
        .uri(request.path.unwrap_or(""))
        .version(version)
        .body(())
        .map_err(|_| bad)?
        .into_parts();
    let framing = framing(&headers, version)?;
    let keep_alive = keep_alive(&headers, version);
    let expect_continue = match headers.get(EXPECT) {
        None => false,
        Some(v) if v.as_bytes().eq_ignore_ascii_case(b"100-continue") => true,
        Some(_) => return Err(StatusCode::EXPECTATION_FAILED),
    };
    parts.headers = headers;
    Ok(RequestHead {
        parts,
        framing,
        keep_alive,
        expect_continue,
    })
}

/// The body framing (RFC 9112 §6.3): chunked, or a `content-length` that every field agrees
/// on, or none. Both at once, or any other transfer coding, is refused.
fn framing(headers: &HeaderMap, version: Version) -> Result<Framing, StatusCode> {
    let bad = StatusCode::BAD_REQUEST;
    if headers.contains_key(TRANSFER_ENCODING) {
        if version == Version::HTTP_10 || headers.contains_key(CONTENT_LENGTH) {
            return Err(bad);
        }
        let codings: Vec<&[u8]> = tokens(headers, &TRANSFER_ENCODING).collect();
        return match codings.as_slice() {
            [only] if only.eq_ignore_ascii_case(b"chunked") => Ok(Framing::Chunked),
            [.., last] if last.eq_ignore_ascii_case(b"chunked") => Err(StatusCode::NOT_IMPLEMENTED),
            _ => Err(bad),
        };
    }
    let mut length = None;
    for token in tokens(headers, &CONTENT_LENGTH) {
        let digits = std::str::from_utf8(token).map_err(|_| bad)?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad);
        }
        let n: u64 = digits.parse().map_err(|_| bad)?;
        if length.is_some_and(|l| l != n) {
            return Err(bad);
        }
        length = Some(n);
    }
    Ok(Framing::Length(length.unwrap_or(0)))
}

/// Whether the connection may serve another request: HTTP/1.1 unless `connection: close`,
/// HTTP/1.0 only with `connection: keep-alive`.
fn keep_alive(headers: &HeaderMap, version: Version) -> bool {
    let has = |token: &[u8]| tokens(headers, &CONNECTION).any(|t| t.eq_ignore_ascii_case(token));
    if has(b"close") {
        return false;
    }
    version == Version::HTTP_11 || has(b"keep-alive")
}

/// The comma-separated, trimmed, non-empty tokens of every field named `name`.
fn tokens<'a>(headers: &'a HeaderMap, name: &HeaderName) -> impl Iterator<Item = &'a [u8]> {
    headers
        .get_all(name)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b','))
        .map(|token| token.trim_ascii())
        .filter(|token| !token.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<RequestHead, StatusCode> {
        match parse_head(raw.as_bytes(), 1024) {
            Parsed::Complete(head, len) => {
                assert_eq!(len, raw.len());
                Ok(*head)
            }
            Parsed::Partial => panic!("partial: {raw:?}"),
            Parsed::Invalid(status) => Err(status),
        }
    }

    #[test]
    fn parses_a_post() {
        let head = parse(
            "POST /s.S/M?x=1 HTTP/1.1\r\nHost: a\r\nContent-Type: application/proto\r\n\
             Content-Length: 5\r\n\r\n",
        )
        .unwrap();
        assert_eq!(head.parts.method, Method::POST);
        assert_eq!(head.parts.uri.path(), "/s.S/M");
        assert_eq!(head.parts.uri.query(), Some("x=1"));
        assert_eq!(head.parts.headers["content-type"], "application/proto");
        assert_eq!(head.framing, Framing::Length(5));
        assert!(head.keep_alive);
        assert!(!head.expect_continue);
    }

    #[test]
    fn framing_rules() {
        let framing_of =
            |fields: &str| parse(&format!("POST / HTTP/1.1\r\n{fields}\r\n")).map(|h| h.framing);
        assert_eq!(framing_of(""), Ok(Framing::Length(0)));
        assert_eq!(
            framing_of("transfer-encoding: chunked\r\n"),
            Ok(Framing::Chunked)
        );
        assert_eq!(
            framing_of("content-length: 3\r\ncontent-length: 3\r\n"),
            Ok(Framing::Length(3))
        );
        for bad in [
            "content-length: 3\r\ncontent-length: 4\r\n",
            "content-length: -1\r\n",
            "content-length: +1\r\n",
            "content-length: 99999999999999999999999\r\n",
            "transfer-encoding: chunked\r\ncontent-length: 3\r\n",
            "transfer-encoding: chunked, gzip\r\n",
        ] {
            assert_eq!(framing_of(bad), Err(StatusCode::BAD_REQUEST), "{bad}");
        }
        assert_eq!(
            framing_of("transfer-encoding: gzip, chunked\r\n"),
            Err(StatusCode::NOT_IMPLEMENTED)
        );
    }

    #[test]
    fn connection_rules() {
        let keep = |version: &str, fields: &str| {
            parse(&format!("GET / HTTP/{version}\r\n{fields}\r\n"))
                .unwrap()
                .keep_alive
        };
        assert!(keep("1.1", ""));
        assert!(!keep("1.1", "connection: Close\r\n"));
        assert!(!keep("1.0", ""));
        assert!(keep("1.0", "connection: keep-alive\r\n"));
    }

    #[test]
    fn malformed_and_oversized_heads() {
        assert_eq!(
            parse("GET / HTTP/1.1\r\nbad header\r\n\r\n").err(),
            Some(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            parse("GET / HTTP/2.0\r\n\r\n").err(),
            Some(StatusCode::HTTP_VERSION_NOT_SUPPORTED)
        );
        let big = format!("GET / HTTP/1.1\r\nx: {}\r\n", "a".repeat(2000));
        assert!(matches!(
            parse_head(big.as_bytes(), 1024),
            Parsed::Invalid(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        ));
        assert!(matches!(
            parse_head(b"GET / HTTP/1.1\r\nx: 1\r\n", 1024),
            Parsed::Partial
        ));
        let many: String = (0..MAX_HEADERS + 1)
            .map(|i| format!("x{i}: 1\r\n"))
            .collect();
        assert!(matches!(
            parse_head(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes(), 1 << 20),
            Parsed::Invalid(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        ));
    }
}
