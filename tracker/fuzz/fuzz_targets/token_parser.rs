//! Any bytes as a tenant token or request target: parsing and verifying return, never panic, and
//! nothing but a token minted with the secret verifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracker::token;

const SECRET: &[u8] = b"fuzz-secret-0123456789";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = token::from_request_target(text);
    if let Ok(claims) = token::parse(text) {
        if claims.verify(SECRET, 0).is_ok() {
            let minted = token::mint(claims.tenant, SECRET, claims.expires, claims.swarm);
            assert_eq!(minted, text, "a token verified that was not minted with the secret");
        }
    }
});
