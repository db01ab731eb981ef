//! The scenario file format (TOML). Every field has a default, so a scenario states only what
//! it changes; `scenarios/*.toml` are the examples.

use serde::{Deserialize, Serialize};

/// A uniform distribution `min..=max`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
pub struct Uniform {
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
}

impl Uniform {
    /// A fixed value.
    pub const fn fixed(value: f64) -> Uniform {
        Uniform {
            min: value,
            max: value,
        }
    }
}

/// Where trusted segment hashes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HashSource {
    /// A sidecar hash list published with the stream.
    HashList,
    /// Hashes peers report to the tracker, accepted on agreement.
    Tracker,
    /// Integrity checking explicitly off.
    Off,
}

/// How the modelled tracker picks the peers it introduces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Matching {
    /// The tracker's own ranking (`peer-matching`): same ASN first, then nearer, less loaded peers.
    Tracker,
    /// Uniformly random members of the swarm, as a tracker without matching does.
    Random,
}

/// One simulation scenario.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// Name shown in the report.
    pub name: String,
    /// Seed of every random choice.
    pub seed: u64,
    /// Concurrent viewers.
    pub peers: usize,
    /// Simulated time, seconds.
    pub duration_secs: f64,
    /// Peers join uniformly over this many seconds from the start.
    pub join_window_secs: f64,
    /// Mean viewing session (exponential); a leaver is replaced by a new viewer. 0: no churn.
    pub mean_session_secs: f64,
    /// Live (sliding window) or VOD.
    pub live: bool,
    /// Segment duration, seconds.
    pub segment_secs: f64,
    /// VOD: number of segments in the stream.
    pub vod_segments: u64,
    /// Bitrates of the renditions, bits per second (lowest first).
    pub renditions: Vec<f64>,
    /// Player: live start distance from the newest segment, in segments.
    pub live_delay_segments: u64,
    /// Player: seconds of media it keeps buffered ahead.
    pub buffer_goal_secs: f64,
    /// Downlink of each peer, Mbit/s.
    pub download_mbps: Uniform,
    /// Uplink of each peer as a multiple of the top rendition's bitrate.
    pub upload_x_bitrate: Uniform,
    /// Round trip of each peer, milliseconds.
    pub rtt_ms: Uniform,
    /// Share of peers that cannot accept connections (NAT); two of them never connect.
    pub unreachable_share: f64,
    /// Share of peers that do not upload.
    pub download_only_share: f64,
    /// Share of peers that corrupt the data they upload.
    pub corrupt_share: f64,
    /// CDN capacity in Mbit/s (0: unlimited).
    pub cdn_capacity_mbps: f64,
    /// CDN round trip, milliseconds.
    pub cdn_rtt_ms: f64,
    /// Peers the tracker introduces per announce.
    pub peers_per_announce: usize,
    /// Distinct ASNs the peers are spread over.
    pub asns: u16,
    /// How the tracker picks the peers it introduces.
    pub matching: Matching,
    /// Where trusted hashes come from.
    pub hash_source: HashSource,
    /// Independent reporters (distinct ASNs) needed for a tracker hash.
    pub tracker_agreement: usize,
    /// Data channel maximum message size, bytes.
    pub max_message_size: usize,
    /// Engine: urgent window, milliseconds.
    pub urgent_window_ms: u64,
    /// Engine: connected peers at most.
    pub max_peers: usize,
    /// Engine: live segments kept behind the newest.
    pub live_retention: u64,
    /// Engine: expected CDN pulls per neighbourhood for a new live segment.
    pub cdn_pull_fanout: f64,
    /// Engine: hash through the driver (as the browser does), answered one event later.
    pub external_digest: bool,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            name: "unnamed".into(),
            seed: 1,
            peers: 100,
            duration_secs: 300.0,
            join_window_secs: 20.0,
            mean_session_secs: 0.0,
            live: true,
            segment_secs: 2.0,
            vod_segments: 300,
            renditions: vec![1_000_000.0],
            live_delay_segments: 5,
            buffer_goal_secs: 10.0,
            download_mbps: Uniform {
                min: 10.0,
                max: 50.0,
            },
            upload_x_bitrate: Uniform { min: 1.0, max: 3.0 },
            rtt_ms: Uniform {
                min: 20.0,
                max: 80.0,
            },
            unreachable_share: 0.0,
            download_only_share: 0.0,
            corrupt_share: 0.0,
            cdn_capacity_mbps: 0.0,
            cdn_rtt_ms: 60.0,
            peers_per_announce: 10,
            asns: 20,
            matching: Matching::Random,
            hash_source: HashSource::Tracker,
            tracker_agreement: 2,
            max_message_size: 262_144,
            urgent_window_ms: 1500,
            max_peers: 20,
            live_retention: 6,
            cdn_pull_fanout: 1.0,
            external_digest: false,
        }
    }
}
