//! Feeds arbitrary frames to `decode_request` (no size prefix, as the network layer passes
//! them). Any panic, abort or out-of-memory is a bug: hostile bytes must only yield errors.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let frame = bytes::Bytes::copy_from_slice(data);
    if let Ok(request) = strata_protocol::decode_request(frame) {
        // Whatever decodes must re-encode without panicking too.
        let mut out = bytes::BytesMut::new();
        let _ = request.body.encode(&mut out, request.api_version);
    }
    let _ = strata_protocol::record_batch::validate_produce_records(data, 1 << 20);
});
