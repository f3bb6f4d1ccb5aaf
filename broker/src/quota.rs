//! Client quotas (KIP-13, KIP-55): byte-rate limits on produce and fetch per user, client
//! id, or both, set with AlterClientQuotas (`kafka-configs --alter --entity-type users
//! --entity-name alice --add-config producer_byte_rate=1048576`) and kept in the metadata
//! image. A client over its quota is not refused: its response carries `throttle_time_ms`
//! and its connection is not read for that long (KIP-219), which is how Kafka slows it.
//!
//! The quota that applies is the most specific one set, in Kafka's order:
//! user+client-id, user+default client, user, default user+client-id, default
//! user+default client, default user, client-id, default client. The clients that share a
//! matched quota share its rate: a user-level quota limits all of that user's clients
//! together.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// The quota keys Strata enforces.
pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
pub const ENFORCED_KEYS: [&str; 2] = [PRODUCER_BYTE_RATE, CONSUMER_BYTE_RATE];

/// The user or client-id part of a quota entity: a name, or the default for all names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EntityName {
    Default,
    Name(String),
}

/// Whom a quota is for: a user, a client id, or both (at least one).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QuotaEntity {
    pub user: Option<EntityName>,
    pub client_id: Option<EntityName>,
}

/// Every quota set, by entity: key -> value.
pub type QuotaTable = BTreeMap<QuotaEntity, BTreeMap<String, f64>>;

/// Which way the bytes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuotaKind {
    Produce,
    Fetch,
}

impl QuotaKind {
    fn key(self) -> &'static str {
        match self {
            QuotaKind::Produce => PRODUCER_BYTE_RATE,
            QuotaKind::Fetch => CONSUMER_BYTE_RATE,
        }
    }
}

/// The quota for a (user, client id) in Kafka's precedence, with the entity it came from
/// (whose clients share the rate).
pub fn applicable(
    table: &QuotaTable,
    kind: QuotaKind,
    user: &str,
    client_id: &str,
) -> Option<(f64, QuotaEntity)> {
    if table.is_empty() {
        return None;
    }
    let name = |n: &str| Some(EntityName::Name(n.to_string()));
    let default = || Some(EntityName::Default);
    let candidates = [
        (name(user), name(client_id)),
        (name(user), default()),
        (name(user), None),
        (default(), name(client_id)),
        (default(), default()),
        (default(), None),
        (None, name(client_id)),
        (None, default()),
    ];
    candidates.into_iter().find_map(|(u, c)| {
        let entity = QuotaEntity {
            user: u,
            client_id: c,
        };
        let value = table.get(&entity)?.get(kind.key())?;
        Some((*value, entity))
    })
}

/// The clients a matched quota's rate is shared by: the matched entity with its defaults
/// replaced by this client's names (a default-user quota limits each user on its own).
fn sensor_key(
    matched: &QuotaEntity,
    user: &str,
    client_id: &str,
) -> (Option<String>, Option<String>) {
    (
        matched.user.as_ref().map(|_| user.to_string()),
        matched.client_id.as_ref().map(|_| client_id.to_string()),
    )
}

/// Bytes in the last `windows` windows of `window_ms` each.
#[derive(Debug, Default)]
struct Sensor {
    /// (window start, bytes), oldest first.
    samples: VecDeque<(i64, f64)>,
}

impl Sensor {
    /// Records `bytes` at `now` and returns the rate over the kept windows, in bytes/s, and
    /// the time it was measured over (ms). As Kafka's `Rate`, that time counts at least all
    /// but one full window, so a first burst is not measured over a few milliseconds.
    fn record(&mut self, bytes: f64, now: i64, window_ms: i64, windows: usize) -> (f64, i64) {
        let start = now - now.rem_euclid(window_ms);
        match self.samples.back_mut() {
            Some((at, total)) if *at == start => *total += bytes,
            _ => self.samples.push_back((start, bytes)),
        }
        let oldest_kept = start - window_ms * (windows as i64 - 1);
        while self
            .samples
            .front()
            .is_some_and(|(at, _)| *at < oldest_kept)
        {
            self.samples.pop_front();
        }
        let total: f64 = self.samples.iter().map(|(_, b)| b).sum();
        let first = self.samples.front().map_or(start, |(at, _)| *at);
        let elapsed = (now - first).max(window_ms * (windows as i64 - 1)).max(1);
        (total * 1000.0 / elapsed as f64, elapsed)
    }
}

/// A rate's owner: the direction, and the user and client id of the matched quota's level.
type SensorKey = (QuotaKind, Option<String>, Option<String>);

/// Rates of the clients under a quota, and the throttle each request earns.
pub struct QuotaManager {
    window_ms: i64,
    windows: usize,
    sensors: Mutex<HashMap<SensorKey, Sensor>>,
}

/// Upper bound of one throttle, whatever the arithmetic says (Kafka bounds it by its
/// quota window too).
const MAX_THROTTLE_MS: i64 = 30_000;

impl QuotaManager {
    pub fn new(window_ms: i64, windows: usize) -> Self {
        QuotaManager {
            window_ms: window_ms.max(1),
            windows: windows.max(2),
            sensors: Mutex::new(HashMap::new()),
        }
    }

    /// Records a request's bytes against the quota that applies (none: nothing recorded)
    /// and returns how long the client must wait, in ms: Kafka's
    /// `(rate - quota) / quota * measured window`, 0 within quota: waiting that long brings
    /// the rate over the window back to the quota.
    pub fn record(
        &self,
        table: &QuotaTable,
        kind: QuotaKind,
        user: &str,
        client_id: &str,
        bytes: usize,
        now_ms: i64,
    ) -> i64 {
        let Some((quota, matched)) = applicable(table, kind, user, client_id) else {
            return 0;
        };
        let (u, c) = sensor_key(&matched, user, client_id);
        let mut sensors = self.sensors.lock().unwrap_or_else(|p| p.into_inner());
        let sensor = sensors.entry((kind, u, c)).or_default();
        let (rate, window) = sensor.record(bytes as f64, now_ms, self.window_ms, self.windows);
        if quota <= 0.0 {
            return MAX_THROTTLE_MS;
        }
        if rate <= quota {
            return 0;
        }
        (((rate - quota) / quota) * window as f64)
            .round()
            .clamp(0.0, MAX_THROTTLE_MS as f64) as i64
    }

    /// Forgets sensors idle for all their windows (clients that went away).
    pub fn prune(&self, now_ms: i64) {
        let horizon = now_ms - self.window_ms * self.windows as i64;
        let mut sensors = self.sensors.lock().unwrap_or_else(|p| p.into_inner());
        sensors.retain(|_, s| s.samples.back().is_some_and(|(at, _)| *at >= horizon));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(entries: &[(Option<EntityName>, Option<EntityName>, f64)]) -> QuotaTable {
        entries
            .iter()
            .map(|(u, c, v)| {
                (
                    QuotaEntity {
                        user: u.clone(),
                        client_id: c.clone(),
                    },
                    BTreeMap::from([(PRODUCER_BYTE_RATE.to_string(), *v)]),
                )
            })
            .collect()
    }

    fn n(s: &str) -> Option<EntityName> {
        Some(EntityName::Name(s.to_string()))
    }

    #[test]
    fn the_most_specific_quota_applies_in_kafkas_order() {
        let d = || Some(EntityName::Default);
        let t = table(&[
            (None, d(), 1.0),
            (None, n("app"), 2.0),
            (d(), None, 3.0),
            (n("alice"), None, 4.0),
            (n("alice"), n("app"), 5.0),
        ]);
        let q = |u: &str, c: &str| applicable(&t, QuotaKind::Produce, u, c).map(|(v, _)| v);
        assert_eq!(q("alice", "app"), Some(5.0));
        assert_eq!(q("alice", "other"), Some(4.0));
        assert_eq!(q("bob", "app"), Some(3.0), "default user beats client id");
        let only_clients = table(&[(None, d(), 1.0), (None, n("app"), 2.0)]);
        let q = |c: &str| applicable(&only_clients, QuotaKind::Produce, "bob", c).map(|(v, _)| v);
        assert_eq!((q("app"), q("x")), (Some(2.0), Some(1.0)));
        assert_eq!(
            applicable(&only_clients, QuotaKind::Fetch, "bob", "app"),
            None
        );
    }

    #[test]
    fn a_client_over_its_rate_is_throttled_in_proportion() {
        let m = QuotaManager::new(1000, 11);
        let t = table(&[(None, n("app"), 1000.0)]);
        // 5,000 bytes at once: measured over 10 s of windows, 500 B/s, within 1,000 B/s.
        assert_eq!(
            m.record(&t, QuotaKind::Produce, "u", "app", 5_000, 100_000),
            0
        );
        // 20,000 more: 2,500 B/s over the 10 s measured, 1.5x over: 1.5 * 10 s.
        let throttle = m.record(&t, QuotaKind::Produce, "u", "app", 20_000, 100_500);
        assert_eq!(throttle, 15_000);
        // Other clients and the other direction are not limited by it.
        assert_eq!(
            m.record(&t, QuotaKind::Produce, "u", "x", 1 << 30, 100_500),
            0
        );
        assert_eq!(
            m.record(&t, QuotaKind::Fetch, "u", "app", 1 << 30, 100_500),
            0
        );
        // Once the windows have passed, the rate is back within the quota.
        assert_eq!(m.record(&t, QuotaKind::Produce, "u", "app", 10, 120_000), 0);
        m.prune(200_000);
        assert!(m.sensors.lock().unwrap().is_empty());
    }
}
