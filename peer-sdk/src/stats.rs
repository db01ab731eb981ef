//! Counters an integrator shows in a dashboard.

use std::time::Duration;

/// Running totals of one engine.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Useful bytes received from the CDN.
    pub bytes_from_cdn: u64,
    /// Useful bytes received from peers.
    pub bytes_from_peers: u64,
    /// Bytes uploaded to peers (payload).
    pub bytes_uploaded: u64,
    /// Segments delivered entirely from the CDN.
    pub segments_from_cdn: u64,
    /// Segments delivered entirely from peers.
    pub segments_from_peers: u64,
    /// Segments delivered partly from peers, partly from the CDN.
    pub segments_mixed: u64,
    /// HTTP requests started.
    pub cdn_requests: u64,
    /// Segments whose peer bytes failed verification.
    pub integrity_failures: u64,
    /// Peers banned for sending corrupt data.
    pub peers_banned: u64,
    /// Peers disconnected for protocol violations.
    pub protocol_violations: u64,
    /// Peer-assembled segments refetched because no trusted hash came in time.
    pub hash_timeouts: u64,
    /// Peers currently connected.
    pub peers_connected: usize,
    /// Times playback stalled.
    pub stalls: u64,
    /// Total time spent stalled.
    pub stall_time: Duration,
}

impl Stats {
    /// Share of received bytes that came from peers (0 when nothing was received).
    pub fn offload(&self) -> f64 {
        let total = self.bytes_from_cdn + self.bytes_from_peers;
        if total == 0 {
            0.0
        } else {
            self.bytes_from_peers as f64 / total as f64
        }
    }
}
