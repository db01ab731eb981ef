//! The 20-byte identifiers of the WebTorrent protocol (`info_hash`, `peer_id`, `offer_id`).
//!
//! On the wire they are JSON strings of exactly 20 code points in U+0000..=U+00FF, one code point
//! per byte (the "binary string" of JavaScript). Inside the tracker they are 20 raw bytes.

use std::fmt;

use serde::{Serialize, Serializer};

/// Twenty raw bytes: an info hash, a peer id or an offer id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Id20(pub [u8; 20]);

/// Why a string is not a valid 20-byte identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The string does not have exactly 20 code points.
    #[error("must be 20 characters, got {0}")]
    WrongLength(usize),
    /// A code point is above U+00FF, so it is not one byte.
    #[error("characters must be in U+0000..U+00FF")]
    OutOfRange,
}

impl Id20 {
    /// Parses a binary string of 20 code points in U+0000..=U+00FF.
    pub fn parse(text: &str) -> Result<Self, IdError> {
        let mut bytes = [0u8; 20];
        let mut count = 0;
        for ch in text.chars() {
            let code = u32::from(ch);
            if code > 0xFF {
                return Err(IdError::OutOfRange);
            }
            if count < 20 {
                bytes[count] = code as u8;
            }
            count += 1;
        }
        if count != 20 {
            return Err(IdError::WrongLength(count));
        }
        Ok(Self(bytes))
    }

    /// The binary string form: one `char` per byte.
    pub fn to_binary_string(&self) -> String {
        self.0.iter().map(|&b| char::from(b)).collect()
    }

    /// Lower-case hex, for logs.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for Id20 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for Id20 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_binary_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_byte_value() {
        let mut raw = [0u8; 20];
        for (i, b) in raw.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(13).wrapping_add(0xF0);
        }
        let id = Id20(raw);
        assert_eq!(Id20::parse(&id.to_binary_string()), Ok(id));
    }

    #[test]
    fn refuses_wrong_length_and_wide_characters() {
        assert_eq!(Id20::parse("short"), Err(IdError::WrongLength(5)));
        assert_eq!(Id20::parse(&"a".repeat(21)), Err(IdError::WrongLength(21)));
        assert_eq!(Id20::parse(&"€".repeat(20)), Err(IdError::OutOfRange));
    }
}
