//! Turning message bytes into typed messages and back. Failures are [`CodecError`]s; the
//! status a call ends with is chosen by the core ([`Rule::InvalidMessage`] for a received
//! message, by the side that sent it; [`UsageError::Encoding`] for one being sent), never
//! here. Received messages (handler requests, client responses) decode either into owned
//! buffa messages or into zero-copy views (`M::ViewHandle`, backed by the received `Bytes`).
//!
//! # The message boundary
//!
//! A message type crosses into this crate through two traits and nothing else:
//! [`EncodeMessage`] (a handler's responses, a client's requests) and [`DecodeMessage`] (a
//! client's responses; a handler's requests through a [`DecodeFn`], which generated code
//! and [`Routes`](crate::server::Routes) take from `DecodeMessage::decode_message`). Both
//! speak bytes and a [`Codec`], and fail with a [`CodecError`]. buffa messages implement
//! both (every codec, views included); another protobuf library's messages implement them
//! through a wrapper type of their crate (`examples/prost-adapter` does it for prost, binary
//! only, with JSON failing with a clear error).
//!
//! [`Rule::InvalidMessage`]: connect_proto_core::Rule::InvalidMessage
//! [`UsageError::Encoding`]: connect_proto_core::UsageError::Encoding

use buffa::view::HasMessageView;
use bytes::{Bytes, BytesMut};
use connect_proto_core::call::FramedRun;
use connect_proto_core::codec::CodecMessage;
pub use connect_proto_core::codec::{CodecError, EncodedMessage};
use connect_proto_core::{Codec, UsageError};

/// How a handler's request type is decoded: codec, message bytes, size limit.
pub type DecodeFn<T> = fn(Codec, Bytes, usize) -> Result<T, CodecError>;

/// Decodes an owned message.
pub fn decode_owned<M: CodecMessage>(
    codec: Codec,
    bytes: Bytes,
    limit: usize,
) -> Result<M, CodecError> {
    codec.decode(&bytes, limit)
}

/// Decodes a zero-copy view handle of `M`. Binary protobuf borrows from `bytes`; JSON is
/// decoded owned and re-encoded once, since JSON has no zero-copy form.
pub fn decode_view<M>(codec: Codec, bytes: Bytes, limit: usize) -> Result<M::ViewHandle, CodecError>
where
    M: CodecMessage + HasMessageView,
{
    let bytes = match codec {
        Codec::Json => {
            let owned: M = decode_owned(codec, bytes, limit)?;
            buffa::Message::encode_to_bytes(&owned)
        }
        _ => bytes,
    };
    let options =
        buffa::DecodeOptions::new().with_max_message_size(limit.max(bytes.len()).min(0x7FFF_FFFF));
    M::decode_view_handle_with_options(bytes, &options)
        .map_err(|e| CodecError::decoding(codec, e.to_string()))
}

/// A message type a client receives: any buffa message (decoded owned), or [`View<M>`]
/// (decoded as a zero-copy view over the received bytes).
pub trait DecodeMessage: Send + Sized + 'static {
    /// Decodes one received message of at most `limit` bytes.
    fn decode_message(codec: Codec, bytes: Bytes, limit: usize) -> Result<Self, CodecError>;
}

impl<M: CodecMessage> DecodeMessage for M {
    fn decode_message(codec: Codec, bytes: Bytes, limit: usize) -> Result<Self, CodecError> {
        decode_owned(codec, bytes, limit)
    }
}

/// A received message as a zero-copy view: `M::ViewHandle` (for a message `Foo`, the
/// generated `FooOwnedView`), backed by the response body's bytes. Binary protobuf is not
/// copied; JSON is decoded owned and re-encoded once, as for handlers (see [`decode_view`]).
///
/// Ask a client for views by naming `View<Foo>` as the response type, e.g.
/// `client.unary::<FooRequest, View<Foo>>(&METHOD, request, options)`; the view's fields are
/// reached through `Deref` to the handle.
pub struct View<M: HasMessageView>(M::ViewHandle);

impl<M: HasMessageView> View<M> {
    /// The view handle.
    pub fn into_inner(self) -> M::ViewHandle {
        self.0
    }
}

impl<M: HasMessageView> std::ops::Deref for View<M> {
    type Target = M::ViewHandle;

    fn deref(&self) -> &M::ViewHandle {
        &self.0
    }
}

impl<M: HasMessageView> std::fmt::Debug for View<M>
where
    M::ViewHandle: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("View").field(&self.0).finish()
    }
}

impl<M: CodecMessage + HasMessageView> DecodeMessage for View<M> {
    fn decode_message(codec: Codec, bytes: Bytes, limit: usize) -> Result<Self, CodecError> {
        decode_view::<M>(codec, bytes, limit).map(View)
    }
}

/// A message type that can be sent: anything that can be encoded with a call's codec.
/// A failure ends the call (or fails the send) as
/// [`UsageError::Encoding`](connect_proto_core::UsageError::Encoding).
pub trait EncodeMessage: Send + 'static {
    /// Encodes the message.
    fn encode(&self, codec: Codec) -> Result<Bytes, CodecError>;

    /// Encodes the message for sending. The default wraps [`encode`](Self::encode); buffa
    /// messages encode after room reserved for the envelope prefix, so framing does not copy
    /// them (see [`EncodedMessage`]).
    fn encode_message(&self, codec: Codec) -> Result<EncodedMessage, CodecError> {
        self.encode(codec).map(EncodedMessage::from)
    }

    /// Encodes one message of a stream, with `buf` as reusable scratch space (see
    /// [`Codec::encode_message_into`]). The default ignores `buf`.
    fn encode_message_into(
        &self,
        codec: Codec,
        buf: &mut BytesMut,
    ) -> Result<EncodedMessage, CodecError> {
        let _ = buf;
        self.encode_message(codec)
    }

    /// Appends the encoded message, and nothing else, to `buf`: how streamed messages are
    /// written straight into the response body (see
    /// [`ServerCall::send_message_with`](connect_proto_core::ServerCall::send_message_with)).
    /// The default copies what [`encode`](Self::encode) returns; buffa messages encode in
    /// place.
    fn write_message(&self, codec: Codec, buf: &mut BytesMut) -> Result<(), CodecError> {
        buf.extend_from_slice(&self.encode(codec)?);
        Ok(())
    }

    /// Appends the message, framed, to a run of streamed messages (see
    /// [`FramedRun`]). The default frames what [`write_message`](Self::write_message)
    /// writes; buffa messages are measured first and framed with their length up front.
    fn frame_into(&self, codec: Codec, run: &mut FramedRun<'_>) -> Result<(), UsageError> {
        run.push_with(|buf| self.write_message(codec, buf))
    }
}

impl<M: CodecMessage> EncodeMessage for M {
    fn encode(&self, codec: Codec) -> Result<Bytes, CodecError> {
        codec.encode(self)
    }

    fn encode_message(&self, codec: Codec) -> Result<EncodedMessage, CodecError> {
        codec.encode_message(self)
    }

    fn encode_message_into(
        &self,
        codec: Codec,
        buf: &mut BytesMut,
    ) -> Result<EncodedMessage, CodecError> {
        codec.encode_message_into(self, buf)
    }

    fn write_message(&self, codec: Codec, buf: &mut BytesMut) -> Result<(), CodecError> {
        codec.write_message(self, buf)
    }

    fn frame_into(&self, codec: Codec, run: &mut FramedRun<'_>) -> Result<(), UsageError> {
        run.push_message(codec, self)
    }
}

/// The status of a message that could not be encoded for sending.
#[cfg(any(feature = "server", feature = "client"))]
pub(crate) fn encoding_failed(error: CodecError) -> connect_proto_core::Status {
    connect_proto_core::Status::from(connect_proto_core::UsageError::from(error))
}
