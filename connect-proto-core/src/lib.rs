//! Sans-IO protocol core for Connect, gRPC and gRPC-Web.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod call;
pub mod code;
pub mod codec;
pub mod compression;
pub mod connect;
pub mod envelope;
pub mod error;
pub mod grpc;
pub mod grpc_web;
pub mod metadata;
pub mod method;
pub mod protocol;
pub mod status;
pub mod timeout;

pub use code::Code;
pub use codec::Codec;
pub use error::{ProtocolError, Rule, UsageError};
pub use method::{Idempotency, MethodKind, MethodSpec};
pub use protocol::Protocol;
pub use status::{ErrorDetail, Status};
pub use call::{
    CallOptions, ClientCall, ClientConfig, ClientEvent, ClientOutput, Rejection, ServerCall, ServerConfig,
    ServerEvent, ServerOutput,
};
