use super::*;

fn key(topic: &str, partition: i32) -> PartitionKey {
    PartitionKey {
        topic: TopicKey::Name(topic.into()),
        partition,
    }
}

fn at(topic: &str, partition: i32, fetch_offset: i64) -> Requested {
    Requested {
        key: key(topic, partition),
        position: FetchPosition {
            fetch_offset,
            partition_max_bytes: 1 << 20,
            current_leader_epoch: -1,
            log_start_offset: -1,
        },
    }
}

fn quiet(high_watermark: i64) -> Reported {
    Reported {
        error_code: 0,
        high_watermark,
        log_start_offset: 0,
        has_records: false,
    }
}

fn fed(high_watermark: i64) -> Reported {
    Reported {
        has_records: true,
        ..quiet(high_watermark)
    }
}

/// Opens a session over partitions 0..n of topic "t", each at offset 0 with high watermark 10.
fn open_session(cache: &FetchSessionCache, n: i32, now: Instant) -> i32 {
    let answered: Vec<_> = (0..n).map(|p| (at("t", p, 0), quiet(10))).collect();
    match cache.begin(
        0,
        INITIAL_EPOCH,
        false,
        answered.iter().map(|(r, _)| r.clone()).collect(),
        &[],
        now,
    ) {
        FetchPlan::Full(_) => {}
        other => panic!("expected a full fetch, got {other:?}"),
    }
    cache.open(false, &answered, now)
}

fn incremental(
    cache: &FetchSessionCache,
    id: i32,
    epoch: i32,
    requested: Vec<Requested>,
    forgotten: &[PartitionKey],
    now: Instant,
) -> (i32, Vec<Requested>) {
    match cache.begin(id, epoch, false, requested, forgotten, now) {
        FetchPlan::Incremental {
            session_id,
            epoch,
            partitions,
        } => {
            assert_eq!(session_id, id);
            (epoch, partitions)
        }
        other => panic!("expected an incremental fetch, got {other:?}"),
    }
}

fn offsets(partitions: &[Requested]) -> Vec<(i32, i64)> {
    partitions
        .iter()
        .map(|r| (r.key.partition, r.position.fetch_offset))
        .collect()
}

#[test]
fn an_incremental_fetch_keeps_left_out_positions_and_answers_only_changes() {
    let cache = FetchSessionCache::new(10);
    let now = Instant::now();
    let id = open_session(&cache, 3, now);
    assert!(id > 0);

    // Only partition 1 moved; the others keep their cached positions.
    let (epoch, partitions) = incremental(&cache, id, 1, vec![at("t", 1, 7)], &[], now);
    assert_eq!(epoch, 2);
    assert_eq!(offsets(&partitions), [(0, 0), (1, 7), (2, 0)]);
    // Partition 2's high watermark moved: only it is answered.
    let keep = cache
        .finish(id, epoch, &[quiet(10), quiet(10), quiet(11)])
        .unwrap();
    assert_eq!(keep, [false, false, true]);
    // Nothing moved since: nothing is answered.
    let (epoch, _) = incremental(&cache, id, 2, vec![], &[], now);
    let keep = cache
        .finish(id, epoch, &[quiet(10), quiet(10), quiet(11)])
        .unwrap();
    assert_eq!(keep, [false, false, false]);
}

#[test]
fn partitions_that_returned_records_move_to_the_end() {
    let cache = FetchSessionCache::new(10);
    let now = Instant::now();
    let id = open_session(&cache, 4, now);
    let (epoch, _) = incremental(&cache, id, 1, vec![], &[], now);
    let keep = cache
        .finish(id, epoch, &[fed(10), quiet(10), fed(10), quiet(10)])
        .unwrap();
    assert_eq!(keep, [true, false, true, false]);
    let (_, partitions) = incremental(&cache, id, 2, vec![at("t", 0, 5)], &[], now);
    assert_eq!(offsets(&partitions), [(1, 0), (3, 0), (0, 5), (2, 0)]);
}

#[test]
fn errors_are_always_answered_and_the_partition_is_resent_when_they_clear() {
    let cache = FetchSessionCache::new(10);
    let now = Instant::now();
    let id = open_session(&cache, 1, now);
    let failed = Reported {
        error_code: ErrorCode::NotLeaderOrFollower.code(),
        high_watermark: -1,
        log_start_offset: -1,
        has_records: false,
    };
    for epoch in [1, 2] {
        let (next, _) = incremental(&cache, id, epoch, vec![], &[], now);
        assert_eq!(cache.finish(id, next, &[failed]).unwrap(), [true]);
    }
    // The error cleared with the same high watermark as before it: still answered once.
    let (next, _) = incremental(&cache, id, 3, vec![], &[], now);
    assert_eq!(cache.finish(id, next, &[quiet(10)]).unwrap(), [true]);
    let (next, _) = incremental(&cache, id, 4, vec![], &[], now);
    assert_eq!(cache.finish(id, next, &[quiet(10)]).unwrap(), [false]);
}

#[test]
fn session_errors_name_what_is_wrong() {
    let cache = FetchSessionCache::new(10);
    let now = Instant::now();
    let id = open_session(&cache, 1, now);
    let unknown = if id == i32::MAX { 1 } else { id + 1 };
    assert_eq!(
        cache.begin(unknown, 1, false, vec![], &[], now),
        FetchPlan::Error(ErrorCode::FetchSessionIdNotFound)
    );
    assert_eq!(
        cache.begin(0, 1, false, vec![], &[], now),
        FetchPlan::Error(ErrorCode::FetchSessionIdNotFound)
    );
    assert_eq!(
        cache.begin(id, 5, false, vec![], &[], now),
        FetchPlan::Error(ErrorCode::InvalidFetchSessionEpoch)
    );
    // Opened with topic names (v7-12), continued with ids (v13+).
    assert_eq!(
        cache.begin(id, 1, true, vec![], &[], now),
        FetchPlan::Error(ErrorCode::FetchSessionTopicIdError)
    );
    // None of those moved the session on.
    let (epoch, _) = incremental(&cache, id, 1, vec![], &[], now);
    assert_eq!(epoch, 2);
}

#[test]
fn a_duplicate_request_fails_and_a_stale_answer_is_refused() {
    let cache = FetchSessionCache::new(10);
    let now = Instant::now();
    let id = open_session(&cache, 2, now);
    let (first, _) = incremental(&cache, id, 1, vec![], &[], now);
    // The same request again (a client retrying): the session has moved on.
    assert_eq!(
        cache.begin(id, 1, false, vec![], &[], now),
        FetchPlan::Error(ErrorCode::InvalidFetchSessionEpoch)
    );
    // The next request overtakes the first one's answer, which then may not be sent.
    let (second, _) = incremental(&cache, id, first, vec![], &[], now);
    assert_eq!(
        cache.finish(id, first, &[quiet(10), quiet(10)]),
        Err(ErrorCode::InvalidFetchSessionEpoch)
    );
    assert!(cache.finish(id, second, &[quiet(10), quiet(10)]).is_ok());
}

#[test]
fn forgotten_partitions_leave_and_an_emptied_session_closes() {
    let cache = FetchSessionCache::new(10);
    let now = Instant::now();
    let id = open_session(&cache, 3, now);
    let (epoch, partitions) = incremental(&cache, id, 1, vec![at("t", 5, 3)], &[key("t", 1)], now);
    assert_eq!(offsets(&partitions), [(0, 0), (2, 0), (5, 3)]);
    assert_eq!(cache.stats().partitions, 3);
    let _ = cache.finish(id, epoch, &[quiet(10); 3]).unwrap();
    let all = [key("t", 0), key("t", 2), key("t", 5)];
    assert_eq!(
        cache.begin(id, epoch, false, vec![], &all, now),
        FetchPlan::Sessionless(vec![])
    );
    assert_eq!(cache.stats(), FetchSessionStats::default());
}

#[test]
fn a_full_request_closes_the_session_it_names() {
    let cache = FetchSessionCache::new(10);
    let now = Instant::now();
    let id = open_session(&cache, 1, now);
    assert_eq!(
        cache.begin(id, FINAL_EPOCH, false, vec![at("t", 0, 4)], &[], now),
        FetchPlan::Sessionless(vec![at("t", 0, 4)])
    );
    assert_eq!(cache.stats().sessions, 0);

    let id = open_session(&cache, 1, now);
    // Epoch 0 with an id: close that one and open another.
    assert_eq!(
        cache.begin(id, INITIAL_EPOCH, false, vec![at("t", 0, 4)], &[], now),
        FetchPlan::Full(vec![at("t", 0, 4)])
    );
    assert_eq!(cache.stats().sessions, 0);
    assert_eq!(
        cache.begin(id, 1, false, vec![], &[], now),
        FetchPlan::Error(ErrorCode::FetchSessionIdNotFound)
    );
}

#[test]
fn a_partition_named_twice_is_cached_once() {
    let cache = FetchSessionCache::new(10);
    let now = Instant::now();
    let answered = [
        (at("t", 0, 1), quiet(10)),
        (at("u", 0, 0), quiet(10)),
        (at("t", 0, 2), quiet(10)),
    ];
    let id = cache.open(false, &answered, now);
    assert_eq!(cache.stats().partitions, 2);
    let (_, partitions) = incremental(&cache, id, 1, vec![], &[], now);
    assert_eq!(partitions, [at("t", 0, 2), at("u", 0, 0)]);
}

#[test]
fn a_full_cache_evicts_only_stale_or_smaller_old_sessions() {
    let cache = FetchSessionCache::new(1);
    let t0 = Instant::now();
    let first = open_session(&cache, 2, t0);
    assert!(first > 0);
    // Full, and the one session is fresh: no room.
    assert_eq!(open_session(&cache, 5, t0 + Duration::from_secs(1)), 0);
    assert_eq!(cache.stats().evictions, 0);

    // Old (created over two minutes ago) but in use: a larger session may evict it, a
    // session no larger may not.
    let t1 = t0 + Duration::from_secs(121);
    let _ = incremental(&cache, first, 1, vec![], &[], t1);
    assert_eq!(open_session(&cache, 2, t1), 0);
    let second = open_session(&cache, 3, t1);
    assert!(second > 0 && second != first);
    assert_eq!(
        cache.stats(),
        FetchSessionStats {
            sessions: 1,
            partitions: 3,
            evictions: 1
        }
    );

    // Unused for over two minutes: any new session may evict it.
    let t2 = t1 + Duration::from_secs(121);
    let third = open_session(&cache, 1, t2);
    assert!(third > 0);
    assert_eq!(
        cache.stats(),
        FetchSessionStats {
            sessions: 1,
            partitions: 1,
            evictions: 2
        }
    );
    assert_eq!(
        cache.begin(second, 1, false, vec![], &[], t2),
        FetchPlan::Error(ErrorCode::FetchSessionIdNotFound)
    );
}

#[test]
fn zero_slots_turn_sessions_off() {
    let cache = FetchSessionCache::new(0);
    assert_eq!(open_session(&cache, 3, Instant::now()), 0);
    assert_eq!(cache.stats(), FetchSessionStats::default());
}

#[test]
fn the_cache_bounds_the_partitions_it_holds() {
    let cache = FetchSessionCache::new(10);
    let now = Instant::now();
    let big: Vec<_> = (0..MAX_CACHED_PARTITIONS as i32 + 1)
        .map(|p| (at("t", p, 0), quiet(0)))
        .collect();
    assert_eq!(cache.open(false, &big, now), 0);
    let id = cache.open(false, &big[..MAX_CACHED_PARTITIONS], now);
    assert!(id > 0);
    // Growing past the bound closes the session; the request is answered as it stands.
    let more = vec![at("u", 0, 0)];
    assert_eq!(
        cache.begin(id, 1, false, more.clone(), &[], now),
        FetchPlan::Sessionless(more)
    );
    assert_eq!(cache.stats(), FetchSessionStats::default());
}

#[test]
fn epochs_wrap_to_one() {
    assert_eq!(next_epoch(1), 2);
    assert_eq!(next_epoch(i32::MAX), 1);
    assert_eq!(next_epoch(-7), FINAL_EPOCH);
}

/// A step of a client (or several, or a hostile one) against the cache.
#[derive(Debug, Clone)]
enum Step {
    Open {
        partitions: Vec<i32>,
    },
    Incremental {
        session: usize,
        epoch_skew: i32,
        add: Vec<i32>,
        forget: Vec<i32>,
    },
    Finish {
        session: usize,
        epoch_skew: i32,
        records: Vec<bool>,
        high_watermark: i64,
    },
    Close {
        session: usize,
    },
    Wait {
        seconds: u64,
    },
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    let partitions = || proptest::collection::vec(0..12i32, 0..8);
    prop_oneof![
        partitions().prop_map(|partitions| Step::Open { partitions }),
        (0..4usize, -1..2i32, partitions(), partitions()).prop_map(
            |(session, epoch_skew, add, forget)| {
                Step::Incremental {
                    session,
                    epoch_skew,
                    add,
                    forget,
                }
            }
        ),
        (
            0..4usize,
            -1..2i32,
            proptest::collection::vec(any::<bool>(), 0..12),
            0..3i64
        )
            .prop_map(
                |(session, epoch_skew, records, high_watermark)| Step::Finish {
                    session,
                    epoch_skew,
                    records,
                    high_watermark
                }
            ),
        (0..4usize).prop_map(|session| Step::Close { session }),
        (0..200u64).prop_map(|seconds| Step::Wait { seconds }),
    ]
}

proptest::proptest! {
    /// Whatever clients send, in whatever order: no panic, at most the configured sessions,
    /// the partition count kept for the metrics and the bound equals what the sessions hold,
    /// and every session's index points at its own partitions.
    #[test]
    fn any_sequence_of_requests_keeps_the_cache_consistent(
        steps in proptest::collection::vec(step(), 1..60),
    ) {
        let cache = FetchSessionCache::new(3);
        let mut now = Instant::now();
        // (id, the epoch its client believes is next), as clients track them.
        let mut known: Vec<(i32, i32)> = Vec::new();
        for step in steps {
            match step {
                Step::Open { partitions } => {
                    let answered: Vec<_> =
                        partitions.iter().map(|&p| (at("t", p, 0), quiet(0))).collect();
                    let id = cache.open(false, &answered, now);
                    if id != 0 {
                        known.push((id, 1));
                    }
                }
                Step::Incremental { session, epoch_skew, add, forget } => {
                    let Some(&(id, epoch)) = known.get(session) else { continue };
                    let add: Vec<_> = add.iter().map(|&p| at("t", p, 1)).collect();
                    let forget: Vec<_> = forget.iter().map(|&p| key("t", p)).collect();
                    if let FetchPlan::Incremental { epoch: next, .. } =
                        cache.begin(id, epoch + epoch_skew, false, add, &forget, now)
                    {
                        if let Some(entry) = known.get_mut(session) {
                            entry.1 = next;
                        }
                    }
                }
                Step::Finish { session, epoch_skew, records, high_watermark } => {
                    let Some(&(id, epoch)) = known.get(session) else { continue };
                    let reported: Vec<_> = records
                        .iter()
                        .map(|&r| if r { fed(high_watermark) } else { quiet(high_watermark) })
                        .collect();
                    if let Ok(keep) = cache.finish(id, epoch + epoch_skew, &reported) {
                        proptest::prop_assert_eq!(keep.len(), reported.len());
                    }
                }
                Step::Close { session } => {
                    let Some(&(id, _)) = known.get(session) else { continue };
                    let _ = cache.begin(id, FINAL_EPOCH, false, vec![], &[], now);
                }
                Step::Wait { seconds } => now += Duration::from_secs(seconds),
            }
            let sessions = cache.lock();
            proptest::prop_assert!(sessions.by_id.len() <= 3);
            let held: usize = sessions.by_id.values().map(|s| s.partitions.len()).sum();
            proptest::prop_assert_eq!(sessions.cached_partitions, held);
            for s in sessions.by_id.values() {
                proptest::prop_assert_eq!(s.index.len(), s.partitions.len());
                for (key, &i) in &s.index {
                    proptest::prop_assert_eq!(s.partitions.get(i).map(|p| &p.requested.key), Some(key));
                }
            }
        }
    }
}
