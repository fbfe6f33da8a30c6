//! Call state machines: [`ServerCall`] and [`ClientCall`], their configuration, admission
//! ([`ServerCall::accept`] / [`Rejection`]) and the events and outputs they produce.
//!
//! The modules depend on each other in one direction: the configurations and the body
//! reader/writer are leaves; admission uses the server configuration; the calls use all of
//! them.

mod accept;
mod client;
mod client_config;
mod framed_run;
mod inbound;
mod outbound;
mod output_queue;
mod render;
mod response_heads;
mod server;
mod server_config;

/// The timeout a request asks for, for adapters that watch a request before admitting it.
pub use crate::internal::timeout::request_timeout;

/// The application metadata among `headers`: everything but the protocols' own headers
/// (content negotiation, compression, timeouts, status, `connect-*`, `grpc-*`, hop-by-hop).
/// What a proxy forwards from a request's headers to the next hop
/// ([`CallOptions::header`]).
pub fn application_metadata(headers: &http::HeaderMap) -> http::HeaderMap {
    crate::internal::metadata::metadata_of(headers)
}
pub use accept::Rejection;
pub use client::{ClientCall, ClientEvent, ClientOutput};
pub use client_config::{CallOptions, ClientConfig};
pub use framed_run::{FramedMessages, FramedRun, frame_message};
pub use server::{Admission, ServerCall, ServerEvent, ServerOutput};
pub use server_config::ServerConfig;
