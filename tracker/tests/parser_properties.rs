//! Property tests of the message parser: no input makes it panic, and valid announces survive
//! any byte values in their identifiers.

use proptest::prelude::*;
use serde_json::json;
use tracker::protocol::{ParseLimits, Request, parse};

const LIMITS: ParseLimits = ParseLimits {
    max_offers: 10,
    max_list: 64,
};

fn binary_string(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,400}") {
        let _ = parse(&text, LIMITS);
    }

    #[test]
    fn arbitrary_json_shapes_never_panic(
        action in prop_oneof![Just("announce".to_string()), Just("scrape".to_string()), Just("hash_report".to_string()), Just("hash_query".to_string()), ".{0,8}"],
        info_hash in prop::collection::vec(any::<char>(), 0..24),
        numwant in any::<i64>(),
        offers in prop::collection::vec((".{0,30}", prop::collection::vec(any::<u8>(), 0..22)), 0..12),
        answer in prop::option::of(".{0,20}"),
    ) {
        let info_hash: String = info_hash.into_iter().collect();
        let offers: Vec<_> = offers
            .into_iter()
            .map(|(sdp, id)| json!({"offer": {"type": "offer", "sdp": sdp}, "offer_id": binary_string(&id)}))
            .collect();
        let mut message = json!({"action": action, "info_hash": info_hash, "peer_id": info_hash,
                                 "numwant": numwant, "offers": offers});
        if let Some(answer) = answer {
            message["answer"] = json!(answer);
        }
        let _ = parse(&message.to_string(), LIMITS);
    }

    #[test]
    fn every_byte_value_in_ids_is_accepted(hash in prop::array::uniform20(any::<u8>()), peer in prop::array::uniform20(any::<u8>())) {
        let message = json!({"action": "announce", "info_hash": binary_string(&hash), "peer_id": binary_string(&peer)});
        match parse(&message.to_string(), LIMITS) {
            Ok(Request::Announce(announce)) => {
                prop_assert_eq!(announce.info_hash.0, hash);
                prop_assert_eq!(announce.peer_id.0, peer);
            }
            other => prop_assert!(false, "unexpected {:?}", other),
        }
    }
}
