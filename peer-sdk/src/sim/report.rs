//! The figures of a run, as a readable table and as JSON.

use super::Peer;
use super::scenario::Scenario;
use serde::Serialize;
use std::fmt;

/// Both runs of one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Concurrent viewers.
    pub peers: usize,
    /// Simulated seconds.
    pub duration_secs: f64,
    /// The run with P2P.
    pub p2p: RunReport,
    /// The same scenario with the CDN only.
    pub cdn_only: RunReport,
    /// Wall-clock seconds both runs took (they run side by side on two threads).
    pub wall_secs: f64,
}

/// The figures of one run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Wall-clock seconds this run took.
    pub wall_secs: f64,
    /// Bytes from peers / all bytes received.
    pub offload: f64,
    /// Stall time / watch time.
    pub rebuffer_ratio: f64,
    /// Stalls per viewer.
    pub stalls_per_viewer: f64,
    /// Mean time from joining to the first frame, seconds.
    pub startup_mean_secs: f64,
    /// 95th percentile of the startup time, seconds.
    pub startup_p95_secs: f64,
    /// CDN requests / distinct segments of the stream fetched.
    pub cdn_requests_per_segment: f64,
    /// Mean bytes uploaded per viewer, MB.
    pub upload_per_peer_mb: f64,
    /// Segments whose peer bytes failed verification.
    pub integrity_rejects: u64,
    /// Peers banned for corrupt data (summed over viewers).
    pub peers_banned: u64,
    /// Segments delivered to a player that differ from the origin's (must be 0).
    pub corrupt_delivered: u64,
    /// Peers disconnected for breaking the wire protocol (0 unless a driver misbehaves).
    pub protocol_violations: u64,
    /// Segments delivered to players.
    pub segments_delivered: u64,
    /// Segments that came entirely from the CDN.
    pub segments_from_cdn: u64,
    /// Segments that came partly from peers, partly from the CDN (a deadline fallback).
    pub segments_mixed: u64,
    /// Viewers over the run (churn included).
    pub viewers: usize,
    /// Bytes from the CDN, MB.
    pub cdn_mb: f64,
    /// Bytes from peers, MB.
    pub p2p_mb: f64,
    /// Share of the data-channel bytes between peers that went between peers of the same ASN.
    pub same_asn_share: f64,
}

pub(super) fn summarise(s: &Scenario, peers: &[Peer], distinct_segments: u64) -> RunReport {
    let mut cdn = 0u64;
    let mut p2p = 0u64;
    let mut uploaded = 0u64;
    let mut stall = 0.0;
    let mut watch = 0.0;
    let mut stalls = 0u64;
    let mut rejects = 0;
    let mut banned = 0;
    let mut corrupt = 0;
    let mut delivered = 0;
    let mut violations = 0;
    let mut from_cdn = 0;
    let mut mixed = 0;
    let mut cdn_requests = 0;
    let mut startups: Vec<f64> = Vec::new();
    for peer in peers {
        let stats = &peer.final_stats;
        cdn += stats.bytes_from_cdn;
        p2p += stats.bytes_from_peers;
        uploaded += stats.bytes_uploaded;
        stalls += stats.stalls;
        rejects += stats.integrity_failures;
        banned += stats.peers_banned;
        cdn_requests += stats.cdn_requests;
        violations += stats.protocol_violations;
        delivered += stats.segments_from_cdn + stats.segments_from_peers + stats.segments_mixed;
        from_cdn += stats.segments_from_cdn;
        mixed += stats.segments_mixed;
        corrupt += peer.corrupt_delivered;
        let end = peer.left_at.unwrap_or(s.duration_secs);
        stall += peer.player.stall_time;
        watch += peer.player.watch_time(end);
        if let Some(started) = peer.player.started_at {
            startups.push(started - peer.player.joined_at);
        }
    }
    startups.sort_by(f64::total_cmp);
    let mean = |v: &[f64]| {
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    let p95 = startups
        .get((startups.len() as f64 * 0.95) as usize)
        .or(startups.last())
        .copied()
        .unwrap_or(0.0);
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    RunReport {
        offload: ratio(p2p as f64, (p2p + cdn) as f64),
        rebuffer_ratio: ratio(stall, watch),
        stalls_per_viewer: ratio(stalls as f64, peers.len() as f64),
        startup_mean_secs: mean(&startups),
        startup_p95_secs: p95,
        cdn_requests_per_segment: ratio(cdn_requests as f64, distinct_segments as f64),
        upload_per_peer_mb: ratio(uploaded as f64 / 1e6, peers.len() as f64),
        integrity_rejects: rejects,
        peers_banned: banned,
        corrupt_delivered: corrupt,
        protocol_violations: violations,
        segments_delivered: delivered,
        segments_from_cdn: from_cdn,
        segments_mixed: mixed,
        viewers: peers.len(),
        cdn_mb: cdn as f64 / 1e6,
        p2p_mb: p2p as f64 / 1e6,
        same_asn_share: 0.0,
        wall_secs: 0.0,
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "scenario {}: {} peers, {:.0} s simulated, {:.1} s wall",
            self.scenario, self.peers, self.duration_secs, self.wall_secs
        )?;
        writeln!(f, "{:<26} {:>14} {:>14}", "", "p2p", "cdn-only")?;
        let (a, b) = (&self.p2p, &self.cdn_only);
        let rows: [(&str, f64, f64, usize); 18] = [
            ("offload %", a.offload * 100.0, b.offload * 100.0, 1),
            (
                "rebuffer ratio %",
                a.rebuffer_ratio * 100.0,
                b.rebuffer_ratio * 100.0,
                4,
            ),
            (
                "stalls per viewer",
                a.stalls_per_viewer,
                b.stalls_per_viewer,
                2,
            ),
            (
                "startup mean s",
                a.startup_mean_secs,
                b.startup_mean_secs,
                2,
            ),
            ("startup p95 s", a.startup_p95_secs, b.startup_p95_secs, 2),
            (
                "cdn requests / segment",
                a.cdn_requests_per_segment,
                b.cdn_requests_per_segment,
                1,
            ),
            (
                "upload per peer MB",
                a.upload_per_peer_mb,
                b.upload_per_peer_mb,
                1,
            ),
            (
                "integrity rejects",
                a.integrity_rejects as f64,
                b.integrity_rejects as f64,
                0,
            ),
            (
                "peers banned",
                a.peers_banned as f64,
                b.peers_banned as f64,
                0,
            ),
            (
                "corrupt delivered",
                a.corrupt_delivered as f64,
                b.corrupt_delivered as f64,
                0,
            ),
            (
                "protocol violations",
                a.protocol_violations as f64,
                b.protocol_violations as f64,
                0,
            ),
            (
                "segments delivered",
                a.segments_delivered as f64,
                b.segments_delivered as f64,
                0,
            ),
            (
                "segments from cdn",
                a.segments_from_cdn as f64,
                b.segments_from_cdn as f64,
                0,
            ),
            (
                "segments mixed",
                a.segments_mixed as f64,
                b.segments_mixed as f64,
                0,
            ),
            ("cdn MB", a.cdn_mb, b.cdn_mb, 1),
            ("wall s", a.wall_secs, b.wall_secs, 1),
            ("p2p MB", a.p2p_mb, b.p2p_mb, 1),
            (
                "p2p same-ASN %",
                100.0 * a.same_asn_share,
                100.0 * b.same_asn_share,
                1,
            ),
        ];
        for (name, x, y, digits) in rows {
            writeln!(f, "{name:<26} {x:>14.digits$} {y:>14.digits$}")?;
        }
        Ok(())
    }
}
