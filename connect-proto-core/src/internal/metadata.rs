//! Custom metadata rules shared by the protocols: binary (`-bin`) values, reserved names,
//! and the split between protocol headers and application metadata.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::error::Rule;
use crate::internal::headers;

/// Bytes an entry costs against a metadata limit (as `SETTINGS_MAX_HEADER_LIST_SIZE` counts).
pub(crate) fn entry_size(name: &HeaderName, value: &HeaderValue) -> usize {
    name.as_str().len() + value.len() + 32
}

/// Appends metadata entries up to a size limit, never panicking: the accounting every decoder
/// of body-carried metadata uses.
#[derive(Debug)]
pub(crate) struct MetadataBudget {
    limit: usize,
    used: usize,
}

impl MetadataBudget {
    pub(crate) fn new(limit: usize) -> Self {
        MetadataBudget { limit, used: 0 }
    }

    /// Appends one entry, or fails with [`Rule::MetadataTooLarge`].
    pub(crate) fn append(
        &mut self,
        map: &mut HeaderMap,
        name: HeaderName,
        value: HeaderValue,
    ) -> Result<(), Rule> {
        self.used = self.used.saturating_add(entry_size(&name, &value));
        if self.used > self.limit {
            return Err(Rule::MetadataTooLarge { limit: self.limit });
        }
        map.try_append(name, value)
            .map(drop)
            .map_err(|_| Rule::MetadataTooLarge { limit: self.limit })
    }
}

/// Encodes a binary metadata value (unpadded standard base64, as the protocols recommend).
pub fn encode_binary_value(value: &[u8]) -> HeaderValue {
    let encoded = STANDARD_NO_PAD.encode(value);
    // Base64 output is always a valid header value.
    HeaderValue::from_str(&encoded).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Decodes a binary metadata value, accepting padded and unpadded standard or URL-safe base64.
pub(crate) fn decode_binary_value(value: &[u8]) -> Option<Vec<u8>> {
    decode_base64_lenient(value)
}

/// Decodes base64 in any of the four common alphabets/padding forms.
pub(crate) fn decode_base64_lenient(value: &[u8]) -> Option<Vec<u8>> {
    let trimmed = trim_ascii(value);
    let url_safe = trimmed.iter().any(|b| *b == b'-' || *b == b'_');
    let padded = trimmed.last() == Some(&b'=');
    let engine = match (url_safe, padded) {
        (false, false) => &STANDARD_NO_PAD,
        (false, true) => &STANDARD,
        (true, false) => &URL_SAFE_NO_PAD,
        (true, true) => &URL_SAFE,
    };
    engine.decode(trimmed).ok()
}

fn trim_ascii(value: &[u8]) -> &[u8] {
    let start = value
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &value[start..end]
}

/// Whether a header belongs to the protocol layer (and is therefore never application
/// metadata): content negotiation, timeouts, compression, status trailers, hop-by-hop
/// headers, and the reserved `connect-` and `grpc-` prefixes.
pub fn is_protocol_header(name: &str) -> bool {
    matches!(
        name,
        headers::CONTENT_TYPE
            | headers::CONTENT_ENCODING
            | headers::ACCEPT_ENCODING
            | headers::CONTENT_LENGTH
            | headers::TE
            | headers::X_GRPC_WEB
            | headers::X_USER_AGENT
            | "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "upgrade"
            | "trailer"
            | "host"
    ) || name.starts_with("connect-")
        || name.starts_with("grpc-")
}

/// Copies every application metadata entry (see [`is_protocol_header`]) of `from` into `to`.
pub(crate) fn copy_metadata(from: &HeaderMap, to: &mut HeaderMap) {
    let mut last: Option<&HeaderName> = None;
    for (name, value) in from {
        if is_protocol_header(name.as_str()) {
            continue;
        }
        // Preserve multi-valued entries: `append` after the first value of each name.
        if last != Some(name) && !to.contains_key(name) {
            to.insert(name.clone(), value.clone());
        } else {
            to.append(name.clone(), value.clone());
        }
        last = Some(name);
    }
}

/// Application metadata of `from` (protocol headers removed), as a new map.
pub fn metadata_of(from: &HeaderMap) -> HeaderMap {
    // No capacity up front: most responses carry no application metadata, and an empty map
    // does not allocate.
    let mut out = HeaderMap::new();
    copy_metadata(from, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_values_round_trip_in_every_form() {
        let raw = [0u8, 1, 2, 0xfe, 0xff];
        let encoded = encode_binary_value(&raw);
        assert_eq!(encoded, "AAEC/v8");
        for form in ["AAEC/v8", "AAEC/v8=", "AAEC_v8", "AAEC_v8=", " AAEC/v8 "] {
            assert_eq!(
                decode_binary_value(form.as_bytes()).as_deref(),
                Some(&raw[..]),
                "{form}"
            );
        }
        assert_eq!(decode_binary_value(b"!!"), None);
    }

    #[test]
    fn protocol_headers_are_not_metadata() {
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_static("application/grpc"));
        h.insert("grpc-status", HeaderValue::from_static("0"));
        h.insert("connect-timeout-ms", HeaderValue::from_static("10"));
        h.append("x-custom", HeaderValue::from_static("a"));
        h.append("x-custom", HeaderValue::from_static("b"));
        let m = metadata_of(&h);
        assert_eq!(m.len(), 2);
        assert_eq!(m.get_all("x-custom").iter().collect::<Vec<_>>(), ["a", "b"]);
    }
}
