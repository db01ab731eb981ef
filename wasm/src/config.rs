//! The integrator's configuration, read from the plain object the JS layer passes in.

use crate::js::{get, get_f64, get_string};
use js_sys::{Array, Function};
use std::time::Duration;
use wasm_bindgen::{JsCast, JsValue};

/// Where trusted segment hashes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Integrity {
    /// A sidecar hash list next to each media playlist: its URL without query plus `suffix`.
    HashList {
        /// Appended to the media playlist URL, e.g. `.hashes`.
        suffix: String,
    },
    /// Peer data is delivered unverified (explicit opt-out).
    Off,
}

/// Settings of one [`crate::P2p`].
pub struct Settings {
    /// Tracker WebSocket URLs.
    pub trackers: Vec<String>,
    /// `RTCConfiguration.iceServers`, passed through.
    pub ice_servers: JsValue,
    /// Explicit stream id (tokenised or multi-CDN URLs); default: the master playlist URL.
    pub swarm_id: Option<String>,
    /// Offers sent with each announce.
    pub offers_per_announce: usize,
    /// Decides which local ICE candidates (`a=candidate:` lines) are offered to peers.
    pub candidate_filter: Option<Function>,
    /// Receives `(type, detail)` for every event.
    pub on_event: Option<Function>,
    /// Trusted hash source.
    pub integrity: Integrity,
    /// The core's tunables.
    pub engine: peer_sdk::Config,
}

impl Settings {
    /// Reads `config`; absent fields keep their defaults (see the package README).
    pub fn from_js(config: &JsValue) -> Settings {
        let seconds = |key| get_f64(config, key).map(|s| Duration::from_secs_f64(s.max(0.0)));
        let mut engine = peer_sdk::Config {
            seed: crate::js::random_u64(),
            external_digest: crate::js::subtle().is_some(),
            ..peer_sdk::Config::default()
        };
        if let Some(window) = seconds("urgentWindow") {
            engine.urgent_window = window;
        }
        if let Some(window) = seconds("p2pWindow") {
            engine.p2p_window = window;
        }
        if let Some(upload) = get(config, "upload").as_bool() {
            engine.upload = upload;
        }
        if let Some(limit) = get_f64(config, "uploadLimit") {
            engine.upload_limit = Some(limit.max(0.0) as u64);
        }
        if let Some(peers) = get_f64(config, "maxPeers") {
            engine.max_peers = peers.max(1.0) as usize;
        }
        let integrity = match get_string(config, "integrity").as_deref() {
            Some("off") => Integrity::Off,
            _ => Integrity::HashList {
                suffix: get_string(config, "hashListSuffix").unwrap_or_else(|| ".hashes".into()),
            },
        };
        if integrity == Integrity::Off {
            engine.integrity = peer_sdk::IntegrityMode::Off;
        }
        let trackers = get(config, "trackers");
        let trackers = match trackers.dyn_ref::<Array>() {
            Some(list) => list.iter().filter_map(|t| t.as_string()).collect(),
            None => trackers.as_string().into_iter().collect(),
        };
        Settings {
            trackers,
            ice_servers: get(config, "iceServers"),
            swarm_id: get_string(config, "swarmId"),
            offers_per_announce: get_f64(config, "offersPerAnnounce")
                .map_or(5, |n| n.clamp(1.0, 10.0) as usize),
            candidate_filter: get(config, "candidateFilter").dyn_into().ok(),
            on_event: get(config, "onEvent").dyn_into().ok(),
            integrity,
            engine,
        }
    }

    /// The buffered amount at or below which a data channel may take more of the core's data
    /// (`bufferedAmountLowThreshold`): a quarter of the most the core lets a channel buffer.
    pub fn buffered_amount_low(&self) -> usize {
        self.engine.max_buffered_amount / 4
    }
}
