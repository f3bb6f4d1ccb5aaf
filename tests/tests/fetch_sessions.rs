//! Incremental fetch sessions (KIP-227) against a real broker: a full fetch opens a session,
//! later fetches name only what changed and get back only partitions with something new,
//! a session's long poll follows partitions the request does not name, the session errors
//! come with Kafka's codes, and kafka-python (which keeps sessions by default) reads every
//! record exactly once over one.

// Tests may unwrap: a panic here is a failed assertion with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use strata_tests::metrics::{scrape, series_value};
use strata_tests::{run_kcat, run_python, Broker, RawConnection};
use uuid::Uuid;

const TIMEOUT: Duration = Duration::from_secs(10);
const INITIAL_EPOCH: i32 = 0;
const FINAL_EPOCH: i32 = -1;

/// How a request names its topic: by name up to v12, by id from v13.
#[derive(Clone, Copy)]
enum Topic<'a> {
    Name(&'a str),
    Id(Uuid),
}

/// One Fetch on `conn`: `partitions` are (partition, fetch offset), `forgotten` partitions
/// leave the session.
struct Fetch<'a> {
    version: i16,
    session_id: i32,
    epoch: i32,
    topic: Topic<'a>,
    partitions: &'a [(i32, i64)],
    forgotten: &'a [i32],
    max_wait_ms: i32,
}

impl Fetch<'_> {
    fn request(&self) -> FetchRequest {
        let (name, id) = match self.topic {
            Topic::Name(n) => (TopicName(StrBytes::from_string(n.to_owned())), Uuid::nil()),
            Topic::Id(id) => (TopicName::default(), id),
        };
        let topics = if self.partitions.is_empty() {
            vec![]
        } else {
            vec![FetchTopic::default()
                .with_topic(name.clone())
                .with_topic_id(id)
                .with_partitions(
                    self.partitions
                        .iter()
                        .map(|&(partition, offset)| {
                            FetchPartition::default()
                                .with_partition(partition)
                                .with_fetch_offset(offset)
                                .with_partition_max_bytes(1 << 20)
                        })
                        .collect(),
                )]
        };
        let forgotten = if self.forgotten.is_empty() {
            vec![]
        } else {
            vec![ForgottenTopic::default()
                .with_topic(name)
                .with_topic_id(id)
                .with_partitions(self.forgotten.to_vec())]
        };
        FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(self.max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(50 << 20)
            .with_session_id(self.session_id)
            .with_session_epoch(self.epoch)
            .with_topics(topics)
            .with_forgotten_topics_data(forgotten)
    }

    fn send(&self, conn: &mut RawConnection) -> i32 {
        conn.send_request(ApiKey::Fetch, self.version, &self.request())
            .unwrap()
    }

    fn run(&self, conn: &mut RawConnection) -> FetchResponse {
        let id = self.send(conn);
        conn.read_response(ApiKey::Fetch, self.version, id, TIMEOUT)
            .unwrap()
    }
}

/// A fetch that names nothing and does not wait: what an idle session's consumer sends.
fn idle(version: i16, session_id: i32, epoch: i32, topic: Topic<'_>) -> Fetch<'_> {
    Fetch {
        version,
        session_id,
        epoch,
        topic,
        partitions: &[],
        forgotten: &[],
        max_wait_ms: 0,
    }
}

/// A full fetch with epoch 0, which opens a session, not waiting.
fn full<'a>(version: i16, topic: Topic<'a>, partitions: &'a [(i32, i64)]) -> Fetch<'a> {
    Fetch {
        epoch: INITIAL_EPOCH,
        partitions,
        ..idle(version, 0, INITIAL_EPOCH, topic)
    }
}

/// The response's partitions as (partition, record bytes, high watermark), in its order.
fn answered(response: &FetchResponse) -> Vec<(i32, usize, i64)> {
    assert_eq!(response.error_code, 0, "{response:?}");
    response
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| {
            assert_eq!(p.error_code, 0, "{p:?}");
            let bytes = p.records.as_ref().map_or(0, |r| r.len());
            (p.partition_index, bytes, p.high_watermark)
        })
        .collect()
}

fn produce(broker: &Broker, topic: &str, partition: i32, records: &[&str]) {
    let input = records.iter().map(|r| format!("{r}\n")).collect::<String>();
    let out = run_kcat(
        &[
            "-b",
            &broker.bootstrap(),
            "-t",
            topic,
            "-P",
            "-p",
            &partition.to_string(),
            "-X",
            "acks=all",
        ],
        Some(input.as_bytes()),
    );
    assert!(out.status.success(), "kcat -P: {out:?}");
}

fn error_of(response: &FetchResponse) -> Option<ResponseError> {
    ResponseError::try_from_code(response.error_code)
}

#[test]
fn an_incremental_fetch_answers_only_what_changed() {
    let broker = Broker::start();
    let mut conn = RawConnection::connect(broker.addr()).unwrap();
    conn.create_topics(&[("s", 3)], TIMEOUT).unwrap();
    for p in 0..3 {
        produce(&broker, "s", p, &["a", "b"]);
    }
    let topic = Topic::Name("s");

    // A full fetch with epoch 0 opens a session and answers every partition.
    let opened = full(12, topic, &[(0, 0), (1, 0), (2, 0)]).run(&mut conn);
    let session = opened.session_id;
    assert!(session > 0, "no session opened: {opened:?}");
    let parts = answered(&opened);
    assert_eq!(parts.len(), 3, "{parts:?}");
    assert!(
        parts.iter().all(|&(_, bytes, hw)| bytes > 0 && hw == 2),
        "{parts:?}"
    );

    // The client moved its positions to the end: nothing new, so nothing is answered.
    let moved = Fetch {
        epoch: 1,
        session_id: session,
        partitions: &[(0, 2), (1, 2), (2, 2)],
        ..idle(12, session, 1, topic)
    }
    .run(&mut conn);
    assert_eq!(moved.session_id, session);
    assert_eq!(answered(&moved), []);
    assert_eq!(answered(&idle(12, session, 2, topic).run(&mut conn)), []);

    // A record lands on partition 1, which the request does not name: only it comes back.
    produce(&broker, "s", 1, &["c"]);
    let fed = idle(12, session, 3, topic).run(&mut conn);
    let parts = answered(&fed);
    assert_eq!(parts.len(), 1, "{parts:?}");
    assert_eq!((parts[0].0, parts[0].2), (1, 3));
    assert!(parts[0].1 > 0);

    // The same epoch again (a duplicate) is refused, naming the session; the session
    // itself is unharmed and takes the next epoch.
    let duplicate = idle(12, session, 3, topic).run(&mut conn);
    assert_eq!(
        error_of(&duplicate),
        Some(ResponseError::InvalidFetchSessionEpoch)
    );
    assert!(duplicate.responses.is_empty());
    let caught_up = Fetch {
        partitions: &[(1, 3)],
        ..idle(12, session, 4, topic)
    }
    .run(&mut conn);
    assert_eq!(answered(&caught_up), []);

    // A session the broker never handed out.
    let other = if session == i32::MAX { 1 } else { session + 1 };
    let unknown = idle(12, other, 1, topic).run(&mut conn);
    assert_eq!(
        error_of(&unknown),
        Some(ResponseError::FetchSessionIdNotFound)
    );
    assert_eq!(unknown.session_id, 0);

    // Partitions 0 and 2 leave the session: a record on 0 is no longer answered.
    let forget = Fetch {
        forgotten: &[0, 2],
        ..idle(12, session, 5, topic)
    }
    .run(&mut conn);
    assert_eq!(answered(&forget), []);
    produce(&broker, "s", 0, &["d"]);
    assert_eq!(answered(&idle(12, session, 6, topic).run(&mut conn)), []);

    // Epoch -1 closes the session and answers the request as it stands, without one.
    let close = Fetch {
        partitions: &[(0, 2)],
        ..idle(12, session, FINAL_EPOCH, topic)
    }
    .run(&mut conn);
    assert_eq!(close.session_id, 0);
    let parts = answered(&close);
    assert_eq!(parts.len(), 1);
    assert_eq!((parts[0].0, parts[0].2), (0, 3));
    let closed = idle(12, session, 7, topic).run(&mut conn);
    assert_eq!(
        error_of(&closed),
        Some(ResponseError::FetchSessionIdNotFound)
    );
}

#[test]
fn a_session_long_poll_wakes_for_a_partition_the_request_does_not_name() {
    let broker = Broker::start();
    let mut conn = RawConnection::connect(broker.addr()).unwrap();
    conn.create_topics(&[("w", 3)], TIMEOUT).unwrap();
    let topic = Topic::Name("w");
    let opened = full(12, topic, &[(0, 0), (1, 0), (2, 0)]).run(&mut conn);
    let session = opened.session_id;
    assert!(session > 0);

    // Parked for up to 8 s on the session's three partitions; a record on partition 2 ends
    // the wait and is the whole answer.
    let long_poll = Fetch {
        max_wait_ms: 8_000,
        ..idle(12, session, 1, topic)
    };
    let id = long_poll.send(&mut conn);
    let sent = Instant::now();
    produce(&broker, "w", 2, &["late"]);
    let response: FetchResponse = conn.read_response(ApiKey::Fetch, 12, id, TIMEOUT).unwrap();
    let parts = answered(&response);
    assert_eq!(parts.len(), 1, "{parts:?}");
    assert_eq!((parts[0].0, parts[0].2), (2, 1));
    assert!(parts[0].1 > 0);
    assert!(
        sent.elapsed() < Duration::from_millis(7_000),
        "the fetch waited out its max wait ({:?}) instead of waking",
        sent.elapsed()
    );
}

#[test]
fn sessions_by_topic_id_do_not_mix_with_sessions_by_name() {
    let broker = Broker::start();
    let mut conn = RawConnection::connect(broker.addr()).unwrap();
    conn.create_topics(&[("ids", 2)], TIMEOUT).unwrap();
    produce(&broker, "ids", 0, &["x"]);
    let metadata = conn.metadata(12, TIMEOUT).unwrap();
    let topic_id = metadata
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == "ids"))
        .unwrap()
        .topic_id;
    let topic = Topic::Id(topic_id);

    let opened = full(13, topic, &[(0, 0), (1, 0)]).run(&mut conn);
    let session = opened.session_id;
    assert!(session > 0);
    assert_eq!(opened.responses.len(), 1);
    assert_eq!(opened.responses[0].topic_id, topic_id);
    assert_eq!(answered(&opened).len(), 2);

    produce(&broker, "ids", 1, &["y"]);
    // Partition 0's position moves past its record; partition 1 keeps its cached offset 0.
    let fed = Fetch {
        partitions: &[(0, 1)],
        ..idle(13, session, 1, topic)
    }
    .run(&mut conn);
    assert_eq!(fed.responses[0].topic_id, topic_id);
    let parts = answered(&fed);
    assert_eq!(parts.len(), 1, "{parts:?}");
    assert_eq!((parts[0].0, parts[0].2), (1, 1));

    // The session was opened with ids; v12 names topics: Kafka's FETCH_SESSION_TOPIC_ID_ERROR.
    let by_name = idle(12, session, 2, Topic::Name("ids")).run(&mut conn);
    assert_eq!(
        error_of(&by_name),
        Some(ResponseError::FetchSessionTopicIdError)
    );
    let caught_up = Fetch {
        partitions: &[(1, 1)],
        ..idle(13, session, 2, topic)
    }
    .run(&mut conn);
    assert_eq!(answered(&caught_up), []);
}

#[test]
fn the_cache_holds_its_configured_slots_and_zero_turns_sessions_off() {
    let broker = Broker::start_with(&[("max.incremental.fetch.session.cache.slots", "1")]);
    let mut conn = RawConnection::connect(broker.addr()).unwrap();
    conn.create_topics(&[("c", 3)], TIMEOUT).unwrap();
    let open =
        |conn: &mut RawConnection| full(12, Topic::Name("c"), &[(0, 0), (1, 0), (2, 0)]).run(conn);
    let first = open(&mut conn);
    assert!(first.session_id > 0);
    // The one slot is taken by a session in use: no room, answered in full without one.
    let mut other = RawConnection::connect(broker.addr()).unwrap();
    let second = open(&mut other);
    assert_eq!(second.session_id, 0);
    assert_eq!(answered(&second).len(), 3);
    let metrics = scrape(&broker);
    assert_eq!(series_value(&metrics, "strata_fetch_sessions", &[]), 1.0);
    assert_eq!(
        series_value(&metrics, "strata_fetch_session_partitions", &[]),
        3.0
    );
    assert_eq!(
        series_value(&metrics, "strata_fetch_session_evictions_total", &[]),
        0.0
    );

    let off = Broker::start_with(&[("max.incremental.fetch.session.cache.slots", "0")]);
    let mut conn = RawConnection::connect(off.addr()).unwrap();
    conn.create_topics(&[("c", 3)], TIMEOUT).unwrap();
    let opened = open(&mut conn);
    assert_eq!(opened.session_id, 0);
    assert_eq!(answered(&opened).len(), 3);
}

#[test]
fn kafka_python_reads_every_record_once_over_a_fetch_session() {
    let mut broker = Broker::start();
    let bootstrap = broker.bootstrap();
    let output = run_python(
        "kp_fetch_session.py",
        &[
            "--bootstrap",
            &bootstrap,
            "--topic",
            "sessions",
            "--partitions",
            "6",
            "--records",
            "3000",
        ],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("OK kafka-python read 6000 records"),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metrics = scrape(&broker);
    assert_eq!(series_value(&metrics, "strata_fetch_sessions", &[]), 1.0);
    let cached = series_value(&metrics, "strata_fetch_session_partitions", &[]);
    assert!((1.0..=6.0).contains(&cached), "cached partitions: {cached}");
    for error in ["FETCH_SESSION_ID_NOT_FOUND", "INVALID_FETCH_SESSION_EPOCH"] {
        assert_eq!(
            series_value(
                &metrics,
                "strata_request_errors_total",
                &[("api", "Fetch"), ("error", error)]
            ),
            0.0,
            "{error}"
        );
    }
    broker.assert_running("after a kafka-python consumer with a fetch session");
}
