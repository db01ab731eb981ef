//! The WebTorrent tracker protocol as JSON text: parsing client messages and building replies.
//!
//! Parsing borrows from the received text; SDP payloads (`offer`, `answer`) are kept as raw JSON
//! and relayed without being decoded or re-encoded.

use std::borrow::Cow;

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::id::{Id20, IdError};

/// A validated request from a client.
#[derive(Debug)]
pub enum Request<'a> {
    /// `announce` (joining, refreshing or leaving a swarm), possibly with offers to relay.
    Announce(Announce<'a>),
    /// `announce` carrying an `answer` to an offer this peer received.
    Answer(Answer<'a>),
    /// `scrape` of one or several swarms.
    Scrape(Vec<Id20>),
    /// Extension: a segment hash this peer computed over bytes it fetched from the CDN.
    HashReport(HashReport),
    /// Extension: which hashes the tracker has accepted for these segments.
    HashQuery(HashQuery),
}

impl Request<'_> {
    /// Calls `f` on every info hash the request names.
    pub fn for_each_info_hash(&mut self, mut f: impl FnMut(&mut Id20)) {
        match self {
            Self::Announce(announce) => f(&mut announce.info_hash),
            Self::Answer(answer) => f(&mut answer.info_hash),
            Self::Scrape(hashes) => hashes.iter_mut().for_each(f),
            Self::HashReport(report) => f(&mut report.info_hash),
            Self::HashQuery(query) => f(&mut query.info_hash),
        }
    }
}

/// The lifecycle event of an announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// First announce to a swarm.
    Started,
    /// Periodic refresh (also an absent `event`, and `paused`).
    Update,
    /// The peer holds the whole content (a seeder).
    Completed,
    /// The peer leaves the swarm.
    Stopped,
}

/// Optional fields only this project's SDK sends (`ext`), see `PROTOCOL.md`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PeerExtension {
    /// Whether the peer uploads to others; `false` marks a download-only peer.
    pub upload: bool,
    /// Upload capacity the peer offers, in bytes per second (0 = unknown).
    pub capacity: u64,
    /// Playback position in seconds (VOD), used to prefer peers watching the same part.
    pub position: Option<f64>,
}

impl Default for PeerExtension {
    fn default() -> Self {
        Self {
            upload: true,
            capacity: 0,
            position: None,
        }
    }
}

/// An `announce` request.
#[derive(Debug)]
pub struct Announce<'a> {
    /// The swarm.
    pub info_hash: Id20,
    /// The announcing peer.
    pub peer_id: Id20,
    /// What happened.
    pub event: Event,
    /// How many peers the client wants offers sent to (defaults to the number of offers).
    pub numwant: Option<u32>,
    /// Bytes the client still misses (`0` means a seeder).
    pub left: Option<f64>,
    /// The offers to relay, one per chosen peer.
    pub offers: Vec<Offer<'a>>,
    /// Extension fields (defaults for vanilla clients).
    pub ext: PeerExtension,
}

/// One WebRTC offer inside an announce.
#[derive(Debug)]
pub struct Offer<'a> {
    /// Identifies the offer so that its answer can find its way back.
    pub offer_id: Id20,
    /// The `{type, sdp}` object, relayed verbatim.
    pub offer: &'a RawValue,
}

/// An answer to a relayed offer.
#[derive(Debug)]
pub struct Answer<'a> {
    /// The swarm.
    pub info_hash: Id20,
    /// The answering peer.
    pub peer_id: Id20,
    /// The peer that made the offer.
    pub to_peer_id: Id20,
    /// The offer being answered.
    pub offer_id: Id20,
    /// The `{type, sdp}` object, relayed verbatim.
    pub answer: &'a RawValue,
}

/// A report of one segment's SHA-256 (extension).
#[derive(Debug)]
pub struct HashReport {
    /// The swarm.
    pub info_hash: Id20,
    /// The reporting peer (must have announced to the swarm on this connection).
    pub peer_id: Id20,
    /// The segment's name within the swarm.
    pub segment: String,
    /// The segment's SHA-256.
    pub sha256: [u8; 32],
}

/// A query for accepted segment hashes (extension).
#[derive(Debug)]
pub struct HashQuery {
    /// The swarm.
    pub info_hash: Id20,
    /// The segments asked about.
    pub segments: Vec<String>,
}

/// Why a message was refused. The text is sent to the client as `failure reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// Not JSON, or JSON of the wrong shape.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// `action` is missing or not one this tracker knows.
    #[error("unknown action {0:?}")]
    UnknownAction(String),
    /// An identifier is missing or not 20 one-byte characters.
    #[error("invalid {field}: {error}")]
    InvalidId {
        /// The field's name.
        field: &'static str,
        /// What is wrong with it.
        error: IdError,
    },
    /// A required field is absent.
    #[error("missing field {0}")]
    Missing(&'static str),
    /// A field has a value outside what the protocol allows.
    #[error("invalid {field}: {problem}")]
    Invalid {
        /// The field's name.
        field: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
}

impl ProtocolError {
    /// A short, stable label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::UnknownAction(_) => "unknown_action",
            Self::InvalidId { .. } => "invalid_id",
            Self::Missing(_) => "missing_field",
            Self::Invalid { .. } => "invalid_field",
        }
    }
}

/// Limits applied while parsing.
#[derive(Debug, Clone, Copy)]
pub struct ParseLimits {
    /// Most offers accepted in one announce.
    pub max_offers: usize,
    /// Most info hashes in one scrape or segments in one hash query.
    pub max_list: usize,
}

/// The loose shape every client message is read into before validation.
#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(borrow)]
    action: Option<Cow<'a, str>>,
    info_hash: Option<WireHashes>,
    peer_id: Option<WireId>,
    #[serde(borrow)]
    event: Option<Cow<'a, str>>,
    numwant: Option<u32>,
    left: Option<f64>,
    #[serde(borrow)]
    offers: Option<Vec<WireOffer<'a>>>,
    #[serde(borrow)]
    answer: Option<&'a RawValue>,
    to_peer_id: Option<WireId>,
    offer_id: Option<WireId>,
    ext: Option<PeerExtension>,
    #[serde(borrow)]
    segment: Option<Cow<'a, str>>,
    #[serde(borrow)]
    segments: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow)]
    sha256: Option<Cow<'a, str>>,
}

/// An identifier field as received: the id if the string is a valid one, else why not.
/// Read straight from the JSON string, escaped or not, without allocating.
struct WireId(Result<Id20, IdError>);

impl<'de> Deserialize<'de> for WireId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IdVisitor;
        impl Visitor<'_> for IdVisitor {
            type Value = WireId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<WireId, E> {
                Ok(WireId(Id20::parse(text)))
            }
        }
        deserializer.deserialize_str(IdVisitor)
    }
}

/// `info_hash`: one id, or a list of them (scrape).
enum WireHashes {
    One(WireId),
    Many(Vec<WireId>),
}

impl<'de> Deserialize<'de> for WireHashes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HashesVisitor;
        impl<'de> Visitor<'de> for HashesVisitor {
            type Value = WireHashes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<WireHashes, E> {
                Ok(WireHashes::One(WireId(Id20::parse(text))))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<WireHashes, A::Error> {
                let mut list = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
                while let Some(id) = seq.next_element::<WireId>()? {
                    list.push(id);
                }
                Ok(WireHashes::Many(list))
            }
        }
        deserializer.deserialize_any(HashesVisitor)
    }
}

#[derive(Deserialize)]
struct WireOffer<'a> {
    #[serde(borrow)]
    offer: &'a RawValue,
    offer_id: WireId,
}

/// Longest segment name accepted in the hash extension.
pub const MAX_SEGMENT_NAME: usize = 256;

/// Parses and validates one client message.
pub fn parse<'a>(text: &'a str, limits: ParseLimits) -> Result<Request<'a>, ProtocolError> {
    let wire: Wire<'a> =
        serde_json::from_str(text).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    match wire.action.as_deref() {
        Some("announce") if wire.answer.is_some() => parse_answer(wire).map(Request::Answer),
        Some("announce") => parse_announce(wire, limits).map(Request::Announce),
        Some("scrape") => parse_scrape(wire, limits).map(Request::Scrape),
        Some("hash_report") => parse_hash_report(wire).map(Request::HashReport),
        Some("hash_query") => parse_hash_query(wire, limits).map(Request::HashQuery),
        Some(other) => Err(ProtocolError::UnknownAction(
            other.chars().take(32).collect(),
        )),
        None => Err(ProtocolError::Missing("action")),
    }
}

/// What can be said of a refused message for its failure reply: its known `action` and its
/// `info_hash` if it has exactly one valid one. One parse for both.
pub fn sniff<'a>(text: &'a str) -> (Option<&'static str>, Option<Id20>) {
    // Raw values, so that a field of the wrong type does not hide the other one.
    #[derive(Deserialize)]
    struct Sniff<'a> {
        #[serde(borrow)]
        action: Option<&'a RawValue>,
        #[serde(borrow)]
        info_hash: Option<&'a RawValue>,
    }
    let Ok(sniff) = serde_json::from_str::<Sniff>(text) else {
        return (None, None);
    };
    let string = |raw: Option<&'a RawValue>| -> Option<Cow<'a, str>> {
        serde_json::from_str(raw?.get()).ok()
    };
    let action = match string(sniff.action).as_deref() {
        Some("announce") => Some("announce"),
        Some("scrape") => Some("scrape"),
        Some("hash_report") => Some("hash_report"),
        Some("hash_query") => Some("hash_query"),
        _ => None,
    };
    let info_hash = string(sniff.info_hash).and_then(|hash| Id20::parse(&hash).ok());
    (action, info_hash)
}

fn id(field: &'static str, value: Option<&WireId>) -> Result<Id20, ProtocolError> {
    let parsed = value.ok_or(ProtocolError::Missing(field))?.0;
    parsed.map_err(|error| ProtocolError::InvalidId { field, error })
}

fn single_info_hash(wire: &Wire<'_>) -> Result<Id20, ProtocolError> {
    match &wire.info_hash {
        Some(WireHashes::One(text)) => id("info_hash", Some(text)),
        Some(WireHashes::Many(_)) => Err(ProtocolError::Invalid {
            field: "info_hash",
            problem: "must be one string here",
        }),
        None => Err(ProtocolError::Missing("info_hash")),
    }
}

fn parse_event(event: Option<&str>) -> Result<Event, ProtocolError> {
    match event {
        None | Some("update") | Some("paused") | Some("") => Ok(Event::Update),
        Some("started") => Ok(Event::Started),
        Some("completed") => Ok(Event::Completed),
        Some("stopped") => Ok(Event::Stopped),
        Some(_) => Err(ProtocolError::Invalid {
            field: "event",
            problem: "must be started, update, completed, stopped or paused",
        }),
    }
}

fn is_json_object(raw: &RawValue) -> bool {
    raw.get().starts_with('{')
}

fn parse_announce<'a>(wire: Wire<'a>, limits: ParseLimits) -> Result<Announce<'a>, ProtocolError> {
    let info_hash = single_info_hash(&wire)?;
    let peer_id = id("peer_id", wire.peer_id.as_ref())?;
    let event = parse_event(wire.event.as_deref())?;
    let wire_offers = wire.offers.unwrap_or_default();
    if wire_offers.len() > limits.max_offers {
        return Err(ProtocolError::Invalid {
            field: "offers",
            problem: "too many offers in one announce",
        });
    }
    let mut offers = Vec::with_capacity(wire_offers.len());
    for offer in wire_offers {
        if !is_json_object(offer.offer) {
            return Err(ProtocolError::Invalid {
                field: "offer",
                problem: "must be an object",
            });
        }
        offers.push(Offer {
            offer_id: id("offer_id", Some(&offer.offer_id))?,
            offer: offer.offer,
        });
    }
    Ok(Announce {
        info_hash,
        peer_id,
        event,
        numwant: wire.numwant,
        left: wire.left,
        offers,
        ext: wire.ext.unwrap_or_default(),
    })
}

fn parse_answer<'a>(wire: Wire<'a>) -> Result<Answer<'a>, ProtocolError> {
    let answer = wire.answer.ok_or(ProtocolError::Missing("answer"))?;
    if !is_json_object(answer) {
        return Err(ProtocolError::Invalid {
            field: "answer",
            problem: "must be an object",
        });
    }
    Ok(Answer {
        info_hash: single_info_hash(&wire)?,
        peer_id: id("peer_id", wire.peer_id.as_ref())?,
        to_peer_id: id("to_peer_id", wire.to_peer_id.as_ref())?,
        offer_id: id("offer_id", wire.offer_id.as_ref())?,
        answer,
    })
}

fn parse_scrape(wire: Wire<'_>, limits: ParseLimits) -> Result<Vec<Id20>, ProtocolError> {
    let hashes = match &wire.info_hash {
        Some(WireHashes::One(text)) => vec![id("info_hash", Some(text))?],
        Some(WireHashes::Many(list)) => {
            if list.len() > limits.max_list {
                return Err(ProtocolError::Invalid {
                    field: "info_hash",
                    problem: "too many info hashes in one scrape",
                });
            }
            list.iter()
                .map(|text| id("info_hash", Some(text)))
                .collect::<Result<_, _>>()?
        }
        None => return Err(ProtocolError::Missing("info_hash")),
    };
    Ok(hashes)
}

fn segment_name(text: &str) -> Result<String, ProtocolError> {
    if text.is_empty() || text.len() > MAX_SEGMENT_NAME {
        return Err(ProtocolError::Invalid {
            field: "segment",
            problem: "must be 1 to 256 bytes long",
        });
    }
    Ok(text.to_owned())
}

fn parse_sha256(text: &str) -> Result<[u8; 32], ProtocolError> {
    let invalid = ProtocolError::Invalid {
        field: "sha256",
        problem: "must be 64 hex digits",
    };
    // Checked up front: `from_str_radix` alone would also take a sign ("+f").
    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid);
    }
    let mut hash = [0u8; 32];
    for (byte, pair) in hash.iter_mut().zip(text.as_bytes().chunks(2)) {
        let pair = std::str::from_utf8(pair).map_err(|_| invalid.clone())?;
        *byte = u8::from_str_radix(pair, 16).map_err(|_| invalid.clone())?;
    }
    Ok(hash)
}

fn parse_hash_report(wire: Wire<'_>) -> Result<HashReport, ProtocolError> {
    Ok(HashReport {
        info_hash: single_info_hash(&wire)?,
        peer_id: id("peer_id", wire.peer_id.as_ref())?,
        segment: segment_name(
            wire.segment
                .as_deref()
                .ok_or(ProtocolError::Missing("segment"))?,
        )?,
        sha256: parse_sha256(
            wire.sha256
                .as_deref()
                .ok_or(ProtocolError::Missing("sha256"))?,
        )?,
    })
}

fn parse_hash_query(wire: Wire<'_>, limits: ParseLimits) -> Result<HashQuery, ProtocolError> {
    let info_hash = single_info_hash(&wire)?;
    let names = wire.segments.ok_or(ProtocolError::Missing("segments"))?;
    if names.len() > limits.max_list {
        return Err(ProtocolError::Invalid {
            field: "segments",
            problem: "too many segments in one query",
        });
    }
    let segments = names
        .iter()
        .map(|n| segment_name(n))
        .collect::<Result<_, _>>()?;
    Ok(HashQuery {
        info_hash,
        segments,
    })
}

/// The reply to an announce.
#[derive(Serialize)]
pub struct AnnounceReply<'a> {
    /// Always `announce`.
    pub action: &'static str,
    /// The swarm.
    pub info_hash: Id20,
    /// Seconds until the next announce.
    pub interval: u64,
    /// Seeders in the swarm.
    pub complete: u64,
    /// Leechers in the swarm.
    pub incomplete: u64,
    /// A non-fatal notice.
    #[serde(rename = "warning message", skip_serializing_if = "Option::is_none")]
    pub warning: Option<&'a str>,
}

/// The text of an offer relayed to the peer chosen to receive it:
/// `{"action":"announce","info_hash","peer_id","offer","offer_id"}`, `peer_id` being the offering
/// peer and `offer` the client's `{type, sdp}` object spliced in verbatim.
pub fn relayed_offer(info_hash: Id20, peer_id: Id20, offer: &RawValue, offer_id: Id20) -> String {
    relayed(info_hash, peer_id, "offer", offer, offer_id)
}

/// The text of an answer relayed back to the peer that made the offer:
/// `{"action":"announce","info_hash","peer_id","answer","offer_id"}`, `peer_id` being the
/// answering peer and `answer` spliced in verbatim.
pub fn relayed_answer(info_hash: Id20, peer_id: Id20, answer: &RawValue, offer_id: Id20) -> String {
    relayed(info_hash, peer_id, "answer", answer, offer_id)
}

/// Builds a relayed offer or answer in one allocation of the right size, without re-encoding the
/// SDP (the same bytes `serde_json` would write for these fields in this order).
fn relayed(info_hash: Id20, peer_id: Id20, key: &str, raw: &RawValue, offer_id: Id20) -> String {
    // Exactly the final length: the text then becomes the frame's bytes without reallocating.
    let len = r#"{"action":"announce","info_hash":,"peer_id":,"":,"offer_id":}"#.len()
        + key.len()
        + raw.get().len()
        + info_hash.json_len()
        + peer_id.json_len()
        + offer_id.json_len();
    let mut out = String::with_capacity(len);
    out.push_str("{\"action\":\"announce\",\"info_hash\":");
    info_hash.write_json(&mut out);
    out.push_str(",\"peer_id\":");
    peer_id.write_json(&mut out);
    out.push_str(",\"");
    out.push_str(key);
    out.push_str("\":");
    out.push_str(raw.get());
    out.push_str(",\"offer_id\":");
    offer_id.write_json(&mut out);
    out.push('}');
    out
}

/// Per-swarm figures in a scrape reply.
#[derive(Serialize)]
pub struct ScrapeFile {
    /// Seeders.
    pub complete: u64,
    /// Leechers.
    pub incomplete: u64,
    /// Completed downloads (not tracked: always 0).
    pub downloaded: u64,
}

/// A refusal.
#[derive(Serialize)]
pub struct Failure<'a> {
    /// The action that was refused, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<&'a str>,
    /// The swarm concerned, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub info_hash: Option<Id20>,
    /// What was wrong.
    #[serde(rename = "failure reason")]
    pub reason: &'a str,
}

/// Serializes an outgoing message. Serializing these types cannot fail.
pub fn to_json<T: Serialize>(message: &T) -> String {
    serde_json::to_string(message).unwrap_or_default()
}

/// Builds a scrape reply from `(info_hash, file)` pairs.
pub fn scrape_reply(files: Vec<(Id20, ScrapeFile)>) -> String {
    let map: serde_json::Map<String, serde_json::Value> = files
        .into_iter()
        .map(|(hash, file)| {
            let value = serde_json::to_value(file).unwrap_or_default();
            (hash.to_binary_string(), value)
        })
        .collect();
    to_json(&serde_json::json!({ "action": "scrape", "files": map }))
}

/// Lower-case hex of a SHA-256, as the hash extension sends it.
pub fn sha256_hex(hash: &[u8; 32]) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ParseLimits = ParseLimits {
        max_offers: 10,
        max_list: 4,
    };
    const A: &str = "aaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn parses_an_announce_with_offers_and_extension() {
        let text = format!(
            r#"{{"action":"announce","info_hash":"{A}","peer_id":"{B}","event":"started",
            "numwant":2,"offers":[{{"offer":{{"type":"offer","sdp":"v=0"}},"offer_id":"{A}"}}],
            "ext":{{"upload":false,"capacity":1000}}}}"#
        );
        let Ok(Request::Announce(a)) = parse(&text, LIMITS) else {
            panic!("not an announce")
        };
        assert_eq!(a.event, Event::Started);
        assert_eq!(a.offers.len(), 1);
        assert_eq!(a.offers[0].offer.get(), r#"{"type":"offer","sdp":"v=0"}"#);
        assert!(!a.ext.upload);
    }

    #[test]
    fn an_announce_with_an_answer_is_an_answer() {
        let text = format!(
            r#"{{"action":"announce","info_hash":"{A}","peer_id":"{B}","to_peer_id":"{A}",
            "offer_id":"{B}","answer":{{"type":"answer","sdp":"x"}}}}"#
        );
        assert!(matches!(parse(&text, LIMITS), Ok(Request::Answer(_))));
    }

    #[test]
    fn refusals_name_the_problem() {
        let cases = [
            ("not json", "malformed message"),
            (r#"{"action":"dance"}"#, "unknown action \"dance\""),
            (
                r#"{"action":"announce","info_hash":"short","peer_id":"x"}"#,
                "invalid info_hash",
            ),
            (r#"{"info_hash":"x"}"#, "missing field action"),
        ];
        for (text, expected) in cases {
            let error = parse(text, LIMITS).unwrap_err().to_string();
            assert!(error.starts_with(expected), "{text}: {error}");
        }
    }

    #[test]
    fn relayed_messages_equal_what_serde_json_writes() {
        let offer: &RawValue = serde_json::from_str(r#"{"type":"offer","sdp":"v=0\r\n"}"#).unwrap();
        let (hash, peer) = (
            Id20([0x22; 20]),
            Id20(std::array::from_fn(|i| i as u8 * 11)),
        );
        let offer_id = Id20([0xe9; 20]);
        let expected = serde_json::json!({
            "action": "announce", "info_hash": hash, "peer_id": peer, "offer": offer, "offer_id": offer_id,
        });
        let text = relayed_offer(hash, peer, offer, offer_id);
        assert_eq!(text.len(), text.capacity());
        let ours: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(ours, expected);
        let text = relayed_answer(hash, peer, offer, offer_id);
        assert!(
            text.starts_with(r#"{"action":"announce","info_hash":"\"\""#),
            "{text}"
        );
        assert!(text.contains(r#","answer":{"type":"offer","sdp":"v=0\r\n"},"offer_id":"#));
    }

    #[test]
    fn sniff_finds_action_and_info_hash_of_refused_messages() {
        let text = format!(r#"{{"action":"scrape","info_hash":"{A}","peer_id":7}}"#);
        assert_eq!(sniff(&text), (Some("scrape"), Some(Id20([b'a'; 20]))));
        assert_eq!(sniff(r#"{"action":"dance","info_hash":"x"}"#), (None, None));
        let odd = r#"{"action":"announce","info_hash":["x"]}"#;
        assert_eq!(sniff(odd), (Some("announce"), None));
        assert_eq!(sniff("not json"), (None, None));
    }

    #[test]
    fn scrape_accepts_one_or_many_within_the_limit() {
        let one = format!(r#"{{"action":"scrape","info_hash":"{A}"}}"#);
        assert!(matches!(parse(&one, LIMITS), Ok(Request::Scrape(v)) if v.len() == 1));
        let many = format!(r#"{{"action":"scrape","info_hash":["{A}","{B}"]}}"#);
        assert!(matches!(parse(&many, LIMITS), Ok(Request::Scrape(v)) if v.len() == 2));
        let too_many =
            format!(r#"{{"action":"scrape","info_hash":["{A}","{A}","{A}","{A}","{A}"]}}"#);
        assert!(parse(&too_many, LIMITS).is_err());
    }

    #[test]
    fn hash_report_needs_64_hex_digits() {
        let good = format!(
            r#"{{"action":"hash_report","info_hash":"{A}","peer_id":"{B}","segment":"s1","sha256":"{}"}}"#,
            "ab".repeat(32)
        );
        assert!(matches!(parse(&good, LIMITS), Ok(Request::HashReport(r)) if r.sha256[0] == 0xab));
        for not_hex in ["zzzz", "+a+b"] {
            let bad = good.replace("abab", not_hex);
            assert!(parse(&bad, LIMITS).is_err(), "{not_hex} accepted");
        }
    }
}
