//! Reading one direction of a call: body chunks in, messages (and end-of-stream frames) out
//! (writing is [`outbound`](super::outbound)). Handles every wire form's body layout (a bare
//! unary body, envelopes, base64 text), the flag rules per form and direction, and
//! decompression bounded by the message limit.

use std::sync::Arc;

use bytes::Bytes;

use crate::compression::{Compression, DecompressError};
use crate::error::Rule;
use crate::internal::envelope::{EnvelopeDecoder, FLAG_COMPRESSED, FLAG_END_STREAM, FLAG_TRAILERS};
use crate::internal::grpc_web::TextDecoder;
use crate::protocol::WireForm;

/// One item read from a body.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Inbound {
    /// A message, decompressed.
    Message(Bytes),
    /// A message still compressed with the body's compression (pass-through only).
    Compressed(Bytes),
    /// A Connect end-stream message (JSON, decompressed).
    EndStream(Bytes),
    /// A gRPC-Web trailer block.
    Trailers(Bytes),
}

/// Which side of the exchange a body comes from: the flags an envelope may carry depend on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    Request,
    Response,
}

/// The flag that ends a stream in `form` and `direction` (0: none may).
fn end_flag(form: WireForm, direction: Direction) -> u8 {
    match (form, direction) {
        (WireForm::ConnectStreaming, Direction::Response) => FLAG_END_STREAM,
        (WireForm::GrpcWeb | WireForm::GrpcWebText, Direction::Response) => FLAG_TRAILERS,
        _ => 0,
    }
}

/// Decompresses a message payload with `compression` (none: as it is), bounded by `limit`.
pub(crate) fn decompress_with(
    compression: Option<&Arc<dyn Compression>>,
    payload: Bytes,
    limit: usize,
) -> Result<Bytes, Rule> {
    // Zero-length payloads are never decompressed (Connect requires it; harmless elsewhere).
    match compression {
        Some(alg) if !payload.is_empty() => alg.decompress(&payload, limit).map_err(|e| match e {
            DecompressError::LimitExceeded { limit } => Rule::MessageTooLarge {
                size: limit as u64 + 1,
                limit,
            },
            other => Rule::Decompression(other.to_string()),
        }),
        _ => Ok(payload),
    }
}

/// The reading half of a call.
#[derive(Debug)]
pub(crate) struct Reader {
    form: WireForm,
    direction: Direction,
    text: Option<TextDecoder>,
    envelopes: EnvelopeDecoder,
    compression: Option<Arc<dyn Compression>>,
    limit: usize,
    /// The bound on end-of-stream frames (status and metadata), when the form has them.
    end_limit: usize,
    /// Whether decompression is left to the caller (pass-through proxies).
    pass_through: bool,
    /// Set once an end-of-stream frame was read; more data is an error.
    ended: bool,
}

impl Reader {
    /// A reader of messages of at most `limit` bytes; end-of-stream frames (responses only)
    /// are bounded by `end_limit`, the metadata limit, since they carry status and metadata.
    pub(crate) fn new(
        form: WireForm,
        direction: Direction,
        compression: Option<Arc<dyn Compression>>,
        limit: usize,
        end_limit: usize,
    ) -> Self {
        let end_flags = end_flag(form, direction);
        Reader {
            form,
            direction,
            text: form.is_text().then(TextDecoder::new),
            // A bare body buffers through the same decoder (`take_all`), bounded by hand.
            envelopes: EnvelopeDecoder::new(limit).with_end_frames(end_flags, end_limit),
            compression,
            limit,
            end_limit,
            pass_through: false,
            ended: false,
        }
    }

    /// Reads the other gRPC-Web form than the one the reader was made for (a text request
    /// answered in binary, or the reverse). Only before any data was read.
    pub(crate) fn set_grpc_web_form(&mut self, form: WireForm) {
        debug_assert!(matches!(form, WireForm::GrpcWeb | WireForm::GrpcWebText));
        self.form = form;
        self.text = form.is_text().then(TextDecoder::new);
    }

    pub(crate) fn set_compression(&mut self, compression: Option<Arc<dyn Compression>>) {
        self.compression = compression;
    }

    pub(crate) fn set_pass_through(&mut self, pass_through: bool) {
        self.pass_through = pass_through;
    }

    /// Adds a chunk to the buffered body (decoded first, for base64 text). Items are then
    /// read one at a time with [`next_item`](Self::next_item), straight into the caller's
    /// state: no queue between the two.
    pub(crate) fn push(&mut self, chunk: Bytes) -> Result<(), Rule> {
        let chunk = match &mut self.text {
            Some(text) => text.decode(&chunk)?,
            None => chunk,
        };
        if chunk.is_empty() {
            return Ok(());
        }
        if self.ended {
            return Err(Rule::DataAfterEnd);
        }
        self.envelopes.push(chunk);
        if self.form.is_enveloped() {
            return Ok(());
        }
        let size = self.envelopes.buffered_len();
        if size > self.limit {
            return Err(Rule::MessageTooLarge {
                size: size as u64,
                limit: self.limit,
            });
        }
        Ok(())
    }

    /// The next item the buffered data completes, or `None` until more arrives (a bare body
    /// has its one item only at its end: [`finish`](Self::finish)). After an error the reader
    /// must not be used again.
    pub(crate) fn next_item(&mut self) -> Result<Option<Inbound>, Rule> {
        if !self.form.is_enveloped() {
            return Ok(None);
        }
        let Some(envelope) = self.envelopes.decode()? else {
            return Ok(None);
        };
        if self.ended {
            return Err(Rule::DataAfterEnd);
        }
        let end_flag = self.end_flag();
        let flags = envelope.flags;
        if flags & !(FLAG_COMPRESSED | end_flag) != 0 {
            return Err(if flags & (FLAG_END_STREAM | FLAG_TRAILERS) != 0 {
                Rule::UnexpectedEndStream
            } else {
                Rule::InvalidEnvelopeFlags(flags)
            });
        }
        let compressed = flags & FLAG_COMPRESSED != 0;
        if compressed && self.compression.is_none() {
            return Err(Rule::CompressedWithoutEncoding);
        }
        let ends = end_flag != 0 && flags & end_flag != 0;
        if compressed && !ends && self.passes_through(&envelope.payload) {
            return Ok(Some(Inbound::Compressed(envelope.payload)));
        }
        let payload = if !compressed {
            envelope.payload
        } else if ends {
            self.decompress_bounded(envelope.payload, self.end_limit)
                .map_err(|rule| match rule {
                    Rule::MessageTooLarge { .. } => Rule::MetadataTooLarge {
                        limit: self.end_limit,
                    },
                    other => other,
                })?
        } else {
            self.decompress(envelope.payload)?
        };
        if !ends {
            return Ok(Some(Inbound::Message(payload)));
        }
        self.ended = true;
        Ok(Some(match self.form {
            WireForm::ConnectStreaming => Inbound::EndStream(payload),
            _ => Inbound::Trailers(payload),
        }))
    }

    /// The body ended: checks its framing (read every item first) and returns what the end
    /// completes (the message of a bare body).
    pub(crate) fn finish(&mut self) -> Result<Option<Inbound>, Rule> {
        if let Some(text) = &self.text {
            text.finish()?;
        }
        if self.form.is_enveloped() {
            self.envelopes.finish()?;
            return Ok(None);
        }
        let body = self.envelopes.take_all();
        Ok(Some(if self.passes_through(&body) {
            Inbound::Compressed(body)
        } else {
            Inbound::Message(self.decompress(body)?)
        }))
    }

    /// Takes the raw, undecoded remainder of the body (for non-enveloped error bodies).
    pub(crate) fn take_raw(&mut self) -> Bytes {
        self.envelopes.take_all()
    }

    /// The flag that ends a stream in this form and direction (0: none may).
    fn end_flag(&self) -> u8 {
        end_flag(self.form, self.direction)
    }

    /// Whether a compressed payload is handed over still compressed (pass-through, with a
    /// compression to name; empty payloads are never compressed).
    fn passes_through(&self, payload: &Bytes) -> bool {
        self.pass_through && self.compression.is_some() && !payload.is_empty()
    }

    /// Decompresses a message payload with the body's compression, bounded by the message
    /// limit (also for pass-through callers that need the plain message after all).
    pub(crate) fn decompress(&self, payload: Bytes) -> Result<Bytes, Rule> {
        self.decompress_bounded(payload, self.limit)
    }

    fn decompress_bounded(&self, payload: Bytes, limit: usize) -> Result<Bytes, Rule> {
        decompress_with(self.compression.as_ref(), payload, limit)
    }
}
