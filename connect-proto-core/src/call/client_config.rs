//! Client-side protocol settings: per-client [`ClientConfig`] and per-call [`CallOptions`]
//! (which win over the client's defaults).

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue, Uri};

use crate::codec::Codec;
use crate::compression::{Compression, CompressionRegistry};
use crate::limits::{
    DEFAULT_COMPRESS_MIN_BYTES, DEFAULT_MAX_GET_URL_BYTES, DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_MAX_METADATA_SIZE,
};
use crate::protocol::Protocol;

/// Client-side protocol settings shared by every call of one client.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    pub(crate) base_uri: Uri,
    pub(crate) protocol: Protocol,
    pub(crate) codec: Codec,
    pub(crate) grpc_web_text: bool,
    pub(crate) send_compression: Option<Arc<dyn Compression>>,
    pub(crate) accept_compression: CompressionRegistry,
    pub(crate) compress_min_bytes: usize,
    pub(crate) max_receive_message_size: usize,
    pub(crate) max_send_message_size: Option<usize>,
    pub(crate) max_metadata_size: usize,
    pub(crate) default_timeout: Option<Duration>,
    pub(crate) default_headers: HeaderMap,
    pub(crate) use_get: bool,
    pub(crate) max_get_url_bytes: usize,
    pub(crate) user_agent: HeaderValue,
}

impl ClientConfig {
    /// A configuration for the server at `base_uri` (scheme, authority and an optional path
    /// prefix), speaking Connect with binary protobuf, no request compression, accepting every
    /// compiled-in compression for responses.
    pub fn new(base_uri: Uri) -> Self {
        ClientConfig {
            base_uri,
            protocol: Protocol::Connect,
            codec: Codec::Proto,
            grpc_web_text: false,
            send_compression: None,
            accept_compression: CompressionRegistry::default(),
            compress_min_bytes: DEFAULT_COMPRESS_MIN_BYTES,
            max_receive_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_send_message_size: None,
            max_metadata_size: DEFAULT_MAX_METADATA_SIZE,
            default_timeout: None,
            default_headers: HeaderMap::new(),
            use_get: true,
            max_get_url_bytes: DEFAULT_MAX_GET_URL_BYTES,
            user_agent: HeaderValue::from_static(concat!(
                "connect-rust/",
                env!("CARGO_PKG_VERSION")
            )),
        }
    }

    /// The protocol to speak.
    #[must_use]
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// The message codec.
    #[must_use]
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// With gRPC-Web, send and expect the base64 text body (`application/grpc-web-text`).
    #[must_use]
    pub fn grpc_web_text(mut self, text: bool) -> Self {
        self.grpc_web_text = text;
        self
    }

    /// Compress request messages with this algorithm (`None` for identity).
    #[must_use]
    pub fn send_compression(mut self, compression: Option<Arc<dyn Compression>>) -> Self {
        self.send_compression = compression;
        self
    }

    /// The algorithms accepted for responses, in order of preference.
    #[must_use]
    pub fn accept_compression(mut self, registry: CompressionRegistry) -> Self {
        self.accept_compression = registry;
        self
    }

    /// Messages shorter than this are sent uncompressed.
    #[must_use]
    pub fn compress_min_bytes(mut self, min: usize) -> Self {
        self.compress_min_bytes = min;
        self
    }

    /// Limit on a received message, after decompression.
    #[must_use]
    pub fn max_receive_message_size(mut self, limit: usize) -> Self {
        self.max_receive_message_size = limit;
        self
    }

    /// Limit on a sent message; `None` for no limit.
    #[must_use]
    pub fn max_send_message_size(mut self, limit: Option<usize>) -> Self {
        self.max_send_message_size = limit;
        self
    }

    /// Limit on metadata carried in response bodies (gRPC-Web trailer frames, Connect
    /// end-stream `metadata`), in bytes as HTTP/2 counts header lists. Larger metadata fails
    /// the call with `resource_exhausted`. Default
    /// [`DEFAULT_MAX_METADATA_SIZE`](crate::limits::DEFAULT_MAX_METADATA_SIZE) (64 KiB).
    #[must_use]
    pub fn max_metadata_size(mut self, limit: usize) -> Self {
        self.max_metadata_size = limit;
        self
    }

    /// Timeout for calls that don't set their own.
    #[must_use]
    pub fn default_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.default_timeout = timeout;
        self
    }

    /// Headers sent with every call (per-call headers are added after them).
    #[must_use]
    pub fn default_headers(mut self, headers: HeaderMap) -> Self {
        self.default_headers = headers;
        self
    }

    /// Use Connect GET for `NO_SIDE_EFFECTS` unary methods (default `true`).
    #[must_use]
    pub fn use_get(mut self, use_get: bool) -> Self {
        self.use_get = use_get;
        self
    }

    /// Longest GET URL before falling back to POST.
    #[must_use]
    pub fn max_get_url_bytes(mut self, max: usize) -> Self {
        self.max_get_url_bytes = max;
        self
    }

    /// The `user-agent` (or `x-user-agent` for gRPC-Web) value.
    #[must_use]
    pub fn user_agent(mut self, user_agent: HeaderValue) -> Self {
        self.user_agent = user_agent;
        self
    }

    /// The configured base URI.
    pub fn base_uri(&self) -> &Uri {
        &self.base_uri
    }

    /// The configured protocol.
    pub fn configured_protocol(&self) -> Protocol {
        self.protocol
    }

    /// The configured codec.
    pub fn configured_codec(&self) -> Codec {
        self.codec
    }
}

/// Per-call settings; each set field wins over the client's default.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CallOptions {
    /// The call's timeout, counted from the start of the call.
    pub timeout: Option<Duration>,
    /// An absolute deadline; with a timeout as well, the earlier of the two applies. The
    /// timeout header sent is always the time left when the request head is written.
    pub deadline: Option<Instant>,
    /// Whether a runtime layer may shorten the deadline to that of the call this one is made
    /// from (connect-tower does this for calls made while a handler runs). Default `true`.
    pub propagate_deadline: bool,
    /// Headers added to the request (after the client's default headers).
    pub headers: HeaderMap,
    /// Request compression: `Some(None)` forces identity, `Some(Some(alg))` uses `alg`.
    pub send_compression: Option<Option<Arc<dyn Compression>>>,
    /// Receive limit for this call.
    pub max_receive_message_size: Option<usize>,
    /// Send limit for this call.
    pub max_send_message_size: Option<usize>,
    /// Whether a `NO_SIDE_EFFECTS` unary call may use GET.
    pub use_get: Option<bool>,
}

impl Default for CallOptions {
    fn default() -> Self {
        CallOptions {
            timeout: None,
            deadline: None,
            propagate_deadline: true,
            headers: HeaderMap::new(),
            send_compression: None,
            max_receive_message_size: None,
            max_send_message_size: None,
            use_get: None,
        }
    }
}

impl CallOptions {
    /// Default options.
    pub fn new() -> Self {
        CallOptions::default()
    }

    /// Sets the timeout (counted from the start of the call).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets an absolute deadline (the earlier of it and the timeout applies).
    #[must_use]
    pub fn deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Shortens the deadline to `deadline` if that is earlier (or sets it).
    #[must_use]
    pub fn deadline_at_most(mut self, deadline: Instant) -> Self {
        self.deadline = Some(self.deadline.map_or(deadline, |own| own.min(deadline)));
        self
    }

    /// Allows or forbids shortening the deadline to that of the enclosing call (default:
    /// allowed).
    #[must_use]
    pub fn propagate_deadline(mut self, propagate: bool) -> Self {
        self.propagate_deadline = propagate;
        self
    }

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: http::HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// Replaces the headers.
    #[must_use]
    pub fn headers(mut self, headers: HeaderMap) -> Self {
        self.headers = headers;
        self
    }

    /// Sets the request compression (`None` for identity).
    #[must_use]
    pub fn send_compression(mut self, compression: Option<Arc<dyn Compression>>) -> Self {
        self.send_compression = Some(compression);
        self
    }

    /// Sets the receive limit.
    #[must_use]
    pub fn max_receive_message_size(mut self, limit: usize) -> Self {
        self.max_receive_message_size = Some(limit);
        self
    }

    /// Sets the send limit.
    #[must_use]
    pub fn max_send_message_size(mut self, limit: usize) -> Self {
        self.max_send_message_size = Some(limit);
        self
    }

    /// Allows or forbids GET for this call.
    #[must_use]
    pub fn use_get(mut self, use_get: bool) -> Self {
        self.use_get = Some(use_get);
        self
    }
}
