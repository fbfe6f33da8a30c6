//! Call state machines: [`ServerCall`] and [`ClientCall`], their configuration, admission
//! ([`ServerCall::accept`] / [`Rejection`]) and the events and outputs they produce.

mod accept;
mod client;
mod client_config;
mod inbound;
mod output_queue;
mod render;
mod server;

pub use accept::{DEFAULT_COMPRESS_MIN_BYTES, DEFAULT_MAX_MESSAGE_SIZE, Rejection, ServerConfig};
pub use client::{ClientCall, ClientEvent, ClientOutput};
pub use client_config::{CallOptions, ClientConfig, DEFAULT_MAX_GET_URL_BYTES};
pub use server::{ServerCall, ServerEvent, ServerOutput};
