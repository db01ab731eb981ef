//! The sans-IO engine: state, the `handle` / `poll_output` / `poll_timeout` surface, and time.
//!
//! Submodules: [`peers`] speaks the wire protocol and serves uploads, [`fetch`] schedules and
//! assembles downloads, [`store`] keeps verified segments within their retention.

mod fetch;
mod peers;
mod store;

use crate::bandwidth::BandwidthEstimator;
use crate::config::Config;
use crate::integrity::Digest;
use crate::io::{
    DigestJob, Input, Output, PeerId, PlaybackState, RequestId, SegmentInfo, SegmentKey,
};
use crate::stats::Stats;
use fetch::Fetch;
use peers::Peer;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;
use store::Stored;

/// The peer-assisted segment engine. Owns no sockets, clock or runtime: feed it [`Input`]s with
/// [`Engine::handle`], carry out the [`Output`]s from [`Engine::poll_output`], and call
/// [`Engine::handle_timeout`] when the time from [`Engine::poll_timeout`] is reached.
/// `now` is any monotonic time the driver chooses (e.g. time since the driver started).
pub struct Engine {
    config: Config,
    rng: SmallRng,
    now: Duration,
    outputs: VecDeque<Output>,
    segments: BTreeMap<SegmentKey, Segment>,
    peers: BTreeMap<PeerId, Peer>,
    banned: BTreeSet<PeerId>,
    http: BTreeMap<RequestId, SegmentKey>,
    next_request: u64,
    playhead: Option<Playhead>,
    stalled_since: Option<Duration>,
    active_rendition: Option<u16>,
    announced: BTreeSet<u16>,
    newest_seq: BTreeMap<u16, u64>,
    live: bool,
    bandwidth: BandwidthEstimator,
    stats: Stats,
    upload_budget: UploadBudget,
    /// Peers with queued requests, in arrival order; the first `upload_slots` are served.
    upload_order: VecDeque<PeerId>,
    stored_bytes: u64,
    /// Digests the driver is computing, and what each is for.
    digests: BTreeMap<DigestJob, fetch::Purpose>,
    next_digest: u64,
    /// This peer's CDN-pull ticket, announced to every peer (see [`crate::wire::Message::Ticket`]).
    ticket: u64,
}

/// Where the player is, extrapolated in real time while playing.
#[derive(Debug, Clone, Copy)]
struct Playhead {
    position: Duration,
    at: Duration,
    state: PlaybackState,
}

/// Everything the engine tracks about one segment.
struct Segment {
    info: SegmentInfo,
    /// Trusted digest (hash list or tracker agreement). A matching digest fixes the content,
    /// and so its size: the size is checked by the digest alone.
    trusted: Option<Digest>,
    /// Size from the hash list, the tracker or (else) a peer's claim, used to plan byte ranges
    /// (verified later by the digest).
    size_hint: Option<u64>,
    state: SegmentState,
    /// When the player requested it (`None`: not requested, or already delivered).
    wanted_since: Option<Duration>,
    hash_queried_at: Option<Duration>,
    /// Live: when this peer next holds the CDN-pull election for this new segment.
    next_pull_election: Option<Duration>,
    /// Elections held so far for this segment (each one seats more pullers).
    pull_rounds: u32,
}

enum SegmentState {
    Missing,
    Fetching(Box<Fetch>),
    Stored(Stored),
}

/// Token bucket for the upload cap.
#[derive(Debug, Clone, Copy)]
struct UploadBudget {
    tokens: f64,
    at: Duration,
}

impl Engine {
    /// A new engine with no peers and no segments.
    pub fn new(config: Config) -> Engine {
        let mut rng = SmallRng::seed_from_u64(config.seed);
        Engine {
            ticket: rng.random(),
            rng,
            bandwidth: BandwidthEstimator::new(config.initial_bandwidth),
            config,
            now: Duration::ZERO,
            outputs: VecDeque::new(),
            segments: BTreeMap::new(),
            peers: BTreeMap::new(),
            banned: BTreeSet::new(),
            http: BTreeMap::new(),
            next_request: 0,
            playhead: None,
            stalled_since: None,
            active_rendition: None,
            announced: BTreeSet::new(),
            newest_seq: BTreeMap::new(),
            live: false,
            stats: Stats::default(),
            upload_budget: UploadBudget {
                tokens: 0.0,
                at: Duration::ZERO,
            },
            stored_bytes: 0,
            upload_order: VecDeque::new(),
            digests: BTreeMap::new(),
            next_digest: 0,
        }
    }

    /// Feeds one input observed at `now`.
    pub fn handle(&mut self, input: Input<'_>, now: Duration) {
        self.advance(now);
        match input {
            Input::Playlist {
                rendition,
                live,
                segments,
            } => self.on_playlist(rendition, live, segments),
            Input::SegmentRequested(key) => self.on_segment_requested(key),
            Input::SegmentAbandoned(key) => {
                if let Some(segment) = self.segments.get_mut(&key) {
                    segment.wanted_since = None;
                }
            }
            Input::Playhead { position, state } => self.on_playhead(position, state),
            Input::PeerConnected {
                peer,
                rendition,
                max_message_size,
            } => self.on_peer_connected(peer, rendition, max_message_size),
            Input::PeerMessage { peer, bytes } => self.on_peer_message(peer, bytes),
            Input::PeerBufferedAmountLow { peer, buffered } => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.buffered = buffered;
                    self.pump_uploads(peer);
                }
            }
            Input::PeerLeft(peer) => self.remove_peer(peer),
            Input::HttpData { request, bytes } => self.on_http_data(request, bytes),
            Input::HttpFinished(request) => self.on_http_finished(request),
            Input::HttpFailed(request) => self.on_http_failed(request),
            Input::TrackerHash { key, sha256, size } => self.on_trusted_hash(key, sha256, size),
            Input::DigestComputed { job, sha256 } => self.on_digest(job, sha256),
        }
        self.drive();
    }

    /// Lets time pass to `now` (call when [`Engine::poll_timeout`] is reached).
    pub fn handle_timeout(&mut self, now: Duration) {
        self.advance(now);
        self.pump_all_uploads();
        self.drive();
    }

    /// The next action for the driver, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`Engine::handle_timeout`] should be called next (`None`: only on new input).
    pub fn poll_timeout(&self) -> Option<Duration> {
        let mut next: Option<Duration> = None;
        let mut consider = |t: Duration| {
            if t > self.now && next.is_none_or(|n| t < n) {
                next = Some(t);
            }
        };
        self.fetch_wake_times(&mut consider);
        if self.uploads_wait_for_budget() {
            consider(self.now + Duration::from_millis(20));
        }
        next
    }

    /// Running totals.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Throughput estimate for the player's ABR, in bits per second (CDN transfers only).
    pub fn bandwidth_estimate(&self) -> f64 {
        self.bandwidth.estimate()
    }

    fn advance(&mut self, now: Duration) {
        self.now = self.now.max(now);
    }

    fn push(&mut self, output: Output) {
        self.outputs.push_back(output);
    }

    fn new_request_id(&mut self) -> RequestId {
        self.next_request += 1;
        RequestId(self.next_request)
    }

    /// The playhead's media time now, if the player reported one.
    fn position_now(&self) -> Option<Duration> {
        self.playhead.map(|p| match p.state {
            PlaybackState::Playing => p.position + self.now.saturating_sub(p.at),
            _ => p.position,
        })
    }

    /// When a segment must be complete: the time the playhead reaches its start. Requested
    /// segments are due at once while no playhead is known; others have no deadline then.
    fn deadline(&self, segment: &Segment) -> Option<Duration> {
        match self.position_now() {
            Some(position) => Some(self.now + segment.info.start.saturating_sub(position)),
            None => segment.wanted_since.map(|_| self.now),
        }
    }

    fn on_playlist(&mut self, rendition: u16, live: bool, segments: &[SegmentInfo]) {
        self.live = live;
        let previous_newest = self.newest_seq.get(&rendition).copied();
        for info in segments {
            let key = info.key;
            if self.segments.contains_key(&key) || self.is_expired(key) {
                continue;
            }
            self.segments.insert(
                key,
                Segment {
                    trusted: info.hash.map(|h| h.sha256),
                    size_hint: info.hash.map(|h| h.size),
                    info: info.clone(),
                    state: SegmentState::Missing,
                    wanted_since: None,
                    hash_queried_at: None,
                    next_pull_election: None,
                    pull_rounds: 0,
                },
            );
            let newest = self.newest_seq.entry(rendition).or_insert(key.seq);
            *newest = (*newest).max(key.seq);
            let fresh = previous_newest.is_some_and(|n| key.seq > n);
            if live && fresh {
                if let Some(segment) = self.segments.get_mut(&key) {
                    segment.next_pull_election = Some(self.now);
                }
            }
        }
        self.enforce_retention();
    }

    fn on_segment_requested(&mut self, key: SegmentKey) {
        if self.announced.insert(key.rendition) {
            self.push(Output::Announce {
                rendition: key.rendition,
            });
        }
        self.active_rendition = Some(key.rendition);
        let now = self.now;
        let Some(segment) = self.segments.get_mut(&key) else {
            return;
        };
        segment.wanted_since = Some(now);
        if let SegmentState::Stored(stored) = &segment.state {
            let stored = stored.clone();
            self.deliver(key, &stored);
        }
    }

    fn on_playhead(&mut self, position: Duration, state: PlaybackState) {
        let stalled = state == PlaybackState::Stalled;
        match (self.stalled_since, stalled) {
            (None, true) => {
                self.stats.stalls += 1;
                self.stalled_since = Some(self.now);
            }
            (Some(since), false) => {
                self.stats.stall_time += self.now.saturating_sub(since);
                self.stalled_since = None;
            }
            _ => {}
        }
        self.playhead = Some(Playhead {
            position,
            at: self.now,
            state,
        });
    }

    /// Runs every scheduling decision that may have changed.
    fn drive(&mut self) {
        self.elect_cdn_pulls();
        self.check_transfers();
        self.schedule_fetches();
    }
}

#[cfg(test)]
mod tests;
