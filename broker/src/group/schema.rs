//! Kafka's record schemas for `__consumer_offsets` (OffsetCommitKey/Value,
//! GroupMetadataKey/Value), so the topic's data is byte-compatible with a Java broker's.
//! Keys start with an i16 record type (0/1 offset commit, 2 group metadata), values with
//! an i16 schema version; we write OffsetCommitValue v3 and GroupMetadataValue v3 and read
//! every version 0..=4 (v4 is the flexible encoding).

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Key of a `__consumer_offsets` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffsetsKey {
    /// OffsetCommitKey: the committed offset of one partition for one group.
    OffsetCommit {
        group: String,
        topic: String,
        partition: i32,
    },
    /// GroupMetadataKey: the group's membership and generation.
    GroupMetadata { group: String },
}

/// OffsetCommitValue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitValue {
    pub offset: i64,
    /// -1 when unknown (versions before 3 do not carry it).
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
    /// Only version 1 stores it; -1 otherwise.
    pub expire_timestamp: i64,
}

/// One member inside GroupMetadataValue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberMetadataValue {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// GroupMetadataValue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadataValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// -1 when unknown (versions before 2 do not carry it).
    pub current_state_timestamp: i64,
    pub members: Vec<MemberMetadataValue>,
}

/// Why a `__consumer_offsets` record could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SchemaError {
    #[error("truncated record: expected {needed} more bytes for {what}, found {remaining}")]
    Truncated {
        what: &'static str,
        needed: usize,
        remaining: usize,
    },
    #[error("unsupported record key type: expected 0, 1 or 2, found {0}")]
    UnknownKeyType(i16),
    #[error("unsupported {record} version: expected 0..=4, found {version}")]
    UnknownValueVersion { record: &'static str, version: i16 },
    #[error("invalid length for {what}: found {found}")]
    InvalidLength { what: &'static str, found: i64 },
    #[error("{what} is not valid UTF-8")]
    InvalidUtf8 { what: &'static str },
    #[error("{what} is null but the schema does not allow it")]
    UnexpectedNull { what: &'static str },
}

pub const OFFSET_COMMIT_KEY_TYPE: i16 = 1;
pub const GROUP_METADATA_KEY_TYPE: i16 = 2;
const OFFSET_COMMIT_VALUE_VERSION: i16 = 3;
const GROUP_METADATA_VALUE_VERSION: i16 = 3;

fn put_string(buf: &mut BytesMut, s: &str) {
    // Strings we write come from requests whose own encoding bounds them to i16 lengths.
    let len = i16::try_from(s.len()).unwrap_or(i16::MAX);
    buf.put_i16(len);
    buf.put_slice(s.as_bytes().get(..len as usize).unwrap_or_default());
}

fn put_nullable_string(buf: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_string(buf, s),
        None => buf.put_i16(-1),
    }
}

fn put_bytes(buf: &mut BytesMut, b: &[u8]) {
    let len = i32::try_from(b.len()).unwrap_or(i32::MAX);
    buf.put_i32(len);
    buf.put_slice(b.get(..len as usize).unwrap_or_default());
}

impl OffsetsKey {
    pub fn group(&self) -> &str {
        match self {
            OffsetsKey::OffsetCommit { group, .. } | OffsetsKey::GroupMetadata { group } => group,
        }
    }

    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        match self {
            OffsetsKey::OffsetCommit {
                group,
                topic,
                partition,
            } => {
                buf.put_i16(OFFSET_COMMIT_KEY_TYPE);
                put_string(&mut buf, group);
                put_string(&mut buf, topic);
                buf.put_i32(*partition);
            }
            OffsetsKey::GroupMetadata { group } => {
                buf.put_i16(GROUP_METADATA_KEY_TYPE);
                put_string(&mut buf, group);
            }
        }
        buf.freeze()
    }

    /// Decodes a key; `Ok(None)` for record types this coordinator does not own (e.g.
    /// the new consumer-group protocol's records), which loading skips.
    pub fn decode(bytes: &Bytes) -> Result<Option<Self>, SchemaError> {
        let mut r = Reader::new(bytes.clone(), false);
        let key_type = r.i16("key type")?;
        match key_type {
            0 | 1 => Ok(Some(OffsetsKey::OffsetCommit {
                group: r.string("group")?,
                topic: r.string("topic")?,
                partition: r.i32("partition")?,
            })),
            2 => Ok(Some(OffsetsKey::GroupMetadata {
                group: r.string("group")?,
            })),
            t if t > 2 => Ok(None),
            t => Err(SchemaError::UnknownKeyType(t)),
        }
    }
}

impl OffsetCommitValue {
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_i16(OFFSET_COMMIT_VALUE_VERSION);
        buf.put_i64(self.offset);
        buf.put_i32(self.leader_epoch);
        put_string(&mut buf, &self.metadata);
        buf.put_i64(self.commit_timestamp);
        buf.freeze()
    }

    pub fn decode(bytes: &Bytes) -> Result<Self, SchemaError> {
        let mut r = Reader::new(bytes.clone(), false);
        let version = r.i16("value version")?;
        if !(0..=4).contains(&version) {
            return Err(SchemaError::UnknownValueVersion {
                record: "OffsetCommitValue",
                version,
            });
        }
        r.flexible = version >= 4;
        let offset = r.i64("offset")?;
        let leader_epoch = if version >= 3 {
            r.i32("leaderEpoch")?
        } else {
            -1
        };
        let metadata = r.string("metadata")?;
        let commit_timestamp = r.i64("commitTimestamp")?;
        let expire_timestamp = if version == 1 {
            r.i64("expireTimestamp")?
        } else {
            -1
        };
        r.tagged_fields()?;
        Ok(Self {
            offset,
            leader_epoch,
            metadata,
            commit_timestamp,
            expire_timestamp,
        })
    }
}

impl GroupMetadataValue {
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_i16(GROUP_METADATA_VALUE_VERSION);
        put_string(&mut buf, &self.protocol_type);
        buf.put_i32(self.generation);
        put_nullable_string(&mut buf, self.protocol.as_deref());
        put_nullable_string(&mut buf, self.leader.as_deref());
        buf.put_i64(self.current_state_timestamp);
        buf.put_i32(i32::try_from(self.members.len()).unwrap_or(i32::MAX));
        for m in &self.members {
            put_string(&mut buf, &m.member_id);
            put_nullable_string(&mut buf, m.group_instance_id.as_deref());
            put_string(&mut buf, &m.client_id);
            put_string(&mut buf, &m.client_host);
            buf.put_i32(m.rebalance_timeout_ms);
            buf.put_i32(m.session_timeout_ms);
            put_bytes(&mut buf, &m.subscription);
            put_bytes(&mut buf, &m.assignment);
        }
        buf.freeze()
    }

    pub fn decode(bytes: &Bytes) -> Result<Self, SchemaError> {
        let mut r = Reader::new(bytes.clone(), false);
        let version = r.i16("value version")?;
        if !(0..=4).contains(&version) {
            return Err(SchemaError::UnknownValueVersion {
                record: "GroupMetadataValue",
                version,
            });
        }
        r.flexible = version >= 4;
        let protocol_type = r.string("protocolType")?;
        let generation = r.i32("generation")?;
        let protocol = r.nullable_string("protocol")?;
        let leader = r.nullable_string("leader")?;
        let current_state_timestamp = if version >= 2 {
            r.i64("currentStateTimestamp")?
        } else {
            -1
        };
        let count = r.array_len("members")?;
        // Each member takes at least 20 bytes, so a count beyond that is hostile.
        let mut members = Vec::with_capacity(count.min(r.remaining() / 20));
        for _ in 0..count {
            let member_id = r.string("memberId")?;
            let group_instance_id = if version >= 3 {
                r.nullable_string("groupInstanceId")?
            } else {
                None
            };
            let client_id = r.string("clientId")?;
            let client_host = r.string("clientHost")?;
            let session_first = version == 0;
            let (rebalance_timeout_ms, session_timeout_ms) = if session_first {
                let s = r.i32("sessionTimeout")?;
                (s, s)
            } else {
                (r.i32("rebalanceTimeout")?, r.i32("sessionTimeout")?)
            };
            let subscription = r.bytes("subscription")?;
            let assignment = r.bytes("assignment")?;
            r.tagged_fields()?;
            members.push(MemberMetadataValue {
                member_id,
                group_instance_id,
                client_id,
                client_host,
                rebalance_timeout_ms,
                session_timeout_ms,
                subscription,
                assignment,
            });
        }
        r.tagged_fields()?;
        Ok(Self {
            protocol_type,
            generation,
            protocol,
            leader,
            current_state_timestamp,
            members,
        })
    }
}

/// Bounds-checked cursor over a record; `flexible` switches to compact lengths + tags.
struct Reader {
    buf: Bytes,
    flexible: bool,
}

impl Reader {
    fn new(buf: Bytes, flexible: bool) -> Self {
        Self { buf, flexible }
    }

    fn remaining(&self) -> usize {
        self.buf.remaining()
    }

    fn need(&self, what: &'static str, needed: usize) -> Result<(), SchemaError> {
        if self.buf.remaining() < needed {
            return Err(SchemaError::Truncated {
                what,
                needed,
                remaining: self.buf.remaining(),
            });
        }
        Ok(())
    }

    fn i16(&mut self, what: &'static str) -> Result<i16, SchemaError> {
        self.need(what, 2)?;
        Ok(self.buf.get_i16())
    }

    fn i32(&mut self, what: &'static str) -> Result<i32, SchemaError> {
        self.need(what, 4)?;
        Ok(self.buf.get_i32())
    }

    fn i64(&mut self, what: &'static str) -> Result<i64, SchemaError> {
        self.need(what, 8)?;
        Ok(self.buf.get_i64())
    }

    fn varint(&mut self, what: &'static str) -> Result<u32, SchemaError> {
        let mut value: u32 = 0;
        for shift in (0..35).step_by(7) {
            self.need(what, 1)?;
            let b = self.buf.get_u8();
            value |= u32::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(SchemaError::InvalidLength {
            what,
            found: i64::from(value),
        })
    }

    /// Length of a string/bytes/array field; `None` for null.
    fn length(&mut self, what: &'static str, wide: bool) -> Result<Option<usize>, SchemaError> {
        let len: i64 = if self.flexible {
            i64::from(self.varint(what)?) - 1
        } else if wide {
            i64::from(self.i32(what)?)
        } else {
            i64::from(self.i16(what)?)
        };
        match len {
            -1 => Ok(None),
            l if l < -1 => Err(SchemaError::InvalidLength { what, found: l }),
            l => usize::try_from(l)
                .map(Some)
                .map_err(|_| SchemaError::InvalidLength { what, found: l }),
        }
    }

    fn take(&mut self, what: &'static str, len: usize) -> Result<Bytes, SchemaError> {
        self.need(what, len)?;
        Ok(self.buf.split_to(len))
    }

    fn nullable_string(&mut self, what: &'static str) -> Result<Option<String>, SchemaError> {
        let Some(len) = self.length(what, false)? else {
            return Ok(None);
        };
        let raw = self.take(what, len)?;
        String::from_utf8(raw.to_vec())
            .map(Some)
            .map_err(|_| SchemaError::InvalidUtf8 { what })
    }

    fn string(&mut self, what: &'static str) -> Result<String, SchemaError> {
        self.nullable_string(what)?
            .ok_or(SchemaError::UnexpectedNull { what })
    }

    fn bytes(&mut self, what: &'static str) -> Result<Bytes, SchemaError> {
        let len = self
            .length(what, true)?
            .ok_or(SchemaError::UnexpectedNull { what })?;
        self.take(what, len)
    }

    fn array_len(&mut self, what: &'static str) -> Result<usize, SchemaError> {
        self.length(what, true)?
            .ok_or(SchemaError::UnexpectedNull { what })
    }

    /// Skips a flexible struct's tagged fields (we know none of them).
    fn tagged_fields(&mut self) -> Result<(), SchemaError> {
        if !self.flexible {
            return Ok(());
        }
        let count = self.varint("tagged field count")?;
        for _ in 0..count {
            let _tag = self.varint("tag")?;
            let size = self.varint("tagged field size")? as usize;
            let _ = self.take("tagged field", size)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_commit_key_matches_kafka_layout() {
        let key = OffsetsKey::OffsetCommit {
            group: "g".into(),
            topic: "t".into(),
            partition: 7,
        };
        let bytes = key.encode();
        assert_eq!(&bytes[..], &[0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 7]);
        assert_eq!(OffsetsKey::decode(&bytes), Ok(Some(key)));
    }

    #[test]
    fn group_metadata_round_trips_with_members() {
        let value = GroupMetadataValue {
            protocol_type: "consumer".into(),
            generation: 4,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            current_state_timestamp: 123,
            members: vec![MemberMetadataValue {
                member_id: "m1".into(),
                group_instance_id: Some("i1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 45_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        assert_eq!(GroupMetadataValue::decode(&value.encode()), Ok(value));
    }

    #[test]
    fn offset_value_round_trips_and_reads_v1() {
        let v = OffsetCommitValue {
            offset: 42,
            leader_epoch: 3,
            metadata: "meta".into(),
            commit_timestamp: 99,
            expire_timestamp: -1,
        };
        assert_eq!(OffsetCommitValue::decode(&v.encode()), Ok(v));
        let mut v1 = BytesMut::new();
        v1.put_i16(1);
        v1.put_i64(5);
        put_string(&mut v1, "");
        v1.put_i64(10);
        v1.put_i64(20);
        let decoded = OffsetCommitValue::decode(&v1.freeze()).unwrap();
        assert_eq!(
            (
                decoded.offset,
                decoded.leader_epoch,
                decoded.expire_timestamp
            ),
            (5, -1, 20)
        );
    }

    #[test]
    fn flexible_v4_offset_value_decodes() {
        let mut b = BytesMut::new();
        b.put_i16(4);
        b.put_i64(8);
        b.put_i32(2);
        b.put_u8(3); // compact string "ab"
        b.put_slice(b"ab");
        b.put_i64(77);
        b.put_u8(1); // one tagged field
        b.put_u8(0);
        b.put_u8(2);
        b.put_slice(b"zz");
        let v = OffsetCommitValue::decode(&b.freeze()).unwrap();
        assert_eq!(
            (
                v.offset,
                v.leader_epoch,
                v.metadata.as_str(),
                v.commit_timestamp
            ),
            (8, 2, "ab", 77)
        );
    }

    #[test]
    fn hostile_records_are_errors_not_panics() {
        let mut b = BytesMut::new();
        b.put_i16(3);
        put_string(&mut b, "consumer");
        b.put_i32(1);
        b.put_i16(-1);
        b.put_i16(-1);
        b.put_i64(0);
        b.put_i32(i32::MAX); // absurd member count
        assert!(matches!(
            GroupMetadataValue::decode(&b.freeze()),
            Err(SchemaError::Truncated { .. })
        ));
        assert!(OffsetsKey::decode(&Bytes::from_static(&[0])).is_err());
        assert!(OffsetsKey::decode(&Bytes::from_static(&[0, 1, 0x7f, 0xff])).is_err());
        assert!(OffsetCommitValue::decode(&Bytes::from_static(&[0, 9])).is_err());
        assert_eq!(
            OffsetsKey::decode(&Bytes::from_static(&[0, 5, 0])),
            Ok(None)
        );
    }
}
