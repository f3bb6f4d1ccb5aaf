//! Partition-level tests, and the helpers the partition's other test modules share.

#![allow(clippy::unwrap_used)]

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use strata_protocol::kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use strata_protocol::record_batch::RecordBatchHeader;
use strata_storage::{Log, LogConfig, TopicPartition};

use crate::partition::Partition;

pub(crate) fn batch(i: i64) -> Vec<u8> {
    let record = Record {
        transactional: false,
        control: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: 1_000 + i,
        key: Some(bytes::Bytes::from(format!("k{i}"))),
        value: Some(bytes::Bytes::from_static(b"v")),
        headers: Default::default(),
        delete_horizon: false,
    };
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        [&record],
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.to_vec()
}

pub(crate) fn partition(dir: &std::path::Path, flush_messages: u64) -> Arc<Partition> {
    let tp = TopicPartition::new("p", 0);
    let config = LogConfig {
        flush_interval_messages: flush_messages,
        ..LogConfig::default()
    };
    let log = Log::open(dir.join("p-0"), tp.clone(), config, 0, 0).unwrap();
    Arc::new(Partition::new(tp, uuid::Uuid::nil(), log, 0))
}

/// An append copying its records holds `writer`, not `local`: reads go on meanwhile, while
/// other appends wait their turn.
#[test]
fn reads_do_not_wait_for_an_append_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let p = partition(dir.path(), u64::MAX);
    let b = batch(0);
    let h = RecordBatchHeader::parse(&b).unwrap();
    p.append_as_leader(&b, &h, 0).unwrap();

    let writing = p.writer.lock().unwrap();
    let (read_tx, read_rx) = mpsc::channel();
    let reader = Arc::clone(&p);
    std::thread::spawn(move || {
        let _ = read_tx.send(reader.read(0, 1 << 20, true).map(|r| r.records.len()));
    });
    let read = read_rx.recv_timeout(Duration::from_secs(10));
    assert_eq!(
        read,
        Ok(Ok(b.len())),
        "a read should complete while an append holds the writer lock"
    );

    let (append_tx, append_rx) = mpsc::channel();
    let appender = Arc::clone(&p);
    std::thread::spawn(move || {
        let b = batch(1);
        let h = RecordBatchHeader::parse(&b).unwrap();
        let _ = append_tx.send(appender.append_as_leader(&b, &h, 0).map(|o| o.base_offset));
    });
    assert!(
        append_rx.recv_timeout(Duration::from_millis(200)).is_err(),
        "a second append must wait for the one in flight"
    );
    drop(writing);
    let appended = append_rx.recv_timeout(Duration::from_secs(10));
    assert_eq!(appended, Ok(Ok(1)));
    assert_eq!(p.high_watermark(), 2);
}

/// `flush.messages` above one and `flush.ms` flush from the maintenance pass (the fsync runs
/// without the partition's locks): the recovery point follows.
#[test]
fn maintenance_flushes_when_flush_messages_or_flush_ms_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let by_count = partition(dir.path(), 3);
    assert!(!by_count.is_durable());
    for i in 0..2 {
        let b = batch(i);
        let h = RecordBatchHeader::parse(&b).unwrap();
        by_count.append_as_leader(&b, &h, 0).unwrap();
    }
    by_count.maintain(0, false);
    assert_eq!(
        by_count.recovery_point(),
        Some(0),
        "2 of 3 messages: not due"
    );
    let b = batch(2);
    let h = RecordBatchHeader::parse(&b).unwrap();
    by_count.append_as_leader(&b, &h, 0).unwrap();
    by_count.maintain(0, false);
    assert_eq!(by_count.recovery_point(), Some(3));

    let dir = tempfile::tempdir().unwrap();
    let tp = TopicPartition::new("timed", 0);
    let config = LogConfig {
        flush_interval_ms: 100,
        ..LogConfig::default()
    };
    let log = Log::open(dir.path().join("timed-0"), tp.clone(), config, 0, 0).unwrap();
    let by_time = Partition::new(tp, uuid::Uuid::nil(), log, 0);
    let b = batch(0);
    let h = RecordBatchHeader::parse(&b).unwrap();
    by_time.append_as_leader(&b, &h, 10).unwrap();
    by_time.maintain(50, false);
    assert_eq!(by_time.recovery_point(), Some(0), "50 ms of 100: not due");
    by_time.maintain(150, false);
    assert_eq!(by_time.recovery_point(), Some(1));
}

/// Producers on four threads and readers on two, one partition: every read returns whole,
/// CRC-valid batches with offsets dense from where it started, never past the high
/// watermark it reported, and the log ends with every append in it exactly once.
#[test]
fn concurrent_appends_and_reads_see_only_whole_committed_batches() {
    let dir = tempfile::tempdir().unwrap();
    concurrent_appends_and_reads(partition(dir.path(), u64::MAX));
}

/// The same with 4 KiB segments: appends roll every ~50 batches, the roll's file work
/// running beside the readers.
#[test]
fn concurrent_appends_rolling_segments_and_reads_see_only_whole_committed_batches() {
    let dir = tempfile::tempdir().unwrap();
    let tp = TopicPartition::new("p", 0);
    let config = LogConfig {
        segment_bytes: 4096,
        ..LogConfig::default()
    };
    let log = Log::open(dir.path().join("p-0"), tp.clone(), config, 0, 0).unwrap();
    let p = Arc::new(Partition::new(tp, uuid::Uuid::nil(), log, 0));
    concurrent_appends_and_reads(Arc::clone(&p));
    let segments = p.with_local(|l| Ok(l.log.segment_count())).unwrap();
    assert!(
        segments > 10,
        "expected many rolls, found {segments} segments"
    );
}

fn concurrent_appends_and_reads(p: Arc<Partition>) {
    use strata_protocol::record_batch::{verify_crc, BatchIter};

    const WRITERS: i64 = 4;
    const APPENDS: i64 = 300;
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (p, done) = (Arc::clone(&p), Arc::clone(&done));
            std::thread::spawn(move || {
                let mut reads = 0u64;
                loop {
                    let finished = done.load(std::sync::atomic::Ordering::Acquire);
                    // From the start to the end, one segment a read.
                    let mut next = 0i64;
                    loop {
                        let read = p.read(next, 1 << 20, true).unwrap();
                        if read.records.is_empty() {
                            break;
                        }
                        let mut iter = BatchIter::new(&read.records);
                        for batch in iter.by_ref() {
                            verify_crc(batch.bytes).unwrap();
                            assert_eq!(batch.header.base_offset, next, "offsets must be dense");
                            next = batch.header.last_offset() + 1;
                        }
                        assert!(iter.stop_reason().is_none(), "a partial batch was read");
                        assert!(next <= read.high_watermark, "read past the high watermark");
                    }
                    reads += 1;
                    if finished {
                        return (reads, next);
                    }
                }
            })
        })
        .collect();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let p = Arc::clone(&p);
            std::thread::spawn(move || {
                for i in 0..APPENDS {
                    let b = batch(w * APPENDS + i);
                    let h = RecordBatchHeader::parse(&b).unwrap();
                    p.append_as_leader(&b, &h, 0).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Release);
    for r in readers {
        let (reads, last_seen) = r.join().unwrap();
        assert!(reads > 0);
        assert_eq!(
            last_seen,
            WRITERS * APPENDS,
            "the final read sees every append"
        );
    }
    assert_eq!(p.high_watermark(), WRITERS * APPENDS);
}

/// A transactional batch of `count` records from `pid` at `epoch` (sequence `seq`).
pub(crate) fn txn_batch(pid: i64, epoch: i16, seq: i32, count: i32) -> Vec<u8> {
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional: true,
            control: false,
            partition_leader_epoch: 0,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i64::from(i),
            sequence: seq + i,
            timestamp: 1_000,
            key: None,
            value: Some(bytes::Bytes::from_static(b"t")),
            headers: Default::default(),
            delete_horizon: false,
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.to_vec()
}

fn append(p: &Partition, b: &[u8]) -> i64 {
    let h = RecordBatchHeader::parse(b).unwrap();
    p.append_as_leader(b, &h, 0).unwrap().base_offset
}

/// Open transactions hold the last stable offset back; read_committed reads stop there and
/// carry the aborted transactions they cover; all of it comes back when the log reopens.
#[test]
fn transactions_bound_the_stable_offset_and_survive_a_reopen() {
    use strata_protocol::record_batch::MarkerKind;

    use crate::partition::Isolation;

    let dir = tempfile::tempdir().unwrap();
    let p = partition(dir.path(), u64::MAX);
    append(&p, &batch(0)); // 0: plain
    assert_eq!(append(&p, &txn_batch(7, 0, 0, 3)), 1); // 1..=3: producer 7
    assert_eq!(append(&p, &txn_batch(8, 0, 0, 2)), 4); // 4..=5: producer 8
    assert_eq!((p.last_stable_offset(), p.high_watermark()), (1, 6));
    let committed = p
        .read_isolated(0, 1 << 20, true, Isolation::ReadCommitted)
        .unwrap();
    let uncommitted = p.read(0, 1 << 20, true).unwrap();
    assert!(committed.records.len() < uncommitted.records.len());
    assert_eq!(committed.last_stable_offset, 1);
    assert_eq!(committed.aborted, Some(Vec::new()));
    assert_eq!(uncommitted.aborted, None);

    // Producer 7 aborts (marker at 6), producer 8 commits (marker at 7).
    let abort = p.append_marker(7, 0, 0, MarkerKind::Abort, 0).unwrap();
    assert_eq!(abort.base_offset, 6);
    assert_eq!(p.last_stable_offset(), 4);
    p.append_marker(8, 0, 0, MarkerKind::Commit, 0).unwrap();
    assert_eq!(p.last_stable_offset(), 8);
    let read = p
        .read_isolated(0, 1 << 20, true, Isolation::ReadCommitted)
        .unwrap();
    let aborted = read.aborted.unwrap();
    assert_eq!(aborted.len(), 1);
    assert_eq!((aborted[0].producer_id, aborted[0].first_offset), (7, 1));
    // A read after the aborted transaction's marker does not list it.
    let later = p
        .read_isolated(7, 1 << 20, true, Isolation::ReadCommitted)
        .unwrap();
    assert_eq!(later.aborted, Some(Vec::new()));
    // A marker from an older epoch than the producer's is refused (a fenced coordinator).
    p.append_marker(7, 2, 0, MarkerKind::Abort, 0).unwrap();
    assert!(p.append_marker(7, 1, 0, MarkerKind::Abort, 0).is_err());

    // Producer 9 leaves a transaction open; the log is closed and reopened.
    assert_eq!(append(&p, &txn_batch(9, 0, 0, 1)), 9);
    p.close();
    let p = partition(dir.path(), u64::MAX);
    assert_eq!((p.last_stable_offset(), p.high_watermark()), (9, 10));
    assert_eq!(p.open_transactions(), vec![(9, 0)]);
    let read = p
        .read_isolated(0, 1 << 20, true, Isolation::ReadCommitted)
        .unwrap();
    let aborted = read.aborted.unwrap();
    assert_eq!(aborted.len(), 1);
    assert_eq!((aborted[0].producer_id, aborted[0].first_offset), (7, 1));
    p.append_marker(9, 0, 0, MarkerKind::Commit, 0).unwrap();
    assert_eq!(p.last_stable_offset(), 11);
}

/// acks=all: a high watermark that passed a batch only because the ISR shrank below
/// min.insync.replicas is NOT_ENOUGH_REPLICAS_AFTER_APPEND (as Kafka's delayed produce
/// answers), never an acknowledgement of fewer copies than promised.
#[tokio::test(start_paused = true)]
async fn a_high_watermark_reached_by_shrinking_below_min_insync_is_not_an_acknowledgement() {
    use crate::errors::ErrorCode;
    let dir = tempfile::tempdir().unwrap();
    let p = partition(dir.path(), 0);
    let _ = p.become_leader(1, 0, &[1, 2], &[1, 2], 0, 0);
    let end = append(&p, &batch(0)) + 1;
    let wait = Duration::from_secs(1);
    assert_eq!(
        p.wait_replicated(end, wait, 2).await,
        Err(ErrorCode::RequestTimedOut),
        "replica 2 has not fetched"
    );
    // Replica 2 leaves the ISR: the leader alone holds the batch.
    let _ = p.become_leader(1, 0, &[1, 2], &[1], 1, 0);
    assert!(p.high_watermark() >= end);
    assert_eq!(
        p.wait_replicated(end, wait, 2).await,
        Err(ErrorCode::NotEnoughReplicasAfterAppend)
    );
    assert_eq!(p.wait_replicated(end, wait, 1).await, Ok(()));
}

/// DeleteRecords' low watermark: the smallest log start among the leader and its in-sync
/// followers, as their fetches report them (-1 until one has).
#[test]
fn the_low_watermark_waits_for_every_in_sync_follower() {
    let dir = tempfile::tempdir().unwrap();
    let p = partition(dir.path(), 0);
    let _ = p.become_leader(1, 0, &[1, 2], &[1, 2], 0, 0);
    let end = append(&p, &batch(0)) + 1;
    assert_eq!(p.low_watermark(), -1, "follower 2 has not fetched");
    let _ = p.record_follower_fetch(2, end, 0, 1);
    assert_eq!(p.high_watermark(), end);
    p.delete_records_before(end).unwrap();
    assert_eq!(p.log_start_offset(), end);
    assert_eq!(p.low_watermark(), 0, "follower 2 still starts at 0");
    let _ = p.record_follower_fetch(2, end, end, 2);
    assert_eq!(p.low_watermark(), end);
    // A follower out of the ISR does not hold it back.
    let _ = p.become_leader(1, 0, &[1, 2], &[1], 1, 3);
    let _ = p.record_follower_fetch(2, end, 0, 4);
    assert_eq!(p.low_watermark(), end);
}
