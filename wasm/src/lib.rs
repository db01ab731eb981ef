//! The browser runtime of the peer SDK. [`P2p`] drives the sans-IO core (`peer_sdk::Engine`)
//! with the browser's APIs through `web-sys`: `RTCPeerConnection` and `RTCDataChannel` to
//! peers, a `WebSocket` to each WebTorrent tracker, `fetch` to the CDN, timers and the clock.
//! The npm package's JS layer (`wasm/js/`) connects it to hls.js and Shaka Player.
#![warn(missing_docs)]

mod config;
mod driver;
mod http;
mod js;
mod peer;
mod playlist;
mod stream;
mod tracker;
mod vec_map;

use driver::{Driver, Waiter};
use js_sys::{Object, Promise};
use peer_sdk::{Input, PlaybackState};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use wasm_bindgen::prelude::*;

// SAFETY: a wasm32 module without threads runs single-threaded, which is all `new_global` asks.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: talc::TalckWasm = unsafe { talc::TalckWasm::new_global() };

/// Peer-assisted delivery for one player. Construct with a config object (see the README),
/// show it every playlist the player loads, and ask it for segments.
#[wasm_bindgen]
pub struct P2p {
    driver: Rc<RefCell<Driver>>,
}

#[wasm_bindgen]
impl P2p {
    /// Starts the driver and connects to the trackers.
    #[wasm_bindgen(constructor)]
    pub fn new(config: JsValue) -> P2p {
        P2p {
            driver: Driver::new(config::Settings::from_js(&config)),
        }
    }

    /// A playlist (master or media) the player loaded from `url`, as text.
    pub fn playlist(&self, url: &str, text: &str) {
        self.with(|d| d.on_playlist(url, text));
    }

    /// Asks for the segment at `url`: a promise of its bytes (`Uint8Array`), or `undefined`
    /// when the segment is not one the engine knows (the caller loads it itself).
    pub fn load(&self, url: &str) -> Option<Promise> {
        let key = self.driver.borrow().stream.model.segment_at(url)?;
        let mut waiter = None;
        let promise =
            Promise::new(&mut |resolve, reject| waiter = Some(Waiter { resolve, reject }));
        self.with(|d| {
            if let Some(waiter) = waiter {
                d.waiting.get_or_default(key).push(waiter);
            }
            d.input(Input::SegmentRequested(key));
        });
        Some(promise)
    }

    /// The player no longer wants the segment at `url` (its promise stays pending).
    pub fn abandon(&self, url: &str) {
        self.with(|d| {
            if let Some(key) = d.stream.model.segment_at(url) {
                d.waiting.remove(&key);
                d.input(Input::SegmentAbandoned(key));
            }
        });
    }

    /// Where the player is: seconds of media buffered ahead of the playhead, and its state
    /// (`"playing"`, `"paused"`, `"stalled"` or `"starting"`). Call a few times a second.
    pub fn playhead(&self, buffer_ahead: f64, state: &str) {
        let state = match state {
            "playing" => PlaybackState::Playing,
            "paused" => PlaybackState::Paused,
            "stalled" => PlaybackState::Stalled,
            _ => PlaybackState::Starting,
        };
        self.with(|d| {
            let Some(end) = d.buffered_end else {
                return;
            };
            let ahead = Duration::from_secs_f64(buffer_ahead.clamp(0.0, 86_400.0));
            d.input(Input::Playhead {
                position: end.saturating_sub(ahead),
                state,
            });
        });
    }

    /// Throughput estimate of CDN transfers, bits per second (for the player's ABR).
    #[wasm_bindgen(js_name = bandwidthEstimate)]
    pub fn bandwidth_estimate(&self) -> f64 {
        self.driver.borrow().engine.bandwidth_estimate()
    }

    /// Running totals: bytes from the CDN and from peers, bytes uploaded, segments by source,
    /// peers, integrity failures.
    pub fn stats(&self) -> Object {
        let driver = self.driver.borrow();
        let stats = driver.engine.stats();
        let object = Object::new();
        let counters = [
            ("bytesFromCdn", stats.bytes_from_cdn),
            ("bytesFromPeers", stats.bytes_from_peers),
            ("bytesUploaded", stats.bytes_uploaded),
            ("segmentsFromCdn", stats.segments_from_cdn),
            ("segmentsFromPeers", stats.segments_from_peers),
            ("segmentsMixed", stats.segments_mixed),
            ("cdnRequests", stats.cdn_requests),
            ("integrityFailures", stats.integrity_failures),
            ("peersBanned", stats.peers_banned),
            ("peersConnected", stats.peers_connected as u64),
        ];
        for (name, value) in counters {
            js::set(&object, name, value as f64);
        }
        js::set(&object, "offload", stats.offload());
        object
    }

    /// Closes every connection; pending promises reject.
    pub fn destroy(&self) {
        self.driver.borrow_mut().destroy();
    }

    fn with(&self, f: impl FnOnce(&mut Driver)) {
        Driver::with(&Rc::downgrade(&self.driver), f);
    }
}
