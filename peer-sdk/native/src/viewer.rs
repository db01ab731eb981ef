//! The driver: one tokio task per viewer that feeds the sans-IO core (`peer_sdk::Engine`) its
//! inputs (time, playlists, player requests, peer bytes, HTTP progress, the tracker's agreed
//! segment hashes) and carries out its outputs with the adapters of this crate.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use peer_sdk::integrity::{Digest, sha256};
use peer_sdk::stream::{Listed, StreamModel};
use peer_sdk::tracker_session;
use peer_sdk::{
    DigestJob, Engine, Event, Input, Output, PeerId, RequestId, SegmentInfo, SegmentKey,
    SegmentSource,
};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument as _;
use url::Url;

use crate::cdn::{CdnClient, Progress};
use crate::hls::{self, LivePlaylist, Stream};
use crate::id20::Id20;
use crate::player::{Known, Player};
use crate::rtc::{Channel, LinkEvent, PeerLink, RtcFactory};
use crate::signaling::{Signaling, SignalingConfig, SignalingEvent};
use crate::tracker_client::TrackerEvent;

/// How often the player's clock ticks.
const TICK: Duration = Duration::from_millis(100);
/// How often running totals go to [`ViewerHooks::progress`].
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// How long the connections of a swarm the viewer left (after an ABR switch) are kept: they
/// still serve the neighbours there, and the viewer if ABR switches back soon.
const LEFT_SWARM_KEPT: Duration = Duration::from_secs(30);

/// What one viewer plays and where it meets peers.
#[derive(Debug, Clone)]
pub struct ViewerConfig {
    /// The master (or media) playlist.
    pub playlist: Url,
    /// The tracker's WebSocket URL.
    pub tracker: String,
    /// How long to watch.
    pub duration: Duration,
    /// The core's settings.
    pub engine: peer_sdk::Config,
    /// Offers per announce.
    pub offers_per_announce: usize,
    /// TEST ONLY: flip the payload bytes of every segment chunk this viewer uploads, to play a
    /// malicious peer in tests of integrity checking. Never set it in a real viewer.
    pub corrupt_uploads_for_testing: bool,
    /// Local address the tracker connection leaves from (`None`: the system's choice).
    pub source: Option<IpAddr>,
    /// A hash list to take trusted hashes from instead of each media playlist's sidecar (its
    /// URIs are relative to its own URL, see [`LivePlaylist::with_hash_list`]).
    pub hash_list: Option<Url>,
}

impl ViewerConfig {
    /// A viewer of `playlist` meeting peers at `tracker` for `duration`, with the core's
    /// defaults (integrity required), 5 offers per announce and honest uploads.
    pub fn new(playlist: Url, tracker: impl Into<String>, duration: Duration) -> Self {
        Self {
            playlist,
            tracker: tracker.into(),
            duration,
            engine: peer_sdk::Config::default(),
            offers_per_announce: 5,
            corrupt_uploads_for_testing: false,
            source: None,
            hash_list: None,
        }
    }
}

/// A delivered segment, for callers that check bytes (tests).
pub type Delivery = (SegmentKey, Arc<[u8]>);

/// Optional ways to watch a running viewer.
#[derive(Debug, Default)]
pub struct ViewerHooks {
    /// Receives every segment delivered to the player.
    pub deliveries: Option<mpsc::UnboundedSender<Delivery>>,
    /// Receives the viewer's running totals about once a second.
    pub progress: Option<watch::Sender<ViewerSummary>>,
}

/// What a viewer did, as the `virtual-viewer` JSON summary reports it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ViewerSummary {
    /// Bytes from the CDN.
    pub bytes_from_cdn: u64,
    /// Bytes from peers.
    pub bytes_from_peers: u64,
    /// Bytes uploaded to peers.
    pub bytes_uploaded: u64,
    /// Segments delivered to the player.
    pub segments_delivered: u64,
    /// HTTP requests made.
    pub cdn_requests: u64,
    /// Stalls after startup.
    pub stalls: u64,
    /// Total stall time, seconds.
    pub stall_seconds: f64,
    /// Time to the first segment, seconds.
    pub startup_seconds: Option<f64>,
    /// Peers connected at the end.
    pub peers: usize,
    /// Data channels that opened during the run.
    pub peers_opened: u64,
    /// Segments that failed verification.
    pub integrity_failures: u64,
    /// Agreed segment hashes the tracker answered (trusted where the stream has no hash list).
    pub tracker_hashes: u64,
    /// Segments whose peer bytes were dropped because no trusted hash came in time (the CDN
    /// served them).
    pub hash_timeouts: u64,
    /// Peers banned for sending corrupt data.
    pub peers_banned: u64,
    /// Segments delivered whose bytes came entirely from peers.
    pub segments_from_peers: u64,
    /// Segments delivered partly from peers, completed by an HTTP `Range` request.
    pub segments_mixed: u64,
    /// HTTP requests for a byte range (completing what peers did not send).
    pub cdn_range_requests: u64,
    /// Seconds from this viewer's first announce to its first open data channel.
    pub announce_to_channel_seconds: Option<f64>,
    /// ABR switches.
    pub rendition_switches: u64,
    /// The rendition played at the end.
    pub rendition: u16,
}

/// What the helper tasks report to the viewer's loop.
enum Io {
    Playlist {
        rendition: u16,
        live: bool,
        segments: Vec<hls::Segment>,
    },
    Http(RequestId, Result<Progress, ()>),
    PeerOpen(PeerId, Channel),
    PeerMessage(PeerId, Bytes),
    PeerLow(PeerId, usize),
    PeerClosed(PeerId),
    Digest(DigestJob, Digest),
}

struct Peer {
    /// The swarm and the remote's peer id.
    remote: (Id20, Id20),
    rendition: u16,
    outbox: Option<mpsc::UnboundedSender<Bytes>>,
    _close: oneshot::Sender<()>,
}

/// Runs one viewer for `config.duration`, reporting through `hooks`. Its log lines carry a
/// `viewer` span named by the core's seed.
pub async fn run_viewer(
    config: ViewerConfig,
    factory: Arc<RtcFactory>,
    cdn: CdnClient,
    hooks: ViewerHooks,
) -> anyhow::Result<ViewerSummary> {
    let span = tracing::info_span!("viewer", seed = config.engine.seed);
    watch_stream(config, factory, cdn, hooks)
        .instrument(span)
        .await
}

async fn watch_stream(
    config: ViewerConfig,
    factory: Arc<RtcFactory>,
    cdn: CdnClient,
    hooks: ViewerHooks,
) -> anyhow::Result<ViewerSummary> {
    let stream = hls::load_stream(&cdn, &config.playlist, None).await?;
    let mut signaling_config = SignalingConfig::new(config.tracker.clone());
    signaling_config.offers_per_announce = config.offers_per_announce;
    signaling_config.source = config.source;
    let (signaling, signaling_events) = Signaling::spawn(signaling_config, factory);
    let (io_tx, io_rx) = mpsc::unbounded_channel();
    let refreshers: Vec<JoinHandle<()>> = stream
        .renditions
        .iter()
        .map(|r| {
            let mut playlist = LivePlaylist::new(r.url.clone());
            if let Some(list) = &config.hash_list {
                playlist = playlist.with_hash_list(list.clone());
            }
            tokio::spawn(follow_playlist(
                cdn.clone(),
                r.index,
                playlist,
                io_tx.clone(),
            ))
        })
        .collect();
    let bitrates = stream
        .renditions
        .iter()
        .map(|r| r.bandwidth.unwrap_or(0))
        .collect();
    let mut viewer = Viewer {
        engine: Engine::new(config.engine.clone()),
        player: Player::new(bitrates),
        start: Instant::now(),
        stream,
        cdn,
        signaling,
        io: io_tx,
        http: HashMap::new(),
        peers: HashMap::new(),
        next_peer: 0,
        banned: HashSet::new(),
        announced_at: None,
        swarm: None,
        left: Vec::new(),
        waiting_for_playlist: None,
        model: StreamModel::default(),
        hooks,
        last_progress: Duration::ZERO,
        summary: ViewerSummary::default(),
        corrupt_uploads: config.corrupt_uploads_for_testing,
    };
    viewer.run(config.duration, io_rx, signaling_events).await;
    for task in refreshers {
        task.abort();
    }
    for (_, task) in viewer.http.drain() {
        task.abort();
    }
    Ok(viewer.finish())
}

struct Viewer {
    engine: Engine,
    player: Player,
    start: Instant,
    stream: Stream,
    cdn: CdnClient,
    signaling: Signaling,
    io: mpsc::UnboundedSender<Io>,
    http: HashMap<RequestId, JoinHandle<()>>,
    peers: HashMap<PeerId, Peer>,
    next_peer: u64,
    /// Remote peers (per swarm) banned for corrupt data: their new connections are refused.
    banned: HashSet<(Id20, Id20)>,
    announced_at: Option<Duration>,
    /// The rendition whose swarm this viewer is in: the one the player last asked for.
    swarm: Option<u16>,
    /// Renditions whose swarm the viewer left, and when; their connections close after
    /// [`LEFT_SWARM_KEPT`].
    left: Vec<(u16, Duration)>,
    /// The player's request, held until its rendition's playlist lists the segment.
    waiting_for_playlist: Option<SegmentKey>,
    /// Listed segments: media times and tracker names (for hash reports and queries).
    model: StreamModel,
    hooks: ViewerHooks,
    last_progress: Duration,
    summary: ViewerSummary,
    corrupt_uploads: bool,
}

impl Viewer {
    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    async fn run(
        &mut self,
        duration: Duration,
        mut io: mpsc::UnboundedReceiver<Io>,
        mut signaling: mpsc::Receiver<SignalingEvent>,
    ) {
        let end = self.start + duration;
        let mut tick = tokio::time::interval(TICK);
        loop {
            let wake = self
                .engine
                .poll_timeout()
                .and_then(|t| self.start.checked_add(t))
                .unwrap_or(end)
                .min(end);
            tokio::select! {
                () = tokio::time::sleep_until(wake) => {
                    if Instant::now() >= end {
                        return;
                    }
                    self.engine.handle_timeout(self.now());
                }
                _ = tick.tick() => self.on_tick(),
                Some(event) = io.recv() => self.on_io(event),
                Some(event) = signaling.recv() => self.on_signaling(event),
            }
            self.execute_outputs();
        }
    }

    fn on_tick(&mut self) {
        let now = self.now();
        if let Some(progress) = &self.hooks.progress
            && now >= self.last_progress + PROGRESS_EVERY
        {
            self.last_progress = now;
            progress.send_replace(self.summary());
        }
        self.close_left_swarms(now);
        let before = self.player.state();
        self.player.advance(now);
        if self.player.state() != before || before == peer_sdk::PlaybackState::Playing {
            let input = Input::Playhead {
                position: self.player.position(),
                state: self.player.state(),
            };
            self.engine.handle(input, now);
        }
        if let Some((rendition, seq)) = self.player.next_request(self.engine.bandwidth_estimate()) {
            self.waiting_for_playlist = Some(SegmentKey { rendition, seq });
            self.request_if_listed(now);
        }
    }

    /// Hands the player's request to the core once the rendition's playlist has listed the
    /// segment: the player follows the first rendition's playlist, the others refresh on their
    /// own schedule, and the core ignores requests for segments it does not know yet.
    fn request_if_listed(&mut self, now: Duration) {
        let Some(key) = self.waiting_for_playlist else {
            return;
        };
        let listed = self
            .model
            .newest(key.rendition)
            .is_some_and(|newest| newest >= key.seq);
        if listed {
            self.waiting_for_playlist = None;
            self.follow_rendition(key.rendition);
            self.engine.handle(Input::SegmentRequested(key), now);
        }
    }

    /// Keeps the viewer in the swarm of the rendition the player asks for: joins it and leaves
    /// the previous one at the tracker (no new connections come for it). The previous swarm's
    /// connections close after [`LEFT_SWARM_KEPT`] unless the player comes back: a connection
    /// carries only its swarm's rendition, and kept for good such connections would fill
    /// `max_peers` and crowd out the peers of the new rendition.
    fn follow_rendition(&mut self, rendition: u16) {
        if self.swarm == Some(rendition) {
            return;
        }
        let now = self.now();
        self.left.retain(|&(left, _)| left != rendition);
        if let Some(old) = self.swarm.replace(rendition) {
            if let Some(r) = self.stream.renditions.get(usize::from(old)) {
                self.signaling.leave(r.info_hash);
            }
            self.left.push((old, now));
        }
        if self.announced_at.is_none() {
            self.announced_at = Some(now);
        }
        if let Some(r) = self.stream.renditions.get(usize::from(rendition)) {
            self.signaling.join(r.info_hash);
        }
    }

    /// Closes the connections of swarms left at least [`LEFT_SWARM_KEPT`] ago.
    fn close_left_swarms(&mut self, now: Duration) {
        let (expired, kept) = self
            .left
            .iter()
            .partition(|&&(_, at)| now.saturating_sub(at) >= LEFT_SWARM_KEPT);
        self.left = kept;
        for (rendition, _) in expired {
            let stale: Vec<PeerId> = self
                .peers
                .iter()
                .filter(|(_, p)| p.rendition == rendition)
                .map(|(id, _)| *id)
                .collect();
            for peer in stale {
                let opened = self.peers.remove(&peer).is_some_and(|p| p.outbox.is_some());
                if opened {
                    self.engine.handle(Input::PeerLeft(peer), now);
                }
            }
        }
    }

    fn on_io(&mut self, event: Io) {
        let now = self.now();
        match event {
            Io::Playlist {
                rendition,
                live,
                segments,
            } => {
                let infos = self.segment_infos(rendition, segments);
                if rendition == 0 {
                    let known = infos.iter().map(|i| {
                        let known = Known {
                            start: i.start,
                            duration: i.duration,
                        };
                        (i.key.seq, known)
                    });
                    self.player.add_segments(live, known);
                }
                let input = Input::Playlist {
                    rendition,
                    live,
                    segments: &infos,
                };
                self.engine.handle(input, now);
                self.request_if_listed(now);
            }
            Io::Http(request, progress) => {
                let input = match &progress {
                    Ok(Progress::Data(bytes)) => Input::HttpData { request, bytes },
                    Ok(Progress::Done) => Input::HttpFinished(request),
                    Err(()) => Input::HttpFailed(request),
                };
                if !matches!(progress, Ok(Progress::Data(_))) {
                    self.http.remove(&request);
                }
                self.engine.handle(input, now);
            }
            Io::PeerOpen(peer, channel) => {
                let Some(state) = self.peers.get_mut(&peer) else {
                    return;
                };
                let max_message_size = channel.max_message_size();
                state.outbox = Some(spawn_writer(peer, channel, self.io.clone()));
                self.summary.peers_opened += 1;
                if self.summary.announce_to_channel_seconds.is_none()
                    && let Some(announced) = self.announced_at
                {
                    let waited = now.saturating_sub(announced);
                    tracing::debug!(?waited, "first data channel open");
                    self.summary.announce_to_channel_seconds = Some(waited.as_secs_f64());
                }
                let input = Input::PeerConnected {
                    peer,
                    rendition: state.rendition,
                    max_message_size,
                };
                self.engine.handle(input, now);
            }
            Io::PeerMessage(peer, bytes) => {
                if self.peers.contains_key(&peer) {
                    self.engine.handle(
                        Input::PeerMessage {
                            peer,
                            bytes: &bytes,
                        },
                        now,
                    );
                }
            }
            Io::PeerLow(peer, buffered) => {
                if self.peers.contains_key(&peer) {
                    self.engine
                        .handle(Input::PeerBufferedAmountLow { peer, buffered }, now);
                }
            }
            Io::PeerClosed(peer) => {
                if self.peers.remove(&peer).is_some() {
                    self.engine.handle(Input::PeerLeft(peer), now);
                }
                // Every connection's end passes here, also those the core closed.
                let left = self
                    .peers
                    .values()
                    .filter(|p| Some(p.rendition) == self.swarm)
                    .count();
                if let Some(wait) = tracker_session::reannounce_after_loss(left) {
                    self.signaling.announce_within(wait);
                }
            }
            Io::Digest(job, sha256) => {
                self.engine
                    .handle(Input::DigestComputed { job, sha256 }, now);
            }
        }
    }

    /// The core's view of newly listed segments.
    fn segment_infos(&mut self, rendition: u16, segments: Vec<hls::Segment>) -> Vec<SegmentInfo> {
        let listed = segments
            .into_iter()
            .map(|segment| Listed {
                seq: segment.seq,
                uri: segment.uri,
                url: segment.url.into(),
                duration: segment.duration,
                hash: segment.hash,
            })
            .collect();
        self.model.list(rendition, listed)
    }

    fn on_signaling(&mut self, event: SignalingEvent) {
        match event {
            SignalingEvent::Peer {
                info_hash,
                peer_id,
                link,
                ..
            } => self.on_peer_link(info_hash, peer_id, link),
            SignalingEvent::Tracker(TrackerEvent::Hashes { info_hash, hashes }) => {
                self.on_tracker_hashes(&info_hash, hashes);
            }
            SignalingEvent::Tracker(_) => {}
        }
    }

    /// The tracker answered a hash query: the core trusts these hashes (the tracker states no
    /// size; a matching digest fixes it).
    fn on_tracker_hashes(&mut self, info_hash: &Id20, hashes: Vec<(String, Digest)>) {
        let Some(rendition) = self.rendition_of(info_hash) else {
            return;
        };
        let now = self.now();
        for (name, sha256) in hashes {
            for key in self.model.keys_named(rendition, &name) {
                self.summary.tracker_hashes += 1;
                let input = Input::TrackerHash {
                    key,
                    sha256,
                    size: None,
                };
                self.engine.handle(input, now);
            }
        }
    }

    fn on_peer_link(&mut self, info_hash: Id20, peer_id: Id20, link: PeerLink) {
        let Some(rendition) = self.rendition_of(&info_hash) else {
            return;
        };
        let remote = (info_hash, peer_id);
        // Negotiated for a swarm this viewer has left, or with a peer banned for corrupt data.
        if self.swarm != Some(rendition) || self.banned.contains(&remote) {
            tokio::spawn(async move { link.close().await });
            return;
        }
        // One id per connection (two peers that offered to each other hold two connections).
        let peer = PeerId(self.next_peer);
        self.next_peer += 1;
        let (close, closed) = oneshot::channel();
        tokio::spawn(read_link(peer, link, closed, self.io.clone()));
        self.peers.insert(
            peer,
            Peer {
                remote,
                rendition,
                outbox: None,
                _close: close,
            },
        );
    }

    fn rendition_of(&self, info_hash: &Id20) -> Option<u16> {
        self.stream
            .renditions
            .iter()
            .find(|r| r.info_hash == *info_hash)
            .map(|r| r.index)
    }

    fn execute_outputs(&mut self) {
        let mut queries: Vec<SegmentKey> = Vec::new();
        while let Some(output) = self.engine.poll_output() {
            match &output {
                Output::SendToPeer { .. } | Output::ComputeDigest { .. } => {}
                Output::Deliver { key, data } => {
                    tracing::debug!(?key, size = data.len(), at = ?self.now(), "deliver");
                }
                other => tracing::debug!(output = ?other, at = ?self.now(), "core output"),
            }
            match output {
                Output::SendToPeer { peer, mut bytes } => {
                    if self.corrupt_uploads {
                        bytes = peer_sdk::wire::with_flipped_payload(&bytes);
                    }
                    if let Some(outbox) = self.peers.get(&peer).and_then(|p| p.outbox.as_ref()) {
                        let _ = outbox.send(Bytes::from(bytes));
                    }
                }
                Output::DisconnectPeer { peer, .. } => {
                    self.peers.remove(&peer);
                }
                Output::HttpRequest {
                    request,
                    url,
                    range,
                } => {
                    if range.is_some() {
                        self.summary.cdn_range_requests += 1;
                    }
                    let io = self.io.clone();
                    let mut download = self.cdn.fetch(&url, range);
                    let task = tokio::spawn(async move {
                        loop {
                            let progress = download.next().await.map_err(drop);
                            let last = !matches!(progress, Ok(Progress::Data(_)));
                            if io.send(Io::Http(request, progress)).is_err() || last {
                                return;
                            }
                        }
                    });
                    self.http.insert(request, task);
                }
                Output::HttpAbort(request) => {
                    if let Some(task) = self.http.remove(&request) {
                        task.abort();
                    }
                }
                Output::Deliver { key, data } => {
                    self.player.delivered(key.rendition, key.seq, self.now());
                    self.summary.segments_delivered += 1;
                    if let Some(deliveries) = &self.hooks.deliveries {
                        let _ = deliveries.send((key, data));
                    }
                }
                Output::Announce { rendition } => self.follow_rendition(rendition),
                Output::ComputeDigest { job, data } => {
                    let io = self.io.clone();
                    tokio::task::spawn_blocking(move || {
                        let _ = io.send(Io::Digest(job, sha256(&data)));
                    });
                }
                Output::ReportHash { key, sha256, .. } => self.report_hash(key, sha256),
                Output::QueryHash(key) => queries.push(key),
                Output::Event(Event::PeerBanned(peer)) => {
                    tracing::info!(?peer, "peer banned for corrupt data");
                    self.summary.peers_banned += 1;
                    if let Some(state) = self.peers.get(&peer) {
                        self.banned.insert(state.remote);
                    }
                }
                Output::Event(Event::SegmentDelivered { source, .. }) => match source {
                    SegmentSource::Peers => self.summary.segments_from_peers += 1,
                    SegmentSource::Mixed => self.summary.segments_mixed += 1,
                    SegmentSource::Cdn => {}
                },
                Output::Event(_) => {}
            }
        }
        self.query_hashes(&queries);
    }

    /// Reports the hash of a segment fetched from the CDN to the tracker.
    fn report_hash(&self, key: SegmentKey, sha256: Digest) {
        let (Some(rendition), Some(name)) = (
            self.stream.renditions.get(usize::from(key.rendition)),
            self.model.tracker_name(key),
        ) else {
            return;
        };
        self.signaling
            .report_hash(rendition.info_hash, name.to_owned(), sha256);
    }

    /// Asks the tracker for the agreed hashes of the segments the core queried in one turn:
    /// one query per swarm.
    fn query_hashes(&self, keys: &[SegmentKey]) {
        for rendition in &self.stream.renditions {
            let names: Vec<String> = keys
                .iter()
                .filter(|key| key.rendition == rendition.index)
                .filter_map(|key| self.model.tracker_name(*key).map(str::to_owned))
                .collect();
            if !names.is_empty() {
                self.signaling.query_hashes(rendition.info_hash, names);
            }
        }
    }

    fn summary(&self) -> ViewerSummary {
        let stats = self.engine.stats();
        let (stalls, stall_time) = self.player.stalls();
        ViewerSummary {
            bytes_from_cdn: stats.bytes_from_cdn,
            bytes_from_peers: stats.bytes_from_peers,
            bytes_uploaded: stats.bytes_uploaded,
            cdn_requests: stats.cdn_requests,
            stalls,
            stall_seconds: stall_time.as_secs_f64(),
            startup_seconds: self.player.started_at().map(|t| t.as_secs_f64()),
            peers: self.peers.values().filter(|p| p.outbox.is_some()).count(),
            integrity_failures: stats.integrity_failures,
            hash_timeouts: stats.hash_timeouts,
            rendition_switches: self.player.switches(),
            rendition: self.player.rendition(),
            ..self.summary.clone()
        }
    }

    fn finish(self) -> ViewerSummary {
        self.summary()
    }
}

/// Reloads one rendition's playlist for as long as it is live.
async fn follow_playlist(
    cdn: CdnClient,
    rendition: u16,
    mut playlist: LivePlaylist,
    io: mpsc::UnboundedSender<Io>,
) {
    loop {
        match playlist.refresh(&cdn).await {
            Ok(segments) if !segments.is_empty() => {
                let live = playlist.is_live();
                if io
                    .send(Io::Playlist {
                        rendition,
                        live,
                        segments,
                    })
                    .is_err()
                {
                    return;
                }
            }
            Ok(_) => {}
            Err(error) => tracing::debug!(%error, "playlist refresh failed"),
        }
        if !playlist.is_live() {
            return;
        }
        tokio::time::sleep(playlist.next_refresh_in()).await;
    }
}

/// Forwards a link's events until it closes or the viewer drops it.
async fn read_link(
    peer: PeerId,
    mut link: PeerLink,
    mut closed: oneshot::Receiver<()>,
    io: mpsc::UnboundedSender<Io>,
) {
    loop {
        tokio::select! {
            _ = &mut closed => break,
            event = link.next_event() => {
                let forwarded = match event {
                    Some(LinkEvent::Open(channel)) => io.send(Io::PeerOpen(peer, channel)),
                    Some(LinkEvent::Message(bytes)) => io.send(Io::PeerMessage(peer, bytes)),
                    Some(LinkEvent::Closed) | None => break,
                };
                if forwarded.is_err() {
                    break;
                }
            }
        }
    }
    link.close().await;
    let _ = io.send(Io::PeerClosed(peer));
}

/// Sends a peer's messages in order. After sending, reports the channel's buffered amount once
/// it has fallen to [`crate::rtc::BUFFERED_AMOUNT_LOW`], so the core (which stops sending at its
/// `max_buffered_amount`) always hears that it may go on.
fn spawn_writer(
    peer: PeerId,
    channel: Channel,
    io: mpsc::UnboundedSender<Io>,
) -> mpsc::UnboundedSender<Bytes> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
    tokio::spawn(async move {
        let mut unreported = false;
        loop {
            tokio::select! {
                biased;
                message = rx.recv() => {
                    let Some(message) = message else { return };
                    if channel.send(message).await.is_err() {
                        return;
                    }
                    unreported = true;
                }
                () = channel.buffered_amount_low(), if unreported => {
                    unreported = false;
                    let buffered = channel.buffered_amount().await;
                    if io.send(Io::PeerLow(peer, buffered)).is_err() {
                        return;
                    }
                }
            }
        }
    });
    tx
}
