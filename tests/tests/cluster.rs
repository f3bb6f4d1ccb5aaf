//! A three-broker cluster, one broker per availability zone (`broker.rack`), the metadata
//! ordered by the Raft quorum of all three: replicated topics placed across the racks,
//! acks=all producing through librdkafka, a leader killed with kill -9 mid-stream — every
//! acknowledged record is read back from the survivors — and the killed broker returning
//! to the ISR; a group's committed offsets surviving the loss of its coordinator; a replica
//! away during DeleteRecords starting over at its leader's log start; a controlled shutdown.
//! Security between brokers is `cluster_security.rs`.

// Tests may unwrap: a panic here is a failed assertion with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeSet;
use std::time::Duration;

use kafka_protocol::messages::{ApiKey, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use serde_json::Value;
use strata_tests::cluster::{describe, full_isrs, ids, json_of, Cluster};
use strata_tests::metrics::{scrape, series_value as value};
use strata_tests::wire::RawConnection;
use strata_tests::{poll_until, run_python, Broker};

#[test]
fn acknowledged_records_survive_the_loss_of_a_leader() {
    let mut cluster = Cluster::start(3);
    let bootstrap = cluster.bootstrap();
    let topic = "replicated";

    // Placement: three replicas per partition, one per rack (az1..az3), leaders spread.
    let created = json_of(&run_python(
        "ck_cluster.py",
        &["create", &bootstrap, topic, "6", "3"],
    ));
    assert_eq!(ids(&created["brokers"]), vec![1, 2, 3], "{created}");
    let partitions = created["partitions"].as_array().unwrap().clone();
    assert_eq!(partitions.len(), 6);
    let mut leaders = BTreeSet::new();
    for p in &partitions {
        let replicas: BTreeSet<i64> = ids(&p["replicas"]).into_iter().collect();
        assert_eq!(
            replicas,
            BTreeSet::from([1, 2, 3]),
            "one replica per rack: {p}"
        );
        let _ = leaders.insert(p["leader"].as_i64().unwrap());
    }
    assert_eq!(
        leaders.len(),
        3,
        "leaders spread over the brokers: {created}"
    );

    // Every broker answers Metadata from the same replicated image, cluster id included.
    let mut cluster_ids = BTreeSet::new();
    for broker in &cluster.brokers {
        let seen = describe(&broker.bootstrap(), topic);
        assert_eq!(
            seen["partitions"].as_array().map(Vec::len),
            Some(6),
            "{seen}"
        );
        let _ = cluster_ids.insert(seen["cluster_id"].as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(cluster_ids.len(), 1, "one cluster id: {cluster_ids:?}");

    let acked = cluster.brokers[0].scratch_dir().join("acked.txt");
    let acked = acked.to_str().unwrap().to_owned();
    let first = json_of(&run_python(
        "ck_cluster.py",
        &["produce", &bootstrap, topic, "before", "3000", &acked],
    ));
    assert_eq!(first["acked"].as_i64(), Some(3000), "{first}");

    // All ISRs full again (followers caught up), then kill -9 the leader of partition 0.
    let full = full_isrs(&bootstrap, topic).expect("every ISR holds the three replicas");
    let victim = full["partitions"][0]["leader"].as_i64().unwrap();
    cluster.brokers[(victim - 1) as usize].kill9();
    let survivors = cluster.bootstrap_without(victim);

    // The controller fences the dead broker and moves its leaderships to in-sync replicas.
    let moved = poll_until(Duration::from_secs(60), || {
        let d = describe(&survivors, topic);
        let parts = d["partitions"].as_array()?;
        parts
            .iter()
            .all(|p| {
                let leader = p["leader"].as_i64().unwrap_or(-1);
                leader >= 0 && leader != victim && !ids(&p["isr"]).contains(&victim)
            })
            .then_some(d)
    })
    .expect("leadership moves off the killed broker");
    assert!(
        !ids(&moved["brokers"]).contains(&victim),
        "a fenced broker is not offered to clients: {moved}"
    );

    // acks=all goes on with two of three replicas (min.insync.replicas=2).
    let second = json_of(&run_python(
        "ck_cluster.py",
        &["produce", &survivors, topic, "after", "2000", &acked],
    ));
    assert_eq!(second["acked"].as_i64(), Some(2000), "{second}");

    // Everything acknowledged, before and after the failover, is there exactly once.
    let read = json_of(&run_python(
        "ck_cluster.py",
        &["verify", &survivors, topic, &acked],
    ));
    assert_eq!(read["acked"].as_i64(), Some(5000), "{read}");

    // The killed broker comes back, truncates, catches up and rejoins every ISR.
    let back = &mut cluster.brokers[(victim - 1) as usize];
    back.respawn();
    back.wait_until_serving();
    let _ = full_isrs(&bootstrap, topic).expect("the returning broker rejoins every ISR");
    let again = json_of(&run_python(
        "ck_cluster.py",
        &["verify", &bootstrap, topic, &acked],
    ));
    assert_eq!(again["acked"].as_i64(), Some(5000), "{again}");
}

/// Offsets a group committed survive the loss of the broker coordinating it: the leader of
/// the group's `__consumer_offsets` partition dies, another replica takes the partition,
/// loads the group, and the group's next consumer starts exactly where the commit was.
#[test]
fn group_offsets_survive_the_loss_of_their_coordinator() {
    let mut cluster = Cluster::start(3);
    let bootstrap = cluster.bootstrap();
    let topic = "grouped";
    let _ = run_python("ck_cluster.py", &["create", &bootstrap, topic, "3", "3"]);
    let acked = cluster.brokers[0].scratch_dir().join("acked.txt");
    let acked = acked.to_str().unwrap().to_owned();
    let produced = json_of(&run_python(
        "ck_cluster.py",
        &["produce", &bootstrap, topic, "g", "600", &acked],
    ));
    assert_eq!(produced["acked"].as_i64(), Some(600), "{produced}");

    let first = json_of(&run_python(
        "ck_cluster.py",
        &["consume", &bootstrap, topic, "survivors", "300"],
    ));
    let committed = first["committed"].as_object().unwrap().clone();
    let coordinator = poll_until(Duration::from_secs(30), || {
        coordinator_of(&cluster.brokers[0], "survivors")
    })
    .expect("the group has a coordinator");
    cluster.brokers[(coordinator - 1) as usize].kill9();
    let survivors = cluster.bootstrap_without(i64::from(coordinator));

    // Another broker takes the group's partition and answers for the group.
    let asked = &cluster.brokers[usize::from(coordinator == 1)];
    let moved = poll_until(Duration::from_secs(60), || {
        coordinator_of(asked, "survivors").filter(|&id| id != coordinator)
    });
    assert!(
        moved.is_some(),
        "the group gets a coordinator on another broker"
    );

    // The rest of the records, each partition resumed exactly at its committed offset.
    let second = json_of(&run_python(
        "ck_cluster.py",
        &["consume", &survivors, topic, "survivors", "300"],
    ));
    assert_eq!(second["count"].as_i64(), Some(300), "{second}");
    for (partition, resumed) in second["first"].as_object().unwrap() {
        let expected = committed
            .get(partition)
            .and_then(Value::as_i64)
            .unwrap_or(0);
        assert_eq!(
            resumed.as_i64(),
            Some(expected),
            "partition {partition} resumed at its commit: {first} then {second}"
        );
    }
}

/// The node id `broker` names as `group`'s coordinator (FindCoordinator v1 on the wire, as
/// every client sends), or None while it answers with an error.
fn coordinator_of(broker: &Broker, group: &str) -> Option<i32> {
    let request = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_string(group.to_owned()))
        .with_key_type(0);
    let mut conn = RawConnection::connect(broker.addr()).ok()?;
    let id = conn
        .send_request(ApiKey::FindCoordinator, 1, &request)
        .ok()?;
    let answer: FindCoordinatorResponse = conn
        .read_response(ApiKey::FindCoordinator, 1, id, Duration::from_secs(10))
        .ok()?;
    (answer.error_code == 0).then_some(answer.node_id.0)
}

/// A replica away while its leader deleted records (DeleteRecords here; retention does the
/// same) comes back to find its whole log below the leader's log start: it starts over
/// there, catches up and rejoins the ISR. The replica that stayed moves its log start with
/// the leader's. Either may lead next, holding exactly the records not deleted.
#[test]
fn a_replica_left_behind_by_deleted_records_starts_over_at_the_leaders_log_start() {
    // Checkpoints (log start offsets among them) every 200 ms, for the in-sync follower's.
    let mut cluster = Cluster::start_with(
        3,
        None,
        &[("log.flush.offset.checkpoint.interval.ms", "200")],
    );
    let bootstrap = cluster.bootstrap();
    let topic = "trimmed";
    let created = json_of(&run_python(
        "ck_cluster.py",
        &["create", &bootstrap, topic, "1", "3"],
    ));
    let leader = created["partitions"][0]["leader"].as_i64().unwrap();
    let away = (1..=3).find(|id| *id != leader).unwrap();
    let stayed = (1..=3).find(|id| *id != leader && *id != away).unwrap();
    let broker = |id: i64| (id - 1) as usize;
    cluster.brokers[broker(away)].kill9();
    let without_away = cluster.bootstrap_without(away);

    let scratch = cluster.brokers[0].scratch_dir().to_path_buf();
    let old_acked = scratch.join("old.txt").to_str().unwrap().to_owned();
    let old = json_of(&run_python(
        "ck_cluster.py",
        &["produce", &without_away, topic, "old", "400", &old_acked],
    ));
    assert_eq!(old["acked"].as_i64(), Some(400), "{old}");
    let deleted = json_of(&run_python(
        "storage_ops.py",
        &[
            "--bootstrap",
            &without_away,
            "--topic",
            topic,
            "delete-records",
            "--offset",
            "400",
        ],
    ));
    assert_eq!(deleted["low_watermark"].as_i64(), Some(400), "{deleted}");
    let new_acked = scratch.join("new.txt").to_str().unwrap().to_owned();
    let new = json_of(&run_python(
        "ck_cluster.py",
        &["produce", &without_away, topic, "new", "300", &new_acked],
    ));
    assert_eq!(new["acked"].as_i64(), Some(300), "{new}");
    // The leader reports its partition under-replicated (two of three in sync), still at
    // min.insync.replicas.
    let led = scrape(&cluster.brokers[broker(leader)]);
    assert_eq!(value(&led, "strata_under_replicated_partitions", &[]), 1.0);
    assert_eq!(value(&led, "strata_under_min_isr_partitions", &[]), 0.0);

    let first_segment = |id: i64, cluster: &Cluster| {
        first_segment_base(
            &cluster.brokers[broker(id)]
                .data_dir()
                .join(format!("{topic}-0")),
        )
    };
    // (Its segments may still begin below 400: one that also holds newer records stays.)
    let stayed_start = || checkpointed_log_start(cluster.brokers[broker(stayed)].data_dir(), topic);
    let followed = poll_until(Duration::from_secs(60), || {
        (stayed_start() == Some(400)).then_some(())
    });
    assert!(
        followed.is_some(),
        "the in-sync follower's log starts at 400 too, found {:?}",
        stayed_start()
    );

    let back = &mut cluster.brokers[broker(away)];
    back.respawn();
    back.wait_until_serving();
    let rejoined = poll_until(Duration::from_secs(90), || {
        let d = describe(&bootstrap, topic);
        (ids(&d["partitions"][0]["isr"]).len() == 3).then_some(())
    });
    assert!(
        rejoined.is_some(),
        "the returning replica rejoins the ISR: {}",
        describe(&bootstrap, topic)
    );
    assert_eq!(
        first_segment(away, &cluster),
        Some(400),
        "the returning replica started over at its leader's log start"
    );
    let led = scrape(&cluster.brokers[broker(leader)]);
    assert_eq!(value(&led, "strata_under_replicated_partitions", &[]), 0.0);
    assert!(value(&led, "strata_isr_changes_total", &[("change", "expand")]) >= 1.0);
    let caught_up = poll_until(Duration::from_secs(30), || {
        let m = scrape(&cluster.brokers[broker(away)]);
        (value(&m, "strata_replica_max_lag", &[]) == 0.0).then_some(())
    });
    assert!(
        caught_up.is_some(),
        "the returning replica's lag drops to 0"
    );

    // Whichever replica leads next holds exactly the records not deleted.
    cluster.brokers[broker(leader)].kill9();
    let survivors = cluster.bootstrap_without(leader);
    let read = json_of(&run_python(
        "ck_cluster.py",
        &["verify", &survivors, topic, &new_acked],
    ));
    assert_eq!(read["acked"].as_i64(), Some(300), "{read}");
    assert_eq!(
        read["read"].as_i64(),
        Some(300),
        "nothing below 400: {read}"
    );
}

/// `topic`-0's log start offset in a broker's log-start-offset-checkpoint (Kafka's format:
/// version, count, then `topic partition offset` lines).
fn checkpointed_log_start(data_dir: &std::path::Path, topic: &str) -> Option<i64> {
    let text = std::fs::read_to_string(data_dir.join("log-start-offset-checkpoint")).ok()?;
    text.lines().skip(2).find_map(|line| {
        let mut fields = line.split_whitespace();
        (fields.next() == Some(topic) && fields.next() == Some("0"))
            .then(|| fields.next()?.parse().ok())
            .flatten()
    })
}

/// The base offset of the oldest live segment in a partition's directory.
fn first_segment_base(dir: &std::path::Path) -> Option<i64> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|name| name.strip_suffix(".log")?.parse::<i64>().ok())
        .min()
}

/// A broker stopped with SIGTERM hands its leaderships over before it exits (Kafka's
/// controlled shutdown): the moment it is gone, every partition already has a leader on
/// another broker, where a killed broker's would wait out `broker.session.timeout.ms`
/// (10 s here). acks=all goes on at once, and the broker rejoins every ISR when it returns.
#[test]
fn a_broker_stopping_gracefully_hands_its_leaderships_over_first() {
    let mut cluster = Cluster::start_with(
        3,
        None,
        &[
            ("broker.session.timeout.ms", "10000"),
            ("leader.imbalance.check.interval.seconds", "1"),
        ],
    );
    let bootstrap = cluster.bootstrap();
    let topic = "handed-over";
    let _ = run_python("ck_cluster.py", &["create", &bootstrap, topic, "3", "3"]);
    let acked = cluster.brokers[0].scratch_dir().join("acked.txt");
    let acked = acked.to_str().unwrap().to_owned();
    let first = json_of(&run_python(
        "ck_cluster.py",
        &["produce", &bootstrap, topic, "before", "300", &acked],
    ));
    assert_eq!(first["acked"].as_i64(), Some(300), "{first}");
    let full = full_isrs(&bootstrap, topic).expect("every ISR holds the three replicas");
    let stopping = full["partitions"][0]["leader"].as_i64().unwrap();

    let status = cluster.brokers[(stopping - 1) as usize].sigterm_and_wait();
    assert!(status.success(), "a clean exit: {status:?}");
    let survivors = cluster.bootstrap_without(stopping);
    // Within the time the survivors take to apply the last changes, far below the session.
    let moved = poll_until(Duration::from_secs(2), || {
        let d = describe(&survivors, topic);
        d["partitions"]
            .as_array()?
            .iter()
            .all(|p| {
                let leader = p["leader"].as_i64().unwrap_or(-1);
                leader >= 0 && leader != stopping
            })
            .then_some(d)
    });
    assert!(
        moved.is_some(),
        "leaderships moved before the broker exited: {}",
        describe(&survivors, topic)
    );
    let second = json_of(&run_python(
        "ck_cluster.py",
        &["produce", &survivors, topic, "after", "300", &acked],
    ));
    assert_eq!(second["acked"].as_i64(), Some(300), "{second}");
    let read = json_of(&run_python(
        "ck_cluster.py",
        &["verify", &survivors, topic, &acked],
    ));
    assert_eq!(read["acked"].as_i64(), Some(600), "{read}");

    let back = &mut cluster.brokers[(stopping - 1) as usize];
    back.respawn();
    back.wait_until_serving();
    let _ = full_isrs(&bootstrap, topic).expect("the returning broker rejoins every ISR");
    // auto.leader.rebalance.enable: its preferred leaderships come back to it.
    let preferred = |d: &Value| {
        d["partitions"]
            .as_array()?
            .iter()
            .filter(|p| ids(&p["replicas"]).first() == Some(&stopping))
            .all(|p| p["leader"].as_i64() == Some(stopping))
            .then_some(())
    };
    assert!(
        poll_until(Duration::from_secs(30), || preferred(&describe(
            &bootstrap, topic
        )))
        .is_some(),
        "broker {stopping} leads its preferred partitions again: {}",
        describe(&bootstrap, topic)
    );
}

/// KIP-392: with `replica.selector.class` set, a consumer with `client.rack` reads from the
/// in-sync replica in its own rack (saving cross-AZ traffic), not the leader in another one:
/// that replica's broker serves the bytes, the third broker none.
#[test]
fn a_consumer_reads_from_the_replica_in_its_own_rack() {
    let cluster = Cluster::start_with(
        3,
        None,
        &[(
            "replica.selector.class",
            "org.apache.kafka.common.replica.RackAwareReplicaSelector",
        )],
    );
    let bootstrap = cluster.bootstrap();
    let topic = "nearby";
    let created = json_of(&run_python(
        "ck_cluster.py",
        &["create", &bootstrap, topic, "1", "3"],
    ));
    let leader = created["partitions"][0]["leader"].as_i64().unwrap();
    let near = (1..=3).find(|id| *id != leader).unwrap();
    let other = (1..=3).find(|id| *id != leader && *id != near).unwrap();
    let acked = cluster.brokers[0].scratch_dir().join("acked.txt");
    let acked = acked.to_str().unwrap().to_owned();
    let produced = json_of(&run_python(
        "ck_cluster.py",
        &["produce", &bootstrap, topic, "near", "500", &acked],
    ));
    assert_eq!(produced["acked"].as_i64(), Some(500), "{produced}");
    let _ = full_isrs(&bootstrap, topic).expect("every ISR holds the three replicas");

    let rack = format!("az{near}");
    let read = json_of(&run_python(
        "ck_cluster.py",
        &["read-rack", &bootstrap, topic, &rack, "500"],
    ));
    assert_eq!(read["read"].as_i64(), Some(500), "{read}");
    let bytes_out = |id: i64| {
        value(
            &scrape(&cluster.brokers[(id - 1) as usize]),
            "strata_topic_bytes_out_total",
            &[("topic", topic)],
        )
    };
    assert!(
        bytes_out(near) > 0.0,
        "the replica in the client's rack served it"
    );
    assert_eq!(bytes_out(other), 0.0, "the replica in a third rack did not");
}

/// ElectLeaders, as `kafka-leader-election.sh --election-type preferred` sends it: after a
/// failover (automatic rebalancing off) the partition goes back to its preferred replica on
/// request, and a second request is ELECTION_NOT_NEEDED.
#[test]
fn a_preferred_leader_election_moves_leadership_back() {
    let mut cluster = Cluster::start_with(3, None, &[("auto.leader.rebalance.enable", "false")]);
    let bootstrap = cluster.bootstrap();
    let topic = "elected";
    let created = json_of(&run_python(
        "ck_cluster.py",
        &["create", &bootstrap, topic, "1", "3"],
    ));
    let preferred = ids(&created["partitions"][0]["replicas"])[0];
    let _ = full_isrs(&bootstrap, topic).expect("every ISR holds the three replicas");
    cluster.brokers[(preferred - 1) as usize].kill9();
    let survivors = cluster.bootstrap_without(preferred);
    let moved = poll_until(Duration::from_secs(60), || {
        let leader = describe(&survivors, topic)["partitions"][0]["leader"].as_i64()?;
        (leader >= 0 && leader != preferred).then_some(leader)
    });
    assert!(moved.is_some(), "leadership moves off the killed broker");
    let back = &mut cluster.brokers[(preferred - 1) as usize];
    back.respawn();
    back.wait_until_serving();
    let full = full_isrs(&bootstrap, topic).expect("the returning broker rejoins the ISR");
    assert_ne!(
        full["partitions"][0]["leader"].as_i64(),
        Some(preferred),
        "no automatic rebalancing here"
    );

    let elect = || {
        json_of(&run_python(
            "ck_cluster.py",
            &["elect-preferred", &bootstrap, topic, "0"],
        ))["result"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(elect(), "NONE");
    assert_eq!(
        describe(&bootstrap, topic)["partitions"][0]["leader"].as_i64(),
        Some(preferred)
    );
    assert_eq!(elect(), "ELECTION_NOT_NEEDED");
}
