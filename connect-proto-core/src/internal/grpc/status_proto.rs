//! The binary `google.rpc.Status` message carried (base64) in `grpc-status-details-bin`:
//! `code` (field 1, int32), `message` (2, string), `details` (3, repeated
//! `google.protobuf.Any { type_url = 1; value = 2; }`). Unknown fields are skipped.

use bytes::Bytes;

use crate::status::ErrorDetail;

/// The decoded content of a `google.rpc.Status`.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct RpcStatus {
    /// The numeric code (0 is OK).
    pub code: i32,
    /// The message.
    pub message: String,
    /// The details.
    pub details: Vec<ErrorDetail>,
}

/// Encodes a `google.rpc.Status`.
pub fn encode_rpc_status(code: i32, message: &str, details: &[ErrorDetail]) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        16 + message.len() + details.iter().map(|d| d.value().len() + 64).sum::<usize>(),
    );
    if code != 0 {
        put_varint(&mut out, 1 << 3);
        // int32 is sign-extended to 64 bits on the wire.
        put_varint(&mut out, i64::from(code) as u64);
    }
    if !message.is_empty() {
        put_bytes_field(&mut out, 2, message.as_bytes());
    }
    for detail in details {
        let type_url = detail.type_url();
        let mut any = Vec::with_capacity(type_url.len() + detail.value().len() + 8);
        put_bytes_field(&mut any, 1, type_url.as_bytes());
        if !detail.value().is_empty() {
            put_bytes_field(&mut any, 2, detail.value());
        }
        put_bytes_field(&mut out, 3, &any);
    }
    out
}

/// Decodes a `google.rpc.Status`; `Err` describes the malformation.
pub fn decode_rpc_status(mut input: &[u8]) -> Result<RpcStatus, &'static str> {
    let mut status = RpcStatus::default();
    while !input.is_empty() {
        let (field, wire_type) = read_key(&mut input)?;
        match (field, wire_type) {
            (1, 0) => status.code = read_varint(&mut input)? as i32,
            (2, 2) => {
                let raw = read_len_delimited(&mut input)?;
                status.message = std::str::from_utf8(raw)
                    .map_err(|_| "message is not UTF-8")?
                    .to_owned();
            }
            (3, 2) => {
                let raw = read_len_delimited(&mut input)?;
                status.details.push(decode_any(raw)?);
            }
            _ => skip_field(&mut input, wire_type)?,
        }
    }
    Ok(status)
}

fn decode_any(mut input: &[u8]) -> Result<ErrorDetail, &'static str> {
    let mut type_url = "";
    let mut value: &[u8] = &[];
    while !input.is_empty() {
        let (field, wire_type) = read_key(&mut input)?;
        match (field, wire_type) {
            (1, 2) => {
                type_url = std::str::from_utf8(read_len_delimited(&mut input)?)
                    .map_err(|_| "type URL is not UTF-8")?;
            }
            (2, 2) => value = read_len_delimited(&mut input)?,
            _ => skip_field(&mut input, wire_type)?,
        }
    }
    // A type URL is `<host>/<full.name>`; the name is what follows the last slash.
    // The name is the URL's last segment; a host other than type.googleapis.com is kept.
    Ok(ErrorDetail::new(type_url, Bytes::copy_from_slice(value)))
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_bytes_field(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_varint(out, u64::from(field) << 3 | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn read_varint(input: &mut &[u8]) -> Result<u64, &'static str> {
    let mut value = 0u64;
    for i in 0..10 {
        let (&byte, rest) = input.split_first().ok_or("truncated varint")?;
        *input = rest;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Ok(value);
        }
    }
    Err("varint too long")
}

fn read_key(input: &mut &[u8]) -> Result<(u64, u8), &'static str> {
    let key = read_varint(input)?;
    let field = key >> 3;
    if field == 0 {
        return Err("field number 0");
    }
    Ok((field, (key & 7) as u8))
}

fn read_len_delimited<'a>(input: &mut &'a [u8]) -> Result<&'a [u8], &'static str> {
    let len = read_varint(input)?;
    let len = usize::try_from(len).map_err(|_| "length too large")?;
    if len > input.len() {
        return Err("truncated length-delimited field");
    }
    let (head, rest) = input.split_at(len);
    *input = rest;
    Ok(head)
}

fn skip_field(input: &mut &[u8], wire_type: u8) -> Result<(), &'static str> {
    match wire_type {
        0 => read_varint(input).map(drop),
        1 => skip_fixed(input, 8),
        2 => read_len_delimited(input).map(drop),
        5 => skip_fixed(input, 4),
        _ => Err("unsupported wire type"),
    }
}

fn skip_fixed(input: &mut &[u8], n: usize) -> Result<(), &'static str> {
    if input.len() < n {
        return Err("truncated fixed field");
    }
    *input = &input[n..];
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let details = vec![
            ErrorDetail::new(
                "google.rpc.RetryInfo",
                Bytes::from_static(b"\x0a\x02\x08\x3c"),
            ),
            ErrorDetail::new("acme.Empty", Bytes::new()),
        ];
        let wire = encode_rpc_status(14, "overloaded \u{1f525}", &details);
        let back = decode_rpc_status(&wire).unwrap();
        assert_eq!(back.code, 14);
        assert_eq!(back.message, "overloaded \u{1f525}");
        assert_eq!(back.details, details);
        assert_eq!(decode_rpc_status(&[]).unwrap(), RpcStatus::default());
    }

    #[test]
    fn unknown_fields_are_skipped_and_truncation_is_rejected() {
        let mut wire = vec![0x20, 0x05, 0x2d, 1, 2, 3, 4, 0x31, 0, 0, 0, 0, 0, 0, 0, 0];
        wire.extend(encode_rpc_status(5, "x", &[]));
        assert_eq!(decode_rpc_status(&wire).unwrap().code, 5);
        let full = encode_rpc_status(
            3,
            "hello",
            &[ErrorDetail::new("a.B", Bytes::from_static(b"zz"))],
        );
        let whole = decode_rpc_status(&full).unwrap();
        for cut in 1..full.len() {
            // A cut on a field boundary is a valid shorter message; never the whole one.
            assert_ne!(
                decode_rpc_status(&full[..cut]).ok(),
                Some(whole.clone()),
                "cut at {cut}"
            );
        }
        assert!(decode_rpc_status(&full[..1]).is_err());
        assert!(decode_rpc_status(&full[..5]).is_err());
        assert!(
            decode_rpc_status(&[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
            ])
            .is_err()
        );
        assert!(decode_rpc_status(&[0x00]).is_err());
        assert!(decode_rpc_status(&[0x0b]).is_err());
    }
}
