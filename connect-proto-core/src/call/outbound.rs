//! Writing one direction of a call: a message becomes a framed body chunk (compression when
//! negotiated, the envelope unless the form is bare, base64 for gRPC-Web text); end-of-stream
//! frames are framed here too.

use std::sync::Arc;

use bytes::Bytes;

use crate::codec::EncodedMessage;
use crate::compression::Compression;
use crate::error::UsageError;
use crate::internal::envelope::{FLAG_COMPRESSED, encode_envelope, encode_prefix};
use crate::protocol::WireForm;

/// A message to send.
pub(crate) enum Outgoing {
    /// Encoded with the call's codec; compressed here when negotiated.
    Encoded(EncodedMessage),
    /// Already compressed with the call's compression (a pass-through proxy forwarding what
    /// it received).
    Compressed(Bytes),
}

impl Outgoing {
    /// Its size as given (compressed size for an already-compressed payload).
    pub(crate) fn len(&self) -> usize {
        match self {
            Outgoing::Encoded(message) => message.len(),
            Outgoing::Compressed(payload) => payload.len(),
        }
    }
}

/// Frames an outgoing message for `form` (see [`frame_message`]); an already-compressed
/// payload is enveloped with the compressed flag as it is, which needs a negotiated
/// compression.
pub(crate) fn frame_outgoing(
    outgoing: Outgoing,
    form: WireForm,
    compression: Option<&Arc<dyn Compression>>,
    min_bytes: usize,
) -> Result<(Bytes, bool), UsageError> {
    match outgoing {
        Outgoing::Encoded(message) => frame_message(message, form, compression, min_bytes),
        Outgoing::Compressed(payload) => {
            if compression.is_none() {
                return Err(UsageError::Compression(
                    "a compressed message needs a negotiated compression".to_owned(),
                ));
            }
            let framed = if form.is_enveloped() {
                frame_envelope(FLAG_COMPRESSED, &payload)?
            } else {
                payload
            };
            Ok((text_encoded(framed, form.is_text()), true))
        }
    }
}

/// Frames one outgoing message for `form`: compression (when negotiated and the message is at
/// least `min_bytes`), the envelope (unless bare), and gRPC-Web text encoding. An uncompressed
/// message encoded with room for the prefix is framed in place, without a copy. Returns the
/// chunk and whether it is compressed.
pub(crate) fn frame_message(
    message: EncodedMessage,
    form: WireForm,
    compression: Option<&Arc<dyn Compression>>,
    min_bytes: usize,
) -> Result<(Bytes, bool), UsageError> {
    let (enveloped, text) = (form.is_enveloped(), form.is_text());
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

/// An end-of-stream frame (a Connect end-stream message, a gRPC-Web trailer block): never
/// compressed, base64 for gRPC-Web text. Its payloads are small and built by the core, so the
/// envelope's length field always fits.
pub(crate) fn frame_end(flags: u8, payload: &[u8], form: WireForm) -> Bytes {
    let frame = encode_envelope(flags, payload).unwrap_or_default();
    text_encoded(frame, form.is_text())
}

/// A body rendered whole (an error response's), base64 for gRPC-Web text.
pub(crate) fn text_encoded_for(body: Bytes, form: WireForm) -> Bytes {
    text_encoded(body, form.is_text())
}

fn text_encoded(framed: Bytes, text: bool) -> Bytes {
    if text {
        crate::internal::grpc_web::encode_text_chunk(&framed)
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
