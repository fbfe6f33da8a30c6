//! Targets over the pure wire elements: envelopes, gRPC-Web trailer blocks and text bodies,
//! gRPC status trailers and `google.rpc.Status`, timeouts, Connect JSON errors, end-stream
//! messages and GET queries, `grpc-message` escapes, and decompression.

use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use connect_proto_core::compression::{Compression, DecompressError, read_bounded};
use connect_proto_core::error::Rule;
use connect_proto_core::internal::connect::error_json::{
    decode_end_stream, decode_error_body, decode_error_body_or, encode_end_stream,
    encode_error_body,
};
use connect_proto_core::internal::connect::get::{decode_get_query, encode_get_query};
use connect_proto_core::internal::envelope::{EnvelopeDecoder, PREFIX_LEN, encode_envelope};
use connect_proto_core::internal::grpc::status_proto::{
    RpcStatus, decode_rpc_status, encode_rpc_status,
};
use connect_proto_core::internal::grpc::{
    decode_status, encode_status, percent_decode_message, percent_encode_message,
};
use connect_proto_core::internal::grpc_web::{
    TextDecoder, decode_trailer_block, encode_text_chunk, encode_trailer_block,
};
use connect_proto_core::internal::metadata::metadata_of;
use connect_proto_core::internal::timeout::{
    format_connect_timeout, format_grpc_timeout, parse_connect_timeout, parse_grpc_timeout,
};
use connect_proto_core::limits::DEFAULT_MAX_METADATA_SIZE;
use connect_proto_core::status::ErrorDetail;
use connect_proto_core::{Code, Codec};
use http::{HeaderMap, HeaderValue};

use crate::spec::{
    Alg, CodecChoice, HeaderSpec, StatusSpec, assert_only_metadata, chunks, detail_name, duration,
    header_map,
};

/// Envelope decoding under arbitrary chunking, checked against a whole-input reference.
///
/// Input: `[limit/3][pattern length][pattern…][body…]`. Every envelope the decoder yields is
/// the next envelope of the body (prefix and payload re-encode to exactly the consumed bytes),
/// it yields each one as soon as its last byte arrived, never one larger than the limit,
/// fails exactly when a complete prefix announces more than the limit, and `finish` fails
/// exactly when bytes are left over.
pub fn envelope_decoder(data: &[u8]) {
    let [limit, pattern_len, rest @ ..] = data else {
        return;
    };
    let limit = usize::from(*limit) * 3;
    let pattern_len = usize::from(*pattern_len % 8).min(rest.len());
    let (pattern, body) = rest.split_at(pattern_len);

    let mut decoder = EnvelopeDecoder::new(limit);
    assert_eq!(decoder.limit(), limit);
    let mut pushed = 0;
    let mut consumed = 0;
    for chunk in chunks(body, pattern) {
        pushed += chunk.len();
        decoder.push(chunk);
        loop {
            let expected = reference_next(&body[consumed..pushed], limit);
            match (decoder.decode(), expected) {
                (Ok(Some(envelope)), Next::Envelope(len)) => {
                    assert!(envelope.payload.len() <= limit, "payload over the limit");
                    let again = encode_envelope(envelope.flags, &envelope.payload)
                        .expect("payload fits a u32");
                    assert_eq!(&again[..], &body[consumed..consumed + len]);
                    consumed += len;
                }
                (Ok(None), Next::NeedMore) => break,
                (Err(Rule::MessageTooLarge { size, limit: l }), Next::TooLarge(announced)) => {
                    assert_eq!((size, l), (announced, limit));
                    return;
                }
                (got, want) => panic!("decoder gave {got:?}, reference {want:?}"),
            }
        }
        let pending_prefix = if pushed - consumed >= PREFIX_LEN {
            PREFIX_LEN
        } else {
            0
        };
        assert_eq!(decoder.buffered_len(), pushed - consumed - pending_prefix);
    }
    let left = body.len() - consumed;
    match decoder.finish() {
        Ok(()) => assert_eq!(left, 0, "finish accepted {left} leftover bytes"),
        Err(Rule::IncompleteEnvelope { received, expected }) => {
            assert_eq!(received, left);
            assert!(left > 0);
            if left >= PREFIX_LEN {
                let len = u32::from_be_bytes([
                    body[consumed + 1],
                    body[consumed + 2],
                    body[consumed + 3],
                    body[consumed + 4],
                ]);
                assert_eq!(expected, Some(PREFIX_LEN as u64 + u64::from(len)));
            } else {
                assert_eq!(expected, None);
                assert_eq!(&decoder.take_all()[..], &body[consumed..]);
                assert!(decoder.finish().is_ok());
            }
        }
        Err(other) => panic!("finish failed with {other:?}"),
    }
}

#[derive(Debug)]
enum Next {
    Envelope(usize),
    NeedMore,
    TooLarge(u64),
}

/// What a decoder must do with `available` bytes at an envelope boundary.
fn reference_next(available: &[u8], limit: usize) -> Next {
    let Some(prefix) = available.get(..PREFIX_LEN) else {
        return Next::NeedMore;
    };
    let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]);
    if u64::from(len) > limit as u64 {
        return Next::TooLarge(u64::from(len));
    }
    let total = PREFIX_LEN + len as usize;
    if available.len() >= total {
        Next::Envelope(total)
    } else {
        Next::NeedMore
    }
}

/// gRPC-Web trailer block: decoding never panics, names come out lowercase, and a decoded
/// block re-encodes to a block that decodes to the same map (and re-encodes identically).
pub fn grpc_web_trailers(data: &[u8]) {
    let Ok(trailers) = decode_trailer_block(data, DEFAULT_MAX_METADATA_SIZE) else {
        return;
    };
    for name in trailers.keys() {
        assert_eq!(name.as_str(), name.as_str().to_ascii_lowercase());
    }
    let block = encode_trailer_block(&trailers);
    let again =
        decode_trailer_block(&block, DEFAULT_MAX_METADATA_SIZE).expect("an encoded block decodes");
    assert_eq!(again, trailers);
    assert_eq!(encode_trailer_block(&again), block);
}

/// gRPC-Web text bodies: decoding in any chunking agrees with decoding the whole body, and
/// independently padded encoded chunks decode back to the original bytes.
///
/// Input: `[pattern length][pattern…][body…]`.
pub fn grpc_web_text(data: &[u8]) {
    let [pattern_len, rest @ ..] = data else {
        return;
    };
    let pattern_len = usize::from(*pattern_len % 8).min(rest.len());
    let (pattern, body) = rest.split_at(pattern_len);

    let whole = {
        let mut decoder = TextDecoder::new();
        decoder
            .decode(body)
            .and_then(|out| decoder.finish().map(|()| out))
    };
    let chunked = (|| {
        let mut decoder = TextDecoder::new();
        let mut out = Vec::new();
        for chunk in chunks(body, pattern) {
            out.extend_from_slice(&decoder.decode(&chunk)?);
        }
        decoder.finish()?;
        Ok::<_, Rule>(out)
    })();
    match (&whole, &chunked) {
        (Ok(a), Ok(b)) => assert_eq!(&a[..], &b[..]),
        (Err(_), Err(_)) => {}
        _ => panic!("whole {whole:?} but chunked {chunked:?}"),
    }

    // Encoding: each piece padded on its own, as a sender that encodes chunk by chunk.
    let mut encoded = Vec::new();
    for piece in chunks(body, pattern) {
        encoded.extend_from_slice(&encode_text_chunk(&piece));
    }
    let mut decoder = TextDecoder::new();
    let mut out = Vec::new();
    for chunk in chunks(&encoded, &[7, 1, 4, 13]) {
        out.extend_from_slice(&decoder.decode(&chunk).expect("encoded text decodes"));
    }
    decoder.finish().expect("encoded text ends on a group");
    assert_eq!(out, body);
}

#[derive(Arbitrary, Debug)]
struct GrpcStatusInput {
    trailers: Vec<HeaderSpec>,
    details: Option<DetailsSpec>,
    status: StatusSpec,
    extra: Vec<HeaderSpec>,
}

#[derive(Arbitrary, Debug)]
enum DetailsSpec {
    Proto {
        code: i32,
        message: String,
        details: Vec<(String, Vec<u8>)>,
    },
    Raw(Vec<u8>),
    Text(String),
}

/// gRPC status trailers: `decode_status` on generated trailers (with `grpc-status`,
/// percent-encoded `grpc-message` and `grpc-status-details-bin`) never panics and a decoded
/// error re-encodes to the same status; a generated status round-trips through
/// `encode_status` → `decode_status`, its metadata merged with the extra trailers.
pub fn grpc_status(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(input) = GrpcStatusInput::arbitrary(&mut u) else {
        return;
    };
    let mut trailers = header_map(&input.trailers);
    if let Some(details) = &input.details {
        let value = match details {
            DetailsSpec::Proto {
                code,
                message,
                details,
            } => {
                let details: Vec<ErrorDetail> = details
                    .iter()
                    .take(4)
                    .map(|(n, v)| ErrorDetail::new(detail_name(n), Bytes::copy_from_slice(v)))
                    .collect();
                Some(connect_proto_core::internal::metadata::encode_binary_value(
                    &encode_rpc_status(*code, message, &details),
                ))
            }
            DetailsSpec::Raw(raw) => HeaderValue::from_bytes(raw).ok(),
            DetailsSpec::Text(text) => HeaderValue::from_str(text).ok(),
        };
        if let Some(value) = value {
            trailers.insert("grpc-status-details-bin", value);
        }
    }

    match decode_status(&trailers) {
        Ok(Some(status)) => {
            assert_only_metadata(status.metadata(), "decoded status metadata");
            let mut out = HeaderMap::new();
            encode_status(Some(&status), &HeaderMap::new(), &mut out);
            assert_eq!(decode_status(&out), Ok(Some(status)));
        }
        Ok(None) => {
            let raw = trailers.get("grpc-status").expect("OK needs grpc-status");
            let value: u64 = raw.to_str().unwrap_or("x").parse().unwrap_or(1);
            assert_eq!(value, 0, "{raw:?} decoded as OK");
        }
        Err(_) => {}
    }

    let status = input.status.status();
    let extra = header_map(&input.extra);
    let mut out = HeaderMap::new();
    encode_status(Some(&status), &extra, &mut out);
    let back = decode_status(&out)
        .expect("encoded status decodes")
        .expect("an error status");
    assert_eq!(back.code(), status.code());
    assert_eq!(back.message(), status.message());
    assert_eq!(back.details(), status.details());
    let own = metadata_of(status.metadata());
    let added = metadata_of(&extra);
    let mut names: Vec<_> = own.keys().chain(added.keys()).collect();
    names.dedup();
    for name in names {
        let want: Vec<_> = own
            .get_all(name)
            .iter()
            .chain(added.get_all(name))
            .collect();
        let got: Vec<_> = back.metadata().get_all(name).iter().collect();
        assert_eq!(got, want, "metadata {name}");
    }
    assert_eq!(back.metadata().len(), own.len() + added.len());

    let mut ok = HeaderMap::new();
    encode_status(None, &extra, &mut ok);
    assert_eq!(decode_status(&ok), Ok(None));
}

#[derive(Arbitrary, Debug)]
struct RpcStatusSpec {
    code: i32,
    message: String,
    details: Vec<(String, Vec<u8>)>,
}

/// `google.rpc.Status`: decoding arbitrary bytes never panics and a decoded value re-encodes
/// to bytes that decode to the same value; a generated value round-trips.
pub fn status_proto(data: &[u8]) {
    if let Ok(status) = decode_rpc_status(data) {
        let wire = encode_rpc_status(status.code, &status.message, &status.details);
        assert_eq!(decode_rpc_status(&wire).as_ref(), Ok(&status));
    }
    let mut u = Unstructured::new(data);
    let Ok(spec) = RpcStatusSpec::arbitrary(&mut u) else {
        return;
    };
    let details: Vec<ErrorDetail> = spec
        .details
        .iter()
        .map(|(n, v)| ErrorDetail::new(detail_name(n), Bytes::copy_from_slice(v)))
        .collect();
    let wire = encode_rpc_status(spec.code, &spec.message, &details);
    let want = RpcStatus {
        code: spec.code,
        message: spec.message.clone(),
        details,
    };
    assert_eq!(decode_rpc_status(&wire), Ok(want));
}

/// Timeout headers: both parsers never panic; a parsed value formats to a value that parses
/// back to the same duration (Connect) or one no shorter (gRPC); any duration formats to a
/// valid value that is never shorter (saturating at the largest value) and at most one unit
/// longer.
pub fn timeouts(data: &[u8]) {
    const GRPC_MAX: Duration = Duration::from_secs(99_999_999 * 3600);
    const CONNECT_MAX: Duration = Duration::from_millis(9_999_999_999);
    if let Ok(parsed) = parse_grpc_timeout(data) {
        assert!(parsed <= GRPC_MAX);
        let again = parse_grpc_timeout(format_grpc_timeout(parsed).as_bytes())
            .expect("formatted gRPC timeout parses");
        assert!(again >= parsed, "{parsed:?} came back as {again:?}");
    }
    if let Ok(parsed) = parse_connect_timeout(data) {
        assert!(parsed <= CONNECT_MAX);
        let again = parse_connect_timeout(format_connect_timeout(parsed).as_bytes())
            .expect("formatted Connect timeout parses");
        assert_eq!(again, parsed);
    }

    let mut u = Unstructured::new(data);
    let Ok(d) = duration(&mut u) else {
        return;
    };
    let grpc = format_grpc_timeout(d);
    assert!(grpc.len() <= 9, "{grpc}");
    let g = parse_grpc_timeout(grpc.as_bytes()).expect("formatted gRPC timeout parses");
    if d <= GRPC_MAX {
        assert!(g >= d, "{d:?} -> {grpc} -> {g:?}");
        // Rounded up by less than one unit of the chosen unit.
        let unit = match grpc.as_bytes()[grpc.len() - 1] {
            b'n' => Duration::from_nanos(1),
            b'u' => Duration::from_micros(1),
            b'm' => Duration::from_millis(1),
            b'S' => Duration::from_secs(1),
            b'M' => Duration::from_secs(60),
            _ => Duration::from_secs(3600),
        };
        assert!(g - d < unit, "{d:?} -> {grpc}");
    } else {
        assert_eq!(g, GRPC_MAX);
    }
    let connect = format_connect_timeout(d);
    let c = parse_connect_timeout(connect.as_bytes()).expect("formatted Connect timeout parses");
    if d <= CONNECT_MAX {
        assert!(c >= d && c - d < Duration::from_millis(1), "{d:?} -> {c:?}");
    } else {
        assert_eq!(c, CONNECT_MAX);
    }
}

/// Connect JSON error bodies: decoding never panics, the lenient client form agrees with the
/// strict one where that succeeds, and a decoded error re-encodes to the same status; a
/// generated status round-trips.
pub fn connect_error_json(data: &[u8]) {
    let strict = decode_error_body(data);
    let lenient = decode_error_body_or(data, Code::Unavailable);
    if let Ok(status) = &strict {
        assert_eq!(lenient.as_ref(), Ok(status));
        assert!(status.metadata().is_empty());
        let body = encode_error_body(status);
        assert_eq!(decode_error_body(&body).as_ref(), Ok(status));
    }
    if let Ok(status) = &lenient {
        let body = encode_error_body(status);
        assert_eq!(decode_error_body(&body).as_ref(), Ok(status));
    }

    let mut u = Unstructured::new(data);
    let Ok(spec) = StatusSpec::arbitrary(&mut u) else {
        return;
    };
    let status = spec.status().with_metadata(HeaderMap::new());
    let body = encode_error_body(&status);
    assert_eq!(decode_error_body(&body), Ok(status));
}

#[derive(Arbitrary, Debug)]
struct EndStreamSpec {
    error: Option<StatusSpec>,
    trailers: Vec<HeaderSpec>,
}

/// Connect end-stream messages: decoding never panics, the metadata decoded carries no
/// protocol header, and a decoded message re-encodes to one that decodes to the same value;
/// a generated message round-trips.
pub fn connect_end_stream(data: &[u8]) {
    if let Ok(end) = decode_end_stream(data, DEFAULT_MAX_METADATA_SIZE) {
        assert_only_metadata(&end.trailers, "end-stream metadata");
        if let Some(error) = &end.error {
            assert_eq!(error.metadata(), &end.trailers);
        }
        let body = encode_end_stream(end.error.as_ref(), &end.trailers);
        let again = decode_end_stream(&body, DEFAULT_MAX_METADATA_SIZE)
            .expect("an encoded end-stream message decodes");
        assert_eq!(again, end);
    }

    let mut u = Unstructured::new(data);
    let Ok(spec) = EndStreamSpec::arbitrary(&mut u) else {
        return;
    };
    // JSON carries strings: only UTF-8 values survive (others are replaced, lossily).
    let mut trailers = HeaderMap::new();
    for (name, value) in &header_map(&spec.trailers) {
        if std::str::from_utf8(value.as_bytes()).is_ok() {
            trailers.append(name, value.clone());
        }
    }
    let error = spec.error.as_ref().map(|s| s.status());
    let body = encode_end_stream(error.as_ref(), &trailers);
    let end = decode_end_stream(&body, DEFAULT_MAX_METADATA_SIZE)
        .expect("an encoded end-stream message decodes");
    let want_trailers = metadata_of(&trailers);
    assert_eq!(end.trailers, want_trailers);
    assert_eq!(
        end.error,
        error.map(|e| e.with_metadata(want_trailers.clone()))
    );
}

#[derive(Arbitrary, Debug)]
struct GetSpec {
    codec: CodecChoice,
    compression: Option<String>,
    message: Vec<u8>,
}

/// Connect GET queries: decoding any query never panics; a decoded query with a known codec
/// re-encodes to a valid URI query that decodes to the same message, codec and compression;
/// arbitrary message bytes round-trip through `encode_get_query` → `decode_get_query`.
pub fn connect_get_query(data: &[u8]) {
    if let Ok(query) = std::str::from_utf8(data) {
        if let Ok(decoded) = decode_get_query(query) {
            if let Some(codec) = decoded.encoding.as_deref().and_then(Codec::from_name) {
                check_get_round_trip(codec, decoded.compression.as_deref(), &decoded.message);
            }
        }
    }
    let mut u = Unstructured::new(data);
    if let Ok(spec) = GetSpec::arbitrary(&mut u) {
        check_get_round_trip(
            spec.codec.codec(),
            spec.compression.as_deref(),
            &spec.message,
        );
    }
}

fn check_get_round_trip(codec: Codec, compression: Option<&str>, message: &[u8]) {
    let query = encode_get_query(codec, compression, message);
    let uri: http::Uri = format!("http://h/p/q?{query}")
        .parse()
        .unwrap_or_else(|e| panic!("query {query:?} is not URI-safe: {e}"));
    assert_eq!(uri.query(), Some(query.as_str()));
    let back = decode_get_query(&query).expect("an encoded query decodes");
    assert_eq!(back.connect_version.as_deref(), Some("v1"));
    assert_eq!(back.encoding.as_deref(), Some(codec.name()));
    assert_eq!(back.compression.as_deref(), compression);
    assert_eq!(&back.message[..], message);
}

/// `grpc-message` percent-encoding: decoding never panics; any string encodes to a valid
/// header value of printable ASCII that decodes back to it.
pub fn grpc_message_percent(data: &[u8]) {
    let decoded = percent_decode_message(data);
    let text = String::from_utf8_lossy(data);
    for message in [decoded.as_str(), &text] {
        let encoded = percent_encode_message(message);
        assert!(encoded.bytes().all(|b| (0x20..=0x7e).contains(&b)));
        // Header values lose surrounding whitespace (HTTP/1, gRPC-Web trailer blocks).
        assert_eq!(encoded.trim(), encoded);
        assert!(HeaderValue::from_str(&encoded).is_ok());
        assert_eq!(percent_decode_message(encoded.as_bytes()), message);
    }
}

/// Bounded decompression per algorithm: arbitrary input never yields more than the limit nor
/// panics; compress → decompress round-trips, with a limit of exactly the size, and fails
/// with `LimitExceeded` one byte below it.
///
/// Input: `[algorithm][limit hi][limit lo][payload…]`; algorithm 0 is identity.
pub fn decompress(data: &[u8]) {
    let [which, hi, lo, payload @ ..] = data else {
        return;
    };
    let limit = usize::from(u16::from_be_bytes([*hi, *lo]));
    let alg = match which % 6 {
        0 => None,
        n => Some(Alg::ALL[usize::from(n - 1)].get()),
    };
    let Some(alg) = alg else {
        match read_bounded(payload, limit) {
            Ok(out) => assert_eq!(&out[..], payload),
            Err(DecompressError::LimitExceeded { limit: l }) => {
                assert_eq!(l, limit);
                assert!(payload.len() > limit);
            }
            Err(other) => panic!("identity failed: {other}"),
        }
        return;
    };
    check_decompress(alg.as_ref(), payload, limit);
}

fn check_decompress(alg: &dyn Compression, payload: &[u8], limit: usize) {
    match alg.decompress(payload, limit) {
        Ok(out) => assert!(
            out.len() <= limit,
            "{}: {} > {limit}",
            alg.name(),
            out.len()
        ),
        Err(DecompressError::LimitExceeded { limit: l }) => assert_eq!(l, limit),
        Err(_) => {}
    }
    let compressed = alg.compress(payload).expect("compression succeeds");
    let out = alg
        .decompress(&compressed, payload.len())
        .expect("compressed data decompresses");
    assert_eq!(&out[..], payload, "{} round trip", alg.name());
    if !payload.is_empty() {
        assert_eq!(
            alg.decompress(&compressed, payload.len() - 1),
            Err(DecompressError::LimitExceeded {
                limit: payload.len() - 1
            }),
            "{}",
            alg.name()
        );
    }
}
