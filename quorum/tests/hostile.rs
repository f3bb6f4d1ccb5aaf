//! Hostile bytes: the decoders never panic, and a live listener closes connections that send
//! garbage while it keeps serving everyone else.

mod common;

use std::time::Duration;

use common::*;
use proptest::prelude::*;
use strata_quorum::frame::{
    decode_frame, decode_record, encode_frame, encode_record, read_frame, Record, MAX_FRAME,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

proptest! {
    #[test]
    fn frame_decoder_survives_anything(bytes in proptest::collection::vec(any::<u8>(), 0..512), max in 0usize..1024) {
        if let Ok(Some((payload, consumed))) = decode_frame(&bytes, max) {
            prop_assert!(payload.len() <= max);
            prop_assert_eq!(consumed, payload.len() + 4);
            prop_assert!(consumed <= bytes.len());
        }
    }

    #[test]
    fn record_decoder_survives_anything(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Record::Complete { payload, consumed } = decode_record(&bytes) {
            prop_assert_eq!(consumed, payload.len() + 8);
        }
    }

    #[test]
    fn encodings_roundtrip_and_reject_damage(
        payload in proptest::collection::vec(any::<u8>(), 0..256),
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
    ) {
        let frame = encode_frame(&payload).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(decode_frame(&frame, MAX_FRAME), Ok(Some((&payload[..], frame.len()))));
        let short = frame.get(..cut.index(frame.len())).unwrap_or_default();
        prop_assert_eq!(decode_frame(short, MAX_FRAME), Ok(None));

        let mut rec = encode_record(&payload).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let ok = matches!(decode_record(&rec), Record::Complete { payload: p, .. } if p == &payload[..]);
        prop_assert!(ok);
        let short = rec.get(..cut.index(rec.len())).unwrap_or_default();
        prop_assert_eq!(decode_record(short), Record::Incomplete);
        // Any single flipped bit is caught (in the length: as a bad length or a short buffer).
        let at = flip.index(rec.len());
        if let Some(b) = rec.get_mut(at) {
            *b ^= 0x10;
        }
        let damaged_ok = matches!(decode_record(&rec), Record::Complete { .. });
        prop_assert!(!damaged_ok);
    }

    #[test]
    fn async_reader_survives_anything(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let rt = tokio::runtime::Builder::new_current_thread().build().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut input = &bytes[..];
        let res = rt.block_on(read_frame(&mut input, 64));
        if let Ok(Some(payload)) = res {
            prop_assert!(payload.len() <= 64);
        }
    }
}

/// Sends `bytes` and reports whether the server closed the connection within a deadline.
async fn closed_after(addr: &str, bytes: &[u8]) -> R<bool> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(bytes).await?;
    let mut buf = [0u8; 64];
    match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => Ok(true),
        Ok(Ok(_)) => Err(err("the server answered garbage")),
        Err(_) => Ok(false),
    }
}

fn frame(payload: &[u8]) -> R<Vec<u8>> {
    Ok(encode_frame(payload)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn live_listener_shrugs_off_garbage() -> R {
    let cluster = Cluster::new(1, 0)?;
    let nodes = cluster.start_voters().await?;
    let all: Vec<&Node> = nodes.iter().collect();
    agreed_leader(&all).await?;
    let n = nodes.first().ok_or_else(|| err("no node"))?;
    let addr = cluster.addrs.get(&1).ok_or_else(|| err("no addr"))?.clone();

    // Whole frames that are not requests, and a length beyond the limit: closed at once.
    let too_long = u32::try_from(MAX_FRAME + 1)?.to_be_bytes();
    let cases: Vec<Vec<u8>> = vec![
        frame(b"not json")?,
        frame(b"{\"Propose\":{}}")?,
        frame(b"{\"Vote\":{\"vote\":42}}")?,
        frame(b"[1,2,3]")?,
        frame(b"")?,
        frame(&[0xff; 100])?,
        too_long.to_vec(),
        vec![0xff; 8],
    ];
    for case in &cases {
        assert!(
            closed_after(&addr, case).await?,
            "connection closed after {case:?}"
        );
    }

    // Random bytes, truncated frames and abrupt disconnects, sent with no reply expected.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..50u32 {
        let mut s = TcpStream::connect(&addr).await?;
        let len = (i as usize * 37) % 300;
        let junk: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed.to_be_bytes().first().copied().unwrap_or_default()
            })
            .collect();
        s.write_all(&junk).await?;
        drop(s);
    }
    // A partial frame that then stalls does not block anyone else.
    let mut stalled = TcpStream::connect(&addr).await?;
    stalled.write_all(&[0, 0, 1, 0, b'{']).await?;

    // The node keeps serving: a well-formed request on the wire gets an answer...
    let mut s = TcpStream::connect(&addr).await?;
    s.write_all(&frame(br#"{"Propose":{"command":"over-the-wire"}}"#)?)
        .await?;
    let answer = tokio::time::timeout(Duration::from_secs(10), read_frame(&mut s, MAX_FRAME))
        .await??
        .ok_or_else(|| err("no answer"))?;
    let answer: serde_json::Value = serde_json::from_slice(&answer)?;
    assert!(
        answer.pointer("/Propose/Ok/index").is_some(),
        "answer: {answer}"
    );
    // ...and proposals still commit.
    let count =
        n.q.propose("after-garbage".to_string(), PROPOSE_DEADLINE)
            .await?;
    assert_eq!(count, 2);
    assert_eq!(n.sm.applied(), vec!["over-the-wire", "after-garbage"]);
    drop(stalled);

    // Oversized commands are refused before anything is sent or appended.
    let huge = "x".repeat(17 << 20);
    let res = n.q.propose(huge, PROPOSE_DEADLINE).await;
    assert!(
        matches!(res, Err(strata_quorum::QuorumError::Codec(_))),
        "{res:?}"
    );

    // A second node on the same directory is refused while the first runs.
    let second =
        strata_quorum::Quorum::start(cluster.config(1)?, std::sync::Arc::new(Strings::default()))
            .await;
    assert!(matches!(second, Err(strata_quorum::QuorumError::Config(_))));
    shutdown_all(&nodes).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configs_are_refused() -> R {
    let cluster = Cluster::new(1, 0)?;
    let mut c = cluster.config(1)?;
    c.listen_addr = "127.0.0.1:0".into();
    let res = strata_quorum::Quorum::start(c, std::sync::Arc::new(Strings::default())).await;
    assert!(matches!(res, Err(strata_quorum::QuorumError::Config(_))));
    let mut c = cluster.config(1)?;
    c.election_timeout_min_ms = 10;
    let res = strata_quorum::Quorum::start(c, std::sync::Arc::new(Strings::default())).await;
    assert!(matches!(res, Err(strata_quorum::QuorumError::Config(_))));
    Ok(())
}
