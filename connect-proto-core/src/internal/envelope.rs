//! The 5-byte envelope shared by gRPC, gRPC-Web and Connect streaming: one flags byte and a
//! big-endian `u32` length, then the payload. Encoder and incremental decoder.
//!
//! The decoder takes body chunks as [`Bytes`] in any split, checks the announced length
//! against the limit as soon as the prefix is complete (before buffering the payload), and
//! hands out payloads by slicing the input when an envelope lies within one chunk.

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};

use crate::error::Rule;

/// Length of the envelope prefix: flags (1 byte) and payload length (4 bytes).
pub const PREFIX_LEN: usize = 5;

/// Flag: the payload is compressed with the negotiated algorithm.
pub const FLAG_COMPRESSED: u8 = 0x01;
/// Flag (Connect streaming): the payload is the end-stream message.
pub const FLAG_END_STREAM: u8 = 0x02;
/// Flag (gRPC-Web): the payload is the trailer block.
pub const FLAG_TRAILERS: u8 = 0x80;

/// One decoded envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The raw flags byte; protocol rules decide which flags are valid.
    pub flags: u8,
    /// The payload, still compressed if [`FLAG_COMPRESSED`] is set.
    pub payload: Bytes,
}

impl Envelope {
    /// Whether [`FLAG_COMPRESSED`] is set.
    pub fn is_compressed(&self) -> bool {
        self.flags & FLAG_COMPRESSED != 0
    }
}

/// The prefix for a payload of `len` bytes.
pub fn encode_prefix(flags: u8, len: u32) -> [u8; PREFIX_LEN] {
    let l = len.to_be_bytes();
    [flags, l[0], l[1], l[2], l[3]]
}

/// One envelope (prefix and payload) as a single contiguous buffer.
///
/// Fails with [`Rule::MessageTooLarge`]-shaped information if the payload does not fit a
/// `u32` length.
pub fn encode_envelope(flags: u8, payload: &[u8]) -> Result<Bytes, usize> {
    let len = u32::try_from(payload.len()).map_err(|_| payload.len())?;
    let mut out = BytesMut::with_capacity(PREFIX_LEN + payload.len());
    out.extend_from_slice(&encode_prefix(flags, len));
    out.extend_from_slice(payload);
    Ok(out.freeze())
}

/// Incremental envelope decoder over body chunks.
///
/// ```
/// use bytes::Bytes;
/// use connect_proto_core::internal::envelope::{EnvelopeDecoder, encode_envelope};
///
/// let wire = encode_envelope(0, b"hello").unwrap();
/// let mut decoder = EnvelopeDecoder::new(1024);
/// decoder.push(wire.slice(..3));
/// assert_eq!(decoder.decode().unwrap(), None); // prefix incomplete
/// decoder.push(wire.slice(3..));
/// let envelope = decoder.decode().unwrap().unwrap();
/// assert_eq!(&envelope.payload[..], b"hello");
/// assert!(decoder.finish().is_ok());
/// ```
#[derive(Debug)]
pub struct EnvelopeDecoder {
    /// First pending chunk (kept out of the deque so the common single-chunk case never
    /// allocates a deque buffer).
    front: Bytes,
    rest: VecDeque<Bytes>,
    buffered: usize,
    limit: usize,
    /// Envelopes with any of these flags are end-of-stream frames, bounded by `end_limit`.
    end_flags: u8,
    end_limit: usize,
    /// The parsed prefix of the envelope being reassembled.
    pending: Option<(u8, usize)>,
}

impl EnvelopeDecoder {
    /// A decoder that rejects payloads larger than `limit` bytes.
    pub fn new(limit: usize) -> Self {
        EnvelopeDecoder {
            front: Bytes::new(),
            rest: VecDeque::new(),
            buffered: 0,
            limit,
            end_flags: 0,
            end_limit: limit,
            pending: None,
        }
    }

    /// Bounds envelopes carrying any of `flags` (end-of-stream frames: the status and
    /// metadata, not a message) by `limit` instead; exceeding it breaks
    /// [`Rule::MetadataTooLarge`].
    #[must_use]
    pub fn with_end_frames(mut self, flags: u8, limit: usize) -> Self {
        self.end_flags = flags;
        self.end_limit = limit;
        self
    }

    /// The payload size limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Adds a body chunk. Empty chunks are ignored.
    pub fn push(&mut self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        self.buffered += chunk.len();
        if self.front.is_empty() {
            self.front = chunk;
        } else {
            self.rest.push_back(chunk);
        }
    }

    /// Bytes received but not yet returned in an envelope.
    pub fn buffered_len(&self) -> usize {
        self.buffered
    }

    /// Returns the next complete envelope, `Ok(None)` if more input is needed, or the rule a
    /// too-large envelope breaks. After an error the decoder must not be used again.
    pub fn decode(&mut self) -> Result<Option<Envelope>, Rule> {
        let (flags, len) = match self.pending {
            Some(prefix) => prefix,
            None => {
                if self.buffered < PREFIX_LEN {
                    return Ok(None);
                }
                let mut prefix = [0u8; PREFIX_LEN];
                self.take_into(&mut prefix);
                let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]);
                let len = len as usize;
                if prefix[0] & self.end_flags != 0 {
                    if len > self.end_limit {
                        return Err(Rule::MetadataTooLarge {
                            limit: self.end_limit,
                        });
                    }
                } else if len > self.limit {
                    return Err(Rule::MessageTooLarge {
                        size: len as u64,
                        limit: self.limit,
                    });
                }
                self.pending = Some((prefix[0], len));
                (prefix[0], len)
            }
        };
        if self.buffered < len {
            return Ok(None);
        }
        self.pending = None;
        Ok(Some(Envelope {
            flags,
            payload: self.take_bytes(len),
        }))
    }

    /// Checks that the body ended on an envelope boundary.
    pub fn finish(&self) -> Result<(), Rule> {
        match self.pending {
            Some((_, len)) => Err(Rule::IncompleteEnvelope {
                received: PREFIX_LEN + self.buffered,
                expected: Some(PREFIX_LEN as u64 + len as u64),
            }),
            None if self.buffered > 0 => Err(Rule::IncompleteEnvelope {
                received: self.buffered,
                expected: None,
            }),
            None => Ok(()),
        }
    }

    /// Takes everything buffered, leaving the decoder empty (used when a body turns out not to
    /// be enveloped, for example a Connect unary error).
    pub fn take_all(&mut self) -> Bytes {
        let len = self.buffered;
        self.pending = None;
        self.take_bytes(len)
    }

    fn advance_front(&mut self) {
        while self.front.is_empty() {
            match self.rest.pop_front() {
                Some(next) => self.front = next,
                None => return,
            }
        }
    }

    fn take_into(&mut self, dst: &mut [u8]) {
        let mut filled = 0;
        while filled < dst.len() {
            self.advance_front();
            let n = (dst.len() - filled).min(self.front.len());
            if n == 0 {
                break;
            }
            dst[filled..filled + n].copy_from_slice(&self.front[..n]);
            // Advanced, not split off: a split clones the chunk's shared handle (an atomic
            // increment, and a decrement when dropped) for bytes that are already copied.
            self.front.advance(n);
            filled += n;
        }
        self.buffered -= filled;
    }

    fn take_bytes(&mut self, len: usize) -> Bytes {
        self.advance_front();
        if self.front.len() >= len {
            self.buffered -= len;
            return self.front.split_to(len);
        }
        let mut out = BytesMut::with_capacity(len);
        while out.len() < len {
            self.advance_front();
            let n = (len - out.len()).min(self.front.len());
            if n == 0 {
                break;
            }
            out.extend_from_slice(&self.front[..n]);
            self.front.advance(n);
        }
        self.buffered -= out.len();
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(envelopes: &[(u8, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (flags, payload) in envelopes {
            out.extend_from_slice(&encode_envelope(*flags, payload).unwrap());
        }
        out
    }

    fn decode_all(chunks: Vec<Bytes>, limit: usize) -> Result<Vec<Envelope>, Rule> {
        let mut decoder = EnvelopeDecoder::new(limit);
        let mut out = Vec::new();
        for chunk in chunks {
            decoder.push(chunk);
            while let Some(env) = decoder.decode()? {
                out.push(env);
            }
        }
        decoder.finish()?;
        Ok(out)
    }

    fn chunked(data: &[u8], size: usize) -> Vec<Bytes> {
        data.chunks(size.max(1))
            .map(Bytes::copy_from_slice)
            .collect()
    }

    const SAMPLE: &[(u8, &[u8])] = &[
        (0, b"first"),
        (FLAG_COMPRESSED, b""),
        (0, &[0xff; 300]),
        (FLAG_END_STREAM, b"{}"),
    ];

    #[test]
    fn end_frames_have_their_own_limit() {
        let decode = |chunks: Vec<Bytes>| {
            let mut decoder = EnvelopeDecoder::new(8).with_end_frames(FLAG_END_STREAM, 64);
            let mut out = Vec::new();
            for chunk in chunks {
                decoder.push(chunk);
                while let Some(env) = decoder.decode()? {
                    out.push(env);
                }
            }
            decoder.finish().map(|()| out)
        };
        // A 40-byte end frame passes a decoder whose messages may have 8 bytes, whole, byte at
        // a time, and followed by trailing bytes (an incomplete prefix).
        let ok = wire(&[(0, b"12345678"), (FLAG_END_STREAM, &[b'x'; 40])]);
        for chunks in [vec![Bytes::from(ok.clone())], chunked(&ok, 1)] {
            let envelopes = decode(chunks).unwrap();
            assert_eq!(envelopes.len(), 2);
            assert_eq!(envelopes[1].payload.len(), 40);
        }
        let mut trailing = ok.clone();
        trailing.extend_from_slice(&[0, 0]);
        assert!(matches!(
            decode(vec![Bytes::from(trailing)]),
            Err(Rule::IncompleteEnvelope { .. })
        ));
        // Past each limit.
        let big_message = wire(&[(0, b"123456789")]);
        assert!(matches!(
            decode(vec![Bytes::from(big_message)]),
            Err(Rule::MessageTooLarge { size: 9, limit: 8 })
        ));
        let big_end = wire(&[(FLAG_END_STREAM, &[b'x'; 65])]);
        assert_eq!(
            decode(chunked(&big_end, 1)).unwrap_err(),
            Rule::MetadataTooLarge { limit: 64 }
        );
    }

    #[test]
    fn whole_byte_at_a_time_and_every_split() {
        let data = wire(SAMPLE);
        let expected: Vec<Envelope> = SAMPLE
            .iter()
            .map(|(f, p)| Envelope {
                flags: *f,
                payload: Bytes::copy_from_slice(p),
            })
            .collect();
        assert_eq!(
            decode_all(vec![Bytes::from(data.clone())], 1000).unwrap(),
            expected
        );
        assert_eq!(decode_all(chunked(&data, 1), 1000).unwrap(), expected);
        for size in [2, 3, 4, 5, 6, 7, 11, 64, 305] {
            assert_eq!(
                decode_all(chunked(&data, size), 1000).unwrap(),
                expected,
                "chunk {size}"
            );
        }
    }

    #[test]
    fn trailing_bytes_are_an_incomplete_envelope() {
        let mut data = wire(&[(0, b"ok")]);
        data.extend_from_slice(&[0, 0]);
        assert_eq!(
            decode_all(vec![Bytes::from(data.clone())], 100),
            Err(Rule::IncompleteEnvelope {
                received: 2,
                expected: None
            })
        );
        data.extend_from_slice(&[0, 0, 9, 1]);
        assert_eq!(
            decode_all(chunked(&data, 1), 100),
            Err(Rule::IncompleteEnvelope {
                received: 6,
                expected: Some(14)
            })
        );
    }

    #[test]
    fn limit_is_checked_from_the_prefix_alone() {
        let mut decoder = EnvelopeDecoder::new(10);
        decoder.push(Bytes::from_static(&[0, 0xff, 0xff, 0xff, 0xff]));
        assert_eq!(
            decoder.decode(),
            Err(Rule::MessageTooLarge {
                size: u32::MAX as u64,
                limit: 10
            })
        );
        let mut decoder = EnvelopeDecoder::new(10);
        decoder.push(encode_envelope(0, &[1; 10]).unwrap());
        assert_eq!(decoder.decode().unwrap().unwrap().payload.len(), 10);
    }

    #[test]
    fn contiguous_envelopes_are_sliced_not_copied() {
        let data = Bytes::from(wire(&[(0, b"abc"), (0, b"defg")]));
        let base = data.as_ptr() as usize;
        let mut decoder = EnvelopeDecoder::new(100);
        decoder.push(data.clone());
        let first = decoder.decode().unwrap().unwrap();
        let second = decoder.decode().unwrap().unwrap();
        assert_eq!(first.payload.as_ptr() as usize, base + 5);
        assert_eq!(second.payload.as_ptr() as usize, base + 13);
    }

    #[test]
    fn take_all_returns_unframed_remainder() {
        let mut decoder = EnvelopeDecoder::new(100);
        decoder.push(Bytes::from_static(b"{\"co"));
        decoder.push(Bytes::from_static(b"de\":1}"));
        assert_eq!(decoder.take_all(), Bytes::from_static(b"{\"code\":1}"));
        assert_eq!(decoder.buffered_len(), 0);
        assert!(decoder.finish().is_ok());
    }

    #[test]
    fn round_trip_property_over_pseudo_random_inputs() {
        // A small deterministic generator keeps this a plain #[test].
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..200 {
            let count = (next() % 6) as usize;
            let owned: Vec<(u8, Vec<u8>)> = (0..count)
                .map(|_| {
                    let len = (next() % 700) as usize;
                    (
                        (next() & 0xff) as u8,
                        (0..len).map(|_| next() as u8).collect(),
                    )
                })
                .collect();
            let borrowed: Vec<(u8, &[u8])> = owned.iter().map(|(f, p)| (*f, &p[..])).collect();
            let data = wire(&borrowed);
            let split = (next() % 40 + 1) as usize;
            let decoded = decode_all(chunked(&data, split), 700).unwrap();
            let again: Vec<(u8, Vec<u8>)> = decoded
                .into_iter()
                .map(|e| (e.flags, e.payload.to_vec()))
                .collect();
            assert_eq!(again, owned);
        }
    }
}
