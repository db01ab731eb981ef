//! Meeting peers through WebTorrent trackers (`tracker/PROTOCOL.md`): one WebSocket per
//! tracker, kept up with reconnects (exponential backoff with jitter); announces carry fresh
//! WebRTC offers (all ICE candidates gathered, as WebTorrent does), relayed offers are answered,
//! answers complete pending offers. Swarms are announced again after each reconnect and at the
//! tracker's interval. Segment hashes are reported to and asked of every tracker (`hash_report`,
//! `hash_query`); the agreed hashes it answers are trusted by the core.

use crate::driver::Driver;
use crate::js::{self, get, get_f64, get_string, set};
use crate::peer;
use crate::vec_map::VecMap;
use js_sys::{Array, Object};
use peer_sdk::integrity::{Digest, MAX_HASH_QUERY_SEGMENTS, parse_hex_digest, to_hex};
use peer_sdk::tracker_session::{self, Backoff};
use peer_sdk::{Input, SegmentKey};
use std::time::Duration;
use wasm_bindgen::prelude::*;
use web_sys::{MessageEvent, RtcDataChannel, RtcPeerConnection, WebSocket};

/// A 20-byte protocol identifier.
pub type Id20 = [u8; 20];

/// The protocol's text form of an id: one code point per byte.
fn to_text(id: &Id20) -> String {
    id.iter().map(|&b| char::from(b)).collect()
}

/// Reads an id; `None` unless exactly 20 code points below U+0100.
fn from_text(text: &str) -> Option<Id20> {
    let mut id = [0u8; 20];
    let mut chars = text.chars();
    for byte in &mut id {
        *byte = u8::try_from(u32::from(chars.next()?)).ok()?;
    }
    chars.next().is_none().then_some(id)
}

/// One tracker connection.
struct Tracker {
    url: String,
    socket: Option<WebSocket>,
    connected: bool,
    /// Swarms announced on this connection: the tracker takes hash reports for them only.
    announced: Vec<Id20>,
    attempt: u32,
    handlers: Vec<Closure<dyn FnMut(JsValue)>>,
}

/// A joined swarm.
struct Swarm {
    next_announce: Duration,
    interval: Duration,
}

/// An offer sent through a tracker, waiting for an answer.
struct Pending {
    pc: RtcPeerConnection,
    channel: RtcDataChannel,
    info_hash: Id20,
    created: Duration,
}

/// Tracker connections, joined swarms and pending offers.
pub struct Signaling {
    peer_id: Id20,
    trackers: Vec<Tracker>,
    swarms: VecMap<Id20, Swarm>,
    pending: VecMap<Id20, Pending>,
}

impl Signaling {
    /// A peer connection ended, leaving `peers_left`: every swarm announces again as
    /// [`tracker_session::reannounce_after_loss`] says.
    pub fn peer_lost(&mut self, now: Duration, peers_left: usize) {
        let Some(wait) = tracker_session::reannounce_after_loss(peers_left) else {
            return;
        };
        for (_, swarm) in self.swarms.iter_mut() {
            swarm.next_announce = swarm.next_announce.min(now + wait);
        }
    }

    /// Signaling through `urls` as a new random peer id (not connected yet).
    pub fn new(urls: &[String]) -> Signaling {
        Signaling {
            peer_id: js::random_id(&tracker_session::CLIENT_PREFIX),
            trackers: urls
                .iter()
                .map(|url| Tracker {
                    url: url.clone(),
                    socket: None,
                    connected: false,
                    announced: Vec::new(),
                    attempt: 0,
                    handlers: Vec::new(),
                })
                .collect(),
            swarms: VecMap::default(),
            pending: VecMap::default(),
        }
    }

    /// Closes every tracker connection and pending offer.
    pub fn close(&mut self) {
        for tracker in &mut self.trackers {
            tracker.disconnect();
        }
        for pending in std::mem::take(&mut self.pending).into_values() {
            pending.pc.close();
        }
    }
}

impl Tracker {
    fn disconnect(&mut self) {
        if let Some(socket) = self.socket.take() {
            socket.set_onopen(None);
            socket.set_onmessage(None);
            socket.set_onclose(None);
            let _ = socket.close();
        }
        self.connected = false;
    }

    fn send(&self, message: &Object) {
        let Some(socket) = self.socket.as_ref().filter(|_| self.connected) else {
            return;
        };
        if let Some(text) = js_sys::JSON::stringify(message)
            .ok()
            .and_then(|t| t.as_string())
        {
            let _ = socket.send_with_str(&text);
        }
    }
}

impl Driver {
    /// Opens every tracker connection.
    pub fn connect_trackers(&mut self) {
        for index in 0..self.signaling.trackers.len() {
            self.connect_tracker(index);
        }
    }

    fn connect_tracker(&mut self, index: usize) {
        let Some(tracker) = self.signaling.trackers.get_mut(index) else {
            return;
        };
        tracker.disconnect();
        tracker.handlers.clear();
        let Ok(socket) = WebSocket::new(&tracker.url) else {
            return;
        };
        let this = self.this.clone();
        let on_open = Closure::<dyn FnMut(JsValue)>::new(move |_| {
            Driver::with(&this, |d| d.on_tracker_open(index));
        });
        let this = self.this.clone();
        let on_message = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
            let text = event
                .dyn_ref::<MessageEvent>()
                .and_then(|e| e.data().as_string());
            if let Some(text) = text {
                Driver::with(&this, |d| d.on_tracker_message(index, &text));
            }
        });
        let this = self.this.clone();
        let on_close = Closure::<dyn FnMut(JsValue)>::new(move |_| {
            Driver::with(&this, |d| d.on_tracker_closed(index));
        });
        socket.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        socket.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        socket.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        tracker.socket = Some(socket);
        tracker.handlers = vec![on_open, on_message, on_close];
    }

    fn on_tracker_open(&mut self, index: usize) {
        if let Some(tracker) = self.signaling.trackers.get_mut(index) {
            tracker.connected = true;
            tracker.attempt = 0;
            tracker.announced.clear();
        }
        let swarms: Vec<Id20> = self.signaling.swarms.iter().map(|(k, _)| *k).collect();
        for info_hash in swarms {
            self.announce(index, info_hash, "started");
        }
    }

    fn on_tracker_closed(&mut self, index: usize) {
        let Some(tracker) = self.signaling.trackers.get_mut(index) else {
            return;
        };
        tracker.connected = false;
        let wait = Backoff::default().delay(tracker.attempt, js_sys::Math::random());
        tracker.attempt = tracker.attempt.saturating_add(1);
        let this = self.this.clone();
        js::after(wait, move || {
            Driver::with(&this, |d| d.connect_tracker(index));
        });
    }

    /// Joins the swarm of a rendition: announces now on every connected tracker and periodically.
    pub fn join_swarm(&mut self, rendition: u16) {
        let Some(info_hash) = self.stream.info_hash(rendition) else {
            return;
        };
        let swarm = Swarm {
            next_announce: js::now() + tracker_session::DEFAULT_INTERVAL,
            interval: tracker_session::DEFAULT_INTERVAL,
        };
        self.signaling.swarms.insert(info_hash, swarm);
        for index in 0..self.signaling.trackers.len() {
            self.announce(index, info_hash, "started");
        }
    }

    /// Periodic work: due re-announces, stale offers, peers that never opened, stalled requests.
    pub fn signaling_tick(&mut self) {
        let now = js::now();
        let stale: Vec<Id20> = self
            .signaling
            .pending
            .iter()
            .filter(|(_, p)| tracker_session::offer_expired(now.saturating_sub(p.created)))
            .map(|(id, _)| *id)
            .collect();
        for offer_id in stale {
            if let Some(pending) = self.signaling.pending.remove(&offer_id) {
                pending.pc.close();
            }
        }
        let due: Vec<Id20> = self
            .signaling
            .swarms
            .iter_mut()
            .filter(|(_, s)| s.next_announce <= now)
            .map(|(hash, swarm)| {
                swarm.next_announce = now + swarm.interval;
                *hash
            })
            .collect();
        for info_hash in due {
            for index in 0..self.signaling.trackers.len() {
                self.announce(index, info_hash, "update");
            }
        }
        self.drop_unopened_peers(now);
        self.fail_stalled_http(now);
    }

    /// Announces to one swarm on one tracker with fresh offers (made asynchronously).
    fn announce(&mut self, index: usize, info_hash: Id20, event: &'static str) {
        if !self
            .signaling
            .trackers
            .get(index)
            .is_some_and(|t| t.connected)
        {
            return;
        }
        let count = self.settings.offers_per_announce;
        let rtc = self.rtc_settings();
        let this = self.this.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let mut offers = Vec::with_capacity(count);
            for _ in 0..count {
                if let Some(offer) = peer::create_offer(&rtc).await {
                    offers.push(offer);
                }
            }
            Driver::with(&this, |d| d.send_announce(index, info_hash, event, offers));
        });
    }

    fn send_announce(
        &mut self,
        index: usize,
        info_hash: Id20,
        event: &str,
        offers: Vec<(RtcPeerConnection, RtcDataChannel, String)>,
    ) {
        let list = Array::new();
        let now = js::now();
        for (pc, channel, sdp) in offers {
            let offer_id = js::random_id(&[]);
            let offer = Object::new();
            set(&offer, "type", "offer");
            set(&offer, "sdp", sdp);
            let entry = Object::new();
            set(&entry, "offer", offer);
            set(&entry, "offer_id", to_text(&offer_id));
            list.push(&entry);
            let pending = Pending {
                pc,
                channel,
                info_hash,
                created: now,
            };
            self.signaling.pending.insert(offer_id, pending);
        }
        let message = self.message("announce", &info_hash);
        set(&message, "numwant", list.length());
        set(&message, "uploaded", 0);
        set(&message, "downloaded", 0);
        set(&message, "event", event);
        set(&message, "offers", list);
        if !self.settings.engine.upload {
            let ext = Object::new();
            set(&ext, "upload", false);
            set(&message, "ext", ext);
        }
        if let Some(tracker) = self.signaling.trackers.get_mut(index) {
            tracker.send(&message);
            if !tracker.announced.contains(&info_hash) {
                tracker.announced.push(info_hash);
            }
        }
    }

    /// Reports the hash of a segment fetched from the CDN to every tracker where this peer is
    /// announced in the segment's swarm.
    pub fn report_hash(&self, key: SegmentKey, sha256: &Digest) {
        let (Some(info_hash), Some(name)) = (
            self.stream.info_hash(key.rendition),
            self.stream.model.tracker_name(key),
        ) else {
            return;
        };
        let message = self.message("hash_report", &info_hash);
        set(&message, "segment", name);
        set(&message, "sha256", to_hex(sha256));
        for tracker in &self.signaling.trackers {
            if tracker.announced.contains(&info_hash) {
                tracker.send(&message);
            }
        }
    }

    /// Asks every tracker for the agreed hashes of the segments the core queried in one turn:
    /// one `hash_query` per swarm and at most [`MAX_HASH_QUERY_SEGMENTS`] segments.
    pub fn query_hashes(&self, keys: Vec<SegmentKey>) {
        for (rendition, info_hash) in self
            .stream
            .renditions
            .iter()
            .map(|r| r.info_hash)
            .enumerate()
        {
            let names: Vec<&str> = keys
                .iter()
                .filter(|key| usize::from(key.rendition) == rendition)
                .filter_map(|key| self.stream.model.tracker_name(*key))
                .collect();
            for chunk in names.chunks(MAX_HASH_QUERY_SEGMENTS) {
                let message = self.message("hash_query", &info_hash);
                let list: Array = chunk.iter().map(|name| JsValue::from_str(name)).collect();
                set(&message, "segments", list);
                for tracker in &self.signaling.trackers {
                    tracker.send(&message);
                }
            }
        }
    }

    /// A tracker answered a hash query: the core trusts the agreed hashes (the tracker states
    /// no size; a matching digest fixes it).
    fn on_tracker_hashes(&mut self, info_hash: &Id20, hashes: &JsValue) {
        let Some(rendition) = self.stream.rendition_of(info_hash) else {
            return;
        };
        let Some(hashes) = hashes.dyn_ref::<Object>() else {
            return;
        };
        for name in Object::keys(hashes).iter().take(MAX_HASH_QUERY_SEGMENTS) {
            let Some(name) = name.as_string() else {
                continue;
            };
            let Some(sha256) = get_string(hashes, &name).and_then(|hex| parse_hex_digest(&hex))
            else {
                continue;
            };
            for key in self.stream.model.keys_named(rendition, &name) {
                self.input(Input::TrackerHash {
                    key,
                    sha256,
                    size: None,
                });
            }
        }
    }

    fn message(&self, action: &str, info_hash: &Id20) -> Object {
        let message = Object::new();
        set(&message, "action", action);
        set(&message, "info_hash", to_text(info_hash));
        set(&message, "peer_id", to_text(&self.signaling.peer_id));
        message
    }

    fn on_tracker_message(&mut self, index: usize, text: &str) {
        let Ok(message) = js_sys::JSON::parse(text) else {
            return;
        };
        let id = |key| get_string(&message, key).as_deref().and_then(from_text);
        let Some(info_hash) = id("info_hash") else {
            return;
        };
        match get_string(&message, "action").as_deref() {
            Some("announce") => {}
            Some("hash_query") => {
                return self.on_tracker_hashes(&info_hash, &get(&message, "hashes"));
            }
            _ => return,
        }
        let sdp = |key| get_string(&get(&message, key), "sdp");
        if let (Some(offer), Some(peer_id), Some(offer_id)) =
            (sdp("offer"), id("peer_id"), id("offer_id"))
        {
            self.answer_offer(index, info_hash, peer_id, offer_id, offer);
        } else if let (Some(answer), Some(offer_id)) = (sdp("answer"), id("offer_id")) {
            self.accept_answer(info_hash, offer_id, answer);
        } else if let Some(interval) = get_f64(&message, "interval")
            && let Some(swarm) = self.signaling.swarms.get_mut(&info_hash)
        {
            let interval = Duration::from_secs_f64(interval.clamp(5.0, 3600.0));
            swarm.next_announce = js::now() + interval;
            swarm.interval = interval;
        }
    }

    fn answer_offer(
        &mut self,
        index: usize,
        info_hash: Id20,
        peer_id: Id20,
        offer_id: Id20,
        offer: String,
    ) {
        let Some(rendition) = self.stream.rendition_of(&info_hash) else {
            return;
        };
        if !self.signaling.swarms.contains_key(&info_hash) || peer_id == self.signaling.peer_id {
            return;
        }
        let rtc = self.rtc_settings();
        let this = self.this.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let Some((pc, answer)) = peer::accept_offer(&rtc, &offer).await else {
                return;
            };
            Driver::with(&this, |d| {
                let message = d.message("announce", &info_hash);
                set(&message, "to_peer_id", to_text(&peer_id));
                set(&message, "offer_id", to_text(&offer_id));
                let body = Object::new();
                set(&body, "type", "answer");
                set(&body, "sdp", answer);
                set(&message, "answer", body);
                if let Some(tracker) = d.signaling.trackers.get(index) {
                    tracker.send(&message);
                }
                d.attach_peer(pc, None, rendition);
            });
        });
    }

    fn accept_answer(&mut self, info_hash: Id20, offer_id: Id20, answer: String) {
        let Some(pending) = self.signaling.pending.remove(&offer_id) else {
            return;
        };
        let Some(rendition) = self
            .stream
            .rendition_of(&info_hash)
            .filter(|_| pending.info_hash == info_hash)
        else {
            pending.pc.close();
            return;
        };
        let this = self.this.clone();
        wasm_bindgen_futures::spawn_local(async move {
            if peer::set_answer(&pending.pc, &answer).await {
                Driver::with(&this, |d| {
                    d.attach_peer(pending.pc, Some(pending.channel), rendition);
                });
            } else {
                pending.pc.close();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_their_text_form() {
        let id: Id20 = core::array::from_fn(|i| (i as u8).wrapping_mul(29).wrapping_add(200));
        assert_eq!(from_text(&to_text(&id)), Some(id));
        assert_eq!(from_text("short"), None);
        assert_eq!(from_text(&"€".repeat(20)), None);
        assert_eq!(from_text(&"a".repeat(21)), None);
    }
}
