//! Response messages framed away from the call: [`frame_message`] frames one into any
//! buffer; a [`FramedRun`] frames a run of them into a scratch buffer and hands them over as
//! [`FramedMessages`], which [`ServerCall::send_framed_run`](crate::ServerCall::send_framed_run)
//! queues without reading them again (the run was framed here, under the call's limit).

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::{Codec, CodecError, CodecMessage};
use crate::error::UsageError;
use crate::internal::envelope::{PREFIX_LEN, encode_prefix};

/// Appends one response message, framed as an uncompressed envelope, to `buf`: room for the
/// prefix, the message `write` encodes (it must append only the message), then the prefix
/// filled in with its length. A message longer than `limit` (or than an envelope can carry)
/// is [`UsageError::MessageTooLarge`]; on any error `buf` is left as it was. What
/// [`ServerCall::send_message_with`](crate::ServerCall::send_message_with) writes into the
/// response body where the call writes in place, and what [`FramedRun::push_with`] appends.
pub fn frame_message(
    buf: &mut BytesMut,
    limit: Option<usize>,
    write: impl FnOnce(&mut BytesMut) -> Result<(), CodecError>,
) -> Result<(), UsageError> {
    let limit = envelope_limit(limit);
    let start = buf.len();
    buf.put_bytes(0, PREFIX_LEN);
    let written = write(buf);
    let len = buf.len() - start - PREFIX_LEN;
    let outcome = match written {
        Err(error) => Err(UsageError::from(error)),
        Ok(()) if len > limit => Err(UsageError::MessageTooLarge { size: len, limit }),
        // `len` fits the length field: it is at most `limit`.
        Ok(()) => {
            buf[start..start + PREFIX_LEN].copy_from_slice(&encode_prefix(0, len as u32));
            Ok(())
        }
    };
    if outcome.is_err() {
        buf.truncate(start);
    }
    outcome
}

/// The largest message an envelope may carry under `limit`: the length field holds a `u32`.
#[inline]
fn envelope_limit(limit: Option<usize>) -> usize {
    limit.unwrap_or(u32::MAX as usize).min(u32::MAX as usize)
}

/// A run of response messages being framed into a scratch buffer, away from the call (no
/// lock on it is needed while messages are encoded), under the call's
/// [send limit](crate::ServerCall::send_limit). [`finish`](Self::finish) hands the run over
/// as [`FramedMessages`] for [`ServerCall::send_framed_run`](crate::ServerCall::send_framed_run).
///
/// A message that fails to encode, or is over the limit, is not appended (the run keeps the
/// messages before it).
#[derive(Debug)]
pub struct FramedRun<'a> {
    buf: &'a mut BytesMut,
    limit: Option<usize>,
    messages: usize,
}

impl<'a> FramedRun<'a> {
    /// Starts a run in `buf`, scratch space whose contents are discarded, for a call whose
    /// send limit is `limit` ([`ServerCall::send_limit`](crate::ServerCall::send_limit)).
    pub fn new(buf: &'a mut BytesMut, limit: Option<usize>) -> Self {
        buf.clear();
        FramedRun {
            buf,
            limit,
            messages: 0,
        }
    }

    /// Makes room for at least `additional` more bytes.
    pub fn reserve(&mut self, additional: usize) {
        self.buf.reserve(additional);
    }

    /// Appends a message `write` encodes (see [`frame_message`]).
    pub fn push_with(
        &mut self,
        write: impl FnOnce(&mut BytesMut) -> Result<(), CodecError>,
    ) -> Result<(), UsageError> {
        frame_message(self.buf, self.limit, write)?;
        self.messages += 1;
        Ok(())
    }

    /// Appends `message` encoded with `codec`. Binary protobuf is measured first, so its
    /// prefix is written with the length it will have and an oversized message is refused
    /// before any of it is encoded.
    pub fn push_message<M: CodecMessage>(
        &mut self,
        codec: Codec,
        message: &M,
    ) -> Result<(), UsageError> {
        if codec != Codec::Proto {
            return self.push_with(|buf| codec.write_message(message, buf));
        }
        let limit = envelope_limit(self.limit);
        codec.write_proto_after(message, self.buf, |size, buf| {
            if size > limit {
                return Err(UsageError::MessageTooLarge { size, limit });
            }
            buf.reserve(PREFIX_LEN + size);
            // `size` fits the length field: it is at most `limit`.
            buf.extend_from_slice(&encode_prefix(0, size as u32));
            Ok(())
        })?;
        self.messages += 1;
        Ok(())
    }

    /// The bytes framed so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether no message is framed yet.
    pub fn is_empty(&self) -> bool {
        self.messages == 0
    }

    /// The number of messages framed so far.
    pub fn messages(&self) -> usize {
        self.messages
    }

    /// Ends the run: its messages, taken out of the scratch buffer (which keeps any spare
    /// room for the next run).
    pub fn finish(self) -> FramedMessages {
        FramedMessages {
            bytes: self.buf.split().freeze(),
            limit: self.limit,
            messages: self.messages,
        }
    }
}

/// Whole uncompressed envelopes framed by a [`FramedRun`]: for
/// [`ServerCall::send_framed_run`](crate::ServerCall::send_framed_run).
#[derive(Clone, Debug)]
pub struct FramedMessages {
    pub(crate) bytes: Bytes,
    /// The send limit the messages were framed under.
    pub(crate) limit: Option<usize>,
    pub(crate) messages: usize,
}

impl FramedMessages {
    /// The number of messages.
    pub fn messages(&self) -> usize {
        self.messages
    }

    /// The framed bytes.
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Whether the messages were framed under a limit no larger than `limit`, the call's.
    pub(crate) fn framed_within(&self, limit: Option<usize>) -> bool {
        match (limit, self.limit) {
            (None, _) => true,
            (Some(call), Some(run)) => run <= call,
            (Some(_), None) => false,
        }
    }
}
