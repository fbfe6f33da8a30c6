//! Server-side protocol settings: [`ServerConfig`], shared by every call of a server.

use std::sync::Arc;
use std::time::Duration;

use crate::call::response_heads::ResponseHeads;
use crate::compression::CompressionRegistry;
use crate::limits::{DEFAULT_BODY_TIMEOUT, DEFAULT_COMPRESS_MIN_BYTES, DEFAULT_MAX_MESSAGE_SIZE};
use crate::protocol::Protocol;

/// Server-side protocol settings shared by every call.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub(crate) max_receive_message_size: usize,
    pub(crate) max_send_message_size: Option<usize>,
    pub(crate) compression: CompressionRegistry,
    pub(crate) compress_min_bytes: usize,
    pub(crate) require_connect_protocol_header: bool,
    pub(crate) max_timeout: Option<Duration>,
    pub(crate) body_timeout: Option<Duration>,
    pub(crate) connect: bool,
    pub(crate) grpc: bool,
    pub(crate) grpc_web: bool,
    /// The header blocks of successful responses, rendered for `compression`.
    pub(crate) heads: Arc<ResponseHeads>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        let compression = CompressionRegistry::default();
        ServerConfig {
            heads: Arc::new(ResponseHeads::new(compression.accept_encoding())),
            max_receive_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_send_message_size: None,
            compression,
            compress_min_bytes: DEFAULT_COMPRESS_MIN_BYTES,
            require_connect_protocol_header: false,
            max_timeout: None,
            body_timeout: Some(DEFAULT_BODY_TIMEOUT),
            connect: true,
            grpc: true,
            grpc_web: true,
        }
    }
}

impl ServerConfig {
    /// The default configuration: all three protocols, 4 MiB receive limit, every compiled-in
    /// compression algorithm, compression from 1 KiB.
    pub fn new() -> Self {
        ServerConfig::default()
    }

    /// Limit on a received message, after decompression.
    #[must_use]
    pub fn max_receive_message_size(mut self, limit: usize) -> Self {
        self.max_receive_message_size = limit;
        self
    }

    /// Limit on a sent message (before compression); `None` for no limit.
    #[must_use]
    pub fn max_send_message_size(mut self, limit: Option<usize>) -> Self {
        self.max_send_message_size = limit;
        self
    }

    /// The supported compression algorithms.
    #[must_use]
    pub fn compression(mut self, registry: CompressionRegistry) -> Self {
        self.heads = Arc::new(ResponseHeads::new(registry.accept_encoding()));
        self.compression = registry;
        self
    }

    /// Messages shorter than this are sent uncompressed even when compression was negotiated.
    #[must_use]
    pub fn compress_min_bytes(mut self, min: usize) -> Self {
        self.compress_min_bytes = min;
        self
    }

    /// Reject Connect requests without `connect-protocol-version: 1` (or GETs without
    /// `connect=v1`) with `400`/`invalid_argument`.
    #[must_use]
    pub fn require_connect_protocol_header(mut self, require: bool) -> Self {
        self.require_connect_protocol_header = require;
        self
    }

    /// The longest a call may run: client-requested timeouts are clamped to it, and calls
    /// that request none get it as their timeout. Default: none (a call without a timeout
    /// header runs until it ends).
    #[must_use]
    pub fn max_timeout(mut self, max: Option<Duration>) -> Self {
        self.max_timeout = max;
        self
    }

    /// The longest pause allowed between two chunks of a unary request body (unary and
    /// server-streaming methods; also from the start of the call to the first chunk). A body
    /// that stalls longer fails the call with `deadline_exceeded`. Streaming requests are
    /// exempt: pauses between their messages belong to the application (bound them with
    /// [`max_timeout`](Self::max_timeout)). `None` disables it. Default
    /// [`DEFAULT_BODY_TIMEOUT`] (30 s).
    #[must_use]
    pub fn body_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.body_timeout = timeout;
        self
    }

    /// Enable or disable individual protocols (all enabled by default).
    #[must_use]
    pub fn protocols(mut self, connect: bool, grpc: bool, grpc_web: bool) -> Self {
        self.connect = connect;
        self.grpc = grpc;
        self.grpc_web = grpc_web;
        self
    }

    /// The receive limit.
    pub fn receive_limit(&self) -> usize {
        self.max_receive_message_size
    }

    /// The compression registry.
    pub fn compression_registry(&self) -> &CompressionRegistry {
        &self.compression
    }

    pub(crate) fn enabled(&self, protocol: Protocol) -> bool {
        match protocol {
            Protocol::Connect => self.connect,
            Protocol::Grpc => self.grpc,
            Protocol::GrpcWeb => self.grpc_web,
        }
    }
}
