//! The sixteen RPC error codes shared by Connect, gRPC and gRPC-Web, and every mapping of a
//! code to and from the wire (string names, numeric values, HTTP statuses).

use std::fmt;

/// An RPC error code.
///
/// Connect and gRPC share the same sixteen error codes. Success is not a code: a successful
/// call is `Ok(..)`, a failed one carries a [`Status`](crate::Status) with one of these codes.
/// Numeric values are the gRPC values; string names are the Connect names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Code {
    /// The call was cancelled, usually by the caller.
    Canceled = 1,
    /// An error of unclear origin.
    Unknown = 2,
    /// The request is invalid regardless of system state.
    InvalidArgument = 3,
    /// The deadline expired before the call completed.
    DeadlineExceeded = 4,
    /// A requested resource was not found.
    NotFound = 5,
    /// The resource the caller tried to create already exists.
    AlreadyExists = 6,
    /// The caller is not allowed to perform the operation.
    PermissionDenied = 7,
    /// A resource (quota, memory, message size) is exhausted.
    ResourceExhausted = 8,
    /// The system is not in the state the operation requires.
    FailedPrecondition = 9,
    /// The operation was aborted, typically by a concurrency conflict.
    Aborted = 10,
    /// The operation was attempted past the valid range.
    OutOfRange = 11,
    /// The operation is not implemented, supported or enabled.
    Unimplemented = 12,
    /// An invariant of the underlying system is broken.
    Internal = 13,
    /// The service is temporarily unavailable.
    Unavailable = 14,
    /// Unrecoverable data loss or corruption.
    DataLoss = 15,
    /// The caller has no valid credentials.
    Unauthenticated = 16,
}

/// Every code, in numeric order.
pub const ALL_CODES: [Code; 16] = [
    Code::Canceled,
    Code::Unknown,
    Code::InvalidArgument,
    Code::DeadlineExceeded,
    Code::NotFound,
    Code::AlreadyExists,
    Code::PermissionDenied,
    Code::ResourceExhausted,
    Code::FailedPrecondition,
    Code::Aborted,
    Code::OutOfRange,
    Code::Unimplemented,
    Code::Internal,
    Code::Unavailable,
    Code::DataLoss,
    Code::Unauthenticated,
];

impl Code {
    /// The Connect name of the code (`"invalid_argument"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Code::Canceled => "canceled",
            Code::Unknown => "unknown",
            Code::InvalidArgument => "invalid_argument",
            Code::DeadlineExceeded => "deadline_exceeded",
            Code::NotFound => "not_found",
            Code::AlreadyExists => "already_exists",
            Code::PermissionDenied => "permission_denied",
            Code::ResourceExhausted => "resource_exhausted",
            Code::FailedPrecondition => "failed_precondition",
            Code::Aborted => "aborted",
            Code::OutOfRange => "out_of_range",
            Code::Unimplemented => "unimplemented",
            Code::Internal => "internal",
            Code::Unavailable => "unavailable",
            Code::DataLoss => "data_loss",
            Code::Unauthenticated => "unauthenticated",
        }
    }

    /// Parses a Connect code name. Unrecognised names yield `None`; callers decide whether
    /// that is [`Code::Unknown`] or a protocol error.
    pub fn from_name(name: &str) -> Option<Code> {
        ALL_CODES.into_iter().find(|code| code.as_str() == name)
    }

    /// The gRPC numeric value of the code (1..=16).
    pub const fn value(self) -> u32 {
        self as u32
    }

    /// Maps a gRPC numeric value to a code. `0` (OK) is not an error code and yields `None`;
    /// values outside `1..=16` map to [`Code::Unknown`] as gRPC requires.
    pub fn from_value(value: u32) -> Option<Code> {
        match value {
            0 => None,
            1..=16 => Some(ALL_CODES[(value - 1) as usize]),
            _ => Some(Code::Unknown),
        }
    }

    /// The HTTP status a Connect unary error response carries for this code.
    pub const fn http_status(self) -> http::StatusCode {
        let raw: u16 = match self {
            Code::Canceled => 499,
            Code::Unknown | Code::Internal | Code::DataLoss => 500,
            Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => 400,
            Code::DeadlineExceeded => 504,
            Code::NotFound => 404,
            Code::AlreadyExists | Code::Aborted => 409,
            Code::PermissionDenied => 403,
            Code::ResourceExhausted => 429,
            Code::Unimplemented => 501,
            Code::Unavailable => 503,
            Code::Unauthenticated => 401,
        };
        match http::StatusCode::from_u16(raw) {
            Ok(status) => status,
            // Every value above is in 100..=999, so this arm is unreachable in practice.
            Err(_) => http::StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Infers a code from an HTTP status of a response that carries no usable RPC error
    /// (the table shared by Connect and gRPC). Returns `None` for `200 OK`.
    pub fn from_http_status(status: http::StatusCode) -> Option<Code> {
        Some(match status.as_u16() {
            200 => return None,
            400 => Code::Internal,
            401 => Code::Unauthenticated,
            403 => Code::PermissionDenied,
            404 => Code::Unimplemented,
            429 | 502 | 503 | 504 => Code::Unavailable,
            _ => Code::Unknown,
        })
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for code in ALL_CODES {
            assert_eq!(Code::from_name(code.as_str()), Some(code));
        }
        assert_eq!(Code::from_name("ok"), None);
        assert_eq!(Code::from_name("CANCELED"), None);
        assert_eq!(Code::from_name(""), None);
    }

    #[test]
    fn values_round_trip_and_unknowns_map_to_unknown() {
        for code in ALL_CODES {
            assert_eq!(Code::from_value(code.value()), Some(code));
        }
        assert_eq!(Code::from_value(0), None);
        assert_eq!(Code::from_value(17), Some(Code::Unknown));
        assert_eq!(Code::from_value(u32::MAX), Some(Code::Unknown));
    }

    #[test]
    fn http_statuses_match_the_connect_table() {
        let table = [
            (Code::Canceled, 499),
            (Code::Unknown, 500),
            (Code::InvalidArgument, 400),
            (Code::DeadlineExceeded, 504),
            (Code::NotFound, 404),
            (Code::AlreadyExists, 409),
            (Code::PermissionDenied, 403),
            (Code::ResourceExhausted, 429),
            (Code::FailedPrecondition, 400),
            (Code::Aborted, 409),
            (Code::OutOfRange, 400),
            (Code::Unimplemented, 501),
            (Code::Internal, 500),
            (Code::Unavailable, 503),
            (Code::DataLoss, 500),
            (Code::Unauthenticated, 401),
        ];
        for (code, status) in table {
            assert_eq!(code.http_status().as_u16(), status, "{code}");
        }
    }

    #[test]
    fn http_to_code_inference() {
        let s = |n| http::StatusCode::from_u16(n).unwrap();
        assert_eq!(Code::from_http_status(s(200)), None);
        assert_eq!(Code::from_http_status(s(400)), Some(Code::Internal));
        assert_eq!(Code::from_http_status(s(401)), Some(Code::Unauthenticated));
        assert_eq!(Code::from_http_status(s(403)), Some(Code::PermissionDenied));
        assert_eq!(Code::from_http_status(s(404)), Some(Code::Unimplemented));
        for unavailable in [429, 502, 503, 504] {
            assert_eq!(
                Code::from_http_status(s(unavailable)),
                Some(Code::Unavailable)
            );
        }
        for other in [201, 302, 405, 415, 500, 501, 599] {
            assert_eq!(Code::from_http_status(s(other)), Some(Code::Unknown));
        }
    }
}
