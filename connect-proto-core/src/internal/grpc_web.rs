//! gRPC-Web wire elements: the trailer frame (an HTTP/1-style header block inside an
//! envelope flagged `0x80`) and the base64 body of `application/grpc-web-text`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::error::Rule;
use crate::internal::metadata::MetadataBudget;

/// Encodes a trailer block: `name: value\r\n` per entry, names lowercase.
pub fn encode_trailer_block(trailers: &HeaderMap) -> Bytes {
    let mut out = BytesMut::with_capacity(trailers.len() * 32);
    for (name, value) in trailers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.freeze()
}

/// Parses a trailer block. Names compare case-insensitively (they are lowercased), repeated
/// names keep every value, lines may end in `\r\n` or `\n`, and blank lines are ignored.
/// A block whose entries exceed `limit` bytes (see
/// `entry_size`) fails with [`Rule::MetadataTooLarge`].
pub fn decode_trailer_block(block: &[u8], limit: usize) -> Result<HeaderMap, Rule> {
    let mut trailers = HeaderMap::new();
    let mut budget = MetadataBudget::new(limit);
    for line in block.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        let colon = line
            .iter()
            .position(|b| *b == b':')
            .ok_or_else(|| Rule::InvalidTrailers("trailer line has no colon".into()))?;
        let name = trim(&line[..colon]).to_ascii_lowercase();
        let value = trim(&line[colon + 1..]);
        let name = HeaderName::from_bytes(&name).map_err(|_| {
            Rule::InvalidTrailers(format!(
                "invalid trailer name {:?}",
                String::from_utf8_lossy(&name)
            ))
        })?;
        let value = HeaderValue::from_bytes(value)
            .map_err(|_| Rule::InvalidTrailers(format!("invalid value for trailer {name}")))?;
        budget.append(&mut trailers, name, value)?;
    }
    Ok(trailers)
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| *b != b' ' && *b != b'\t')
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| *b != b' ' && *b != b'\t')
        .map_or(start, |i| i + 1);
    &s[start..end]
}

/// Encodes one chunk of a `grpc-web-text` body (standard, padded base64). Chunks are
/// independent; concatenated padded chunks form a valid text body.
pub fn encode_text_chunk(chunk: &[u8]) -> Bytes {
    Bytes::from(STANDARD.encode(chunk))
}

/// Incremental decoder for a `grpc-web-text` body: base64 in any chunking, where the sender
/// may have padded each of its own chunks.
#[derive(Debug, Default)]
pub struct TextDecoder {
    /// Base64 characters not yet forming a whole 4-character group.
    pending: Vec<u8>,
}

impl TextDecoder {
    /// A new decoder.
    pub fn new() -> Self {
        TextDecoder::default()
    }

    /// Decodes as much of `chunk` (plus earlier leftovers) as forms whole groups.
    pub fn decode(&mut self, chunk: &[u8]) -> Result<Bytes, Rule> {
        self.pending
            .extend(chunk.iter().copied().filter(|b| !b.is_ascii_whitespace()));
        let whole = self.pending.len() / 4 * 4;
        if whole == 0 {
            return Ok(Bytes::new());
        }
        let mut out = Vec::with_capacity(whole / 4 * 3);
        let mut start = 0;
        for group_end in (4..=whole).step_by(4) {
            // A padded group ends a base64 segment; decode segment by segment.
            if self.pending[group_end - 1] == b'=' || group_end == whole {
                STANDARD
                    .decode_vec(&self.pending[start..group_end], &mut out)
                    .map_err(|_| Rule::InvalidBase64)?;
                start = group_end;
            }
        }
        self.pending.drain(..whole);
        Ok(Bytes::from(out))
    }

    /// Checks that the body ended on a group boundary.
    pub fn finish(&self) -> Result<(), Rule> {
        if self.pending.is_empty() {
            Ok(())
        } else {
            Err(Rule::InvalidBase64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::DEFAULT_MAX_METADATA_SIZE;

    #[test]
    fn trailer_block_round_trip() {
        let mut t = HeaderMap::new();
        t.insert("grpc-status", HeaderValue::from_static("0"));
        t.append("x-multi", HeaderValue::from_static("a"));
        t.append("x-multi", HeaderValue::from_static("b"));
        let block = encode_trailer_block(&t);
        assert_eq!(
            decode_trailer_block(&block, DEFAULT_MAX_METADATA_SIZE).unwrap(),
            t
        );
    }

    #[test]
    fn trailer_block_is_lenient_where_the_spec_allows() {
        let t = decode_trailer_block(
            b"Grpc-Status:3\nGRPC-MESSAGE:  oops \r\n\r\nx-a: 1\r\nX-A: 2",
            DEFAULT_MAX_METADATA_SIZE,
        )
        .unwrap();
        assert_eq!(t.get("grpc-status").unwrap(), "3");
        assert_eq!(t.get("grpc-message").unwrap(), "oops");
        assert_eq!(t.get_all("x-a").iter().collect::<Vec<_>>(), ["1", "2"]);
        assert!(
            decode_trailer_block(b"", DEFAULT_MAX_METADATA_SIZE)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn trailer_block_rejections() {
        assert!(decode_trailer_block(b"no colon here\r\n", DEFAULT_MAX_METADATA_SIZE).is_err());
        assert!(decode_trailer_block(b"bad name: v\r\n", DEFAULT_MAX_METADATA_SIZE).is_err());
        assert!(decode_trailer_block(b": v\r\n", DEFAULT_MAX_METADATA_SIZE).is_err());
        assert!(decode_trailer_block(b"x: \x01\r\n", DEFAULT_MAX_METADATA_SIZE).is_err());
    }

    #[test]
    fn text_decoding_any_chunking_and_padded_segments() {
        let payload: Vec<u8> = (0..=255u8).collect();
        // Two independently padded segments, as a sender that encodes chunk by chunk emits.
        let mut body = encode_text_chunk(&payload[..100]).to_vec();
        body.extend_from_slice(&encode_text_chunk(&payload[100..]));
        for size in [1, 2, 3, 4, 5, 7, 64, body.len()] {
            let mut decoder = TextDecoder::new();
            let mut out = Vec::new();
            for chunk in body.chunks(size) {
                out.extend_from_slice(&decoder.decode(chunk).unwrap());
            }
            decoder.finish().unwrap();
            assert_eq!(out, payload, "chunk size {size}");
        }
    }

    #[test]
    fn text_decoding_rejections() {
        let mut d = TextDecoder::new();
        assert_eq!(d.decode(b"!!!!"), Err(Rule::InvalidBase64));
        let mut d = TextDecoder::new();
        d.decode(b"AAE").unwrap();
        assert_eq!(d.finish(), Err(Rule::InvalidBase64));
        let mut d = TextDecoder::new();
        assert_eq!(d.decode(b"A===").map(|_| ()), Err(Rule::InvalidBase64));
    }

    #[test]
    fn trailer_blocks_are_bounded() {
        // 30,000 distinct names would overflow an `http::HeaderMap` (a panic) without a bound.
        let block: String = (0..30_000).map(|i| format!("k{i}: v\r\n")).collect();
        assert_eq!(
            decode_trailer_block(block.as_bytes(), DEFAULT_MAX_METADATA_SIZE).unwrap_err(),
            Rule::MetadataTooLarge {
                limit: DEFAULT_MAX_METADATA_SIZE
            }
        );
        // At the limit and one byte past it: `k0: v` costs 2 + 1 + 32 bytes.
        assert_eq!(decode_trailer_block(b"k0: v\r\n", 35).unwrap().len(), 1);
        assert_eq!(
            decode_trailer_block(b"k0: v\r\n", 34).unwrap_err(),
            Rule::MetadataTooLarge { limit: 34 }
        );
    }
}
