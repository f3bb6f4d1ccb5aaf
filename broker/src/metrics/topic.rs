//! Per-topic series (messages and bytes in and out, produce and fetch requests), resolved by
//! label once per topic instead of four times for every partition of every request: a
//! labelled lookup hashes the labels, takes the vec's lock and clones the handle.
//!
//! Each handle is created on its first use, so a topic only ever produced to shows no fetch
//! series, as before the cache. Scrapes drop the entries of deleted topics together with
//! their series (see `BrokerMetrics::forget_deleted_topics`).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use prometheus::{IntCounter, IntCounterVec};

/// The vecs a topic's series come from.
pub(super) struct TopicVecs {
    pub(super) messages_in: IntCounterVec,
    pub(super) bytes_in: IntCounterVec,
    pub(super) bytes_out: IntCounterVec,
    /// Labelled by topic and request (`produce` or `fetch`).
    pub(super) requests: IntCounterVec,
    pub(super) failed_requests: IntCounterVec,
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

    /// Runs `remove_series` (which drops deleted topics' series from the vecs) and forgets
    /// the handles of every topic `keep` rejects, with lookups held off in between: a
    /// request cannot cache a handle to a series that is about to be removed, which would
    /// leave a recreated topic counting into a series no scrape sees.
    pub(super) fn forget(&self, remove_series: impl FnOnce(), mut keep: impl FnMut(&str) -> bool) {
        let mut by_topic = self.by_topic.write().unwrap_or_else(|p| p.into_inner());
        remove_series();
        by_topic.retain(|topic, _| keep(topic));
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
    pub(super) fn fetch(&self, vecs: &TopicVecs, topic: &str, error_code: i16, bytes: u64) {
        let series = self.get(topic);
        let fetch = series
            .fetch
            .get_or_init(|| RequestSeries::new(vecs, topic, "fetch"));
        fetch.requests.inc();
        if error_code != 0 {
            fetch.failed.inc();
        }
        if bytes > 0 {
            series
                .bytes_out
                .get_or_init(|| vecs.bytes_out.with_label_values(&[topic]))
                .inc_by(bytes);
        }
    }
}
