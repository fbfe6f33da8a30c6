//! HTTP/1.1 response framing for what the core renders: the status line, the core's headers,
//! and the framing this adapter chooses — `content-length` when the whole response is known at
//! once, `transfer-encoding: chunked` while it streams (close-delimited for HTTP/1.0), and
//! `connection`.

use std::io;

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, StatusCode, response};

use connect_proto_core::ServerOutput;

use crate::http1::Conn;

/// Header fields that belong to HTTP/1.1 framing, which this writer alone decides.
const FRAMING_FIELDS: [HeaderName; 3] = [CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING];
const KEEP_ALIVE: &str = "keep-alive";
const UPGRADE: &str = "upgrade";

/// Writes one response from the core's outputs.
#[derive(Debug)]
pub(crate) struct ResponseWriter {
    /// The client speaks HTTP/1.0: no chunked encoding.
    http10: bool,
    /// Whether the connection may serve another request after this response.
    keep_alive: bool,
    state: State,
    /// Bytes ready for the socket.
    pending: Vec<u8>,
}

#[derive(Debug)]
enum State {
    /// No head yet.
    Idle,
    /// A head (and maybe body chunks) held back, in case the end follows in the same batch of
    /// outputs and the response can go out with a `content-length`.
    Held {
        head: response::Parts,
        body: Vec<Bytes>,
    },
    /// The head is out; the body streams, chunked or delimited by closing the connection.
    Streaming { chunked: bool },
    /// The response is complete.
    Complete,
}

impl ResponseWriter {
    /// A writer for a response to an HTTP/1.0 or 1.1 client that allows keep-alive or not.
    pub(crate) fn new(http10: bool, keep_alive: bool) -> Self {
        ResponseWriter {
            http10,
            keep_alive,
            state: State::Idle,
            pending: Vec::new(),
        }
    }

    /// The connection closes after this response (the request was not read to its end, or the
    /// server is stopping); only effective before the head is written.
    pub(crate) fn close_after(&mut self) {
        if matches!(self.state, State::Idle | State::Held { .. }) {
            self.keep_alive = false;
        }
    }

    /// Whether the response is complete and the connection may serve another request.
    pub(crate) fn keeps_alive(&self) -> bool {
        self.keep_alive && matches!(self.state, State::Complete)
    }

    /// Whether the response is complete.
    pub(crate) fn is_complete(&self) -> bool {
        matches!(self.state, State::Complete)
    }

    /// Takes one output of the core. Outputs arrive in order: head, data, then trailers or end.
    pub(crate) fn push(&mut self, output: ServerOutput) {
        match (&mut self.state, output) {
            (State::Idle, ServerOutput::Head(head)) => {
                self.state = State::Held {
                    head,
                    body: Vec::new(),
                };
            }
            (State::Held { body, .. }, ServerOutput::Data(data)) => body.push(data),
            (State::Held { .. }, ServerOutput::End) => {
                let State::Held { head, body } = std::mem::replace(&mut self.state, State::Idle)
                else {
                    return;
                };
                let length = body.iter().map(Bytes::len).sum::<usize>();
                self.write_head(&head, Some(length));
                for data in body {
                    self.pending.extend_from_slice(&data);
                }
                self.state = State::Complete;
            }
            (State::Held { .. }, ServerOutput::Trailers(trailers)) => {
                self.start_streaming();
                self.end(Some(&trailers));
            }
            (State::Streaming { chunked }, ServerOutput::Data(data)) => {
                let chunked = *chunked;
                self.write_data(chunked, &data);
            }
            (State::Streaming { .. }, ServerOutput::Trailers(trailers)) => {
                self.end(Some(&trailers))
            }
            (State::Streaming { .. }, ServerOutput::End) => self.end(None),
            // The core writes the head first and nothing after the end; anything else is
            // dropped rather than written out of order.
            (_, _) => {}
        }
    }

    /// Writes what is pending. A head still held back (the response goes on) is committed to
    /// streaming first.
    pub(crate) fn flush(&mut self, conn: &mut Conn) -> io::Result<()> {
        if matches!(self.state, State::Held { .. }) {
            self.start_streaming();
        }
        if self.pending.is_empty() {
            return Ok(());
        }
        let result = conn.write_all(&self.pending);
        self.pending.clear();
        result
    }

    /// Writes a complete response at once (a rejection: head and body).
    pub(crate) fn write_complete(
        &mut self,
        conn: &mut Conn,
        head: response::Parts,
        body: Bytes,
    ) -> io::Result<()> {
        self.push(ServerOutput::Head(head));
        if !body.is_empty() {
            self.push(ServerOutput::Data(body));
        }
        self.push(ServerOutput::End);
        self.flush(conn)
    }

    /// Writes an empty response with `status` for a request that never reached the core (a
    /// malformed head, a connection refused for capacity).
    pub(crate) fn write_status(&mut self, conn: &mut Conn, status: StatusCode) -> io::Result<()> {
        let (mut head, ()) = http::Response::new(()).into_parts();
        head.status = status;
        self.write_complete(conn, head, Bytes::new())
    }

    /// Writes the held head for a body of unknown length.
    fn start_streaming(&mut self) {
        let State::Held { head, body } = std::mem::replace(&mut self.state, State::Idle) else {
            return;
        };
        let chunked = !self.http10;
        if !chunked {
            // HTTP/1.0 without a length: the end of the body is the end of the connection.
            self.keep_alive = false;
        }
        self.write_head(&head, None);
        for data in body {
            self.write_data(chunked, &data);
        }
        self.state = State::Streaming { chunked };
    }

    fn write_head(&mut self, head: &response::Parts, length: Option<usize>) {
        let status = head.status;
        let reason = status.canonical_reason().unwrap_or("");
        self.line(&format!("HTTP/1.1 {} {reason}", status.as_u16()));
        write_fields(&mut self.pending, &head.headers);
        match length {
            Some(n) => self.line(&format!("{CONTENT_LENGTH}: {n}")),
            None if !self.http10 => self.line(&format!("{TRANSFER_ENCODING}: chunked")),
            None => {}
        }
        if !self.keep_alive {
            self.line(&format!("{CONNECTION}: close"));
        } else if self.http10 {
            self.line(&format!("{CONNECTION}: {KEEP_ALIVE}"));
        }
        self.pending.extend_from_slice(b"\r\n");
    }

    fn write_data(&mut self, chunked: bool, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if chunked {
            self.line(&format!("{:x}", data.len()));
            self.pending.extend_from_slice(data);
            self.pending.extend_from_slice(b"\r\n");
        } else {
            self.pending.extend_from_slice(data);
        }
    }

    /// Ends a streaming body. Trailers only exist in chunked encoding; this server's protocols
    /// (Connect, gRPC-Web) never produce them.
    fn end(&mut self, trailers: Option<&HeaderMap>) {
        if let State::Streaming { chunked: true } = self.state {
            self.pending.extend_from_slice(b"0\r\n");
            if let Some(trailers) = trailers {
                write_fields(&mut self.pending, trailers);
            }
            self.pending.extend_from_slice(b"\r\n");
        }
        self.state = State::Complete;
    }

    fn line(&mut self, line: &str) {
        self.pending.extend_from_slice(line.as_bytes());
        self.pending.extend_from_slice(b"\r\n");
    }
}

/// `name: value` lines, leaving out the fields of HTTP/1.1 framing.
fn write_fields(out: &mut Vec<u8>, fields: &HeaderMap) {
    for (name, value) in fields {
        if FRAMING_FIELDS.contains(name) || name.as_str() == KEEP_ALIVE || name.as_str() == UPGRADE
        {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(status: u16) -> response::Parts {
        let (mut head, ()) = http::Response::new(()).into_parts();
        head.status = StatusCode::from_u16(status).unwrap();
        head.headers
            .insert("content-type", "application/proto".parse().unwrap());
        head
    }

    fn text(writer: &mut ResponseWriter) -> String {
        if matches!(writer.state, State::Held { .. }) {
            writer.start_streaming();
        }
        String::from_utf8(std::mem::take(&mut writer.pending)).unwrap()
    }

    #[test]
    fn whole_response_gets_a_length() {
        let mut writer = ResponseWriter::new(false, true);
        writer.push(ServerOutput::Head(head(200)));
        writer.push(ServerOutput::Data(Bytes::from_static(b"abc")));
        writer.push(ServerOutput::Data(Bytes::from_static(b"de")));
        writer.push(ServerOutput::End);
        assert_eq!(
            text(&mut writer),
            "HTTP/1.1 200 OK\r\ncontent-type: application/proto\r\ncontent-length: 5\r\n\r\nabcde"
        );
        assert!(writer.keeps_alive());
    }

    #[test]
    fn streaming_response_is_chunked() {
        let mut writer = ResponseWriter::new(false, true);
        writer.push(ServerOutput::Head(head(200)));
        writer.push(ServerOutput::Data(Bytes::from_static(b"abc")));
        assert_eq!(
            text(&mut writer),
            "HTTP/1.1 200 OK\r\ncontent-type: application/proto\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n"
        );
        writer.close_after(); // too late: the head is out
        writer.push(ServerOutput::Data(Bytes::from_static(b"0123456789abcdef")));
        writer.push(ServerOutput::End);
        assert_eq!(text(&mut writer), "10\r\n0123456789abcdef\r\n0\r\n\r\n");
        assert!(writer.keeps_alive());
    }

    #[test]
    fn http10_streams_until_close() {
        let mut writer = ResponseWriter::new(true, true);
        writer.push(ServerOutput::Head(head(200)));
        writer.push(ServerOutput::Data(Bytes::from_static(b"abc")));
        assert_eq!(
            text(&mut writer),
            "HTTP/1.1 200 OK\r\ncontent-type: application/proto\r\nconnection: close\r\n\r\nabc"
        );
        writer.push(ServerOutput::End);
        assert!(writer.is_complete());
        assert!(!writer.keeps_alive());
    }

    #[test]
    fn closing_and_framing_fields() {
        let mut writer = ResponseWriter::new(false, true);
        writer.close_after();
        let mut rejected = head(415);
        rejected
            .headers
            .insert("content-length", "99".parse().unwrap());
        writer.push(ServerOutput::Head(rejected));
        writer.push(ServerOutput::End);
        assert_eq!(
            text(&mut writer),
            "HTTP/1.1 415 Unsupported Media Type\r\ncontent-type: application/proto\r\n\
             content-length: 0\r\nconnection: close\r\n\r\n"
        );
        assert!(!writer.keeps_alive());
    }
}
