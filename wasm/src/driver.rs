//! The driver: one per player. It feeds the sans-IO core (`peer_sdk::Engine`) its inputs (time,
//! playlists, player requests, peer bytes, HTTP progress) and carries out its outputs with the
//! browser's APIs (the submodules of this crate). Every browser callback enters through
//! [`Driver::with`], which runs the outputs the input caused and re-arms the wake-up timer.

use crate::config::Settings;
use crate::http::Http;
use crate::js::{self, set};
use crate::peer::Peer;
use crate::stream::Stream;
use crate::tracker::Signaling;
use crate::vec_map::VecMap;
use js_sys::{Function, Object, Uint8Array};
use peer_sdk::{
    DigestJob, Engine, Event, Input, Output, PeerId, RequestId, SegmentKey, SegmentSource,
};
use std::cell::RefCell;
use std::rc::{Rc, Weak};
use std::time::Duration;
use wasm_bindgen::prelude::*;

/// The longest the driver sleeps without a look at announces and stale offers.
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// A player's pending request: the promise's `resolve` and `reject`.
pub struct Waiter {
    /// Fulfils the player's promise with the segment bytes.
    pub resolve: Function,
    /// Rejects it (the driver was destroyed).
    pub reject: Function,
}

/// Everything one player's peer-assisted delivery needs.
pub struct Driver {
    /// The core.
    pub engine: Engine,
    /// The integrator's settings.
    pub settings: Settings,
    /// Renditions, segments and swarm ids seen in playlists.
    pub stream: Stream,
    /// Tracker connections and pending offers.
    pub signaling: Signaling,
    /// Running HTTP requests.
    pub http: VecMap<RequestId, Http>,
    /// Peer connections, open or opening.
    pub peers: VecMap<PeerId, Peer>,
    /// The next peer id handed out.
    pub next_peer: u64,
    /// Player promises waiting for a segment.
    pub waiting: VecMap<SegmentKey, Vec<Waiter>>,
    /// Media time at which the last delivered segment ends (the player's buffer end).
    pub buffered_end: Option<Duration>,
    /// Browser callbacks of closed peers, freed at the next timer tick (never while running).
    pub graveyard: Vec<Peer>,
    /// Events to hand to `onEvent` once the driver is no longer borrowed.
    events: Vec<(&'static str, Object)>,
    /// The wake-up timer: its callback, handle and due time.
    timer: Option<Closure<dyn FnMut()>>,
    timer_due: Option<(i32, Duration)>,
    /// A handle on the driver itself, for callbacks.
    pub this: Weak<RefCell<Driver>>,
    /// Set by `destroy`: no more work is started.
    pub destroyed: bool,
}

impl Driver {
    /// A new driver; connects to the trackers at once.
    pub fn new(settings: Settings) -> Rc<RefCell<Driver>> {
        let rc = Rc::new_cyclic(|this: &Weak<RefCell<Driver>>| {
            RefCell::new(Driver {
                engine: Engine::new(settings.engine.clone()),
                stream: Stream::new(settings.swarm_id.clone()),
                signaling: Signaling::new(&settings.trackers),
                settings,
                http: VecMap::default(),
                peers: VecMap::default(),
                next_peer: 0,
                waiting: VecMap::default(),
                buffered_end: None,
                graveyard: Vec::new(),
                events: Vec::new(),
                timer: None,
                timer_due: None,
                this: this.clone(),
                destroyed: false,
            })
        });
        let weak = Rc::downgrade(&rc);
        let tick = Closure::<dyn FnMut()>::new(move || {
            Driver::with(&weak, |d| {
                d.timer_due = None;
                d.graveyard.clear();
                d.signaling_tick();
                d.engine.handle_timeout(js::now());
            });
        });
        rc.borrow_mut().timer = Some(tick);
        Driver::with(&Rc::downgrade(&rc), Driver::connect_trackers);
        rc
    }

    /// Runs `f` on the driver, then carries out the core's outputs, re-arms the timer and
    /// hands out events. Does nothing once the driver is gone (late browser callbacks).
    pub fn with(this: &Weak<RefCell<Driver>>, f: impl FnOnce(&mut Driver)) {
        let Some(rc) = this.upgrade() else {
            return;
        };
        let Ok(mut driver) = rc.try_borrow_mut() else {
            return;
        };
        if driver.destroyed {
            return;
        }
        f(&mut driver);
        drop(driver);
        Driver::settle(&rc);
    }

    /// The non-generic part of [`Driver::with`] (one copy in the binary, not one per caller).
    fn settle(rc: &Rc<RefCell<Driver>>) {
        let (events, on_event) = {
            let Ok(mut driver) = rc.try_borrow_mut() else {
                return;
            };
            driver.run_outputs();
            driver.arm_timer();
            (
                std::mem::take(&mut driver.events),
                driver.settings.on_event.clone(),
            )
        };
        if let Some(on_event) = on_event {
            for (kind, detail) in events {
                let _ = on_event.call2(&JsValue::NULL, &JsValue::from_str(kind), &detail);
            }
        }
    }

    /// Feeds one input at the current time.
    pub fn input(&mut self, input: Input<'_>) {
        self.engine.handle(input, js::now());
    }

    /// Queues an event for `onEvent`.
    pub fn emit(&mut self, kind: &'static str, detail: Object) {
        self.events.push((kind, detail));
    }

    fn arm_timer(&mut self) {
        let now = js::now();
        let due = self
            .engine
            .poll_timeout()
            .unwrap_or(now + MAX_SLEEP)
            .min(now + MAX_SLEEP);
        if let Some((handle, at)) = self.timer_due {
            if at <= due {
                return;
            }
            js::window().clear_timeout_with_handle(handle);
        }
        if let Some(tick) = &self.timer {
            let handle = js::set_timeout(tick.as_ref().unchecked_ref(), due.saturating_sub(now));
            self.timer_due = Some((handle, due));
        }
    }

    /// Carries out the core's outputs. The browser fires `bufferedamountlow` only when a
    /// channel's buffer drains across the threshold; a channel that stayed below it after the
    /// core's last sends would never fire, and the core (which counts what it sent) would wait
    /// forever. So each channel sent to is checked at once, as the native runtime does.
    fn run_outputs(&mut self) {
        loop {
            let sent_to = self.run_pending_outputs();
            let low: Vec<(PeerId, usize)> = sent_to
                .into_iter()
                .filter_map(|peer| Some((peer, self.peers.get(&peer)?.buffered_amount()?)))
                .filter(|(_, buffered)| *buffered <= self.settings.buffered_amount_low())
                .collect();
            if low.is_empty() {
                return;
            }
            for (peer, buffered) in low {
                self.input(Input::PeerBufferedAmountLow { peer, buffered });
            }
        }
    }

    /// Runs the outputs queued now; returns the peers that were sent something.
    fn run_pending_outputs(&mut self) -> Vec<PeerId> {
        let mut sent_to = Vec::new();
        let mut queries = Vec::new();
        while let Some(output) = self.engine.poll_output() {
            match output {
                Output::SendToPeer { peer, bytes } => {
                    if let Some(p) = self.peers.get(&peer) {
                        p.send(&bytes);
                        if !sent_to.contains(&peer) {
                            sent_to.push(peer);
                        }
                    }
                }
                Output::DisconnectPeer { peer, .. } => self.drop_peer(peer),
                Output::HttpRequest {
                    request,
                    url,
                    range,
                } => self.start_http(request, url, range),
                Output::HttpAbort(request) => {
                    if let Some(http) = self.http.remove(&request) {
                        http.abort();
                    }
                }
                Output::Deliver { key, data } => self.deliver(key, &data),
                Output::Announce { rendition } => self.join_swarm(rendition),
                Output::ReportHash { key, sha256, .. } => self.report_hash(key, &sha256),
                Output::QueryHash(key) => queries.push(key),
                Output::ComputeDigest { job, data } => self.compute_digest(job, &data),
                Output::Event(event) => self.on_engine_event(event),
            }
        }
        self.query_hashes(queries);
        sent_to
    }

    /// SHA-256 with the browser's `crypto.subtle` (off the main thread, unlike inline hashing).
    fn compute_digest(&mut self, job: DigestJob, data: &[u8]) {
        let Some(subtle) = js::subtle() else {
            return;
        };
        let Ok(promise) = subtle.digest_with_str_and_u8_array("SHA-256", data) else {
            return;
        };
        let this = self.this.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let Ok(digest) = wasm_bindgen_futures::JsFuture::from(promise).await else {
                return;
            };
            let bytes = Uint8Array::new(&digest).to_vec();
            if let Ok(sha256) = <[u8; 32]>::try_from(bytes) {
                Driver::with(&this, |d| d.input(Input::DigestComputed { job, sha256 }));
            }
        });
    }

    fn deliver(&mut self, key: SegmentKey, data: &[u8]) {
        if let Some(end) = self.stream.model.segment_end(key) {
            self.buffered_end = Some(self.buffered_end.map_or(end, |e| e.max(end)));
        }
        for waiter in self.waiting.remove(&key).unwrap_or_default() {
            let bytes = Uint8Array::from(data);
            let _ = waiter.resolve.call1(&JsValue::NULL, &bytes);
        }
    }

    fn on_engine_event(&mut self, event: Event) {
        let detail = Object::new();
        let segment = |detail: &Object, key: SegmentKey| {
            set(detail, "rendition", key.rendition);
            set(detail, "sequence", key.seq as f64);
        };
        let kind = match event {
            Event::SegmentDelivered {
                key,
                source,
                bytes,
                latency,
            } => {
                segment(&detail, key);
                let source = match source {
                    SegmentSource::Cdn => "cdn",
                    SegmentSource::Peers => "peers",
                    SegmentSource::Mixed => "mixed",
                };
                set(&detail, "source", source);
                set(&detail, "bytes", bytes as f64);
                set(&detail, "latencyMs", latency.as_secs_f64() * 1000.0);
                "segment-loaded"
            }
            Event::PeerConnected(peer) => {
                set(&detail, "peer", peer.0 as f64);
                "peer-connected"
            }
            Event::PeerDisconnected(peer) => {
                set(&detail, "peer", peer.0 as f64);
                "peer-closed"
            }
            Event::IntegrityFailure(key) => {
                segment(&detail, key);
                "integrity-failure"
            }
            Event::PeerBanned(peer) => {
                set(&detail, "peer", peer.0 as f64);
                "peer-banned"
            }
        };
        self.emit(kind, detail);
    }

    /// Closes a peer connection and tells the core (if it did not ask for the close itself).
    pub fn drop_peer(&mut self, peer: PeerId) {
        if let Some(link) = self.peers.remove(&peer) {
            link.close();
            self.graveyard.push(link);
        }
    }

    /// Stops everything: trackers, peers, requests, timers; pending player promises reject.
    pub fn destroy(&mut self) {
        self.destroyed = true;
        if let Some((handle, _)) = self.timer_due.take() {
            js::window().clear_timeout_with_handle(handle);
        }
        self.signaling.close();
        for http in std::mem::take(&mut self.http).into_values() {
            http.abort();
        }
        for link in std::mem::take(&mut self.peers).into_values() {
            link.close();
        }
        let gone = JsValue::from_str("the peer SDK was destroyed");
        for waiter in std::mem::take(&mut self.waiting).into_values().flatten() {
            let _ = waiter.reject.call1(&JsValue::NULL, &gone);
        }
    }
}
