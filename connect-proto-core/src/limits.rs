//! The default limits and thresholds of the call state machines, in one place: each is the
//! default of a knob on [`ServerConfig`](crate::ServerConfig),
//! [`ClientConfig`](crate::ClientConfig) or [`CallOptions`](crate::CallOptions).

use std::time::Duration;

/// Default limit on a received message (after decompression): 4 MiB, as gRPC's.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 4 * 1024 * 1024;

/// Default threshold below which messages are sent uncompressed.
pub const DEFAULT_COMPRESS_MIN_BYTES: usize = 1024;

/// Default longest pause within a unary request body: 30 s (hyper's header read timeout, and
/// half of nginx's `client_body_timeout`).
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Default limit on the URL of a Connect GET request; longer requests fall back to POST.
pub const DEFAULT_MAX_GET_URL_BYTES: usize = 8 * 1024;

/// Default limit on metadata carried in a body (a gRPC-Web trailer frame, a Connect
/// end-stream message's `metadata`): 64 KiB, counted as HTTP/2 counts header lists (name,
/// value and 32 bytes per entry). Four times hyper's default HTTP/2 header list limit, and far
/// below what would overflow an `http::HeaderMap` (which fails past about 24,000 names).
pub const DEFAULT_MAX_METADATA_SIZE: usize = 64 * 1024;
