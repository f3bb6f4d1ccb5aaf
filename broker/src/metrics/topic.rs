//! Per-topic series (messages and bytes in and out, produce and fetch requests), resolved by
//! label once per topic instead of four times for every partition of every request: a
//! labelled lookup hashes the labels, takes the vec's lock and clones the handle.
//!
//! Each handle is created on its first use, so a topic only ever produced to shows no fetch
//! series, as before the cache. Scrapes drop the entries of deleted topics together with
//! their series (see `BrokerMetrics::forget_deleted_topics`).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use prometheus::{IntCounter, IntCounterVec, Registry};

use super::{counter, MetricsError};

/// The vecs a topic's series come from.
pub(super) struct TopicVecs {
    pub(super) messages_in: IntCounterVec,
    pub(super) bytes_in: IntCounterVec,
    pub(super) bytes_out: IntCounterVec,
    /// Labelled by topic and request (`produce` or `fetch`).
    pub(super) requests: IntCounterVec,
    pub(super) failed_requests: IntCounterVec,
}

impl TopicVecs {
    pub(super) fn register(r: &Registry) -> Result<Self, MetricsError> {
        Ok(TopicVecs {
            messages_in: counter(
                r,
                "strata_topic_messages_in_total",
                "Records appended to the topic's partitions on this broker.",
                &["topic"],
            )?,
            bytes_in: counter(
                r,
                "strata_topic_bytes_in_total",
                "Record-batch bytes appended to the topic by producers.",
                &["topic"],
            )?,
            bytes_out: counter(
                r,
                "strata_topic_bytes_out_total",
                "Record-batch bytes of the topic returned to fetchers.",
                &["topic"],
            )?,
            requests: counter(
                r,
                "strata_topic_requests_total",
                "Produce or fetch requests for the topic, counted per partition (as Kafka's TotalProduceRequestsPerSec).",
                &["topic", "request"],
            )?,
            failed_requests: counter(
                r,
                "strata_topic_failed_requests_total",
                "Produce or fetch partition requests for the topic answered with an error.",
                &["topic", "request"],
            )?,
        })
    }

    /// Removes every series whose topic `exists` rejects.
    fn remove_series(&self, exists: &impl Fn(&str) -> bool) {
        let vecs = [
            &self.messages_in,
            &self.bytes_in,
            &self.bytes_out,
            &self.requests,
            &self.failed_requests,
        ];
        for vec in vecs {
            for family in prometheus::core::Collector::collect(vec) {
                for metric in family.get_metric() {
                    // By name: a gathered metric's labels are sorted, not in declared order.
                    let labels: HashMap<&str, &str> = metric
                        .get_label()
                        .iter()
                        .map(|l| (l.name(), l.value()))
                        .collect();
                    let topic = labels.get("topic").copied();
                    if topic.is_some_and(|t| !exists(t)) {
                        let _ = vec.remove(&labels);
                    }
                }
            }
        }
    }
}

/// One topic's handles.
#[derive(Default)]
pub(super) struct TopicSeries {
    produce: OnceLock<RequestSeries>,
    fetch: OnceLock<RequestSeries>,
    messages_in: OnceLock<IntCounter>,
    bytes_in: OnceLock<IntCounter>,
    bytes_out: OnceLock<IntCounter>,
}

/// A request kind's counters for one topic.
struct RequestSeries {
    requests: IntCounter,
    failed: IntCounter,
}

impl RequestSeries {
    fn new(vecs: &TopicVecs, topic: &str, request: &str) -> Self {
        let labels = [topic, request];
        RequestSeries {
            requests: vecs.requests.with_label_values(&labels),
            // Created with the request count, so the failure series exists (at 0) for
            // dashboards before the first failure.
            failed: vecs.failed_requests.with_label_values(&labels),
        }
    }
}

/// Topic name to its series.
#[derive(Default)]
pub(super) struct TopicSeriesCache {
    by_topic: RwLock<HashMap<String, Arc<TopicSeries>>>,
}

impl TopicSeriesCache {
    fn get(&self, topic: &str) -> Arc<TopicSeries> {
        if let Some(series) = self
            .by_topic
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(topic)
        {
            return series.clone();
        }
        self.by_topic
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(topic.to_owned())
            .or_default()
            .clone()
    }

    /// Drops the series and the cached handles of every topic `exists` rejects, with lookups
    /// held off in between: a request cannot cache a handle to a series that is about to be
    /// removed, which would leave a recreated topic counting into a series no scrape sees.
    pub(super) fn forget_deleted(&self, vecs: &TopicVecs, exists: impl Fn(&str) -> bool) {
        let mut by_topic = self.by_topic.write().unwrap_or_else(|p| p.into_inner());
        vecs.remove_series(&exists);
        by_topic.retain(|topic, _| exists(topic));
    }

    /// One produce partition result: `Ok((records, bytes))` appended, or an error.
    pub(super) fn produce(&self, vecs: &TopicVecs, topic: &str, outcome: Result<(u64, u64), i16>) {
        let series = self.get(topic);
        let produce = series
            .produce
            .get_or_init(|| RequestSeries::new(vecs, topic, "produce"));
        produce.requests.inc();
        match outcome {
            Ok((records, bytes)) => {
                series
                    .messages_in
                    .get_or_init(|| vecs.messages_in.with_label_values(&[topic]))
                    .inc_by(records);
                series
                    .bytes_in
                    .get_or_init(|| vecs.bytes_in.with_label_values(&[topic]))
                    .inc_by(bytes);
            }
            Err(_) => produce.failed.inc(),
        }
    }

    /// One fetch partition result: the error code sent and the record bytes returned.
    pub(super) fn fetch(&self, vecs: &TopicVecs, topic: &str, read: FetchedPartitions) {
        let series = self.get(topic);
        let fetch = series
            .fetch
            .get_or_init(|| RequestSeries::new(vecs, topic, "fetch"));
        fetch.requests.inc_by(read.partitions);
        if read.failed > 0 {
            fetch.failed.inc_by(read.failed);
        }
        let bytes = read.bytes;
        if bytes > 0 {
            series
                .bytes_out
                .get_or_init(|| vecs.bytes_out.with_label_values(&[topic]))
                .inc_by(bytes);
        }
    }
}

/// What one fetch read from one topic's partitions, for its metrics (counted per partition, as
/// Kafka's TotalFetchRequestsPerSec).
#[derive(Debug, Clone, Copy, Default)]
pub struct FetchedPartitions {
    pub partitions: u64,
    pub failed: u64,
    pub bytes: u64,
}
