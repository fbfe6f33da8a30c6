//! The wire-level pieces the call state machines are made of: envelopes, Connect error bodies
//! and GET queries, gRPC status trailers, gRPC-Web trailer frames and base64 text, metadata
//! encoding, timeout headers, header names.
//!
//! Public for fuzzing, tests and tools that inspect or rewrite frames (a proxy that logs
//! envelopes, a test that builds a malformed body). An application or a runtime adapter needs
//! none of it: [`ServerCall`](crate::ServerCall) and [`ClientCall`](crate::ClientCall) apply
//! every rule here. Unlike the rest of the crate, this module may change in any release.

pub mod connect;
pub mod envelope;
pub mod grpc;
pub mod grpc_web;
pub mod headers;
pub mod metadata;
pub mod timeout;
