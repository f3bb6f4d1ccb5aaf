//! Prometheus metrics of one broker. Counters and histograms that the request path updates
//! (per API, per topic, connections, SASL) live here; gauges describing the broker's state
//! (log dirs, partitions, consumer groups and lag) are computed at scrape time in `state`.
//! Labels never carry client ids or principals, so the number of series stays bounded.

pub mod errors;
mod state;
mod topic;

pub use topic::FetchedPartitions;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use kafka_protocol::messages::{ApiKey, ResponseKind};
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use strata_protocol::kafka_protocol;

use crate::server::Broker;

/// Request latencies from sub-millisecond metadata answers to fetches that long-poll for a
/// minute (fetch's wait cap).
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// The SASL mechanisms Strata offers, the only ones that may appear as a label; anything
/// else a client names is counted as `other`.
const SASL_MECHANISMS: &[&str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    #[error("cannot register metric: {0}")]
    Register(#[from] prometheus::Error),
    #[error("cannot encode metrics in the Prometheus text format: {0}")]
    Encode(String),
}

/// Every metric of the broker, registered in one private registry.
pub struct BrokerMetrics {
    registry: Registry,
    ready: AtomicBool,
    /// Scrapes reset and refill the state gauges; one at a time keeps a scrape consistent.
    scrape: Mutex<()>,
    state: state::StateGauges,
    requests: IntCounterVec,
    request_errors: IntCounterVec,
    request_queue_seconds: HistogramVec,
    request_processing_seconds: HistogramVec,
    request_total_seconds: HistogramVec,
    topics: topic::TopicVecs,
    topic_series: topic::TopicSeriesCache,
    connections: IntGaugeVec,
    connections_accepted: IntCounterVec,
    sasl_authentications: IntCounterVec,
    throttled_requests: IntCounterVec,
    throttle_seconds: prometheus::CounterVec,
    isr_changes: IntCounterVec,
    /// Each API's series, looked up by label once (on its first request) rather than on
    /// every request: a label lookup hashes, locks and clones, four times a request.
    per_api: Box<[OnceLock<ApiSeries>]>,
    /// Keys beyond the table, which `api_label` calls `Unknown` (none exist today).
    unknown_api: OnceLock<ApiSeries>,
}

/// One API's request series (these are never removed, so the handles stay live).
struct ApiSeries {
    requests: IntCounter,
    processing_seconds: Histogram,
    queue_seconds: Histogram,
    total_seconds: Histogram,
    /// Responses mostly carry NONE; other codes are looked up by label.
    no_error: IntCounter,
}

fn counter(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, MetricsError> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

fn gauge(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntGaugeVec, MetricsError> {
    let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(g.clone()))?;
    Ok(g)
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<HistogramVec, MetricsError> {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
        labels,
    )?;
    registry.register(Box::new(h.clone()))?;
    Ok(h)
}

impl BrokerMetrics {
    pub fn new() -> Result<BrokerMetrics, MetricsError> {
        let registry = Registry::new();
        // CPU seconds, resident memory, open fds... of this process, as strata_process_*.
        let pid = libc::pid_t::try_from(std::process::id()).unwrap_or(0);
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::new(pid, "strata"),
        ))?;
        let r = &registry;
        let metrics = BrokerMetrics {
            state: state::StateGauges::new(r)?,
            requests: counter(
                r,
                "strata_requests_total",
                "Requests handled, by API.",
                &["api"],
            )?,
            request_errors: counter(
                r,
                "strata_request_errors_total",
                "Error codes in responses (NONE included), by API and Kafka error name.",
                &["api", "error"],
            )?,
            request_queue_seconds: histogram(
                r,
                "strata_request_queue_seconds",
                "Time from reading a request's frame to its handler starting, by API.",
                &["api"],
            )?,
            request_processing_seconds: histogram(
                r,
                "strata_request_processing_seconds",
                "Time in the request handler (including fetch long-polls and acks=all waits), by API.",
                &["api"],
            )?,
            request_total_seconds: histogram(
                r,
                "strata_request_total_seconds",
                "Time from reading a request's frame to its response being ready, by API.",
                &["api"],
            )?,
            topics: topic::TopicVecs::register(r)?,
            topic_series: topic::TopicSeriesCache::default(),
            connections: gauge(
                r,
                "strata_connections",
                "Open client connections, by listener and security protocol.",
                &["listener", "protocol"],
            )?,
            connections_accepted: counter(
                r,
                "strata_connections_accepted_total",
                "Connections accepted, by listener and security protocol.",
                &["listener", "protocol"],
            )?,
            throttled_requests: counter(
                r,
                "strata_quota_throttled_requests_total",
                "Produce or fetch requests whose client was over its quota (direction: produce or fetch).",
                &["direction"],
            )?,
            throttle_seconds: {
                let c = prometheus::CounterVec::new(
                    Opts::new(
                        "strata_quota_throttle_seconds_total",
                        "Seconds of throttling handed to clients over their quotas (throttle_time_ms).",
                    ),
                    &["direction"],
                )?;
                r.register(Box::new(c.clone()))?;
                c
            },
            sasl_authentications: counter(
                r,
                "strata_sasl_authentications_total",
                "SASL authentications, by mechanism and result (success or failure).",
                &["mechanism", "result"],
            )?,
            isr_changes: counter(
                r,
                "strata_isr_changes_total",
                "ISR changes this broker committed as a partition's leader (change: shrink, a follower fell behind; expand, one caught up).",
                &["change"],
            )?,
            registry,
            ready: AtomicBool::new(false),
            scrape: Mutex::new(()),
            per_api: (0..=i16::from(u8::MAX)).map(|_| OnceLock::new()).collect(),
            unknown_api: OnceLock::new(),
        };
        // Known label values start at 0 so that dashboards and alerts see the series
        // (and rate() works) before the first event.
        for mechanism in SASL_MECHANISMS {
            for result in ["success", "failure"] {
                let _ = metrics
                    .sasl_authentications
                    .with_label_values(&[mechanism, result]);
            }
        }
        for change in ["shrink", "expand"] {
            let _ = metrics.isr_changes.with_label_values(&[change]);
        }
        for direction in ["produce", "fetch"] {
            let _ = metrics.throttled_requests.with_label_values(&[direction]);
            let _ = metrics.throttle_seconds.with_label_values(&[direction]);
        }
        Ok(metrics)
    }

    /// Ready: logs recovered and listeners accepting (`/health/ready` answers 200).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Starts timing one request; the returned timer records it when dropped, so early
    /// returns (acks=0, unimplemented APIs, a cancelled task) are counted too.
    pub fn start_request(&self, api: ApiKey, received: Option<Instant>) -> RequestTimer<'_> {
        RequestTimer {
            series: self.api_series(api),
            received,
            started: Instant::now(),
        }
    }

    /// Counts the error codes of a response about to be sent.
    pub fn count_response_errors(&self, api: ApiKey, response: &ResponseKind) {
        let mut none = 0;
        errors::visit_error_codes(response, |code| match code {
            0 => none += 1,
            // Errors are the rare case: the labelled lookup per occurrence is fine there.
            _ => self
                .request_errors
                .with_label_values(&[api_label(api), errors::error_name(code)])
                .inc(),
        });
        if none > 0 {
            self.api_series(api).no_error.inc_by(none);
        }
    }

    fn api_series(&self, api: ApiKey) -> &ApiSeries {
        let make = || {
            let label = [api_label(api)];
            ApiSeries {
                requests: self.requests.with_label_values(&label),
                processing_seconds: self.request_processing_seconds.with_label_values(&label),
                queue_seconds: self.request_queue_seconds.with_label_values(&label),
                total_seconds: self.request_total_seconds.with_label_values(&label),
                no_error: self
                    .request_errors
                    .with_label_values(&[label[0], errors::error_name(0)]),
            }
        };
        usize::try_from(api as i16)
            .ok()
            .and_then(|i| self.per_api.get(i))
            .unwrap_or(&self.unknown_api)
            .get_or_init(make)
    }

    /// One produce partition result: `Ok((records, bytes))` appended, or an error code.
    /// Call only for topics that exist, so hostile topic names never become labels.
    pub fn produce_partition(&self, topic: &str, outcome: Result<(u64, u64), i16>) {
        self.topic_series.produce(&self.topics, topic, outcome);
    }

    /// One fetch partition result: the error code sent and the record bytes returned.
    /// Call only for topics that exist.
    /// One fetch's reads from the partitions of `topic` (one series lookup for them all).
    pub fn fetched(&self, topic: &str, read: FetchedPartitions) {
        self.topic_series.fetch(&self.topics, topic, read);
    }

    /// A request earned `throttle_ms` of throttling for being over its client quota.
    pub fn throttled(&self, kind: crate::quota::QuotaKind, throttle_ms: i64) {
        let direction = match kind {
            crate::quota::QuotaKind::Produce => "produce",
            crate::quota::QuotaKind::Fetch => "fetch",
        };
        self.throttled_requests
            .with_label_values(&[direction])
            .inc();
        self.throttle_seconds
            .with_label_values(&[direction])
            .inc_by(throttle_ms as f64 / 1000.0);
    }

    /// A connection was accepted; the gauge goes down when the guard is dropped.
    pub fn connection_opened(&self, listener: &str, protocol: &str) -> ConnectionGuard {
        self.connections_accepted
            .with_label_values(&[listener, protocol])
            .inc();
        let gauge = self.connections.with_label_values(&[listener, protocol]);
        gauge.inc();
        ConnectionGuard { gauge }
    }

    /// The counter of committed ISR shrinks (`expand` false) or expansions, to count one once
    /// its change is committed.
    pub fn isr_change_counter(&self, expand: bool) -> IntCounter {
        self.isr_changes
            .with_label_values(&[if expand { "expand" } else { "shrink" }])
    }

    /// One SASL authentication attempt, for the security layer to call.
    pub fn sasl_authentication(&self, mechanism: &str, ok: bool) {
        let mechanism = SASL_MECHANISMS
            .iter()
            .find(|m| m.eq_ignore_ascii_case(mechanism))
            .copied()
            .unwrap_or("other");
        let result = if ok { "success" } else { "failure" };
        self.sasl_authentications
            .with_label_values(&[mechanism, result])
            .inc();
    }

    /// The Prometheus text exposition of every metric, with state gauges refreshed from
    /// `broker` (log dirs, partitions, groups, lag) first.
    pub fn render(&self, broker: &Broker) -> Result<String, MetricsError> {
        let _one_scrape = self.scrape.lock().unwrap_or_else(|p| p.into_inner());
        self.state.refresh(broker, self.is_ready());
        self.forget_deleted_topics(broker);
        let families = self.registry.gather();
        let mut out = Vec::with_capacity(64 * 1024);
        TextEncoder::new()
            .encode(&families, &mut out)
            .map_err(|e| MetricsError::Encode(e.to_string()))?;
        String::from_utf8(out).map_err(|e| MetricsError::Encode(e.to_string()))
    }

    /// Drops per-topic series of topics that no longer exist, so a deleted topic stops
    /// being reported (and a recreated one starts from zero, as in Kafka).
    fn forget_deleted_topics(&self, broker: &Broker) {
        let image = broker.metadata.image();
        self.topic_series
            .forget_deleted(&self.topics, |t| image.topic(t).is_some());
    }
}

/// Times one request; records count and latencies when dropped.
pub struct RequestTimer<'a> {
    series: &'a ApiSeries,
    received: Option<Instant>,
    started: Instant,
}

impl Drop for RequestTimer<'_> {
    fn drop(&mut self) {
        let s = self.series;
        let done = Instant::now();
        s.requests.inc();
        s.processing_seconds.observe(seconds(done - self.started));
        if let Some(received) = self.received {
            s.queue_seconds
                .observe(seconds(self.started.saturating_duration_since(received)));
            s.total_seconds
                .observe(seconds(done.saturating_duration_since(received)));
        }
    }
}

/// Holds one connection in the open-connections gauge.
pub struct ConnectionGuard {
    gauge: prometheus::IntGauge,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Kafka's request names (`Produce`, `FetchSnapshot`...); `ApiKey`'s variant names are those.
fn api_label(api: ApiKey) -> &'static str {
    static NAMES: std::sync::OnceLock<std::collections::HashMap<i16, String>> =
        std::sync::OnceLock::new();
    let names = NAMES.get_or_init(|| {
        (0..=i16::from(u8::MAX))
            .filter_map(|k| ApiKey::try_from(k).ok().map(|a| (k, format!("{a:?}"))))
            .collect()
    });
    names
        .get(&(api as i16))
        .map(String::as_str)
        .unwrap_or("Unknown")
}

#[cfg(test)]
mod tests;
