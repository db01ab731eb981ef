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

    /// Appends the id as a quoted JSON string, escaped exactly as `serde_json` escapes it, without
    /// an intermediate allocation (the relay's hot path builds its messages with this).
    pub fn write_json(&self, out: &mut String) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        out.push('"');
        for &byte in &self.0 {
            match byte {
                b'"' => out.push_str("\\\""),
                b'\\' => out.push_str("\\\\"),
                b'\n' => out.push_str("\\n"),
                b'\r' => out.push_str("\\r"),
                b'\t' => out.push_str("\\t"),
                0x08 => out.push_str("\\b"),
                0x0c => out.push_str("\\f"),
                0..0x20 => {
                    out.push_str("\\u00");
                    out.push(char::from(HEX[usize::from(byte >> 4)]));
                    out.push(char::from(HEX[usize::from(byte & 0xf)]));
                }
                _ => out.push(char::from(byte)),
            }
        }
        out.push('"');
    }

    /// The length in bytes of what [`Id20::write_json`] appends.
    pub fn json_len(&self) -> usize {
        let escaped: usize = self
            .0
            .iter()
            .map(|&byte| match byte {
                b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
                0..0x20 => 6,
                0x80.. => 2,
                _ => 1,
            })
            .sum();
        escaped + 2
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
        // Each byte is one code point of at most two UTF-8 bytes: encode on the stack.
        let mut buffer = [0u8; 40];
        let mut len = 0;
        for &byte in &self.0 {
            len += char::from(byte).encode_utf8(&mut buffer[len..]).len();
        }
        let text = std::str::from_utf8(&buffer[..len]).map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(text)
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
    fn json_form_matches_serde_json_for_every_byte() {
        for first in 0..=255u8 {
            let id = Id20(std::array::from_fn(|i| first.wrapping_add(i as u8 * 13)));
            let mut ours = String::new();
            id.write_json(&mut ours);
            assert_eq!(ours, serde_json::to_string(&id.to_binary_string()).unwrap());
            assert_eq!(ours, serde_json::to_string(&id).unwrap());
            assert_eq!(ours.len(), id.json_len());
        }
    }

    #[test]
    fn refuses_wrong_length_and_wide_characters() {
        assert_eq!(Id20::parse("short"), Err(IdError::WrongLength(5)));
        assert_eq!(Id20::parse(&"a".repeat(21)), Err(IdError::WrongLength(21)));
        assert_eq!(Id20::parse(&"€".repeat(20)), Err(IdError::OutOfRange));
    }
}
