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
//!   monomorphic dispatch) and [`server::Router`], interceptors, and
//!   [`server::ConnectService`], a `tower::Service<http::Request<B>>`.
//! - [`message`]: [`Request`], [`Response`], [`RequestContext`], [`PeerInfo`].
//! - [`client`]: [`client::Client`], calls of the four RPC types over any tower transport.
//! - [`codec`]: owned and zero-copy view decoding, for handler requests and client responses
//!   ([`codec::View`]).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(any(feature = "server", feature = "client"))]
mod body;
#[cfg(feature = "client")]
pub mod client;
pub mod codec;
pub mod message;
pub mod rt;
#[cfg(feature = "server")]
pub mod server;

pub use connect_proto_core::{
    Code, Codec, ErrorDetail, Idempotency, MethodKind, MethodSpec, Protocol, Status,
};
pub use message::{PeerInfo, Request, RequestContext, Response};

/// A boxed error, as transports and bodies produce.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
