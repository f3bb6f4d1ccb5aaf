//! Waiting on conditions with deadlines: every wait in the suite goes through here, so a
//! hung broker or client turns into a failed test with a message, never a hung run.

use std::time::{Duration, Instant};

/// How often a condition is re-checked while waiting on it.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Polls `condition` until it returns `Some(value)` or `timeout` passes.
/// Returns `None` on timeout so the caller can say what it was waiting for.
pub fn poll_until<T>(timeout: Duration, mut condition: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = condition() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Polls `condition` until it holds; panics naming `what` when `timeout` passes first.
pub fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    if poll_until(timeout, || condition().then_some(())).is_none() {
        panic!("timed out after {timeout:?} waiting until {what}");
    }
}
