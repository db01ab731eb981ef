//! Meeting peers through the tracker: announces carry fresh WebRTC offers, relayed offers are
//! answered, answers complete pending offers, and every connection that results is handed out
//! as a [`PeerLink`]. Swarms are announced again after each reconnect, at the tracker's
//! interval, and soon after the owner lost its last peer. Segment hashes are reported to and
//! asked of the tracker on the same connection (`hash_report`, `hash_query`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use peer_sdk::integrity::Digest;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::id20::{self, Id20};
use crate::rtc::{PeerLink, PendingOffer, RtcFactory};
use crate::tracker_client::{
    Announce, AnnounceEvent, Backoff, PeerExtension, TrackerClient, TrackerEvent, TrackerEvents,
};
use peer_sdk::tracker_session;

/// Signaling settings.
#[derive(Debug, Clone)]
pub struct SignalingConfig {
    /// The tracker's WebSocket URL.
    pub tracker_url: String,
    /// Offers sent with each announce (WebTorrent sends up to 10).
    pub offers_per_announce: usize,
    /// Re-announce period when the tracker gives none.
    pub default_interval: Duration,
    /// Reconnect timing.
    pub backoff: Backoff,
    /// Extension fields for this project's tracker.
    pub ext: Option<PeerExtension>,
    /// Local address the tracker connection leaves from (`None`: the system's choice).
    pub source: Option<IpAddr>,
}

impl SignalingConfig {
    /// Defaults for `tracker_url`: 5 offers per announce, 120 s interval.
    pub fn new(tracker_url: impl Into<String>) -> Self {
        Self {
            tracker_url: tracker_url.into(),
            offers_per_announce: 5,
            default_interval: tracker_session::DEFAULT_INTERVAL,
            backoff: Backoff::default(),
            ext: None,
            source: None,
        }
    }
}

/// What signaling produced.
#[derive(Debug)]
pub enum SignalingEvent {
    /// A peer connection was negotiated; its data channel opens shortly (see [`PeerLink`]).
    Peer {
        /// The swarm.
        info_hash: Id20,
        /// The remote peer.
        peer_id: Id20,
        /// The connection.
        link: PeerLink,
        /// Whether this side made the offer.
        initiator: bool,
    },
    /// The tracker connection changed or reported something.
    Tracker(TrackerEvent),
}

/// Commands to the signaling task.
enum Command {
    Join(Id20),
    Leave(Id20),
    AnnounceWithin(Duration),
    ReportHash {
        info_hash: Id20,
        segment: String,
        sha256: Digest,
    },
    QueryHashes {
        info_hash: Id20,
        segments: Vec<String>,
    },
}

/// Handle of a running signaling task. Dropping it stops the task.
pub struct Signaling {
    peer_id: Id20,
    commands: mpsc::UnboundedSender<Command>,
}

impl Signaling {
    /// Starts signaling as a new random peer id.
    pub fn spawn(
        config: SignalingConfig,
        factory: Arc<RtcFactory>,
    ) -> (Self, mpsc::Receiver<SignalingEvent>) {
        let peer_id = id20::random_peer_id();
        let (client, tracker_events) = TrackerClient::spawn(
            config.tracker_url.clone(),
            peer_id,
            config.backoff,
            config.source,
        );
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (events_tx, events) = mpsc::channel(64);
        let task = Task {
            config,
            factory,
            client,
            connected: false,
            swarms: HashMap::new(),
            pending: HashMap::new(),
            events: events_tx,
        };
        tokio::spawn(task.run(commands_rx, tracker_events));
        (Self { peer_id, commands }, events)
    }

    /// This peer's id.
    pub fn peer_id(&self) -> Id20 {
        self.peer_id
    }

    /// Joins a swarm: announces with offers now (or once connected) and periodically.
    pub fn join(&self, info_hash: Id20) {
        let _ = self.commands.send(Command::Join(info_hash));
    }

    /// Leaves a swarm (announces `stopped`).
    pub fn leave(&self, info_hash: Id20) {
        let _ = self.commands.send(Command::Leave(info_hash));
    }

    /// Every joined swarm announces again (with fresh offers) within `wait` instead of at the
    /// tracker's interval (see [`tracker_session::reannounce_after_loss`]).
    pub fn announce_within(&self, wait: Duration) {
        let _ = self.commands.send(Command::AnnounceWithin(wait));
    }

    /// Reports the SHA-256 of a segment fetched from the CDN to the tracker, if this peer is
    /// announced in the swarm there (the tracker refuses reports from others).
    pub fn report_hash(&self, info_hash: Id20, segment: String, sha256: Digest) {
        let command = Command::ReportHash {
            info_hash,
            segment,
            sha256,
        };
        let _ = self.commands.send(command);
    }

    /// Asks the tracker for the agreed hashes of segments of a swarm; the answer comes as
    /// [`TrackerEvent::Hashes`].
    pub fn query_hashes(&self, info_hash: Id20, segments: Vec<String>) {
        let _ = self.commands.send(Command::QueryHashes {
            info_hash,
            segments,
        });
    }
}

struct Swarm {
    next_announce: Instant,
    interval: Duration,
}

struct Task {
    config: SignalingConfig,
    factory: Arc<RtcFactory>,
    client: TrackerClient,
    connected: bool,
    swarms: HashMap<Id20, Swarm>,
    pending: HashMap<Id20, (Id20, PendingOffer, Instant)>,
    events: mpsc::Sender<SignalingEvent>,
}

impl Task {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut tracker: TrackerEvents,
    ) {
        loop {
            let next_due = self.swarms.values().map(|s| s.next_announce).min();
            let due = async {
                match next_due {
                    Some(at) if self.connected => tokio::time::sleep_until(at).await,
                    _ => std::future::pending().await,
                }
            };
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.on_command(command).await,
                    None => return,
                },
                () = due => {
                    let now = Instant::now();
                    let due: Vec<Id20> = self.swarms.iter()
                        .filter(|(_, s)| s.next_announce <= now)
                        .map(|(h, _)| *h)
                        .collect();
                    for info_hash in due {
                        self.announce(info_hash, AnnounceEvent::Update).await;
                    }
                }
                event = tracker.next() => match event {
                    Some(event) => {
                        if self.on_tracker_event(event).await.is_err() {
                            return;
                        }
                    }
                    None => return,
                },
            }
        }
    }

    /// Carries out one of the owner's commands.
    async fn on_command(&mut self, command: Command) {
        match command {
            Command::Join(info_hash) => {
                let swarm = Swarm {
                    next_announce: Instant::now(),
                    interval: self.config.default_interval,
                };
                self.swarms.insert(info_hash, swarm);
                if self.connected {
                    self.announce(info_hash, AnnounceEvent::Started).await;
                }
            }
            Command::Leave(info_hash) => {
                if self.swarms.remove(&info_hash).is_some() {
                    self.client.announce(&Announce {
                        info_hash,
                        event: AnnounceEvent::Stopped,
                        numwant: 0,
                        offers: Vec::new(),
                        ext: self.config.ext,
                    });
                }
            }
            Command::AnnounceWithin(wait) => {
                let soon = Instant::now() + wait;
                for swarm in self.swarms.values_mut() {
                    swarm.next_announce = swarm.next_announce.min(soon);
                }
            }
            // Sent only after this connection's announce to the swarm: the tracker takes
            // reports from members only.
            Command::ReportHash {
                info_hash,
                segment,
                sha256,
            } => {
                if self.connected && self.swarms.contains_key(&info_hash) {
                    self.client.report_hash(&info_hash, &segment, &sha256);
                }
            }
            Command::QueryHashes {
                info_hash,
                segments,
            } => {
                if self.connected {
                    self.client
                        .query_hashes(&info_hash, segments.iter().map(String::as_str));
                }
            }
        }
    }

    /// Announces to one swarm with fresh offers, and schedules the next announce.
    async fn announce(&mut self, info_hash: Id20, event: AnnounceEvent) {
        self.drop_expired_offers().await;
        let count = self.config.offers_per_announce;
        let started = Instant::now();
        let created = join_all((0..count).map(|_| self.factory.create_offer())).await;
        tracing::debug!(elapsed = ?started.elapsed(), count, "offers created");
        let mut offers = Vec::with_capacity(count);
        for offer in created.into_iter().flatten() {
            let offer_id = id20::random();
            offers.push((offer_id, offer.sdp.clone()));
            self.pending
                .insert(offer_id, (info_hash, offer, Instant::now()));
        }
        self.client.announce(&Announce {
            info_hash,
            event,
            numwant: offers.len(),
            offers,
            ext: self.config.ext,
        });
        if let Some(swarm) = self.swarms.get_mut(&info_hash) {
            swarm.next_announce = Instant::now() + swarm.interval;
        }
    }

    async fn drop_expired_offers(&mut self) {
        let now = Instant::now();
        let expired: Vec<Id20> = self
            .pending
            .iter()
            .filter(|(_, (_, _, created))| {
                tracker_session::offer_expired(now.duration_since(*created))
            })
            .map(|(id, _)| *id)
            .collect();
        for offer_id in expired {
            if let Some((_, offer, _)) = self.pending.remove(&offer_id) {
                offer.close().await;
            }
        }
    }

    /// Acts on a tracker event; `Err` when the owner is gone.
    async fn on_tracker_event(&mut self, event: TrackerEvent) -> Result<(), ()> {
        match &event {
            TrackerEvent::Connected => {
                self.connected = true;
                let joined: Vec<Id20> = self.swarms.keys().copied().collect();
                for info_hash in joined {
                    self.announce(info_hash, AnnounceEvent::Started).await;
                }
            }
            TrackerEvent::Disconnected => self.connected = false,
            TrackerEvent::AnnounceReply {
                info_hash,
                interval,
                ..
            } => {
                if let Some(swarm) = self.swarms.get_mut(info_hash) {
                    let interval = Duration::from_secs((*interval).clamp(5, 3600));
                    swarm.next_announce += interval.saturating_sub(swarm.interval);
                    swarm.interval = interval;
                }
            }
            TrackerEvent::Offer {
                info_hash,
                peer_id,
                offer_id,
                sdp,
            } => {
                if self.swarms.contains_key(info_hash) {
                    self.answer_offer(*info_hash, *peer_id, *offer_id, sdp.clone());
                }
                return Ok(());
            }
            TrackerEvent::Answer {
                info_hash,
                peer_id,
                offer_id,
                sdp,
            } => {
                let Some((swarm, offer, created)) = self.pending.remove(offer_id) else {
                    return Ok(());
                };
                if swarm != *info_hash {
                    offer.close().await;
                    return Ok(());
                }
                let age = created.elapsed();
                match offer.accept_answer(sdp).await {
                    Ok(link) => {
                        tracing::debug!(?age, "answer applied");
                        let peer = SignalingEvent::Peer {
                            info_hash: *info_hash,
                            peer_id: *peer_id,
                            link,
                            initiator: true,
                        };
                        return self.events.send(peer).await.map_err(drop);
                    }
                    Err(error) => tracing::debug!(%error, "a peer's answer was unusable"),
                }
                return Ok(());
            }
            TrackerEvent::Hashes { .. } | TrackerEvent::Failure { .. } => {}
        }
        self.events
            .send(SignalingEvent::Tracker(event))
            .await
            .map_err(drop)
    }

    /// Answers a relayed offer in its own task (ICE gathering takes a moment).
    fn answer_offer(&self, info_hash: Id20, peer_id: Id20, offer_id: Id20, sdp: String) {
        let factory = Arc::clone(&self.factory);
        let client = self.client.clone();
        let events = self.events.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            match factory.accept_offer(&sdp).await {
                Ok((answer, link)) => {
                    tracing::debug!(elapsed = ?started.elapsed(), "answer created");
                    client.answer(&info_hash, &peer_id, &offer_id, &answer);
                    let peer = SignalingEvent::Peer {
                        info_hash,
                        peer_id,
                        link,
                        initiator: false,
                    };
                    let _ = events.send(peer).await;
                }
                Err(error) => tracing::debug!(%error, "a peer's offer was unusable"),
            }
        });
    }
}
