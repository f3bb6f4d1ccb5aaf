//! A three-broker cluster, one broker per availability zone (`broker.rack`), the metadata
//! ordered by the Raft quorum of all three: replicated topics placed across the racks,
//! acks=all producing through librdkafka, a leader killed with kill -9 mid-stream — every
//! acknowledged record is read back from the survivors — and the killed broker returning
//! to the ISR; a group's committed offsets surviving the loss of its coordinator.

// Tests may unwrap: a panic here is a failed assertion with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeSet;
use std::time::Duration;

#[path = "support/secure.rs"]
mod secure;

use kafka_protocol::messages::{ApiKey, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use serde_json::Value;
use strata_tests::metrics::{scrape, series_value as value};
use strata_tests::wire::RawConnection;
use strata_tests::{free_port, poll_until, run_python, Broker};

struct Cluster {
    brokers: Vec<Broker>,
    /// Each broker's metadata quorum (CONTROLLER) port.
    controller_ports: Vec<u16>,
    /// Each broker's port of the extra listener, when the cluster has one.
    extra_ports: Vec<u16>,
}

impl Cluster {
    /// Spawns `n` brokers (node ids 1..=n, rack `az<id>`), all voters, then waits for each.
    fn start(n: usize) -> Cluster {
        Cluster::start_with(n, None, &[])
    }

    /// `start`, plus a listener of protocol `extra_listener` (named as the protocol) on
    /// each broker and `extra` overrides for all of them (later ones win).
    fn start_with(n: usize, extra_listener: Option<&str>, extra: &[(&str, &str)]) -> Cluster {
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let extra_ports: Vec<u16> = match extra_listener {
            Some(_) => (0..n).map(|_| free_port()).collect(),
            None => Vec::new(),
        };
        let voters = ports
            .iter()
            .enumerate()
            .map(|(i, (_, c))| format!("{}@127.0.0.1:{c}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let mut brokers: Vec<Broker> = ports
            .iter()
            .enumerate()
            .map(|(i, (kafka, controller))| {
                let id = (i + 1).to_string();
                let mut listeners =
                    format!("PLAINTEXT://127.0.0.1:{kafka},CONTROLLER://127.0.0.1:{controller}");
                if let (Some(name), Some(port)) = (extra_listener, extra_ports.get(i)) {
                    listeners.push_str(&format!(",{name}://127.0.0.1:{port}"));
                }
                let rack = format!("az{id}");
                let mut overrides = vec![
                    ("node.id", id.as_str()),
                    ("listeners", &listeners),
                    ("controller.listener.names", "CONTROLLER"),
                    ("controller.quorum.voters", &voters),
                    ("inter.broker.listener.name", "PLAINTEXT"),
                    ("broker.rack", &rack),
                    ("default.replication.factor", "3"),
                    ("min.insync.replicas", "2"),
                    ("broker.session.timeout.ms", "3000"),
                    ("replica.lag.time.max.ms", "5000"),
                    ("offsets.topic.replication.factor", "3"),
                ];
                overrides.extend_from_slice(extra);
                Broker::spawn_on(*kafka, &overrides)
            })
            .collect();
        for broker in &mut brokers {
            broker.wait_until_serving();
        }
        Cluster {
            brokers,
            controller_ports: ports.iter().map(|(_, c)| *c).collect(),
            extra_ports,
        }
    }

    fn bootstrap(&self) -> String {
        self.brokers
            .iter()
            .map(Broker::bootstrap)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Bootstrap through every broker but `except` (node id).
    fn bootstrap_without(&self, except: i64) -> String {
        self.brokers
            .iter()
            .enumerate()
            .filter(|(i, _)| *i as i64 + 1 != except)
            .map(|(_, b)| b.bootstrap())
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn json_of(output: &std::process::Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().next().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("expected JSON, found {stdout:?}: {e}"))
}

fn describe(bootstrap: &str, topic: &str) -> Value {
    json_of(&run_python(
        "ck_cluster.py",
        &["describe", bootstrap, topic],
    ))
}

/// The topic's description once every partition's ISR holds all three replicas.
fn full_isrs(bootstrap: &str, topic: &str) -> Option<Value> {
    poll_until(Duration::from_secs(90), || {
        let d = describe(bootstrap, topic);
        d["partitions"]
            .as_array()?
            .iter()
            .all(|p| ids(&p["isr"]).len() == 3)
            .then_some(d)
    })
}

fn ids(v: &Value) -> Vec<i64> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default()
}

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

    // Every broker answers Metadata from the same replicated image.
    for broker in &cluster.brokers {
        let seen = describe(&broker.bootstrap(), topic);
        assert_eq!(
            seen["partitions"].as_array().map(Vec::len),
            Some(6),
            "{seen}"
        );
    }

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

/// SCRAM users and ACLs are cluster metadata: a user created through one broker and an ACL
/// granted through another hold on every broker (the client below talks to all three, as
/// each leads one partition), a deleted ACL stops the user everywhere, and a restarted
/// broker still knows both.
#[test]
fn users_and_acls_made_through_one_broker_hold_on_every_broker() {
    let mut cluster = Cluster::start_with(
        3,
        Some("SASL_PLAINTEXT"),
        &[
            (
                "authorizer.class.name",
                "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            ),
            // PLAINTEXT (loopback) carries replication and this test's administration.
            ("super.users", "User:ANONYMOUS"),
            ("sasl.enabled.mechanisms", "SCRAM-SHA-512"),
        ],
    );
    let topic = "guarded";
    let _ = run_python(
        "ck_cluster.py",
        &["create", &cluster.bootstrap(), topic, "3", "3"],
    );
    let plain = "{}";
    let via: Vec<String> = cluster.brokers.iter().map(Broker::bootstrap).collect();
    let out = sec(
        "sec_ck.py",
        &[
            "scram-upsert",
            &via[0],
            plain,
            "alice",
            "alice-secret",
            "SCRAM-SHA-512",
        ],
    );
    assert_eq!(out, "upserted alice SCRAM-SHA-512");
    let out = sec(
        "sec_acl.py",
        &[
            "create",
            &via[1],
            plain,
            &format!("TOPIC:{topic}:LITERAL:User=alice:WRITE:ALLOW"),
        ],
    );
    assert_eq!(out, "created 1");

    // Alice authenticates at the third broker, which took neither change, and produces to
    // all three partitions (one led by each broker).
    let alice = r#"{"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "alice", "sasl.password": "alice-secret"}"#;
    let sasl_at = |i: usize, cluster: &Cluster| format!("127.0.0.1:{}", cluster.extra_ports[i]);
    let produced = poll_until(Duration::from_secs(30), || {
        let out = sec(
            "sec_ck.py",
            &["produce", &sasl_at(2, &cluster), alice, topic],
        );
        (out == "delivered 5").then_some(out)
    });
    assert!(
        produced.is_some(),
        "alice produces through broker 3: {}",
        sec(
            "sec_ck.py",
            &["produce", &sasl_at(2, &cluster), alice, topic]
        )
    );
    let wrong = r#"{"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "alice", "sasl.password": "not-her-secret"}"#;
    let out = sec(
        "sec_ck.py",
        &["authfail", &sasl_at(1, &cluster), wrong, topic],
    );
    assert!(out.starts_with("authentication refused"), "{out}");

    // A restarted broker keeps both (its mirror, then the quorum's replay).
    cluster.brokers[0].kill9();
    cluster.brokers[0].respawn();
    cluster.brokers[0].wait_until_serving();
    let out = sec(
        "sec_ck.py",
        &["produce", &sasl_at(0, &cluster), alice, topic],
    );
    assert_eq!(out, "delivered 5", "after broker 1 restarted");

    // The ACL deleted through broker 1 stops alice at broker 2.
    let out = sec(
        "sec_acl.py",
        &[
            "delete",
            &via[0],
            plain,
            &format!("TOPIC:{topic}:LITERAL:User=alice:ANY:ANY"),
        ],
    );
    assert!(out.starts_with("deleted 1"), "{out}");
    let out = sec(
        "sec_ck.py",
        &["produce", &sasl_at(1, &cluster), alice, topic],
    );
    assert_eq!(out, "error TOPIC_AUTHORIZATION_FAILED");
}

/// A security helper script's one-line answer.
fn sec(script: &str, args: &[&str]) -> String {
    String::from_utf8_lossy(&run_python(script, args).stdout)
        .trim()
        .to_owned()
}

/// Brokers talk to each other over TLS only, as across availability zones: they replicate
/// over SASL_SSL (certificates checked against the cluster's CA, logged in with
/// SCRAM-SHA-512 as `User:broker`, which the authorizer lets replicate), and the metadata
/// quorum runs on an SSL listener that requires client certificates. Until the broker user
/// exists no follower can log in and acks=all cannot complete; once it is created (through
/// any broker: it is cluster metadata), every ISR fills and a leader's loss loses nothing
/// acknowledged.
#[test]
fn brokers_replicate_over_sasl_ssl_as_a_scram_user() {
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = secure::make_pki(pki_dir.path());
    let keystore = pki.server_keystore.display().to_string();
    let ca = pki.ca.display().to_string();
    let jaas = r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="broker-secret";"#;
    let mut cluster = Cluster::start_with(
        3,
        Some("SASL_SSL"),
        &[
            ("inter.broker.listener.name", "SASL_SSL"),
            (
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:SSL",
            ),
            ("listener.name.controller.ssl.client.auth", "required"),
            ("ssl.keystore.type", "PEM"),
            ("ssl.keystore.location", &keystore),
            ("ssl.truststore.location", &ca),
            ("sasl.enabled.mechanisms", "SCRAM-SHA-512"),
            ("sasl.mechanism.inter.broker.protocol", "SCRAM-SHA-512"),
            (
                "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config",
                jaas,
            ),
            (
                "authorizer.class.name",
                "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            ),
            // PLAINTEXT (loopback) is this test's administration; SASL_SSL replicates.
            ("super.users", "User:broker;User:ANONYMOUS"),
        ],
    );
    // The quorum's port speaks TLS only: plain bytes get a TLS alert back, not Raft.
    let mut raw = std::net::TcpStream::connect(("127.0.0.1", cluster.controller_ports[0])).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    std::io::Write::write_all(&mut raw, b"\x00\x00\x00\x05hello").unwrap();
    let mut answer = [0u8; 2];
    let read = std::io::Read::read(&mut raw, &mut answer).unwrap_or(0);
    assert_eq!(
        (read, answer[0]),
        (2, 0x15),
        "a TLS alert record from the quorum's port"
    );

    let bootstrap = cluster.bootstrap();
    let out = sec(
        "sec_ck.py",
        &[
            "scram-upsert",
            &cluster.brokers[1].bootstrap(),
            "{}",
            "broker",
            "broker-secret",
            "SCRAM-SHA-512",
        ],
    );
    assert_eq!(out, "upserted broker SCRAM-SHA-512");
    let topic = "over-tls";
    let _ = run_python("ck_cluster.py", &["create", &bootstrap, topic, "3", "3"]);
    let acked = cluster.brokers[0].scratch_dir().join("acked.txt");
    let acked = acked.to_str().unwrap().to_owned();
    let produced = json_of(&run_python(
        "ck_cluster.py",
        &["produce", &bootstrap, topic, "tls", "1000", &acked],
    ));
    assert_eq!(produced["acked"].as_i64(), Some(1000), "{produced}");
    let full = full_isrs(&bootstrap, topic).expect("every ISR fills over SASL_SSL");

    let victim = full["partitions"][0]["leader"].as_i64().unwrap();
    cluster.brokers[(victim - 1) as usize].kill9();
    let survivors = cluster.bootstrap_without(victim);
    let read = json_of(&run_python(
        "ck_cluster.py",
        &["verify", &survivors, topic, &acked],
    ));
    assert_eq!(read["acked"].as_i64(), Some(1000), "{read}");
}

/// A broker stopped with SIGTERM hands its leaderships over before it exits (Kafka's
/// controlled shutdown): the moment it is gone, every partition already has a leader on
/// another broker, where a killed broker's would wait out `broker.session.timeout.ms`
/// (10 s here). acks=all goes on at once, and the broker rejoins every ISR when it returns.
#[test]
fn a_broker_stopping_gracefully_hands_its_leaderships_over_first() {
    let mut cluster = Cluster::start_with(3, None, &[("broker.session.timeout.ms", "10000")]);
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
}
