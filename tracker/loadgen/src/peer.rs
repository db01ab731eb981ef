//! One simulated viewer: a WebSocket to the tracker opened from its own loopback source address,
//! announcing into one swarm with offers, answering every offer relayed to it, and timing the
//! offers and answers it receives.

use std::net::{Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, client_async_with_config};
use tokio_util::sync::CancellationToken;

use crate::sdp::SdpPool;
use crate::stats::Stats;
use crate::swarms::Swarms;
use crate::wire::{self, Announce, Incoming, OutgoingOffer};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What every viewer of a run shares.
pub struct World {
    /// The addresses of the tracker's replicas (one for a lone tracker).
    pub servers: Vec<SocketAddr>,
    /// Counters and latencies.
    pub stats: Stats,
    /// The swarms.
    pub swarms: Swarms,
    /// Offer SDPs.
    pub offer_sdps: SdpPool,
    /// Answer SDPs.
    pub answer_sdps: SdpPool,
    /// Offers per announce of an active viewer.
    pub offers_per_announce: RangeInclusive<usize>,
    /// Offers in the single announce of an idle viewer.
    pub idle_offers: usize,
    /// How many loopback source addresses the viewers are spread over.
    pub source_addresses: u32,
    /// Time between announces of one active viewer (`None`: do not announce).
    pub announce_period: watch::Receiver<Option<Duration>>,
    /// Cancelled at the end of the run.
    pub stop: CancellationToken,
}

/// The loopback source address of viewer `index` among `count` addresses: 127.0.1.1,
/// 127.0.1.2, ... (at most 63,500 addresses, a new /24 every 250), cycling.
pub fn source_address(index: u32, count: u32) -> Ipv4Addr {
    let slot = index % count.max(1);
    Ipv4Addr::new(127, 0, 1 + (slot / 250) as u8, 1 + (slot % 250) as u8)
}

/// How a viewer behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Announces periodically with offers and answers relayed offers.
    Active,
    /// Announces once, then stays silent (only keeps the connection open).
    Idle,
}

/// Runs viewer `index` until the world stops or its connection breaks. Holds a permit of
/// `handshakes` while connecting, which bounds the handshakes in flight.
pub async fn run(world: Arc<World>, index: u32, behaviour: Behaviour, handshakes: Arc<Semaphore>) {
    let connected = {
        let _permit = handshakes.acquire().await;
        connect(&world, index).await
    };
    let mut socket = match connected {
        Ok(socket) => socket,
        Err(error) => {
            Stats::bump(&world.stats.counters.connect_errors);
            if world
                .stats
                .counters
                .connect_errors
                .load(std::sync::atomic::Ordering::Relaxed)
                == 1
            {
                eprintln!("first connection error: {error:#}");
            }
            return;
        }
    };
    Stats::bump(&world.stats.counters.connected);
    let mut viewer = Viewer::new(&world, index);
    let outcome = match behaviour {
        Behaviour::Active => viewer.active(&mut socket).await,
        Behaviour::Idle => viewer.idle(&mut socket).await,
    };
    if outcome.is_err() && !world.stop.is_cancelled() {
        Stats::bump(&world.stats.counters.disconnects);
    }
    let _ = socket.close(None).await;
}

async fn connect(world: &World, index: u32) -> anyhow::Result<Socket> {
    let tcp = TcpSocket::new_v4()?;
    let source = source_address(index, world.source_addresses);
    tcp.bind(SocketAddr::new(source.into(), 0))?;
    let server = world.servers[index as usize % world.servers.len()];
    let stream = tcp.connect(server).await?;
    stream.set_nodelay(true)?;
    // The codec zeroes up to its read-buffer size before every read, even one that finds the
    // socket empty: 4 KiB (two relayed SDPs) instead of 16 KiB cut the generator's instructions
    // per relayed message by a third (callgrind, 500 viewers at 100 announces/s).
    let config = WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(64 * 1024);
    let (socket, _response) = client_async_with_config(
        format!("ws://{server}/"),
        MaybeTlsStream::Plain(stream),
        Some(config),
    )
    .await?;
    Ok(socket)
}

/// The state of one viewer.
struct Viewer<'w> {
    world: &'w World,
    rng: SmallRng,
    peer_id: String,
    swarm: usize,
    left: u64,
    announced: bool,
    offer_latencies: Vec<u64>,
    answer_latencies: Vec<u64>,
    /// The replica this viewer is connected to (its index in `World::servers`).
    replica: u8,
    /// Offer latencies by whether the offer came through the same replica or another one.
    replica_latencies: ReplicaLatencies,
}

/// Announce-to-offer latencies of offers relayed within one replica and across replicas.
#[derive(Default)]
pub struct ReplicaLatencies {
    /// Offerer and receiver on the same replica (µs).
    pub same: Vec<u64>,
    /// Offerer and receiver on different replicas (µs).
    pub cross: Vec<u64>,
}

impl<'w> Viewer<'w> {
    fn new(world: &'w World, index: u32) -> Self {
        let mut rng = SmallRng::from_rng(&mut rand::rng());
        let mut id = [0u8; 20];
        id[..8].copy_from_slice(b"-WW0208-");
        rng.fill(&mut id[8..16]);
        id[16..].copy_from_slice(&index.to_be_bytes());
        let mut peer_id = String::with_capacity(48);
        wire::push_id(&mut peer_id, &id);
        let swarm = world.swarms.pick(&mut rng);
        let left = rng.random_range(0..4_000_000_000);
        Self {
            world,
            rng,
            peer_id,
            swarm,
            left,
            announced: false,
            offer_latencies: Vec::with_capacity(64),
            answer_latencies: Vec::with_capacity(64),
            replica: (index as usize % world.servers.len()) as u8,
            replica_latencies: ReplicaLatencies::default(),
        }
    }

    async fn active(&mut self, socket: &mut Socket) -> anyhow::Result<()> {
        let mut period = self.world.announce_period.clone();
        let mut next = self.first_announce(*period.borrow_and_update());
        loop {
            tokio::select! {
                biased;
                () = self.world.stop.cancelled() => return Ok(()),
                message = socket.next() => {
                    self.handle(socket, message).await?;
                    self.flush_latencies();
                }
                Ok(()) = period.changed() => next = self.first_announce(*period.borrow_and_update()),
                () = sleep_until(next) => {
                    let offers = self.rng.random_range(self.world.offers_per_announce.clone());
                    self.announce(socket, offers).await?;
                    next = match *period.borrow() {
                        Some(every) => next + every,
                        None => far_future(),
                    };
                }
            }
        }
    }

    async fn idle(&mut self, socket: &mut Socket) -> anyhow::Result<()> {
        self.announce(socket, self.world.idle_offers).await?;
        loop {
            tokio::select! {
                () = self.world.stop.cancelled() => return Ok(()),
                message = socket.next() => match message {
                    Some(Ok(_)) => {}
                    Some(Err(error)) => return Err(error.into()),
                    None => anyhow::bail!("closed by the server"),
                },
            }
        }
    }

    /// When to announce first after the period became `period`: a random phase within it, so
    /// viewers do not announce in lockstep.
    fn first_announce(&mut self, period: Option<Duration>) -> Instant {
        match period {
            Some(every) => Instant::now() + every.mul_f64(self.rng.random::<f64>()),
            None => far_future(),
        }
    }

    async fn announce(&mut self, socket: &mut Socket, offer_count: usize) -> anyhow::Result<()> {
        let world = self.world;
        let sent_at = wire::now_micros();
        let offers: Vec<OutgoingOffer<'_>> = (0..offer_count)
            .map(|_| OutgoingOffer {
                sdp: world.offer_sdps.pick(&mut self.rng),
                offer_id: wire::offer_id(sent_at, self.replica, self.rng.random()),
            })
            .collect();
        let announce = Announce {
            info_hash: world.swarms.encoded(self.swarm),
            peer_id: &self.peer_id,
            event: (!self.announced).then_some("started"),
            left: self.left,
        };
        let mut text = String::with_capacity(256 + offer_count * 1500);
        wire::write_announce(&mut text, &announce, &offers);
        socket.send(Message::text(text)).await?;
        self.announced = true;
        Stats::bump(&world.stats.counters.announces);
        world
            .stats
            .counters
            .offers_sent
            .fetch_add(offer_count as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Handles `first` and every further message already buffered, then flushes the answers.
    async fn handle(
        &mut self,
        socket: &mut Socket,
        first: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    ) -> anyhow::Result<()> {
        let mut message = first;
        loop {
            match message {
                Some(Ok(Message::Text(text))) => self.react(socket, text.as_str()).await?,
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(error.into()),
                None => anyhow::bail!("closed by the server"),
            }
            match socket.next().now_or_never() {
                Some(next) => message = next,
                None => break,
            }
        }
        socket.flush().await?;
        Ok(())
    }

    async fn react(&mut self, socket: &mut Socket, text: &str) -> anyhow::Result<()> {
        let counters = &self.world.stats.counters;
        match wire::classify(text) {
            Incoming::Offer(offer) => {
                Stats::bump(&counters.offers_received);
                if let Some(id) = wire::decode_id(offer.offer_id) {
                    let sent_at = wire::offer_sent_at(&id);
                    let latency = wire::now_micros().saturating_sub(sent_at);
                    self.offer_latencies.push(latency);
                    if self.world.servers.len() > 1 {
                        match wire::offer_replica(&id) == self.replica {
                            true => self.replica_latencies.same.push(latency),
                            false => self.replica_latencies.cross.push(latency),
                        }
                    }
                }
                let sdp = self.world.answer_sdps.pick(&mut self.rng);
                let mut answer = String::with_capacity(sdp.len() + 256);
                wire::write_answer(&mut answer, &offer, &self.peer_id, sdp);
                socket.feed(Message::text(answer)).await?;
                Stats::bump(&counters.answers_sent);
            }
            Incoming::Answer(offer_id) => {
                Stats::bump(&counters.answers_received);
                if let Some(id) = wire::decode_id(offer_id) {
                    let sent_at = wire::offer_sent_at(&id);
                    self.answer_latencies
                        .push(wire::now_micros().saturating_sub(sent_at));
                }
            }
            Incoming::Failure => {
                if counters
                    .failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                    == 0
                {
                    eprintln!("first failure reason from the tracker: {text}");
                }
            }
            Incoming::Other => Stats::bump(&counters.other_messages),
        }
        Ok(())
    }

    fn flush_latencies(&mut self) {
        if !self.offer_latencies.is_empty() {
            self.world
                .stats
                .record_offer_latencies(&self.offer_latencies);
            self.offer_latencies.clear();
        }
        if !(self.replica_latencies.same.is_empty() && self.replica_latencies.cross.is_empty()) {
            let latencies = &mut self.replica_latencies;
            self.world.stats.record_replica_latencies(latencies);
            latencies.same.clear();
            latencies.cross.clear();
        }
        if !self.answer_latencies.is_empty() {
            self.world
                .stats
                .record_answer_latencies(&self.answer_latencies);
            self.answer_latencies.clear();
        }
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_addresses_cycle_over_loopback_24s() {
        assert_eq!(source_address(0, 100), Ipv4Addr::new(127, 0, 1, 1));
        assert_eq!(source_address(101, 100), Ipv4Addr::new(127, 0, 1, 2));
        assert_eq!(source_address(250, 1000), Ipv4Addr::new(127, 0, 2, 1));
        assert_eq!(
            source_address(63_499, 63_500),
            Ipv4Addr::new(127, 0, 254, 250)
        );
        assert_eq!(source_address(7, 0), Ipv4Addr::new(127, 0, 1, 1));
    }
}
