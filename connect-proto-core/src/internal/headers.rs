//! Header names used by the protocols (all lowercase, as HTTP/2 requires), and the values
//! of the few headers whose value is fixed.
/// `content-type`.
pub const CONTENT_TYPE: &str = "content-type";
/// `content-encoding` (Connect unary).
pub const CONTENT_ENCODING: &str = "content-encoding";
/// `accept-encoding` (Connect unary).
pub const ACCEPT_ENCODING: &str = "accept-encoding";
/// `accept`: a gRPC-Web text client asks for a text response with it.
pub const ACCEPT: &str = "accept";
/// `content-length`.
pub const CONTENT_LENGTH: &str = "content-length";
/// `accept-post`, listing supported content types on a 415.
pub const ACCEPT_POST: &str = "accept-post";
/// `allow`, listing supported methods on a 405.
pub const ALLOW: &str = "allow";
/// `te` (gRPC requests carry `te: trailers`).
pub const TE: &str = "te";
/// `user-agent`.
pub const USER_AGENT: &str = "user-agent";
/// `x-user-agent` (gRPC-Web, because browsers own `user-agent`).
pub const X_USER_AGENT: &str = "x-user-agent";
/// `x-grpc-web`, sent by gRPC-Web clients.
pub const X_GRPC_WEB: &str = "x-grpc-web";
/// `connect-protocol-version`.
pub const CONNECT_PROTOCOL_VERSION: &str = "connect-protocol-version";
/// `connect-timeout-ms`.
pub const CONNECT_TIMEOUT_MS: &str = "connect-timeout-ms";
/// `connect-content-encoding` (Connect streaming).
pub const CONNECT_CONTENT_ENCODING: &str = "connect-content-encoding";
/// `connect-accept-encoding` (Connect streaming).
pub const CONNECT_ACCEPT_ENCODING: &str = "connect-accept-encoding";
/// Prefix of trailing metadata carried in Connect unary response headers.
pub const CONNECT_TRAILER_PREFIX: &str = "trailer-";
/// `grpc-timeout`.
pub const GRPC_TIMEOUT: &str = "grpc-timeout";
/// `grpc-encoding`.
pub const GRPC_ENCODING: &str = "grpc-encoding";
/// `grpc-accept-encoding`.
pub const GRPC_ACCEPT_ENCODING: &str = "grpc-accept-encoding";
/// `grpc-status`.
pub const GRPC_STATUS: &str = "grpc-status";
/// `grpc-message`.
pub const GRPC_MESSAGE: &str = "grpc-message";
/// `grpc-status-details-bin`.
pub const GRPC_STATUS_DETAILS_BIN: &str = "grpc-status-details-bin";
/// The value of `te` on gRPC requests.
pub const TE_TRAILERS: &str = "trailers";
/// The `connect-protocol-version` this implementation speaks.
pub const CONNECT_PROTOCOL_VERSION_1: &str = "1";

/// The header names of this module as [`http::HeaderName`]s, for the hot paths: a `HeaderMap`
/// lookup or insert with a `HeaderName` skips parsing the name from a string.
pub(crate) mod names {
    use http::HeaderName;

    macro_rules! names {
        ($($name:ident),* $(,)?) => {
            $(pub(crate) const $name: HeaderName = HeaderName::from_static(super::$name);)*
        };
    }

    names!(
        CONTENT_TYPE,
        CONTENT_ENCODING,
        ACCEPT_ENCODING,
        ACCEPT,
        TE,
        USER_AGENT,
        X_USER_AGENT,
        X_GRPC_WEB,
        CONNECT_PROTOCOL_VERSION,
        CONNECT_TIMEOUT_MS,
        CONNECT_CONTENT_ENCODING,
        CONNECT_ACCEPT_ENCODING,
        GRPC_TIMEOUT,
        GRPC_ENCODING,
        GRPC_ACCEPT_ENCODING,
        GRPC_STATUS,
        GRPC_MESSAGE,
        GRPC_STATUS_DETAILS_BIN,
    );
}
