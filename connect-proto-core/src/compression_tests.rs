//! Unit tests for `compression.rs`: round trips per algorithm, bounded decompression, bombs,
//! corrupt input, and registry negotiation.

use super::*;

/// Deterministic xorshift bytes.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

/// Text-like data that compresses well but not trivially.
fn text(len: usize) -> Vec<u8> {
    let words: [&[u8]; 6] = [
        b"alpha ",
        b"beta ",
        b"gamma ",
        b"delta ",
        b"epsilon ",
        b"zeta ",
    ];
    let picks = noise(len, 7);
    let mut out = Vec::with_capacity(len + 8);
    let mut i = 0;
    while out.len() < len {
        out.extend_from_slice(words[usize::from(picks[i % picks.len()]) % words.len()]);
        i += 1;
    }
    out.truncate(len);
    out
}

/// Every compiled-in algorithm.
fn all() -> Vec<Arc<dyn Compression>> {
    let registry = CompressionRegistry::default();
    registry
        .names()
        .map(|n| registry.get(n).cloned().unwrap())
        .collect()
}

fn inputs() -> Vec<Vec<u8>> {
    vec![
        Vec::new(),
        b"x".to_vec(),
        text(1000),
        noise(5000, 3),
        vec![0u8; 300_000],
        text(200_000),
    ]
}

#[cfg_attr(
    not(any(
        feature = "gzip",
        feature = "zstd",
        feature = "br",
        feature = "deflate",
        feature = "snappy"
    )),
    allow(dead_code)
)]
fn round_trip(alg: &dyn Compression) {
    for input in inputs() {
        let compressed = alg.compress(&input).unwrap();
        let back = alg.decompress(&compressed, input.len()).unwrap();
        assert_eq!(back, input, "{} len {}", alg.name(), input.len());
    }
}

/// The output limit is inclusive: `len` passes, `len - 1` fails with `LimitExceeded`.
#[cfg_attr(
    not(any(
        feature = "gzip",
        feature = "zstd",
        feature = "br",
        feature = "deflate",
        feature = "snappy"
    )),
    allow(dead_code)
)]
fn limit_is_exact(alg: &dyn Compression) {
    for len in [1usize, 2, 100, 4096, 65_536, 65_537, 100_000] {
        let input = text(len);
        let compressed = alg.compress(&input).unwrap();
        assert_eq!(
            alg.decompress(&compressed, len).unwrap(),
            input,
            "{} {len}",
            alg.name()
        );
        assert_eq!(
            alg.decompress(&compressed, len - 1),
            Err(DecompressError::LimitExceeded { limit: len - 1 }),
            "{} {len}",
            alg.name()
        );
        assert_eq!(
            alg.decompress(&compressed, 0),
            Err(DecompressError::LimitExceeded { limit: 0 }),
            "{} {len}",
            alg.name()
        );
    }
    // An empty message fits any limit, including zero.
    let empty = alg.compress(b"").unwrap();
    assert_eq!(
        alg.decompress(&empty, 0).unwrap(),
        Bytes::new(),
        "{}",
        alg.name()
    );
}

/// A few KB that would inflate to many MB stop at the limit.
#[cfg_attr(
    not(any(
        feature = "gzip",
        feature = "zstd",
        feature = "br",
        feature = "deflate",
        feature = "snappy"
    )),
    allow(dead_code)
)]
fn bomb(alg: &dyn Compression) {
    let bomb = alg.compress(&vec![0u8; 16 * 1024 * 1024]).unwrap();
    assert!(
        bomb.len() < 1024 * 1024,
        "{}: {} bytes",
        alg.name(),
        bomb.len()
    );
    for limit in [0, 1, 64 * 1024, 4 * 1024 * 1024] {
        assert_eq!(
            alg.decompress(&bomb, limit),
            Err(DecompressError::LimitExceeded { limit }),
            "{} {limit}",
            alg.name()
        );
    }
}

/// Truncated and garbage input is `Corrupt`, never a panic or a silent short message.
#[cfg_attr(
    not(any(
        feature = "gzip",
        feature = "zstd",
        feature = "br",
        feature = "deflate",
        feature = "snappy"
    )),
    allow(dead_code)
)]
fn corrupt(alg: &dyn Compression) {
    let input = text(20_000);
    let full = alg.compress(&input).unwrap();
    for cut in [1, full.len() / 3, full.len() / 2, full.len() - 1] {
        let result = alg.decompress(&full[..cut], 1 << 20);
        assert!(
            matches!(result, Err(DecompressError::Corrupt(_))),
            "{} cut {cut}: {:?}",
            alg.name(),
            result.map(|b| b.len())
        );
    }
    let garbage = noise(300, 11);
    let result = alg.decompress(&garbage, 1 << 20);
    assert!(
        matches!(result, Err(DecompressError::Corrupt(_))),
        "{} garbage: {:?}",
        alg.name(),
        result.map(|b| b.len())
    );
    // Flipping bytes in the middle either fails cleanly or yields some bounded output.
    for i in (0..full.len()).step_by(97) {
        let mut damaged = full.to_vec();
        damaged[i] ^= 0x5a;
        match alg.decompress(&damaged, 1 << 20) {
            Ok(out) => assert!(out.len() <= 1 << 20),
            Err(DecompressError::Corrupt(_)) | Err(DecompressError::LimitExceeded { .. }) => {}
        }
    }
}

#[cfg(feature = "gzip")]
mod gzip {
    use super::*;

    #[test]
    fn round_trip() {
        super::round_trip(&Gzip);
        assert_eq!(Gzip.name(), "gzip");
    }

    #[test]
    fn limit_is_exact() {
        super::limit_is_exact(&Gzip);
    }

    #[test]
    fn bomb() {
        super::bomb(&Gzip);
    }

    #[test]
    fn corrupt() {
        super::corrupt(&Gzip);
    }

    #[test]
    fn output_is_rfc1952_and_concatenated_members_are_read() {
        let a = Gzip.compress(b"hello ").unwrap();
        let b = Gzip.compress(b"world").unwrap();
        assert_eq!(&a[..2], &[0x1f, 0x8b]);
        let joined = [&a[..], &b[..]].concat();
        assert_eq!(
            Gzip.decompress(&joined, 100).unwrap(),
            Bytes::from_static(b"hello world")
        );
        // The limit counts all members together.
        assert_eq!(
            Gzip.decompress(&joined, 10),
            Err(DecompressError::LimitExceeded { limit: 10 })
        );
    }
}

#[cfg(feature = "zstd")]
mod zstd_tests {
    use super::*;

    #[test]
    fn round_trip() {
        super::round_trip(&Zstd);
        assert_eq!(Zstd.name(), "zstd");
    }

    #[test]
    fn limit_is_exact() {
        super::limit_is_exact(&Zstd);
    }

    #[test]
    fn bomb() {
        super::bomb(&Zstd);
    }

    #[test]
    fn corrupt() {
        super::corrupt(&Zstd);
    }

    #[test]
    fn output_is_a_zstd_frame() {
        let frame = Zstd.compress(b"abc").unwrap();
        assert_eq!(&frame[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
    }
}

#[cfg(feature = "br")]
mod brotli_tests {
    use super::*;

    #[test]
    fn round_trip() {
        super::round_trip(&Brotli);
        assert_eq!(Brotli.name(), "br");
    }

    #[test]
    fn limit_is_exact() {
        super::limit_is_exact(&Brotli);
    }

    #[test]
    fn bomb() {
        super::bomb(&Brotli);
    }

    #[test]
    fn corrupt() {
        super::corrupt(&Brotli);
    }
}

#[cfg(feature = "deflate")]
mod deflate_tests {
    use super::*;

    #[test]
    fn round_trip() {
        super::round_trip(&Deflate);
        assert_eq!(Deflate.name(), "deflate");
    }

    #[test]
    fn limit_is_exact() {
        super::limit_is_exact(&Deflate);
    }

    #[test]
    fn bomb() {
        super::bomb(&Deflate);
    }

    #[test]
    fn corrupt() {
        super::corrupt(&Deflate);
    }

    #[test]
    fn output_is_zlib_wrapped() {
        let wrapped = Deflate.compress(&text(1000)).unwrap();
        let mut inflater = flate2::read::ZlibDecoder::new(&wrapped[..]);
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut inflater, &mut out).unwrap();
        assert_eq!(out, text(1000));
    }

    #[test]
    fn raw_deflate_is_accepted_too() {
        use std::io::Write;
        for input in [text(1000), b"{}".to_vec(), Vec::new()] {
            let mut encoder =
                flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(&input).unwrap();
            let raw = encoder.finish().unwrap();
            assert_eq!(Deflate.decompress(&raw, 10_000).unwrap(), input);
        }
        // Go's compress/flate at level 1: stored blocks.
        let go = b"\x00\x11\x00\xee\xff{\"hello\":\"world\"}\x01\x00\x00\xff\xff";
        assert_eq!(
            &Deflate.decompress(go, 100).unwrap()[..],
            br#"{"hello":"world"}"#
        );
        // Go's compress/zlib, as the conformance reference client sends it.
        let zlib = [
            0x78, 0x9c, 0xe2, 0x12, 0x32, 0xb8, 0xc3, 0x2d, 0xc4, 0x5b, 0x92, 0x5a, 0x5c, 0xa2,
            0x50, 0x94, 0x5a, 0x5c, 0x90, 0x9f, 0x57, 0x9c, 0x0a, 0x08, 0x00, 0x00, 0xff, 0xff,
            0x3b, 0x61, 0x06, 0xa2,
        ];
        assert!(Deflate.decompress(&zlib, 100).is_ok());
    }
}

#[cfg(feature = "zstd")]
mod zstd_window_tests {
    use super::*;

    #[test]
    fn a_declared_window_larger_than_the_limit_is_refused() {
        // Compress with a 64 MiB window (long-distance mode declares it in the frame header).
        let input = vec![7u8; 4096];
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        encoder.window_log(26).unwrap();
        encoder.long_distance_matching(true).unwrap();
        std::io::Write::write_all(&mut encoder, &input).unwrap();
        let frame = encoder.finish().unwrap();
        // With a 4 MiB limit, a 64 MiB window is refused before it is allocated.
        assert!(matches!(
            Zstd.decompress(&frame, 4 << 20),
            Err(DecompressError::Corrupt(_))
        ));
        // Ordinary frames (window sized to the content) still decode.
        let plain = Zstd.compress(&input).unwrap();
        assert_eq!(Zstd.decompress(&plain, 4096).unwrap(), input);
        // So do frames declaring an 8 MiB window without a content size (what Go's encoder
        // writes) under a small limit: RFC 8878 asks every decoder to accept such windows.
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        encoder.window_log(23).unwrap();
        encoder.include_contentsize(false).unwrap();
        encoder.long_distance_matching(true).unwrap();
        std::io::Write::write_all(&mut encoder, &input).unwrap();
        let frame = encoder.finish().unwrap();
        assert_eq!(Zstd.decompress(&frame, 4096).unwrap(), input);
    }
}

#[cfg(feature = "snappy")]
mod snappy_tests {
    use super::*;

    #[test]
    fn round_trip() {
        super::round_trip(&Snappy);
        assert_eq!(Snappy.name(), "snappy");
    }

    #[test]
    fn limit_is_exact() {
        super::limit_is_exact(&Snappy);
    }

    #[test]
    fn bomb() {
        super::bomb(&Snappy);
    }

    #[test]
    fn corrupt() {
        super::corrupt(&Snappy);
    }

    #[test]
    fn output_uses_the_framing_format() {
        let framed = Snappy.compress(b"abc").unwrap();
        // Stream identifier chunk: type 0xff, length 6, "sNaPpY".
        assert_eq!(&framed[..10], b"\xff\x06\x00\x00sNaPpY");
    }
}

#[test]
fn every_compiled_algorithm_round_trips_through_the_registry() {
    for alg in all() {
        round_trip(alg.as_ref());
    }
}

#[test]
fn read_bounded_counts_every_byte() {
    assert_eq!(
        read_bounded(&b"12345"[..], 5).unwrap(),
        Bytes::from_static(b"12345")
    );
    assert_eq!(
        read_bounded(&b"12345"[..], 4),
        Err(DecompressError::LimitExceeded { limit: 4 })
    );
    assert_eq!(read_bounded(&b""[..], 0).unwrap(), Bytes::new());
    assert_eq!(
        read_bounded(&b"1"[..], 0),
        Err(DecompressError::LimitExceeded { limit: 0 })
    );
    // usize::MAX does not overflow the `take` bound.
    assert_eq!(
        read_bounded(&b"1"[..], usize::MAX).unwrap(),
        Bytes::from_static(b"1")
    );

    struct Failing;
    impl Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("broken"))
        }
    }
    assert!(
        matches!(read_bounded(Failing, 10), Err(DecompressError::Corrupt(why)) if why.contains("broken"))
    );
}

#[test]
fn errors_display_their_cause() {
    assert_eq!(
        DecompressError::LimitExceeded { limit: 9 }.to_string(),
        "decompressed size exceeds limit 9"
    );
    assert_eq!(
        DecompressError::Corrupt("bad".into()).to_string(),
        "corrupt compressed data: bad"
    );
    assert_eq!(
        CompressionError("x".into()).to_string(),
        "compression failed: x"
    );
}

/// A custom algorithm: XOR with 0x55 (not compression, but a valid provider).
#[derive(Debug)]
struct Xor;

impl Compression for Xor {
    fn name(&self) -> &'static str {
        "x-xor"
    }

    fn compress(&self, input: &[u8]) -> Result<Bytes, CompressionError> {
        Ok(input.iter().map(|b| b ^ 0x55).collect())
    }

    fn decompress(&self, input: &[u8], limit: usize) -> Result<Bytes, DecompressError> {
        if input.len() > limit {
            return Err(DecompressError::LimitExceeded { limit });
        }
        Ok(input.iter().map(|b| b ^ 0x55).collect())
    }
}

#[derive(Debug)]
struct OtherGzip;

impl Compression for OtherGzip {
    fn name(&self) -> &'static str {
        "gzip"
    }

    fn compress(&self, _: &[u8]) -> Result<Bytes, CompressionError> {
        Err(CompressionError("replaced".into()))
    }

    fn decompress(&self, _: &[u8], _: usize) -> Result<Bytes, DecompressError> {
        Err(DecompressError::Corrupt("replaced".into()))
    }
}

fn names(registry: &CompressionRegistry) -> Vec<&'static str> {
    registry.names().collect()
}

#[test]
fn default_registry_order_follows_the_features() {
    let mut expected: Vec<&str> = Vec::new();
    if cfg!(feature = "gzip") {
        expected.push("gzip");
    }
    if cfg!(feature = "zstd") {
        expected.push("zstd");
    }
    if cfg!(feature = "br") {
        expected.push("br");
    }
    if cfg!(feature = "deflate") {
        expected.push("deflate");
    }
    if cfg!(feature = "snappy") {
        expected.push("snappy");
    }
    let registry = CompressionRegistry::default();
    assert_eq!(names(&registry), expected);
    assert_eq!(registry.is_identity_only(), expected.is_empty());
    let joined = expected.join(", ");
    assert_eq!(
        registry
            .accept_encoding()
            .map(|v| v.to_str().unwrap().to_owned()),
        (!expected.is_empty()).then_some(joined.clone())
    );
    let mut supported = expected.clone();
    supported.push("identity");
    assert_eq!(registry.supported_list(), supported.join(", "));
}

#[test]
fn identity_only_registry() {
    let registry = CompressionRegistry::identity_only();
    assert!(registry.is_identity_only());
    assert!(names(&registry).is_empty());
    assert_eq!(registry.accept_encoding(), None);
    assert_eq!(registry.supported_list(), "identity");
    assert!(registry.get("gzip").is_none());
    assert!(registry.resolve(Some("identity")).unwrap().is_none());
    assert_eq!(
        registry.resolve(Some("gzip")).err(),
        Some("gzip".to_owned())
    );
    assert!(registry.negotiate(None, Some("gzip, zstd")).is_none());
}

#[test]
fn with_appends_and_replaces_by_name() {
    let registry = CompressionRegistry::identity_only().with(Arc::new(Xor));
    assert_eq!(names(&registry), ["x-xor"]);
    assert_eq!(registry.accept_encoding().unwrap(), "x-xor");
    let registry = CompressionRegistry::default().with(Arc::new(Xor));
    assert_eq!(names(&registry).last(), Some(&"x-xor"));
    if cfg!(feature = "gzip") {
        // Replacing keeps the position and uses the new implementation.
        let before = names(&registry);
        let replaced = registry.clone().with(Arc::new(OtherGzip));
        assert_eq!(names(&replaced), before);
        let gzip = replaced.get("gzip").unwrap();
        assert_eq!(
            gzip.compress(b"a"),
            Err(CompressionError("replaced".into()))
        );
        // The original registry is untouched (registries are values).
        assert!(registry.get("gzip").unwrap().compress(b"a").is_ok());
    }
}

#[test]
fn lookup_and_resolve() {
    let registry = CompressionRegistry::identity_only().with(Arc::new(Xor));
    assert_eq!(registry.get("x-xor").unwrap().name(), "x-xor");
    assert_eq!(registry.get("X-XOR").unwrap().name(), "x-xor");
    assert!(registry.get("identity").is_none());
    assert!(registry.get("").is_none());
    for absent in [
        None,
        Some(""),
        Some("   "),
        Some("identity"),
        Some("IDENTITY"),
        Some(" Identity "),
    ] {
        assert!(registry.resolve(absent).unwrap().is_none(), "{absent:?}");
    }
    assert_eq!(
        registry.resolve(Some("x-xor")).unwrap().unwrap().name(),
        "x-xor"
    );
    assert_eq!(
        registry.resolve(Some(" X-Xor ")).unwrap().unwrap().name(),
        "x-xor"
    );
    assert_eq!(registry.resolve(Some("lz4")).err(), Some("lz4".to_owned()));
    assert_eq!(
        registry.resolve(Some(" lz4 ")).err(),
        Some("lz4".to_owned())
    );
    // A list is not a single encoding.
    assert_eq!(
        registry.resolve(Some("x-xor, gzip")).err(),
        Some("x-xor, gzip".to_owned())
    );
}

#[test]
fn negotiation_follows_the_peer_order_and_refusals() {
    let a: Arc<dyn Compression> = Arc::new(Xor);
    let registry = CompressionRegistry::identity_only().with(a.clone());
    let chosen = |accept: Option<&str>| registry.negotiate(None, accept).map(|c| c.name());
    assert_eq!(chosen(None), None);
    assert_eq!(chosen(Some("")), None);
    assert_eq!(chosen(Some("x-xor")), Some("x-xor"));
    assert_eq!(chosen(Some("X-XOR")), Some("x-xor"));
    assert_eq!(chosen(Some("lz4, x-xor")), Some("x-xor"));
    assert_eq!(chosen(Some(",, x-xor ,")), Some("x-xor"));
    assert_eq!(chosen(Some("x-xor;q=0")), None);
    assert_eq!(chosen(Some("x-xor; q=0.0")), None);
    assert_eq!(chosen(Some("x-xor;q=0.000")), None);
    assert_eq!(chosen(Some("x-xor;q=0.5")), Some("x-xor"));
    assert_eq!(chosen(Some("x-xor;level=1;q=0")), None);
    assert_eq!(chosen(Some("x-xor;q=garbage")), Some("x-xor"));
    assert_eq!(chosen(Some("identity")), None);
    assert_eq!(chosen(Some("lz4, br;q=1")), None);
    // The request's own compression wins over any accept list.
    assert_eq!(
        registry.negotiate(Some(&a), Some("lz4")).unwrap().name(),
        "x-xor"
    );
    assert_eq!(registry.negotiate(Some(&a), None).unwrap().name(), "x-xor");
}

#[cfg(all(feature = "gzip", feature = "zstd"))]
#[test]
fn negotiation_between_builtins() {
    let registry = CompressionRegistry::default();
    let chosen = |accept: &str| registry.negotiate(None, Some(accept)).map(|c| c.name());
    // Quality values do not reorder: the peer's order decides.
    assert_eq!(chosen("zstd;q=0.1, gzip;q=1.0"), Some("zstd"));
    assert_eq!(chosen("gzip, zstd"), Some("gzip"));
    assert_eq!(chosen("zstd, gzip"), Some("zstd"));
    assert_eq!(chosen("gzip;q=0, zstd"), Some("zstd"));
    assert_eq!(chosen("GZIP"), Some("gzip"));
    assert_eq!(chosen("compress, x-gzip"), None);
}
