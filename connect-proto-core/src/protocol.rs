//! The three protocols, their content types, and the header names each one uses.
//!
//! Every header name the stack writes or reads is a constant in [`headers`]; adapters never
//! spell one themselves.

use std::fmt;

use http::HeaderValue;

use crate::codec::Codec;
use crate::internal::headers::{self, names};

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

/// The wire form of a call: the protocol, and within it, how bodies are laid out. Each form
/// has its own content types, encoding headers and end-of-stream rules; matching on it
/// replaces combining a protocol with separate "streaming" and "text" flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WireForm {
    /// Connect unary: the body is the one message; errors are JSON bodies with HTTP statuses.
    ConnectUnary,
    /// Connect streaming: enveloped messages, then an end-stream message.
    ConnectStreaming,
    /// gRPC: enveloped messages, then HTTP trailers.
    Grpc,
    /// gRPC-Web: enveloped messages, then a trailer frame.
    GrpcWeb,
    /// gRPC-Web with a base64 body (`application/grpc-web-text`).
    GrpcWebText,
}

impl WireForm {
    /// Every form.
    pub(crate) const ALL: [WireForm; 5] = [
        WireForm::ConnectUnary,
        WireForm::ConnectStreaming,
        WireForm::Grpc,
        WireForm::GrpcWeb,
        WireForm::GrpcWebText,
    ];

    /// The protocol the form belongs to.
    pub const fn protocol(self) -> Protocol {
        match self {
            WireForm::ConnectUnary | WireForm::ConnectStreaming => Protocol::Connect,
            WireForm::Grpc => Protocol::Grpc,
            WireForm::GrpcWeb | WireForm::GrpcWebText => Protocol::GrpcWeb,
        }
    }

    /// Whether bodies are sequences of envelopes (every form but Connect unary).
    pub const fn is_enveloped(self) -> bool {
        !matches!(self, WireForm::ConnectUnary)
    }

    /// Whether bodies are base64 text (gRPC-Web text).
    pub const fn is_text(self) -> bool {
        matches!(self, WireForm::GrpcWebText)
    }

    /// The headers that name the message compression of a body and the compressions a peer
    /// accepts, for this form.
    pub(crate) fn compression_headers(self) -> (http::HeaderName, http::HeaderName) {
        match self {
            WireForm::ConnectUnary => (names::CONTENT_ENCODING, names::ACCEPT_ENCODING),
            WireForm::ConnectStreaming => (
                names::CONNECT_CONTENT_ENCODING,
                names::CONNECT_ACCEPT_ENCODING,
            ),
            WireForm::Grpc | WireForm::GrpcWeb | WireForm::GrpcWebText => {
                (names::GRPC_ENCODING, names::GRPC_ACCEPT_ENCODING)
            }
        }
    }
}

/// A content type, parsed: a wire form and a message codec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ContentType {
    /// The wire form.
    pub form: WireForm,
    /// The message codec.
    pub codec: Codec,
}

/// The outcome of parsing a content type: recognised, or which protocol it looked like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContentTypeMatch {
    /// A supported content type.
    Supported(ContentType),
    /// The form is recognised but the codec is not supported; renders with the form's rules.
    UnsupportedCodec {
        /// The form the prefix belongs to.
        form: WireForm,
    },
    /// Not a content type of any protocol.
    Unrecognized,
}

impl ContentType {
    /// A content type of `form` with `codec`.
    pub const fn new(form: WireForm, codec: Codec) -> Self {
        ContentType { form, codec }
    }

    /// Connect unary.
    pub const fn connect_unary(codec: Codec) -> Self {
        ContentType::new(WireForm::ConnectUnary, codec)
    }

    /// Connect streaming.
    pub const fn connect_streaming(codec: Codec) -> Self {
        ContentType::new(WireForm::ConnectStreaming, codec)
    }

    /// gRPC.
    pub const fn grpc(codec: Codec) -> Self {
        ContentType::new(WireForm::Grpc, codec)
    }

    /// gRPC-Web (binary).
    pub const fn grpc_web(codec: Codec) -> Self {
        ContentType::new(WireForm::GrpcWeb, codec)
    }

    /// gRPC-Web text (base64 body).
    pub const fn grpc_web_text(codec: Codec) -> Self {
        ContentType::new(WireForm::GrpcWebText, codec)
    }

    /// The protocol.
    pub const fn protocol(&self) -> Protocol {
        self.form.protocol()
    }

    /// Parses a `content-type` header value. Media types compare case-insensitively and
    /// parameters (`; charset=utf-8`) are ignored.
    pub fn parse(value: &str) -> ContentTypeMatch {
        // The spellings clients send, told apart without the general scan below.
        if let Some(content_type) = ContentType::canonical(value) {
            return ContentTypeMatch::Supported(content_type);
        }
        ContentType::parse_general(value)
    }

    /// A content type in its canonical spelling (as [`as_str`](Self::as_str) writes it, or a
    /// bare gRPC form's explicit `+proto`).
    fn canonical(value: &str) -> Option<ContentType> {
        let (form, codec) = match value {
            "application/grpc" | "application/grpc+proto" => (WireForm::Grpc, Codec::Proto),
            "application/proto" => (WireForm::ConnectUnary, Codec::Proto),
            "application/json" => (WireForm::ConnectUnary, Codec::Json),
            "application/connect+proto" => (WireForm::ConnectStreaming, Codec::Proto),
            "application/connect+json" => (WireForm::ConnectStreaming, Codec::Json),
            "application/grpc+json" => (WireForm::Grpc, Codec::Json),
            "application/grpc-web" | "application/grpc-web+proto" => {
                (WireForm::GrpcWeb, Codec::Proto)
            }
            "application/grpc-web+json" => (WireForm::GrpcWeb, Codec::Json),
            "application/grpc-web-text" | "application/grpc-web-text+proto" => {
                (WireForm::GrpcWebText, Codec::Proto)
            }
            "application/grpc-web-text+json" => (WireForm::GrpcWebText, Codec::Json),
            _ => return None,
        };
        Some(ContentType { form, codec })
    }

    fn parse_general(value: &str) -> ContentTypeMatch {
        let media = value.split(';').next().unwrap_or("").trim();
        let Some(sub) = strip_prefix_ignore_case(media, "application/") else {
            return ContentTypeMatch::Unrecognized;
        };
        // No lowercased copy: every comparison below ignores case.
        let (form, codec_name) = if let Some(rest) = strip_prefix_ignore_case(sub, "grpc-web-text")
        {
            match suffix(rest) {
                Some(codec) => (WireForm::GrpcWebText, codec),
                None => return ContentTypeMatch::Unrecognized,
            }
        } else if let Some(rest) = strip_prefix_ignore_case(sub, "grpc-web") {
            match suffix(rest) {
                Some(codec) => (WireForm::GrpcWeb, codec),
                None => return ContentTypeMatch::Unrecognized,
            }
        } else if let Some(rest) = strip_prefix_ignore_case(sub, "grpc") {
            match suffix(rest) {
                Some(codec) => (WireForm::Grpc, codec),
                None => return ContentTypeMatch::Unrecognized,
            }
        } else if let Some(rest) = strip_prefix_ignore_case(sub, "connect+") {
            (WireForm::ConnectStreaming, rest)
        } else {
            (WireForm::ConnectUnary, sub)
        };
        match Codec::from_name(codec_name) {
            Some(codec) => ContentTypeMatch::Supported(ContentType { form, codec }),
            // `application/<anything>` only looks like Connect unary; it is not a Connect
            // request unless the codec is one we know.
            None if form == WireForm::ConnectUnary => ContentTypeMatch::Unrecognized,
            None => ContentTypeMatch::UnsupportedCodec { form },
        }
    }

    /// The canonical header value for this content type.
    pub fn header_value(&self) -> HeaderValue {
        HeaderValue::from_static(self.as_str())
    }

    /// The canonical string for this content type.
    pub fn as_str(&self) -> &'static str {
        match (self.form, self.codec) {
            (WireForm::ConnectUnary, Codec::Proto) => "application/proto",
            (WireForm::ConnectUnary, Codec::Json) => "application/json",
            (WireForm::ConnectStreaming, Codec::Proto) => "application/connect+proto",
            (WireForm::ConnectStreaming, Codec::Json) => "application/connect+json",
            (WireForm::Grpc, Codec::Proto) => "application/grpc",
            (WireForm::Grpc, Codec::Json) => "application/grpc+json",
            (WireForm::GrpcWeb, Codec::Proto) => "application/grpc-web+proto",
            (WireForm::GrpcWeb, Codec::Json) => "application/grpc-web+json",
            (WireForm::GrpcWebText, Codec::Proto) => "application/grpc-web-text+proto",
            (WireForm::GrpcWebText, Codec::Json) => "application/grpc-web-text+json",
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

    #[test]
    fn canonical_spellings_parse_as_the_general_parser_reads_them() {
        let forms = WireForm::ALL;
        let mut spellings = vec![];
        for form in forms {
            for codec in [Codec::Proto, Codec::Json] {
                spellings.push(ContentType { form, codec }.as_str().to_owned());
            }
        }
        for bare in ["grpc", "grpc-web", "grpc-web-text"] {
            spellings.push(format!("application/{bare}+proto"));
        }
        for spelling in &spellings {
            let fast = ContentType::canonical(spelling);
            assert!(fast.is_some(), "{spelling} is not canonical");
            assert_eq!(
                fast.map(ContentTypeMatch::Supported),
                Some(ContentType::parse_general(spelling)),
                "{spelling}"
            );
        }
        // Other spellings take the general path.
        for other in [
            "Application/grpc",
            "application/grpc; charset=utf-8",
            "application/grpc+xml",
            " application/proto",
        ] {
            assert_eq!(ContentType::canonical(other), None, "{other}");
        }
    }

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
                form: WireForm::Grpc
            }
        );
        assert_eq!(
            ContentType::parse("application/connect+xml"),
            ContentTypeMatch::UnsupportedCodec {
                form: WireForm::ConnectStreaming
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
