//! The ingest handler's work: a checksum that reads every field of every record. The same
//! arithmetic for prost messages (tonic) and buffa views (ours, connectrpc), so every server
//! answers the same number.

use crate::tonic_proto as pb;

/// A string's contribution: its length and its first and last bytes (so the bytes are read).
#[inline]
pub fn text(s: &str) -> u64 {
    let b = s.as_bytes();
    (b.len() as u64)
        .wrapping_add(b.first().copied().unwrap_or(0) as u64)
        .wrapping_add(b.last().copied().unwrap_or(0) as u64)
}

/// The checksum of a prost batch.
pub fn prost_batch(batch: &pb::LogBatch) -> u64 {
    let mut sum = 0u64;
    for r in &batch.records {
        sum = sum
            .wrapping_add(r.timestamp_unix_nanos as u64)
            .wrapping_add(r.severity as u64)
            .wrapping_add(text(&r.service))
            .wrapping_add(text(&r.host))
            .wrapping_add(text(&r.message))
            .wrapping_add(text(&r.trace_id))
            .wrapping_add(r.span_id);
        if let Some(source) = &r.source {
            sum = sum
                .wrapping_add(text(&source.file))
                .wrapping_add(source.line as u64)
                .wrapping_add(text(&source.function));
        }
        for (k, v) in &r.attributes {
            sum = sum.wrapping_add(text(k)).wrapping_add(text(v));
        }
        for tag in &r.tags {
            sum = sum.wrapping_add(text(tag));
        }
    }
    sum
}

/// The checksum of a buffa `LogBatchView` (either generator's: the field names are the same).
#[macro_export]
macro_rules! view_batch_checksum {
    ($batch:expr) => {{
        use $crate::checksum::text;
        let mut sum = 0u64;
        for r in $batch.records.iter() {
            sum = sum
                .wrapping_add(r.timestamp_unix_nanos as u64)
                .wrapping_add(r.severity.to_i32() as u64)
                .wrapping_add(text(r.service))
                .wrapping_add(text(r.host))
                .wrapping_add(text(r.message))
                .wrapping_add(text(r.trace_id))
                .wrapping_add(r.span_id);
            if let Some(source) = r.source.as_option() {
                sum = sum
                    .wrapping_add(text(source.file))
                    .wrapping_add(source.line as u64)
                    .wrapping_add(text(source.function));
            }
            for (k, v) in r.attributes.iter() {
                sum = sum.wrapping_add(text(k)).wrapping_add(text(v));
            }
            for tag in r.tags.iter() {
                sum = sum.wrapping_add(text(tag));
            }
        }
        sum
    }};
}
