//! Reading a broker's Prometheus endpoint: one plain HTTP/1.1 exchange, and the exposition
//! as a map from series to value.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::Broker;

const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// One HTTP/1.1 exchange with `Connection: close`: (status, body). Panics (a failed test)
/// when the endpoint does not answer with a well-formed response.
pub fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT)
        .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    stream
        .set_read_timeout(Some(HTTP_TIMEOUT))
        .unwrap_or_else(|e| panic!("read timeout: {e}"));
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let mut raw = Vec::new();
    let _ = stream
        .read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("reading the answer to {method} {path}: {e}"));
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {text:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, body.to_owned())
}

/// The broker's metrics address, from its log.
pub fn metrics_addr(broker: &Broker) -> SocketAddr {
    broker.metrics_addr().unwrap_or_else(|| {
        panic!(
            "no 'metrics listening on' line in the broker log:\n{}",
            broker.log_contents()
        )
    })
}

/// The exposition as `name{label="v",...}` -> value; labels in the order the broker
/// prints them (sorted by name).
pub fn scrape(broker: &Broker) -> HashMap<String, f64> {
    let (status, body) = http(metrics_addr(broker), "GET", "/metrics");
    assert_eq!(status, 200, "GET /metrics: {body}");
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (key, value) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad line {l:?}"));
            let value = value
                .parse::<f64>()
                .unwrap_or_else(|e| panic!("bad value in {l:?}: {e}"));
            (key.to_owned(), value)
        })
        .collect()
}

/// A series' key as [`scrape`] lists it.
pub fn series_key(name: &str, labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return name.to_owned();
    }
    let mut labels = labels.to_vec();
    labels.sort();
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{name}{{{}}}", inner.join(","))
}

/// A series' value, 0 when absent (a counter nobody has touched yet).
pub fn series_value(series: &HashMap<String, f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
    series
        .get(&series_key(name, labels))
        .copied()
        .unwrap_or(0.0)
}
