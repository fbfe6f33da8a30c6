//! Bodies of the fuzz targets over `connect-proto-core`.
//!
//! Each target is one `pub fn name(data: &[u8])` that must never panic: a panic is a bug in
//! the core (or a broken invariant the target states in its doc). The cargo-fuzz binaries in
//! `fuzz/fuzz_targets/` are one-line wrappers around these functions, and this crate's
//! `tests/replay.rs` replays the committed seed corpus (`fuzz/corpus/<target>/seed-*`) and
//! every regression input (`fuzz/regressions/<target>/*`) through them, so a plain
//! `cargo test --workspace` keeps every crash that was ever found fixed.
//!
//! Structured targets read their input with [`arbitrary`]: configurations, heads and
//! operation sequences lean towards valid protocol values so the state machines get past
//! admission, and keep raw-byte escape hatches everywhere.
#![forbid(unsafe_code)]

mod client_ops;
mod head;
mod pair;
mod server_ops;
mod spec;
mod wire;

pub use client_ops::client_ops;
pub use head::accept_head;
pub use pair::pair_ops;
pub use server_ops::server_ops;
pub use wire::{
    connect_end_stream, connect_error_json, connect_get_query, decompress, envelope_decoder,
    grpc_message_percent, grpc_status, grpc_web_text, grpc_web_trailers, status_proto, timeouts,
};

/// A fuzz target body.
pub type Target = fn(&[u8]);

/// Every target by name: the name of its cargo-fuzz binary, corpus and regression directory.
pub const TARGETS: &[(&str, Target)] = &[
    ("envelope_decoder", envelope_decoder),
    ("grpc_web_trailers", grpc_web_trailers),
    ("grpc_web_text", grpc_web_text),
    ("grpc_status", grpc_status),
    ("status_proto", status_proto),
    ("timeouts", timeouts),
    ("connect_error_json", connect_error_json),
    ("connect_end_stream", connect_end_stream),
    ("connect_get_query", connect_get_query),
    ("grpc_message_percent", grpc_message_percent),
    ("decompress", decompress),
    ("accept_head", accept_head),
    ("server_ops", server_ops),
    ("client_ops", client_ops),
    ("pair_ops", pair_ops),
];
