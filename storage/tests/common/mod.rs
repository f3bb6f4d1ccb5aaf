//! Test helpers: hand-built magic-2 batches (uncompressed, CRC32C-correct) and log setup.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};

use strata_storage::{Log, LogConfig, RecordBatchHeader, TopicPartition};

fn varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        let b = (z & 0x7f) as u8;
        z >>= 7;
        if z == 0 {
            out.push(b);
            break;
        }
        out.push(b | 0x80);
    }
}

/// A batch of `values.len()` records with timestamps `base_ts + i`; base offset 0 (the log assigns it).
pub fn batch_with_ts(values: &[&[u8]], base_ts: i64) -> Vec<u8> {
    let mut records = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let mut body = vec![0u8]; // attributes
        varint(&mut body, i as i64); // timestamp delta
        varint(&mut body, i as i64); // offset delta
        varint(&mut body, -1); // null key
        varint(&mut body, v.len() as i64);
        body.extend_from_slice(v);
        varint(&mut body, 0); // no headers
        varint(&mut records, body.len() as i64);
        records.extend_from_slice(&body);
    }
    let n = values.len() as i32;
    let mut b = Vec::new();
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&((49 + records.len()) as i32).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes()); // leader epoch
    b.push(2);
    b.extend_from_slice(&0u32.to_be_bytes()); // crc, filled below
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&(n - 1).to_be_bytes());
    b.extend_from_slice(&base_ts.to_be_bytes());
    b.extend_from_slice(&(base_ts + i64::from(n) - 1).to_be_bytes());
    b.extend_from_slice(&(-1i64).to_be_bytes());
    b.extend_from_slice(&(-1i16).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.extend_from_slice(&n.to_be_bytes());
    b.extend_from_slice(&records);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// A batch of (key, value) records (None = null) with timestamps `base_ts + i`.
/// A record's (key, value); None is null.
pub type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

pub fn keyed_batch(records: &[KeyValue<'_>], base_ts: i64) -> Vec<u8> {
    let mut body_all = Vec::new();
    for (i, (k, v)) in records.iter().enumerate() {
        let mut body = vec![0u8];
        varint(&mut body, i as i64);
        varint(&mut body, i as i64);
        for field in [k, v] {
            match field {
                Some(bytes) => {
                    varint(&mut body, bytes.len() as i64);
                    body.extend_from_slice(bytes);
                }
                None => varint(&mut body, -1),
            }
        }
        varint(&mut body, 0);
        varint(&mut body_all, body.len() as i64);
        body_all.extend_from_slice(&body);
    }
    let n = records.len() as i32;
    let mut b = Vec::new();
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&((49 + body_all.len()) as i32).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.push(2);
    b.extend_from_slice(&0u32.to_be_bytes());
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&(n - 1).to_be_bytes());
    b.extend_from_slice(&base_ts.to_be_bytes());
    b.extend_from_slice(&(base_ts + i64::from(n) - 1).to_be_bytes());
    b.extend_from_slice(&(-1i64).to_be_bytes());
    b.extend_from_slice(&(-1i16).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.extend_from_slice(&n.to_be_bytes());
    b.extend_from_slice(&body_all);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

pub fn batch(values: &[&[u8]]) -> Vec<u8> {
    batch_with_ts(values, 1_000)
}

/// A one-record batch whose value is `tag` padded to `len` bytes.
pub fn sized_batch(tag: u64, len: usize, ts: i64) -> Vec<u8> {
    let mut v = tag.to_be_bytes().to_vec();
    v.resize(len.max(8), 0xab);
    batch_with_ts(&[&v], ts)
}

/// Splits fetched bytes into (header, batch bytes) and checks each CRC.
pub fn batches(bytes: &[u8]) -> Vec<(RecordBatchHeader, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let h = RecordBatchHeader::parse(&bytes[pos..]).unwrap();
        let b = bytes[pos..pos + h.total_size()].to_vec();
        strata_protocol::record_batch::verify_crc(&b).unwrap();
        out.push((h, b));
        pos += h.total_size();
    }
    assert_eq!(pos, bytes.len(), "read must return whole batches");
    out
}

/// Records' payload after the header (the bytes the producer sent), to compare content.
pub fn payload(batch: &[u8]) -> &[u8] {
    &batch[61..]
}

pub fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        max_index_bytes: 1024,
        retention_ms: -1,
        ..LogConfig::default()
    }
}

pub fn tp() -> TopicPartition {
    TopicPartition::new("orders-eu", 3)
}

pub fn open(dir: &Path, config: LogConfig, recovery_point: i64) -> Log {
    Log::open(dir.to_path_buf(), tp(), config, recovery_point, 0).unwrap()
}

pub fn segment_files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some(ext))
        .collect();
    v.sort();
    v
}

/// Reads the whole log from `from`, following next_offset, and returns every batch.
pub fn read_all(log: &Log, from: i64) -> Vec<(RecordBatchHeader, Vec<u8>)> {
    let mut out = Vec::new();
    let mut next = from;
    while next < log.log_end_offset() {
        let r = log.read(next, 1 << 20, i64::MAX, true).unwrap();
        assert!(!r.records.is_empty(), "no progress at offset {next}");
        out.extend(batches(&r.records));
        next = r.next_offset;
    }
    out
}
