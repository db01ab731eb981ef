//! Any bytes as a client message: the parser and the failure-reply sniffer return, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracker::protocol::{self, ParseLimits};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let limits = ParseLimits {
        max_offers: 10,
        max_list: 64,
    };
    if let Ok(mut request) = protocol::parse(text, limits) {
        request.for_each_info_hash(|info_hash| info_hash.0[0] ^= 1);
    }
    let _ = protocol::sniff(text);
});
