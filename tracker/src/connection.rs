//! One client's WebSocket session: reads its messages, answers it, relays its offers and answers
//! to other sessions, and writes what other sessions relay to it. One task per connection.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::cluster::{BusMessage, Entry, Holder, Joined};
use crate::geo::Locality;
use crate::id::Id20;
use crate::limits::{ConnectionSlot, OfferBudget, RateLimiter, Strikes};
use crate::liveness::{Due, Liveness};
use crate::matching::Group;
use crate::protocol::{
    self, Announce, AnnounceReply, Answer, Event, Failure, HashQuery, HashReport, ParseLimits,
    Request, ScrapeFile,
};
use crate::registry::{Destination, Owner, PeerRecord, RegistryError, SwarmCounts, Target};
use crate::relay::{Delivery, OfferDelivery, ReplyTo, Route, Tracked};
use crate::shared::Shared;
use crate::stall::{Bounded, WriteError, write_limit};
use crate::tenants::TenantPass;

/// An offer relayed to this client, awaiting its answer.
struct PendingOffer {
    offer: OfferDelivery,
    expires: Instant,
}

/// Why a message was refused, beyond protocol errors.
enum Refusal {
    Protocol(protocol::ProtocolError),
    TooLarge,
    RateLimited,
    TooManySwarms,
    PeerIdTaken,
    UnknownOffer,
    NotAMember,
    NotText,
    OutOfScope,
    TenantAnnounceRate,
    TenantSwarms,
}

impl Refusal {
    fn label(&self) -> &'static str {
        match self {
            Self::Protocol(error) => error.label(),
            Self::TooLarge => "too_large",
            Self::RateLimited => "rate_limited",
            Self::TooManySwarms => "too_many_swarms",
            Self::PeerIdTaken => "peer_id_taken",
            Self::UnknownOffer => "unknown_offer",
            Self::NotAMember => "not_a_member",
            Self::NotText => "not_text",
            Self::OutOfScope => "out_of_token_scope",
            Self::TenantAnnounceRate => "tenant_announces",
            Self::TenantSwarms => "tenant_swarms",
        }
    }

    /// Whether the refusal counts towards closing the connection. An answer to an offer the
    /// tracker no longer holds is not abuse: an overloaded tracker or a busy receiver lets offers
    /// expire or be evicted while honest clients are still answering them. It is still refused
    /// (so nothing is relayed) and the message rate limit still bounds what it costs.
    /// A tenant's quotas are shared by all its clients, so one honest client can meet them
    /// through no fault of its own: they do not count either.
    fn is_strike(&self) -> bool {
        !matches!(
            self,
            Self::UnknownOffer | Self::TenantAnnounceRate | Self::TenantSwarms
        )
    }

    fn is_tenant_quota(&self) -> bool {
        matches!(self, Self::TenantAnnounceRate | Self::TenantSwarms)
    }

    fn reason(&self) -> String {
        match self {
            Self::Protocol(error) => error.to_string(),
            Self::TooLarge => "message too large".into(),
            Self::RateLimited => "rate limit exceeded: slow down".into(),
            Self::TooManySwarms => "too many swarms on this connection".into(),
            Self::PeerIdTaken => RegistryError::PeerIdTaken.to_string(),
            Self::UnknownOffer => "answer to an unknown or expired offer".into(),
            Self::NotAMember => "announce to the swarm with this peer_id first".into(),
            Self::NotText => "messages must be UTF-8 JSON text".into(),
            Self::OutOfScope => "the token does not cover this swarm".into(),
            Self::TenantAnnounceRate => "tenant announce quota exceeded: slow down".into(),
            Self::TenantSwarms => "tenant swarm quota reached".into(),
        }
    }
}

/// Seconds' worth of messages a connection may send at once. A tracker that falls behind reads a
/// backlog of each connection's messages at once, and honest clients must not be refused (and
/// struck, and closed) for its lag: two seconds' worth, as before, closed hundreds of honest
/// load-generator connections at the overload peak, where offers wait about three seconds.
const RATE_BURST_SECONDS: u32 = 10;

/// How long the connection holding a contested `peer_id` has to show it is still there.
const OWNER_PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// An announce whose `peer_id` another connection holds, set aside while that connection is
/// probed: a client whose network changed reconnects while its old connection looks open.
struct Contest {
    info_hash: Id20,
    peer_id: Id20,
    owner: Owner,
    /// The announce, replayed if the owner turns out to be gone.
    text: String,
}

struct Session {
    id: u64,
    shared: Arc<Shared>,
    locality: Arc<Locality>,
    route: Route,
    /// `(info_hash, peer_id)` of every membership announced on this connection (a client may
    /// pool several peers on one socket).
    memberships: Vec<(Id20, Id20)>,
    pending: VecDeque<PendingOffer>,
    /// Offers relayed to this client per second, by sender and in all.
    incoming_offers: OfferBudget,
    limiter: RateLimiter,
    strikes: Strikes,
    abusive: bool,
    /// An announce waiting for [`settle`].
    contest: Option<Box<Contest>>,
    /// Other connections waiting to hear that this client is still there.
    probes: Vec<oneshot::Sender<()>>,
    /// The tenant the client proved with its token, when tenants are configured.
    tenant: Option<TenantPass>,
}

/// Serves one upgraded WebSocket until it closes, the client abuses, or the tracker shuts down.
pub async fn run<S>(
    shared: Arc<Shared>,
    mut socket: WebSocketStream<S>,
    client: IpAddr,
    _slot: ConnectionSlot,
    tenant: Option<TenantPass>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (route, mut inbox) = mpsc::channel(shared.config.outgoing_queue.max(1));
    let tenant_connections = tenant.as_ref().map(|pass| {
        let gauge = shared
            .metrics
            .tenant_connections
            .with_label_values(&[pass.id()]);
        gauge.inc();
        gauge
    });
    let mut session = Session::new(Arc::clone(&shared), client, route, tenant);
    shared.metrics.connections.inc();
    let mut liveness = Liveness::new(
        Instant::now(),
        shared.config.ping_interval(),
        Duration::from_secs(shared.config.peer_timeout),
    );
    let write_limit = write_limit(&shared.config);
    let quiet = tokio::time::sleep_until(liveness.deadline().into());
    tokio::pin!(quiet);
    // Created once: a fresh `cancelled()` per iteration would lock the token's shared waiter list
    // for every message of every connection.
    let shutdown = shared.shutdown.cancelled();
    tokio::pin!(shutdown);
    let ending = loop {
        tokio::select! {
            () = &mut shutdown => {
                close(&mut socket, CloseCode::Away, "tracker shutting down").await;
                break Ending::Shutdown;
            }
            () = &mut quiet => {
                if let Some(ending) = check_liveness(&mut socket, &mut liveness, write_limit).await {
                    break ending;
                }
                quiet.as_mut().reset(liveness.deadline().into());
            }
            incoming = socket.next() => {
                // Frames only move the deadline later, so the timer is reset when it fires
                // rather than on every frame (a reset takes the timer wheel's lock).
                if let Some(Ok(frame)) = &incoming {
                    liveness.on_frame(Instant::now(), frame.is_text() || frame.is_binary());
                    session.answer_probes();
                }
                // Boxed: handling a message may wait for Redis, and that state must not enlarge
                // every idle connection's task.
                let Some(mut replies) = Box::pin(session.on_frame(incoming)).await else {
                    break Ending::Client;
                };
                if let Some(contest) = session.contest.take() {
                    // Boxed: rare, and it would otherwise enlarge every connection's task.
                    replies = Box::pin(settle(&mut session, contest, replies)).await;
                }
                let written = Bounded::new(
                    write_limit,
                    write_batch(&mut socket, &mut session, &mut inbox, replies, None),
                )
                .await;
                if let Err(error) = written {
                    break Ending::after(error);
                }
                if session.abusive {
                    close(&mut socket, CloseCode::Policy, "too many refused messages").await;
                    break Ending::Abusive;
                }
            }
            Some(delivery) = inbox.recv() => {
                let first = Some(delivery);
                let written = Bounded::new(
                    write_limit,
                    write_batch(&mut socket, &mut session, &mut inbox, Vec::new(), first),
                )
                .await;
                if let Err(error) = written {
                    break Ending::after(error);
                }
            }
        }
    };
    Box::pin(session.leave_all()).await;
    tracing::debug!(
        connection = session.id,
        reason = ending.label(),
        "connection closed"
    );
    shared.metrics.connections.dec();
    if let Some(gauge) = tenant_connections {
        gauge.dec();
    }
    shared
        .metrics
        .connections_closed
        .with_label_values(&[ending.label()])
        .inc();
}

/// Why a connection ended: the `reason` of `tracker_connections_closed_total`.
#[derive(Clone, Copy)]
enum Ending {
    /// The client closed it, or it broke.
    Client,
    /// No message for the whole peer timeout.
    Silent,
    /// No answer to a liveness ping.
    Unresponsive,
    /// Too many refused messages.
    Abusive,
    /// The tracker is shutting down.
    Shutdown,
}

impl Ending {
    /// Why a bounded write ends the connection (see [`crate::stall`]).
    fn after(error: WriteError<tungstenite::Error>) -> Self {
        match error {
            WriteError::Stalled => Self::Unresponsive,
            WriteError::Failed(_) => Self::Client,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Silent => "silent",
            Self::Unresponsive => "unresponsive",
            Self::Abusive => "abusive",
            Self::Shutdown => "shutdown",
        }
    }
}

/// Acts on what the liveness clock says is due; `Some` ends the connection.
async fn check_liveness<S>(
    socket: &mut WebSocketStream<S>,
    liveness: &mut Liveness,
    write_limit: Duration,
) -> Option<Ending>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match liveness.due(Instant::now()) {
        Due::Nothing => None,
        Due::Ping => {
            let ping = Bounded::new(write_limit, socket.send(Message::Ping(Default::default())));
            ping.await.err().map(Ending::after)
        }
        Due::Silent => {
            let reason = "silent for too long: announce again";
            close(socket, CloseCode::Normal, reason).await;
            Some(Ending::Silent)
        }
        Due::Unresponsive => {
            close(socket, CloseCode::Away, "no answer to a ping").await;
            Some(Ending::Unresponsive)
        }
    }
}

/// Most queued deliveries written before one flush.
const DELIVERY_BATCH: usize = 32;

/// Writes `replies`, then `first` and whatever other deliveries are already queued (at most
/// [`DELIVERY_BATCH`]), and flushes once: the frames leave in as few socket writes as possible
/// (the WebSocket's write buffer only writes out on flush or when it is full).
async fn write_batch<S>(
    socket: &mut WebSocketStream<S>,
    session: &mut Session,
    inbox: &mut mpsc::Receiver<Delivery>,
    replies: Vec<String>,
    first: Option<Delivery>,
) -> Result<(), tungstenite::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    for reply in replies {
        socket.feed(Message::text(reply)).await?;
    }
    if let Some(message) = first.and_then(|delivery| session.on_delivery(delivery)) {
        socket.feed(message).await?;
    }
    for _ in 0..DELIVERY_BATCH {
        let Ok(next) = inbox.try_recv() else { break };
        if let Some(message) = session.on_delivery(next) {
            socket.feed(message).await?;
        }
    }
    socket.flush().await
}

/// Decides a [`Contest`]: if the owner shows it is there, the announce is refused; if not, the
/// owner loses the `peer_id` and the announce is replayed. Returns `replies` and the outcome's.
async fn settle(
    session: &mut Session,
    contest: Box<Contest>,
    mut replies: Vec<String>,
) -> Vec<String> {
    if !owner_is_gone(&contest.owner).await {
        let info_hash = Some(contest.info_hash);
        replies.extend(session.refuse(Refusal::PeerIdTaken, info_hash, Some("announce")));
        return replies;
    }
    let shared = Arc::clone(&session.shared);
    shared.registry.leave(
        &contest.info_hash,
        &contest.peer_id,
        contest.owner.connection,
    );
    if let Some(cluster) = &shared.cluster {
        let owner = contest.owner.connection;
        cluster
            .leave(&contest.info_hash, &contest.peer_id, owner)
            .await;
    }
    session.shared.metrics.peer_id_takeovers.inc();
    tracing::debug!(
        connection = session.id,
        from = contest.owner.connection,
        "peer_id taken over from an unresponsive connection"
    );
    replies.extend(session.replay(&contest.text).await);
    replies
}

/// Probes `owner`: gone if its connection ended or sent no frame within
/// [`OWNER_PROBE_TIMEOUT`] of a ping.
pub async fn owner_is_gone(owner: &Owner) -> bool {
    let (answer, answered) = oneshot::channel();
    let probe = async {
        let probe = Delivery::Tracked(Box::new(Tracked::Probe(answer)));
        owner.route.send(probe).await.ok()?;
        answered.await.ok()
    };
    !matches!(
        tokio::time::timeout(OWNER_PROBE_TIMEOUT, probe).await,
        Ok(Some(()))
    )
}

async fn close<S>(socket: &mut WebSocketStream<S>, code: CloseCode, reason: &str)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.close(Some(frame))).await;
}

impl Session {
    fn new(shared: Arc<Shared>, client: IpAddr, route: Route, tenant: Option<TenantPass>) -> Self {
        let config = &shared.config;
        let rate = config.max_messages_per_second;
        Self {
            id: shared.next_connection_id(),
            locality: Arc::new(shared.geo.locate(client)),
            limiter: RateLimiter::new(rate, rate.saturating_mul(RATE_BURST_SECONDS)),
            strikes: Strikes::new(config.max_strikes, Duration::from_secs(60)),
            memberships: Vec::new(),
            pending: VecDeque::new(),
            incoming_offers: OfferBudget::new(
                config.max_offers_per_pair,
                config.max_offers_per_receiver,
            ),
            abusive: false,
            contest: None,
            probes: Vec::new(),
            tenant,
            route,
            shared,
        }
    }

    /// Handles one item from the socket; `None` ends the session.
    async fn on_frame(
        &mut self,
        incoming: Option<Result<Message, tungstenite::Error>>,
    ) -> Option<Vec<String>> {
        match incoming? {
            Ok(Message::Text(text)) => Some(self.on_text(text.as_str()).await),
            Ok(Message::Binary(bytes)) => match std::str::from_utf8(&bytes) {
                Ok(text) => Some(self.on_text(text).await),
                Err(_) => Some(self.refuse(Refusal::NotText, None, None)),
            },
            Ok(Message::Close(_)) => None,
            Ok(_) => Some(Vec::new()),
            Err(tungstenite::Error::Capacity(_)) => {
                self.shared
                    .metrics
                    .rejected
                    .with_label_values(&["frame_too_large"])
                    .inc();
                None
            }
            Err(_) => None,
        }
    }

    async fn on_text(&mut self, text: &str) -> Vec<String> {
        if text.len() > self.shared.config.max_message_size {
            return self.refuse(Refusal::TooLarge, None, None);
        }
        if !self.limiter.allow(Instant::now()) {
            let info_hash = protocol::sniff(text).1.map(|hash| self.swarm_key(hash));
            return self.refuse(Refusal::RateLimited, info_hash, None);
        }
        match self.parse(text) {
            Ok(Request::Announce(announce)) => self.on_announce(announce, text).await,
            Ok(Request::Answer(answer)) => self.on_answer(answer).await,
            Ok(Request::Scrape(hashes)) => self.on_scrape(&hashes).await,
            Ok(Request::HashReport(report)) => self.on_hash_report(report).await,
            Ok(Request::HashQuery(query)) => self.on_hash_query(&query).await,
            Err(refusal) => {
                let (action, info_hash) = protocol::sniff(text);
                let info_hash = info_hash.map(|hash| self.swarm_key(hash));
                self.refuse(refusal, info_hash, action)
            }
        }
    }

    /// Parses a message and turns its info hashes into swarm keys (see [`Session::swarm_key`]).
    fn parse<'t>(&self, text: &'t str) -> Result<Request<'t>, Refusal> {
        let mut request = protocol::parse(text, self.parse_limits()).map_err(Refusal::Protocol)?;
        let scope = self.tenant.as_ref().and_then(|tenant| tenant.swarm);
        let mut in_scope = true;
        request.for_each_info_hash(|info_hash| {
            in_scope &= scope.is_none_or(|swarm| swarm == *info_hash);
            *info_hash = self.swarm_key(*info_hash);
        });
        if in_scope {
            Ok(request)
        } else {
            Err(Refusal::OutOfScope)
        }
    }

    /// The key of the swarm a client calls `info_hash`, unique to its tenant, and back: the
    /// info hash itself when no tenants are configured. Messages keep swarm keys inside the
    /// tracker and carry the client's info hashes on the wire.
    fn swarm_key(&self, info_hash: Id20) -> Id20 {
        match &self.tenant {
            Some(tenant) => tenant.swarm_key(info_hash),
            None => info_hash,
        }
    }

    fn parse_limits(&self) -> ParseLimits {
        ParseLimits {
            max_offers: self.shared.config.max_offers_per_announce,
            max_list: self.shared.config.max_scrape_hashes,
        }
    }

    fn refuse(
        &mut self,
        refusal: Refusal,
        info_hash: Option<Id20>,
        action: Option<&str>,
    ) -> Vec<String> {
        self.shared
            .metrics
            .rejected
            .with_label_values(&[refusal.label()])
            .inc();
        if refusal.is_strike() {
            self.abusive |= self.strikes.strike(Instant::now());
        }
        if let (Some(tenant), true) = (&self.tenant, refusal.is_tenant_quota()) {
            self.shared
                .metrics
                .tenant_refusals
                .with_label_values(&[tenant.id(), refusal.label()])
                .inc();
        }
        let info_hash = info_hash.map(|key| self.swarm_key(key));
        let reason = refusal.reason();
        tracing::debug!(connection = self.id, %reason, "refused a message");
        vec![protocol::to_json(&Failure {
            action,
            info_hash,
            reason: &reason,
        })]
    }

    async fn on_announce(&mut self, announce: Announce<'_>, text: &str) -> Vec<String> {
        self.shared.metrics.announces.inc();
        let info_hash = announce.info_hash;
        if let Some(tenant) = &self.tenant {
            let counter = self
                .shared
                .metrics
                .tenant_announces
                .with_label_values(&[tenant.id()]);
            counter.inc();
            if !tenant.allow_announce(Instant::now()) {
                return self.refuse(
                    Refusal::TenantAnnounceRate,
                    Some(info_hash),
                    Some("announce"),
                );
            }
        }
        if announce.event == Event::Stopped {
            return vec![self.leave(info_hash, announce.peer_id).await];
        }
        let joined = self.memberships.contains(&(info_hash, announce.peer_id));
        if !joined && self.memberships.len() >= self.shared.config.max_swarms_per_connection {
            return self.refuse(Refusal::TooManySwarms, Some(info_hash), Some("announce"));
        }
        let room = self
            .tenant
            .as_ref()
            .is_none_or(|tenant| tenant.may_enter_swarm(info_hash));
        if !joined && !room {
            return self.refuse(Refusal::TenantSwarms, Some(info_hash), Some("announce"));
        }
        self.join(announce, Some(text)).await
    }

    /// Replays an announce set aside by a [`Contest`] the owner lost.
    async fn replay(&mut self, text: &str) -> Vec<String> {
        match self.parse(text) {
            Ok(Request::Announce(announce)) => self.join(announce, None).await,
            _ => Vec::new(),
        }
    }

    /// Enters (or refreshes) the swarm and relays the offers. A `peer_id` that another
    /// connection holds is contested when the announce's `text` is given and pings are on (the
    /// owner is probed with one), and refused otherwise.
    async fn join(&mut self, announce: Announce<'_>, text: Option<&str>) -> Vec<String> {
        let info_hash = announce.info_hash;
        let membership = (info_hash, announce.peer_id);
        let joined = self.memberships.contains(&membership);
        let complete = announce.event == Event::Completed || announce.left == Some(0.0);
        let shared = Arc::clone(&self.shared);
        let cluster_view = match &shared.cluster {
            Some(cluster) if !self.held_by_another_connection(&announce) => {
                let entry = Entry::new(&self.locality, &announce.ext, complete);
                cluster
                    .announce(&info_hash, &announce.peer_id, self.id, &entry, !joined)
                    .await
            }
            _ => None,
        };
        let (counts, remote) = match cluster_view {
            Some(Joined::Taken(holder)) => {
                return Box::pin(self.contest_across_replicas(announce, text, holder)).await;
            }
            Some(Joined::Swarm(view)) => (Some(view.counts), view.peers),
            None => (None, Vec::new()),
        };
        let record = PeerRecord {
            peer_id: announce.peer_id,
            connection: self.id,
            route: self.route.clone(),
            locality: Arc::clone(&self.locality),
            ext: announce.ext,
            complete,
        };
        let want = announce
            .numwant
            .map_or(usize::MAX, |n| n as usize)
            .min(announce.offers.len());
        let outcome = match shared.registry.announce(info_hash, record, want, &remote) {
            Ok(outcome) => outcome,
            Err(RegistryError::PeerIdTaken) => {
                return Box::pin(self.on_peer_id_taken(announce, text)).await;
            }
        };
        if !joined {
            self.memberships.push(membership);
            if let Some(tenant) = &self.tenant {
                tenant.enter_swarm(info_hash);
            }
        }
        let dropped = self.relay_offers(&announce, outcome.targets);
        let counts = counts.unwrap_or(outcome.counts);
        let reply = AnnounceReply {
            action: "announce",
            info_hash: self.swarm_key(info_hash),
            interval: self.shared.config.announce_interval,
            complete: counts.complete,
            incomplete: counts.incomplete,
            warning: dropped.then_some("some offers could not be delivered: peers are busy"),
        };
        vec![protocol::to_json(&reply)]
    }

    /// The peer id is held on another replica: as within one replica, that replica probes the
    /// holding connection when the announce's `text` is given and pings are on; the announce is
    /// replayed if the connection is gone, refused otherwise.
    async fn contest_across_replicas(
        &mut self,
        announce: Announce<'_>,
        text: Option<&str>,
        holder: Holder,
    ) -> Vec<String> {
        let info_hash = announce.info_hash;
        let shared = Arc::clone(&self.shared);
        let (Some(text), Some(cluster)) = (text, &shared.cluster) else {
            return self.refuse(Refusal::PeerIdTaken, Some(info_hash), Some("announce"));
        };
        let contested = shared.config.ping_interval().is_some();
        if !(contested && cluster.probe(&info_hash, &announce.peer_id, holder).await) {
            return self.refuse(Refusal::PeerIdTaken, Some(info_hash), Some("announce"));
        }
        tracing::debug!(
            connection = self.id,
            "peer_id taken over from another replica"
        );
        self.replay(text).await
    }

    /// Whether another open connection of this replica holds the announce's peer id (then the
    /// contest decides, before anything is written to Redis).
    fn held_by_another_connection(&self, announce: &Announce<'_>) -> bool {
        self.shared
            .registry
            .owner(&announce.info_hash, &announce.peer_id)
            .is_some_and(|owner| owner.connection != self.id && !owner.route.is_closed())
    }

    /// Sends each offer of `announce` to its target (on this replica, or through Redis to the
    /// replica that holds it); returns whether any had to be dropped.
    fn relay_offers(&self, announce: &Announce<'_>, targets: Vec<Target>) -> bool {
        let mut dropped = false;
        let mut remote = Vec::new();
        for (offer, target) in announce.offers.iter().zip(targets) {
            let json = protocol::relayed_offer(
                self.swarm_key(announce.info_hash),
                announce.peer_id,
                offer.offer,
                offer.offer_id,
            );
            let route = match target.destination {
                Destination::Local(route) => route,
                Destination::Remote { replica } => {
                    let Some(cluster) = &self.shared.cluster else {
                        continue;
                    };
                    let message = BusMessage::Offer {
                        info_hash: announce.info_hash,
                        from: announce.peer_id,
                        from_replica: cluster.replica(),
                        from_connection: self.id,
                        to: target.peer_id,
                        offer_id: offer.offer_id,
                        json,
                    };
                    remote.push((replica, message, target.tier));
                    continue;
                }
            };
            let delivery = Delivery::Tracked(Box::new(Tracked::Offer(OfferDelivery {
                json,
                info_hash: announce.info_hash,
                from: announce.peer_id,
                offer_id: offer.offer_id,
                reply_to: ReplyTo::Local(self.route.clone()),
            })));
            if route.try_send(delivery).is_ok() {
                self.shared.metrics.offer_relayed(target.tier);
            } else {
                self.shared.metrics.deliveries_dropped.inc();
                dropped = true;
            }
        }
        if let (Some(cluster), false) = (&self.shared.cluster, remote.is_empty()) {
            for (replica, message, tier) in remote {
                if cluster.send(replica, &message) {
                    self.shared.metrics.offer_relayed(tier);
                } else {
                    self.shared.metrics.deliveries_dropped.inc();
                    dropped = true;
                }
            }
        }
        dropped
    }

    /// Sets the announce aside as a [`Contest`] if it may be contested (see [`Session::join`]).
    async fn on_peer_id_taken(
        &mut self,
        announce: Announce<'_>,
        text: Option<&str>,
    ) -> Vec<String> {
        let info_hash = announce.info_hash;
        let Some(text) = text.filter(|_| self.shared.config.ping_interval().is_some()) else {
            return self.refuse(Refusal::PeerIdTaken, Some(info_hash), Some("announce"));
        };
        match self.shared.registry.owner(&info_hash, &announce.peer_id) {
            Some(owner) => {
                self.contest = Some(Box::new(Contest {
                    info_hash,
                    peer_id: announce.peer_id,
                    owner,
                    text: text.to_owned(),
                }));
                Vec::new()
            }
            // The owner left in the meantime.
            None => self.join(announce, None).await,
        }
    }

    /// Tells every waiting prober that the client is still there.
    fn answer_probes(&mut self) {
        for probe in self.probes.drain(..) {
            let _ = probe.send(());
        }
    }

    async fn leave(&mut self, info_hash: Id20, peer_id: Id20) -> String {
        let before = self.memberships.len();
        self.memberships.retain(|m| *m != (info_hash, peer_id));
        if let (Some(tenant), true) = (&self.tenant, self.memberships.len() < before) {
            tenant.leave_swarm(info_hash);
        }
        let counts = self.leave_swarm(info_hash, peer_id).await;
        protocol::to_json(&AnnounceReply {
            action: "announce",
            info_hash: self.swarm_key(info_hash),
            interval: self.shared.config.announce_interval,
            complete: counts.complete,
            incomplete: counts.incomplete,
            warning: None,
        })
    }

    async fn on_answer(&mut self, answer: Answer<'_>) -> Vec<String> {
        let now = Instant::now();
        let matches = |p: &PendingOffer| {
            p.offer.offer_id == answer.offer_id
                && p.offer.from == answer.to_peer_id
                && p.offer.info_hash == answer.info_hash
                && p.expires > now
        };
        let is_member = self
            .memberships
            .contains(&(answer.info_hash, answer.peer_id));
        let Some(index) = self.pending.iter().position(matches).filter(|_| is_member) else {
            return self.refuse(
                Refusal::UnknownOffer,
                Some(answer.info_hash),
                Some("announce"),
            );
        };
        let pending = self.pending.remove(index).map(|p| p.offer);
        let Some(offer) = pending else {
            return Vec::new();
        };
        let json = protocol::relayed_answer(
            self.swarm_key(answer.info_hash),
            answer.peer_id,
            answer.answer,
            answer.offer_id,
        );
        let delivered = match offer.reply_to {
            ReplyTo::Local(route) => route
                .try_send(Delivery::Answer(json.into_boxed_str()))
                .is_ok(),
            ReplyTo::Remote {
                replica,
                connection,
            } => {
                let message = BusMessage::Answer {
                    info_hash: answer.info_hash,
                    to: answer.to_peer_id,
                    to_connection: connection,
                    json,
                };
                match &self.shared.cluster {
                    Some(cluster) => cluster.send(replica, &message),
                    None => false,
                }
            }
        };
        if delivered {
            self.shared.metrics.answers_relayed.inc();
        } else {
            self.shared.metrics.deliveries_dropped.inc();
        }
        Vec::new()
    }

    async fn on_scrape(&mut self, hashes: &[Id20]) -> Vec<String> {
        self.shared.metrics.scrapes.inc();
        let shared_counts = match &self.shared.cluster {
            Some(cluster) => cluster.counts(hashes).await,
            None => None,
        };
        let files = hashes
            .iter()
            .enumerate()
            .map(|(index, hash)| {
                let counts = shared_counts
                    .as_ref()
                    .and_then(|counts| counts.get(index).copied())
                    .unwrap_or_else(|| self.shared.registry.counts(hash));
                let file = ScrapeFile {
                    complete: counts.complete,
                    incomplete: counts.incomplete,
                    downloaded: 0,
                };
                (self.swarm_key(*hash), file)
            })
            .collect();
        vec![protocol::scrape_reply(files)]
    }

    async fn on_hash_report(&mut self, report: HashReport) -> Vec<String> {
        let is_member = self
            .memberships
            .contains(&(report.info_hash, report.peer_id))
            && self
                .shared
                .registry
                .is_member(&report.info_hash, &report.peer_id, self.id);
        if !is_member {
            return self.refuse(
                Refusal::NotAMember,
                Some(report.info_hash),
                Some("hash_report"),
            );
        }
        let group = Group::of(&self.locality);
        let shared = Arc::clone(&self.shared);
        let agreed = match &shared.cluster {
            Some(cluster) => {
                let (info_hash, segment) = (&report.info_hash, &report.segment);
                cluster
                    .report_hash(info_hash, segment, &report.sha256, group)
                    .await
            }
            None => None,
        };
        let outcome = agreed.unwrap_or_else(|| {
            shared
                .hashes
                .report(report.info_hash, &report.segment, report.sha256, group)
        });
        self.shared
            .metrics
            .hash_reports
            .with_label_values(&[outcome.label()])
            .inc();
        Vec::new()
    }

    async fn on_hash_query(&mut self, query: &HashQuery) -> Vec<String> {
        let agreed = match &self.shared.cluster {
            Some(cluster) => cluster.accepted(&query.info_hash, &query.segments).await,
            None => None,
        };
        let accepted = agreed.unwrap_or_else(|| {
            self.shared
                .hashes
                .accepted(&query.info_hash, &query.segments)
        });
        let hashes: serde_json::Map<String, serde_json::Value> = accepted
            .into_iter()
            .map(|(name, hash)| (name, protocol::sha256_hex(&hash).into()))
            .collect();
        let reply = serde_json::json!({
            "action": "hash_query",
            "info_hash": self.swarm_key(query.info_hash),
            "hashes": hashes,
        });
        vec![protocol::to_json(&reply)]
    }

    /// The frame to send for `delivery`, if any. Remembers a relayed offer (bounded, oldest
    /// first out) unless it is beyond the [`OfferBudget`], and a probe (answered with the next
    /// frame from the client).
    fn on_delivery(&mut self, delivery: Delivery) -> Option<Message> {
        let tracked = match delivery {
            Delivery::Answer(text) => return Some(Message::text(String::from(text))),
            Delivery::Tracked(tracked) => *tracked,
        };
        match tracked {
            Tracked::Offer(mut offer) => {
                let now = Instant::now();
                if !self.incoming_offers.allow(offer.from, now) {
                    self.shared
                        .metrics
                        .rejected
                        .with_label_values(&["offers_to_receiver"])
                        .inc();
                    return None;
                }
                // Every offer gets the same timeout, so the expired ones are at the front.
                while self.pending.front().is_some_and(|p| p.expires <= now) {
                    self.pending.pop_front();
                }
                if self.pending.len() >= self.shared.config.max_pending_offers.max(1) {
                    self.pending.pop_front();
                }
                let text = std::mem::take(&mut offer.json);
                let expires = now + Duration::from_secs(self.shared.config.offer_timeout);
                self.pending.push_back(PendingOffer { offer, expires });
                Some(Message::text(text))
            }
            Tracked::Probe(answer) => {
                // Probers that gave up need no answer; this bounds the list.
                self.probes.retain(|probe| !probe.is_closed());
                self.probes.push(answer);
                Some(Message::Ping(Default::default()))
            }
        }
    }

    async fn leave_all(&mut self) {
        for (info_hash, peer_id) in std::mem::take(&mut self.memberships) {
            if let Some(tenant) = &self.tenant {
                tenant.leave_swarm(info_hash);
            }
            self.leave_swarm(info_hash, peer_id).await;
        }
    }

    /// Leaves one swarm here and in Redis; the swarm's counts after (over all replicas while
    /// Redis answers).
    async fn leave_swarm(&self, info_hash: Id20, peer_id: Id20) -> SwarmCounts {
        let counts = self.shared.registry.leave(&info_hash, &peer_id, self.id);
        match &self.shared.cluster {
            Some(cluster) => cluster
                .leave(&info_hash, &peer_id, self.id)
                .await
                .unwrap_or(counts),
            None => counts,
        }
    }
}
