//! The three protocols, their content types, and the header names each one uses.
//!
//! Every header name the stack writes or reads is a constant in [`headers`]; adapters never
//! spell one themselves.

use std::fmt;

use http::HeaderValue;

use crate::codec::Codec;

/// A wire protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Protocol {
    /// The Connect protocol (unary, GET and streaming forms).
    Connect,
    /// gRPC over HTTP/2.
    Grpc,
    /// gRPC-Web (binary or base64 text body).
    GrpcWeb,
}

impl Protocol {
    /// A short name (`"connect"`, `"grpc"`, `"grpc-web"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Connect => "connect",
            Protocol::Grpc => "grpc",
            Protocol::GrpcWeb => "grpc-web",
        }
    }

    /// The header carrying a timeout in this protocol.
    pub fn timeout_header(self) -> &'static str {
        match self {
            Protocol::Connect => headers::CONNECT_TIMEOUT_MS,
            Protocol::Grpc | Protocol::GrpcWeb => headers::GRPC_TIMEOUT,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Header names used by the protocols (all lowercase, as HTTP/2 requires).
pub mod headers {
    /// `content-type`.
    pub const CONTENT_TYPE: &str = "content-type";
    /// `content-encoding` (Connect unary).
    pub const CONTENT_ENCODING: &str = "content-encoding";
    /// `accept-encoding` (Connect unary).
    pub const ACCEPT_ENCODING: &str = "accept-encoding";
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
}

/// The header names of [`headers`] as [`http::HeaderName`]s, for the hot paths: a `HeaderMap`
/// lookup or insert with a `HeaderName` skips parsing the name from a string.
pub(crate) mod names {
    use http::HeaderName;

    use super::headers;

    macro_rules! names {
        ($($name:ident),* $(,)?) => {
            $(pub(crate) const $name: HeaderName = HeaderName::from_static(headers::$name);)*
        };
    }

    names!(
        CONTENT_TYPE,
        CONTENT_ENCODING,
        ACCEPT_ENCODING,
        TE,
        USER_AGENT,
        X_USER_AGENT,
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

/// Content types, parsed.
///
/// `streaming` distinguishes Connect's unary (`application/proto`) from its streaming
/// (`application/connect+proto`) form; gRPC and gRPC-Web are always enveloped. `text` marks
/// gRPC-Web's base64 body (`application/grpc-web-text`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ContentType {
    /// The protocol the content type belongs to.
    pub protocol: Protocol,
    /// The message codec.
    pub codec: Codec,
    /// Connect streaming form (always `true` for gRPC and gRPC-Web).
    pub streaming: bool,
    /// gRPC-Web text (base64) body.
    pub text: bool,
}

/// The outcome of parsing a content type: recognised, or which protocol it looked like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContentTypeMatch {
    /// A supported content type.
    Supported(ContentType),
    /// The protocol prefix is recognised but the codec is not supported; renders with the
    /// protocol's rules.
    UnsupportedCodec {
        /// The protocol the prefix belongs to.
        protocol: Protocol,
        /// Whether it was a Connect streaming prefix.
        streaming: bool,
    },
    /// Not a content type of any protocol.
    Unrecognized,
}

impl ContentType {
    /// Connect unary.
    pub const fn connect_unary(codec: Codec) -> Self {
        ContentType {
            protocol: Protocol::Connect,
            codec,
            streaming: false,
            text: false,
        }
    }

    /// Connect streaming.
    pub const fn connect_streaming(codec: Codec) -> Self {
        ContentType {
            protocol: Protocol::Connect,
            codec,
            streaming: true,
            text: false,
        }
    }

    /// gRPC.
    pub const fn grpc(codec: Codec) -> Self {
        ContentType {
            protocol: Protocol::Grpc,
            codec,
            streaming: true,
            text: false,
        }
    }

    /// gRPC-Web (binary).
    pub const fn grpc_web(codec: Codec) -> Self {
        ContentType {
            protocol: Protocol::GrpcWeb,
            codec,
            streaming: true,
            text: false,
        }
    }

    /// gRPC-Web text (base64 body).
    pub const fn grpc_web_text(codec: Codec) -> Self {
        ContentType {
            protocol: Protocol::GrpcWeb,
            codec,
            streaming: true,
            text: true,
        }
    }

    /// Parses a `content-type` header value. Media types compare case-insensitively and
    /// parameters (`; charset=utf-8`) are ignored.
    pub fn parse(value: &str) -> ContentTypeMatch {
        let media = value.split(';').next().unwrap_or("").trim();
        let Some(sub) = strip_prefix_ignore_case(media, "application/") else {
            return ContentTypeMatch::Unrecognized;
        };
        // No lowercased copy: every comparison below ignores case.
        let (protocol, streaming, text, codec_name) =
            if let Some(rest) = strip_prefix_ignore_case(sub, "grpc-web-text") {
                match suffix(rest) {
                    Some(codec) => (Protocol::GrpcWeb, true, true, codec),
                    None => return ContentTypeMatch::Unrecognized,
                }
            } else if let Some(rest) = strip_prefix_ignore_case(sub, "grpc-web") {
                match suffix(rest) {
                    Some(codec) => (Protocol::GrpcWeb, true, false, codec),
                    None => return ContentTypeMatch::Unrecognized,
                }
            } else if let Some(rest) = strip_prefix_ignore_case(sub, "grpc") {
                match suffix(rest) {
                    Some(codec) => (Protocol::Grpc, true, false, codec),
                    None => return ContentTypeMatch::Unrecognized,
                }
            } else if let Some(rest) = strip_prefix_ignore_case(sub, "connect+") {
                (Protocol::Connect, true, false, rest)
            } else {
                (Protocol::Connect, false, false, sub)
            };
        match Codec::from_name(codec_name) {
            Some(codec) => ContentTypeMatch::Supported(ContentType {
                protocol,
                codec,
                streaming,
                text,
            }),
            None if protocol == Protocol::Connect && !streaming => {
                // `application/<anything>` only looks like Connect unary; it is not a Connect
                // request unless the codec is one we know.
                ContentTypeMatch::Unrecognized
            }
            None => ContentTypeMatch::UnsupportedCodec {
                protocol,
                streaming,
            },
        }
    }

    /// The canonical header value for this content type.
    pub fn header_value(&self) -> HeaderValue {
        HeaderValue::from_static(self.as_str())
    }

    /// The canonical string for this content type.
    pub fn as_str(&self) -> &'static str {
        match (self.protocol, self.streaming, self.text, self.codec) {
            (Protocol::Connect, false, _, Codec::Proto) => "application/proto",
            (Protocol::Connect, false, _, Codec::Json) => "application/json",
            (Protocol::Connect, true, _, Codec::Proto) => "application/connect+proto",
            (Protocol::Connect, true, _, Codec::Json) => "application/connect+json",
            (Protocol::Grpc, _, _, Codec::Proto) => "application/grpc",
            (Protocol::Grpc, _, _, Codec::Json) => "application/grpc+json",
            (Protocol::GrpcWeb, _, false, Codec::Proto) => "application/grpc-web+proto",
            (Protocol::GrpcWeb, _, false, Codec::Json) => "application/grpc-web+json",
            (Protocol::GrpcWeb, _, true, Codec::Proto) => "application/grpc-web-text+proto",
            (Protocol::GrpcWeb, _, true, Codec::Json) => "application/grpc-web-text+json",
        }
    }
}

/// `""` → proto (the bare gRPC forms), `"+x"` → `x`, anything else → not this prefix.
fn suffix(rest: &str) -> Option<&str> {
    if rest.is_empty() {
        Some("proto")
    } else {
        rest.strip_prefix('+')
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn supported(v: &str) -> ContentType {
        match ContentType::parse(v) {
            ContentTypeMatch::Supported(ct) => ct,
            other => panic!("{v}: {other:?}"),
        }
    }

    #[test]
    fn recognises_every_protocol_form() {
        assert_eq!(
            supported("application/proto"),
            ContentType::connect_unary(Codec::Proto)
        );
        assert_eq!(
            supported("application/json"),
            ContentType::connect_unary(Codec::Json)
        );
        assert_eq!(
            supported("application/json; charset=utf-8"),
            ContentType::connect_unary(Codec::Json)
        );
        assert_eq!(
            supported("application/connect+proto"),
            ContentType::connect_streaming(Codec::Proto)
        );
        assert_eq!(
            supported("Application/Connect+JSON"),
            ContentType::connect_streaming(Codec::Json)
        );
        assert_eq!(
            supported("application/grpc"),
            ContentType::grpc(Codec::Proto)
        );
        assert_eq!(
            supported("application/grpc+proto"),
            ContentType::grpc(Codec::Proto)
        );
        assert_eq!(
            supported("application/grpc+json"),
            ContentType::grpc(Codec::Json)
        );
        assert_eq!(
            supported("application/grpc-web"),
            ContentType::grpc_web(Codec::Proto)
        );
        assert_eq!(
            supported("application/grpc-web+proto"),
            ContentType::grpc_web(Codec::Proto)
        );
        assert_eq!(
            supported("application/grpc-web+json"),
            ContentType::grpc_web(Codec::Json)
        );
        assert_eq!(
            supported("application/grpc-web-text"),
            ContentType::grpc_web_text(Codec::Proto)
        );
        assert_eq!(
            supported("application/grpc-web-text+proto"),
            ContentType::grpc_web_text(Codec::Proto)
        );
    }

    #[test]
    fn canonical_forms_parse_back() {
        for ct in [
            ContentType::connect_unary(Codec::Proto),
            ContentType::connect_unary(Codec::Json),
            ContentType::connect_streaming(Codec::Proto),
            ContentType::connect_streaming(Codec::Json),
            ContentType::grpc(Codec::Proto),
            ContentType::grpc(Codec::Json),
            ContentType::grpc_web(Codec::Proto),
            ContentType::grpc_web(Codec::Json),
            ContentType::grpc_web_text(Codec::Proto),
            ContentType::grpc_web_text(Codec::Json),
        ] {
            assert_eq!(supported(ct.as_str()), ct);
        }
    }

    #[test]
    fn unsupported_codecs_and_strangers() {
        assert_eq!(
            ContentType::parse("application/grpc+thrift"),
            ContentTypeMatch::UnsupportedCodec {
                protocol: Protocol::Grpc,
                streaming: true
            }
        );
        assert_eq!(
            ContentType::parse("application/connect+xml"),
            ContentTypeMatch::UnsupportedCodec {
                protocol: Protocol::Connect,
                streaming: true
            }
        );
        for v in [
            "",
            "text/plain",
            "application/xml",
            "application/grpcx",
            "application/grpc-webby",
            "applicatio",
        ] {
            assert_eq!(ContentType::parse(v), ContentTypeMatch::Unrecognized, "{v}");
        }
    }
}
