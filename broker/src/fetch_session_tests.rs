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
