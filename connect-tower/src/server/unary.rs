//! The unary fast path. A unary call served by a dispatcher that
//! [`dispatches_unary`](super::Dispatch::dispatches_unary) is not given a shared call state:
//! its driver owns the core's call, reads the one request message itself, and only then hands
//! the handler a [`UnaryCall`] — the context and the message's bytes. The handler's future
//! ([`UnaryFuture`]) returns the encoded reply, which the driver writes. No lock, no state the
//! handler could reach from another task; deadlines, the drain deadline, panics, observers and
//! tracing are the driver's, as for every other call.
//!
//! Calls through interceptors take the general path (their request hooks may answer the call
//! before any message is read).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use connect_proto_core::codec::EncodedMessage;
use connect_proto_core::{Codec, MethodSpec, Status};
use http::HeaderMap;

use crate::codec::{DecodeFn, EncodeMessage};
use crate::message::{Request, RequestContext, Response};
use crate::server::shared::{CallCell, PendingUnary};

/// A unary call whose request message has arrived, as
/// [`Dispatch::dispatch_unary`](super::Dispatch::dispatch_unary) gets it: pass it to
/// [`unary_call`].
pub struct UnaryCall {
    pub(crate) context: RequestContext,
    pub(crate) message: Bytes,
    pub(crate) limit: usize,
}

impl UnaryCall {
    /// The method being called.
    pub fn method(&self) -> &MethodSpec {
        self.context.method()
    }

    /// The call's context.
    pub fn context(&self) -> &RequestContext {
        &self.context
    }
}

impl UnaryCall {
    /// The request, its message decoded with `decode` (a message that does not decode is the
    /// core's `invalid_argument` for it, as on every path).
    pub fn into_request<T>(self, decode: DecodeFn<T>) -> Result<Request<T>, Status> {
        let UnaryCall {
            context,
            message,
            limit,
        } = self;
        match decode(context.codec(), message, limit) {
            Ok(message) => Ok(Request::from_parts(context, message)),
            Err(error) => Err(super::handler::invalid_request(error)),
        }
    }
}

impl fmt::Debug for UnaryCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnaryCall")
            .field("method", self.context.method())
            .field("message_len", &self.message.len())
            .finish_non_exhaustive()
    }
}

/// A unary handler's answer, encoded: the response message with its headers and trailers.
pub struct UnaryReply {
    message: EncodedMessage,
    headers: HeaderMap,
    trailers: HeaderMap,
}

impl UnaryReply {
    /// Encodes a handler's response with the call's codec (`internal` if it cannot be).
    pub fn encode<Resp: EncodeMessage>(
        codec: Codec,
        response: Response<Resp>,
    ) -> Result<Self, Status> {
        let (message, headers, trailers) = response.into_parts();
        let message = message
            .encode_message(codec)
            .map_err(crate::codec::encoding_failed)?;
        Ok(UnaryReply {
            message,
            headers,
            trailers,
        })
    }

    pub(crate) fn into_parts(self) -> (EncodedMessage, HeaderMap, HeaderMap) {
        (self.message, self.headers, self.trailers)
    }
}

impl fmt::Debug for UnaryReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnaryReply")
            .field("headers", &self.headers)
            .field("trailers", &self.trailers)
            .finish_non_exhaustive()
    }
}

/// The future of a unary handler on the fast path.
pub type UnaryFuture = Pin<Box<dyn Future<Output = Result<UnaryReply, Status>> + Send>>;

/// Runs a unary handler on a call whose message has arrived: decodes the request (a message
/// that does not decode fails the call with the core's status for it), runs `handler`, and
/// encodes its response.
pub async fn unary_call<Req, Resp, F, Fut>(
    call: UnaryCall,
    decode: DecodeFn<Req>,
    handler: F,
) -> Result<UnaryReply, Status>
where
    F: FnOnce(Request<Req>) -> Fut,
    Fut: Future<Output = Result<Response<Resp>, Status>>,
    Resp: EncodeMessage,
{
    let codec = call.context.codec();
    let request = call.into_request(decode)?;
    let response = handler(request).await?;
    UnaryReply::encode(codec, response)
}

/// Answers `unimplemented` on the fast path (for paths a dispatcher does not serve).
pub async fn unimplemented_unary(call: UnaryCall) -> Result<UnaryReply, Status> {
    Err(super::handler::not_implemented(call.method()))
}

/// The dispatcher, as the driver of a fast-path call holds it (the service's type erased).
pub(crate) trait UnaryDispatcher: Send + Sync + 'static {
    fn dispatch_unary(&self, call: UnaryCall) -> UnaryFuture;
}

/// Advances a fast-path call: reads the request until its end, dispatches the handler with
/// the message, and writes the handler's reply. `Ready` once the call needs nothing more
/// from it (answered, or ended by the core: a bad request, the client gone).
pub(crate) fn poll_unary(
    cell: &mut CallCell,
    handler: &mut Option<UnaryFuture>,
    cx: &mut Context<'_>,
) -> Poll<()> {
    let CallCell::Owned(owned) = cell else {
        // Fast-path tasks are only made with an owned cell.
        return Poll::Ready(());
    };
    loop {
        if let Some(future) = handler {
            let outcome = match future.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(outcome) => outcome,
            };
            *handler = None;
            owned.state.reply(outcome);
            return Poll::Ready(());
        }
        let message = match owned.state.poll_receive_one(&mut owned.message, cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(message) => message,
        };
        let (Some(message), Some(pending)) = (message, owned.pending.take()) else {
            // The core ended the call (its response is queued), or no message and no error
            // from it: the driver ends the call.
            return Poll::Ready(());
        };
        let PendingUnary {
            context,
            limit,
            dispatcher,
        } = pending;
        *handler = Some(dispatcher.dispatch_unary(UnaryCall {
            context,
            message,
            limit,
        }));
    }
}
