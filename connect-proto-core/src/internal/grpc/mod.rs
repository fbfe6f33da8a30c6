//! gRPC wire elements: the status trailers (`grpc-status`, percent-encoded `grpc-message`,
//! `grpc-status-details-bin`), shared by gRPC (HTTP/2 trailers or a trailers-only response)
//! and gRPC-Web (the trailer frame).

pub mod status_proto;

use http::{HeaderMap, HeaderValue};

use crate::code::Code;
use crate::error::Rule;
use crate::internal::headers::names::{GRPC_MESSAGE, GRPC_STATUS, GRPC_STATUS_DETAILS_BIN};
use crate::internal::metadata::{copy_metadata, decode_binary_value, encode_binary_value};
use crate::status::Status;

/// Writes the status trailers for an outcome (`None` is OK) followed by application metadata.
/// For a failed call the metadata written is `trailers` merged with the status's metadata.
pub fn encode_status(error: Option<&Status>, trailers: &HeaderMap, out: &mut HeaderMap) {
    match error {
        None => {
            out.insert(GRPC_STATUS, HeaderValue::from_static("0"));
        }
        Some(status) => {
            out.insert(GRPC_STATUS, HeaderValue::from(status.code().value()));
            if !status.message().is_empty() {
                let encoded = percent_encode_message(status.message());
                if let Ok(value) = HeaderValue::from_str(&encoded) {
                    out.insert(GRPC_MESSAGE, value);
                }
            }
            if !status.details().is_empty() {
                let proto = status_proto::encode_rpc_status(
                    status.code().value() as i32,
                    status.message(),
                    status.details(),
                );
                out.insert(GRPC_STATUS_DETAILS_BIN, encode_binary_value(&proto));
            }
            copy_metadata(status.metadata(), out);
        }
    }
    copy_metadata(trailers, out);
}

/// Reads the outcome from trailers (or trailers-only headers): `Ok(None)` for OK,
/// `Ok(Some(status))` for an error (its metadata is the application trailers), `Err` when
/// `grpc-status` is missing or malformed.
pub fn decode_status(trailers: &HeaderMap) -> Result<Option<Status>, Rule> {
    let raw = trailers.get(GRPC_STATUS).ok_or(Rule::MissingGrpcStatus)?;
    let value: u32 = std::str::from_utf8(raw.as_bytes())
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Rule::InvalidTrailers(format!("grpc-status {raw:?} is not a number")))?;
    let Some(code) = Code::from_value(value) else {
        return Ok(None);
    };
    let message = trailers
        .get(GRPC_MESSAGE)
        .map(|m| percent_decode_message(m.as_bytes()))
        .unwrap_or_default();
    let mut status = Status::new(code, message);
    if let Some(details) = trailers.get(GRPC_STATUS_DETAILS_BIN) {
        let raw = decode_binary_value(details.as_bytes())
            .ok_or_else(|| Rule::InvalidTrailers("grpc-status-details-bin is not base64".into()))?;
        let proto = status_proto::decode_rpc_status(&raw)
            .map_err(|why| Rule::InvalidTrailers(format!("grpc-status-details-bin: {why}")))?;
        if status.message().is_empty() && !proto.message.is_empty() {
            status = status.with_message(proto.message);
        }
        for detail in proto.details {
            status.add_detail(detail);
        }
    }
    let mut metadata = HeaderMap::new();
    copy_metadata(trailers, &mut metadata);
    Ok(Some(status.with_metadata(metadata)))
}

/// Percent-encodes a `grpc-message`: bytes outside printable ASCII, `%`, and a space at
/// either end (HTTP/1 header parsing and gRPC-Web trailer blocks trim surrounding whitespace)
/// become `%XX`.
pub fn percent_encode_message(message: &str) -> String {
    let bytes = message.as_bytes();
    let mut out = String::with_capacity(message.len());
    for (i, &b) in bytes.iter().enumerate() {
        let edge_space = b == b' ' && (i == 0 || i + 1 == bytes.len());
        if (0x20..=0x7e).contains(&b) && b != b'%' && !edge_space {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(char::from(HEX[(b >> 4) as usize]));
            out.push(char::from(HEX[(b & 0xf) as usize]));
        }
    }
    out
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Decodes a `grpc-message`. Malformed escapes are kept literally (the spec asks receivers not
/// to fail on them); invalid UTF-8 is replaced.
pub fn percent_decode_message(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' && i + 2 < raw.len() {
            if let (Some(hi), Some(lo)) = (hex_value(raw[i + 1]), hex_value(raw[i + 2])) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::ErrorDetail;
    use bytes::Bytes;

    #[test]
    fn percent_encoding_round_trips() {
        for msg in [
            "",
            "plain",
            "100%",
            "caf\u{e9} \u{1f600}",
            "tab\tnew\nline",
            "%%41",
        ] {
            let encoded = percent_encode_message(msg);
            assert!(
                encoded.bytes().all(|b| (0x20..=0x7e).contains(&b)),
                "{encoded}"
            );
            assert_eq!(percent_decode_message(encoded.as_bytes()), msg);
        }
        assert_eq!(percent_encode_message("a%b\u{e9}"), "a%25b%C3%A9");
    }

    /// Found by fuzzing (`fuzz/regressions/pair_ops`): a message starting with a space lost
    /// it in a gRPC-Web trailer frame, whose decoder trims values as HTTP/1 does.
    #[test]
    fn edge_spaces_survive_trimming() {
        assert_eq!(percent_encode_message(" a b "), "%20a b%20");
        assert_eq!(percent_encode_message(" "), "%20");
        let status = Status::new(Code::Canceled, " padded ");
        let mut trailers = HeaderMap::new();
        encode_status(Some(&status), &HeaderMap::new(), &mut trailers);
        let block = crate::internal::grpc_web::encode_trailer_block(&trailers);
        let back = crate::internal::grpc_web::decode_trailer_block(&block, usize::MAX).unwrap();
        assert_eq!(decode_status(&back).unwrap().unwrap().message(), " padded ");
    }

    #[test]
    fn malformed_escapes_are_kept() {
        assert_eq!(percent_decode_message(b"50%"), "50%");
        assert_eq!(percent_decode_message(b"5%z1"), "5%z1");
        assert_eq!(percent_decode_message(b"%4"), "%4");
        assert_eq!(percent_decode_message(b"%41"), "A");
        assert_eq!(percent_decode_message(b"%FF"), "\u{fffd}");
    }

    #[test]
    fn status_round_trip_with_details_and_metadata() {
        let mut meta = HeaderMap::new();
        meta.insert("x-why", HeaderValue::from_static("because"));
        let status = Status::new(Code::FailedPrecondition, "bad state: 100%")
            .with_detail(ErrorDetail::new("a.B", Bytes::from_static(b"\x08\x01")))
            .with_metadata(meta.clone());
        let mut trailers = HeaderMap::new();
        encode_status(Some(&status), &HeaderMap::new(), &mut trailers);
        assert_eq!(trailers.get(GRPC_STATUS).unwrap(), "9");
        assert_eq!(trailers.get(GRPC_MESSAGE).unwrap(), "bad state: 100%25");
        let back = decode_status(&trailers).unwrap().unwrap();
        assert_eq!(back, status);
    }

    #[test]
    fn ok_and_malformed_statuses() {
        let mut ok = HeaderMap::new();
        encode_status(None, &HeaderMap::new(), &mut ok);
        assert_eq!(decode_status(&ok), Ok(None));
        assert_eq!(
            decode_status(&HeaderMap::new()),
            Err(Rule::MissingGrpcStatus)
        );
        for bad in ["", "x", "-1", "1.0", " 1"] {
            let mut t = HeaderMap::new();
            t.insert(GRPC_STATUS, HeaderValue::from_str(bad).unwrap());
            assert!(
                matches!(decode_status(&t), Err(Rule::InvalidTrailers(_))),
                "{bad:?}"
            );
        }
        let mut t = HeaderMap::new();
        t.insert(GRPC_STATUS, HeaderValue::from_static("99"));
        assert_eq!(decode_status(&t).unwrap().unwrap().code(), Code::Unknown);
        t.insert(GRPC_STATUS_DETAILS_BIN, HeaderValue::from_static("!!"));
        assert!(matches!(decode_status(&t), Err(Rule::InvalidTrailers(_))));
    }
}
