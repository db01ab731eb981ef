//! Tenant tokens: what a client puts in the announce URL (`/?token=...`) to prove which tenant
//! it belongs to.
//!
//! A token is `v1.<tenant>.<expires>.<swarm>.<signature>`: the tenant id, the expiry in Unix
//! seconds, an optional swarm scope (the info hash as 40 hex digits, or empty for every swarm),
//! and the lowercase hex HMAC-SHA256, keyed with the tenant's secret, of everything before the
//! last dot. A customer's backend mints one with any HMAC library, e.g.
//! `printf 'v1.acme.1767225600.' | openssl dgst -sha256 -hmac "$SECRET"`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::id::Id20;

/// The version prefix of every token.
const VERSION: &str = "v1";
/// Longest token accepted (a scoped token with a 64-character tenant id is about 200 bytes).
pub const MAX_TOKEN_LEN: usize = 512;
/// Longest tenant id.
pub const MAX_TENANT_ID_LEN: usize = 64;

/// What a token claims, before its signature is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims<'a> {
    /// The tenant id.
    pub tenant: &'a str,
    /// Expiry, Unix seconds.
    pub expires: u64,
    /// The only swarm the token may be used for, if any.
    pub swarm: Option<Id20>,
    /// The signed part of the token.
    signed: &'a str,
    /// The signature's bytes.
    signature: [u8; 32],
}

/// Why a token is not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a token of this format.
    #[error("malformed token")]
    Malformed,
    /// The signature does not match the tenant's secret.
    #[error("invalid token signature")]
    Forged,
    /// Past its expiry.
    #[error("token expired")]
    Expired,
}

/// Whether `id` is a valid tenant id: 1 to 64 ASCII letters, digits, `-` or `_`.
pub fn is_valid_tenant_id(id: &str) -> bool {
    (1..=MAX_TENANT_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Splits a token into its claims; checks nothing but the format.
pub fn parse(token: &str) -> Result<Claims<'_>, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let (signed, signature_hex) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
    let mut parts = signed.split('.');
    let (Some(VERSION), Some(tenant), Some(expires), Some(swarm), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(TokenError::Malformed);
    };
    if !is_valid_tenant_id(tenant) || !expires.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TokenError::Malformed);
    }
    let expires = expires.parse().map_err(|_| TokenError::Malformed)?;
    let swarm = match swarm {
        "" => None,
        hex_text => Some(Id20(decode_hex(hex_text)?)),
    };
    let signature = decode_hex(signature_hex)?;
    Ok(Claims {
        tenant,
        expires,
        swarm,
        signed,
        signature,
    })
}

/// Lowercase hex only, so that each token has one spelling.
fn decode_hex<const N: usize>(text: &str) -> Result<[u8; N], TokenError> {
    if !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(TokenError::Malformed);
    }
    let mut bytes = [0u8; N];
    hex::decode_to_slice(text, &mut bytes).map_err(|_| TokenError::Malformed)?;
    Ok(bytes)
}

impl Claims<'_> {
    /// Checks the signature against `secret` (in constant time) and the expiry against `now`
    /// (Unix seconds).
    pub fn verify(&self, secret: &[u8], now: u64) -> Result<(), TokenError> {
        let mut mac = keyed(secret);
        mac.update(self.signed.as_bytes());
        mac.verify_slice(&self.signature)
            .map_err(|_| TokenError::Forged)?;
        if now >= self.expires {
            return Err(TokenError::Expired);
        }
        Ok(())
    }
}

/// A token for `tenant`, valid until `expires` (Unix seconds), for `swarm` only when given.
pub fn mint(tenant: &str, secret: &[u8], expires: u64, swarm: Option<Id20>) -> String {
    let swarm = swarm.map(|id| hex::encode(id.0)).unwrap_or_default();
    let signed = format!("{VERSION}.{tenant}.{expires}.{swarm}");
    let mut mac = keyed(secret);
    mac.update(signed.as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    format!("{signed}.{signature}")
}

/// HMAC-SHA256 keyed with `secret` (HMAC takes keys of any length).
pub(crate) fn keyed(secret: &[u8]) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length")
}

/// The value of the `token` query parameter of a request target such as `/?token=abc`.
pub fn from_request_target(target: &str) -> Option<&str> {
    let (_, query) = target.split_once('?')?;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
        .filter(|token| !token.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"correct horse battery staple";

    #[test]
    fn a_minted_token_verifies_until_it_expires() {
        let token = mint("acme", SECRET, 1000, None);
        let claims = parse(&token).unwrap();
        assert_eq!(
            (claims.tenant, claims.expires, claims.swarm),
            ("acme", 1000, None)
        );
        assert_eq!(claims.verify(SECRET, 999), Ok(()));
        assert_eq!(claims.verify(SECRET, 1000), Err(TokenError::Expired));
    }

    #[test]
    fn another_secret_or_an_edited_claim_is_forged() {
        let token = mint("acme", SECRET, 1000, Some(Id20([7; 20])));
        assert_eq!(parse(&token).unwrap().swarm, Some(Id20([7; 20])));
        let claims = parse(&token).unwrap();
        assert_eq!(claims.verify(b"other", 0), Err(TokenError::Forged));
        let edited = token.replacen(".1000.", ".9999.", 1);
        assert_eq!(
            parse(&edited).unwrap().verify(SECRET, 0),
            Err(TokenError::Forged)
        );
    }

    #[test]
    fn the_documented_openssl_recipe_matches() {
        // printf 'v1.acme.1767225600.' | openssl dgst -sha256 -hmac 'correct horse battery staple'
        let token = mint("acme", SECRET, 1_767_225_600, None);
        assert_eq!(
            token,
            "v1.acme.1767225600.\
             .6663b7980b10f1a34aaf6122ba7b3c324507dcc847a882359d247deabaa9df52"
        );
    }

    #[test]
    fn malformed_tokens_are_refused_without_panicking() {
        for bad in [
            "",
            "v1",
            "v2.acme.1..",
            "v1.acme.1..zz",
            "v1.ac me.1..00",
            "v1.acme.-1..00",
            "v1.acme.99999999999999999999999..00",
            "v1.acme.1.abc.00",
            "v1.acme.1...00",
            "v1.acme.1..6663B7980B10F1A34AAF6122BA7B3C324507DCC847A882359D247DEABAA9DF52",
        ] {
            assert_eq!(parse(bad), Err(TokenError::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn the_token_is_read_from_the_query() {
        assert_eq!(from_request_target("/?token=abc"), Some("abc"));
        assert_eq!(from_request_target("/?x=1&token=abc&y"), Some("abc"));
        assert_eq!(from_request_target("/?token="), None);
        assert_eq!(from_request_target("/"), None);
    }
}
