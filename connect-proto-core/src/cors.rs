//! What a CORS configuration must allow for browsers to call Connect and gRPC-Web methods
//! cross-origin: the request methods and headers the protocols send, and the response headers
//! a browser client must be able to read. Runtime-free lists for any CORS implementation
//! (connect-tower's `cors` feature builds a tower-http `CorsLayer` from them).
//!
//! Add your own headers to these lists: request headers the application sends (such as
//! `authorization`) to the allowed ones, response headers it reads to the exposed ones — and
//! for Connect unary responses, whose trailers travel as `trailer-`-prefixed headers, the
//! prefixed names too.

use crate::internal::headers as h;

/// The request methods: `POST` for every protocol, `GET` for Connect GET.
pub const ALLOWED_METHODS: [http::Method; 2] = [http::Method::GET, http::Method::POST];

/// The request headers Connect and gRPC-Web clients send.
pub const ALLOWED_HEADERS: [&str; 12] = [
    h::CONTENT_TYPE,
    h::CONNECT_PROTOCOL_VERSION,
    h::CONNECT_TIMEOUT_MS,
    h::CONNECT_CONTENT_ENCODING,
    h::CONNECT_ACCEPT_ENCODING,
    h::CONTENT_ENCODING,
    h::ACCEPT_ENCODING,
    h::GRPC_TIMEOUT,
    h::GRPC_ENCODING,
    h::GRPC_ACCEPT_ENCODING,
    h::X_GRPC_WEB,
    h::X_USER_AGENT,
];

/// The response headers browser clients read: gRPC-Web's status headers (a trailers-only
/// response carries the status in headers) and the compression of the response.
pub const EXPOSED_HEADERS: [&str; 6] = [
    h::GRPC_STATUS,
    h::GRPC_MESSAGE,
    h::GRPC_STATUS_DETAILS_BIN,
    h::GRPC_ENCODING,
    h::CONTENT_ENCODING,
    h::CONNECT_CONTENT_ENCODING,
];

/// How long browsers may cache a preflight answer, in seconds (Chromium's cap; Firefox
/// allows a day).
pub const PREFLIGHT_MAX_AGE_SECONDS: u32 = 7200;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_a_valid_lowercase_header_name() {
        for name in ALLOWED_HEADERS.iter().chain(EXPOSED_HEADERS.iter()) {
            let parsed = http::HeaderName::from_static(name);
            assert_eq!(parsed.as_str(), *name);
        }
    }

    #[test]
    fn the_protocols_headers_are_covered() {
        // What connect-web and grpc-web clients send and read.
        for needed in [
            "connect-protocol-version",
            "connect-timeout-ms",
            "grpc-timeout",
            "x-grpc-web",
            "x-user-agent",
        ] {
            assert!(ALLOWED_HEADERS.contains(&needed), "{needed}");
        }
        for needed in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
            assert!(EXPOSED_HEADERS.contains(&needed), "{needed}");
        }
    }
}
