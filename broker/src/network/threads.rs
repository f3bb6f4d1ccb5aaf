//! Connection threads (`strata.connection.threads` > 0): each runs a runtime of its own with
//! one worker, and every connection is pinned to one of them, the one with the fewest open
//! connections when it is accepted. A connection's reads, handling and writes then stay on one
//! thread: no work-stealing hand-offs between the shared runtime's workers, which on the
//! tailing-consumer load were most of the broker's own wake-ups (benches/README.md). The
//! worker is a multi-thread runtime's so that handlers may still `block_in_place`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

struct ConnectionThread {
    handle: Handle,
    /// Connections open on this thread.
    open: Arc<AtomicUsize>,
}

pub struct ConnectionThreads {
    threads: Vec<ConnectionThread>,
    stops: Vec<oneshot::Sender<()>>,
    joins: Vec<JoinHandle<()>>,
}

/// A connection's place on a thread: the thread's count goes down when it is dropped.
pub struct Seat {
    open: Arc<AtomicUsize>,
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ConnectionThreads {
    /// Starts `n` threads (at least one).
    pub fn start(n: usize) -> std::io::Result<Self> {
        let mut pool = ConnectionThreads {
            threads: Vec::new(),
            stops: Vec::new(),
            joins: Vec::new(),
        };
        for i in 0..n.max(1) {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name(format!("strata-conn-{i}"))
                .enable_all()
                .build()?;
            let (stop, stopped) = oneshot::channel::<()>();
            pool.threads.push(ConnectionThread {
                handle: runtime.handle().clone(),
                open: Arc::new(AtomicUsize::new(0)),
            });
            pool.stops.push(stop);
            // The runtime lives as long as this thread, which only waits for the stop.
            pool.joins.push(
                std::thread::Builder::new()
                    .name(format!("strata-conn-{i}-rt"))
                    .spawn(move || {
                        runtime.block_on(async {
                            let _ = stopped.await;
                        });
                    })?,
            );
        }
        Ok(pool)
    }

    /// The runtime with the fewest open connections (the first of equals), and a seat on it.
    pub fn assign(&self) -> Option<(Handle, Seat)> {
        let thread = self
            .threads
            .iter()
            .min_by_key(|t| t.open.load(Ordering::Relaxed))?;
        thread.open.fetch_add(1, Ordering::Relaxed);
        Some((
            thread.handle.clone(),
            Seat {
                open: thread.open.clone(),
            },
        ))
    }

    /// Stops the threads once no connection runs on them any more (the caller waited for
    /// that); a task still there is dropped.
    pub fn stop(self) {
        drop(self.stops);
        for join in self.joins {
            let _ = join.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_go_to_the_least_busy_thread() {
        let pool = ConnectionThreads::start(2).unwrap();
        let (_, a) = pool.assign().unwrap();
        let (_, b) = pool.assign().unwrap();
        let (_, c) = pool.assign().unwrap();
        let counts = || -> Vec<usize> {
            pool.threads
                .iter()
                .map(|t| t.open.load(Ordering::Relaxed))
                .collect()
        };
        assert_eq!(counts(), [2, 1]);
        drop(a);
        drop(c);
        assert_eq!(counts(), [0, 1]);
        // A short-lived connection (a client's bootstrap) closed: the next one goes there.
        let (handle, _d) = pool.assign().unwrap();
        assert_eq!(counts(), [1, 1]);
        assert_eq!(handle.block_on(async { 7 }), 7);
        drop(b);
        pool.stop();
    }
}
