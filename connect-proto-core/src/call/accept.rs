//! Admission of a request head: either the facts of an accepted call (protocol, codec,
//! compression, deadline, method, GET message), from which
//! [`ServerCall::accept`](crate::ServerCall::accept) builds the call, or a [`Rejection`] that
//! renders the exact response the detected protocol requires.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, request, response};

use crate::call::render::{self, Rendered};
use crate::call::server_config::ServerConfig;
use crate::codec::Codec;
use crate::compression::Compression;
use crate::error::{ProtocolError, Rule};
use crate::internal::connect::get::{
    CONNECT_V1, GetQuery, GetQueryError, PARAM_ENCODING, decode_get_query, query_param,
};
use crate::internal::headers::names::{CONTENT_TYPE, GRPC_ACCEPT_ENCODING};
use crate::internal::headers::{Accepted, CONNECT_PROTOCOL_VERSION_1, RequestHeaders};
use crate::internal::timeout::{parse_connect_timeout, parse_grpc_timeout};
use crate::method::MethodSpec;
use crate::protocol::{ContentType, ContentTypeMatch, Protocol, WireForm};
use crate::status::Status;

/// A request that is not admitted, with the complete response to send.
#[derive(Debug)]
pub struct Rejection(Box<RejectionParts>);

#[derive(Debug)]
struct RejectionParts {
    head: response::Parts,
    body: Bytes,
    status: Option<Status>,
}

impl Rejection {
    /// The RPC error the response carries, or `None` for plain HTTP rejections (404 for a
    /// non-RPC request, 405, 415).
    pub fn status(&self) -> Option<&Status> {
        self.0.status.as_ref()
    }

    /// The HTTP status of the response.
    pub fn http_status(&self) -> StatusCode {
        self.0.head.status
    }

    /// The response head and body.
    pub fn into_parts(self) -> (response::Parts, Bytes) {
        let parts = *self.0;
        (parts.head, parts.body)
    }

    /// The response.
    pub fn into_response(self) -> http::Response<Bytes> {
        let (head, body) = self.into_parts();
        http::Response::from_parts(head, body)
    }

    /// The response that ends a request with `status` before it is admitted (an overloaded
    /// server, a proxy whose backend is gone), rendered for the protocol the request head
    /// looks like: a Connect error body, a gRPC or gRPC-Web trailers-only response. A request
    /// of no RPC protocol gets the HTTP status of the code and an empty body.
    pub fn for_request(head: &request::Parts, status: Status) -> Rejection {
        let query = if head.method == Method::GET {
            head.uri.query().map(decode_get_query)
        } else {
            None
        };
        match detect(head, head.headers.get(CONTENT_TYPE), query.as_ref()) {
            Some(content_type) => Rejection::rpc(content_type, status),
            None => {
                let code = status.code();
                Rejection(Box::new(RejectionParts {
                    head: render::parts(code.http_status()),
                    body: Bytes::new(),
                    status: Some(status),
                }))
            }
        }
    }

    fn plain(rendered: Rendered) -> Self {
        Rejection(Box::new(RejectionParts {
            head: rendered.head,
            body: rendered.body,
            status: None,
        }))
    }

    fn rpc(content_type: ContentType, status: Status) -> Self {
        let rendered = render::error_response(content_type, &status, &HeaderMap::new());
        Rejection(Box::new(RejectionParts {
            head: rendered.head,
            body: rendered.body,
            status: Some(status),
        }))
    }
}

/// Everything admission decided about a call.
#[derive(Debug)]
pub(crate) struct Admitted {
    pub(crate) content_type: ContentType,
    pub(crate) method: MethodSpec,
    pub(crate) deadline: Option<Instant>,
    pub(crate) request_compression: Option<Arc<dyn Compression>>,
    pub(crate) response_compression: Option<Arc<dyn Compression>>,
    pub(crate) get_message: Option<Bytes>,
}

/// Admits or rejects a request head. `lookup` maps the request path to the method (or `None`
/// for an unknown method).
pub(crate) fn admit(
    config: &ServerConfig,
    now: Instant,
    head: &request::Parts,
    lookup: impl FnOnce(&str) -> Option<MethodSpec>,
) -> Result<Admitted, Rejection> {
    let is_get = head.method == Method::GET;
    let headers = RequestHeaders::read(&head.headers);
    let query = if is_get {
        head.uri.query().map(decode_get_query)
    } else {
        None
    };

    // What protocol does the request look like? Used to render every later error.
    let detected = detect(head, headers.content_type, query.as_ref());

    let Some(method) = lookup(head.uri.path()) else {
        let status =
            ProtocolError::in_request(Rule::UnknownMethod(head.uri.path().to_owned())).to_status();
        return Err(match detected {
            Some(ct) if ct.protocol() == Protocol::Connect => {
                // 404 agrees with `unimplemented` both for clients that read the JSON body and
                // for those that infer the code from the HTTP status.
                let mut rejection = Rejection::rpc(ct, status);
                rejection.0.head.status = StatusCode::NOT_FOUND;
                rejection
            }
            Some(ct) if config.enabled(ct.protocol()) => Rejection::rpc(ct, status),
            _ => Rejection::plain(Rendered {
                head: render::parts(StatusCode::NOT_FOUND),
                body: Bytes::new(),
            }),
        });
    };

    let streaming = method.kind.is_streaming();
    let accept_post =
        || render::accept_post_list(streaming, config.connect, config.grpc, config.grpc_web);

    // HTTP method.
    if is_get {
        if !(config.connect && method.allows_get()) {
            return Err(Rejection::plain(render::method_not_allowed("POST")));
        }
    } else if head.method != Method::POST {
        let allow = if config.connect && method.allows_get() {
            "GET, POST"
        } else {
            "POST"
        };
        return Err(Rejection::plain(render::method_not_allowed(allow)));
    }

    // Content type.
    let content_type = match detected {
        Some(ct)
            if config.enabled(ct.protocol())
                && match ct.form {
                    WireForm::ConnectUnary => !streaming,
                    WireForm::ConnectStreaming => streaming,
                    _ => true,
                } =>
        {
            ct
        }
        _ => {
            return Err(Rejection::plain(render::unsupported_media_type(
                &accept_post(),
            )));
        }
    };
    let reject =
        |rule: Rule| Rejection::rpc(content_type, ProtocolError::in_request(rule).to_status());

    // Protocol version (Connect).
    if content_type.protocol() == Protocol::Connect {
        let version = if is_get {
            match &query {
                Some(Ok(q)) => q.connect_version.as_deref().map(|v| (v, CONNECT_V1)),
                _ => None,
            }
        } else {
            header_text(headers.connect_protocol_version).map(|v| (v, CONNECT_PROTOCOL_VERSION_1))
        };
        match version {
            Some((got, want)) if got.trim() != want => {
                return Err(reject(Rule::InvalidHeader(format!(
                    "connect protocol version must be {want:?}, got {got:?}"
                ))));
            }
            None if config.require_connect_protocol_header => {
                let what = if is_get {
                    "query parameter connect=v1"
                } else {
                    "header connect-protocol-version: 1"
                };
                return Err(reject(Rule::InvalidHeader(format!(
                    "missing required {what}"
                ))));
            }
            _ => {}
        }
    }

    // Deadline.
    let timeout = match content_type.protocol() {
        Protocol::Connect => headers
            .connect_timeout
            .map(|v| parse_connect_timeout(v.as_bytes())),
        Protocol::Grpc | Protocol::GrpcWeb => headers
            .grpc_timeout
            .map(|v| parse_grpc_timeout(v.as_bytes())),
    };
    let timeout = match timeout.transpose() {
        Ok(t) => t,
        Err(why) => return Err(reject(Rule::InvalidTimeout(why.to_string()))),
    };
    let timeout = match (timeout, config.max_timeout) {
        (Some(t), Some(max)) => Some(t.min(max)),
        (t, max) => t.or(max),
    };
    // A timeout too large for the clock is no deadline at all.
    let deadline = timeout.and_then(|t| now.checked_add(t));

    // Compression.
    let requested = if is_get {
        match &query {
            Some(Ok(q)) => q.compression.as_deref(),
            _ => None,
        }
    } else {
        header_text(headers.encoding(content_type.form))
    };
    let request_compression = match config.compression.resolve(requested) {
        Ok(alg) => alg,
        Err(name) => {
            let mut rejection = reject(Rule::UnsupportedCompression(format!(
                "{name:?} (supported: {})",
                config.compression.supported_list()
            )));
            if content_type.protocol() != Protocol::Connect {
                if let Some(accept) = config.compression.accept_encoding() {
                    rejection
                        .0
                        .head
                        .headers
                        .insert(GRPC_ACCEPT_ENCODING, accept.clone());
                }
            }
            return Err(rejection);
        }
    };
    // One accept header (the usual case) is used as it is; several are joined into one list.
    let joined;
    let accept = match headers.accept(content_type.form) {
        Accepted::Absent => None,
        Accepted::Once(one) => one.to_str().ok(),
        Accepted::Repeated => {
            let (_, accept_header) = content_type.form.compression_headers();
            joined = head
                .headers
                .get_all(&accept_header)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect::<Vec<_>>()
                .join(",");
            Some(joined.as_str())
        }
    };
    let accept = accept.filter(|a| !a.is_empty());
    let response_compression = config
        .compression
        .negotiate(request_compression.as_ref(), accept);

    // GET message.
    let get_message = match query {
        Some(Ok(q)) => Some(q.message),
        Some(Err(why)) => return Err(reject(Rule::InvalidGetQuery(why.to_string()))),
        None if is_get => Some(Bytes::new()),
        None => None,
    };

    Ok(Admitted {
        content_type,
        method,
        deadline,
        request_compression,
        response_compression,
        get_message,
    })
}

/// A header's value as text (`None` if absent or not visible ASCII).
fn header_text(value: Option<&HeaderValue>) -> Option<&str> {
    value.and_then(|v| v.to_str().ok())
}

/// The content type a request head is in: its `content-type` (`content_type`, read from its
/// headers), or for a GET its query's `encoding` (a GET whose message is malformed still
/// names its codec).
fn detect(
    head: &request::Parts,
    content_type: Option<&HeaderValue>,
    query: Option<&Result<GetQuery, GetQueryError>>,
) -> Option<ContentType> {
    if head.method == Method::GET {
        let encoding = match (query, head.uri.query()) {
            (Some(Ok(q)), _) => q.encoding.clone(),
            (Some(Err(_)), Some(raw)) => query_param(raw, PARAM_ENCODING),
            _ => None,
        };
        return encoding
            .as_deref()
            .and_then(Codec::from_name)
            .map(ContentType::connect_unary);
    }
    let content_type = header_text(content_type)?;
    match ContentType::parse(content_type) {
        ContentTypeMatch::Supported(ct) => Some(ct),
        _ => None,
    }
}
