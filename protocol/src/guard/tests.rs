//! Proves the request shapes against the codec: for every supported (api, version) a generator
//! lays out a body from the shape (two-element arrays, distinct strings and numbers, known and
//! unknown tagged fields); kafka-protocol must decode all of it and re-encode exactly the same
//! bytes. `response_tests` uses the same generator for the response shapes.

use super::dsl::{Field, Message, Prim, Ty};
use super::shapes::ALL;
use crate::versions::{decodable_min, SUPPORTED};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{RequestHeader, RequestKind};
use kafka_protocol::protocol::{Encodable, StrBytes};

/// Unknown tag added to every tagged section; above any tag Kafka uses in these messages.
const UNKNOWN_TAG: u32 = 100;

struct Gen {
    out: Vec<u8>,
    version: i16,
    flexible: bool,
    counter: u32,
}

impl Gen {
    fn next(&mut self) -> u32 {
        self.counter += 1;
        self.counter
    }

    fn uvarint(&mut self, mut v: u32) {
        while v >= 0x80 {
            self.out.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.out.push(v as u8);
    }

    fn len_prefix(&mut self, len: usize, wide: bool) {
        if self.flexible {
            self.uvarint(len as u32 + 1);
        } else if wide {
            self.out.put_i32(len as i32);
        } else {
            self.out.put_i16(len as i16);
        }
    }

    fn prim(&mut self, prim: Prim) {
        let n = self.next();
        match prim {
            Prim::Int8 => self.out.put_i8(n as i8),
            Prim::Bool => self.out.put_u8(1),
            Prim::Int16 | Prim::UInt16 => self.out.put_u16(n as u16 + 1000),
            Prim::Int32 | Prim::UInt32 => self.out.put_u32(n + 100_000),
            Prim::Int64 => self.out.put_u64(u64::from(n) + 10_000_000_000),
            Prim::Float64 => self.out.put_f64(f64::from(n) + 0.5),
            Prim::Uuid => self.out.put_u128(u128::from(n) << 64 | 0xabcd),
            Prim::String => {
                let s = format!("s{n}-{}", "x".repeat(n as usize % 5));
                self.len_prefix(s.len(), false);
                self.out.extend_from_slice(s.as_bytes());
            }
            Prim::Bytes | Prim::Records => {
                let b: Vec<u8> = (0..(n % 7 + 3)).map(|i| i as u8 ^ n as u8).collect();
                self.len_prefix(b.len(), true);
                self.out.extend_from_slice(&b);
            }
        }
    }

    fn value(&mut self, ty: Ty) {
        match ty {
            Ty::One(p) => self.prim(p),
            Ty::Array(p) => {
                self.len_prefix(2, true);
                self.prim(p);
                self.prim(p);
            }
            Ty::Struct(fields) => self.fields(fields),
            Ty::NullableStruct(fields) => {
                self.out.push(1); // present
                self.fields(fields);
            }
            Ty::Structs(fields) => {
                self.len_prefix(2, true);
                self.fields(fields);
                self.fields(fields);
            }
        }
    }

    fn fields(&mut self, fields: &'static [Field]) {
        for f in fields {
            if f.tag.is_none() && f.versions.contains(self.version) {
                self.value(f.ty);
            }
        }
        if !self.flexible {
            return;
        }
        let mut tagged: Vec<&Field> = fields
            .iter()
            .filter(|f| f.tag.is_some() && f.versions.contains(self.version))
            .collect();
        tagged.sort_by_key(|f| f.tag);
        self.uvarint(tagged.len() as u32 + 1);
        for f in tagged {
            let mut inner = Gen {
                out: Vec::new(),
                version: self.version,
                flexible: true,
                counter: self.counter,
            };
            inner.value(f.ty);
            self.counter = inner.counter;
            self.uvarint(f.tag.unwrap_or_default());
            self.uvarint(inner.out.len() as u32);
            self.out.extend_from_slice(&inner.out);
        }
        self.uvarint(UNKNOWN_TAG);
        self.uvarint(3);
        self.out.extend_from_slice(b"unk");
    }
}

fn body_for(shape: &Message, version: i16) -> Vec<u8> {
    shaped_body(shape.fields, version, version >= shape.flexible_from)
}

/// A body laid out from `fields` as the codec of `version` should read it.
pub(super) fn shaped_body(fields: &'static [Field], version: i16, flexible: bool) -> Vec<u8> {
    let mut gen = Gen {
        out: Vec::new(),
        version,
        flexible,
        counter: 0,
    };
    gen.fields(fields);
    gen.out
}

/// A full frame (no size prefix): codec-encoded header v1/v2 with a client id, then `body`.
pub(crate) fn frame_for(shape: &Message, version: i16, body: &[u8]) -> (Bytes, usize) {
    let header_version = shape.api_key.request_header_version(version);
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(shape.api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(4242)
        .with_client_id(Some(StrBytes::from_static_str("strata-test")))
        .encode(&mut buf, header_version)
        .unwrap();
    let start = buf.len();
    buf.extend_from_slice(body);
    (buf.freeze(), start)
}

fn shape_of(range: &crate::versions::ApiRange) -> &'static Message {
    ALL.iter()
        .find(|m| m.api_key == range.api_key)
        .unwrap_or_else(|| panic!("no shape for {:?}", range.api_key))
}

#[test]
fn every_supported_api_has_a_shape_within_the_codec_range() {
    for range in SUPPORTED {
        shape_of(range);
        let codec = range.api_key.valid_versions();
        assert!(
            decodable_min(range) >= codec.min,
            "{range:?} below codec {codec:?}"
        );
        assert!(range.max <= codec.max, "{range:?} above codec {codec:?}");
    }
    assert_eq!(ALL.len(), SUPPORTED.len());
}

#[test]
fn shapes_match_the_codec_for_every_supported_version() {
    let mut checked = 0;
    for range in SUPPORTED {
        let shape = shape_of(range);
        for version in decodable_min(range)..=range.max {
            let body = body_for(shape, version);
            let (frame, start) = frame_for(shape, version, &body);
            let what = format!("{:?} v{version}", shape.api_key);

            let end = super::check_body(&frame, start, shape.api_key, version)
                .unwrap_or_else(|e| panic!("{what}: guard refused a well-formed body: {e}"));
            assert_eq!(end, frame.len(), "{what}: guard stopped early");

            let request = crate::decode_request(frame.clone())
                .unwrap_or_else(|e| panic!("{what}: decode failed: {e}"));
            assert_eq!(request.correlation_id, 4242);
            assert_eq!(request.api_version, version);

            // The codec must account for every byte exactly as the shape laid them out.
            let mut rest = frame.slice(start..);
            let direct = RequestKind::decode(shape.api_key, &mut rest, version).unwrap();
            assert!(
                rest.is_empty(),
                "{what}: codec left {} bytes the shape wrote",
                rest.len()
            );
            assert_eq!(direct, request.body, "{what}");
            let mut again = BytesMut::new();
            request.body.encode(&mut again, version).unwrap();
            assert_eq!(
                &again[..],
                &body[..],
                "{what}: re-encoding differs from the shaped bytes"
            );
            checked += 1;
        }
    }
    assert!(checked > 150, "only {checked} (api, version) pairs checked");
}

#[test]
fn every_cut_of_every_shaped_body_is_refused_by_the_guard() {
    for range in SUPPORTED {
        let shape = shape_of(range);
        for version in decodable_min(range)..=range.max {
            let body = body_for(shape, version);
            let (frame, start) = frame_for(shape, version, &body);
            for cut in start..frame.len() {
                let short = frame.slice(..cut);
                assert!(
                    super::check_body(&short, start, shape.api_key, version).is_err(),
                    "{:?} v{version} cut at {cut} accepted",
                    shape.api_key
                );
                assert!(crate::decode_request(short).is_err());
            }
        }
    }
}

#[test]
fn a_null_cursor_passes_the_guard_and_a_negative_marker_skips_the_struct() {
    use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
    use kafka_protocol::messages::{DescribeTopicPartitionsRequest, TopicName};
    let shape = &super::shapes::DESCRIBE_TOPIC_PARTITIONS;
    for cursor in [
        None,
        Some(
            Cursor::default()
                .with_topic_name(TopicName(StrBytes::from_static_str("orders")))
                .with_partition_index(3),
        ),
    ] {
        let request = DescribeTopicPartitionsRequest::default()
            .with_topics(vec![
                TopicRequest::default().with_name(TopicName(StrBytes::from_static_str("orders")))
            ])
            .with_response_partition_limit(2000)
            .with_cursor(cursor.clone());
        let mut body = BytesMut::new();
        request.encode(&mut body, 0).unwrap();
        let (frame, start) = frame_for(shape, 0, &body);
        let end = super::check_body(&frame, start, shape.api_key, 0).unwrap();
        assert_eq!(end, frame.len(), "cursor {cursor:?}");
        let decoded = crate::decode_request(frame).unwrap();
        assert_eq!(
            decoded.body,
            RequestKind::DescribeTopicPartitions(request),
            "cursor {cursor:?}"
        );
    }
}
