//! Message compression: the synchronous [`Compression`] provider trait, the built-in
//! algorithms (each behind a cargo feature), the [`CompressionRegistry`] a call negotiates
//! against, and `accept-encoding` negotiation.
//!
//! Decompression is always bounded: [`Compression::decompress`] stops as soon as the output
//! would exceed the limit it is given, so a small compressed payload cannot expand into a
//! large allocation ("zip bomb").
//!
//! | name      | feature   | format                                   |
//! |-----------|-----------|------------------------------------------|
//! | `gzip`    | `gzip`    | RFC 1952 gzip                            |
//! | `zstd`    | `zstd`    | Zstandard frame                          |
//! | `br`      | `br`      | Brotli                                   |
//! | `deflate` | `deflate` | zlib-wrapped DEFLATE (RFC 1950, HTTP's `deflate`); raw RFC 1951 streams are accepted too |
//! | `snappy`  | `snappy`  | Snappy framing format                    |

use std::fmt;
use std::io::Read;
use std::sync::Arc;

use bytes::Bytes;
use http::HeaderValue;

/// The name of the no-op encoding every peer accepts.
pub const IDENTITY: &str = "identity";

/// A compression algorithm usable for RPC messages. Implementations are synchronous and
/// stateless between messages (compression contexts never span message boundaries).
pub trait Compression: Send + Sync + fmt::Debug {
    /// The encoding token used in `*-encoding` headers (`"gzip"`).
    fn name(&self) -> &'static str;

    /// Compresses one message.
    fn compress(&self, input: &[u8]) -> Result<Bytes, CompressionError>;

    /// Decompresses one message, failing with [`DecompressError::LimitExceeded`] as soon as the
    /// output would exceed `limit` bytes.
    fn decompress(&self, input: &[u8], limit: usize) -> Result<Bytes, DecompressError>;
}

/// Compressing a message failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompressionError(pub String);

impl fmt::Display for CompressionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "compression failed: {}", self.0)
    }
}

impl std::error::Error for CompressionError {}

/// Decompressing a message failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecompressError {
    /// The decompressed message would exceed the limit.
    LimitExceeded {
        /// The limit in bytes.
        limit: usize,
    },
    /// The input is not a valid stream of this algorithm.
    Corrupt(String),
}

impl fmt::Display for DecompressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecompressError::LimitExceeded { limit } => {
                write!(f, "decompressed size exceeds limit {limit}")
            }
            DecompressError::Corrupt(why) => write!(f, "corrupt compressed data: {why}"),
        }
    }
}

impl std::error::Error for DecompressError {}

/// Reads `reader` to the end into a buffer, failing once more than `limit` bytes come out.
pub fn read_bounded(reader: impl Read, limit: usize) -> Result<Bytes, DecompressError> {
    let mut out = Vec::new();
    let cap = (limit as u64).saturating_add(1);
    match reader.take(cap).read_to_end(&mut out) {
        Ok(_) if out.len() > limit => Err(DecompressError::LimitExceeded { limit }),
        Ok(_) => Ok(Bytes::from(out)),
        Err(err) => Err(DecompressError::Corrupt(err.to_string())),
    }
}

/// The algorithms a side supports, in order of preference.
///
/// Cheap to clone (one reference-count increment). [`Default`] holds every built-in
/// algorithm enabled by cargo features, in the order `gzip`, `zstd`, `br`, `deflate`, `snappy`.
#[derive(Clone, Debug)]
pub struct CompressionRegistry {
    algorithms: Arc<[Arc<dyn Compression>]>,
    accept: Option<HeaderValue>,
}

impl Default for CompressionRegistry {
    fn default() -> Self {
        // `mut` is unused when no algorithm feature is enabled.
        #[allow(unused_mut)]
        let mut registry = CompressionRegistry::identity_only();
        #[cfg(feature = "gzip")]
        {
            registry = registry.with(Arc::new(Gzip));
        }
        #[cfg(feature = "zstd")]
        {
            registry = registry.with(Arc::new(Zstd));
        }
        #[cfg(feature = "br")]
        {
            registry = registry.with(Arc::new(Brotli));
        }
        #[cfg(feature = "deflate")]
        {
            registry = registry.with(Arc::new(Deflate));
        }
        #[cfg(feature = "snappy")]
        {
            registry = registry.with(Arc::new(Snappy));
        }
        registry
    }
}

impl CompressionRegistry {
    /// A registry that supports no compression (identity only).
    pub fn identity_only() -> Self {
        CompressionRegistry {
            algorithms: Arc::from(Vec::new()),
            accept: None,
        }
    }

    /// Adds (or replaces, by name) an algorithm; later additions are less preferred.
    #[must_use]
    pub fn with(self, algorithm: Arc<dyn Compression>) -> Self {
        let mut algorithms = self.algorithms.to_vec();
        if let Some(slot) = algorithms.iter_mut().find(|a| a.name() == algorithm.name()) {
            *slot = algorithm;
        } else {
            algorithms.push(algorithm);
        }
        let accept = accept_value(&algorithms);
        CompressionRegistry {
            algorithms: Arc::from(algorithms),
            accept,
        }
    }

    /// Looks an algorithm up by its encoding token. `identity` is not an algorithm: it yields
    /// `None` like any unknown name; use [`CompressionRegistry::resolve`] to tell them apart.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Compression>> {
        self.algorithms
            .iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
    }

    /// Resolves a peer's content-encoding header value: `Ok(None)` for identity (or an absent
    /// or empty value), `Ok(Some(alg))` for a supported algorithm, `Err(name)` otherwise.
    pub fn resolve(&self, name: Option<&str>) -> Result<Option<Arc<dyn Compression>>, String> {
        match name.map(str::trim) {
            None | Some("") => Ok(None),
            Some(n) if n.eq_ignore_ascii_case(IDENTITY) => Ok(None),
            Some(n) => self.get(n).cloned().map(Some).ok_or_else(|| n.to_owned()),
        }
    }

    /// The supported algorithm names, in order of preference (identity excluded).
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.algorithms.iter().map(|a| a.name())
    }

    /// Whether no algorithm beyond identity is supported.
    pub fn is_identity_only(&self) -> bool {
        self.algorithms.is_empty()
    }

    /// The value to send in an `accept-encoding`-style header (`"gzip, zstd"`), or `None` if
    /// only identity is supported.
    pub fn accept_encoding(&self) -> Option<&HeaderValue> {
        self.accept.as_ref()
    }

    /// A human-readable list of supported encodings for error messages (`"gzip, zstd,
    /// identity"`).
    pub fn supported_list(&self) -> String {
        let mut list: Vec<&str> = self.names().collect();
        list.push(IDENTITY);
        list.join(", ")
    }

    /// Chooses the compression for a response.
    ///
    /// If the request was compressed with a supported algorithm, the response uses it too;
    /// otherwise the first supported entry of the peer's ordered `accept` list wins (quality
    /// values of `0` exclude an entry; other quality values are ignored, order decides).
    /// `None` means identity.
    pub fn negotiate(
        &self,
        request: Option<&Arc<dyn Compression>>,
        accept: Option<&str>,
    ) -> Option<Arc<dyn Compression>> {
        if let Some(request) = request {
            return Some(request.clone());
        }
        let accept = accept?;
        for entry in accept.split(',') {
            let mut parts = entry.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|param| {
                let param = param.trim();
                param
                    .strip_prefix("q=")
                    .is_some_and(|q| q.trim().parse::<f32>() == Ok(0.0))
            });
            if refused || name.is_empty() {
                continue;
            }
            if name.eq_ignore_ascii_case(IDENTITY) {
                // The peer prefers no compression over anything listed after it.
                return None;
            }
            if let Some(found) = self.get(name) {
                return Some(found.clone());
            }
        }
        None
    }
}

fn accept_value(algorithms: &[Arc<dyn Compression>]) -> Option<HeaderValue> {
    if algorithms.is_empty() {
        return None;
    }
    let joined = algorithms
        .iter()
        .map(|a| a.name())
        .collect::<Vec<_>>()
        .join(", ");
    HeaderValue::from_str(&joined).ok()
}

/// gzip (RFC 1952).
#[cfg(feature = "gzip")]
#[derive(Clone, Copy, Debug, Default)]
pub struct Gzip;

#[cfg(feature = "gzip")]
impl Compression for Gzip {
    fn name(&self) -> &'static str {
        "gzip"
    }

    fn compress(&self, input: &[u8]) -> Result<Bytes, CompressionError> {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(
            Vec::with_capacity(input.len() / 2 + 32),
            flate2::Compression::default(),
        );
        encoder
            .write_all(input)
            .map_err(|e| CompressionError(e.to_string()))?;
        encoder
            .finish()
            .map(Bytes::from)
            .map_err(|e| CompressionError(e.to_string()))
    }

    fn decompress(&self, input: &[u8], limit: usize) -> Result<Bytes, DecompressError> {
        // A multi-member reader accepts concatenated gzip members, as HTTP peers may send.
        read_bounded(flate2::read::MultiGzDecoder::new(input), limit)
    }
}

/// `deflate`: DEFLATE in the zlib wrapper (RFC 1950), as HTTP defines the token and as the
/// Connect ecosystem (and its conformance suite) sends it. Decoding also accepts raw RFC 1951
/// streams, which some peers send under the same name.
#[cfg(feature = "deflate")]
#[derive(Clone, Copy, Debug, Default)]
pub struct Deflate;

#[cfg(feature = "deflate")]
impl Compression for Deflate {
    fn name(&self) -> &'static str {
        "deflate"
    }

    fn compress(&self, input: &[u8]) -> Result<Bytes, CompressionError> {
        use std::io::Write;
        let mut encoder = flate2::write::ZlibEncoder::new(
            Vec::with_capacity(input.len() / 2 + 16),
            flate2::Compression::default(),
        );
        encoder
            .write_all(input)
            .map_err(|e| CompressionError(e.to_string()))?;
        encoder
            .finish()
            .map(Bytes::from)
            .map_err(|e| CompressionError(e.to_string()))
    }

    fn decompress(&self, input: &[u8], limit: usize) -> Result<Bytes, DecompressError> {
        if looks_like_zlib(input) {
            read_bounded(flate2::read::ZlibDecoder::new(input), limit)
        } else {
            read_bounded(flate2::read::DeflateDecoder::new(input), limit)
        }
    }
}

/// Whether `input` starts with a zlib header: compression method 8 (deflate), a window of at
/// most 32 KiB, no preset dictionary, and the header checksum (a multiple of 31).
#[cfg(feature = "deflate")]
fn looks_like_zlib(input: &[u8]) -> bool {
    match input {
        [cmf, flg, ..] => {
            cmf & 0x0f == 8
                && cmf >> 4 <= 7
                && flg & 0x20 == 0
                && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0
        }
        _ => false,
    }
}

/// Zstandard.
#[cfg(feature = "zstd")]
#[derive(Clone, Copy, Debug, Default)]
pub struct Zstd;

#[cfg(feature = "zstd")]
impl Compression for Zstd {
    fn name(&self) -> &'static str {
        "zstd"
    }

    fn compress(&self, input: &[u8]) -> Result<Bytes, CompressionError> {
        zstd::bulk::compress(input, 3)
            .map(Bytes::from)
            .map_err(|e| CompressionError(e.to_string()))
    }

    fn decompress(&self, input: &[u8], limit: usize) -> Result<Bytes, DecompressError> {
        // A frame that declares its size says up front whether it fits.
        if let Ok(Some(size)) = zstd::zstd_safe::get_frame_content_size(input) {
            if size > limit as u64 {
                return Err(DecompressError::LimitExceeded { limit });
            }
        }
        let mut decoder = zstd::stream::read::Decoder::new(input)
            .map_err(|e| DecompressError::Corrupt(e.to_string()))?;
        // A frame header may declare a window of up to 128 MiB, which the decoder would
        // allocate before any output exists; a message never needs a window larger than itself.
        decoder
            .window_log_max(zstd_window_log(limit))
            .map_err(|e| DecompressError::Corrupt(e.to_string()))?;
        read_bounded(decoder, limit)
    }
}

/// The zstd window log allowed for a message of at most `limit` bytes: the smallest window
/// covering the limit, but at least 8 MiB and at most zstd's 128 MiB. RFC 8878 recommends
/// that every decoder accept 8 MiB windows, and common encoders declare one whatever the
/// message size (Go's `klauspost/compress` does, for frames without a content size).
#[cfg(feature = "zstd")]
fn zstd_window_log(limit: usize) -> u32 {
    let needed = usize::BITS - limit.saturating_sub(1).leading_zeros();
    needed.clamp(23, 27)
}

/// Brotli.
#[cfg(feature = "br")]
#[derive(Clone, Copy, Debug, Default)]
pub struct Brotli;

#[cfg(feature = "br")]
impl Compression for Brotli {
    fn name(&self) -> &'static str {
        "br"
    }

    fn compress(&self, input: &[u8]) -> Result<Bytes, CompressionError> {
        use std::io::Write;
        let mut out = Vec::with_capacity(input.len() / 2 + 16);
        {
            let mut writer = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
            writer
                .write_all(input)
                .map_err(|e| CompressionError(e.to_string()))?;
            writer
                .flush()
                .map_err(|e| CompressionError(e.to_string()))?;
        }
        Ok(Bytes::from(out))
    }

    fn decompress(&self, input: &[u8], limit: usize) -> Result<Bytes, DecompressError> {
        read_bounded(brotli::Decompressor::new(input, 4096), limit)
    }
}

/// Snappy, framing format.
#[cfg(feature = "snappy")]
#[derive(Clone, Copy, Debug, Default)]
pub struct Snappy;

#[cfg(feature = "snappy")]
impl Compression for Snappy {
    fn name(&self) -> &'static str {
        "snappy"
    }

    fn compress(&self, input: &[u8]) -> Result<Bytes, CompressionError> {
        use std::io::Write;
        let mut encoder = snap::write::FrameEncoder::new(Vec::with_capacity(input.len() + 32));
        encoder
            .write_all(input)
            .map_err(|e| CompressionError(e.to_string()))?;
        encoder
            .into_inner()
            .map(Bytes::from)
            .map_err(|e| CompressionError(e.to_string()))
    }

    fn decompress(&self, input: &[u8], limit: usize) -> Result<Bytes, DecompressError> {
        read_bounded(snap::read::FrameDecoder::new(input), limit)
    }
}

#[cfg(test)]
#[path = "compression_tests.rs"]
mod tests;
