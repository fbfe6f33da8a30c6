//! Timeout headers: gRPC's `grpc-timeout` (at most 8 digits and a unit `H M S m u n`) and
//! Connect's `connect-timeout-ms` (at most 10 digits of milliseconds). Parse and format live
//! together; both are overflow-safe. Deadlines are `now + timeout` with the caller's `now`.

use std::time::Duration;

use http::HeaderMap;

use crate::internal::headers::RequestHeaders;

/// Most digits a `grpc-timeout` value may have.
pub(crate) const GRPC_TIMEOUT_MAX_DIGITS: usize = 8;
/// Most digits a `connect-timeout-ms` value may have.
pub(crate) const CONNECT_TIMEOUT_MAX_DIGITS: usize = 10;

/// Why a timeout header value was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TimeoutError {
    /// The value is empty (or the gRPC value has a unit and no digits).
    Empty,
    /// The value has too many digits.
    TooManyDigits,
    /// The value contains something other than ASCII digits (and one gRPC unit).
    NotDigits,
    /// The gRPC unit is not one of `H M S m u n`.
    UnknownUnit(char),
}

impl std::fmt::Display for TimeoutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TimeoutError::Empty => f.write_str("empty timeout"),
            TimeoutError::TooManyDigits => f.write_str("timeout has too many digits"),
            TimeoutError::NotDigits => f.write_str("timeout is not a non-negative integer"),
            TimeoutError::UnknownUnit(unit) => write!(f, "unknown timeout unit {unit:?}"),
        }
    }
}

impl std::error::Error for TimeoutError {}

/// Parses a `grpc-timeout` value such as `"100m"`.
pub fn parse_grpc_timeout(value: &[u8]) -> Result<Duration, TimeoutError> {
    let (&unit, digits) = value.split_last().ok_or(TimeoutError::Empty)?;
    let amount = parse_digits(digits, GRPC_TIMEOUT_MAX_DIGITS)?;
    Ok(match unit {
        b'H' => Duration::from_secs(amount * 3600),
        b'M' => Duration::from_secs(amount * 60),
        b'S' => Duration::from_secs(amount),
        b'm' => Duration::from_millis(amount),
        b'u' => Duration::from_micros(amount),
        b'n' => Duration::from_nanos(amount),
        other => return Err(TimeoutError::UnknownUnit(char::from(other))),
    })
}

/// Formats a `grpc-timeout` value: the finest unit whose amount fits 8 digits, rounding up
/// so the peer never sees a shorter timeout than the caller set. Saturates at `99999999H`.
pub fn format_grpc_timeout(timeout: Duration) -> String {
    const MAX: u128 = 99_999_999;
    let nanos = timeout.as_nanos();
    let units: [(u128, char); 6] = [
        (1, 'n'),
        (1_000, 'u'),
        (1_000_000, 'm'),
        (1_000_000_000, 'S'),
        (60_000_000_000, 'M'),
        (3_600_000_000_000, 'H'),
    ];
    for (per_unit, unit) in units {
        let amount = nanos.div_ceil(per_unit);
        if amount <= MAX {
            return format!("{amount}{unit}");
        }
    }
    format!("{MAX}H")
}

/// Parses a `connect-timeout-ms` value such as `"5000"`.
pub fn parse_connect_timeout(value: &[u8]) -> Result<Duration, TimeoutError> {
    parse_digits(value, CONNECT_TIMEOUT_MAX_DIGITS).map(Duration::from_millis)
}

/// Formats a `connect-timeout-ms` value, rounding up to whole milliseconds and saturating at
/// ten digits.
pub fn format_connect_timeout(timeout: Duration) -> String {
    let ms = timeout.as_nanos().div_ceil(1_000_000).min(9_999_999_999);
    ms.to_string()
}

/// The timeout a request asks for, read from whichever protocol's header it carries (the
/// shorter one if it carries both; malformed values are ignored). For runtime adapters that
/// watch over a request's deadline without admitting the call themselves; admission
/// ([`ServerCall::accept`](crate::ServerCall::accept)) reads the header of the call's protocol
/// and rejects malformed values.
pub fn request_timeout(headers: &HeaderMap) -> Option<Duration> {
    let headers = RequestHeaders::read(headers);
    let grpc = headers
        .grpc_timeout
        .and_then(|v| parse_grpc_timeout(v.as_bytes()).ok());
    let connect = headers
        .connect_timeout
        .and_then(|v| parse_connect_timeout(v.as_bytes()).ok());
    match (grpc, connect) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn parse_digits(digits: &[u8], max_digits: usize) -> Result<u64, TimeoutError> {
    if digits.is_empty() {
        return Err(TimeoutError::Empty);
    }
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err(TimeoutError::NotDigits);
    }
    if digits.len() > max_digits {
        return Err(TimeoutError::TooManyDigits);
    }
    // At most 10 digits: fits a u64 with room to multiply by 3600.
    Ok(digits
        .iter()
        .fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_units() {
        assert_eq!(parse_grpc_timeout(b"2H"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_grpc_timeout(b"3M"), Ok(Duration::from_secs(180)));
        assert_eq!(parse_grpc_timeout(b"4S"), Ok(Duration::from_secs(4)));
        assert_eq!(parse_grpc_timeout(b"5m"), Ok(Duration::from_millis(5)));
        assert_eq!(parse_grpc_timeout(b"6u"), Ok(Duration::from_micros(6)));
        assert_eq!(parse_grpc_timeout(b"7n"), Ok(Duration::from_nanos(7)));
        assert_eq!(parse_grpc_timeout(b"0n"), Ok(Duration::ZERO));
        assert_eq!(
            parse_grpc_timeout(b"99999999H"),
            Ok(Duration::from_secs(99_999_999 * 3600))
        );
    }

    #[test]
    fn grpc_rejections() {
        assert_eq!(parse_grpc_timeout(b""), Err(TimeoutError::Empty));
        assert_eq!(parse_grpc_timeout(b"S"), Err(TimeoutError::Empty));
        assert_eq!(
            parse_grpc_timeout(b"100"),
            Err(TimeoutError::UnknownUnit('0'))
        );
        assert_eq!(
            parse_grpc_timeout(b"1x"),
            Err(TimeoutError::UnknownUnit('x'))
        );
        assert_eq!(
            parse_grpc_timeout(b"123456789S"),
            Err(TimeoutError::TooManyDigits)
        );
        assert_eq!(parse_grpc_timeout(b"-1S"), Err(TimeoutError::NotDigits));
        assert_eq!(parse_grpc_timeout(b" 1S"), Err(TimeoutError::NotDigits));
        assert_eq!(parse_grpc_timeout(b"1.5S"), Err(TimeoutError::NotDigits));
        assert_eq!(
            parse_grpc_timeout(b"1\xff"),
            Err(TimeoutError::UnknownUnit('\u{ff}'))
        );
    }

    #[test]
    fn connect_values() {
        assert_eq!(parse_connect_timeout(b"0"), Ok(Duration::ZERO));
        assert_eq!(parse_connect_timeout(b"5000"), Ok(Duration::from_secs(5)));
        assert_eq!(
            parse_connect_timeout(b"9999999999"),
            Ok(Duration::from_millis(9_999_999_999))
        );
        assert_eq!(
            parse_connect_timeout(b"10000000000"),
            Err(TimeoutError::TooManyDigits)
        );
        assert_eq!(parse_connect_timeout(b""), Err(TimeoutError::Empty));
        assert_eq!(parse_connect_timeout(b"1s"), Err(TimeoutError::NotDigits));
        assert_eq!(parse_connect_timeout(b"+5"), Err(TimeoutError::NotDigits));
    }

    #[test]
    fn formatting_picks_the_finest_unit_and_rounds_up() {
        assert_eq!(format_grpc_timeout(Duration::from_nanos(1)), "1n");
        assert_eq!(format_grpc_timeout(Duration::from_millis(50)), "50000000n");
        assert_eq!(format_grpc_timeout(Duration::from_millis(200)), "200000u");
        assert_eq!(format_grpc_timeout(Duration::from_secs(1000)), "1000000m");
        assert_eq!(format_grpc_timeout(Duration::new(100_000, 1)), "100001S");
        assert_eq!(format_grpc_timeout(Duration::MAX), "99999999H");
        assert_eq!(format_connect_timeout(Duration::from_micros(1)), "1");
        assert_eq!(format_connect_timeout(Duration::from_millis(1500)), "1500");
        assert_eq!(format_connect_timeout(Duration::MAX), "9999999999");
    }

    #[test]
    fn request_timeouts_from_either_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(request_timeout(&headers), None);
        headers.insert("grpc-timeout", http::HeaderValue::from_static("2S"));
        assert_eq!(request_timeout(&headers), Some(Duration::from_secs(2)));
        headers.insert("connect-timeout-ms", http::HeaderValue::from_static("500"));
        assert_eq!(request_timeout(&headers), Some(Duration::from_millis(500)));
        headers.insert("grpc-timeout", http::HeaderValue::from_static("junk"));
        assert_eq!(request_timeout(&headers), Some(Duration::from_millis(500)));
    }

    #[test]
    fn round_trips_never_shorten_the_timeout() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let d = Duration::from_nanos(seed >> (seed % 40));
            let g = parse_grpc_timeout(format_grpc_timeout(d).as_bytes()).unwrap();
            assert!(g >= d, "{d:?} -> {g:?}");
            let c = parse_connect_timeout(format_connect_timeout(d).as_bytes()).unwrap();
            if d < Duration::from_millis(9_999_999_999) {
                assert!(c >= d && c - d < Duration::from_millis(1), "{d:?} -> {c:?}");
            } else {
                assert_eq!(c, Duration::from_millis(9_999_999_999));
            }
        }
    }
}
