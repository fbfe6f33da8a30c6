//! Connect unary GET: the `connect`, `encoding`, `message`, `base64` and `compression` query
//! parameters, encoded by clients and decoded by servers.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode, utf8_percent_encode};

use crate::codec::Codec;
use crate::internal::metadata::decode_base64_lenient;

/// Query parameter naming the codec.
pub(crate) const PARAM_ENCODING: &str = "encoding";
/// The value of `connect` this implementation speaks.
pub(crate) const CONNECT_V1: &str = "v1";

/// Characters left unescaped in query values: RFC 3986 unreserved.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A decoded GET query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetQuery {
    /// The `connect` parameter, if present.
    pub connect_version: Option<String>,
    /// The `encoding` parameter (codec name), if present.
    pub encoding: Option<String>,
    /// The `compression` parameter, if present.
    pub compression: Option<String>,
    /// The message bytes (base64 already decoded; still compressed if `compression` is set).
    pub message: Bytes,
}

/// Why a GET query was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GetQueryError {
    /// `base64=1` but the message is not base64.
    InvalidBase64,
    /// The message is percent-encoded but not valid UTF-8 (binary data must use base64).
    BinaryWithoutBase64,
}

impl std::fmt::Display for GetQueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GetQueryError::InvalidBase64 => f.write_str("message is not valid base64"),
            GetQueryError::BinaryWithoutBase64 => {
                f.write_str("message is percent-encoded binary; binary messages require base64=1")
            }
        }
    }
}

/// Decodes a GET query string (the part after `?`). Unknown parameters are ignored; for
/// repeated parameters the first occurrence wins.
pub fn decode_get_query(query: &str) -> Result<GetQuery, GetQueryError> {
    let mut connect_version = None;
    let mut encoding = None;
    let mut compression = None;
    let mut raw_message: Option<Vec<u8>> = None;
    let mut base64 = false;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = unescape(key);
        let set = |slot: &mut Option<String>| {
            if slot.is_none() {
                *slot = Some(String::from_utf8_lossy(&unescape(value)).into_owned());
            }
        };
        match key.as_slice() {
            b"connect" => set(&mut connect_version),
            b"encoding" => set(&mut encoding),
            b"compression" => set(&mut compression),
            b"base64" => base64 = unescape(value) == b"1",
            b"message" if raw_message.is_none() => raw_message = Some(unescape(value)),
            _ => {}
        }
    }
    let raw = raw_message.unwrap_or_default();
    let message = if base64 {
        decode_base64_lenient(&raw).ok_or(GetQueryError::InvalidBase64)?
    } else if std::str::from_utf8(&raw).is_err() {
        return Err(GetQueryError::BinaryWithoutBase64);
    } else {
        raw
    };
    Ok(GetQuery {
        connect_version,
        encoding,
        compression,
        message: Bytes::from(message),
    })
}

/// Encodes a GET query string. The message is base64-encoded (URL-safe, unpadded) when it is
/// binary (proto) or compressed, and percent-encoded otherwise.
pub fn encode_get_query(codec: Codec, compression: Option<&str>, message: &[u8]) -> String {
    let use_base64 =
        !codec.is_text() || compression.is_some() || std::str::from_utf8(message).is_err();
    let mut query = String::with_capacity(message.len() * 4 / 3 + 64);
    query.push_str("connect=v1&encoding=");
    query.push_str(codec.name());
    if use_base64 {
        query.push_str("&base64=1");
    }
    if let Some(name) = compression {
        query.push_str("&compression=");
        query.extend(utf8_percent_encode(name, QUERY_VALUE));
    }
    query.push_str("&message=");
    if use_base64 {
        query.push_str(&URL_SAFE_NO_PAD.encode(message));
    } else {
        // Checked above: the message is UTF-8 here.
        let text = std::str::from_utf8(message).unwrap_or_default();
        query.extend(utf8_percent_encode(text, QUERY_VALUE));
    }
    query
}

/// The first value of one query parameter, unescaped. Lets a server classify a GET whose
/// query does not decode as a whole (to reject a bad message in the request's own protocol).
pub(crate) fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (unescape(key) == name.as_bytes())
            .then(|| String::from_utf8_lossy(&unescape(value)).into_owned())
    })
}

/// Percent-decodes a query component, treating `+` as a space (form encoding).
fn unescape(component: &str) -> Vec<u8> {
    let bytes: Vec<u8> = component
        .bytes()
        .map(|b| if b == b'+' { b' ' } else { b })
        .collect();
    percent_decode(&bytes).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_binary_and_text() {
        let proto = [0x0a, 0x03, b'B', b'u', b'f', 0xff];
        let q = encode_get_query(Codec::Proto, None, &proto);
        assert_eq!(q, "connect=v1&encoding=proto&base64=1&message=CgNCdWb_");
        let d = decode_get_query(&q).unwrap();
        assert_eq!(d.connect_version.as_deref(), Some("v1"));
        assert_eq!(d.encoding.as_deref(), Some("proto"));
        assert_eq!(&d.message[..], &proto);

        let json = br#"{"name": "Buf & co+"}"#;
        let q = encode_get_query(Codec::Json, None, json);
        assert!(!q.contains("base64"), "{q}");
        assert_eq!(&decode_get_query(&q).unwrap().message[..], json);

        let q = encode_get_query(Codec::Json, Some("gzip"), b"\x1f\x8b");
        let d = decode_get_query(&q).unwrap();
        assert_eq!(d.compression.as_deref(), Some("gzip"));
        assert_eq!(&d.message[..], b"\x1f\x8b");
    }

    #[test]
    fn servers_accept_any_order_unknown_params_and_padding() {
        let d =
            decode_get_query("message=CgNCdWY%3D&x=1&base64=1&encoding=proto&&connect=v1").unwrap();
        assert_eq!(&d.message[..], b"\x0a\x03Buf");
        let d = decode_get_query("encoding=json&message=%7B%7D").unwrap();
        assert_eq!(d.connect_version, None);
        assert_eq!(&d.message[..], b"{}");
        let d = decode_get_query("encoding=json&message=%7B+%7D").unwrap();
        assert_eq!(&d.message[..], b"{ }");
        let d = decode_get_query("encoding=proto").unwrap();
        assert!(d.message.is_empty());
    }

    #[test]
    fn rejections() {
        assert_eq!(
            decode_get_query("encoding=proto&base64=1&message=!!!"),
            Err(GetQueryError::InvalidBase64)
        );
        assert_eq!(
            decode_get_query("encoding=proto&message=%FF%FE"),
            Err(GetQueryError::BinaryWithoutBase64)
        );
    }
}
