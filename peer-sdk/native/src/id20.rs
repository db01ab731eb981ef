//! 20-byte identifiers (`info_hash`, `peer_id`, `offer_id`) as the WebTorrent protocol writes
//! them: JSON strings of 20 code points U+0000..U+00FF, one per byte.

use rand::Rng;

/// A 20-byte identifier.
pub type Id20 = [u8; 20];

/// The protocol's text form: one `char` per byte.
pub fn to_text(id: &Id20) -> String {
    id.iter().map(|&b| char::from(b)).collect()
}

/// Reads the protocol's text form; `None` unless it is exactly 20 code points below U+0100.
pub fn from_text(text: &str) -> Option<Id20> {
    let mut id = [0u8; 20];
    let mut chars = text.chars();
    for byte in &mut id {
        *byte = u8::try_from(u32::from(chars.next()?)).ok()?;
    }
    chars.next().is_none().then_some(id)
}

/// A random peer id with this SDK's client prefix ([`peer_sdk::tracker_session::CLIENT_PREFIX`]).
pub fn random_peer_id() -> Id20 {
    let mut id = random();
    id[..8].copy_from_slice(&peer_sdk::tracker_session::CLIENT_PREFIX);
    id
}

/// 20 random bytes (offer ids).
pub fn random() -> Id20 {
    rand::rng().random()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips_every_byte_value() {
        let mut id = [0u8; 20];
        for (i, b) in id.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(13).wrapping_add(240);
        }
        let text = to_text(&id);
        assert_eq!(text.chars().count(), 20);
        assert_eq!(from_text(&text), Some(id));
    }

    #[test]
    fn text_form_rejects_wrong_lengths_and_wide_characters() {
        assert_eq!(from_text("short"), None);
        assert_eq!(from_text(&"a".repeat(21)), None);
        assert_eq!(from_text(&format!("{}€", "a".repeat(19))), None);
    }
}
