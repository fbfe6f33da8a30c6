//! The 5-byte envelope walk the load generator and the bare server share. Written here rather
//! than taken from `connect-proto-core`, so the baseline measures no part of our own stack.

/// What [`EnvelopeScanner::feed`] reports.
pub enum Piece<'a> {
    /// Part of the payload of an envelope with these flags.
    Payload(u8, &'a [u8]),
    /// An envelope with these flags is complete.
    End(u8),
}

/// Walks envelopes (flags byte, 4-byte big-endian length, payload) across arbitrary chunks.
#[derive(Debug, Default)]
pub struct EnvelopeScanner {
    prefix: [u8; 5],
    prefix_len: usize,
    remaining: usize,
    in_payload: bool,
    flags: u8,
}

impl EnvelopeScanner {
    /// Feeds a chunk, reporting each piece of a payload and each envelope completed.
    pub fn feed(&mut self, mut chunk: &[u8], mut on: impl FnMut(Piece<'_>)) {
        while !chunk.is_empty() {
            if self.in_payload {
                let take = self.remaining.min(chunk.len());
                on(Piece::Payload(self.flags, &chunk[..take]));
                self.remaining -= take;
                chunk = &chunk[take..];
                if self.remaining == 0 {
                    self.in_payload = false;
                    on(Piece::End(self.flags));
                }
            } else {
                let take = (5 - self.prefix_len).min(chunk.len());
                self.prefix[self.prefix_len..self.prefix_len + take]
                    .copy_from_slice(&chunk[..take]);
                self.prefix_len += take;
                chunk = &chunk[take..];
                if self.prefix_len == 5 {
                    self.prefix_len = 0;
                    self.flags = self.prefix[0];
                    let [_, a, b, c, d] = self.prefix;
                    self.remaining = u32::from_be_bytes([a, b, c, d]) as usize;
                    if self.remaining == 0 {
                        on(Piece::End(self.flags));
                    } else {
                        self.in_payload = true;
                    }
                }
            }
        }
    }

    /// Whether the data so far ended between envelopes.
    pub fn at_boundary(&self) -> bool {
        !self.in_payload && self.prefix_len == 0
    }
}
