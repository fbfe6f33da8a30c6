//! Request bodies: `content-length` and `transfer-encoding: chunked`, decoded from the
//! connection's buffer as bytes arrive. [`BodyReader::poll_buffered`] is Sans-IO (it only looks
//! at the buffer); [`BodyReader::next`] reads the socket when the buffer runs dry.

use std::time::Duration;

use bytes::{Bytes, BytesMut};

use crate::http1::{Conn, Fill, Framing};

/// The longest chunk-size line (size and extensions).
const MAX_CHUNK_LINE: usize = 4 * 1024;
/// The most bytes of trailer fields after the last chunk (read and dropped).
const MAX_TRAILER_BYTES: usize = 16 * 1024;

/// What the body gave.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BodyItem {
    /// Some body bytes.
    Data(Bytes),
    /// The body ended (any chunked trailers were read and dropped).
    End,
    /// Nothing arrived in time.
    TimedOut,
}

/// Why a body could not be read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// The chunked framing is malformed or over a bound.
    Malformed(&'static str),
    /// The peer closed its side of the connection before the body ended.
    Truncated,
    /// The socket failed (the connection was reset).
    Reset,
}

/// Reads one request body.
#[derive(Debug)]
pub(crate) struct BodyReader {
    state: State,
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    /// `content-length`: this many bytes left.
    Length(u64),
    /// Chunked, at a chunk-size line.
    ChunkSize,
    /// Chunked, inside a chunk: this many bytes left.
    ChunkData(u64),
    /// Chunked, at the CRLF after a chunk's data.
    ChunkEnd,
    /// Chunked, in the trailer section: this many trailer bytes read so far.
    Trailers(usize),
    /// The body ended.
    Done,
    /// The body was malformed; nothing more is read.
    Broken,
}

impl BodyReader {
    /// A reader for a body framed as `framing`.
    pub(crate) fn new(framing: Framing) -> Self {
        let state = match framing {
            Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::ChunkSize,
        };
        BodyReader { state }
    }

    /// Whether the whole body was read (the next request may follow on the connection).
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Whether the body has ended, successfully or not.
    pub(crate) fn is_over(&self) -> bool {
        matches!(self.state, State::Done | State::Broken)
    }

    /// The next body item, reading from the connection when the buffer runs dry (waiting at
    /// most `timeout` for one read).
    pub(crate) fn next(
        &mut self,
        conn: &mut Conn,
        timeout: Duration,
    ) -> Result<BodyItem, BodyError> {
        loop {
            if let Some(item) = self.poll_buffered(&mut conn.buf)? {
                return Ok(item);
            }
            match conn.fill(timeout) {
                Ok(Fill::Data(_)) => {}
                Ok(Fill::TimedOut) => return Ok(BodyItem::TimedOut),
                Ok(Fill::Eof) => {
                    self.state = State::Broken;
                    return Err(BodyError::Truncated);
                }
                Err(_) => {
                    self.state = State::Broken;
                    return Err(BodyError::Reset);
                }
            }
        }
    }

    /// Drops as much of the body as is already buffered; `true` if that reached its end.
    pub(crate) fn skip_buffered(&mut self, buf: &mut BytesMut) -> bool {
        loop {
            match self.poll_buffered(buf) {
                Ok(Some(BodyItem::Data(_))) => {}
                Ok(Some(BodyItem::End)) => return true,
                Ok(Some(BodyItem::TimedOut) | None) | Err(_) => return false,
            }
        }
    }

    /// The next item decodable from `buf` alone, consuming what it decodes; `None` if more
    /// bytes are needed. Bytes after the body stay in `buf`.
    pub(crate) fn poll_buffered(
        &mut self,
        buf: &mut BytesMut,
    ) -> Result<Option<BodyItem>, BodyError> {
        let result = self.decode(buf);
        if result.is_err() {
            self.state = State::Broken;
        }
        result
    }

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<BodyItem>, BodyError> {
        loop {
            match self.state {
                State::Done => return Ok(Some(BodyItem::End)),
                State::Broken => return Err(BodyError::Malformed("the body is already broken")),
                State::Length(left) | State::ChunkData(left) => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                    let data = buf.split_to(take).freeze();
                    let left = left - take as u64;
                    self.state = match (&self.state, left) {
                        (State::Length(_), 0) => State::Done,
                        (State::Length(_), _) => State::Length(left),
                        (_, 0) => State::ChunkEnd,
                        (_, _) => State::ChunkData(left),
                    };
                    return Ok(Some(BodyItem::Data(data)));
                }
                State::ChunkSize => match httparse::parse_chunk_size(buf) {
                    Ok(httparse::Status::Complete((len, size))) => {
                        let _ = buf.split_to(len);
                        self.state = match size {
                            0 => State::Trailers(0),
                            n => State::ChunkData(n),
                        };
                    }
                    Ok(httparse::Status::Partial) if buf.len() > MAX_CHUNK_LINE => {
                        return Err(BodyError::Malformed("chunk-size line too long"));
                    }
                    Ok(httparse::Status::Partial) => return Ok(None),
                    Err(_) => return Err(BodyError::Malformed("invalid chunk size")),
                },
                State::ChunkEnd => {
                    if buf.len() < 2 {
                        return Ok(None);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(BodyError::Malformed("chunk data not followed by CRLF"));
                    }
                    let _ = buf.split_to(2);
                    self.state = State::ChunkSize;
                }
                State::Trailers(seen) => {
                    let Some(line) = buf.windows(2).position(|w| w == b"\r\n") else {
                        if seen + buf.len() > MAX_TRAILER_BYTES {
                            return Err(BodyError::Malformed("trailer section too large"));
                        }
                        return Ok(None);
                    };
                    let _ = buf.split_to(line + 2);
                    self.state = if line == 0 {
                        State::Done
                    } else if seen + line + 2 > MAX_TRAILER_BYTES {
                        return Err(BodyError::Malformed("trailer section too large"));
                    } else {
                        State::Trailers(seen + line + 2)
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `wire` fed in pieces of `step` bytes: the body, and what is left after it.
    fn decode(framing: Framing, wire: &[u8], step: usize) -> Result<(Vec<u8>, Vec<u8>), String> {
        let mut reader = BodyReader::new(framing);
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        let mut pieces = wire.chunks(step.max(1));
        loop {
            match reader.poll_buffered(&mut buf) {
                Ok(Some(BodyItem::Data(d))) => body.extend_from_slice(&d),
                Ok(Some(BodyItem::End)) => return Ok((body, buf.to_vec())),
                Ok(Some(BodyItem::TimedOut)) => unreachable!(),
                Ok(None) => match pieces.next() {
                    Some(piece) => buf.extend_from_slice(piece),
                    None => return Err("incomplete".into()),
                },
                Err(e) => return Err(format!("{e:?}")),
            }
        }
    }

    #[test]
    fn content_length_stops_at_its_end() {
        for step in [1, 3, 100] {
            let (body, rest) = decode(Framing::Length(5), b"helloGET /", step).unwrap();
            assert_eq!(body, b"hello");
            assert!(b"GET /".starts_with(&rest));
        }
        assert_eq!(decode(Framing::Length(0), b"", 1).unwrap().0, b"");
    }

    #[test]
    fn chunked_whole_and_byte_by_byte() {
        let wire = b"5\r\nhello\r\n1;ext=1\r\n \r\n6\r\nworld!\r\n0\r\nx-t: 1\r\n\r\nNEXT";
        for step in [1, 2, 7, wire.len()] {
            let (body, rest) = decode(Framing::Chunked, wire, step).unwrap();
            assert_eq!(body, b"hello world!", "step {step}");
            assert!(b"NEXT".starts_with(&rest), "step {step}");
        }
    }

    #[test]
    fn malformed_chunks_are_errors() {
        for wire in [
            &b"zz\r\n"[..],
            b"5\r\nhelloXX0\r\n\r\n",
            b"fffffffffffffffffff\r\n",
            &[b'1'; MAX_CHUNK_LINE + 10][..],
        ] {
            assert!(decode(Framing::Chunked, wire, 1).is_err(), "{wire:?}");
        }
        let mut trailers = b"0\r\n".to_vec();
        trailers.extend(std::iter::repeat_n(b"x: y\r\n", 4000).flatten());
        assert!(decode(Framing::Chunked, &trailers, 64).is_err());
    }

    #[test]
    fn skips_a_buffered_body() {
        let mut reader = BodyReader::new(Framing::Chunked);
        let mut buf = BytesMut::from(&b"3\r\nabc\r\n0\r\n\r\nGET"[..]);
        assert!(reader.skip_buffered(&mut buf));
        assert_eq!(&buf[..], b"GET");
        let mut reader = BodyReader::new(Framing::Length(10));
        let mut buf = BytesMut::from(&b"abc"[..]);
        assert!(!reader.skip_buffered(&mut buf));
    }
}
