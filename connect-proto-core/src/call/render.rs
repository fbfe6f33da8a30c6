//! Rendering complete HTTP responses for protocol-level outcomes: errors before any response
//! byte was sent (per protocol), and plain HTTP rejections (404, 405, 415).

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, response};

use crate::codec::Codec;
use crate::internal::connect::error_json::{encode_end_stream, encode_error_body};
use crate::internal::connect::prefix_trailers;
use crate::internal::envelope::FLAG_END_STREAM;
use crate::internal::grpc::encode_status;
use crate::internal::headers::{ACCEPT_POST, ALLOW, CONTENT_TYPE};
use crate::internal::metadata::copy_metadata;
use crate::protocol::{ContentType, WireForm};
use crate::status::Status;

/// A complete response: head and body (no trailers: errors before the head use trailers-only
/// forms).
pub(crate) struct Rendered {
    pub(crate) head: response::Parts,
    pub(crate) body: Bytes,
}

pub(crate) fn parts(status: StatusCode) -> response::Parts {
    let (mut head, ()) = http::Response::new(()).into_parts();
    head.status = status;
    head
}

/// The response for an error that ends a call before any response byte was sent.
/// `headers` are response headers the application set; the status's metadata are trailers.
pub(crate) fn error_response(
    content_type: ContentType,
    status: &Status,
    headers: &HeaderMap,
) -> Rendered {
    match content_type.form {
        WireForm::ConnectUnary => {
            let mut head = parts(status.code().http_status());
            copy_metadata(headers, &mut head.headers);
            prefix_trailers(status.metadata(), &mut head.headers);
            head.headers
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            Rendered {
                head,
                body: encode_error_body(status),
            }
        }
        WireForm::ConnectStreaming => {
            let mut head = parts(StatusCode::OK);
            copy_metadata(headers, &mut head.headers);
            head.headers
                .insert(CONTENT_TYPE, content_type.header_value());
            let end = encode_end_stream(Some(status), status.metadata());
            let body = crate::internal::envelope::encode_envelope(FLAG_END_STREAM, &end)
                .unwrap_or_default();
            Rendered { head, body }
        }
        WireForm::Grpc | WireForm::GrpcWeb | WireForm::GrpcWebText => {
            let mut head = parts(StatusCode::OK);
            copy_metadata(headers, &mut head.headers);
            head.headers
                .insert(CONTENT_TYPE, content_type.header_value());
            encode_status(Some(status), &HeaderMap::new(), &mut head.headers);
            Rendered {
                head,
                body: Bytes::new(),
            }
        }
    }
}

/// `415 Unsupported Media Type` with the content types the method accepts.
pub(crate) fn unsupported_media_type(accept_post: &str) -> Rendered {
    let mut head = parts(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    if let Ok(v) = HeaderValue::from_str(accept_post) {
        head.headers.insert(ACCEPT_POST, v);
    }
    Rendered {
        head,
        body: Bytes::new(),
    }
}

/// `405 Method Not Allowed` with the allowed methods.
pub(crate) fn method_not_allowed(allow: &'static str) -> Rendered {
    let mut head = parts(StatusCode::METHOD_NOT_ALLOWED);
    head.headers.insert(ALLOW, HeaderValue::from_static(allow));
    Rendered {
        head,
        body: Bytes::new(),
    }
}

/// The content types a server accepts for a method of the given streaming form.
pub(crate) fn accept_post_list(
    streaming: bool,
    connect: bool,
    grpc: bool,
    grpc_web: bool,
) -> String {
    let mut list: Vec<&str> = Vec::new();
    for codec in [Codec::Proto, Codec::Json] {
        if connect {
            list.push(if streaming {
                ContentType::connect_streaming(codec).as_str()
            } else {
                ContentType::connect_unary(codec).as_str()
            });
        }
    }
    if grpc {
        list.extend([
            "application/grpc",
            "application/grpc+proto",
            "application/grpc+json",
        ]);
    }
    if grpc_web {
        list.extend([
            "application/grpc-web",
            "application/grpc-web+proto",
            "application/grpc-web+json",
            "application/grpc-web-text",
            "application/grpc-web-text+proto",
            "application/grpc-web-text+json",
        ]);
    }
    list.join(", ")
}
