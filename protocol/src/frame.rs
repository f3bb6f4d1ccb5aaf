//! Request framing: every Kafka request is preceded by a 4-byte big-endian size. The size is
//! checked against `socket.request.max.bytes` before a single byte of the body is buffered.

/// Bytes of the size prefix in front of every request and response.
pub const FRAME_PREFIX_LEN: usize = 4;

/// Why a size prefix was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    #[error("expected a positive request size, found {size}")]
    NotPositive { size: i32 },
    #[error(
        "expected a request size of at most {max} bytes (socket.request.max.bytes), found {size}"
    )]
    TooLarge { size: usize, max: usize },
}

/// Length from a 4-byte big-endian size prefix; error if negative, zero or > max_request_bytes.
pub fn decode_frame_len(prefix: [u8; 4], max_request_bytes: usize) -> Result<usize, FrameError> {
    let size = i32::from_be_bytes(prefix);
    if size <= 0 {
        return Err(FrameError::NotPositive { size });
    }
    // size > 0, so the conversion is lossless.
    let size = size as usize;
    if size > max_request_bytes {
        return Err(FrameError::TooLarge {
            size,
            max: max_request_bytes,
        });
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_sizes_up_to_the_limit() {
        assert_eq!(decode_frame_len(100i32.to_be_bytes(), 100), Ok(100));
        assert_eq!(decode_frame_len(1i32.to_be_bytes(), 100), Ok(1));
    }

    #[test]
    fn refuses_zero_negative_and_oversized() {
        assert_eq!(
            decode_frame_len(0i32.to_be_bytes(), 100),
            Err(FrameError::NotPositive { size: 0 })
        );
        assert_eq!(
            decode_frame_len((-5i32).to_be_bytes(), 100),
            Err(FrameError::NotPositive { size: -5 })
        );
        assert_eq!(
            decode_frame_len(101i32.to_be_bytes(), 100),
            Err(FrameError::TooLarge {
                size: 101,
                max: 100
            })
        );
        assert!(decode_frame_len([0xff; 4], usize::MAX).is_err());
    }
}
