//! The I/O of one server connection: the bytes read while detecting the HTTP version are
//! replayed first, and closing an HTTP/1.1 connection is a *lingering close*.
//!
//! A server that answers before reading a request body (an early error, a body over the limit)
//! and then closes the socket with unread input in its receive buffer makes the kernel send a
//! TCP reset; the reset can reach the client before it read the response, and the response is
//! lost. A lingering close sends FIN first and then reads (and discards) what the client still
//! sends, until it closes too or a time bound passes, so the client sees the whole response.

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use std::sync::Arc;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::http1::Activity;

/// How long a lingering close may keep reading in total, and between two reads.
#[derive(Clone, Copy, Debug)]
pub(super) struct Linger {
    pub(super) total: Duration,
    pub(super) idle: Duration,
}

pin_project_lite::pin_project! {
    /// A connection's socket (TCP or TLS) as the HTTP layer sees it.
    pub(super) struct ServerIo<I> {
        #[pin]
        inner: I,
        // Bytes read before the HTTP layer took over, returned by the first reads.
        prefix: Bytes,
        linger: Option<Linger>,
        lingering: Option<Lingering>,
        // Told of every read (HTTP/1.1: the start of the next request head).
        activity: Option<Arc<Activity>>,
    }
}

struct Lingering {
    /// The write side is closed (FIN or TLS close_notify sent).
    write_closed: bool,
    ends: Instant,
    idle: Pin<Box<Sleep>>,
    idle_for: Duration,
}

impl<I> ServerIo<I> {
    pub(super) fn new(
        inner: I,
        prefix: Bytes,
        linger: Option<Linger>,
        activity: Option<Arc<Activity>>,
    ) -> Self {
        ServerIo {
            inner,
            prefix,
            linger,
            lingering: None,
            activity,
        }
    }
}

impl<I: AsyncRead> AsyncRead for ServerIo<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let polled = this.inner.poll_read(cx, buf);
        if let Some(activity) = this.activity {
            if buf.filled().len() > before {
                activity.read();
            }
        }
        polled
    }
}

impl<I: AsyncRead + AsyncWrite> AsyncWrite for ServerIo<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    /// Closes the write side, then (with a linger configured) reads and discards until the
    /// peer closes too, an error, or the linger bounds pass.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut this = self.project();
        if let Some(activity) = this.activity.take() {
            // Closing: the connection's own timers are over, the linger bounds what is left.
            activity.closing();
        }
        let Some(linger) = *this.linger else {
            return this.inner.poll_shutdown(cx);
        };
        let state = this.lingering.get_or_insert_with(|| Lingering {
            write_closed: false,
            ends: Instant::now() + linger.total,
            idle: Box::pin(tokio::time::sleep(linger.idle)),
            idle_for: linger.idle,
        });
        if !state.write_closed {
            match this.inner.as_mut().poll_shutdown(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Ready(Ok(())) => state.write_closed = true,
            }
        }
        let mut scratch = [0u8; 4096];
        loop {
            if state.idle.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ok(()));
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match this.inner.as_mut().poll_read(cx, &mut buf) {
                Poll::Pending => return Poll::Pending,
                // The peer closed (or the connection broke): nothing left to protect.
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => {
                    // Data keeps coming: discard it, and wait for more up to the bounds.
                    let next = (Instant::now() + state.idle_for).min(state.ends);
                    state.idle.as_mut().reset(next);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn lingering_close_waits_for_the_peer_within_bounds() {
        let linger = Linger {
            total: Duration::from_secs(1),
            idle: Duration::from_millis(200),
        };
        // A silent peer: the close ends after the idle bound.
        let (ours, _theirs) = tokio::io::duplex(1024);
        let mut io = ServerIo::new(ours, Bytes::new(), Some(linger), None);
        let started = std::time::Instant::now();
        io.shutdown().await.unwrap();
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(150) && took < Duration::from_millis(900),
            "{took:?}"
        );

        // A peer that keeps sending: the close ends after the total bound.
        let (ours, mut theirs) = tokio::io::duplex(1024);
        let sender = tokio::spawn(async move {
            while theirs.write_all(&[0u8; 64]).await.is_ok() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        let mut io = ServerIo::new(ours, Bytes::new(), Some(linger), None);
        let started = std::time::Instant::now();
        io.shutdown().await.unwrap();
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(2),
            "{took:?}"
        );
        sender.abort();

        // A peer that closes: at once.
        let (ours, theirs) = tokio::io::duplex(1024);
        drop(theirs);
        let mut io = ServerIo::new(ours, Bytes::new(), Some(linger), None);
        let started = std::time::Instant::now();
        io.shutdown().await.unwrap();
        assert!(started.elapsed() < Duration::from_millis(100));
        let mut rest = Vec::new();
        let _ = io.read_to_end(&mut rest).await;
    }
}
