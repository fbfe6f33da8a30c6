//! What the protocol needs to know about a method: its stream type, its idempotency level
//! and its HTTP path.

use std::borrow::Cow;

use crate::protocol::{ContentType, ContentTypeMatch, WireForm};

/// The four RPC shapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MethodKind {
    /// One request message, one response message.
    Unary,
    /// A stream of request messages, one response message.
    ClientStreaming,
    /// One request message, a stream of response messages.
    ServerStreaming,
    /// Streams in both directions.
    BidiStreaming,
}

impl MethodKind {
    /// Whether the client sends a stream (more than one message may be sent).
    pub fn streams_requests(self) -> bool {
        matches!(
            self,
            MethodKind::ClientStreaming | MethodKind::BidiStreaming
        )
    }

    /// Whether the server sends a stream.
    pub fn streams_responses(self) -> bool {
        matches!(
            self,
            MethodKind::ServerStreaming | MethodKind::BidiStreaming
        )
    }

    /// Whether the method uses Connect's streaming (enveloped) form rather than unary.
    pub fn is_streaming(self) -> bool {
        !matches!(self, MethodKind::Unary)
    }
}

/// The `idempotency_level` method option.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Idempotency {
    /// No option given.
    #[default]
    Unknown,
    /// `NO_SIDE_EFFECTS`: may be called with Connect GET and cached.
    NoSideEffects,
    /// `IDEMPOTENT`: safe to retry.
    Idempotent,
}

/// A method as generated code describes it: the HTTP path and what the protocol rules need.
///
/// Generated code declares specs as constants ([`MethodSpec::new`], a borrowed path); code
/// that learns methods at run time (a proxy, a dynamically registered handler) builds them
/// with [`MethodSpec::owned`] or [`MethodSpec::inferred`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MethodSpec {
    /// The HTTP path, `/package.Service/Method`.
    pub path: Cow<'static, str>,
    /// The stream type.
    pub kind: MethodKind,
    /// The idempotency level.
    pub idempotency: Idempotency,
}

impl MethodSpec {
    /// A method spec.
    pub const fn new(path: &'static str, kind: MethodKind, idempotency: Idempotency) -> Self {
        MethodSpec {
            path: Cow::Borrowed(path),
            kind,
            idempotency,
        }
    }

    /// A method spec with a path known only at run time.
    pub fn owned(path: impl Into<String>, kind: MethodKind, idempotency: Idempotency) -> Self {
        MethodSpec {
            path: Cow::Owned(path.into()),
            kind,
            idempotency,
        }
    }

    /// The path, `/package.Service/Method`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The method a request addresses, as far as the request itself tells: for a server that
    /// does not know the schema (a proxy). The path is the request's; the kind is `Unary` for
    /// a Connect unary request (a unary content type, or a GET, which is also
    /// `NO_SIDE_EFFECTS`) and `BidiStreaming` for every other one — enveloped bodies have the
    /// same form whatever the streaming kind, so admitting them as bidi accepts them all (the
    /// backend enforces the real cardinality).
    pub fn inferred(head: &http::request::Parts) -> MethodSpec {
        let path = head.uri.path().to_owned();
        if head.method == http::Method::GET {
            return MethodSpec::owned(path, MethodKind::Unary, Idempotency::NoSideEffects);
        }
        let content_type = head
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let kind = match ContentType::parse(content_type) {
            ContentTypeMatch::Supported(ct) if ct.form == WireForm::ConnectUnary => {
                MethodKind::Unary
            }
            _ => MethodKind::BidiStreaming,
        };
        MethodSpec::owned(path, kind, Idempotency::Unknown)
    }

    /// The fully-qualified service name (`package.Service`).
    pub fn service_name(&self) -> &str {
        split_path(&self.path)
            .map(|(service, _)| service)
            .unwrap_or("")
    }

    /// The method name (`Method`).
    pub fn method_name(&self) -> &str {
        split_path(&self.path)
            .map(|(_, method)| method)
            .unwrap_or("")
    }

    /// Whether Connect GET is allowed for this method (unary and `NO_SIDE_EFFECTS`).
    pub fn allows_get(&self) -> bool {
        self.kind == MethodKind::Unary && self.idempotency == Idempotency::NoSideEffects
    }
}

/// Splits `/package.Service/Method` into `("package.Service", "Method")`. Returns `None` for
/// paths of any other shape.
pub fn split_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix('/')?;
    let (service, method) = rest.rsplit_once('/')?;
    (!service.is_empty() && !method.is_empty() && !method.contains('/'))
        .then_some((service, method))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_parts() {
        let spec = MethodSpec::new(
            "/acme.v1.Greeter/SayHello",
            MethodKind::Unary,
            Idempotency::NoSideEffects,
        );
        assert_eq!(spec.service_name(), "acme.v1.Greeter");
        assert_eq!(spec.method_name(), "SayHello");
        assert!(spec.allows_get());
        assert_eq!(split_path("/a/b/c"), Some(("a/b", "c")));
        assert_eq!(split_path("a/b"), None);
        assert_eq!(split_path("/ab"), None);
        assert_eq!(split_path("//b"), None);
        assert_eq!(split_path("/a/"), None);
    }

    #[test]
    fn get_requires_unary_and_no_side_effects() {
        let streaming = MethodSpec::new(
            "/s/M",
            MethodKind::ServerStreaming,
            Idempotency::NoSideEffects,
        );
        assert!(!streaming.allows_get());
        let idempotent = MethodSpec::new("/s/M", MethodKind::Unary, Idempotency::Idempotent);
        assert!(!idempotent.allows_get());
    }
}
