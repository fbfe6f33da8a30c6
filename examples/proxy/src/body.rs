//! The body the proxy writes on both legs: frames pushed by the call's run loop through a
//! bounded channel (so a slow reader slows the loop down), ended by closing the channel or
//! broken by an error frame (which makes hyper reset the stream).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

/// A boxed error, as bodies carry.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One item of a [`ChannelBody`].
pub(crate) type Item = Result<Frame<Bytes>, BoxError>;

/// Frames in flight per body: with chunks of up to 16 KiB (what the core joins small messages
/// into) this bounds what one call holds for a slow peer.
pub(crate) const FRAMES_IN_FLIGHT: usize = 16;

/// A body fed from a channel: a complete body (`full`), or one the run loop writes.
#[derive(Debug)]
pub struct ChannelBody {
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Full(Option<Bytes>),
    Channel(mpsc::Receiver<Item>),
}

impl ChannelBody {
    /// A body and the sender that writes it.
    pub(crate) fn channel() -> (mpsc::Sender<Item>, ChannelBody) {
        let (tx, rx) = mpsc::channel(FRAMES_IN_FLIGHT);
        (
            tx,
            ChannelBody {
                kind: Kind::Channel(rx),
            },
        )
    }

    /// A complete body.
    pub(crate) fn full(bytes: Bytes) -> ChannelBody {
        ChannelBody {
            kind: Kind::Full((!bytes.is_empty()).then_some(bytes)),
        }
    }
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.kind {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Channel(rx) => rx.poll_recv(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.kind, Kind::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Channel(_) => SizeHint::default(),
        }
    }
}
