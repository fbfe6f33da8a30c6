//! [`IncomingBody`]: the request body the server hands to the service, over HTTP/1.1
//! (hyper's) or HTTP/2 (an `h2` stream), with its errors made precise: a stream the client
//! reset is a [`TransportError::reset`], anything else a broken body.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use connect_tower::TransportError;
use http_body::{Body, Frame, SizeHint};

use super::http1::Activity;
use crate::BoxError;

/// The body of a request received by [`Server`](super::Server).
///
/// An HTTP/2 stream reset by the client fails with a
/// [`TransportError::reset`] carrying its error code (`connect-tower` then treats the call as
/// cancelled); every other failure (an HTTP/1.1 body shorter than its `content-length`, a
/// malformed chunk, a broken connection) is passed through, and `connect-tower` answers it as
/// a broken request (`invalid_argument`).
pub struct IncomingBody {
    kind: Kind,
}

enum Kind {
    Http1(hyper::body::Incoming, Arc<Activity>),
    Http2 {
        recv: h2::RecvStream,
        data_done: bool,
        /// A data frame was handed on: only the first is checked for having ended the stream
        /// (a unary request's one frame), so streaming requests pay no extra look per frame.
        frame_seen: bool,
    },
    Done,
}

impl IncomingBody {
    pub(super) fn http1(body: hyper::body::Incoming, activity: Arc<Activity>) -> Self {
        if body.is_end_stream() {
            activity.body_read();
        }
        IncomingBody {
            kind: Kind::Http1(body, activity),
        }
    }

    pub(super) fn http2(recv: h2::RecvStream) -> Self {
        let data_done = recv.is_end_stream();
        IncomingBody {
            kind: Kind::Http2 {
                recv,
                data_done,
                frame_seen: false,
            },
        }
    }
}

impl std::fmt::Debug for IncomingBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let version = match self.kind {
            Kind::Http1(..) => "HTTP/1.1",
            Kind::Http2 { .. } => "HTTP/2",
            Kind::Done => "done",
        };
        f.debug_tuple("IncomingBody").field(&version).finish()
    }
}

impl Body for IncomingBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match &mut this.kind {
            Kind::Http1(body, activity) => {
                let polled = Pin::new(body).poll_frame(cx);
                if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
                    activity.body_read();
                }
                polled.map(|frame| frame.map(|frame| frame.map_err(Into::into)))
            }
            Kind::Http2 {
                recv,
                data_done,
                frame_seen,
            } => {
                if !*data_done {
                    match recv.poll_data(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Some(Ok(data))) => {
                            // Handed on, so the peer may send more (flow control).
                            let _ = recv.flow_control().release_capacity(data.len());
                            if !std::mem::replace(frame_seen, true) && recv.is_end_stream() {
                                // The first frame ended the stream (no trailers): the next
                                // poll answers the end without asking h2 twice more.
                                this.kind = Kind::Done;
                            }
                            return Poll::Ready(Some(Ok(Frame::data(data))));
                        }
                        Poll::Ready(Some(Err(error))) => {
                            this.kind = Kind::Done;
                            return Poll::Ready(Some(Err(stream_error(error))));
                        }
                        Poll::Ready(None) => *data_done = true,
                    }
                }
                let polled = recv.poll_trailers(cx);
                match polled {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(result) => {
                        this.kind = Kind::Done;
                        Poll::Ready(match result {
                            Ok(Some(trailers)) => Some(Ok(Frame::trailers(trailers))),
                            Ok(None) => None,
                            Err(error) => Some(Err(stream_error(error))),
                        })
                    }
                }
            }
            Kind::Done => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Http1(body, _) => body.is_end_stream(),
            Kind::Http2 { recv, .. } => recv.is_end_stream(),
            Kind::Done => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Http1(body, _) => body.size_hint(),
            Kind::Http2 { .. } => SizeHint::default(),
            Kind::Done => SizeHint::with_exact(0),
        }
    }
}

/// An HTTP/2 receive error: the stream (or the connection under it) is gone, so whoever
/// reads the body treats it as a reset (`CANCEL` when the peer gave no reason).
fn stream_error(error: h2::Error) -> BoxError {
    let code = error.reason().unwrap_or(h2::Reason::CANCEL);
    Box::new(TransportError::reset(u32::from(code), error.to_string()))
}
