//! Connect's JSON `Error` (unary error bodies and the `error` of end-stream messages) and the
//! `EndStreamResponse` that closes every Connect streaming response.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value};

use crate::code::Code;
use crate::error::Rule;
use crate::internal::metadata::{MetadataBudget, decode_base64_lenient, is_protocol_header};
use crate::status::{ErrorDetail, Status};

/// The JSON `Error` object for a status (metadata is not part of it).
pub(crate) fn error_to_json(status: &Status) -> Value {
    let mut obj = Map::new();
    obj.insert("code".into(), Value::String(status.code().as_str().into()));
    if !status.message().is_empty() {
        obj.insert("message".into(), Value::String(status.message().into()));
    }
    if !status.details().is_empty() {
        let details = status
            .details()
            .iter()
            .map(|d| {
                let mut detail = Map::new();
                detail.insert("type".into(), Value::String(d.type_name().into()));
                detail.insert(
                    "value".into(),
                    Value::String(STANDARD_NO_PAD.encode(d.value())),
                );
                if let Some(debug) = d.debug() {
                    detail.insert("debug".into(), debug.clone());
                }
                Value::Object(detail)
            })
            .collect();
        obj.insert("details".into(), Value::Array(details));
    }
    Value::Object(obj)
}

/// Encodes a unary error body.
pub fn encode_error_body(status: &Status) -> Bytes {
    Bytes::from(error_to_json(status).to_string())
}

/// Decodes a unary error body. `Err` explains why the body is not a valid `Error`; callers
/// then fall back to the HTTP status mapping.
pub fn decode_error_body(body: &[u8]) -> Result<Status, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    error_from_json(&value)
}

/// Decodes a unary error body as a client must: a missing, null or unknown code becomes
/// `fallback` (the code the HTTP status implies) while the message and details are kept.
pub fn decode_error_body_or(body: &[u8], fallback: Code) -> Result<Status, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    error_from_json_or(&value, fallback)
}

/// Parses an `Error` object.
pub(crate) fn error_from_json(value: &Value) -> Result<Status, String> {
    parse_error(value, None)
}

/// Parses an `Error` object, using `fallback` when the code is missing, null or unknown (the
/// message and details are kept). Clients use it with the code the HTTP status implies.
pub(crate) fn error_from_json_or(value: &Value, fallback: Code) -> Result<Status, String> {
    parse_error(value, Some(fallback))
}

fn parse_error(value: &Value, fallback: Option<Code>) -> Result<Status, String> {
    let obj = value.as_object().ok_or("error is not a JSON object")?;
    let code = match (obj.get("code"), fallback) {
        (Some(Value::String(name)), fallback) => match (Code::from_name(name), fallback) {
            (Some(code), _) | (None, Some(code)) => code,
            (None, None) => return Err(format!("unknown error code {name:?}")),
        },
        (None | Some(Value::Null), Some(fallback)) => fallback,
        (Some(_), _) => return Err("error code is not a string".into()),
        (None, None) => return Err("error has no code".into()),
    };
    let message = match obj.get("message") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(m)) => m.clone(),
        Some(_) => return Err("error message is not a string".into()),
    };
    let mut status = Status::new(code, message);
    match obj.get("details") {
        None | Some(Value::Null) => {}
        Some(Value::Array(details)) => {
            for detail in details {
                status.add_detail(detail_from_json(detail)?);
            }
        }
        Some(_) => return Err("error details are not an array".into()),
    }
    Ok(status)
}

fn detail_from_json(value: &Value) -> Result<ErrorDetail, String> {
    let obj = value.as_object().ok_or("error detail is not an object")?;
    let type_name = obj
        .get("type")
        .and_then(Value::as_str)
        .ok_or("error detail has no type")?;
    let encoded = match obj.get("value") {
        Some(Value::String(v)) => v.as_str(),
        None => "",
        Some(_) => return Err("error detail value is not a string".into()),
    };
    let raw =
        decode_base64_lenient(encoded.as_bytes()).ok_or("error detail value is not base64")?;
    let mut detail = ErrorDetail::new(type_name, raw);
    if let Some(debug) = obj.get("debug") {
        detail = detail.with_debug(debug.clone());
    }
    Ok(detail)
}

/// Encodes an `EndStreamResponse`: the error (if the call failed) and the trailing metadata.
/// For a failed call, `trailers` are usually the status's metadata.
pub fn encode_end_stream(error: Option<&Status>, trailers: &HeaderMap) -> Bytes {
    let mut obj = Map::new();
    if let Some(status) = error {
        obj.insert("error".into(), error_to_json(status));
    }
    let mut metadata = Map::new();
    for name in trailers.keys() {
        // Protocol headers are never application metadata (as in the other trailer encoders).
        if is_protocol_header(name.as_str()) {
            continue;
        }
        let values = trailers
            .get_all(name)
            .iter()
            .map(|v| Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        metadata.insert(name.as_str().to_owned(), Value::Array(values));
    }
    if !metadata.is_empty() {
        obj.insert("metadata".into(), Value::Object(metadata));
    }
    Bytes::from(Value::Object(obj).to_string())
}

/// A decoded `EndStreamResponse`.
#[derive(Clone, Debug, PartialEq)]
pub struct EndStream {
    /// The error, if the call failed. Its metadata is the trailing metadata.
    pub error: Option<Status>,
    /// The trailing metadata.
    pub trailers: HeaderMap,
}

/// Decodes an `EndStreamResponse`. A malformed message fails with
/// [`Rule::InvalidErrorBody`]; metadata larger than `metadata_limit` bytes (see
/// `entry_size`) with [`Rule::MetadataTooLarge`].
pub fn decode_end_stream(body: &[u8], metadata_limit: usize) -> Result<EndStream, Rule> {
    parse_end_stream(body, metadata_limit).map_err(|error| match error {
        EndStreamError::Invalid(why) => Rule::InvalidErrorBody(why),
        EndStreamError::Limit(rule) => rule,
    })
}

enum EndStreamError {
    Invalid(String),
    Limit(Rule),
}

impl From<String> for EndStreamError {
    fn from(why: String) -> Self {
        EndStreamError::Invalid(why)
    }
}

impl From<&str> for EndStreamError {
    fn from(why: &str) -> Self {
        EndStreamError::Invalid(why.to_owned())
    }
}

fn parse_end_stream(body: &[u8], metadata_limit: usize) -> Result<EndStream, EndStreamError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let obj = value
        .as_object()
        .ok_or("end-stream message is not a JSON object")?;
    let mut trailers = HeaderMap::new();
    let mut budget = MetadataBudget::new(metadata_limit);
    match obj.get("metadata") {
        None | Some(Value::Null) => {}
        Some(Value::Object(metadata)) => {
            for (key, values) in metadata {
                let name = HeaderName::from_bytes(key.as_bytes())
                    .map_err(|_| format!("invalid metadata key {key:?}"))?;
                let values = values
                    .as_array()
                    .ok_or("metadata values are not an array")?;
                // Protocol headers are never application metadata (the encoder skips them too);
                // their values must still be well-formed.
                let keep = !is_protocol_header(name.as_str());
                for v in values {
                    let v = v.as_str().ok_or("metadata value is not a string")?;
                    let v = HeaderValue::from_str(v)
                        .map_err(|_| format!("invalid metadata value for {key:?}"))?;
                    if keep {
                        budget
                            .append(&mut trailers, name.clone(), v)
                            .map_err(EndStreamError::Limit)?;
                    }
                }
            }
        }
        Some(_) => return Err("end-stream metadata is not an object".into()),
    }
    // `{"error": null}` is read as no error, as peers in the wild send it for success; an
    // error without a usable code is `unknown` with its message kept.
    let error = match obj.get("error") {
        None | Some(Value::Null) => None,
        Some(err) => Some(error_from_json_or(err, Code::Unknown)?.with_metadata(trailers.clone())),
    };
    Ok(EndStream { error, trailers })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::DEFAULT_MAX_METADATA_SIZE;

    fn rich_status() -> Status {
        Status::new(Code::Unavailable, "overloaded: back off")
            .with_detail(ErrorDetail::new(
                "google.rpc.RetryInfo",
                Bytes::from_static(b"\x0a\x02\x08\x3c"),
            ))
            .with_detail(ErrorDetail::new("acme.Empty", Bytes::new()))
    }

    #[test]
    fn error_body_round_trip() {
        let status = rich_status();
        let body = encode_error_body(&status);
        let text = std::str::from_utf8(&body).unwrap();
        assert!(text.contains("\"code\":\"unavailable\""), "{text}");
        assert!(text.contains("\"value\":\"CgIIPA\""), "{text}");
        assert_eq!(decode_error_body(&body).unwrap(), status);
    }

    #[test]
    fn error_body_rejections() {
        for bad in [
            &b""[..],
            b"{",
            b"[]",
            b"{}",
            b"{\"code\":null}",
            b"{\"code\":3}",
            b"{\"code\":\"no_such_code\"}",
            b"{\"code\":\"internal\",\"message\":5}",
            b"{\"code\":\"internal\",\"details\":{}}",
            b"{\"code\":\"internal\",\"details\":[{\"value\":\"AA\"}]}",
            b"{\"code\":\"internal\",\"details\":[{\"type\":\"x\",\"value\":\"!!\"}]}",
        ] {
            assert!(
                decode_error_body(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn padded_and_url_safe_detail_values_are_accepted() {
        let body = br#"{"code":"internal","details":[{"type":"a.B","value":"_-8="}]}"#;
        let status = decode_error_body(body).unwrap();
        assert_eq!(&status.details()[0].value()[..], &[0xff, 0xef]);
    }

    #[test]
    fn end_stream_round_trip_success_and_error() {
        let mut trailers = HeaderMap::new();
        trailers.append("x-cost", HeaderValue::from_static("237"));
        trailers.append("x-cost", HeaderValue::from_static("12"));
        trailers.insert("x-bin", HeaderValue::from_static("AAEC"));
        let ok = decode_end_stream(
            &encode_end_stream(None, &trailers),
            DEFAULT_MAX_METADATA_SIZE,
        )
        .unwrap();
        assert_eq!(ok.error, None);
        assert_eq!(ok.trailers, trailers);

        let status = rich_status();
        let failed = decode_end_stream(
            &encode_end_stream(Some(&status), &trailers),
            DEFAULT_MAX_METADATA_SIZE,
        )
        .unwrap();
        let err = failed.error.unwrap();
        assert_eq!(err.code(), Code::Unavailable);
        assert_eq!(err.details(), status.details());
        assert_eq!(err.metadata(), &trailers);
        assert_eq!(&encode_end_stream(None, &HeaderMap::new())[..], b"{}");
    }

    #[test]
    fn clients_keep_the_message_when_the_code_is_unusable() {
        for body in [
            &br#"{"message":"oops"}"#[..],
            br#"{"code":null,"message":"oops"}"#,
            br#"{"code":"teapot","message":"oops"}"#,
        ] {
            let status = decode_error_body_or(body, Code::Unavailable).unwrap();
            assert_eq!(status.code(), Code::Unavailable);
            assert_eq!(status.message(), "oops");
            assert!(decode_error_body(body).is_err());
        }
        let end = decode_end_stream(
            br#"{"error":{"message":"oops"}}"#,
            DEFAULT_MAX_METADATA_SIZE,
        )
        .unwrap();
        let error = end.error.unwrap();
        assert_eq!((error.code(), error.message()), (Code::Unknown, "oops"));
        assert_eq!(
            decode_end_stream(br#"{"error":null}"#, DEFAULT_MAX_METADATA_SIZE)
                .unwrap()
                .error,
            None
        );
    }

    /// Found by fuzzing (`fuzz/corpus/connect_end_stream/seed-protocol-metadata`): protocol
    /// headers in the end-stream `metadata` leaked into trailers and error metadata.
    #[test]
    fn end_stream_metadata_drops_protocol_headers() {
        let body = br#"{"error":{"code":"internal"},"metadata":{"grpc-status":["0"],"content-type":["x"],"x-ok":["y"]}}"#;
        let end = decode_end_stream(body, DEFAULT_MAX_METADATA_SIZE).unwrap();
        assert_eq!(end.trailers.len(), 1);
        assert_eq!(end.trailers.get("x-ok").unwrap(), "y");
        assert_eq!(end.error.unwrap().metadata(), &end.trailers);
        assert!(
            decode_end_stream(
                br#"{"metadata":{"grpc-status":[1]}}"#,
                DEFAULT_MAX_METADATA_SIZE
            )
            .is_err()
        );
    }

    #[test]
    fn end_stream_rejections() {
        for bad in [
            &b"null"[..],
            b"{\"error\":[]}",
            b"{\"error\":{\"code\":5}}",
            b"{\"metadata\":[]}",
            b"{\"metadata\":{\"k\":\"v\"}}",
            b"{\"metadata\":{\"k\":[1]}}",
            b"{\"metadata\":{\"bad key\":[\"v\"]}}",
        ] {
            assert!(
                decode_end_stream(bad, DEFAULT_MAX_METADATA_SIZE).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn end_stream_metadata_is_bounded() {
        // 30,000 distinct keys would overflow an `http::HeaderMap` (a panic) without a bound.
        let keys: Vec<String> = (0..30_000).map(|i| format!("\"k{i}\":[\"v\"]")).collect();
        let body = format!("{{\"metadata\":{{{}}}}}", keys.join(","));
        assert_eq!(
            decode_end_stream(body.as_bytes(), DEFAULT_MAX_METADATA_SIZE).unwrap_err(),
            Rule::MetadataTooLarge {
                limit: DEFAULT_MAX_METADATA_SIZE
            }
        );
        // At the limit and one byte past it: `k0: v` costs 2 + 1 + 32 bytes.
        let one = br#"{"metadata":{"k0":["v"]}}"#;
        assert_eq!(decode_end_stream(one, 35).unwrap().trailers.len(), 1);
        assert!(matches!(
            decode_end_stream(one, 34),
            Err(Rule::MetadataTooLarge { limit: 34 })
        ));
    }
}
