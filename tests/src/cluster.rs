//! A cluster of real `strata` processes for the replication tests: node ids 1..=n, one rack
//! (`az<id>`) each, all voters of the metadata quorum, replicated topics by default — and the
//! confluent-kafka helpers (`ck_cluster.py`) the tests read it with.

use std::time::Duration;

use serde_json::Value;

use crate::{free_port, poll_until, run_python, Broker};

pub struct Cluster {
    pub brokers: Vec<Broker>,
    /// Each broker's metadata quorum (CONTROLLER) port.
    pub controller_ports: Vec<u16>,
    /// Each broker's port of the extra listener, when the cluster has one.
    pub extra_ports: Vec<u16>,
}

impl Cluster {
    /// Spawns `n` brokers (node ids 1..=n, rack `az<id>`), all voters, then waits for each.
    pub fn start(n: usize) -> Cluster {
        Cluster::start_with(n, None, &[])
    }

    /// `start`, plus a listener of protocol `extra_listener` (named as the protocol) on
    /// each broker and `extra` overrides for all of them (later ones win).
    pub fn start_with(n: usize, extra_listener: Option<&str>, extra: &[(&str, &str)]) -> Cluster {
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

    pub fn bootstrap(&self) -> String {
        self.brokers
            .iter()
            .map(Broker::bootstrap)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Bootstrap through every broker but `except` (node id).
    pub fn bootstrap_without(&self, except: i64) -> String {
        self.brokers
            .iter()
            .enumerate()
            .filter(|(i, _)| *i as i64 + 1 != except)
            .map(|(_, b)| b.bootstrap())
            .collect::<Vec<_>>()
            .join(",")
    }
}

pub fn json_of(output: &std::process::Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().next().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("expected JSON, found {stdout:?}: {e}"))
}

pub fn describe(bootstrap: &str, topic: &str) -> Value {
    json_of(&run_python(
        "ck_cluster.py",
        &["describe", bootstrap, topic],
    ))
}

/// The topic's description once every partition's ISR holds all three replicas.
pub fn full_isrs(bootstrap: &str, topic: &str) -> Option<Value> {
    poll_until(Duration::from_secs(90), || {
        let d = describe(bootstrap, topic);
        d.get("partitions")?
            .as_array()?
            .iter()
            .all(|p| ids(&p["isr"]).len() == 3)
            .then_some(d)
    })
}

pub fn ids(v: &Value) -> Vec<i64> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default()
}
