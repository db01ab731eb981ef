//! Several replicas as one tracker, through Redis (`--redis-url`; the design is in SCALING.md).
//!
//! Each replica keeps its own peers in its in-memory registry, as a lone tracker does, and also
//! writes them to Redis: every announce writes the peer's entry and reads the swarm (members of
//! every replica) in one script, so matching ranks the peers of all replicas; an offer or answer
//! for a peer held elsewhere is published to that replica's channel. A replica that loses Redis
//! serves its own peers alone and writes them all back once Redis answers again.

mod bus;
mod members;
mod store;
mod votes;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::Value;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

pub use bus::BusMessage;
pub use members::{Entry, RemotePeer};

use crate::config::Config;
use crate::hashes::{HashConfig, MAX_REPORTERS, ReportOutcome};
use crate::id::Id20;
use crate::matching::Group;
use crate::metrics::Metrics;
use crate::registry::{LocalMember, SwarmCounts};
use members::{
    ANNOUNCE, ANNOUNCE_LUA, LEAVE, LEAVE_LUA, owner_tag, replica_tag, stored_value, swarm_key,
};
use store::Store;

/// Identifies a replica: random, drawn at start.
pub type ReplicaId = u64;

/// A message for another replica's channel, encoded.
type Outgoing = (ReplicaId, Vec<u8>);

/// Messages queued for other replicas before further ones are dropped.
const OUTBOX_CAPACITY: usize = 65_536;

/// Most messages published in one round trip.
pub const OUTBOX_BATCH: usize = 1024;

/// Heartbeats a replica may miss before the others take it as dead.
pub const MISSED_HEARTBEATS: u32 = 3;

/// The sorted set of replicas scored by their last heartbeat (Unix ms).
const REPLICAS_KEY: &str = "p2pvd:replicas";

/// The set of `info_hash ‖ peer_id` (40 raw bytes) a replica wrote, so that its entries can be
/// removed at once when it stops or dies.
fn members_key(replica: ReplicaId) -> String {
    format!("p2pvd:replica:{replica}:members")
}

/// A swarm as Redis sees it after an announce.
#[derive(Debug)]
pub struct SwarmView {
    /// Seeders and leechers over all replicas.
    pub counts: SwarmCounts,
    /// Peers of other live replicas (all of them in a small swarm, a sample in a large one).
    pub peers: Vec<RemotePeer>,
}

/// What writing an announce to Redis gave.
#[derive(Debug)]
pub enum Joined {
    /// The entry is written.
    Swarm(SwarmView),
    /// Another live replica holds this peer id.
    Taken(Holder),
}

/// The connection of another replica that holds a peer id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder {
    /// The replica.
    pub replica: ReplicaId,
    /// Its connection.
    pub connection: u64,
}

/// How long a replica waits for the answer to a [`BusMessage::Probe`]; the holder's own probe
/// of its connection takes at most 3 s.
const PROBE_WAIT: Duration = Duration::from_secs(4);

/// What the announce script did.
enum Written {
    Swarm(SwarmView),
    /// Held by another replica's connection.
    Taken(Holder),
}

/// What a heartbeat found.
#[derive(Debug, Default)]
pub struct Heartbeat {
    /// Redis answers again after failing: this replica's peers must be written back.
    pub recovered: bool,
    /// Replicas whose heartbeat stopped: their entries are to be removed.
    pub dead: Vec<ReplicaId>,
}

/// Matching and agreement limits the cluster applies.
#[derive(Debug, Clone, Copy)]
pub struct ClusterSettings {
    /// An entry expires this long after its peer's last announce (`--peer-timeout`).
    pub member_ttl: Duration,
    /// Entries read per announce in a large swarm (`--redis-candidates`).
    pub candidates: usize,
    /// Time between heartbeats (`--redis-heartbeat-interval`).
    pub heartbeat: Duration,
    /// Hash agreement rules.
    pub hashes: HashConfig,
}

/// This replica's view of the cluster.
pub struct Cluster {
    replica: ReplicaId,
    store: Store,
    /// Replicas whose heartbeat stopped (any other replica counts as alive, so that one that
    /// just started is matched before the next heartbeat).
    dead: RwLock<Arc<HashSet<ReplicaId>>>,
    up: AtomicBool,
    /// Messages for other replicas, waiting for [`Cluster::send_queued`].
    outbox: mpsc::Sender<Outgoing>,
    /// The receiving end, until [`Cluster::send_queued`] takes it.
    queued: Mutex<Option<mpsc::Receiver<Outgoing>>>,
    /// Probes sent to other replicas, awaiting their answer.
    probes: Mutex<HashMap<u64, oneshot::Sender<bool>>>,
    next_probe: AtomicU64,
    settings: ClusterSettings,
    metrics: Arc<Metrics>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Cluster {
    /// Connects to the Redis of `config.redis_url`.
    pub async fn connect(config: &Config, metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        let scripts = vec![ANNOUNCE_LUA, LEAVE_LUA, votes::REPORT_LUA];
        let url = config.redis_url.as_deref().unwrap_or_default();
        let urls: Vec<&str> = match config.redis_cluster {
            true => url.split(',').map(str::trim).collect(),
            false => vec![url],
        };
        let store = Store::connect(
            &urls,
            config.redis_cluster,
            config.redis_password_file.as_deref(),
            Duration::from_millis(config.redis_timeout_ms.max(1)),
            Arc::clone(&metrics),
            scripts,
        )
        .await?;
        let replica = rand::random::<u64>() >> 12;
        let (outbox, queued) = mpsc::channel(OUTBOX_CAPACITY);
        Ok(Self {
            replica,
            store,
            dead: RwLock::new(Arc::new(HashSet::new())),
            up: AtomicBool::new(true),
            outbox,
            queued: Mutex::new(Some(queued)),
            probes: Mutex::new(HashMap::new()),
            next_probe: AtomicU64::new(1),
            settings: ClusterSettings {
                member_ttl: Duration::from_secs(config.peer_timeout.max(1)),
                candidates: config.redis_candidates.max(1),
                heartbeat: Duration::from_secs(config.redis_heartbeat_interval.max(1)),
                hashes: HashConfig::from_config(config),
            },
            metrics,
        })
    }

    /// Time between heartbeats.
    pub fn heartbeat_interval(&self) -> Duration {
        self.settings.heartbeat
    }

    /// How long after its last heartbeat a replica counts as dead. Its peers leave the others'
    /// view at their next heartbeat: within this plus one interval.
    pub fn dead_after(&self) -> Duration {
        self.settings.heartbeat * MISSED_HEARTBEATS
    }

    /// This replica's id.
    pub fn replica(&self) -> ReplicaId {
        self.replica
    }

    /// Whether Redis answered the last request.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Receives the messages other replicas publish to this one until `shutdown`.
    pub async fn subscribe(&self, inbox: mpsc::Sender<BusMessage>, shutdown: CancellationToken) {
        let client = self.store.subscriber().clone();
        bus::subscribe(client, bus::channel(self.replica), inbox, shutdown).await;
    }

    /// Runs `pipeline` unless Redis is known to be down; a failure marks it down until the next
    /// heartbeat gets through.
    async fn query<T: redis::FromRedisValue>(
        &self,
        op: &'static str,
        pipeline: &redis::Pipeline,
    ) -> Option<T> {
        self.query_each(op, std::slice::from_ref(pipeline))
            .await?
            .pop()
    }

    /// [`Cluster::query`] for pipelines on different swarms (see [`Store::query_each`]).
    async fn query_each<T: redis::FromRedisValue>(
        &self,
        op: &'static str,
        pipelines: &[redis::Pipeline],
    ) -> Option<Vec<T>> {
        if !self.is_up() {
            return None;
        }
        match self.store.query_each(op, pipelines).await {
            Ok(values) => Some(values),
            Err(error) => {
                self.mark_down(&error);
                None
            }
        }
    }

    /// Adds (or removes) a peer to this replica's member set, the index that lets its entries
    /// be removed at once when it stops or dies. Its own pipeline: the set is in another
    /// Redis Cluster slot than the swarm.
    fn member_set(&self, info_hash: &Id20, peer_id: &Id20, add: bool) -> redis::Pipeline {
        let mut pipeline = redis::pipe();
        pipeline
            .cmd(if add { "SADD" } else { "SREM" })
            .arg(members_key(self.replica))
            .arg(member_bytes(info_hash, peer_id))
            .ignore();
        pipeline
    }

    fn mark_down(&self, error: &store::StoreError) {
        if self.up.swap(false, Ordering::Relaxed) {
            tracing::warn!(%error, "Redis lost: serving this replica's peers alone");
            self.metrics.redis_up.set(0);
        }
    }

    /// Writes a peer's entry and reads its swarm; `joining`: the first announce of this peer on
    /// this connection (its entry is then also indexed under this replica). `None` when Redis is
    /// down.
    pub async fn announce(
        &self,
        info_hash: &Id20,
        peer_id: &Id20,
        connection: u64,
        entry: &Entry,
        joining: bool,
    ) -> Option<Joined> {
        let index = async {
            if joining {
                let set = self.member_set(info_hash, peer_id, true);
                self.query::<()>("member_set", &set).await;
            }
        };
        let written = self.write_entry(info_hash, peer_id, connection, entry, false);
        let (written, ()) = tokio::join!(written, index);
        match written? {
            Written::Swarm(view) => Some(Joined::Swarm(view)),
            // A peer id held on a replica that died is free: take it.
            Written::Taken(holder) if self.dead_replicas().contains(&holder.replica) => {
                let forced = self.write_entry(info_hash, peer_id, connection, entry, true);
                match forced.await? {
                    Written::Swarm(view) => Some(Joined::Swarm(view)),
                    Written::Taken(holder) => Some(Joined::Taken(holder)),
                }
            }
            Written::Taken(holder) => Some(Joined::Taken(holder)),
        }
    }

    /// Asks `holder`'s replica whether its connection still holds `peer_id`, as one process
    /// probes a connection whose peer id another one claims. Returns whether the peer id is
    /// free now: the holder's replica found the connection gone and removed it, or did not
    /// answer in time (then its entry is removed here).
    pub async fn probe(&self, info_hash: &Id20, peer_id: &Id20, holder: Holder) -> bool {
        let probe = self.next_probe.fetch_add(1, Ordering::Relaxed);
        let (answer, answered) = oneshot::channel();
        self.lock_probes().insert(probe, answer);
        let message = BusMessage::Probe {
            info_hash: *info_hash,
            peer_id: *peer_id,
            connection: holder.connection,
            probe,
            reply_to: self.replica,
        };
        let free = match self.send(holder.replica, &message) {
            false => false,
            true => match tokio::time::timeout(PROBE_WAIT, answered).await {
                Ok(Ok(gone)) => gone,
                _ => self.evict(info_hash, peer_id, holder).await,
            },
        };
        self.lock_probes().remove(&probe);
        free
    }

    /// Hands the answer to one of this replica's probes to the announce waiting for it.
    pub fn probe_answered(&self, probe: u64, gone: bool) {
        if let Some(waiting) = self.lock_probes().remove(&probe) {
            let _ = waiting.send(gone);
        }
    }

    fn lock_probes(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<bool>>> {
        self.probes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Removes the entry `holder` wrote for `peer_id`; whether Redis took the request.
    async fn evict(&self, info_hash: &Id20, peer_id: &Id20, holder: Holder) -> bool {
        let mut pipeline = redis::pipe();
        let owner = owner_tag(holder.replica, holder.connection);
        leave_command(&mut pipeline, info_hash, peer_id, &owner);
        pipeline.ignore();
        self.query::<()>("leave", &pipeline).await.is_some()
    }

    async fn write_entry(
        &self,
        info_hash: &Id20,
        peer_id: &Id20,
        connection: u64,
        entry: &Entry,
        force: bool,
    ) -> Option<Written> {
        let mut pipeline = redis::pipe();
        self.announce_command(&mut pipeline, info_hash, peer_id, connection, entry, force);
        pipeline
            .cmd("HRANDFIELD")
            .arg(swarm_key(info_hash, "peers"))
            .arg(self.settings.candidates)
            .arg("WITHVALUES");
        let (written, sample): (Vec<Value>, Vec<Value>) = self.query("announce", &pipeline).await?;
        self.read_announce(written, sample)
    }

    fn read_announce(&self, written: Vec<Value>, sample: Vec<Value>) -> Option<Written> {
        let mut items = written.into_iter();
        if text(&items.next()?)? == "taken" {
            let held = RemotePeer::decode(&[0; 20], bytes(&items.next()?)?)?;
            return Some(Written::Taken(Holder {
                replica: held.replica,
                connection: held.connection,
            }));
        }
        self.metrics.redis_entries_written.inc();
        let pruned = integer(&items.next()?)?;
        self.metrics.redis_entries_expired.inc_by(pruned);
        let peers = integer(&items.next()?)?;
        let seeders = integer(&items.next()?)?;
        let dead = self.dead_replicas();
        let remote = sample
            .chunks_exact(2)
            .filter_map(|pair| RemotePeer::decode(bytes(&pair[0])?, bytes(&pair[1])?))
            .filter(|peer| peer.replica != self.replica && !dead.contains(&peer.replica))
            .collect();
        Some(Written::Swarm(SwarmView {
            counts: SwarmCounts {
                complete: seeders,
                incomplete: peers.saturating_sub(seeders),
            },
            peers: remote,
        }))
    }

    /// Removes a peer's entry if `connection` of this replica still owns it; the swarm's counts
    /// after. `None` when Redis is down.
    pub async fn leave(
        &self,
        info_hash: &Id20,
        peer_id: &Id20,
        connection: u64,
    ) -> Option<SwarmCounts> {
        let mut pipeline = redis::pipe();
        leave_command(
            &mut pipeline,
            info_hash,
            peer_id,
            &owner_tag(self.replica, connection),
        );
        let unindex = self.member_set(info_hash, peer_id, false);
        let (left, ()) = tokio::join!(
            self.query::<((u64, u64, u64),)>("leave", &pipeline),
            async {
                self.query::<()>("member_set", &unindex).await;
            }
        );
        let ((_, peers, seeders),) = left?;
        Some(SwarmCounts {
            complete: seeders,
            incomplete: peers.saturating_sub(seeders),
        })
    }

    /// The counts of several swarms over all replicas. `None` when Redis is down.
    pub async fn counts(&self, hashes: &[Id20]) -> Option<Vec<SwarmCounts>> {
        let pipelines: Vec<redis::Pipeline> = hashes
            .iter()
            .map(|info_hash| {
                let mut pipeline = redis::pipe();
                pipeline.hlen(swarm_key(info_hash, "peers"));
                pipeline.scard(swarm_key(info_hash, "seeds"));
                pipeline
            })
            .collect();
        let figures: Vec<(u64, u64)> = self.query_each("scrape", &pipelines).await?;
        Some(
            figures
                .into_iter()
                .map(|(peers, seeders)| SwarmCounts {
                    complete: seeders,
                    incomplete: peers.saturating_sub(seeders),
                })
                .collect(),
        )
    }

    /// Queues `message` for `replica`'s channel; [`Cluster::send_queued`] publishes what the
    /// connections of this replica queued together, in one round trip. Returns false (the
    /// message is dropped) while Redis is down or when the queue is full.
    pub fn send(&self, replica: ReplicaId, message: &BusMessage) -> bool {
        self.is_up() && self.outbox.try_send((replica, message.encode())).is_ok()
    }

    /// Publishes queued messages until `shutdown`: each round trip takes everything queued
    /// meanwhile (at most [`OUTBOX_BATCH`]), so the round trips per message fall as load rises.
    pub async fn send_queued(&self, shutdown: CancellationToken) {
        let Some(mut queued) = self.lock_queue().take() else {
            return;
        };
        let mut batch = Vec::with_capacity(OUTBOX_BATCH);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                count = queued.recv_many(&mut batch, OUTBOX_BATCH) => {
                    if count == 0 {
                        return;
                    }
                }
            }
            // One pipeline per channel: a Redis Cluster routes PUBLISH by its channel as by a key.
            let mut by_replica: HashMap<ReplicaId, redis::Pipeline> = HashMap::new();
            for (replica, payload) in batch.drain(..) {
                let pipeline = by_replica.entry(replica).or_insert_with(redis::pipe);
                pipeline.publish(bus::channel(replica), payload).ignore();
            }
            let pipelines: Vec<redis::Pipeline> = by_replica.into_values().collect();
            self.query_each::<()>("relay", &pipelines).await;
        }
    }

    fn lock_queue(&self) -> std::sync::MutexGuard<'_, Option<mpsc::Receiver<Outgoing>>> {
        self.queued.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a segment-hash report from a peer in network `group`. `None` when Redis is down.
    pub async fn report_hash(
        &self,
        info_hash: &Id20,
        segment: &str,
        sha256: &[u8; 32],
        group: Group,
    ) -> Option<ReportOutcome> {
        let rules = &self.settings.hashes;
        let mut pipeline = redis::pipe();
        pipeline
            .cmd("EVALSHA")
            .arg(votes::REPORT.get_hash())
            .arg(3)
            .arg(swarm_key(info_hash, "votes"))
            .arg(swarm_key(info_hash, "accepted"))
            .arg(swarm_key(info_hash, "segments"))
            .arg(segment)
            .arg(crate::protocol::sha256_hex(sha256))
            .arg(votes::group_tag(group))
            .arg(rules.quorum)
            .arg(MAX_REPORTERS)
            .arg(rules.max_segments)
            .arg(now_ms())
            .arg(rules.ttl.as_millis() as u64);
        let (reply,): (String,) = self.query("hash_report", &pipeline).await?;
        Some(votes::outcome(&reply))
    }

    /// The accepted hashes among `segments`. `None` when Redis is down.
    pub async fn accepted(
        &self,
        info_hash: &Id20,
        segments: &[String],
    ) -> Option<Vec<(String, [u8; 32])>> {
        if segments.is_empty() {
            return Some(Vec::new());
        }
        let mut pipeline = redis::pipe();
        pipeline
            .cmd("HMGET")
            .arg(swarm_key(info_hash, "accepted"))
            .arg(segments);
        let (found,): (Vec<Option<String>>,) = self.query("hash_query", &pipeline).await?;
        Some(
            segments
                .iter()
                .zip(found)
                .filter_map(|(name, hex)| Some((name.clone(), parse_sha256(&hex?)?)))
                .collect(),
        )
    }

    /// Writes this replica's heartbeat and reads which replicas died. Always goes to Redis,
    /// so that a replica that lost Redis notices when it is back.
    pub async fn heartbeat(&self) -> Heartbeat {
        let now = now_ms();
        let cutoff = now.saturating_sub(self.dead_after().as_millis() as u64);
        let mut pipeline = redis::pipe();
        pipeline.zadd(REPLICAS_KEY, self.replica, now).ignore();
        pipeline.zrangebyscore(REPLICAS_KEY, "-inf", cutoff);
        let (dead,): (Vec<ReplicaId>,) = match self.store.query("heartbeat", &pipeline).await {
            Ok(figures) => figures,
            Err(error) => {
                self.mark_down(&error);
                return Heartbeat::default();
            }
        };
        *self.dead.write().unwrap_or_else(|e| e.into_inner()) =
            Arc::new(dead.iter().copied().collect());
        Heartbeat {
            recovered: !self.is_up(),
            dead,
        }
    }

    /// Marks Redis usable again (after this replica's peers were written back).
    pub fn mark_up(&self) {
        if !self.up.swap(true, Ordering::Relaxed) {
            tracing::info!("Redis is back: matching across replicas again");
        }
        self.metrics.redis_up.set(1);
    }

    fn dead_replicas(&self) -> Arc<HashSet<ReplicaId>> {
        Arc::clone(&self.dead.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Writes every given peer of this replica to Redis again (after Redis came back).
    pub async fn register(&self, members: Vec<LocalMember>) -> bool {
        for chunk in members.chunks(256) {
            let mut pipelines = Vec::with_capacity(2 * chunk.len());
            for member in chunk {
                let entry = Entry::new(&member.locality, &member.ext, member.complete);
                let (info_hash, peer_id) = (&member.info_hash, &member.peer_id);
                let mut pipeline = redis::pipe();
                self.announce_command(
                    &mut pipeline,
                    info_hash,
                    peer_id,
                    member.connection,
                    &entry,
                    true,
                );
                pipeline.ignore();
                pipelines.push(pipeline);
                pipelines.push(self.member_set(info_hash, peer_id, true));
            }
            if let Err(error) = self.store.query_each::<()>("register", &pipelines).await {
                tracing::warn!(%error, "cannot write this replica's peers back to Redis");
                return false;
            }
            self.metrics
                .redis_entries_written
                .inc_by(chunk.len() as u64);
        }
        true
    }

    /// Appends a call of the announce script writing `entry` of `peer_id` on `connection`
    /// (`force`: even over another replica's entry).
    fn announce_command(
        &self,
        pipeline: &mut redis::Pipeline,
        info_hash: &Id20,
        peer_id: &Id20,
        connection: u64,
        entry: &Entry,
        force: bool,
    ) {
        let now = now_ms();
        let ttl = self.settings.member_ttl.as_millis() as u64;
        pipeline
            .cmd("EVALSHA")
            .arg(ANNOUNCE.get_hash())
            .arg(3)
            .arg(swarm_key(info_hash, "peers"))
            .arg(swarm_key(info_hash, "expiry"))
            .arg(swarm_key(info_hash, "seeds"))
            .arg(now)
            .arg(now + ttl)
            .arg(&peer_id.0[..])
            .arg(stored_value(self.replica, connection, entry))
            .arg(if entry.seed { "1" } else { "0" })
            .arg(ttl)
            .arg(replica_tag(self.replica))
            .arg(if force { "1" } else { "0" });
    }

    /// Removes every entry `replica` wrote, and the replica itself; returns how many entries.
    pub async fn forget(&self, replica: ReplicaId) -> usize {
        let mut read = redis::pipe();
        read.smembers(members_key(replica));
        let Ok((written,)): Result<(Vec<Vec<u8>>,), _> = self.store.query("forget", &read).await
        else {
            return 0;
        };
        let prefix = replica_tag(replica);
        let mut removals: Vec<redis::Pipeline> = written
            .iter()
            .filter_map(|member| {
                let (info_hash, peer_id) = member.split_at_checked(20)?;
                let (info_hash, peer_id) = (
                    Id20(info_hash.try_into().ok()?),
                    Id20(peer_id.try_into().ok()?),
                );
                let mut removal = redis::pipe();
                leave_command(&mut removal, &info_hash, &peer_id, &prefix);
                removal.ignore();
                Some(removal)
            })
            .collect();
        let removed = removals.len();
        let mut index = redis::pipe();
        index.del(members_key(replica)).ignore();
        removals.push(index);
        let mut listing = redis::pipe();
        listing.zrem(REPLICAS_KEY, replica).ignore();
        removals.push(listing);
        if self
            .store
            .query_each::<()>("forget", &removals)
            .await
            .is_err()
        {
            return 0;
        }
        self.metrics.redis_entries_expired.inc_by(removed as u64);
        removed
    }

    /// Leaves the cluster at shutdown: this replica's remaining entries and heartbeat go at once.
    pub async fn retire(&self) {
        let removed = self.forget(self.replica).await;
        tracing::info!(removed, "left the cluster");
    }
}

fn leave_command(pipeline: &mut redis::Pipeline, info_hash: &Id20, peer_id: &Id20, owner: &str) {
    pipeline
        .cmd("EVALSHA")
        .arg(LEAVE.get_hash())
        .arg(3)
        .arg(swarm_key(info_hash, "peers"))
        .arg(swarm_key(info_hash, "expiry"))
        .arg(swarm_key(info_hash, "seeds"))
        .arg(&peer_id.0[..])
        .arg(owner);
}

fn member_bytes(info_hash: &Id20, peer_id: &Id20) -> Vec<u8> {
    [&info_hash.0[..], &peer_id.0[..]].concat()
}

fn parse_sha256(hex: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if hex.len() != 64 {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn bytes(value: &Value) -> Option<&[u8]> {
    match value {
        Value::BulkString(data) => Some(data),
        Value::SimpleString(text) => Some(text.as_bytes()),
        _ => None,
    }
}

fn text(value: &Value) -> Option<&str> {
    std::str::from_utf8(bytes(value)?).ok()
}

fn integer(value: &Value) -> Option<u64> {
    match value {
        Value::Int(n) => u64::try_from(*n).ok(),
        _ => None,
    }
}
