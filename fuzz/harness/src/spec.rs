//! Shared generators: `arbitrary`-derived descriptions of configurations, heads, statuses and
//! metadata, and the code that turns them into core values. Descriptions lean towards valid
//! protocol values (so the state machines get past admission) and keep an escape hatch to raw
//! bytes everywhere.

use std::sync::Arc;
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use connect_proto_core::compression::{
    Brotli, Compression, CompressionRegistry, Deflate, Gzip, Snappy, Zstd,
};
use connect_proto_core::internal::metadata::{encode_binary_value, is_protocol_header};
use connect_proto_core::protocol::ContentType;
use connect_proto_core::status::{ErrorDetail, Status};
use connect_proto_core::{Code, Codec, Idempotency, MethodKind, MethodSpec, Protocol};
use http::{HeaderMap, HeaderName, HeaderValue};

/// The methods every call target knows, one per shape plus a GET-able unary method.
pub(crate) const METHODS: [MethodSpec; 5] = [
    MethodSpec::new(
        "/fuzz.v1.Svc/Unary",
        MethodKind::Unary,
        Idempotency::Unknown,
    ),
    MethodSpec::new(
        "/fuzz.v1.Svc/Get",
        MethodKind::Unary,
        Idempotency::NoSideEffects,
    ),
    MethodSpec::new(
        "/fuzz.v1.Svc/Client",
        MethodKind::ClientStreaming,
        Idempotency::Unknown,
    ),
    MethodSpec::new(
        "/fuzz.v1.Svc/Server",
        MethodKind::ServerStreaming,
        Idempotency::Idempotent,
    ),
    MethodSpec::new(
        "/fuzz.v1.Svc/Bidi",
        MethodKind::BidiStreaming,
        Idempotency::Unknown,
    ),
];

/// Looks a request path up among [`METHODS`].
pub(crate) fn lookup(path: &str) -> Option<MethodSpec> {
    METHODS.iter().find(|m| m.path == path).cloned()
}

/// Most operations one scenario runs (keeps every input fast).
pub(crate) const MAX_OPS: usize = 96;

/// A built-in compression algorithm.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Alg {
    Gzip,
    Zstd,
    Br,
    Deflate,
    Snappy,
}

impl Alg {
    pub(crate) const ALL: [Alg; 5] = [Alg::Gzip, Alg::Zstd, Alg::Br, Alg::Deflate, Alg::Snappy];

    pub(crate) fn get(self) -> Arc<dyn Compression> {
        match self {
            Alg::Gzip => Arc::new(Gzip),
            Alg::Zstd => Arc::new(Zstd),
            Alg::Br => Arc::new(Brotli),
            Alg::Deflate => Arc::new(Deflate),
            Alg::Snappy => Arc::new(Snappy),
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Alg::Gzip => "gzip",
            Alg::Zstd => "zstd",
            Alg::Br => "br",
            Alg::Deflate => "deflate",
            Alg::Snappy => "snappy",
        }
    }

    pub(crate) fn by_name(name: &str) -> Option<Alg> {
        Alg::ALL.into_iter().find(|a| a.name() == name)
    }
}

/// A registry holding the algorithms whose bit is set in `mask`, in a mask-chosen order.
pub(crate) fn registry(mask: u8) -> CompressionRegistry {
    let mut registry = CompressionRegistry::identity_only();
    let rotate = usize::from(mask >> 5) % Alg::ALL.len();
    for i in 0..Alg::ALL.len() {
        let index = (i + rotate) % Alg::ALL.len();
        if mask & (1 << index) != 0 {
            registry = registry.with(Alg::ALL[index].get());
        }
    }
    registry
}

/// The wire protocol and body form of a call.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wire {
    Connect,
    Grpc,
    GrpcWeb,
    GrpcWebText,
}

impl Wire {
    pub(crate) fn protocol(self) -> Protocol {
        match self {
            Wire::Connect => Protocol::Connect,
            Wire::Grpc => Protocol::Grpc,
            Wire::GrpcWeb | Wire::GrpcWebText => Protocol::GrpcWeb,
        }
    }

    /// The content type a call of `kind` uses with this wire form.
    pub(crate) fn content_type(self, codec: Codec, kind: MethodKind) -> ContentType {
        match self {
            Wire::Connect if kind.is_streaming() => ContentType::connect_streaming(codec),
            Wire::Connect => ContentType::connect_unary(codec),
            Wire::Grpc => ContentType::grpc(codec),
            Wire::GrpcWeb => ContentType::grpc_web(codec),
            Wire::GrpcWebText => ContentType::grpc_web_text(codec),
        }
    }
}

/// A codec choice.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CodecChoice {
    Proto,
    Json,
}

impl CodecChoice {
    pub(crate) fn codec(self) -> Codec {
        match self {
            CodecChoice::Proto => Codec::Proto,
            CodecChoice::Json => Codec::Json,
        }
    }
}

/// A timeout header value: well-formed in either syntax, or raw bytes.
#[derive(Arbitrary, Clone, Debug)]
pub(crate) enum TimeoutChoice {
    Millis(u16),
    Grpc(u32, u8),
    Raw(Vec<u8>),
}

impl TimeoutChoice {
    pub(crate) fn value(&self, protocol: Protocol) -> Vec<u8> {
        match self {
            TimeoutChoice::Millis(ms) => match protocol {
                Protocol::Connect => ms.to_string().into_bytes(),
                _ => format!("{ms}m").into_bytes(),
            },
            TimeoutChoice::Grpc(amount, unit) => {
                let unit = b"HMSmun"[usize::from(*unit) % 6] as char;
                format!("{}{unit}", amount % 100_000_000).into_bytes()
            }
            TimeoutChoice::Raw(raw) => raw.clone(),
        }
    }
}

/// An encoding header value.
#[derive(Arbitrary, Clone, Debug)]
pub(crate) enum EncodingChoice {
    Alg(Alg),
    Identity,
    Raw(String),
}

impl EncodingChoice {
    pub(crate) fn value(&self) -> String {
        match self {
            EncodingChoice::Alg(alg) => alg.name().to_owned(),
            EncodingChoice::Identity => "identity".to_owned(),
            EncodingChoice::Raw(raw) => raw.clone(),
        }
    }
}

/// Header names the protocols care about, plus application metadata names.
pub(crate) const INTERESTING_NAMES: &[&str] = &[
    "grpc-status",
    "grpc-message",
    "grpc-status-details-bin",
    "grpc-encoding",
    "grpc-accept-encoding",
    "grpc-timeout",
    "content-type",
    "content-encoding",
    "accept-encoding",
    "connect-protocol-version",
    "connect-timeout-ms",
    "connect-content-encoding",
    "connect-accept-encoding",
    "trailer-x-meta",
    "trailer-grpc-status",
    "te",
    "x-meta",
    "x-meta-bin",
    "x-other",
];

/// One header: a name (interesting or arbitrary) and a value.
#[derive(Arbitrary, Clone, Debug)]
pub(crate) struct HeaderSpec {
    name: NameChoice,
    value: ValueChoice,
}

#[derive(Arbitrary, Clone, Debug)]
enum NameChoice {
    Known(u8),
    Raw(String),
}

#[derive(Arbitrary, Clone, Debug)]
enum ValueChoice {
    Text(String),
    Number(u32),
    Binary(Vec<u8>),
    Raw(Vec<u8>),
}

impl HeaderSpec {
    /// Appends the header if its name and value are valid HTTP.
    pub(crate) fn append_to(&self, map: &mut HeaderMap) {
        let name = match &self.name {
            NameChoice::Known(i) => HeaderName::from_static(
                INTERESTING_NAMES[usize::from(*i) % INTERESTING_NAMES.len()],
            ),
            NameChoice::Raw(raw) => match HeaderName::from_bytes(raw.as_bytes()) {
                Ok(name) => name,
                Err(_) => return,
            },
        };
        let value = match &self.value {
            ValueChoice::Text(text) => HeaderValue::from_str(text).ok(),
            ValueChoice::Number(n) => Some(HeaderValue::from(*n)),
            ValueChoice::Binary(raw) => Some(encode_binary_value(raw)),
            ValueChoice::Raw(raw) => HeaderValue::from_bytes(raw).ok(),
        };
        if let Some(value) = value {
            map.append(name, value);
        }
    }
}

/// A header map from header descriptions.
pub(crate) fn header_map(specs: &[HeaderSpec]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for spec in specs.iter().take(16) {
        spec.append_to(&mut map);
    }
    map
}

/// An error status description.
#[derive(Arbitrary, Clone, Debug)]
pub(crate) struct StatusSpec {
    code: u8,
    message: String,
    details: Vec<(String, Vec<u8>)>,
    metadata: Vec<HeaderSpec>,
}

impl StatusSpec {
    pub(crate) fn status(&self) -> Status {
        let code = Code::from_value(u32::from(self.code % 16) + 1).unwrap_or(Code::Unknown);
        let mut status = Status::new(code, self.message.clone());
        for (name, value) in self.details.iter().take(4) {
            status.add_detail(ErrorDetail::new(
                detail_name(name),
                Bytes::copy_from_slice(value),
            ));
        }
        status.with_metadata(header_map(&self.metadata))
    }
}

/// A detail type name as every encoding carries it unchanged: no `/` (type URLs keep only
/// what follows the last one).
pub(crate) fn detail_name(raw: &str) -> String {
    raw.replace('/', ".")
}

/// Whether no protocol header is in `map` (what the core promises for metadata).
pub(crate) fn assert_only_metadata(map: &HeaderMap, what: &str) {
    for name in map.keys() {
        assert!(
            !is_protocol_header(name.as_str()),
            "{what} carries protocol header {name}"
        );
    }
}

/// A duration that may be anything from zero to `Duration::MAX`.
pub(crate) fn duration(u: &mut Unstructured<'_>) -> arbitrary::Result<Duration> {
    let secs: u64 = match u.int_in_range(0u8..=3)? {
        0 => 0,
        1 => u.int_in_range(0..=100_000)?,
        2 => u.int_in_range(0..=400_000_000_000)?,
        _ => u.arbitrary()?,
    };
    let nanos: u32 = u.int_in_range(0..=999_999_999)?;
    Ok(Duration::new(secs, nanos))
}

/// Splits `data` into chunks whose sizes cycle through `pattern` (0 means an empty chunk);
/// an empty pattern yields the whole input as one chunk.
pub(crate) fn chunks(data: &[u8], pattern: &[u8]) -> Vec<Bytes> {
    let data = Bytes::copy_from_slice(data);
    if pattern.is_empty() {
        return vec![data];
    }
    let mut out = Vec::new();
    let mut at = 0;
    let mut i = 0;
    while at < data.len() {
        let size = usize::from(pattern[i % pattern.len()]);
        i += 1;
        let end = (at + size).min(data.len());
        out.push(data.slice(at..end));
        at = end;
        if i > 4 * data.len() + 8 {
            // A pattern of zeros: finish in one chunk.
            out.push(data.slice(at..));
            break;
        }
    }
    out
}

/// Prints a decoded scenario when `CONNECT_FUZZ_DEBUG` is set (for triage with the `replay`
/// example).
pub(crate) fn debug(scenario: &dyn std::fmt::Debug) {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *ON.get_or_init(|| std::env::var_os("CONNECT_FUZZ_DEBUG").is_some()) {
        eprintln!("{scenario:#?}");
    }
}
