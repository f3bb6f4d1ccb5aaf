//! Feeds arbitrary response frames to the response guard, as strata-perf's client reads them
//! from a broker: the first byte picks the API, the second its version (within the guard's
//! range), the rest is the frame (header and body, no size prefix). Whatever the guard accepts
//! goes to kafka-protocol's decoders, which must return without a panic, an abort or an
//! out-of-memory; the consumer-protocol messages inside group responses get the same.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use strata_protocol::guard::{self, ConsumerProtocol};
use strata_protocol::kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, ResponseHeader, ResponseKind,
};
use strata_protocol::kafka_protocol::protocol::Decodable;

fuzz_target!(|data: &[u8]| {
    let Some((&[selector, version_byte], frame)) = data.split_first_chunk::<2>() else {
        return;
    };
    // Every shaped response, then the two consumer-protocol messages.
    let shaped = guard::shaped_responses().count();
    let which = usize::from(selector) % (shaped + 2);
    if let Some(api_key) = guard::shaped_responses().nth(which) {
        let Some((min, max)) = guard::response_versions(api_key) else {
            return;
        };
        let version = min + i16::from(version_byte) % (max - min + 1);
        if guard::check_response(frame, api_key, version).is_ok() {
            let mut buf = Bytes::copy_from_slice(frame);
            let header = ResponseHeader::decode(&mut buf, api_key.response_header_version(version));
            if header.is_ok() {
                let _ = ResponseKind::decode(api_key, &mut buf, version);
            }
        }
        return;
    }
    // The consumer protocol: a version (clamped as strata-perf clamps it), then the message.
    let message = if which == shaped {
        ConsumerProtocol::Subscription
    } else {
        ConsumerProtocol::Assignment
    };
    let version = i16::from(version_byte % 4);
    if guard::check_consumer_protocol(frame, message, version).is_ok() {
        let mut buf = Bytes::copy_from_slice(frame);
        match message {
            ConsumerProtocol::Subscription => {
                let _ = ConsumerProtocolSubscription::decode(&mut buf, version);
            }
            _ => {
                let _ = ConsumerProtocolAssignment::decode(&mut buf, version);
            }
        }
    }
});
