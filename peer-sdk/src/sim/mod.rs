//! A deterministic discrete-event swarm simulator that drives N copies of the real [`Engine`]
//! over modelled links, a modelled CDN (with a capacity limit) and a modelled tracker (peer
//! introductions and hash agreement across distinct ASNs).
//!
//! Links: each peer has a serial uplink (FIFO, bytes / bandwidth) and a downlink that adds
//! bytes / bandwidth, plus a one-way latency of a quarter of the two round trips. A data channel
//! is ordered: no message overtakes an earlier one on the same channel. Every connection has its
//! own [`LinkId`], as every `RTCPeerConnection` is a channel of its own: when two peers connect
//! again, nothing still in flight on their earlier connection reaches the new one. The CDN is a
//! FIFO server of the given capacity in front of each peer's downlink.

mod player;
mod queue;
mod report;
mod scenario;

pub use report::{Report, RunReport};
pub use scenario::{HashSource, Matching, Scenario, Uniform};

use crate::integrity::{SegmentHash, sha256};
use crate::io::{
    DigestJob, Input, Output, PeerId, PlaybackState, RequestId, SegmentInfo, SegmentKey,
};
use crate::tracker_session;
use crate::{Config, Engine, IntegrityMode, Stats};
use player::{Phase, Player};
use queue::EventQueue;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

/// The channel's `bufferedamountlow` threshold the simulated data channels use.
const BUFFERED_LOW: usize = 16 * 1024;
/// Swarm members the modelled tracker ranks per announce (the tracker's `max_candidates`).
const MATCHING_CANDIDATES: usize = 256;
/// Distance under which the modelled tracker counts peers as near (the tracker's `nearby_km`).
const MATCHING_NEARBY_KM: f32 = 500.0;

/// Runs a scenario twice, with P2P and as a CDN-only baseline (on two threads), and reports
/// both.
pub fn run(scenario: &Scenario) -> Report {
    let wall = std::time::Instant::now();
    let (p2p, cdn_only) = std::thread::scope(|scope| {
        let baseline = scope.spawn(|| World::new(scenario, false).run());
        let p2p = World::new(scenario, true).run();
        (p2p, baseline.join().expect("the CDN-only run panicked"))
    });
    Report {
        scenario: scenario.name.clone(),
        peers: scenario.peers,
        duration_secs: scenario.duration_secs,
        p2p,
        cdn_only,
        wall_secs: wall.elapsed().as_secs_f64(),
    }
}

/// The simulated CDN's URL of a segment.
fn url_of_key(key: SegmentKey) -> String {
    format!("https://cdn.example/r{}/{}.ts", key.rendition, key.seq)
}

/// Inverse of [`url_of_key`] (the simulated CDN serves only its own URLs).
fn key_of_url(url: &str) -> SegmentKey {
    let path = url
        .trim_start_matches("https://cdn.example/r")
        .trim_end_matches(".ts");
    let (rendition, seq) = path.split_once('/').expect("simulated CDN URL");
    SegmentKey {
        rendition: rendition.parse().expect("simulated CDN URL"),
        seq: seq.parse().expect("simulated CDN URL"),
    }
}

fn micros(secs: f64) -> u64 {
    (secs.max(0.0) * 1e6).round() as u64
}

/// One connection between two peers (both ends share it); a later connection between the same
/// two peers has another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LinkId(u64);

/// Something that happens at a point in simulated time.
enum Ev {
    Join,
    Leave(u32),
    Wake(u32),
    PlayerTick(u32),
    PlaylistTick,
    /// The periodic announce, at the tracker's interval.
    Reannounce(u32),
    /// The announce after losing the last connection (`tracker_session::reannounce_after_loss`).
    AnnounceAfterLoss(u32),
    Connected {
        peer: u32,
        remote: u32,
        link: LinkId,
        rendition: u16,
    },
    Left {
        peer: u32,
        remote: u32,
        link: LinkId,
    },
    Message {
        from: u32,
        to: u32,
        link: LinkId,
        bytes: Vec<u8>,
    },
    HttpDone {
        peer: u32,
        request: RequestId,
        key: SegmentKey,
        range: Option<Range<u64>>,
    },
    TrackerHash {
        peer: u32,
        key: SegmentKey,
        hash: SegmentHash,
    },
    DigestComputed {
        peer: u32,
        job: DigestJob,
        sha256: crate::integrity::Digest,
    },
}

/// A connection as its sending side sees it.
struct Conn {
    remote: u32,
    link: LinkId,
    buffered: usize,
    /// When the last message sent on this channel arrives (channels are ordered).
    last_arrival: f64,
}

/// One simulated viewer.
struct Peer {
    engine: Option<Engine>,
    up_bps: f64,
    down_bps: f64,
    latency: f64,
    reachable: bool,
    corrupt: bool,
    asn: u16,
    up_free: f64,
    conns: Vec<Conn>,
    /// Renditions whose swarm at the tracker lists this peer.
    listed_in: Vec<u16>,
    open_http: Vec<RequestId>,
    wake_at: Option<u64>,
    player: Player,
    left_at: Option<f64>,
    final_stats: Stats,
    corrupt_delivered: u64,
}

/// Agreement state of one segment's hash at the tracker.
#[derive(Default)]
struct HashVotes {
    votes: Vec<(crate::integrity::Digest, u64, Vec<u16>)>,
    agreed: Option<SegmentHash>,
    waiting: Vec<u32>,
}

struct World<'a> {
    s: &'a Scenario,
    p2p: bool,
    rng: SmallRng,
    now: f64,
    /// `now` in whole microseconds, the engines' clock.
    now_us: u64,
    queue: EventQueue<Ev>,
    /// The last [`LinkId`] handed out.
    /// Data-channel bytes delivered between peers, and the part between peers of the same ASN.
    p2p_wire_bytes: u64,
    same_asn_wire_bytes: u64,
    links: u64,
    peers: Vec<Peer>,
    /// The tracker's members of each rendition's swarm, in order of arrival.
    swarms: Vec<Vec<u32>>,
    content: HashMap<SegmentKey, (Arc<[u8]>, SegmentHash)>,
    votes: HashMap<SegmentKey, HashVotes>,
    cdn_free: f64,
    joins_left: usize,
}

impl<'a> World<'a> {
    fn new(s: &'a Scenario, p2p: bool) -> World<'a> {
        let mut world = World {
            s,
            p2p,
            rng: SmallRng::seed_from_u64(s.seed),
            now: 0.0,
            now_us: 0,
            queue: EventQueue::new(),
            links: 0,
            p2p_wire_bytes: 0,
            same_asn_wire_bytes: 0,
            peers: Vec::new(),
            swarms: vec![Vec::new(); s.renditions.len()],
            content: HashMap::new(),
            votes: HashMap::new(),
            cdn_free: 0.0,
            joins_left: s.peers,
        };
        for _ in 0..s.peers {
            let at = world.rng.random::<f64>() * s.join_window_secs;
            world.schedule(at, Ev::Join);
        }
        if s.live {
            world.schedule(s.segment_secs, Ev::PlaylistTick);
        }
        world
    }

    fn schedule(&mut self, at: f64, ev: Ev) {
        self.queue.push(micros(at), ev);
    }

    fn run(mut self) -> RunReport {
        let wall = std::time::Instant::now();
        let end = micros(self.s.duration_secs);
        while let Some((at, ev)) = self.queue.pop() {
            if at > end {
                break;
            }
            self.now_us = at;
            self.now = at as f64 / 1e6;
            self.dispatch(ev);
        }
        self.now = self.s.duration_secs;
        self.now_us = micros(self.now);
        for index in 0..self.peers.len() {
            if self.peers[index].left_at.is_none() {
                self.retire(index as u32);
            }
        }
        let mut report = report::summarise(self.s, &self.peers, self.distinct_segments());
        report.wall_secs = wall.elapsed().as_secs_f64();
        report.same_asn_share = if self.p2p_wire_bytes > 0 {
            self.same_asn_wire_bytes as f64 / self.p2p_wire_bytes as f64
        } else {
            0.0
        };
        report
    }

    fn distinct_segments(&self) -> u64 {
        self.content.len() as u64
    }

    fn dispatch(&mut self, ev: Ev) {
        match ev {
            Ev::Join => self.join(),
            Ev::Leave(peer) => {
                self.leave(peer);
                let delay = self.rng.random::<f64>() * 5.0;
                self.joins_left += 1;
                self.schedule(self.now + delay, Ev::Join);
            }
            Ev::Wake(peer) => {
                if self.peers[peer as usize].wake_at == Some(self.now_us) {
                    self.peers[peer as usize].wake_at = None;
                    let now = self.now_duration();
                    if let Some(engine) = self.engine(peer) {
                        engine.handle_timeout(now);
                    }
                    self.after(peer);
                }
            }
            Ev::PlayerTick(peer) => {
                if self.peers[peer as usize].player.tick_at == Some(self.now_us) {
                    self.peers[peer as usize].player.tick_at = None;
                    self.player_step(peer);
                }
            }
            Ev::PlaylistTick => {
                let playlists = self.playlists();
                for peer in 0..self.peers.len() as u32 {
                    self.push_playlists(peer, &playlists);
                    self.player_step(peer);
                }
                self.schedule(self.now + self.s.segment_secs, Ev::PlaylistTick);
            }
            Ev::Reannounce(peer) => {
                if self.alive(peer) {
                    self.announce(peer);
                    self.schedule(self.now + reannounce_interval(), Ev::Reannounce(peer));
                }
            }
            Ev::AnnounceAfterLoss(peer) => {
                if self.alive(peer) {
                    self.announce(peer);
                }
            }
            Ev::Connected {
                peer,
                remote,
                link,
                rendition,
            } => {
                if self.conn(peer, remote, link).is_some() {
                    self.input(
                        peer,
                        Input::PeerConnected {
                            peer: PeerId(u64::from(remote)),
                            rendition,
                            max_message_size: self.s.max_message_size,
                        },
                    );
                }
            }
            Ev::Left { peer, remote, link } => {
                let conns = &mut self.peers[peer as usize].conns;
                if let Some(at) = conns.iter().position(|c| c.link == link) {
                    conns.swap_remove(at);
                    let left = conns.len();
                    self.input(peer, Input::PeerLeft(PeerId(u64::from(remote))));
                    if let Some(wait) = tracker_session::reannounce_after_loss(left) {
                        let at = self.now + wait.as_secs_f64();
                        self.schedule(at, Ev::AnnounceAfterLoss(peer));
                    }
                }
            }
            Ev::Message {
                from,
                to,
                link,
                bytes,
            } => self.deliver_message(from, to, link, &bytes),
            Ev::HttpDone {
                peer,
                request,
                key,
                range,
            } => self.http_done(peer, request, key, range),
            Ev::TrackerHash { peer, key, hash } => self.input(
                peer,
                Input::TrackerHash {
                    key,
                    sha256: hash.sha256,
                    size: Some(hash.size),
                },
            ),
            Ev::DigestComputed { peer, job, sha256 } => {
                self.input(peer, Input::DigestComputed { job, sha256 })
            }
        }
    }

    fn now_duration(&self) -> Duration {
        Duration::from_micros(self.now_us)
    }

    fn alive(&self, peer: u32) -> bool {
        self.peers[peer as usize].engine.is_some()
    }

    fn engine(&mut self, peer: u32) -> Option<&mut Engine> {
        self.peers[peer as usize].engine.as_mut()
    }

    /// `peer`'s end of its connection `link` to `remote`, if still open.
    fn conn(&mut self, peer: u32, remote: u32, link: LinkId) -> Option<&mut Conn> {
        self.peers[peer as usize]
            .conns
            .iter_mut()
            .find(|c| c.remote == remote && c.link == link)
    }

    fn input(&mut self, peer: u32, input: Input<'_>) {
        let now = self.now_duration();
        if let Some(engine) = self.engine(peer) {
            engine.handle(input, now);
            self.after(peer);
        }
    }

    fn newest_seq(&self) -> u64 {
        let window = self.s.live_delay_segments + 3;
        window + (self.now / self.s.segment_secs) as u64
    }

    fn content(&mut self, key: SegmentKey) -> (Arc<[u8]>, SegmentHash) {
        let s = self.s;
        self.content
            .entry(key)
            .or_insert_with(|| {
                let bitrate = s.renditions[key.rendition as usize];
                let base = bitrate * s.segment_secs / 8.0;
                let wobble = 0.9 + 0.2 * ((key.seq * 7919 % 101) as f64 / 100.0);
                let size = (base * wobble).max(1.0) as usize;
                let mut rng = SmallRng::seed_from_u64(key.seq ^ (u64::from(key.rendition) << 48));
                let mut data = vec![0u8; size];
                rng.fill(&mut data[..]);
                let hash = SegmentHash {
                    sha256: sha256(&data),
                    size: size as u64,
                };
                (data.into(), hash)
            })
            .clone()
    }

    fn segment_info(&mut self, key: SegmentKey) -> SegmentInfo {
        let hash = match self.s.hash_source {
            HashSource::HashList => Some(self.content(key).1),
            _ => None,
        };
        SegmentInfo {
            key,
            url: url_of_key(key),
            start: Duration::from_secs_f64(key.seq as f64 * self.s.segment_secs),
            duration: Duration::from_secs_f64(self.s.segment_secs),
            hash,
        }
    }

    /// The playlist window (live) or the whole stream (VOD) now, for every rendition (index).
    fn playlists(&mut self) -> Vec<Vec<SegmentInfo>> {
        let (first, last) = if self.s.live {
            let newest = self.newest_seq();
            (
                newest.saturating_sub(self.s.live_delay_segments + 3),
                newest,
            )
        } else {
            (0, self.s.vod_segments - 1)
        };
        (0..self.s.renditions.len() as u16)
            .map(|rendition| {
                (first..=last)
                    .map(|seq| self.segment_info(SegmentKey { rendition, seq }))
                    .collect()
            })
            .collect()
    }

    /// Hands a peer the [`World::playlists`] of this moment.
    fn push_playlists(&mut self, peer: u32, playlists: &[Vec<SegmentInfo>]) {
        for (rendition, segments) in (0..).zip(playlists) {
            self.input(
                peer,
                Input::Playlist {
                    rendition,
                    live: self.s.live,
                    segments,
                },
            );
        }
    }

    fn join(&mut self) {
        if self.joins_left == 0 {
            return;
        }
        self.joins_left -= 1;
        let s = self.s;
        let index = self.peers.len() as u32;
        let top = s.renditions.iter().copied().fold(0.0, f64::max);
        let draw = |rng: &mut SmallRng, u: Uniform| u.min + rng.random::<f64>() * (u.max - u.min);
        let uploads = self.rng.random::<f64>() >= s.download_only_share;
        let config = Config {
            seed: s.seed ^ (u64::from(index) << 20),
            urgent_window: if self.p2p {
                Duration::from_millis(s.urgent_window_ms)
            } else {
                Duration::from_secs(3600)
            },
            max_peers: s.max_peers,
            upload: uploads,
            live_retention: s.live_retention,
            cdn_pull_fanout: if self.p2p { s.cdn_pull_fanout } else { 0.0 },
            integrity: if s.hash_source == HashSource::Off {
                IntegrityMode::Off
            } else {
                IntegrityMode::Required
            },
            cdn_rtt: Duration::from_secs_f64(s.cdn_rtt_ms / 1000.0),
            initial_bandwidth: s.renditions[0] * 1.5,
            external_digest: s.external_digest,
            ..Config::default()
        };
        let first_seq = if s.live {
            self.newest_seq() + 1 - s.live_delay_segments
        } else {
            0
        };
        let peer = Peer {
            engine: Some(Engine::new(config)),
            up_bps: draw(&mut self.rng, s.upload_x_bitrate) * top,
            down_bps: draw(&mut self.rng, s.download_mbps) * 1e6,
            latency: draw(&mut self.rng, s.rtt_ms) / 1000.0 / 2.0,
            reachable: self.rng.random::<f64>() >= s.unreachable_share,
            corrupt: self.rng.random::<f64>() < s.corrupt_share,
            asn: self.rng.random_range(0..s.asns.max(1)),
            up_free: 0.0,
            conns: Vec::new(),
            listed_in: Vec::new(),
            open_http: Vec::new(),
            wake_at: None,
            player: Player::new(first_seq, s.segment_secs, self.now),
            left_at: None,
            final_stats: Stats::default(),
            corrupt_delivered: 0,
        };
        self.peers.push(peer);
        if s.mean_session_secs > 0.0 {
            let session = -s.mean_session_secs * (1.0 - self.rng.random::<f64>()).ln();
            self.schedule(self.now + session, Ev::Leave(index));
        }
        self.schedule(self.now + reannounce_interval(), Ev::Reannounce(index));
        let playlists = self.playlists();
        self.push_playlists(index, &playlists);
        self.player_step(index);
    }

    fn leave(&mut self, peer: u32) {
        for rendition in std::mem::take(&mut self.peers[peer as usize].listed_in) {
            self.swarms[rendition as usize].retain(|p| *p != peer);
        }
        let conns = std::mem::take(&mut self.peers[peer as usize].conns);
        for conn in conns {
            let latency = self.link_latency(peer, conn.remote);
            self.schedule(
                self.now + latency,
                Ev::Left {
                    peer: conn.remote,
                    remote: peer,
                    link: conn.link,
                },
            );
        }
        self.retire(peer);
    }

    fn retire(&mut self, peer: u32) {
        let now = self.now;
        let p = &mut self.peers[peer as usize];
        if let Some(engine) = p.engine.take() {
            p.final_stats = engine.stats().clone();
        }
        p.player.finish(now);
        p.left_at = Some(now);
    }

    fn current_rendition(&self, peer: u32) -> u16 {
        self.peers[peer as usize]
            .engine
            .as_ref()
            .map_or(0, |e| self.abr_rendition(e))
    }

    /// Highest rendition within 80% of the engine's bandwidth estimate.
    fn abr_rendition(&self, engine: &Engine) -> u16 {
        let budget = engine.bandwidth_estimate() * 0.8;
        self.s
            .renditions
            .iter()
            .rposition(|bitrate| *bitrate <= budget)
            .unwrap_or(0) as u16
    }

    /// Advances the player: stall when dry, request the next segment, schedule the next check.
    fn player_step(&mut self, peer: u32) {
        if !self.alive(peer) {
            return;
        }
        let seg = self.s.segment_secs;
        let now = self.now;
        let player = &self.peers[peer as usize].player;
        let ahead = player.ahead(now, seg);
        if player.phase == Phase::Playing && ahead <= 1e-3 {
            self.peers[peer as usize].player.stall(now, seg);
            self.report_playhead(peer);
        }
        let player = &self.peers[peer as usize].player;
        let next = player.buffered_to;
        let available = !self.s.live || next <= self.newest_seq();
        let in_stream = self.s.live || next < self.s.vod_segments;
        if player.outstanding.is_none() && ahead < self.s.buffer_goal_secs && available && in_stream
        {
            let rendition = self.current_rendition(peer);
            self.peers[peer as usize].player.outstanding = Some(next);
            self.input(
                peer,
                Input::SegmentRequested(SegmentKey {
                    rendition,
                    seq: next,
                }),
            );
        }
        self.schedule_player_tick(peer);
    }

    fn schedule_player_tick(&mut self, peer: u32) {
        let seg = self.s.segment_secs;
        let player = &self.peers[peer as usize].player;
        if player.phase != Phase::Playing {
            return;
        }
        let ahead = player.ahead(self.now, seg);
        let below_goal = ahead - self.s.buffer_goal_secs;
        let wait = if below_goal > 0.0 {
            below_goal.min(ahead)
        } else {
            ahead
        };
        let at = micros(self.now + wait.max(0.0)).max(self.now_us + 1);
        if player.tick_at != Some(at) {
            self.peers[peer as usize].player.tick_at = Some(at);
            self.queue.push(at, Ev::PlayerTick(peer));
        }
    }

    fn report_playhead(&mut self, peer: u32) {
        let player = &self.peers[peer as usize].player;
        let position = Duration::from_secs_f64(player.position(self.now));
        let state = match player.phase {
            Phase::Starting => PlaybackState::Starting,
            Phase::Playing => PlaybackState::Playing,
            Phase::Stalled => PlaybackState::Stalled,
        };
        self.input(peer, Input::Playhead { position, state });
    }

    fn link_latency(&self, a: u32, b: u32) -> f64 {
        (self.peers[a as usize].latency + self.peers[b as usize].latency) / 2.0
    }

    /// `peer` announces to the swarm of the rendition it plays.
    fn announce(&mut self, peer: u32) {
        let rendition = self.current_rendition(peer);
        self.introduce(peer, rendition);
    }

    /// Whether the tracker may introduce `other` to `peer`: a live peer, one end reachable, and
    /// no connection between them still open at either end.
    fn connectable(&self, peer: u32, other: u32) -> bool {
        let (a, b) = (&self.peers[peer as usize], &self.peers[other as usize]);
        other != peer
            && b.engine.is_some()
            && (a.reachable || b.reachable)
            && !a.conns.iter().any(|c| c.remote == other)
            && !b.conns.iter().any(|c| c.remote == peer)
    }

    /// Up to `peers_per_announce` uniformly random connectable members of the swarm.
    fn random_members(&mut self, peer: u32, rendition: u16) -> Vec<u32> {
        let wanted = self.s.peers_per_announce;
        let mut chosen = Vec::new();
        for _ in 0..wanted * 4 {
            if chosen.len() >= wanted {
                break;
            }
            let swarm = &self.swarms[rendition as usize];
            let other = swarm[self.rng.random_range(0..swarm.len())];
            if self.connectable(peer, other) && !chosen.contains(&other) {
                chosen.push(other);
            }
        }
        chosen
    }

    /// The best `peers_per_announce` connectable members of a random window of the swarm, as
    /// ranked by the tracker's own matching (`peer_matching::rank`).
    fn matched(&mut self, peer: u32, rendition: u16) -> Vec<u32> {
        let swarm = &self.swarms[rendition as usize];
        let window = swarm.len().min(MATCHING_CANDIDATES);
        let start = self.rng.random_range(0..swarm.len());
        let candidates: Vec<u32> = (0..window)
            .map(|i| swarm[(start + i) % swarm.len()])
            .collect();
        let from = self.locality(peer);
        let mut ranked = Vec::with_capacity(candidates.len());
        for other in candidates {
            if !self.connectable(peer, other) {
                continue;
            }
            let load = peer_matching::Load {
                recent_offers: self.peers[other as usize].conns.len() as u32,
                capacity: (self.peers[other as usize].up_bps / 8.0) as u64,
                position: None,
            };
            let random = self.rng.random();
            let to = self.locality(other);
            let key = peer_matching::rank(&from, None, &to, load, MATCHING_NEARBY_KM, random);
            ranked.push((key, other));
        }
        ranked.sort_unstable();
        ranked.truncate(self.s.peers_per_announce);
        ranked.into_iter().map(|(_, other)| other).collect()
    }

    /// What the tracker knows of a simulated peer: its ASN, and a distinct address.
    fn locality(&self, peer: u32) -> peer_matching::Locality {
        let ip = std::net::Ipv4Addr::from(0x0a00_0000 | peer);
        let mut locality = peer_matching::Locality::from_ip(ip.into());
        locality.asn = Some(u32::from(self.peers[peer as usize].asn) + 1);
        locality
    }

    /// The tracker introduces up to `peers_per_announce` members of the swarm (never one
    /// still connected to `peer` at either end, as a closing connection is until both ends saw
    /// it close).
    fn introduce(&mut self, peer: u32, rendition: u16) {
        if !self.p2p {
            return;
        }
        let listed_in = &mut self.peers[peer as usize].listed_in;
        if !listed_in.contains(&rendition) {
            listed_in.push(rendition);
            self.swarms[rendition as usize].push(peer);
        }
        let chosen = match self.s.matching {
            Matching::Tracker => self.matched(peer, rendition),
            Matching::Random => self.random_members(peer, rendition),
        };
        for other in chosen {
            self.links += 1;
            let link = LinkId(self.links);
            self.peers[peer as usize].conns.push(Conn {
                remote: other,
                link,
                buffered: 0,
                last_arrival: 0.0,
            });
            self.peers[other as usize].conns.push(Conn {
                remote: peer,
                link,
                buffered: 0,
                last_arrival: 0.0,
            });
            let signaling = 2.0 * self.link_latency(peer, other) + 0.05;
            self.schedule(
                self.now + signaling,
                Ev::Connected {
                    peer,
                    remote: other,
                    link,
                    rendition,
                },
            );
            self.schedule(
                self.now + signaling,
                Ev::Connected {
                    peer: other,
                    remote: peer,
                    link,
                    rendition,
                },
            );
        }
    }

    fn deliver_message(&mut self, from: u32, to: u32, link: LinkId, bytes: &[u8]) {
        let len = bytes.len();
        self.p2p_wire_bytes += len as u64;
        if self.peers[from as usize].asn == self.peers[to as usize].asn {
            self.same_asn_wire_bytes += len as u64;
        }
        let mut low = None;
        if let Some(conn) = self.conn(from, to, link) {
            let before = conn.buffered;
            conn.buffered = conn.buffered.saturating_sub(len);
            if before > BUFFERED_LOW && conn.buffered <= BUFFERED_LOW {
                low = Some(conn.buffered);
            }
        }
        if self.conn(to, from, link).is_some() {
            self.input(
                to,
                Input::PeerMessage {
                    peer: PeerId(u64::from(from)),
                    bytes,
                },
            );
        }
        if let Some(buffered) = low {
            self.input(
                from,
                Input::PeerBufferedAmountLow {
                    peer: PeerId(u64::from(to)),
                    buffered,
                },
            );
        }
    }

    fn http_done(
        &mut self,
        peer: u32,
        request: RequestId,
        key: SegmentKey,
        range: Option<Range<u64>>,
    ) {
        let p = &mut self.peers[peer as usize];
        let Some(at) = p.open_http.iter().position(|r| *r == request) else {
            return;
        };
        p.open_http.swap_remove(at);
        let (data, _) = self.content(key);
        let range = range.unwrap_or(0..data.len() as u64);
        let body = &data[range.start as usize..range.end.min(data.len() as u64) as usize];
        self.input(
            peer,
            Input::HttpData {
                request,
                bytes: body,
            },
        );
        self.input(peer, Input::HttpFinished(request));
    }

    /// Carries out everything the engine asked for.
    fn after(&mut self, peer: u32) {
        while let Some(output) = self.engine(peer).and_then(|e| e.poll_output()) {
            self.carry_out(peer, output);
        }
        let timeout = self.peers[peer as usize]
            .engine
            .as_ref()
            .and_then(|e| e.poll_timeout())
            .map(|t| {
                u64::try_from(t.as_nanos().div_ceil(1000))
                    .unwrap_or(u64::MAX)
                    .max(self.now_us + 1)
            });
        let p = &mut self.peers[peer as usize];
        if let Some(at) = timeout {
            if p.wake_at != Some(at) {
                p.wake_at = Some(at);
                self.queue.push(at, Ev::Wake(peer));
            }
        }
    }

    fn carry_out(&mut self, peer: u32, output: Output) {
        match output {
            Output::SendToPeer { peer: to, bytes } => self.send(peer, to.0 as u32, bytes),
            Output::DisconnectPeer { peer: remote, .. } => {
                let remote = remote.0 as u32;
                let conns = &mut self.peers[peer as usize].conns;
                let Some(at) = conns.iter().position(|c| c.remote == remote) else {
                    return;
                };
                let link = conns.swap_remove(at).link;
                let latency = self.link_latency(peer, remote);
                self.schedule(
                    self.now + latency,
                    Ev::Left {
                        peer: remote,
                        remote: peer,
                        link,
                    },
                );
            }
            Output::HttpRequest {
                request,
                url,
                range,
            } => self.cdn_request(peer, request, &url, range),
            Output::HttpAbort(request) => self.peers[peer as usize]
                .open_http
                .retain(|r| *r != request),
            Output::Deliver { key, data } => self.on_deliver(peer, key, &data),
            Output::Announce { rendition } => self.introduce(peer, rendition),
            Output::ReportHash { key, sha256, size } => self.vote(peer, key, sha256, size),
            Output::QueryHash(key) => self.query_hash(peer, key),
            // Answered as a later event, as an asynchronous hasher (crypto.subtle) would.
            Output::ComputeDigest { job, data } => {
                let sha256 = sha256(&data);
                self.schedule(self.now, Ev::DigestComputed { peer, job, sha256 });
            }
            Output::Event(_) => {}
        }
    }

    fn send(&mut self, from: u32, to: u32, mut bytes: Vec<u8>) {
        let latency = self.link_latency(from, to);
        let down_bps = self.peers[to as usize].down_bps;
        let now = self.now;
        let p = &mut self.peers[from as usize];
        let Some(conn) = p.conns.iter_mut().find(|c| c.remote == to) else {
            return;
        };
        conn.buffered += bytes.len();
        let size = bytes.len() as f64;
        if p.corrupt && bytes.first() == Some(&0x05) && bytes.len() > crate::wire::DATA_HEADER_LEN {
            let last = bytes.len() - 1;
            bytes[last] ^= 0x5a;
        }
        p.up_free = p.up_free.max(now) + size * 8.0 / p.up_bps.max(1.0);
        // A channel is ordered: a message never overtakes the previous one on its channel.
        let at = (p.up_free + latency + size * 8.0 / down_bps).max(conn.last_arrival);
        conn.last_arrival = at;
        let link = conn.link;
        self.schedule(
            at,
            Ev::Message {
                from,
                to,
                link,
                bytes,
            },
        );
    }

    fn cdn_request(&mut self, peer: u32, request: RequestId, url: &str, range: Option<Range<u64>>) {
        let key = key_of_url(url);
        let (data, _) = self.content(key);
        let size = range
            .as_ref()
            .map_or(data.len() as u64, |r| r.end - r.start) as f64;
        let rtt = self.s.cdn_rtt_ms / 1000.0;
        let mut served = self.now + rtt / 2.0;
        if self.s.cdn_capacity_mbps > 0.0 {
            self.cdn_free =
                self.cdn_free.max(served) + size * 8.0 / (self.s.cdn_capacity_mbps * 1e6);
            served = self.cdn_free;
        }
        let p = &mut self.peers[peer as usize];
        let at = served + rtt / 2.0 + size * 8.0 / p.down_bps;
        p.open_http.push(request);
        self.schedule(
            at,
            Ev::HttpDone {
                peer,
                request,
                key,
                range,
            },
        );
    }

    fn on_deliver(&mut self, peer: u32, key: SegmentKey, data: &[u8]) {
        let (truth, _) = self.content(key);
        let seg = self.s.segment_secs;
        let now = self.now;
        let p = &mut self.peers[peer as usize];
        if *truth != *data {
            p.corrupt_delivered += 1;
        }
        if p.player.outstanding != Some(key.seq) {
            return;
        }
        if p.player.on_delivered(now, seg) {
            self.report_playhead(peer);
        }
        self.player_step(peer);
    }

    fn vote(&mut self, peer: u32, key: SegmentKey, digest: crate::integrity::Digest, size: u64) {
        let (asn, corrupt) = (
            self.peers[peer as usize].asn,
            self.peers[peer as usize].corrupt,
        );
        // Corrupt peers also lie to the tracker.
        let digest = if corrupt {
            sha256(&peer.to_be_bytes())
        } else {
            digest
        };
        let needed = self.s.tracker_agreement.max(1);
        let votes = self.votes.entry(key).or_default();
        if votes.agreed.is_some() {
            return;
        }
        let index = match votes
            .votes
            .iter()
            .position(|(d, s, _)| *d == digest && *s == size)
        {
            Some(index) => index,
            None => {
                votes.votes.push((digest, size, Vec::new()));
                votes.votes.len() - 1
            }
        };
        let asns = &mut votes.votes[index].2;
        if !asns.contains(&asn) {
            asns.push(asn);
        }
        if asns.len() >= needed {
            let hash = SegmentHash {
                sha256: digest,
                size,
            };
            votes.agreed = Some(hash);
            let waiting = std::mem::take(&mut votes.waiting);
            for peer in waiting {
                let latency = self.peers[peer as usize].latency;
                self.schedule(self.now + latency, Ev::TrackerHash { peer, key, hash });
            }
        }
    }

    fn query_hash(&mut self, peer: u32, key: SegmentKey) {
        let latency = self.peers[peer as usize].latency;
        let votes = self.votes.entry(key).or_default();
        match votes.agreed {
            Some(hash) => self.schedule(
                self.now + 2.0 * latency,
                Ev::TrackerHash { peer, key, hash },
            ),
            None => {
                if !votes.waiting.contains(&peer) {
                    votes.waiting.push(peer);
                }
            }
        }
    }
}

/// Seconds between periodic announces: the runtimes' interval before the tracker gives one.
fn reannounce_interval() -> f64 {
    tracker_session::DEFAULT_INTERVAL.as_secs_f64()
}
