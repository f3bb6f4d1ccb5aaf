//! Feeds arbitrary record bytes to the produce path's record checks, behind a sound batch
//! header whose codec, record count and timestamp type come from the input's first bytes.
//! Compressed inputs go through the real decompressors. Any panic, abort or out-of-memory is
//! a bug: hostile records must only be refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_protocol::record_batch::{check_records, RecordBatchHeader, RecordRules};

fuzz_target!(|data: &[u8]| {
    let Some((&[codec, flags, count_hi, count_lo], records)) = data.split_first_chunk::<4>()
    else {
        return;
    };
    let count = i32::from(u16::from_be_bytes([count_hi, count_lo])) + 1;
    let mut batch = Vec::with_capacity(61 + records.len());
    batch.extend(0i64.to_be_bytes()); // base offset
    batch.extend(((49 + records.len()) as i32).to_be_bytes()); // batch length
    batch.extend((-1i32).to_be_bytes()); // partition leader epoch
    batch.push(2); // magic
    batch.extend(0u32.to_be_bytes()); // crc: not checked here
    let attributes = i16::from(codec & 0x07) | i16::from(flags & 0x08);
    batch.extend(attributes.to_be_bytes());
    batch.extend((count - 1).to_be_bytes()); // last offset delta
    batch.extend(1_700_000_000_000i64.to_be_bytes()); // base timestamp
    batch.extend(1_700_000_000_000i64.to_be_bytes()); // max timestamp
    batch.extend((-1i64).to_be_bytes()); // producer id
    batch.extend((-1i16).to_be_bytes()); // producer epoch
    batch.extend((-1i32).to_be_bytes()); // base sequence
    batch.extend(count.to_be_bytes());
    batch.extend(records);
    let Ok(header) = RecordBatchHeader::parse(&batch) else {
        return;
    };
    let rules = RecordRules {
        log_append_time: flags & 0x01 != 0,
        require_keys: flags & 0x02 != 0,
        timestamp_before_max_ms: if flags & 0x04 != 0 { 1000 } else { i64::MAX },
        timestamp_after_max_ms: if flags & 0x04 != 0 { 1000 } else { i64::MAX },
        ..RecordRules::lenient(1_700_000_000_500)
    };
    let _ = check_records(&batch, &header, &rules);
});
