//! Hostile responses, as a client of an arbitrary broker sees them: a count claiming 2^31 - 1
//! elements is refused by the guard before anything is allocated, and what the guard lets
//! through decodes into memory proportional to the frame.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
// A global allocator is `unsafe` by definition; this one only counts and forwards to `System`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::{BufMut, Bytes, BytesMut};
use strata_protocol::guard::{check_response, GuardError};
use strata_protocol::kafka_protocol::messages::{ApiKey, ResponseKind};

struct CountingOnThisThread;

thread_local! {
    // `const` and `Cell`: no lazy initialisation and no destructor, so touching them inside
    // the allocator cannot itself allocate. Only the measuring thread counts, so tests
    // running in parallel do not disturb each other.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static BYTES: Cell<u64> = const { Cell::new(0) };
}

fn count(size: usize) {
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        let _ = BYTES.try_with(|c| c.set(c.get() + size as u64));
    }
}

unsafe impl GlobalAlloc for CountingOnThisThread {
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
static ALLOCATOR: CountingOnThisThread = CountingOnThisThread;

/// Runs `f`, returning its result with the allocations and bytes it made on this thread.
fn measure<T>(f: impl FnOnce() -> T) -> (T, u64, u64) {
    ALLOCATIONS.with(|c| c.set(0));
    BYTES.with(|c| c.set(0));
    COUNTING.with(|c| c.set(true));
    let out = f();
    COUNTING.with(|c| c.set(false));
    (out, ALLOCATIONS.with(Cell::get), BYTES.with(Cell::get))
}

/// A response frame: correlation id, a tagged-field section when `flexible_header`, `body`.
fn frame(flexible_header: bool, body: &[u8]) -> Bytes {
    let mut frame = BytesMut::new();
    frame.put_i32(7);
    if flexible_header {
        frame.put_u8(0);
    }
    frame.extend_from_slice(body);
    frame.freeze()
}

#[test]
fn responses_claiming_i32_max_elements_are_refused_without_allocating() {
    // The codec would reserve 2^31 - 1 elements for each of these before reading one.
    let huge_compact = [0x80, 0x80, 0x80, 0x80, 0x08]; // varint 2^31: i32::MAX + 1
    let cases = [
        // ApiVersions v0 (what strata-perf asks first): error_code, api_keys.
        (
            ApiKey::ApiVersions,
            0,
            frame(false, &[0, 0, 0x7f, 0xff, 0xff, 0xff]),
        ),
        // Metadata v12: throttle_time_ms, brokers as a compact array.
        (
            ApiKey::Metadata,
            12,
            frame(true, &[&[0, 0, 0, 0][..], &huge_compact].concat()),
        ),
        // JoinGroup v7: throttle, error, generation, protocol type and name, leader, member
        // id (all null), members.
        (
            ApiKey::JoinGroup,
            7,
            frame(true, &[&[0; 10][..], &[0, 0, 0, 0], &huge_compact].concat()),
        ),
    ];
    for (api_key, version, frame) in cases {
        let (verdict, allocations, _) = measure(|| check_response(&frame, api_key, version));
        assert!(
            matches!(
                verdict,
                Err(GuardError::ArrayTooLong {
                    count: 0x7fff_ffff,
                    ..
                })
            ),
            "{api_key:?} v{version}: {verdict:?}"
        );
        assert_eq!(
            allocations, 0,
            "{api_key:?} v{version}: the guard allocated"
        );
    }
}

#[test]
fn what_the_guard_accepts_decodes_into_memory_proportional_to_the_frame() {
    // JoinGroup v7 members of four bytes each (empty member id, null instance id, empty
    // metadata, no tags): the cheapest elements on the wire for the largest struct the codec
    // builds among strata-perf's responses.
    let members = 100_000u32;
    let mut body = BytesMut::new();
    body.extend_from_slice(&[0; 10]); // throttle, error code, generation
    body.extend_from_slice(&[0, 0, 1, 1]); // protocol type and name null, leader and member id ""
    let mut n = members + 1;
    while n >= 0x80 {
        body.put_u8((n as u8) | 0x80);
        n >>= 7;
    }
    body.put_u8(n as u8);
    for _ in 0..members {
        body.extend_from_slice(&[1, 0, 1, 0]);
    }
    body.put_u8(0); // the response's own tagged fields
    let frame = frame(true, &body);
    check_response(&frame, ApiKey::JoinGroup, 7).unwrap();

    let (decoded, _, bytes) = measure(|| {
        let mut rest = frame.slice(5..);
        ResponseKind::decode(ApiKey::JoinGroup, &mut rest, 7)
    });
    let ResponseKind::JoinGroup(decoded) = decoded.unwrap() else {
        panic!("expected a JoinGroup response");
    };
    assert_eq!(decoded.members.len(), members as usize);
    let ratio = bytes as f64 / frame.len() as f64;
    // The guard keeps counts honest, not structs small: a 4-byte member becomes a 120-byte
    // struct (30x when measured). A client's memory bound is this factor times its frame limit.
    assert!(ratio < 40.0, "decoding took {ratio:.1}x the frame's bytes");
}
