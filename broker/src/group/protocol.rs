//! Just enough of the embedded "consumer" protocol (ConsumerProtocolSubscription) to know
//! which topics a group subscribes to, which OffsetDelete and offset expiry need.

use bytes::{Buf, Bytes};

/// The protocol type Java/librdkafka consumers use.
pub(crate) const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// Topics listed in a ConsumerProtocolSubscription (every version starts with
/// `version: i16, topics: [string]`, non-flexible); `None` when it does not parse.
pub(crate) fn subscribed_topics(metadata: &Bytes) -> Option<Vec<String>> {
    let mut buf = metadata.clone();
    if buf.remaining() < 6 {
        return None;
    }
    let version = buf.get_i16();
    if version < 0 {
        return None;
    }
    let count = usize::try_from(buf.get_i32()).ok()?;
    // Each topic takes at least 2 bytes; a larger count is hostile.
    if count > buf.remaining() / 2 {
        return None;
    }
    let mut topics = Vec::with_capacity(count);
    for _ in 0..count {
        if buf.remaining() < 2 {
            return None;
        }
        let len = usize::try_from(buf.get_i16()).ok()?;
        if buf.remaining() < len {
            return None;
        }
        let raw = buf.split_to(len);
        topics.push(String::from_utf8(raw.to_vec()).ok()?);
    }
    Some(topics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};

    pub(crate) fn subscription(topics: &[&str]) -> Bytes {
        let mut b = BytesMut::new();
        b.put_i16(1);
        b.put_i32(topics.len() as i32);
        for t in topics {
            b.put_i16(t.len() as i16);
            b.put_slice(t.as_bytes());
        }
        b.put_i32(-1); // user data
        b.put_i32(0); // owned partitions
        b.freeze()
    }

    #[test]
    fn parses_topics_and_rejects_garbage() {
        assert_eq!(
            subscribed_topics(&subscription(&["a", "bc"])),
            Some(vec!["a".to_string(), "bc".to_string()])
        );
        assert_eq!(
            subscribed_topics(&Bytes::from_static(&[0, 1, 0x7f, 0, 0, 0])),
            None
        );
        assert_eq!(subscribed_topics(&Bytes::from_static(&[0])), None);
    }
}
