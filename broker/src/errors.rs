//! Kafka error codes as the broker returns them. We use kafka-protocol's `ResponseError`
//! (Kafka's full table with retriability) rather than keep a second copy.

pub use kafka_protocol::error::ResponseError as ErrorCode;

/// Maps a numeric Kafka code (e.g. from storage or protocol errors) to the typed code;
/// 0 (NONE) has no variant and maps to UNKNOWN_SERVER_ERROR, so callers pass only failures.
pub fn from_code(code: i16) -> ErrorCode {
    ErrorCode::try_from_code(code).unwrap_or(ErrorCode::UnknownServerError)
}

/// The wire value of an outcome: 0 for success, else the error's code.
pub fn code_of<T>(result: &Result<T, ErrorCode>) -> i16 {
    match result {
        Ok(_) => 0,
        Err(e) => e.code(),
    }
}
