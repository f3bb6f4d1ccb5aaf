//! A three-broker cluster, one broker per availability zone (`broker.rack`), the metadata
//! ordered by the Raft quorum of all three: replicated topics placed across the racks,
//! acks=all producing through librdkafka, a leader killed with kill -9 mid-stream — every
//! acknowledged record is read back from the survivors — and the killed broker returning
//! to the ISR.

// Tests may unwrap: a panic here is a failed assertion with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use strata_tests::{free_port, poll_until, run_python, Broker};

struct Cluster {
    brokers: Vec<Broker>,
}

impl Cluster {
    /// Spawns `n` brokers (node ids 1..=n, rack `az<id>`), all voters, then waits for each.
    fn start(n: usize) -> Cluster {
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
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
                let listeners =
                    format!("PLAINTEXT://127.0.0.1:{kafka},CONTROLLER://127.0.0.1:{controller}");
                let rack = format!("az{id}");
                Broker::spawn_on(
                    *kafka,
                    &[
                        ("node.id", &id),
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
                    ],
                )
            })
            .collect();
        for broker in &mut brokers {
            broker.wait_until_serving();
        }
        Cluster { brokers }
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
    let full = poll_until(Duration::from_secs(60), || {
        let d = describe(&bootstrap, topic);
        d["partitions"]
            .as_array()?
            .iter()
            .all(|p| ids(&p["isr"]).len() == 3)
            .then_some(d)
    })
    .expect("every ISR holds the three replicas");
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
    poll_until(Duration::from_secs(90), || {
        let d = describe(&bootstrap, topic);
        d["partitions"]
            .as_array()?
            .iter()
            .all(|p| ids(&p["isr"]).len() == 3)
            .then_some(())
    })
    .expect("the returning broker rejoins every ISR");
    let again = json_of(&run_python(
        "ck_cluster.py",
        &["verify", &bootstrap, topic, &acked],
    ));
    assert_eq!(again["acked"].as_i64(), Some(5000), "{again}");
}
