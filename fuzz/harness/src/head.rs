//! Request heads and server configurations for admission, and the `accept_head` target.

use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use connect_proto_core::internal::connect::error_json::{decode_end_stream, decode_error_body};
use connect_proto_core::internal::connect::get::encode_get_query;
use connect_proto_core::internal::envelope::{EnvelopeDecoder, FLAG_END_STREAM};
use connect_proto_core::internal::grpc::decode_status;
use connect_proto_core::protocol::{ContentType, ContentTypeMatch};
use connect_proto_core::{Code, Protocol, ServerCall, ServerConfig};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, request};

use crate::spec::{
    Alg, CodecChoice, EncodingChoice, HeaderSpec, METHODS, TimeoutChoice, Wire, lookup, registry,
};

/// A server configuration.
#[derive(Arbitrary, Clone, Debug)]
pub(crate) struct ServerConfigSpec {
    /// `None`: the default limit; otherwise a small one so limits are hit.
    receive_limit: Option<u16>,
    send_limit: Option<u16>,
    algorithms: u8,
    compress_min_bytes: u8,
    require_connect_protocol_header: bool,
    max_timeout_ms: Option<u32>,
    protocols: u8,
}

impl ServerConfigSpec {
    pub(crate) fn config(&self) -> ServerConfig {
        let mut config = ServerConfig::new()
            .compression(registry(self.algorithms))
            .compress_min_bytes(usize::from(self.compress_min_bytes))
            .require_connect_protocol_header(self.require_connect_protocol_header)
            .max_timeout(
                self.max_timeout_ms
                    .map(|ms| Duration::from_millis(ms.into())),
            )
            .max_send_message_size(self.send_limit.map(usize::from));
        if let Some(limit) = self.receive_limit {
            config = config.max_receive_message_size(usize::from(limit));
        }
        if self.protocols & 0x7 != 0 {
            config = config.protocols(
                self.protocols & 1 != 0,
                self.protocols & 2 != 0,
                self.protocols & 4 != 0,
            );
        }
        config
    }
}

/// A request head: mostly well-formed for one of the known methods, with room for anything.
#[derive(Arbitrary, Clone, Debug)]
pub(crate) struct HeadSpec {
    method: HttpMethod,
    path: PathChoice,
    content_type: ContentTypeChoice,
    version: Option<VersionChoice>,
    timeout: Option<TimeoutChoice>,
    encoding: Option<EncodingChoice>,
    accept: Option<AcceptChoice>,
    query: Option<QueryChoice>,
    extra: Vec<HeaderSpec>,
}

#[derive(Arbitrary, Clone, Debug)]
enum HttpMethod {
    Post,
    Get,
    Put,
    Raw(String),
}

#[derive(Arbitrary, Clone, Debug)]
enum PathChoice {
    Known(u8),
    Unknown,
    Raw(String),
}

#[derive(Arbitrary, Clone, Debug)]
enum ContentTypeChoice {
    /// The content type that fits the method's shape.
    Matching(Wire, CodecChoice),
    /// The Connect form of the other shape (unary for streaming methods and back).
    OtherShape(CodecChoice),
    Raw(String),
    Absent,
}

#[derive(Arbitrary, Clone, Debug)]
enum VersionChoice {
    One,
    Raw(String),
}

#[derive(Arbitrary, Clone, Debug)]
enum AcceptChoice {
    Algorithms(Vec<(Alg, bool)>),
    Raw(String),
}

#[derive(Arbitrary, Clone, Debug)]
enum QueryChoice {
    Encoded {
        codec: CodecChoice,
        compress: Option<Alg>,
        message: Vec<u8>,
        connect: bool,
    },
    Raw(String),
}

impl HeadSpec {
    pub(crate) fn build(&self) -> request::Parts {
        let method = match &self.method {
            HttpMethod::Post => Method::POST,
            HttpMethod::Get => Method::GET,
            HttpMethod::Put => Method::PUT,
            HttpMethod::Raw(raw) => Method::from_bytes(raw.as_bytes()).unwrap_or(Method::POST),
        };
        let (path, spec) = match &self.path {
            PathChoice::Known(i) => {
                let spec = METHODS[usize::from(*i) % METHODS.len()].clone();
                (spec.path().to_owned(), Some(spec))
            }
            PathChoice::Unknown => ("/fuzz.v1.Svc/Nope".to_owned(), None),
            PathChoice::Raw(raw) => (raw.clone(), lookup(raw)),
        };
        let kind = spec.map_or(connect_proto_core::MethodKind::Unary, |s| s.kind);
        let mut headers = HeaderMap::new();
        let mut protocol = Protocol::Connect;
        match &self.content_type {
            ContentTypeChoice::Matching(wire, codec) => {
                protocol = wire.protocol();
                let ct = wire.content_type(codec.codec(), kind);
                headers.insert("content-type", ct.header_value());
            }
            ContentTypeChoice::OtherShape(codec) => {
                let ct = if kind.is_streaming() {
                    ContentType::connect_unary(codec.codec())
                } else {
                    ContentType::connect_streaming(codec.codec())
                };
                headers.insert("content-type", ct.header_value());
            }
            ContentTypeChoice::Raw(raw) => {
                if let Ok(value) = HeaderValue::from_str(raw) {
                    headers.insert("content-type", value);
                }
                if let ContentTypeMatch::Supported(ct) = ContentType::parse(raw) {
                    protocol = ct.protocol();
                }
            }
            ContentTypeChoice::Absent => {}
        }
        if let Some(version) = &self.version {
            let value = match version {
                VersionChoice::One => Some(HeaderValue::from_static("1")),
                VersionChoice::Raw(raw) => HeaderValue::from_str(raw).ok(),
            };
            if let Some(value) = value {
                headers.insert("connect-protocol-version", value);
            }
        }
        let streaming = kind.is_streaming();
        if let Some(timeout) = &self.timeout {
            if let Ok(value) = HeaderValue::from_bytes(&timeout.value(protocol)) {
                headers.insert(HeaderName::from_static(protocol.timeout_header()), value);
            }
        }
        let (encoding_name, accept_name) = match protocol {
            Protocol::Connect if streaming => {
                ("connect-content-encoding", "connect-accept-encoding")
            }
            Protocol::Connect => ("content-encoding", "accept-encoding"),
            _ => ("grpc-encoding", "grpc-accept-encoding"),
        };
        if let Some(encoding) = &self.encoding {
            if let Ok(value) = HeaderValue::from_str(&encoding.value()) {
                headers.insert(encoding_name, value);
            }
        }
        if let Some(accept) = &self.accept {
            let value = match accept {
                AcceptChoice::Algorithms(list) => list
                    .iter()
                    .take(6)
                    .map(|(alg, refuse)| {
                        if *refuse {
                            format!("{};q=0", alg.name())
                        } else {
                            alg.name().to_owned()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                AcceptChoice::Raw(raw) => raw.clone(),
            };
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.append(accept_name, value);
            }
        }
        for extra in self.extra.iter().take(8) {
            extra.append_to(&mut headers);
        }
        let query = self.query.as_ref().map(|q| match q {
            QueryChoice::Encoded {
                codec,
                compress,
                message,
                connect,
            } => {
                let (compression, payload) = match compress {
                    Some(alg) => (
                        Some(alg.name()),
                        alg.get()
                            .compress(message)
                            .map(|b| b.to_vec())
                            .unwrap_or_default(),
                    ),
                    None => (None, message.clone()),
                };
                let q = encode_get_query(codec.codec(), compression, &payload);
                if *connect {
                    q
                } else {
                    q.replacen("connect=v1&", "", 1)
                }
            }
            QueryChoice::Raw(raw) => raw.clone(),
        });
        let uri = match &query {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        let mut builder = http::Request::builder().method(method.clone());
        builder = match uri.parse::<http::Uri>() {
            Ok(uri) => builder.uri(uri),
            Err(_) => builder.uri("/fuzz.v1.Svc/Unary"),
        };
        let (mut parts, ()) = builder
            .body(())
            .unwrap_or_else(|_| http::Request::new(()))
            .into_parts();
        parts.headers = headers;
        parts
    }
}

#[derive(Arbitrary, Debug)]
struct AcceptInput {
    config: ServerConfigSpec,
    head: HeadSpec,
    content_type: String,
}

/// Content-type parsing and admission of arbitrary request heads: parsing never panics and
/// canonical forms parse back to themselves; admission either accepts a call that agrees with
/// the request's content type, or renders a rejection whose response carries, in the
/// detected protocol's own encoding, exactly the status it reports.
pub fn accept_head(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(input) = AcceptInput::arbitrary(&mut u) else {
        return;
    };
    crate::spec::debug(&input);
    if let ContentTypeMatch::Supported(ct) = ContentType::parse(&input.content_type) {
        assert_eq!(
            ContentType::parse(ct.as_str()),
            ContentTypeMatch::Supported(ct)
        );
    }
    let config = input.config.config();
    let head = input.head.build();
    let now = Instant::now();
    match ServerCall::accept(&config, now, &head, lookup) {
        Ok(call) => {
            assert!(call.deadline().is_none_or(|d| d >= now));
            assert_eq!(
                Some(call.method().path.clone()),
                lookup(head.uri.path()).map(|m| m.path)
            );
            if head.method == Method::GET {
                assert_eq!(
                    call.content_type(),
                    ContentType::connect_unary(call.codec())
                );
            } else {
                let value = head
                    .headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .expect("an admitted POST has a content type");
                assert_eq!(
                    ContentType::parse(value),
                    ContentTypeMatch::Supported(call.content_type())
                );
            }
        }
        Err(rejection) => check_rejection(rejection),
    }
}

/// A rejection's response must say what its status says, in its protocol's encoding.
fn check_rejection(rejection: connect_proto_core::Rejection) {
    let status = rejection.status().cloned();
    let http_status = rejection.http_status();
    let (head, body) = rejection.into_parts();
    assert_eq!(head.status, http_status);
    let Some(status) = status else {
        assert!(
            [
                StatusCode::NOT_FOUND,
                StatusCode::METHOD_NOT_ALLOWED,
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            ]
            .contains(&http_status),
            "plain rejection with {http_status}"
        );
        assert!(body.is_empty());
        return;
    };
    let content_type = head
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .expect("an RPC rejection has a content type");
    // Connect renders an unknown method as 404 (its clients then read `unimplemented` from
    // the HTTP status alone), whatever the body form.
    let not_found = status.code() == Code::Unimplemented && http_status == StatusCode::NOT_FOUND;
    if content_type == "application/json" {
        // Connect unary.
        assert!(not_found || http_status == status.code().http_status());
        let decoded = decode_error_body(&body).expect("a Connect error body decodes");
        assert_eq!(decoded.code(), status.code());
        assert_eq!(decoded.message(), status.message());
        return;
    }
    match ContentType::parse(content_type) {
        ContentTypeMatch::Supported(ct) if ct.protocol() == Protocol::Connect => {
            assert!(ct.form.is_enveloped());
            assert!(not_found || http_status == StatusCode::OK);
            let mut decoder = EnvelopeDecoder::new(usize::MAX);
            decoder.push(body);
            let frame = decoder.decode().expect("one frame").expect("a whole frame");
            assert_eq!(frame.flags, FLAG_END_STREAM);
            assert!(decoder.finish().is_ok());
            let end = decode_end_stream(&frame.payload, usize::MAX).expect("an end-stream message");
            let error = end.error.expect("an error");
            assert_eq!(
                (error.code(), error.message()),
                (status.code(), status.message())
            );
        }
        ContentTypeMatch::Supported(_) => {
            // gRPC and gRPC-Web: trailers-only.
            assert_eq!(http_status, StatusCode::OK);
            assert_eq!(body, Bytes::new());
            let decoded = decode_status(&head.headers)
                .expect("a trailers-only head decodes")
                .expect("an error");
            assert_eq!(
                (decoded.code(), decoded.message()),
                (status.code(), status.message())
            );
        }
        other => panic!("rejection with content type {content_type:?}: {other:?}"),
    }
}
