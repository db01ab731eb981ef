//! A WebTorrent tracker client over WebSocket: the messages the `bittorrent-tracker` client
//! sends, one connection kept up with reconnects (exponential backoff with jitter).
//!
//! The client is a task; [`TrackerClient`] sends it requests and [`TrackerEvents`] yields what
//! the tracker said. Requests made while the connection is down are dropped (offers go stale
//! quickly): after [`TrackerEvent::Connected`] the owner announces again.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use futures_util::{SinkExt, StreamExt};
use peer_sdk::integrity::{
    Digest, MAX_HASH_QUERY_SEGMENTS, parse_hex_digest, to_hex, tracker_segment_name,
};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::id20::{self, Id20};

/// Largest tracker message accepted (an announce relay carries one SDP of a few KiB).
const MAX_MESSAGE: usize = 256 * 1024;

/// How many tracker events may wait for the owner.
const EVENT_QUEUE: usize = 256;

/// Most hashes read from one `hash_query` reply (a reply answers one query at most).
const MAX_REPLY_HASHES: usize = MAX_HASH_QUERY_SEGMENTS;

pub use peer_sdk::tracker_session::Backoff;

/// Extension fields of this project's tracker (see `tracker/PROTOCOL.md`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PeerExtension {
    /// Whether this peer uploads to others.
    pub upload: bool,
    /// Upload capacity offered, bytes per second (0 = unknown).
    pub capacity: u64,
    /// Playback position in seconds (VOD), to meet peers watching the same part.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<f64>,
}

/// An announce to one swarm.
#[derive(Debug, Clone)]
pub struct Announce {
    /// The swarm.
    pub info_hash: Id20,
    /// `started`, `update`, `completed` or `stopped`.
    pub event: AnnounceEvent,
    /// How many peers the tracker should relay offers to.
    pub numwant: usize,
    /// The offers, as `(offer_id, sdp)`.
    pub offers: Vec<(Id20, String)>,
    /// Extension fields, sent only to trackers that understand them.
    pub ext: Option<PeerExtension>,
}

/// The lifecycle event of an announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnounceEvent {
    /// Joining the swarm.
    Started,
    /// Periodic refresh.
    Update,
    /// Leaving the swarm.
    Stopped,
}

impl AnnounceEvent {
    fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Update => "update",
            Self::Stopped => "stopped",
        }
    }
}

/// What the tracker told this client.
#[derive(Debug, Clone, PartialEq)]
pub enum TrackerEvent {
    /// The WebSocket is (again) connected; announce to the swarms this peer is in.
    Connected,
    /// The WebSocket dropped; the client reconnects by itself.
    Disconnected,
    /// The reply to an announce.
    AnnounceReply {
        /// The swarm.
        info_hash: Id20,
        /// Seconds until the next announce is due.
        interval: u64,
        /// Seeders in the swarm.
        complete: u64,
        /// Leechers in the swarm.
        incomplete: u64,
    },
    /// A peer's offer, to be answered.
    Offer {
        /// The swarm.
        info_hash: Id20,
        /// The offering peer.
        peer_id: Id20,
        /// The id the answer must carry.
        offer_id: Id20,
        /// The offer SDP.
        sdp: String,
    },
    /// A peer's answer to one of this client's offers.
    Answer {
        /// The swarm.
        info_hash: Id20,
        /// The answering peer.
        peer_id: Id20,
        /// The offer answered.
        offer_id: Id20,
        /// The answer SDP.
        sdp: String,
    },
    /// The reply to a `hash_query`: the agreed hashes the tracker knows (others are absent).
    Hashes {
        /// The swarm.
        info_hash: Id20,
        /// Segment name and its agreed SHA-256.
        hashes: Vec<(String, Digest)>,
    },
    /// The tracker refused a request.
    Failure {
        /// The swarm, when the tracker named it.
        info_hash: Option<Id20>,
        /// The tracker's reason.
        reason: String,
    },
}

/// Sends requests to the tracker connection task. Dropping every clone ends the task.
#[derive(Debug, Clone)]
pub struct TrackerClient {
    peer_id: Id20,
    requests: mpsc::UnboundedSender<String>,
}

/// The events of one tracker connection.
#[derive(Debug)]
pub struct TrackerEvents {
    events: mpsc::Receiver<TrackerEvent>,
}

impl TrackerEvents {
    /// The next event; `None` once the client has ended.
    pub async fn next(&mut self) -> Option<TrackerEvent> {
        self.events.recv().await
    }
}

impl TrackerClient {
    /// Starts the connection task for `url` (`ws://` or `wss://`) as `peer_id`. With `source`,
    /// the connection leaves from that local address (`ws://` only), as the tracker's GeoIP
    /// matching sees it; tests use 127.x.y.z addresses to play viewers of different ISPs.
    pub fn spawn(
        url: String,
        peer_id: Id20,
        backoff: Backoff,
        source: Option<IpAddr>,
    ) -> (Self, TrackerEvents) {
        let (requests, requests_rx) = mpsc::unbounded_channel();
        let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
        tokio::spawn(run(url, backoff, source, requests_rx, events_tx));
        (Self { peer_id, requests }, TrackerEvents { events })
    }

    /// This client's peer id.
    pub fn peer_id(&self) -> Id20 {
        self.peer_id
    }

    /// Announces to a swarm (dropped if the connection is down).
    pub fn announce(&self, announce: &Announce) {
        let offers: Vec<_> = announce
            .offers
            .iter()
            .map(|(offer_id, sdp)| {
                json!({"offer": {"type": "offer", "sdp": sdp}, "offer_id": id20::to_text(offer_id)})
            })
            .collect();
        let mut message = json!({
            "action": "announce",
            "info_hash": id20::to_text(&announce.info_hash),
            "peer_id": id20::to_text(&self.peer_id),
            "numwant": announce.numwant,
            "uploaded": 0,
            "downloaded": 0,
            "event": announce.event.as_str(),
            "offers": offers,
        });
        if let Some(ext) = announce.ext {
            message["ext"] = json!(ext);
        }
        let _ = self.requests.send(message.to_string());
    }

    /// Sends an answer to a relayed offer.
    pub fn answer(&self, info_hash: &Id20, to_peer_id: &Id20, offer_id: &Id20, sdp: &str) {
        let message = json!({
            "action": "announce",
            "info_hash": id20::to_text(info_hash),
            "peer_id": id20::to_text(&self.peer_id),
            "to_peer_id": id20::to_text(to_peer_id),
            "offer_id": id20::to_text(offer_id),
            "answer": {"type": "answer", "sdp": sdp},
        });
        let _ = self.requests.send(message.to_string());
    }

    /// Reports the SHA-256 of a segment this peer fetched from the CDN (`hash_report`). The
    /// tracker takes it only from a peer announced in the swarm on this connection. A name the
    /// tracker would refuse (empty, or longer than 256 bytes) is not sent.
    pub fn report_hash(&self, info_hash: &Id20, segment: &str, sha256: &Digest) {
        if !is_segment_name(segment) {
            return;
        }
        let message = json!({
            "action": "hash_report",
            "info_hash": id20::to_text(info_hash),
            "peer_id": id20::to_text(&self.peer_id),
            "segment": segment,
            "sha256": to_hex(sha256),
        });
        let _ = self.requests.send(message.to_string());
    }

    /// Asks for the agreed hashes of segments (`hash_query`), in queries of at most
    /// [`MAX_HASH_QUERY_SEGMENTS`]; answered by [`TrackerEvent::Hashes`]. Names the tracker would
    /// refuse are left out.
    pub fn query_hashes<'a>(&self, info_hash: &Id20, segments: impl IntoIterator<Item = &'a str>) {
        let names: Vec<&str> = segments
            .into_iter()
            .filter(|s| is_segment_name(s))
            .collect();
        for chunk in names.chunks(MAX_HASH_QUERY_SEGMENTS) {
            let message = json!({
                "action": "hash_query",
                "info_hash": id20::to_text(info_hash),
                "segments": chunk,
            });
            let _ = self.requests.send(message.to_string());
        }
    }
}

/// Whether `name` is a segment name as the tracker takes it (see [`tracker_segment_name`]).
fn is_segment_name(name: &str) -> bool {
    tracker_segment_name(name) == Some(name)
}

/// Keeps one WebSocket up until every [`TrackerClient`] is dropped.
async fn run(
    url: String,
    backoff: Backoff,
    source: Option<IpAddr>,
    mut requests: mpsc::UnboundedReceiver<String>,
    events: mpsc::Sender<TrackerEvent>,
) {
    let mut attempt = 0u32;
    loop {
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE))
            .max_frame_size(Some(MAX_MESSAGE));
        match connect(&url, source, config).await {
            Ok(socket) => {
                attempt = 0;
                if events.send(TrackerEvent::Connected).await.is_err() {
                    return;
                }
                let ended = serve(socket, &mut requests, &events).await;
                if ended == Session::OwnerGone
                    || events.send(TrackerEvent::Disconnected).await.is_err()
                {
                    return;
                }
            }
            Err(error) => tracing::debug!(%url, %error, "tracker connection failed"),
        }
        let wait = backoff.delay(attempt, rand::rng().random());
        attempt = attempt.saturating_add(1);
        // Requests made while disconnected are stale by the time we are back.
        let sleep = tokio::time::sleep(wait);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => break,
                request = requests.recv() => if request.is_none() { return },
            }
        }
    }
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens the WebSocket, from `source` when given.
async fn connect(
    url: &str,
    source: Option<IpAddr>,
    config: WebSocketConfig,
) -> Result<Socket, String> {
    let Some(source) = source else {
        return tokio_tungstenite::connect_async_with_config(url, Some(config), false)
            .await
            .map(|(socket, _)| socket)
            .map_err(|error| error.to_string());
    };
    let parsed = url::Url::parse(url).map_err(|error| error.to_string())?;
    if parsed.scheme() != "ws" {
        return Err("a source address can only be bound for ws:// trackers".into());
    }
    let host = parsed.host_str().ok_or("tracker URL without a host")?;
    let port = parsed.port_or_known_default().unwrap_or(80);
    let remote: SocketAddr = tokio::net::lookup_host((host, port))
        .await
        .map_err(|error| error.to_string())?
        .find(|addr| addr.is_ipv4() == source.is_ipv4())
        .ok_or("the tracker has no address of the source address's family")?;
    let socket = if source.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|error| error.to_string())?;
    socket
        .bind(SocketAddr::new(source, 0))
        .map_err(|error| format!("cannot bind {source}: {error}"))?;
    let stream = socket
        .connect(remote)
        .await
        .map_err(|error| error.to_string())?;
    tokio_tungstenite::client_async_with_config(url, MaybeTlsStream::Plain(stream), Some(config))
        .await
        .map(|(socket, _)| socket)
        .map_err(|error| error.to_string())
}

#[derive(Debug, PartialEq, Eq)]
enum Session {
    Dropped,
    OwnerGone,
}

async fn serve<S>(
    socket: tokio_tungstenite::WebSocketStream<S>,
    requests: &mut mpsc::UnboundedReceiver<String>,
    events: &mpsc::Sender<TrackerEvent>,
) -> Session
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut sink, mut stream) = socket.split();
    loop {
        tokio::select! {
            request = requests.recv() => {
                let Some(text) = request else {
                    let _ = sink.close().await;
                    return Session::OwnerGone;
                };
                if sink.send(Message::text(text)).await.is_err() {
                    return Session::Dropped;
                }
            }
            message = stream.next() => {
                let text = match message {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return Session::Dropped,
                    Some(Ok(_)) => continue,
                };
                match parse(&text) {
                    Ok(Some(event)) => {
                        if events.send(event).await.is_err() {
                            return Session::OwnerGone;
                        }
                    }
                    Ok(None) => {}
                    Err(problem) => tracing::warn!(problem, "ignoring a bad tracker message"),
                }
            }
        }
    }
}

/// The shape of every tracker message, read loosely and then validated.
#[derive(Deserialize)]
struct Incoming {
    action: Option<String>,
    info_hash: Option<String>,
    peer_id: Option<String>,
    offer_id: Option<String>,
    offer: Option<Sdp>,
    answer: Option<Sdp>,
    interval: Option<u64>,
    complete: Option<u64>,
    incomplete: Option<u64>,
    hashes: Option<HashMap<String, String>>,
    #[serde(rename = "failure reason")]
    failure_reason: Option<String>,
    #[serde(rename = "warning message")]
    warning_message: Option<String>,
}

#[derive(Deserialize)]
struct Sdp {
    sdp: String,
}

/// Turns a tracker message into an event; `Ok(None)` for messages with nothing to act on.
fn parse(text: &str) -> Result<Option<TrackerEvent>, &'static str> {
    let message: Incoming = serde_json::from_str(text).map_err(|_| "not a JSON object")?;
    let info_hash = message.info_hash.as_deref().and_then(id20::from_text);
    if let Some(reason) = message.failure_reason {
        return Ok(Some(TrackerEvent::Failure { info_hash, reason }));
    }
    if let Some(warning) = message.warning_message {
        tracing::info!(warning, "tracker warning");
    }
    match message.action.as_deref() {
        Some("announce") => {}
        Some("hash_query") => {
            let info_hash = info_hash.ok_or("hash_query without a valid info_hash")?;
            return Ok(Some(hashes_reply(
                info_hash,
                message.hashes.unwrap_or_default(),
            )?));
        }
        _ => return Ok(None),
    }
    let info_hash = info_hash.ok_or("announce without a valid info_hash")?;
    let id = |field: Option<String>, name| field.as_deref().and_then(id20::from_text).ok_or(name);
    if let Some(offer) = message.offer {
        return Ok(Some(TrackerEvent::Offer {
            info_hash,
            peer_id: id(message.peer_id, "offer without a valid peer_id")?,
            offer_id: id(message.offer_id, "offer without a valid offer_id")?,
            sdp: offer.sdp,
        }));
    }
    if let Some(answer) = message.answer {
        return Ok(Some(TrackerEvent::Answer {
            info_hash,
            peer_id: id(message.peer_id, "answer without a valid peer_id")?,
            offer_id: id(message.offer_id, "answer without a valid offer_id")?,
            sdp: answer.sdp,
        }));
    }
    Ok(message
        .interval
        .map(|interval| TrackerEvent::AnnounceReply {
            info_hash,
            interval,
            complete: message.complete.unwrap_or(0),
            incomplete: message.incomplete.unwrap_or(0),
        }))
}

/// Reads the hashes of a `hash_query` reply.
fn hashes_reply(
    info_hash: Id20,
    hashes: HashMap<String, String>,
) -> Result<TrackerEvent, &'static str> {
    if hashes.len() > MAX_REPLY_HASHES {
        return Err("hash_query reply with more hashes than a query asks");
    }
    let hashes = hashes
        .into_iter()
        .map(|(name, hex)| Some((name, parse_hex_digest(&hex)?)))
        .collect::<Option<_>>()
        .ok_or("hash_query reply with a hash that is not 64 hex digits")?;
    Ok(TrackerEvent::Hashes { info_hash, hashes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_relayed_offers_answers_replies_and_failures() {
        let hash = id20::to_text(&[0xff; 20]);
        let peer = id20::to_text(&[1; 20]);
        let offer = json!({"action":"announce","info_hash":hash,"peer_id":peer,"offer_id":peer,
            "offer":{"type":"offer","sdp":"v=0"}})
        .to_string();
        assert_eq!(
            parse(&offer),
            Ok(Some(TrackerEvent::Offer {
                info_hash: [0xff; 20],
                peer_id: [1; 20],
                offer_id: [1; 20],
                sdp: "v=0".into()
            }))
        );
        let reply = json!({"action":"announce","info_hash":hash,"interval":120,"complete":0,"incomplete":3});
        assert_eq!(
            parse(&reply.to_string()),
            Ok(Some(TrackerEvent::AnnounceReply {
                info_hash: [0xff; 20],
                interval: 120,
                complete: 0,
                incomplete: 3
            }))
        );
        let failure = json!({"failure reason":"invalid info_hash","action":"announce"});
        assert_eq!(
            parse(&failure.to_string()),
            Ok(Some(TrackerEvent::Failure {
                info_hash: None,
                reason: "invalid info_hash".into()
            }))
        );
    }

    #[test]
    fn parses_hash_query_replies() {
        let hash = id20::to_text(&[3; 20]);
        let digest = peer_sdk::integrity::sha256(b"segment");
        let reply = json!({"action":"hash_query","info_hash":hash,
            "hashes":{"seg-1.ts": to_hex(&digest)}});
        assert_eq!(
            parse(&reply.to_string()),
            Ok(Some(TrackerEvent::Hashes {
                info_hash: [3; 20],
                hashes: vec![("seg-1.ts".into(), digest)]
            }))
        );
        let empty = json!({"action":"hash_query","info_hash":hash,"hashes":{}});
        assert_eq!(
            parse(&empty.to_string()),
            Ok(Some(TrackerEvent::Hashes {
                info_hash: [3; 20],
                hashes: Vec::new()
            }))
        );
        let bad = json!({"action":"hash_query","info_hash":hash,"hashes":{"a.ts":"xyz"}});
        assert!(parse(&bad.to_string()).is_err());
        let many: HashMap<String, String> = (0..=MAX_REPLY_HASHES)
            .map(|i| (format!("{i}.ts"), to_hex(&digest)))
            .collect();
        let flood = json!({"action":"hash_query","info_hash":hash,"hashes":many});
        assert!(parse(&flood.to_string()).is_err());
    }

    #[test]
    fn hash_queries_are_split_and_names_the_tracker_refuses_are_not_sent() {
        let (requests, mut sent) = mpsc::unbounded_channel();
        let client = TrackerClient {
            peer_id: [1; 20],
            requests,
        };
        let long = "x".repeat(peer_sdk::integrity::MAX_TRACKER_SEGMENT_NAME + 1);
        let mut names: Vec<String> = (0..130).map(|i| format!("{i}.ts")).collect();
        names.extend([long.clone(), String::new()]);
        client.query_hashes(&[2; 20], names.iter().map(String::as_str));
        let mut sizes = Vec::new();
        while let Ok(text) = sent.try_recv() {
            let message: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(message["action"], "hash_query");
            sizes.push(message["segments"].as_array().unwrap().len());
        }
        assert_eq!(sizes, [64, 64, 2]);
        client.report_hash(&[2; 20], &long, &[0; 32]);
        assert!(sent.try_recv().is_err(), "a name too long is not reported");
        client.report_hash(&[2; 20], "seg-1.ts", &[0xab; 32]);
        let report: serde_json::Value = serde_json::from_str(&sent.try_recv().unwrap()).unwrap();
        assert_eq!(report["segment"], "seg-1.ts");
        assert_eq!(report["sha256"], "ab".repeat(32));
    }

    #[test]
    fn bad_messages_are_errors_not_panics() {
        assert!(parse("not json").is_err());
        assert!(parse(r#"{"action":"announce","info_hash":"short"}"#).is_err());
        let hash = id20::to_text(&[7; 20]);
        let bad_peer = json!({"action":"announce","info_hash":hash,"peer_id":"x","offer_id":"y","offer":{"sdp":"v=0"}});
        assert!(parse(&bad_peer.to_string()).is_err());
        assert_eq!(parse(r#"{"action":"scrape"}"#), Ok(None));
    }
}
