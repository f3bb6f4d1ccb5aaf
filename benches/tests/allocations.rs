//! The broker's hot paths do not allocate per record: the same number of Produce requests
//! and Fetches costs the broker the same number of allocations whether each batch carries 10
//! records or 4,000, and no more bytes than the requests themselves bring.
//!
//! A counting global allocator counts only on the broker's runtime threads (flagged when the
//! runtime starts them); the client runs on the test's own thread, so its allocations are
//! not counted.
#![allow(clippy::unwrap_used)]
// A global allocator is `unsafe` by definition; this one only counts and forwards to
// `System`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use strata_benches::batch::BatchTemplate;
use strata_benches::client::KafkaConnection;
use strata_benches::inproc::InProcessBroker;
use strata_benches::ops::{self, Versions};
use strata_benches::pipeline::{self, FetchLoad, ProduceLoad};

struct CountingOnBrokerThreads;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static ALLOCATED_BYTES: AtomicU64 = AtomicU64::new(0);

thread_local! {
    // `const` and `Cell<bool>`: no lazy initialisation and no destructor, so reading it
    // inside the allocator cannot itself allocate.
    static BROKER_THREAD: Cell<bool> = const { Cell::new(false) };
}

fn count(size: usize) {
    if BROKER_THREAD.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        ALLOCATED_BYTES.fetch_add(size as u64, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for CountingOnBrokerThreads {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingOnBrokerThreads = CountingOnBrokerThreads;

/// Allocations and bytes the broker's threads made while `f` ran.
#[derive(Debug, Clone, Copy)]
struct Allocated {
    count: u64,
    bytes: u64,
}

async fn measure<F: std::future::Future<Output = ()>>(f: F) -> Allocated {
    let (count, bytes) = (
        ALLOCATIONS.load(Ordering::SeqCst),
        ALLOCATED_BYTES.load(Ordering::SeqCst),
    );
    f.await;
    Allocated {
        count: ALLOCATIONS.load(Ordering::SeqCst) - count,
        bytes: ALLOCATED_BYTES.load(Ordering::SeqCst) - bytes,
    }
}

const REQUESTS: u64 = 200;
const RECORD_SIZE: usize = 100;

fn broker() -> (Arc<tokio::runtime::Runtime>, InProcessBroker) {
    let runtime = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .on_thread_start(|| BROKER_THREAD.with(|flag| flag.set(true)))
            .build()
            .unwrap(),
    );
    let broker = InProcessBroker::start(runtime.clone(), &[]).unwrap();
    (runtime, broker)
}

/// Produces `REQUESTS` batches of `records` records each (one in flight, acks=1) to a new
/// one-partition topic, then fetches them back one batch a Fetch; returns what the broker
/// allocated for each half.
async fn produce_then_fetch(
    conn: &mut KafkaConnection,
    versions: &Versions,
    topic: &str,
    records: usize,
) -> Run {
    ops::create_topic(conn, versions, topic, 1).await.unwrap();
    let batch = BatchTemplate::new(records, RECORD_SIZE, 1_700_000_000_000).unwrap();
    let batch_len = batch.len();
    let load = ProduceLoad {
        topic: topic.into(),
        partitions: vec![0],
        batch: batch.to_bytes(),
        records_per_batch: records as u64,
        acks: 1,
        version: versions.produce,
        requests: REQUESTS,
        in_flight: 1,
        throughput: None,
        idempotence: None,
    };
    // One request first, so that what the partition sets up once (its segment, its index
    // buffers, the connection's buffers) is not counted against either load.
    let warm_up = ProduceLoad {
        requests: 1,
        ..load.clone()
    };
    pipeline::produce(conn, &warm_up, |_, _| {}).await.unwrap();
    let mut acknowledged = 0;
    let produced = measure(async {
        pipeline::produce(conn, &load, |_, n| acknowledged += n)
            .await
            .unwrap();
    })
    .await;
    assert_eq!(acknowledged, REQUESTS * records as u64);

    // Each Fetch asks for one batch's bytes, so both loads take the same number of Fetches.
    let total = (REQUESTS + 1) * records as u64;
    let fetch = FetchLoad {
        topic: topic.into(),
        offsets: vec![(0, 0)],
        version: versions.fetch,
        max_wait_ms: 100,
        max_bytes: batch_len as i32,
        partition_max_bytes: batch_len as i32,
        records: total,
        idle_timeout: Duration::from_secs(5),
    };
    let mut fetches = 0;
    let fetched = measure(async {
        let got = pipeline::consume(conn, &fetch, |_, _, _| fetches += 1)
            .await
            .unwrap();
        assert_eq!(got, total);
    })
    .await;
    Run {
        batch_len,
        produce: produced,
        fetch: fetched,
        fetches,
    }
}

/// What one `produce_then_fetch` cost the broker.
#[derive(Debug)]
struct Run {
    batch_len: usize,
    produce: Allocated,
    fetch: Allocated,
    fetches: usize,
}

/// The counter sees the broker's threads: a task on its runtime that allocates is counted.
async fn counter_sees_the_runtime(runtime: &tokio::runtime::Runtime) {
    let seen = measure(async {
        let task = runtime.spawn(async { std::hint::black_box(vec![1u8; 4096]).len() });
        assert_eq!(task.await.unwrap(), 4096);
    })
    .await;
    assert!(seen.count >= 1 && seen.bytes >= 4096, "{seen:?}");
}

#[test]
fn produce_and_fetch_allocate_per_request_not_per_record() {
    let (runtime, broker) = broker();
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    client.block_on(async {
        counter_sees_the_runtime(&runtime).await;
        let mut conn = KafkaConnection::connect(&broker.addr, "alloc-test")
            .await
            .unwrap();
        let versions = ops::negotiate(&mut conn).await.unwrap();
        let few = produce_then_fetch(&mut conn, &versions, "few", 10).await;
        let many = produce_then_fetch(&mut conn, &versions, "many", 4000).await;
        eprintln!("10 records a batch: {few:?}");
        eprintln!("4000 records a batch: {many:?}");
        // 3,990 more records a request: a per-record allocation would add 3,990 a request.
        let per_request = |a: u64, b: u64, n: u64| (a.saturating_sub(b)) as f64 / n as f64;
        let produce_growth = per_request(many.produce.count, few.produce.count, REQUESTS);
        assert!(
            produce_growth <= 2.0,
            "produce: {produce_growth} more allocations a request with 400x the records"
        );
        // A large request's bytes arrive in a first chunk (64 KiB), then a buffer grown to
        // the whole frame: a batch and a chunk, plus the request's small pieces. A copy of
        // the records would add a batch more.
        let batch = many.batch_len as u64;
        let per_produce = many.produce.bytes / REQUESTS;
        assert!(
            per_produce <= batch + 128 * 1024,
            "produce: {per_produce} bytes allocated a request of a {batch}-byte batch"
        );
        let batch_growth = (many.batch_len - few.batch_len) as f64;
        // Fetch: records leave from the log's mapping or by sendfile, never through the heap.
        assert_eq!(few.fetches, many.fetches);
        let fetches = many.fetches as u64;
        let fetch_growth = per_request(many.fetch.count, few.fetch.count, fetches);
        assert!(
            fetch_growth <= 2.0,
            "fetch: {fetch_growth} more allocations a fetch with 400x the records"
        );
        let fetch_bytes_growth = per_request(many.fetch.bytes, few.fetch.bytes, fetches);
        assert!(
            fetch_bytes_growth <= 0.1 * batch_growth,
            "fetch: {fetch_bytes_growth} more bytes allocated a fetch for {batch_growth} more \
             bytes of records"
        );
    });
}
