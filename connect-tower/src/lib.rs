//! ConnectRPC, gRPC and gRPC-Web as tower services.
//!
//! # Contract
//!
//! This crate drives the Sans-IO state machines of [`connect_proto_core`] from tower: it owns
//! no socket and no runtime, writes no header name, envelope byte or status mapping of its own,
//! and is generic over any `http_body::Body` and any tower transport. Timers come from a
//! runtime adapter through [`rt::Timer`].
//!
//! - [`server`]: handler shapes for the four RPC types, [`server::Dispatch`] (generated
//!   monomorphic dispatch) and [`server::Routes`], interceptors, and
//!   [`server::ConnectService`], a `tower::Service<http::Request<B>>`.
//! - [`message`]: [`Request`], [`Response`], [`RequestContext`], [`PeerInfo`],
//!   [`ConnectionInfo`].
//! - [`rt`]: timers (the runtime-independent [`rt::SystemTimer`] by default, so deadlines are
//!   always enforced), the current call's deadline, and shutdown signals.
//! - [`client`]: [`client::Client`], calls of the four RPC types over any tower transport,
//!   with opt-in retries ([`client::RetryPolicy`]).
//! - [`intercept`]: [`intercept::Interceptor`], async, streaming-aware hooks around every call,
//!   one model for clients and servers.
//! - [`codec`]: owned and zero-copy view decoding, for handler requests and client responses
//!   ([`codec::View`]); [`codec::EncodeMessage`] and [`codec::DecodeMessage`] are the whole
//!   boundary a message type crosses (buffa messages implement both; another protobuf
//!   library's types can, through a wrapper).
//! - [`observe`]: the [`observe::CallObserver`] metrics hook (start and end of every call,
//!   with outcome, duration, wire bytes and message counts) and, with the `tracing` feature,
//!   a span per call with OpenTelemetry's RPC attributes.
//! - `axum` (feature `axum`): mounting services in an `axum::Router` next to other routes.
//! - `cors` (feature `cors`): a tower-http `CorsLayer` for browser clients.
//!
//! # Features
//!
//! `server` and `client` (default) gate the two halves; `gzip` (default), `zstd`, `deflate`,
//! `br` and `snappy` add compression algorithms (only gzip is pure Rust and on by default;
//! zstd builds C); `axum` adds [`axum`](mod@crate::axum) integration; `cors` a CORS layer for
//! browsers; `tracing` a `tracing` span per call (see [`observe`]).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "axum")]
pub mod axum;
#[cfg(any(feature = "server", feature = "client"))]
mod body;
#[cfg(feature = "client")]
pub mod client;
pub mod codec;
#[cfg(feature = "cors")]
pub mod cors;
#[cfg(any(feature = "server", feature = "client"))]
pub mod intercept;
pub mod message;
pub mod observe;
pub mod rt;
#[cfg(feature = "server")]
pub mod server;

/// The largest block glibc's allocator serves from its per-thread cache (1,032 bytes): a
/// call's state blocks stay within it (above it, each call takes the allocator's slow path).
#[cfg(all(test, any(feature = "server", feature = "client")))]
pub(crate) const ALLOCATOR_FAST_BLOCK: usize = 1032;

pub use connect_proto_core::{
    Code, Codec, ErrorDetail, Idempotency, MethodKind, MethodSpec, Protocol, Status,
};
pub use message::{ConnectionInfo, PeerInfo, Request, RequestContext, Response};

/// A boxed error, as transports and bodies produce.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A transport failure a runtime adapter can report precisely, placed anywhere in the source
/// chain of a transport or body error: an HTTP/2 stream reset with its error code, or a
/// request the server never processed. Clients map the code to a status (and may retry an
/// unprocessed request, see [`client::RetryPolicy`]); servers treat a request body that fails
/// with a reset as a client that went away (any other body error is a broken request:
/// `invalid_argument`).
#[derive(Debug)]
#[non_exhaustive]
pub struct TransportError {
    /// The HTTP/2 error code of a stream reset, when the failure was one.
    pub reset_code: Option<u32>,
    /// The server did not process the request: no connection could be made, or the request
    /// was refused before any application processing (above a GOAWAY's last stream id).
    pub unprocessed: bool,
    /// What happened.
    pub message: String,
}

/// HTTP/2's `REFUSED_STREAM` (RFC 9113 section 8.7: the stream saw no application processing).
const REFUSED_STREAM: u32 = 0x7;

impl TransportError {
    /// A stream reset with an HTTP/2 error code.
    pub fn reset(code: u32, message: impl Into<String>) -> Self {
        TransportError {
            reset_code: Some(code),
            unprocessed: false,
            message: message.into(),
        }
    }

    /// A request the server never processed (connection refused, a GOAWAY before the stream
    /// was processed): safe to send again, whatever the method.
    pub fn unprocessed(message: impl Into<String>) -> Self {
        TransportError {
            reset_code: None,
            unprocessed: true,
            message: message.into(),
        }
    }

    /// Whether the server is known not to have processed the request: marked so, or reset
    /// with `REFUSED_STREAM`.
    pub fn is_unprocessed(&self) -> bool {
        self.unprocessed || self.reset_code == Some(REFUSED_STREAM)
    }

    /// Looks for a [`TransportError`] in an error's source chain.
    pub fn find<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a TransportError> {
        let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(err) = current {
            if let Some(found) = err.downcast_ref::<TransportError>() {
                return Some(found);
            }
            current = err.source();
        }
        None
    }
}

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TransportError {}
