//! Engine configuration.

use std::time::Duration;

/// Whether peer data must be verified before delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntegrityMode {
    /// Verify every segment that contains peer bytes against a trusted SHA-256 (the default).
    Required,
    /// Deliver peer data unverified. Only for integrators who explicitly opt out.
    Off,
}

/// Tunables of the [`crate::Engine`]. `Config::default()` suits 2–6 s segments.
#[derive(Debug, Clone)]
pub struct Config {
    /// Seed of the engine's random choices: its CDN-pull ticket and peer selection. Give every
    /// viewer a different seed (e.g. a random one), or neighbours tie in the CDN-pull election.
    pub seed: u64,
    /// Segments due within this time come from the CDN unless a peer will finish in time.
    pub urgent_window: Duration,
    /// Segments due within this time (but not urgent) are prefetched from peers.
    pub p2p_window: Duration,
    /// Most segments downloaded from peers at once.
    pub max_parallel_p2p: usize,
    /// Most peers sharing the byte ranges of one segment.
    pub max_sources_per_segment: usize,
    /// Data chunk size (never above the channel's maximum message size).
    pub chunk_size: usize,
    /// Most peer connections; beyond it the least useful is dropped.
    pub max_peers: usize,
    /// Whether this peer uploads to others.
    pub upload: bool,
    /// Upload cap in bytes per second (`None`: unlimited).
    pub upload_limit: Option<u64>,
    /// Peers served at once; others wait their turn, so the first ones finish early and share.
    pub upload_slots: usize,
    /// Stop sending to a peer while its channel buffers more than this many bytes.
    pub max_buffered_amount: usize,
    /// Live: how many peers of a neighbourhood (the lowest-ranked tickets) pull a new segment
    /// from the CDN at once, rounded up; more are seated each segment duration nobody offers
    /// it. 0: nobody pulls ahead of the player.
    pub cdn_pull_fanout: f64,
    /// Live: segments kept this far behind the newest one.
    pub live_retention: u64,
    /// VOD: bytes of segments kept in memory at most.
    pub vod_memory_budget: u64,
    /// A peer transfer that delivered nothing for this long counts as stalled.
    pub peer_stall_timeout: Duration,
    /// Assumed CDN round trip when planning a fallback in time.
    pub cdn_rtt: Duration,
    /// Bandwidth estimate before any CDN transfer was measured, bits per second.
    pub initial_bandwidth: f64,
    /// Integrity policy.
    pub integrity: IntegrityMode,
    /// Re-ask the tracker for a missing hash this often.
    pub hash_query_interval: Duration,
    /// Delay before retrying a failed HTTP request.
    pub http_retry_delay: Duration,
    /// Leave SHA-256 to the driver: instead of hashing inline, the engine emits
    /// [`crate::Output::ComputeDigest`] and continues on [`crate::Input::DigestComputed`]
    /// (for runtimes whose hashing is asynchronous, like the browser's `crypto.subtle`).
    pub external_digest: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            seed: 0,
            urgent_window: Duration::from_millis(1500),
            p2p_window: Duration::from_secs(30),
            max_parallel_p2p: 3,
            max_sources_per_segment: 2,
            chunk_size: 16 * 1024,
            max_peers: 20,
            upload: true,
            upload_limit: None,
            upload_slots: 1,
            max_buffered_amount: 64 * 1024,
            cdn_pull_fanout: 1.0,
            live_retention: 10,
            vod_memory_budget: 64 << 20,
            peer_stall_timeout: Duration::from_millis(1000),
            cdn_rtt: Duration::from_millis(150),
            initial_bandwidth: 2_000_000.0,
            integrity: IntegrityMode::Required,
            hash_query_interval: Duration::from_millis(500),
            http_retry_delay: Duration::from_millis(200),
            external_digest: false,
        }
    }
}
