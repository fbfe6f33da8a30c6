//! The outcome of a failed RPC: [`Status`] (code, message, details, metadata) and
//! [`ErrorDetail`] (a `google.protobuf.Any`-shaped detail message).

use std::fmt;

use bytes::Bytes;
use http::HeaderMap;

use crate::code::Code;

/// Prefix of a `google.protobuf.Any` type URL; Connect's JSON error details omit it.
pub(crate) const TYPE_URL_PREFIX: &str = "type.googleapis.com/";

/// A failed RPC: its [`Code`], a human-readable message, typed details and error metadata.
///
/// `metadata` holds the trailing metadata that accompanied the error (gRPC trailers, the
/// Connect end-stream `metadata` object, or `trailer-`-prefixed unary headers). The core
/// never puts protocol headers (`grpc-status`, `content-type`, …) into it.
///
/// A `Status` is one pointer wide (its parts live in one heap allocation), so
/// `Result<T, Status>` stays small on the success path.
#[derive(Clone, PartialEq)]
pub struct Status(Box<StatusParts>);

#[derive(Clone, PartialEq)]
struct StatusParts {
    code: Code,
    message: String,
    details: Vec<ErrorDetail>,
    metadata: HeaderMap,
}

impl Status {
    /// A status with a code and a message.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Status(Box::new(StatusParts {
            code,
            message: message.into(),
            details: Vec::new(),
            metadata: HeaderMap::new(),
        }))
    }

    /// A status with only a code.
    pub fn from_code(code: Code) -> Self {
        Status::new(code, String::new())
    }

    /// The error code.
    pub fn code(&self) -> Code {
        self.0.code
    }

    /// The message, possibly empty.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The details, in wire order.
    pub fn details(&self) -> &[ErrorDetail] {
        &self.0.details
    }

    /// The error metadata (trailers that came with the error).
    pub fn metadata(&self) -> &HeaderMap {
        &self.0.metadata
    }

    /// Mutable access to the error metadata.
    pub fn metadata_mut(&mut self) -> &mut HeaderMap {
        &mut self.0.metadata
    }

    /// Appends a detail.
    pub fn add_detail(&mut self, detail: ErrorDetail) {
        self.0.details.push(detail);
    }

    /// Builder form of [`add_detail`](Self::add_detail).
    #[must_use]
    pub fn with_detail(mut self, detail: ErrorDetail) -> Self {
        self.0.details.push(detail);
        self
    }

    /// Builder form that replaces the metadata.
    #[must_use]
    pub fn with_metadata(mut self, metadata: HeaderMap) -> Self {
        self.0.metadata = metadata;
        self
    }

    /// Builder form that replaces the message.
    #[must_use]
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.0.message = message.into();
        self
    }

    /// Splits the status into its parts.
    pub fn into_parts(self) -> (Code, String, Vec<ErrorDetail>, HeaderMap) {
        let parts = *self.0;
        (parts.code, parts.message, parts.details, parts.metadata)
    }
}

/// One constructor per code: `Status::not_found("no such key")` is
/// `Status::new(Code::NotFound, "no such key")`.
macro_rules! shorthands {
    ($($(#[$doc:meta])* $name:ident => $code:ident,)*) => {
        impl Status {
            $(
                $(#[$doc])*
                pub fn $name(message: impl Into<String>) -> Self {
                    Status::new(Code::$code, message)
                }
            )*
        }
    };
}

shorthands! {
    /// `canceled`: the call was cancelled (usually by the caller).
    canceled => Canceled,
    /// `unknown`: an error of no known kind.
    unknown => Unknown,
    /// `invalid_argument`: the request is invalid whatever the system's state.
    invalid_argument => InvalidArgument,
    /// `deadline_exceeded`: the deadline passed before the call could finish.
    deadline_exceeded => DeadlineExceeded,
    /// `not_found`: a requested entity does not exist.
    not_found => NotFound,
    /// `already_exists`: the entity the call would create exists already.
    already_exists => AlreadyExists,
    /// `permission_denied`: the caller may not do this.
    permission_denied => PermissionDenied,
    /// `resource_exhausted`: a quota or a limit ran out.
    resource_exhausted => ResourceExhausted,
    /// `failed_precondition`: the system is not in a state that allows the call.
    failed_precondition => FailedPrecondition,
    /// `aborted`: the call was aborted (a concurrency conflict, typically); retry higher up.
    aborted => Aborted,
    /// `out_of_range`: an argument is outside the valid range.
    out_of_range => OutOfRange,
    /// `unimplemented`: the operation is not implemented or supported.
    unimplemented => Unimplemented,
    /// `internal`: an invariant the system relies on is broken.
    internal => Internal,
    /// `unavailable`: the service cannot take the call now; retrying may work.
    unavailable => Unavailable,
    /// `data_loss`: data was lost or corrupted beyond recovery.
    data_loss => DataLoss,
    /// `unauthenticated`: the caller did not prove who it is.
    unauthenticated => Unauthenticated,
}

impl From<std::io::Error> for Status {
    /// The code an I/O error's kind stands for where the mapping is unambiguous
    /// (`NotFound` → `not_found`, `PermissionDenied` → `permission_denied`, `AlreadyExists` →
    /// `already_exists`, `TimedOut` → `deadline_exceeded`, `Interrupted` → `canceled`,
    /// `InvalidInput`/`InvalidData` → `invalid_argument`, `Unsupported` → `unimplemented`,
    /// `OutOfMemory` → `resource_exhausted`, connection failures → `unavailable`), `internal`
    /// otherwise. The message is the kind's description only: the error's own text (file
    /// paths, addresses) is not sent to the peer.
    fn from(error: std::io::Error) -> Status {
        use std::io::ErrorKind;
        let kind = error.kind();
        let code = match kind {
            ErrorKind::NotFound => Code::NotFound,
            ErrorKind::PermissionDenied => Code::PermissionDenied,
            ErrorKind::AlreadyExists => Code::AlreadyExists,
            ErrorKind::TimedOut => Code::DeadlineExceeded,
            ErrorKind::Interrupted => Code::Canceled,
            ErrorKind::InvalidInput | ErrorKind::InvalidData => Code::InvalidArgument,
            ErrorKind::Unsupported => Code::Unimplemented,
            ErrorKind::OutOfMemory => Code::ResourceExhausted,
            ErrorKind::ConnectionRefused
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::NotConnected
            | ErrorKind::BrokenPipe => Code::Unavailable,
            _ => Code::Internal,
        };
        Status::new(code, kind.to_string())
    }
}

impl fmt::Debug for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Status");
        s.field("code", &self.0.code)
            .field("message", &self.0.message);
        if !self.0.details.is_empty() {
            s.field("details", &self.0.details);
        }
        if !self.0.metadata.is_empty() {
            s.field("metadata", &self.0.metadata);
        }
        s.finish()
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.message.is_empty() {
            write!(f, "{}", self.0.code)
        } else {
            write!(f, "{}: {}", self.0.code, self.0.message)
        }
    }
}

impl std::error::Error for Status {}

/// One error detail: a protobuf message identified by its fully-qualified type name.
///
/// On the gRPC wire it is a `google.protobuf.Any` inside `grpc-status-details-bin`; on the
/// Connect wire it is `{"type": …, "value": base64, "debug": …}`.
///
/// Two details are equal when their type names, values and debug renderings are: the host of a
/// type URL is not compared, since the Connect wire carries type names only.
#[derive(Clone)]
pub struct ErrorDetail {
    type_name: String,
    /// The type URL's prefix (through its last `/`) when it is not `type.googleapis.com/`,
    /// kept so a detail passed on keeps its URL.
    url_prefix: Option<String>,
    value: Bytes,
    debug: Option<serde_json::Value>,
}

impl ErrorDetail {
    /// A detail from a fully-qualified message name (`google.rpc.RetryInfo`) or a type URL
    /// (`type.googleapis.com/google.rpc.RetryInfo`, or another host: as for
    /// `google.protobuf.Any`, the name is the URL's last path segment) and the message's binary
    /// encoding.
    pub fn new(type_name: impl Into<String>, value: impl Into<Bytes>) -> Self {
        let type_name = type_name.into();
        let (type_name, url_prefix) = match type_name.rfind('/') {
            Some(slash) if &type_name[..=slash] == TYPE_URL_PREFIX => {
                (type_name[slash + 1..].to_owned(), None)
            }
            Some(slash) => (
                type_name[slash + 1..].to_owned(),
                Some(type_name[..=slash].to_owned()),
            ),
            None => (type_name, None),
        };
        ErrorDetail {
            type_name,
            url_prefix,
            value: value.into(),
            debug: None,
        }
    }

    /// Packs a message as a detail.
    pub fn from_message<M: buffa::Message + buffa::MessageName>(message: &M) -> Self {
        ErrorDetail::new(M::FULL_NAME, message.encode_to_bytes())
    }

    /// Unpacks the detail as `M` if the type names match; `None` if they don't.
    pub fn to_message<M: buffa::Message + buffa::MessageName>(
        &self,
    ) -> Option<Result<M, buffa::DecodeError>> {
        (self.type_name == M::FULL_NAME).then(|| M::decode_from_slice(&self.value))
    }

    /// Attaches a JSON rendering shown under `"debug"` in Connect error bodies. Peers must not
    /// rely on it.
    #[must_use]
    pub fn with_debug(mut self, debug: serde_json::Value) -> Self {
        self.debug = Some(debug);
        self
    }

    /// The fully-qualified message name.
    pub fn type_name(&self) -> &str {
        &self.type_name
    }

    /// The `google.protobuf.Any` type URL: `type.googleapis.com/<name>`, or the URL the
    /// detail was made from when it named another host.
    pub fn type_url(&self) -> String {
        let prefix = self.url_prefix.as_deref().unwrap_or(TYPE_URL_PREFIX);
        format!("{prefix}{}", self.type_name)
    }

    /// The binary protobuf encoding of the detail message.
    pub fn value(&self) -> &Bytes {
        &self.value
    }

    /// The debug JSON, if any.
    pub fn debug(&self) -> Option<&serde_json::Value> {
        self.debug.as_ref()
    }
}

impl PartialEq for ErrorDetail {
    fn eq(&self, other: &Self) -> bool {
        self.type_name == other.type_name && self.value == other.value && self.debug == other.debug
    }
}

impl fmt::Debug for ErrorDetail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErrorDetail")
            .field("type_name", &self.type_name)
            .field("value_len", &self.value.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorthands_and_io_errors() {
        let status = Status::not_found("no such key");
        assert_eq!(
            (status.code(), status.message()),
            (Code::NotFound, "no such key")
        );
        assert_eq!(Status::unavailable("x").code(), Code::Unavailable);
        assert_eq!(Status::unauthenticated("x").code(), Code::Unauthenticated);
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "/etc/secret: missing");
        let status = Status::from(io);
        assert_eq!(status.code(), Code::NotFound);
        assert!(!status.message().contains("secret"), "{}", status.message());
        let other = std::io::Error::other("boom");
        assert_eq!(Status::from(other).code(), Code::Internal);
    }

    #[test]
    fn display_includes_code_and_message() {
        assert_eq!(
            Status::new(Code::NotFound, "no such user").to_string(),
            "not_found: no such user"
        );
        assert_eq!(Status::from_code(Code::Internal).to_string(), "internal");
    }

    #[test]
    fn detail_strips_type_url_prefix() {
        let d = ErrorDetail::new(
            "type.googleapis.com/google.rpc.RetryInfo",
            Bytes::from_static(b"\x0a\x00"),
        );
        assert_eq!(d.type_name(), "google.rpc.RetryInfo");
        assert_eq!(d.type_url(), "type.googleapis.com/google.rpc.RetryInfo");
        let plain = ErrorDetail::new("google.rpc.RetryInfo", Bytes::new());
        assert_eq!(plain.type_url(), "type.googleapis.com/google.rpc.RetryInfo");
    }

    #[test]
    fn detail_keeps_another_type_url_host() {
        let d = ErrorDetail::new("example.com/types/acme.v1.Problem", Bytes::new());
        assert_eq!(d.type_name(), "acme.v1.Problem");
        assert_eq!(d.type_url(), "example.com/types/acme.v1.Problem");
        // Through the gRPC wire and back, the URL survives.
        let status = Status::new(Code::Internal, "x").with_detail(d);
        let mut trailers = http::HeaderMap::new();
        crate::internal::grpc::encode_status(Some(&status), &http::HeaderMap::new(), &mut trailers);
        let back = crate::internal::grpc::decode_status(&trailers)
            .unwrap()
            .unwrap();
        assert_eq!(
            back.details()[0].type_url(),
            "example.com/types/acme.v1.Problem"
        );
    }

    #[test]
    fn detail_packs_and_unpacks_messages() {
        let msg = buffa_types::google::protobuf::Duration {
            seconds: 30,
            nanos: 5,
            ..Default::default()
        };
        let detail = ErrorDetail::from_message(&msg);
        assert_eq!(detail.type_name(), "google.protobuf.Duration");
        let back: buffa_types::google::protobuf::Duration = detail.to_message().unwrap().unwrap();
        assert_eq!(back, msg);
        assert!(
            detail
                .to_message::<buffa_types::google::protobuf::Timestamp>()
                .is_none()
        );
    }
}
