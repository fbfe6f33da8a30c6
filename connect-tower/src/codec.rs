//! Turning message bytes into typed messages and back, with the status codes the protocol
//! wants on failure. Received messages (handler requests, client responses) decode either into
//! owned buffa messages or into zero-copy views (`M::ViewHandle`, backed by the received
//! `Bytes`).

use buffa::view::HasMessageView;
use bytes::{Bytes, BytesMut};
use connect_proto_core::codec::{CodecMessage, EncodedMessage};
use connect_proto_core::{Code, Codec, Status};

/// How a handler's request type is decoded: codec, message bytes, size limit.
pub type DecodeFn<T> = fn(Codec, Bytes, usize) -> Result<T, Status>;

/// Decodes an owned message; failures are `invalid_argument` (the peer sent a bad message).
pub fn decode_owned<M: CodecMessage>(
    codec: Codec,
    bytes: Bytes,
    limit: usize,
) -> Result<M, Status> {
    codec
        .decode(&bytes, limit)
        .map_err(|e| Status::new(Code::InvalidArgument, e.to_string()))
}

/// Decodes a zero-copy view handle of `M`. Binary protobuf borrows from `bytes`; JSON is
/// decoded owned and re-encoded once, since JSON has no zero-copy form.
pub fn decode_view<M>(codec: Codec, bytes: Bytes, limit: usize) -> Result<M::ViewHandle, Status>
where
    M: CodecMessage + HasMessageView,
{
    let invalid = |e: &dyn std::fmt::Display| {
        Status::new(Code::InvalidArgument, format!("unmarshal {codec}: {e}"))
    };
    let bytes = match codec {
        Codec::Json => {
            let owned: M = decode_owned(codec, bytes, limit)?;
            buffa::Message::encode_to_bytes(&owned)
        }
        _ => bytes,
    };
    let options =
        buffa::DecodeOptions::new().with_max_message_size(limit.max(bytes.len()).min(0x7FFF_FFFF));
    M::decode_view_handle_with_options(bytes, &options).map_err(|e| invalid(&e))
}

/// A message type a client receives: any buffa message (decoded owned), or [`View<M>`]
/// (decoded as a zero-copy view over the received bytes).
pub trait DecodeMessage: Send + Sized + 'static {
    /// Decodes one received message of at most `limit` bytes; failures are
    /// `invalid_argument` (the peer sent a bad message).
    fn decode_message(codec: Codec, bytes: Bytes, limit: usize) -> Result<Self, Status>;
}

impl<M: CodecMessage> DecodeMessage for M {
    fn decode_message(codec: Codec, bytes: Bytes, limit: usize) -> Result<Self, Status> {
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
    fn decode_message(codec: Codec, bytes: Bytes, limit: usize) -> Result<Self, Status> {
        decode_view::<M>(codec, bytes, limit).map(View)
    }
}

/// A message type that can be sent: anything that can be encoded with a call's codec.
pub trait EncodeMessage: Send + 'static {
    /// Encodes the message.
    fn encode(&self, codec: Codec) -> Result<Bytes, Status>;

    /// Encodes the message for sending. The default wraps [`encode`](Self::encode); buffa
    /// messages encode after room reserved for the envelope prefix, so framing does not copy
    /// them (see [`EncodedMessage`]).
    fn encode_message(&self, codec: Codec) -> Result<EncodedMessage, Status> {
        self.encode(codec).map(EncodedMessage::from)
    }

    /// Encodes one message of a stream, with `buf` as reusable scratch space (see
    /// [`Codec::encode_message_into`]). The default ignores `buf`.
    fn encode_message_into(
        &self,
        codec: Codec,
        buf: &mut BytesMut,
    ) -> Result<EncodedMessage, Status> {
        let _ = buf;
        self.encode_message(codec)
    }
}

impl<M: CodecMessage> EncodeMessage for M {
    fn encode(&self, codec: Codec) -> Result<Bytes, Status> {
        codec
            .encode(self)
            .map_err(|e| Status::new(Code::Internal, e.to_string()))
    }

    fn encode_message(&self, codec: Codec) -> Result<EncodedMessage, Status> {
        codec
            .encode_message(self)
            .map_err(|e| Status::new(Code::Internal, e.to_string()))
    }

    fn encode_message_into(
        &self,
        codec: Codec,
        buf: &mut BytesMut,
    ) -> Result<EncodedMessage, Status> {
        codec
            .encode_message_into(self, buf)
            .map_err(|e| Status::new(Code::Internal, e.to_string()))
    }
}
