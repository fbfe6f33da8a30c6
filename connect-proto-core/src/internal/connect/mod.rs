//! Connect protocol wire elements: JSON errors and end-stream messages, GET queries, and the
//! `trailer-` prefix that carries unary trailing metadata in response headers.

pub mod error_json;
pub mod get;

use http::{HeaderMap, HeaderName};

use crate::internal::headers::CONNECT_TRAILER_PREFIX;
use crate::internal::metadata::is_protocol_header;

/// Writes trailing metadata into unary response headers as `trailer-<name>` entries.
pub fn prefix_trailers(trailers: &HeaderMap, headers: &mut HeaderMap) {
    for (name, value) in trailers {
        if is_protocol_header(name.as_str()) {
            continue;
        }
        let prefixed = format!("{CONNECT_TRAILER_PREFIX}{}", name.as_str());
        if let Ok(prefixed) = HeaderName::from_bytes(prefixed.as_bytes()) {
            headers.append(prefixed, value.clone());
        }
    }
}

/// Splits unary response headers into leading metadata and (unprefixed) trailing metadata.
/// Protocol headers are dropped from both.
pub(crate) fn split_unary_headers(headers: &HeaderMap) -> (HeaderMap, HeaderMap) {
    let mut leading = HeaderMap::new();
    let mut trailing = HeaderMap::new();
    for (name, value) in headers {
        if let Some(stripped) = name.as_str().strip_prefix(CONNECT_TRAILER_PREFIX) {
            // Protocol headers are never trailing metadata (`prefix_trailers` skips them too).
            if is_protocol_header(stripped) {
                continue;
            }
            if let Ok(stripped) = HeaderName::from_bytes(stripped.as_bytes()) {
                trailing.append(stripped, value.clone());
            }
        } else if !is_protocol_header(name.as_str()) {
            leading.append(name.clone(), value.clone());
        }
    }
    (leading, trailing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn trailers_round_trip_through_prefixed_headers() {
        let mut trailers = HeaderMap::new();
        trailers.append("x-cost", HeaderValue::from_static("1"));
        trailers.append("x-cost", HeaderValue::from_static("2"));
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        let mut headers = HeaderMap::new();
        headers.insert(
            "content-type",
            HeaderValue::from_static("application/proto"),
        );
        headers.insert("x-lead", HeaderValue::from_static("a"));
        prefix_trailers(&trailers, &mut headers);
        assert_eq!(headers.get_all("trailer-x-cost").iter().count(), 2);
        assert!(!headers.contains_key("trailer-grpc-status"));
        let (leading, trailing) = split_unary_headers(&headers);
        assert_eq!(leading.len(), 1);
        assert_eq!(
            trailing.get_all("x-cost").iter().collect::<Vec<_>>(),
            ["1", "2"]
        );
    }

    /// Found by fuzzing (`fuzz/regressions/client_ops`): a `trailer-grpc-status` response
    /// header became a `grpc-status` entry in the trailing (and error) metadata.
    #[test]
    fn prefixed_protocol_headers_are_not_trailers() {
        let mut headers = HeaderMap::new();
        headers.insert("trailer-grpc-status", HeaderValue::from_static("0"));
        headers.insert("trailer-content-type", HeaderValue::from_static("x"));
        headers.insert("trailer-x-ok", HeaderValue::from_static("y"));
        let (leading, trailing) = split_unary_headers(&headers);
        assert!(leading.is_empty());
        assert_eq!(trailing.len(), 1);
        assert_eq!(trailing.get("x-ok").unwrap(), "y");
    }
}
