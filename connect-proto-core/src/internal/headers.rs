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

/// The request headers the protocols read, gathered in one pass over a request's header map:
/// a request carries a handful of headers, and a lookup per name would hash each name.
/// Each field holds the header's first value, as [`http::HeaderMap::get`] would return it.
#[derive(Debug, Default)]
pub(crate) struct RequestHeaders<'h> {
    /// `content-type`.
    pub(crate) content_type: Option<&'h http::HeaderValue>,
    /// `connect-protocol-version`.
    pub(crate) connect_protocol_version: Option<&'h http::HeaderValue>,
    /// `connect-timeout-ms`.
    pub(crate) connect_timeout: Option<&'h http::HeaderValue>,
    /// `grpc-timeout`.
    pub(crate) grpc_timeout: Option<&'h http::HeaderValue>,
    /// The message compression, per family of [`compression_headers`]: Connect unary,
    /// Connect streaming, gRPC (and gRPC-Web).
    ///
    /// [`compression_headers`]: crate::protocol::WireForm::compression_headers
    encoding: [Option<&'h http::HeaderValue>; 3],
    /// The accepted compressions, per family as `encoding`.
    accept: [Accepted<'h>; 3],
}

/// An accept-encoding header as found: absent, once, or more than once (a list to join).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) enum Accepted<'h> {
    /// Not sent.
    #[default]
    Absent,
    /// Sent once, with this value.
    Once(&'h http::HeaderValue),
    /// Sent more than once.
    Repeated,
}

impl<'h> RequestHeaders<'h> {
    /// Reads `headers` once.
    pub(crate) fn read(headers: &'h http::HeaderMap) -> Self {
        let mut found = RequestHeaders::default();
        for (name, value) in headers {
            let slot = match name.as_str() {
                CONTENT_TYPE => &mut found.content_type,
                CONNECT_PROTOCOL_VERSION => &mut found.connect_protocol_version,
                CONNECT_TIMEOUT_MS => &mut found.connect_timeout,
                GRPC_TIMEOUT => &mut found.grpc_timeout,
                CONTENT_ENCODING => &mut found.encoding[0],
                CONNECT_CONTENT_ENCODING => &mut found.encoding[1],
                GRPC_ENCODING => &mut found.encoding[2],
                ACCEPT_ENCODING => {
                    found.accept[0].add(value);
                    continue;
                }
                CONNECT_ACCEPT_ENCODING => {
                    found.accept[1].add(value);
                    continue;
                }
                GRPC_ACCEPT_ENCODING => {
                    found.accept[2].add(value);
                    continue;
                }
                _ => continue,
            };
            slot.get_or_insert(value);
        }
        found
    }

    /// The request's message compression header for `form`.
    pub(crate) fn encoding(
        &self,
        form: crate::protocol::WireForm,
    ) -> Option<&'h http::HeaderValue> {
        self.encoding[family(form)]
    }

    /// The request's accepted compressions header for `form`.
    pub(crate) fn accept(&self, form: crate::protocol::WireForm) -> Accepted<'h> {
        self.accept[family(form)]
    }
}

impl<'h> Accepted<'h> {
    fn add(&mut self, value: &'h http::HeaderValue) {
        *self = match self {
            Accepted::Absent => Accepted::Once(value),
            Accepted::Once(_) | Accepted::Repeated => Accepted::Repeated,
        };
    }
}

/// The compression header family of `form` (the index into [`RequestHeaders`]' arrays).
fn family(form: crate::protocol::WireForm) -> usize {
    use crate::protocol::WireForm;
    match form {
        WireForm::ConnectUnary => 0,
        WireForm::ConnectStreaming => 1,
        WireForm::Grpc | WireForm::GrpcWeb | WireForm::GrpcWebText => 2,
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, HeaderValue};

    use super::*;
    use crate::protocol::WireForm;

    const FORMS: [WireForm; 5] = WireForm::ALL;

    #[test]
    fn reads_each_forms_compression_headers() {
        for form in FORMS {
            let (encoding, accept) = form.compression_headers();
            let mut headers = HeaderMap::new();
            headers.insert(encoding, HeaderValue::from_static("gzip"));
            headers.insert(accept.clone(), HeaderValue::from_static("zstd"));
            let read = RequestHeaders::read(&headers);
            assert_eq!(read.encoding(form).unwrap(), "gzip", "{form:?}");
            assert_eq!(
                read.accept(form),
                Accepted::Once(&HeaderValue::from_static("zstd")),
                "{form:?}"
            );
            headers.append(accept, HeaderValue::from_static("br"));
            assert_eq!(
                RequestHeaders::read(&headers).accept(form),
                Accepted::Repeated
            );
            // Another family's headers are not this form's.
            for other in FORMS {
                if family(other) != family(form) {
                    let read = RequestHeaders::read(&headers);
                    assert_eq!(read.encoding(other), None, "{form:?} / {other:?}");
                    assert_eq!(read.accept(other), Accepted::Absent, "{form:?} / {other:?}");
                }
            }
        }
    }

    #[test]
    fn keeps_the_first_value_as_get_does() {
        let mut headers = HeaderMap::new();
        for name in [
            CONTENT_TYPE,
            CONNECT_PROTOCOL_VERSION,
            CONNECT_TIMEOUT_MS,
            GRPC_TIMEOUT,
        ] {
            headers.append(name, HeaderValue::from_static("first"));
            headers.append(name, HeaderValue::from_static("second"));
            headers.append("x-other", HeaderValue::from_static("other"));
        }
        let read = RequestHeaders::read(&headers);
        for (name, value) in [
            (CONTENT_TYPE, read.content_type),
            (CONNECT_PROTOCOL_VERSION, read.connect_protocol_version),
            (CONNECT_TIMEOUT_MS, read.connect_timeout),
            (GRPC_TIMEOUT, read.grpc_timeout),
        ] {
            assert_eq!(value, headers.get(name), "{name}");
        }
    }

    #[test]
    fn empty_and_unrelated_headers_read_as_absent() {
        let mut headers = HeaderMap::new();
        let read = RequestHeaders::read(&headers);
        assert!(read.content_type.is_none() && read.grpc_timeout.is_none());
        headers.insert("grpc-timeoutx", HeaderValue::from_static("1S"));
        headers.insert("x-grpc-timeout", HeaderValue::from_static("1S"));
        headers.insert(http::header::ACCEPT, HeaderValue::from_static("*/*"));
        let read = RequestHeaders::read(&headers);
        assert!(read.grpc_timeout.is_none());
        for form in FORMS {
            assert_eq!(read.accept(form), Accepted::Absent);
        }
    }
}
