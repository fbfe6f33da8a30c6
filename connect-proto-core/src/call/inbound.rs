//! Reading one direction of a call: body chunks in, messages (and end-of-stream frames) out.
//! Handles the three framings (bare unary body, envelopes, gRPC-Web text), flag rules per
//! protocol and direction, decompression bounded by the message limit.

use std::sync::Arc;

use bytes::Bytes;

use crate::call::output_queue::SmallQueue;
use crate::codec::EncodedMessage;
use crate::compression::{Compression, DecompressError};
use crate::envelope::{
    EnvelopeDecoder, FLAG_COMPRESSED, FLAG_END_STREAM, FLAG_TRAILERS, encode_envelope,
    encode_prefix,
};
use crate::error::{Rule, UsageError};
use crate::grpc_web::TextDecoder;
use crate::protocol::Protocol;

/// What a body carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// The whole body is one message (Connect unary).
    Bare,
    /// A sequence of envelopes.
    Enveloped,
}

/// One item read from a body.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Inbound {
    /// A message, decompressed.
    Message(Bytes),
    /// A Connect end-stream message (JSON, decompressed).
    EndStream(Bytes),
    /// A gRPC-Web trailer block.
    Trailers(Bytes),
}

/// The reading half of a call.
#[derive(Debug)]
pub(crate) struct Reader {
    protocol: Protocol,
    framing: Framing,
    is_response: bool,
    text: Option<TextDecoder>,
    envelopes: EnvelopeDecoder,
    compression: Option<Arc<dyn Compression>>,
    limit: usize,
    /// Whether decompression is left to the caller (pass-through proxies).
    pass_through: bool,
    /// Set once an end-of-stream frame was read; more data is an error.
    ended: bool,
}

impl Reader {
    pub(crate) fn new(
        protocol: Protocol,
        framing: Framing,
        is_response: bool,
        text: bool,
        compression: Option<Arc<dyn Compression>>,
        limit: usize,
    ) -> Self {
        Reader {
            protocol,
            framing,
            is_response,
            text: text.then(TextDecoder::new),
            // The bare framing buffers through the same decoder (`take_all`), bounded by hand.
            envelopes: EnvelopeDecoder::new(limit),
            compression,
            limit,
            pass_through: false,
            ended: false,
        }
    }

    pub(crate) fn set_compression(&mut self, compression: Option<Arc<dyn Compression>>) {
        self.compression = compression;
    }

    pub(crate) fn set_pass_through(&mut self, pass_through: bool) {
        self.pass_through = pass_through;
    }

    /// Adds a chunk and reads every complete item out of the buffered data.
    pub(crate) fn push(&mut self, chunk: Bytes, out: &mut SmallQueue<Inbound>) -> Result<(), Rule> {
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
        match self.framing {
            Framing::Bare => {
                let size = self.envelopes.buffered_len();
                if size > self.limit {
                    return Err(Rule::MessageTooLarge {
                        size: size as u64,
                        limit: self.limit,
                    });
                }
                Ok(())
            }
            Framing::Enveloped => self.drain_envelopes(out),
        }
    }

    /// The body ended: checks framing and yields what the end completes (the bare message).
    pub(crate) fn finish(&mut self, out: &mut SmallQueue<Inbound>) -> Result<(), Rule> {
        if let Some(text) = &self.text {
            text.finish()?;
        }
        match self.framing {
            Framing::Bare => {
                let body = self.envelopes.take_all();
                out.push_back(Inbound::Message(self.decompress(body)?));
                Ok(())
            }
            Framing::Enveloped => self.envelopes.finish(),
        }
    }

    /// Takes the raw, undecoded remainder of the body (for non-enveloped error bodies).
    pub(crate) fn take_raw(&mut self) -> Bytes {
        self.envelopes.take_all()
    }

    fn drain_envelopes(&mut self, out: &mut SmallQueue<Inbound>) -> Result<(), Rule> {
        while let Some(envelope) = self.envelopes.decode()? {
            if self.ended {
                return Err(Rule::DataAfterEnd);
            }
            let flags = envelope.flags;
            let end_flag = match (self.protocol, self.is_response) {
                (Protocol::Connect, true) => FLAG_END_STREAM,
                (Protocol::GrpcWeb, true) => FLAG_TRAILERS,
                _ => 0,
            };
            if flags & !(FLAG_COMPRESSED | end_flag) != 0 {
                return Err(if flags & (FLAG_END_STREAM | FLAG_TRAILERS) != 0 {
                    Rule::UnexpectedEndStream
                } else {
                    Rule::InvalidEnvelopeFlags(flags)
                });
            }
            let payload = if flags & FLAG_COMPRESSED != 0 {
                if self.compression.is_none() {
                    return Err(Rule::CompressedWithoutEncoding);
                }
                if self.pass_through && end_flag & flags == 0 {
                    envelope.payload
                } else {
                    self.decompress(envelope.payload)?
                }
            } else {
                envelope.payload
            };
            if end_flag != 0 && flags & end_flag != 0 {
                self.ended = true;
                out.push_back(match self.protocol {
                    Protocol::GrpcWeb => Inbound::Trailers(payload),
                    _ => Inbound::EndStream(payload),
                });
            } else {
                out.push_back(Inbound::Message(payload));
            }
        }
        Ok(())
    }

    pub(crate) fn decompress(&self, payload: Bytes) -> Result<Bytes, Rule> {
        // Zero-length payloads are never decompressed (Connect requires it; harmless elsewhere).
        match &self.compression {
            Some(alg) if !payload.is_empty() && !self.pass_through => {
                alg.decompress(&payload, self.limit).map_err(|e| match e {
                    DecompressError::LimitExceeded { limit } => Rule::MessageTooLarge {
                        size: limit as u64 + 1,
                        limit,
                    },
                    other => Rule::Decompression(other.to_string()),
                })
            }
            _ => Ok(payload),
        }
    }
}

/// Frames one outgoing message for the protocol: compression (when negotiated and the message
/// is at least `min_bytes`), the envelope (unless bare), and gRPC-Web text encoding. An
/// uncompressed message encoded with room for the prefix is framed in place, without a copy.
pub(crate) fn frame_message(
    message: EncodedMessage,
    enveloped: bool,
    compression: Option<&Arc<dyn Compression>>,
    min_bytes: usize,
    text: bool,
) -> Result<(Bytes, bool), UsageError> {
    let len = message.len();
    let compress = compression
        // With a threshold of 0 even empty messages are compressed, as peers that check the
        // request's declared encoding expect.
        .filter(|_| len >= min_bytes && (min_bytes == 0 || len > 0));
    let (flags, body) = match compress {
        Some(alg) => (
            FLAG_COMPRESSED,
            alg.compress(message.as_bytes())
                .map_err(|e| UsageError::Compression(e.to_string()))?,
        ),
        None if enveloped => {
            let len = u32::try_from(len).map_err(|_| UsageError::MessageTooLarge {
                size: len,
                limit: u32::MAX as usize,
            })?;
            match message.into_framed(encode_prefix(0, len)) {
                Ok(framed) => return Ok((text_encoded(framed, text), false)),
                Err(message) => (0, message.into_bytes()),
            }
        }
        None => (0, message.into_bytes()),
    };
    let framed = if enveloped {
        frame_envelope(flags, &body)?
    } else {
        body
    };
    Ok((text_encoded(framed, text), flags & FLAG_COMPRESSED != 0))
}

fn text_encoded(framed: Bytes, text: bool) -> Bytes {
    if text {
        crate::grpc_web::encode_text_chunk(&framed)
    } else {
        framed
    }
}

/// One envelope as a contiguous buffer, with the size checked against the `u32` length field.
pub(crate) fn frame_envelope(flags: u8, body: &[u8]) -> Result<Bytes, UsageError> {
    encode_envelope(flags, body).map_err(|size| UsageError::MessageTooLarge {
        size,
        limit: u32::MAX as usize,
    })
}
