//! Property: any sequence of appends, rolls, flushes, crash-reopens, clean reopens and
//! truncations keeps offsets dense and every surviving batch's bytes intact.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use common::*;
use proptest::prelude::*;
use strata_storage::Log;

#[derive(Debug, Clone)]
enum Op {
    Append { records: u8, len: u16 },
    Roll,
    Flush,
    CrashReopen,
    CleanReopen,
    Truncate(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1u8..5, 1u16..900).prop_map(|(records, len)| Op::Append { records, len }),
        1 => Just(Op::Roll),
        1 => Just(Op::Flush),
        1 => Just(Op::CrashReopen),
        1 => Just(Op::CleanReopen),
        1 => any::<u8>().prop_map(Op::Truncate),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_keep_offsets_dense_and_data_intact(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Some(open(dir.path(), small_config(), 0));
        // Model: (base offset, payload) of every batch the log should hold.
        let mut model: Vec<(i64, Vec<u8>)> = Vec::new();
        let mut tag = 0u64;
        for op in ops {
            let l: &mut Log = log.as_mut().unwrap();
            match op {
                Op::Append { records, len } => {
                    tag += 1;
                    let value = {
                        let mut v = tag.to_be_bytes().to_vec();
                        v.resize(usize::from(len).max(8), tag as u8);
                        v
                    };
                    let values: Vec<&[u8]> = (0..records).map(|_| value.as_slice()).collect();
                    let b = batch(&values);
                    let info = l.append(&b, 0, 0).unwrap();
                    prop_assert_eq!(info.first_offset, l.log_end_offset() - i64::from(records));
                    model.push((info.first_offset, b[61..].to_vec()));
                }
                Op::Roll => l.roll(0).unwrap(),
                Op::Flush => l.flush().unwrap(),
                Op::CrashReopen => {
                    let rp = l.recovery_point();
                    drop(log.take());
                    log = Some(open(dir.path(), small_config(), rp));
                }
                Op::CleanReopen => {
                    let l = log.take().unwrap();
                    let leo = l.log_end_offset();
                    l.close().unwrap();
                    let reopened = open(dir.path(), small_config(), leo);
                    prop_assert_eq!(reopened.recovery_report().truncated_bytes, 0);
                    log = Some(reopened);
                }
                Op::Truncate(k) => {
                    if !model.is_empty() {
                        let i = usize::from(k) % model.len();
                        let target = model[i].0;
                        l.truncate_to(target).unwrap();
                        model.truncate(i);
                        prop_assert_eq!(l.log_end_offset(), target);
                    }
                }
            }
            let l = log.as_ref().unwrap();
            let got = read_all(l, l.log_start_offset());
            prop_assert_eq!(got.len(), model.len());
            let mut next = 0;
            for ((h, bytes), (base, data)) in got.iter().zip(&model) {
                prop_assert_eq!(h.base_offset, next, "offsets must be dense");
                prop_assert_eq!(h.base_offset, *base);
                prop_assert_eq!(&bytes[61..], data.as_slice());
                next = h.last_offset() + 1;
            }
            prop_assert_eq!(next, l.log_end_offset());
        }
    }
}
