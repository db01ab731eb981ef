//! The state every connection of one tracker shares.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cluster::Cluster;
use crate::config::Config;
use crate::geo::GeoIp;
use crate::hashes::HashBook;
use crate::limits::Admission;
use crate::metrics::Metrics;
use crate::registry::SwarmRegistry;
use crate::tenants::Tenants;

/// State shared by every connection of one tracker.
pub struct Shared {
    /// The settings.
    pub config: Config,
    /// The tenants allowed to connect (open to all when no file is given).
    pub tenants: Tenants,
    /// Swarm membership.
    pub registry: Arc<dyn SwarmRegistry>,
    /// Optional GeoIP databases.
    pub geo: GeoIp,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The segment-hash extension's book.
    pub hashes: HashBook,
    /// Cancelled when the tracker shuts down.
    pub shutdown: CancellationToken,
    /// Replicas sharing swarms through Redis, when `--redis-url` is set.
    pub cluster: Option<Arc<Cluster>>,
    /// Connection admission.
    pub admission: Arc<Admission>,
    /// Connections in their TLS or HTTP handshake, per connecting address.
    pub handshakes: Arc<Admission>,
    /// Every connection's task.
    pub tasks: TaskTracker,
    /// The next connection id.
    pub next_connection: AtomicU64,
    /// WebSocket limits.
    pub websocket: WebSocketConfig,
    /// The TLS acceptor, when TLS is on.
    pub tls: Option<TlsAcceptor>,
}

impl Shared {
    /// A fresh connection id.
    pub fn next_connection_id(&self) -> u64 {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }
}
