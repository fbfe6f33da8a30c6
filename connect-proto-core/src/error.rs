//! Errors in the two lower layers: [`ProtocolError`] (the peer broke a wire rule) and
//! [`UsageError`] (the local program misused the API). The RPC outcome itself is a
//! [`Status`].

use std::fmt;

use crate::code::Code;
use crate::codec::CodecError;
use crate::status::Status;

/// Which peer broke a rule, seen from the local side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Peer {
    /// The client broke a rule in its request (detected by a server).
    Client,
    /// The server broke a rule in its response (detected by a client).
    Server,
}

/// A wire rule broken by the peer.
///
/// Every protocol error maps to exactly one [`Code`] through [`ProtocolError::code`], so an
/// adapter never chooses a status code of its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError {
    peer: Peer,
    rule: Rule,
}

/// The rule that was broken.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rule {
    /// A message (after or before decompression) is larger than the configured limit.
    MessageTooLarge {
        /// The size the peer announced or produced (bytes).
        size: u64,
        /// The configured limit (bytes).
        limit: usize,
    },
    /// The body ended inside an envelope.
    IncompleteEnvelope {
        /// Bytes of the envelope that arrived.
        received: usize,
        /// Bytes the envelope needed (prefix included), when the prefix was complete.
        expected: Option<u64>,
    },
    /// An envelope carried flags the protocol does not define.
    InvalidEnvelopeFlags(u8),
    /// An envelope is marked compressed but no compression was negotiated.
    CompressedWithoutEncoding,
    /// The peer used a compression algorithm this side does not support (its name, quoted,
    /// and what is supported, when that helps).
    UnsupportedCompression(String),
    /// A compressed payload could not be decompressed.
    Decompression(String),
    /// A timeout header is malformed.
    InvalidTimeout(String),
    /// A unary exchange carried no message.
    MissingMessage,
    /// A unary exchange carried more than one message.
    ExtraMessage,
    /// Data arrived after the end of the stream (end-stream message, trailers frame).
    DataAfterEnd,
    /// A Connect end-stream message or gRPC-Web trailer frame appeared where not allowed.
    UnexpectedEndStream,
    /// A streaming response ended without its end-stream message or trailers.
    MissingEndStream,
    /// A Connect error body or end-stream message is not valid.
    InvalidErrorBody(String),
    /// Trailers (gRPC trailers or a gRPC-Web trailer frame) are malformed.
    InvalidTrailers(String),
    /// `grpc-status` is missing from the trailers.
    MissingGrpcStatus,
    /// The response carried an unexpected content type.
    UnexpectedContentType(String),
    /// The response carried an unexpected HTTP status with no RPC error in it.
    UnexpectedHttpStatus(u16),
    /// A request header is malformed (for example `connect-protocol-version`).
    InvalidHeader(String),
    /// A Connect GET query is malformed.
    InvalidGetQuery(String),
    /// The request or response body could not be base64-decoded (gRPC-Web text mode).
    InvalidBase64,
    /// The request names a method the server does not serve.
    UnknownMethod(String),
    /// A received message could not be decoded with the call's codec.
    InvalidMessage(String),
    /// The peer reset the stream (`code`: its HTTP/2 error code, when known).
    Reset {
        /// The HTTP/2 error code (`RST_STREAM`), when the transport reported one.
        code: Option<u32>,
    },
    /// The transport under the call failed (connection refused or closed, TLS failure).
    Transport(String),
    /// The response is not an RPC response: neither its content type nor its body belongs to
    /// any of the protocols; its code follows the HTTP status.
    NotRpcResponse {
        /// The HTTP status.
        status: u16,
        /// The content type it carried.
        content_type: String,
    },
    /// Metadata carried in a body (a gRPC-Web trailer frame, the `metadata` of a Connect
    /// end-stream message) is larger than the configured limit.
    MetadataTooLarge {
        /// The configured limit (bytes, counted as HTTP/2 counts header lists: name, value
        /// and 32 bytes per entry).
        limit: usize,
    },
    /// A unary request body paused for longer than the configured body timeout.
    BodyTimeout,
    /// The body broke off: the transport reported it incomplete or malformed (an HTTP/1.1
    /// body shorter than its `content-length`, an invalid chunk) rather than ending it.
    BrokenBody(String),
}

impl ProtocolError {
    /// A protocol error detected by a server in a client's request.
    pub fn in_request(rule: Rule) -> Self {
        ProtocolError {
            peer: Peer::Client,
            rule,
        }
    }

    /// A protocol error detected by a client in a server's response.
    pub fn in_response(rule: Rule) -> Self {
        ProtocolError {
            peer: Peer::Server,
            rule,
        }
    }

    /// Which peer broke the rule.
    pub fn peer(&self) -> Peer {
        self.peer
    }

    /// The broken rule.
    pub fn rule(&self) -> &Rule {
        &self.rule
    }

    /// The RPC code this error surfaces as. One exhaustive mapping for the whole stack.
    pub fn code(&self) -> Code {
        let from_client = self.peer == Peer::Client;
        match &self.rule {
            Rule::MessageTooLarge { .. } | Rule::MetadataTooLarge { .. } => Code::ResourceExhausted,
            Rule::BodyTimeout => Code::DeadlineExceeded,
            Rule::UnsupportedCompression(_) if from_client => Code::Unimplemented,
            Rule::UnsupportedCompression(_) => Code::Internal,
            Rule::MissingMessage | Rule::ExtraMessage => Code::Unimplemented,
            // The peer's runtime is broken (its flag and its encoding header disagree), not its
            // request: `internal` on both sides, as gRPC implementations report it.
            Rule::CompressedWithoutEncoding => Code::Internal,
            Rule::UnexpectedContentType(_) if from_client => Code::Unimplemented,
            Rule::UnexpectedContentType(_) => Code::Internal,
            Rule::UnexpectedHttpStatus(status) | Rule::NotRpcResponse { status, .. } => {
                http::StatusCode::from_u16(*status)
                    .ok()
                    .and_then(Code::from_http_status)
                    .unwrap_or(Code::Unknown)
            }
            Rule::UnknownMethod(_) => Code::Unimplemented,
            // A client that resets its stream or loses its connection has gone away.
            Rule::Reset { .. } | Rule::Transport(_) if from_client => Code::Canceled,
            Rule::Reset { code } => reset_code(*code),
            Rule::Transport(_) => Code::Unavailable,
            Rule::MissingGrpcStatus | Rule::InvalidTrailers(_) | Rule::InvalidErrorBody(_)
                if !from_client =>
            {
                Code::Unknown
            }
            Rule::IncompleteEnvelope { .. }
            | Rule::InvalidEnvelopeFlags(_)
            | Rule::Decompression(_)
            | Rule::InvalidTimeout(_)
            | Rule::DataAfterEnd
            | Rule::UnexpectedEndStream
            | Rule::MissingEndStream
            | Rule::InvalidErrorBody(_)
            | Rule::InvalidTrailers(_)
            | Rule::MissingGrpcStatus
            | Rule::InvalidHeader(_)
            | Rule::InvalidGetQuery(_)
            | Rule::InvalidBase64
            | Rule::InvalidMessage(_)
            | Rule::BrokenBody(_) => {
                if from_client {
                    Code::InvalidArgument
                } else {
                    Code::Internal
                }
            }
        }
    }

    /// The [`Status`] an RPC ends with because of this error. Broken wire rules read
    /// "protocol error: …"; events that break no rule (an unknown method, a reset, a failed
    /// transport, a stalled body) say what happened.
    pub fn to_status(&self) -> Status {
        match &self.rule {
            Rule::UnknownMethod(_)
            | Rule::Reset { .. }
            | Rule::Transport(_)
            | Rule::UnexpectedHttpStatus(_)
            | Rule::NotRpcResponse { .. }
            | Rule::BodyTimeout => Status::new(self.code(), self.to_string()),
            _ => Status::new(self.code(), format!("protocol error: {self}")),
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = match self.peer {
            Peer::Client => "request",
            Peer::Server => "response",
        };
        match &self.rule {
            Rule::MessageTooLarge { size, limit } => {
                write!(f, "{who} message size {size} exceeds limit {limit}")
            }
            Rule::IncompleteEnvelope {
                received,
                expected: Some(expected),
            } => {
                write!(
                    f,
                    "{who} body ended inside an envelope ({received} of {expected} bytes)"
                )
            }
            Rule::IncompleteEnvelope {
                received,
                expected: None,
            } => {
                write!(
                    f,
                    "{who} body ended inside an envelope prefix ({received} of 5 bytes)"
                )
            }
            Rule::InvalidEnvelopeFlags(flags) => {
                write!(f, "{who} envelope has invalid flags 0x{flags:02x}")
            }
            Rule::CompressedWithoutEncoding => {
                write!(
                    f,
                    "{who} envelope is marked compressed but no compression was negotiated"
                )
            }
            Rule::UnsupportedCompression(name) => {
                write!(f, "{who} uses unsupported compression {name}")
            }
            Rule::Decompression(why) => write!(f, "cannot decompress {who} message: {why}"),
            Rule::InvalidTimeout(why) => write!(f, "invalid timeout: {why}"),
            Rule::MissingMessage => write!(f, "unary {who} has zero messages"),
            Rule::ExtraMessage => write!(f, "unary {who} has multiple messages"),
            Rule::DataAfterEnd => write!(f, "{who} has data after the end of the stream"),
            Rule::UnexpectedEndStream => write!(f, "{who} has an unexpected end-of-stream frame"),
            Rule::MissingEndStream => {
                write!(f, "{who} stream ended without an end-of-stream message")
            }
            Rule::InvalidErrorBody(why) => write!(f, "invalid error in {who}: {why}"),
            Rule::InvalidTrailers(why) => write!(f, "invalid {who} trailers: {why}"),
            Rule::MissingGrpcStatus => write!(f, "{who} is missing grpc-status"),
            Rule::UnexpectedContentType(ct) => write!(f, "unexpected {who} content-type {ct:?}"),
            Rule::UnexpectedHttpStatus(status) => {
                let reason = http::StatusCode::from_u16(*status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .map(|r| format!(" {r}"))
                    .unwrap_or_default();
                write!(f, "HTTP status {status}{reason}")
            }
            Rule::InvalidHeader(why) => write!(f, "invalid {who} header: {why}"),
            Rule::InvalidGetQuery(why) => write!(f, "invalid GET query: {why}"),
            Rule::InvalidBase64 => write!(f, "{who} body is not valid base64"),
            Rule::UnknownMethod(path) => write!(f, "{path} is not implemented"),
            Rule::InvalidMessage(why) => write!(f, "invalid {who} message: {why}"),
            Rule::Reset { code } => {
                let peer = match self.peer {
                    Peer::Client => "client",
                    Peer::Server => "server",
                };
                match code {
                    Some(code) => {
                        write!(f, "the {peer} reset the stream (HTTP/2 error 0x{code:x})")
                    }
                    None => write!(f, "the {peer} reset the stream"),
                }
            }
            Rule::Transport(why) => write!(f, "transport failed: {why}"),
            Rule::NotRpcResponse {
                status,
                content_type,
            } => write!(
                f,
                "not an RPC response: HTTP status {status}, content-type {content_type:?}"
            ),
            Rule::MetadataTooLarge { limit } => {
                write!(f, "{who} metadata exceeds the limit of {limit} bytes")
            }
            Rule::BodyTimeout => write!(f, "{who} body stalled past the body timeout"),
            Rule::BrokenBody(why) => write!(f, "{who} body broke off: {why}"),
        }
    }
}

impl std::error::Error for ProtocolError {}

/// The code a client reports for a stream the server reset, by HTTP/2 error code (RFC 9113
/// section 7, as gRPC maps them).
fn reset_code(code: Option<u32>) -> Code {
    match code {
        Some(0x7) => Code::Unavailable, // REFUSED_STREAM: not processed, safe to retry
        Some(0x8) => Code::Canceled,    // CANCEL
        Some(0xb) => Code::ResourceExhausted, // ENHANCE_YOUR_CALM
        Some(0xc) => Code::PermissionDenied, // INADEQUATE_SECURITY
        Some(_) => Code::Internal,
        None => Code::Unavailable,
    }
}

impl From<ProtocolError> for Status {
    fn from(err: ProtocolError) -> Status {
        err.to_status()
    }
}

/// The local program misused the API (for example, sent two messages on a unary response).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UsageError {
    /// The call has already finished; nothing more can be sent.
    AlreadyFinished,
    /// The sending half is already closed.
    SendClosed,
    /// A unary side already carried its one message.
    SecondUnaryMessage,
    /// A unary side was closed without a message.
    MissingUnaryMessage,
    /// The message is larger than the configured send limit.
    MessageTooLarge {
        /// The size of the message (bytes).
        size: usize,
        /// The configured limit (bytes).
        limit: usize,
    },
    /// Compressing an outgoing message failed.
    Compression(String),
    /// A request could not be built (bad URL, bad header value, …).
    InvalidRequest(String),
    /// A message to send could not be encoded with the call's codec.
    Encoding(CodecError),
    /// Bytes given as framed messages are not a run of whole, uncompressed envelopes, or the
    /// call does not take framed messages now (see `ServerCall::accepts_framed_messages`).
    MalformedFraming,
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UsageError::AlreadyFinished => f.write_str("the call has already finished"),
            UsageError::SendClosed => f.write_str("the sending half is already closed"),
            UsageError::SecondUnaryMessage => {
                f.write_str("a unary side carries exactly one message")
            }
            UsageError::MissingUnaryMessage => {
                f.write_str("a unary side was closed without its message")
            }
            UsageError::MessageTooLarge { size, limit } => {
                write!(f, "message size {size} exceeds the send limit {limit}")
            }
            UsageError::Compression(why) => write!(f, "compression failed: {why}"),
            UsageError::InvalidRequest(why) => write!(f, "invalid request: {why}"),
            UsageError::Encoding(why) => write!(f, "{why}"),
            UsageError::MalformedFraming => {
                f.write_str("framed messages must be whole, uncompressed envelopes")
            }
        }
    }
}

impl std::error::Error for UsageError {}

impl From<CodecError> for UsageError {
    fn from(err: CodecError) -> UsageError {
        UsageError::Encoding(err)
    }
}

impl From<CodecError> for Rule {
    /// A received message that does not decode: [`Rule::InvalidMessage`].
    fn from(err: CodecError) -> Rule {
        Rule::InvalidMessage(err.to_string())
    }
}

impl From<UsageError> for Status {
    /// The status a misuse ends a call with: sending on a call that already ended is
    /// `canceled` (the caller should stop: the peer went away, the deadline passed, the call
    /// failed), a message over the send limit `resource_exhausted`, anything else `internal`.
    fn from(err: UsageError) -> Status {
        let code = match err {
            UsageError::AlreadyFinished => Code::Canceled,
            UsageError::MessageTooLarge { .. } => Code::ResourceExhausted,
            _ => Code::Internal,
        };
        Status::new(code, err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_depend_on_the_side() {
        let bad = Rule::IncompleteEnvelope {
            received: 3,
            expected: None,
        };
        assert_eq!(
            ProtocolError::in_request(bad.clone()).code(),
            Code::InvalidArgument
        );
        assert_eq!(ProtocolError::in_response(bad).code(), Code::Internal);
        let big = Rule::MessageTooLarge { size: 10, limit: 5 };
        assert_eq!(
            ProtocolError::in_request(big.clone()).code(),
            Code::ResourceExhausted
        );
        assert_eq!(
            ProtocolError::in_response(big).code(),
            Code::ResourceExhausted
        );
        let comp = Rule::UnsupportedCompression("lz4".into());
        assert_eq!(
            ProtocolError::in_request(comp.clone()).code(),
            Code::Unimplemented
        );
        assert_eq!(ProtocolError::in_response(comp).code(), Code::Internal);
        assert_eq!(
            ProtocolError::in_response(Rule::UnexpectedHttpStatus(503)).code(),
            Code::Unavailable
        );
        assert_eq!(
            ProtocolError::in_response(Rule::MissingGrpcStatus).code(),
            Code::Unknown
        );
    }

    #[test]
    fn status_message_names_the_rule() {
        let err = ProtocolError::in_request(Rule::MessageTooLarge { size: 10, limit: 5 });
        let status = err.to_status();
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(
            status.message().contains("exceeds limit 5"),
            "{}",
            status.message()
        );
    }

    /// The position of a rule's variant. Exhaustive on purpose: a new variant does not
    /// compile until it is added here and to the table below.
    fn variant(rule: &Rule) -> usize {
        match rule {
            Rule::MessageTooLarge { .. } => 0,
            Rule::IncompleteEnvelope { .. } => 1,
            Rule::InvalidEnvelopeFlags(_) => 2,
            Rule::CompressedWithoutEncoding => 3,
            Rule::UnsupportedCompression(_) => 4,
            Rule::Decompression(_) => 5,
            Rule::InvalidTimeout(_) => 6,
            Rule::MissingMessage => 7,
            Rule::ExtraMessage => 8,
            Rule::DataAfterEnd => 9,
            Rule::UnexpectedEndStream => 10,
            Rule::MissingEndStream => 11,
            Rule::InvalidErrorBody(_) => 12,
            Rule::InvalidTrailers(_) => 13,
            Rule::MissingGrpcStatus => 14,
            Rule::UnexpectedContentType(_) => 15,
            Rule::UnexpectedHttpStatus(_) => 16,
            Rule::InvalidHeader(_) => 17,
            Rule::InvalidGetQuery(_) => 18,
            Rule::InvalidBase64 => 19,
            Rule::UnknownMethod(_) => 20,
            Rule::InvalidMessage(_) => 21,
            Rule::Reset { .. } => 22,
            Rule::Transport(_) => 23,
            Rule::NotRpcResponse { .. } => 24,
            Rule::MetadataTooLarge { .. } => 25,
            Rule::BodyTimeout => 26,
            Rule::BrokenBody(_) => 27,
        }
    }

    #[test]
    fn every_rule_has_one_code_per_side() {
        use Code::*;
        let s = String::new;
        // (rule, code when a client broke it (server side), code when a server broke it)
        let table: Vec<(Rule, Code, Code)> = vec![
            (
                Rule::MessageTooLarge { size: 9, limit: 1 },
                ResourceExhausted,
                ResourceExhausted,
            ),
            (
                Rule::IncompleteEnvelope {
                    received: 1,
                    expected: None,
                },
                InvalidArgument,
                Internal,
            ),
            (Rule::InvalidEnvelopeFlags(4), InvalidArgument, Internal),
            (Rule::CompressedWithoutEncoding, Internal, Internal),
            (Rule::UnsupportedCompression(s()), Unimplemented, Internal),
            (Rule::Decompression(s()), InvalidArgument, Internal),
            (Rule::InvalidTimeout(s()), InvalidArgument, Internal),
            (Rule::MissingMessage, Unimplemented, Unimplemented),
            (Rule::ExtraMessage, Unimplemented, Unimplemented),
            (Rule::DataAfterEnd, InvalidArgument, Internal),
            (Rule::UnexpectedEndStream, InvalidArgument, Internal),
            (Rule::MissingEndStream, InvalidArgument, Internal),
            (Rule::InvalidErrorBody(s()), InvalidArgument, Unknown),
            (Rule::InvalidTrailers(s()), InvalidArgument, Unknown),
            (Rule::MissingGrpcStatus, InvalidArgument, Unknown),
            (Rule::UnexpectedContentType(s()), Unimplemented, Internal),
            (Rule::UnexpectedHttpStatus(503), Unavailable, Unavailable),
            (Rule::InvalidHeader(s()), InvalidArgument, Internal),
            (Rule::InvalidGetQuery(s()), InvalidArgument, Internal),
            (Rule::InvalidBase64, InvalidArgument, Internal),
            (Rule::UnknownMethod(s()), Unimplemented, Unimplemented),
            (Rule::InvalidMessage(s()), InvalidArgument, Internal),
            (Rule::Reset { code: Some(0x8) }, Canceled, Canceled),
            (Rule::Transport(s()), Canceled, Unavailable),
            (
                Rule::NotRpcResponse {
                    status: 404,
                    content_type: s(),
                },
                Unimplemented,
                Unimplemented,
            ),
            (
                Rule::MetadataTooLarge { limit: 1 },
                ResourceExhausted,
                ResourceExhausted,
            ),
            (Rule::BodyTimeout, DeadlineExceeded, DeadlineExceeded),
            (Rule::BrokenBody(s()), InvalidArgument, Internal),
        ];
        let mut seen: Vec<usize> = table.iter().map(|(rule, _, _)| variant(rule)).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen, (0..=27).collect::<Vec<_>>(), "every variant, once");
        for (rule, from_client, from_server) in table {
            let request = ProtocolError::in_request(rule.clone());
            let response = ProtocolError::in_response(rule.clone());
            assert_eq!(request.code(), from_client, "{rule:?} in a request");
            assert_eq!(response.code(), from_server, "{rule:?} in a response");
            // The status carries the same code, and a message that says what happened.
            for err in [request, response] {
                let status = err.to_status();
                assert_eq!(status.code(), err.code());
                assert!(!status.message().is_empty(), "{rule:?}");
            }
        }
    }

    #[test]
    fn resets_and_http_statuses_map_by_their_number() {
        let reset = |code| ProtocolError::in_response(Rule::Reset { code }).code();
        assert_eq!(reset(Some(0x7)), Code::Unavailable);
        assert_eq!(reset(Some(0x8)), Code::Canceled);
        assert_eq!(reset(Some(0xb)), Code::ResourceExhausted);
        assert_eq!(reset(Some(0xc)), Code::PermissionDenied);
        assert_eq!(reset(Some(0x2)), Code::Internal);
        assert_eq!(reset(None), Code::Unavailable);
        // The client side: a client that resets has gone away, whatever the code.
        let gone = ProtocolError::in_request(Rule::Reset { code: Some(0x2) });
        assert_eq!(gone.code(), Code::Canceled);
        let http = |status| ProtocolError::in_response(Rule::UnexpectedHttpStatus(status)).code();
        assert_eq!(http(401), Code::Unauthenticated);
        assert_eq!(http(429), Code::Unavailable);
        assert_eq!(http(418), Code::Unknown);
        assert_eq!(http(999), Code::Unknown);
    }
}
