//! The WebTorrent tracker messages the load generator sends, built by string concatenation in the
//! exact shape and key order of the `bittorrent-tracker` client (`lib/client/websocket-tracker.js`),
//! and a cheap scan of received messages: only the few fields a client reacts to are located, the
//! SDPs are never decoded.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

/// A 20-byte identifier (`info_hash`, `peer_id`, `offer_id`), sent as 20 code points U+0000–U+00FF.
pub type Id20 = [u8; 20];

/// Microseconds since the Unix epoch: the clock embedded in offer ids. A wall clock, so that
/// several load generator processes on one machine agree on it.
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_micros() as u64)
}

/// An offer id that carries the moment its announce was sent (bytes 0..8, big endian) followed by
/// 12 random bytes, so a receiver can time the relay without any shared table.
pub fn offer_id(sent_at_micros: u64, replica: u8, random: [u8; 11]) -> Id20 {
    let mut id = [0; 20];
    id[..8].copy_from_slice(&sent_at_micros.to_be_bytes());
    id[8] = replica;
    id[9..].copy_from_slice(&random);
    id
}

/// The replica index the offerer of an offer id made by [`offer_id`] was connected to.
pub fn offer_replica(id: &Id20) -> u8 {
    id[8]
}

/// The send time carried by an offer id made by [`offer_id`].
pub fn offer_sent_at(id: &Id20) -> u64 {
    u64::from_be_bytes(id[..8].try_into().expect("8 bytes"))
}

/// Appends `id` as a JSON string (with its quotes) of one code point per byte, escaped the way
/// `JSON.stringify` escapes it.
pub fn push_id(out: &mut String, id: &Id20) {
    out.push('"');
    for &byte in id {
        match byte {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            0..0x20 => {
                let _ = write!(out, "\\u{byte:04x}");
            }
            _ => out.push(char::from(byte)),
        }
    }
    out.push('"');
}

/// Decodes the content of a JSON string (between its quotes) holding a 20-byte id.
pub fn decode_id(raw: &str) -> Option<Id20> {
    let mut id = [0; 20];
    let mut len = 0;
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        let code = if c == '\\' {
            match chars.next()? {
                'u' => {
                    let mut code = 0;
                    for _ in 0..4 {
                        code = code * 16 + chars.next()?.to_digit(16)?;
                    }
                    code
                }
                'n' => 0x0a,
                'r' => 0x0d,
                't' => 0x09,
                'b' => 0x08,
                'f' => 0x0c,
                other => other as u32,
            }
        } else {
            c as u32
        };
        *id.get_mut(len)? = u8::try_from(code).ok()?;
        len += 1;
    }
    (len == 20).then_some(id)
}

/// One offer of an announce: the escaped SDP and its id.
pub struct OutgoingOffer<'a> {
    /// The SDP, already escaped as JSON string content.
    pub sdp: &'a str,
    /// The offer id.
    pub offer_id: Id20,
}

/// What an announce says besides its offers.
pub struct Announce<'a> {
    /// The swarm, already encoded as a JSON string with quotes (see [`push_id`]).
    pub info_hash: &'a str,
    /// This peer, encoded like `info_hash`.
    pub peer_id: &'a str,
    /// `Some("started")` etc.; `None` for a periodic update (the client then sends no event).
    pub event: Option<&'a str>,
    /// Bytes still missing, as the client reports them.
    pub left: u64,
}

/// Writes an announce into `out` (cleared first), as `bittorrent-tracker`'s client writes it.
pub fn write_announce(out: &mut String, announce: &Announce<'_>, offers: &[OutgoingOffer<'_>]) {
    out.clear();
    let _ = write!(
        out,
        "{{\"numwant\":{},\"uploaded\":0,\"downloaded\":0,\"left\":{}",
        offers.len(),
        announce.left
    );
    if let Some(event) = announce.event {
        let _ = write!(out, ",\"event\":\"{event}\"");
    }
    out.push_str(",\"action\":\"announce\",\"info_hash\":");
    out.push_str(announce.info_hash);
    out.push_str(",\"peer_id\":");
    out.push_str(announce.peer_id);
    out.push_str(",\"offers\":[");
    for (index, offer) in offers.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        out.push_str("{\"offer\":{\"type\":\"offer\",\"sdp\":\"");
        out.push_str(offer.sdp);
        out.push_str("\"},\"offer_id\":");
        push_id(out, &offer.offer_id);
        out.push('}');
    }
    out.push_str("]}");
}

/// Writes the answer to a relayed offer into `out` (cleared first). The ids are copied raw (still
/// JSON-escaped) from the offer message, as the client echoes the strings it parsed.
pub fn write_answer(out: &mut String, offer: &RelayedOffer<'_>, peer_id: &str, sdp: &str) {
    out.clear();
    out.push_str("{\"action\":\"announce\",\"info_hash\":\"");
    out.push_str(offer.info_hash);
    out.push_str("\",\"peer_id\":");
    out.push_str(peer_id);
    out.push_str(",\"to_peer_id\":\"");
    out.push_str(offer.peer_id);
    out.push_str("\",\"answer\":{\"type\":\"answer\",\"sdp\":\"");
    out.push_str(sdp);
    out.push_str("\"},\"offer_id\":\"");
    out.push_str(offer.offer_id);
    out.push_str("\"}");
}

/// The fields of a relayed offer a client needs to answer it, each the raw content of its JSON
/// string (escapes kept).
#[derive(Debug, PartialEq, Eq)]
pub struct RelayedOffer<'a> {
    /// The swarm.
    pub info_hash: &'a str,
    /// The offering peer.
    pub peer_id: &'a str,
    /// The offer's id.
    pub offer_id: &'a str,
}

/// What a received tracker message is, found by a scan for its distinguishing keys.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// Another peer's offer, relayed to us.
    Offer(RelayedOffer<'a>),
    /// The answer to one of our offers; holds the raw offer id.
    Answer(&'a str),
    /// A `failure reason`.
    Failure,
    /// The reply to our announce (`interval`, `complete`, ...), a warning or anything else.
    Other,
}

/// Classifies a tracker message without parsing it fully: one pass over its top-level keys,
/// skipping values (the SDPs) without decoding them.
pub fn classify(message: &str) -> Incoming<'_> {
    let mut failure = false;
    let mut answer = false;
    let mut offer = false;
    let (mut info_hash, mut peer_id, mut offer_id) = (None, None, None);
    for (key, value) in TopLevel::new(message) {
        match key {
            "failure reason" => failure = true,
            "answer" => answer = true,
            "offer" => offer = true,
            "info_hash" => info_hash = string_content(value),
            "peer_id" => peer_id = string_content(value),
            "offer_id" => offer_id = string_content(value),
            _ => {}
        }
    }
    if failure {
        return Incoming::Failure;
    }
    if answer {
        return offer_id.map_or(Incoming::Other, Incoming::Answer);
    }
    if let (true, Some(info_hash), Some(peer_id), Some(offer_id)) =
        (offer, info_hash, peer_id, offer_id)
    {
        return Incoming::Offer(RelayedOffer {
            info_hash,
            peer_id,
            offer_id,
        });
    }
    Incoming::Other
}

/// The raw content of a JSON string value (escapes kept), if `value` is a string.
fn string_content(value: &str) -> Option<&str> {
    value.strip_prefix('"')?.strip_suffix('"')
}

/// The `(raw key, raw value)` pairs of a JSON object's top level, in order. Stops at the first
/// thing that is not well-formed JSON.
struct TopLevel<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> TopLevel<'a> {
    fn new(text: &'a str) -> Self {
        let bytes = text.as_bytes();
        let at = skip_spaces(bytes, 0);
        // Past the opening brace, or at the end when there is none.
        let at = if bytes.get(at) == Some(&b'{') {
            at + 1
        } else {
            bytes.len()
        };
        Self { text, at }
    }
}

impl<'a> Iterator for TopLevel<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        let bytes = self.text.as_bytes();
        let mut at = skip_spaces(bytes, self.at);
        if bytes.get(at) == Some(&b',') {
            at = skip_spaces(bytes, at + 1);
        }
        if bytes.get(at) != Some(&b'"') {
            self.at = bytes.len();
            return None;
        }
        let key_end = string_end(bytes, at)?;
        let key = self.text.get(at + 1..key_end - 1)?;
        at = skip_spaces(bytes, key_end);
        if bytes.get(at) != Some(&b':') {
            self.at = bytes.len();
            return None;
        }
        let start = skip_spaces(bytes, at + 1);
        let end = value_end(bytes, start)?;
        self.at = end;
        Some((key, self.text.get(start..end)?.trim_end()))
    }
}

fn skip_spaces(bytes: &[u8], mut at: usize) -> usize {
    while bytes.get(at).is_some_and(u8::is_ascii_whitespace) {
        at += 1;
    }
    at
}

/// Just past the closing quote of the string that opens at `start`.
fn string_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut at = start + 1;
    // Vectorised search for the next quote or backslash: SDPs are long strings.
    while let Some(found) = memchr::memchr2(b'"', b'\\', bytes.get(at..)?) {
        at += found;
        if bytes[at] == b'"' {
            return Some(at + 1);
        }
        at += 2;
    }
    None
}

/// Just past the value that starts at `start` (a string, an object or array, or a scalar).
fn value_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut at = start;
    while at < bytes.len() {
        match bytes[at] {
            b'"' => {
                at = string_end(bytes, at)?;
                if depth == 0 {
                    return Some(at);
                }
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' if depth == 0 => return Some(at),
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(at + 1);
                }
            }
            b',' if depth == 0 => return Some(at),
            _ => {}
        }
        at += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn every_byte_id(first: u8) -> Id20 {
        std::array::from_fn(|index| first.wrapping_add(index as u8 * 13))
    }

    #[test]
    fn ids_are_latin1_strings_that_json_agrees_with() {
        for first in 0..=255u8 {
            let id = every_byte_id(first);
            let mut json = String::new();
            push_id(&mut json, &id);
            let parsed: String = serde_json::from_str(&json).unwrap();
            let bytes: Vec<u8> = parsed.chars().map(|c| c as u32 as u8).collect();
            assert_eq!(bytes, id);
            assert_eq!(decode_id(&json[1..json.len() - 1]), Some(id));
            // serde_json re-escapes differently (`\u001f` vs raw); decoding must not care.
            let reencoded = serde_json::to_string(&parsed).unwrap();
            assert_eq!(decode_id(&reencoded[1..reencoded.len() - 1]), Some(id));
        }
    }

    #[test]
    fn offer_ids_carry_their_send_time_and_replica() {
        let id = offer_id(1_700_000_000_123_456, 3, [9; 11]);
        assert_eq!(offer_sent_at(&id), 1_700_000_000_123_456);
        assert_eq!(offer_replica(&id), 3);
    }

    #[test]
    fn announce_has_the_client_shape() {
        let mut info_hash = String::new();
        push_id(&mut info_hash, &every_byte_id(1));
        let mut peer_id = String::new();
        push_id(&mut peer_id, &every_byte_id(2));
        let offers = [
            OutgoingOffer {
                sdp: "v=0\\r\\n",
                offer_id: every_byte_id(3),
            },
            OutgoingOffer {
                sdp: "v=0\\r\\na=x\\r\\n",
                offer_id: every_byte_id(4),
            },
        ];
        let announce = Announce {
            info_hash: &info_hash,
            peer_id: &peer_id,
            event: Some("started"),
            left: 5,
        };
        let mut out = String::new();
        write_announce(&mut out, &announce, &offers);
        let value: Value = serde_json::from_str(&out).unwrap();
        let keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "action",
                "downloaded",
                "event",
                "info_hash",
                "left",
                "numwant",
                "offers",
                "peer_id",
                "uploaded"
            ]
        );
        assert_eq!(value["numwant"], 2);
        assert_eq!(value["offers"][1]["offer"]["sdp"], "v=0\r\na=x\r\n");
        assert_eq!(value["offers"][1]["offer"]["type"], "offer");
        let update = Announce {
            event: None,
            ..announce
        };
        write_announce(&mut out, &update, &offers);
        assert!(!out.contains("event"));
    }

    #[test]
    fn relayed_offers_are_found_and_answered() {
        let message = r#"{"action":"announce","info_hash":"\u0001ab","peer_id":"p\"q","offer_id":"o\\ff","offer":{"type":"offer","sdp":"v=0\r\n\"offer\":"}}"#;
        let Incoming::Offer(offer) = classify(message) else {
            panic!("not an offer");
        };
        assert_eq!(
            offer,
            RelayedOffer {
                info_hash: "\\u0001ab",
                peer_id: "p\\\"q",
                offer_id: "o\\\\ff"
            }
        );
        let mut answer = String::new();
        write_answer(&mut answer, &offer, "\"me\"", "v=0\\r\\n");
        let value: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(value["to_peer_id"], "p\"q");
        assert_eq!(value["offer_id"], "o\\ff");
        assert_eq!(value["info_hash"], "\u{1}ab");
        assert_eq!(value["answer"]["type"], "answer");
    }

    #[test]
    fn other_messages_are_classified() {
        let answer = r#"{"action":"announce","answer":{"type":"answer","sdp":"x"},"offer_id":"abc","peer_id":"p","info_hash":"i"}"#;
        assert_eq!(classify(answer), Incoming::Answer("abc"));
        let failure = r#"{"action":"announce","failure reason":"bad \"offer\": x"}"#;
        assert_eq!(classify(failure), Incoming::Failure);
        let reply =
            r#"{"action":"announce","interval":120,"info_hash":"i","complete":0,"incomplete":3}"#;
        assert_eq!(classify(reply), Incoming::Other);
        assert_eq!(classify("not json"), Incoming::Other);
        let spaced =
            r#"{ "offer" : {"sdp":"a}b"} , "offer_id" : "o", "info_hash":"i", "peer_id":"p" }"#;
        assert_eq!(
            classify(spaced),
            Incoming::Offer(RelayedOffer {
                info_hash: "i",
                peer_id: "p",
                offer_id: "o"
            })
        );
        let nested = r#"{"action":"announce","offer":{"type":"offer","sdp":"x"},"x":{"answer":1}}"#;
        assert_eq!(classify(nested), Incoming::Other);
    }
}
