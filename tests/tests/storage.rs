//! Storage end to end: durable mode under a kill -9 loop, compaction of a compacted topic
//! (and its refusal of keyless records), DeleteRecords through confluent-kafka's
//! AdminClient across a restart (with the high-watermark and leader-epoch checkpoints), a
//! failed log dir (injected with chattr +i) that takes only its own partitions offline, a
//! full log directory that refuses produce with KAFKA_STORAGE_ERROR, keeps serving reads and
//! recovers when space returns, and a topic of many partitions that holds few disk blocks.

// Tests may unwrap: a panic here is a failed assertion with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use strata_tests::tools::wait_with_deadline;
use strata_tests::{poll_until, run_kcat, run_python, spawn_python, Broker, RawConnection};

fn count_lines(path: &Path) -> usize {
    std::fs::read(path)
        .map(|bytes| bytes.iter().filter(|&&b| b == b'\n').count())
        .unwrap_or(0)
}

fn ops(broker: &Broker, topic: &str, args: &[&str]) -> String {
    let bootstrap = broker.bootstrap();
    let mut all = vec!["--bootstrap", &bootstrap, "--topic", topic];
    all.extend_from_slice(args);
    let out = run_python("storage_ops.py", &all);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn durable_mode_kill9_loop_loses_no_acknowledged_record() {
    const CYCLES: usize = 20;
    let started = Instant::now();
    // flush.messages=1 for every topic: durable mode, acknowledged only after a (group) fsync.
    let mut broker = Broker::start_with(&[
        ("log.flush.interval.messages", "1"),
        ("log.segment.bytes", "1048576"),
    ]);
    let ack_log = broker.scratch_dir().join("acks.log");
    let ack_log_arg = ack_log.to_str().unwrap().to_owned();
    for cycle in 0..CYCLES {
        let bootstrap = broker.bootstrap();
        let producer_log = broker.scratch_dir().join(format!("producer-{cycle}.log"));
        let start_index = (cycle * 10_000_000).to_string();
        let mut args = vec![
            "--bootstrap",
            &bootstrap,
            "--topic",
            "durable-crash",
            "--partitions",
            "2",
            "--records",
            "5000000",
            "--start-index",
            &start_index,
            "--ack-log",
            &ack_log_arg,
        ];
        if cycle > 0 {
            args.push("--no-create");
        }
        let before = count_lines(&ack_log);
        let mut producer = spawn_python("ack_producer.py", &args, &producer_log);
        // Kill once this producer has some acknowledgements and more in flight.
        let got = poll_until(Duration::from_secs(60), || {
            if let Ok(Some(status)) = producer.try_wait() {
                return Some(Err(status));
            }
            (count_lines(&ack_log) >= before + 150).then_some(Ok(()))
        });
        if !matches!(got, Some(Ok(()))) {
            let _ = producer.kill();
            let _ = producer.wait();
            panic!(
                "cycle {cycle}: the producer got no 150 acknowledgements ({got:?}):\n{}\n--- broker log ---\n{}",
                std::fs::read_to_string(&producer_log).unwrap_or_default(),
                strata_tests::tools::tail(broker.log_contents().as_bytes())
            );
        }
        broker.kill9();
        let _ = producer.kill();
        let _ = wait_with_deadline(&mut producer, Duration::from_secs(30));
        broker.restart();
    }
    let acked = count_lines(&ack_log);
    assert!(acked >= CYCLES * 150, "only {acked} acknowledgements");
    let bootstrap = broker.bootstrap();
    run_python(
        "verify_acked.py",
        &[
            "--bootstrap",
            &bootstrap,
            "--topic",
            "durable-crash",
            "--partitions",
            "2",
            "--ack-log",
            &ack_log_arg,
            "--min-acked",
            &(CYCLES * 150).to_string(),
        ],
    );
    eprintln!(
        "{CYCLES} kill -9 cycles, {acked} acknowledged records verified in {:?}",
        started.elapsed()
    );
}

#[test]
fn compacted_topic_refuses_keyless_records_and_is_compacted_in_the_background() {
    let broker = Broker::start_with(&[
        ("log.cleaner.backoff.ms", "200"),
        // Retention every second (its floor), checked every 100 ms.
        ("log.retention.check.interval.ms", "1000"),
        ("log.flush.scheduler.interval.ms", "100"),
    ]);
    ops(
        &broker,
        "compacted",
        &[
            "create",
            "--config",
            "cleanup.policy=compact",
            "--config",
            "segment.ms=100",
            "--config",
            "min.cleanable.dirty.ratio=0.01",
        ],
    );
    let produced = ops(
        &broker,
        "compacted",
        &[
            "produce",
            "a=1",
            "b=1",
            "a=2",
            "~=keyless",
            "b=2",
            "a=3",
            "c=~",
        ],
    );
    assert!(
        produced.contains(r#"{"error": "INVALID_RECORD", "offset": null}"#),
        "a keyless record on a compacted topic must be refused with INVALID_RECORD: {produced}"
    );
    assert_eq!(
        produced.matches(r#""error": null"#).count(),
        6,
        "every keyed record (and the tombstone) is accepted: {produced}"
    );
    // segment.ms passes, so the next append rolls and the records above become cleanable.
    std::thread::sleep(Duration::from_millis(300));
    ops(&broker, "compacted", &["produce", "z=1"]);
    let expected = r#""records": [[3, "b", "2"], [4, "a", "3"], [5, "c", null], [6, "z", "1"]]"#;
    let mut last = String::new();
    let compacted = poll_until(Duration::from_secs(60), || {
        last = ops(&broker, "compacted", &["read"]);
        last.contains(expected).then_some(())
    });
    assert!(
        compacted.is_some(),
        "expected the cleaner to keep only the newest value per key ({expected}), read: {last}"
    );
    assert!(last.contains(r#""high": 7"#), "offsets never move: {last}");
    // Newer values for every key empty the first two segments. The log start offset stays at
    // 0, as Kafka's does, so a consumer at an early offset reads on instead of being reset.
    ops(
        &broker,
        "compacted",
        &["produce", "a=4", "b=3", "c=2", "z=2"],
    );
    std::thread::sleep(Duration::from_millis(300));
    ops(&broker, "compacted", &["produce", "y=1"]);
    let expected = r#""records": [[7, "a", "4"], [8, "b", "3"], [9, "c", "2"], [10, "z", "2"], [11, "y", "1"]]"#;
    let emptied = poll_until(Duration::from_secs(60), || {
        last = ops(&broker, "compacted", &["read"]);
        last.contains(expected).then_some(())
    });
    assert!(
        emptied.is_some(),
        "expected the early segments emptied ({expected}), read: {last}"
    );
    // An absence cannot be waited for: give retention two turns to (not) move the start.
    std::thread::sleep(Duration::from_millis(2500));
    last = ops(&broker, "compacted", &["read"]);
    assert!(
        last.contains(r#""low": 0"#) && last.contains(expected),
        "compaction must not move the log start offset: {last}"
    );
}

#[test]
fn delete_records_through_the_admin_client_survives_a_restart() {
    let mut broker = Broker::start();
    ops(&broker, "trimmed", &["create"]);
    let records: Vec<String> = (0..10).map(|i| format!("k{i}=v{i}")).collect();
    let mut args = vec!["produce"];
    args.extend(records.iter().map(String::as_str));
    ops(&broker, "trimmed", &args);
    let out = ops(&broker, "trimmed", &["delete-records", "--offset", "4"]);
    assert_eq!(out, r#"{"low_watermark": 4}"#);
    let read = ops(&broker, "trimmed", &["read"]);
    assert!(
        read.starts_with(r#"{"low": 4, "high": 10, "records": [[4, "k4", "v4"]"#),
        "{read}"
    );
    let out = ops(&broker, "trimmed", &["delete-records", "--offset", "11"]);
    assert_eq!(out, r#"{"error": "OFFSET_OUT_OF_RANGE"}"#);
    // The new log start is checkpointed at shutdown and restored on start.
    let status = broker.sigterm_and_wait();
    assert!(status.success(), "strata exited with {status}");
    // Kafka's checkpoint files, in Kafka's format: the high watermark per log dir, and the
    // partition's leader-epoch cache (one epoch, moved up to the new log start).
    let hw =
        std::fs::read_to_string(broker.data_dir().join("replication-offset-checkpoint")).unwrap();
    assert!(
        hw.starts_with("0\n") && hw.contains("\ntrimmed 0 10\n"),
        "{hw:?}"
    );
    let epochs_path = broker.data_dir().join("trimmed-0/leader-epoch-checkpoint");
    let epochs = std::fs::read_to_string(&epochs_path).unwrap();
    assert!(
        epochs.starts_with("0\n1\n") && epochs.ends_with(" 4\n"),
        "{epochs:?}"
    );
    broker.restart();
    let read = ops(&broker, "trimmed", &["read"]);
    assert!(read.starts_with(r#"{"low": 4, "high": 10,"#), "{read}");
    assert_eq!(std::fs::read_to_string(&epochs_path).unwrap(), epochs);
    // Deleting every record (up to the high watermark) rolls a new segment first, and the
    // log goes on from there.
    let out = ops(&broker, "trimmed", &["delete-records", "--offset", "10"]);
    assert_eq!(out, r#"{"low_watermark": 10}"#);
    ops(&broker, "trimmed", &["produce", "k10=v10"]);
    let read = ops(&broker, "trimmed", &["read"]);
    assert_eq!(
        read,
        r#"{"low": 10, "high": 11, "records": [[10, "k10", "v10"]]}"#
    );
}

/// A tmpfs of `size` at `dir`, unmounted on drop; None (test skipped, reason printed) where
/// mounting is not allowed.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs(dir.to_owned())),
            Ok(o) => {
                eprintln!(
                    "SKIPPED: cannot mount a tmpfs ({}); disk-full handling is untested here",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("SKIPPED: no mount(8) ({e}); disk-full handling is untested here");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Fills the filesystem of `dir` with `name` until writes fail; returns its size.
fn fill_disk(dir: &Path, name: &str) -> u64 {
    use std::io::Write;
    let mut f = std::fs::File::create(dir.join(name)).unwrap();
    let chunk = vec![7u8; 64 * 1024];
    let mut written = 0u64;
    while f.write_all(&chunk).is_ok() {
        written += chunk.len() as u64;
    }
    written
}

#[test]
fn a_full_log_dir_refuses_produce_keeps_serving_reads_and_recovers() {
    let mnt = tempfile::tempdir().unwrap();
    let Some(_tmpfs) = Tmpfs::mount(mnt.path(), "64m") else {
        return;
    };
    let data = mnt.path().join("data");
    let data_arg = data.to_str().unwrap().to_owned();
    // Declared after the mount guard so the broker stops before the unmount.
    let mut broker = Broker::start_with(&[("log.dirs", &data_arg)]);
    ops(
        &broker,
        "full",
        &["create", "--config", "segment.bytes=1048576"],
    );
    let first = ops(&broker, "full", &["produce", "a=1", "b=2", "c=3"]);
    assert_eq!(first.matches(r#""error": null"#).count(), 3, "{first}");
    let filled = fill_disk(mnt.path(), "filler");
    assert!(filled > 0);
    // Produce ~100 KiB records until the preallocated room runs out and a roll needs space.
    let big = format!("k={}", "x".repeat(100 * 1024));
    let mut refused = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut accepted = 0;
    while refused.is_none() && Instant::now() < deadline {
        let out = ops(&broker, "full", &["produce", &big, &big, &big, &big]);
        accepted += out.matches(r#""error": null"#).count();
        if out.contains("KAFKA_STORAGE_ERROR") {
            refused = Some(out);
        } else {
            assert_eq!(out.matches(r#""error": null"#).count(), 4, "{out}");
        }
    }
    let refused = refused.expect("a full filesystem must refuse produce");
    assert!(refused.contains("KAFKA_STORAGE_ERROR"), "{refused}");
    // Reads keep working and everything acknowledged is intact.
    let read = ops(&broker, "full", &["read"]);
    assert!(
        read.contains(r#"[[0, "a", "1"], [1, "b", "2"], [2, "c", "3"]"#),
        "{}",
        &read[..read.len().min(300)]
    );
    assert!(
        read.contains(&format!(r#""high": {}"#, 3 + accepted)),
        "{}",
        &read[..200.min(read.len())]
    );
    // Space returns: produce works again, without a restart.
    std::fs::remove_file(mnt.path().join("filler")).unwrap();
    let again = ops(&broker, "full", &["produce", "d=4"]);
    assert!(
        again.contains(r#""error": null"#),
        "produce after space returned: {again}"
    );
    broker.assert_running("after the disk filled and emptied");
}

/// `chattr +i` on a directory: entries can no longer be created in it (an injected I/O fault
/// that root cannot bypass); undone on drop.
struct Immutable(std::path::PathBuf);

impl Immutable {
    fn set(dir: &Path) -> Option<Immutable> {
        match Command::new("chattr").arg("+i").arg(dir).output() {
            Ok(o) if o.status.success() => Some(Immutable(dir.to_owned())),
            other => {
                eprintln!(
                    "SKIPPED: chattr +i not possible here ({other:?}); log dir failure is untested"
                );
                None
            }
        }
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

#[test]
fn an_io_failure_takes_only_its_own_log_dir_offline() {
    let scratch = tempfile::tempdir().unwrap();
    let dirs = [scratch.path().join("a"), scratch.path().join("b")];
    let log_dirs = format!("{},{}", dirs[0].display(), dirs[1].display());
    let mut broker = Broker::start_with(&[("log.dirs", &log_dirs)]);
    // New partitions go to the log dir with the fewest: t1 and t2 land in different dirs,
    // t3 next to one of them.
    for t in ["t1", "t2", "t3"] {
        ops(&broker, t, &["create", "--config", "segment.bytes=1048576"]);
        let first = ops(&broker, t, &["produce", "k=v"]);
        assert!(first.contains(r#""error": null"#), "{first}");
    }
    let dir_of = |t: &str| {
        dirs.iter()
            .position(|d| d.join(format!("{t}-0")).is_dir())
            .unwrap()
    };
    let failing = dir_of("t1");
    assert_ne!(
        dir_of("t2"),
        failing,
        "t1 and t2 must be in different log dirs"
    );
    let Some(_fault) = Immutable::set(&dirs[failing].join("t1-0")) else {
        return;
    };
    // Fill t1's only segment until the roll needs a new file, which the fault refuses.
    let big = format!("k={}", "x".repeat(100 * 1024));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "t1 never failed");
        let out = ops(&broker, "t1", &["produce", &big, &big, &big, &big]);
        if out.contains("KAFKA_STORAGE_ERROR") {
            break;
        }
        assert_eq!(out.matches(r#""error": null"#).count(), 4, "{out}");
    }
    // Every partition of that log dir is offline now; the other dir keeps serving.
    for t in ["t1", "t2", "t3"] {
        let out = ops(&broker, t, &["produce", "again=1"]);
        if dir_of(t) == failing {
            // Refused with KAFKA_STORAGE_ERROR, or never sent: once Metadata shows the
            // partition without a leader (below), librdkafka holds the record until it
            // times out, as it would against Kafka.
            assert!(
                out.contains("KAFKA_STORAGE_ERROR") || out.contains("_MSG_TIMED_OUT"),
                "{t} in the failed dir: {out}"
            );
        } else {
            assert!(
                out.contains(r#""error": null"#),
                "{t} in the healthy dir: {out}"
            );
        }
    }
    // Metadata: a partition of the failed dir has no leader (its only replica is offline),
    // as KRaft reports it; the healthy dir's partition keeps its leader.
    for t in ["t1", "t2"] {
        let md = ops(&broker, t, &["leader"]);
        if dir_of(t) == failing {
            assert!(
                md.contains(r#""leader": -1"#) && md.contains("LEADER_NOT_AVAILABLE"),
                "{t} in the failed dir: {md}"
            );
        } else {
            assert!(
                md.contains(r#""error": null"#) && !md.contains(r#""leader": -1"#),
                "{t}: {md}"
            );
        }
    }
    let described = ops(&broker, "t1", &["log-dirs"]);
    let failed_dir = dirs[failing].display().to_string();
    let healthy_dir = dirs[1 - failing].display().to_string();
    assert!(
        described.contains(&format!(r#""{failed_dir}": 56"#))
            && described.contains(&format!(r#""{healthy_dir}": 0"#)),
        "DescribeLogDirs: {described}"
    );
    let metrics = strata_tests::metrics::http(
        strata_tests::metrics::metrics_addr(&broker),
        "GET",
        "/metrics",
    )
    .1;
    let offline = |dir: &str| format!("strata_log_dir_offline{{log_dir=\"{dir}\"}} ");
    assert!(
        metrics.contains(&format!("{}1", offline(&failed_dir)))
            && metrics.contains(&format!("{}0", offline(&healthy_dir))),
        "{}",
        metrics
            .lines()
            .filter(|l| l.starts_with("strata_log_dir_offline"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    broker.assert_running("after a log dir failed");
}

/// Disk blocks in use under `dir` (what `du` counts), not file lengths.
fn allocated_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() {
            allocated_bytes(&entry.path())
        } else {
            meta.blocks() * 512
        };
    }
    total
}

#[test]
fn a_topic_of_many_partitions_holds_few_disk_blocks_until_written() {
    const PARTITIONS: i32 = 300;
    let mut broker = Broker::start();
    let mut conn = RawConnection::connect(broker.addr()).unwrap();
    conn.create_topics(&[("wide", PARTITIONS)], Duration::from_secs(30))
        .unwrap();
    let bootstrap = broker.bootstrap();
    let kcat = |p: i32, args: &[&str], input: Option<String>| {
        let p = p.to_string();
        let mut all = vec!["-b", &bootstrap, "-t", "wide", "-p", &p, "-q"];
        all.extend_from_slice(args);
        let out = run_kcat(&all, input.as_deref().map(str::as_bytes));
        assert!(out.status.success(), "kcat {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let produce =
        |p: i32, value: &str| kcat(p, &["-P", "-X", "acks=all"], Some(format!("{value}\n")));
    for p in 0..5 {
        produce(p, &format!("record-{p}"));
    }
    // Each partition's two active indexes hold a page each and a written log one 64 KiB
    // step: ~2.6 MB here. (Until 2026-12-07 every partition took 20 MiB for its indexes
    // and 16 MiB more once written: 6 GiB for this topic.)
    let used = allocated_bytes(broker.data_dir());
    assert!(
        used < 8 << 20,
        "{PARTITIONS} partitions, 5 written, hold {used} bytes of disk blocks"
    );
    // The small allocations recover and keep growing across a restart.
    broker.restart();
    for p in 0..5 {
        produce(p, &format!("again-{p}"));
        assert_eq!(
            kcat(p, &["-C", "-o", "beginning", "-e"], None),
            format!("record-{p}\nagain-{p}\n"),
            "partition {p}"
        );
    }
    broker.assert_running("after a restart with small allocations");
}
