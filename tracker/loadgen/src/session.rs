//! A population of viewers against one tracker: opening them, pacing their announces, stopping.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::peer::{self, Behaviour, World};
use crate::sdp::{SdpKind, SdpPool};
use crate::stats::{Snapshot, Stats};
use crate::swarms::Swarms;

/// The viewers of a run.
pub struct Session {
    world: Arc<World>,
    period: watch::Sender<Option<Duration>>,
    handshakes: Arc<Semaphore>,
    viewers: JoinSet<()>,
    opened: u32,
}

impl Session {
    /// A session with no viewers yet; announces are paused until [`Session::set_rate`].
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        let mut rng = SmallRng::from_rng(&mut rand::rng());
        let (period, announce_period) = watch::channel(None);
        let world = World {
            servers: config.tracker.clone(),
            stats: Stats::new(),
            swarms: Swarms::new(config.swarms, config.zipf_exponent)?,
            offer_sdps: SdpPool::generate(SdpKind::Offer, config.sdp_pool, &mut rng),
            answer_sdps: SdpPool::generate(SdpKind::Answer, config.sdp_pool, &mut rng),
            offers_per_announce: config.offers_min..=config.offers_max,
            idle_offers: config.idle_offers,
            source_addresses: config.source_addresses,
            announce_period,
            stop: CancellationToken::new(),
        };
        Ok(Self {
            world: Arc::new(world),
            period,
            handshakes: Arc::new(Semaphore::new(config.connect_concurrency.max(1))),
            viewers: JoinSet::new(),
            opened: 0,
        })
    }

    /// Opens viewers until `total` exist and waits (at most `timeout`) until each has connected
    /// or failed. Returns how many are connected.
    pub async fn open(&mut self, total: u32, behaviour: Behaviour, timeout: Duration) -> u64 {
        while self.opened < total {
            let world = Arc::clone(&self.world);
            let handshakes = Arc::clone(&self.handshakes);
            let index = self.opened;
            self.viewers
                .spawn(async move { peer::run(world, index, behaviour, handshakes).await });
            self.opened += 1;
        }
        let counters = &self.world.stats.counters;
        let deadline = Instant::now() + timeout;
        loop {
            let settled = counters.connected.load(Ordering::Relaxed)
                + counters.connect_errors.load(Ordering::Relaxed);
            if settled >= u64::from(total) || Instant::now() >= deadline {
                return counters.connected.load(Ordering::Relaxed)
                    - counters.disconnects.load(Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Paces active viewers so that all of them together announce `per_second` times a second.
    pub fn set_rate(&self, per_second: f64) {
        let period = Duration::from_secs_f64(f64::from(self.opened) / per_second);
        self.period.send_replace(Some(period));
    }

    /// The current counters (and the latencies since the previous snapshot).
    pub fn snapshot(&self) -> Snapshot {
        self.world.stats.take_snapshot()
    }

    /// Stops every viewer and waits (briefly) for their connections to close.
    pub async fn stop(mut self) {
        self.world.stop.cancel();
        let drained = tokio::time::timeout(Duration::from_secs(10), async {
            while self.viewers.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            self.viewers.abort_all();
        }
    }
}
