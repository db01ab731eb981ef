//! The listening side: accepts TCP (or TLS) connections, routes each to the HTTP endpoints or
//! to a WebSocket session, runs housekeeping, and shuts down gracefully.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::client_ip;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::connection;
use crate::fd_limit;
use crate::geo::GeoIp;
use crate::hashes::{HashBook, HashConfig};
use crate::http::{self, RequestHead};
use crate::limits::{Admission, ConnectionSlot, Refused};
use crate::metrics::Metrics;
use crate::metrics_listener;
use crate::read_ahead::ReadAhead;
use crate::registry::{MatchingConfig, MemoryRegistry, SwarmRegistry};
use crate::remote;
use crate::shared::Shared;
use crate::supervisor;
use crate::tenants::{TenantPass, TenantRefusal, Tenants};
use crate::token;

/// A running tracker.
pub struct Tracker {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    accept: JoinHandle<()>,
}

impl Tracker {
    /// Binds `config.listen` and starts serving.
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        Self::start_on(listener, config).await
    }

    /// Starts serving on an already bound listener, with the in-memory registry.
    pub async fn start_on(listener: TcpListener, config: Config) -> anyhow::Result<Self> {
        let registry = Arc::new(MemoryRegistry::new(MatchingConfig {
            nearby_km: config.nearby_km,
            max_candidates: config.match_candidates.max(1),
        }));
        Self::start_with_registry(listener, config, registry).await
    }

    /// Starts serving on `listener` with the given swarm registry.
    pub async fn start_with_registry(
        listener: TcpListener,
        config: Config,
        registry: Arc<dyn SwarmRegistry>,
    ) -> anyhow::Result<Self> {
        let metrics_listener = match config.metrics_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr} for metrics"))?,
            ),
            None => None,
        };
        let metrics = Arc::new(Metrics::new());
        let geo = GeoIp::open(
            config.geoip_asn.as_deref(),
            config.geoip_location.as_deref(),
            Arc::clone(&metrics),
        )?;
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(crate::tls::acceptor(cert, key)?),
            _ => None,
        };
        let websocket = WebSocketConfig::default()
            .read_buffer_size(2048)
            // Frames collect until the connection flushes its batch (one write for several).
            .write_buffer_size(64 * 1024)
            .max_write_buffer_size(config.max_frame_size.saturating_mul(4).max(1 << 20))
            .max_message_size(Some(config.max_frame_size))
            .max_frame_size(Some(config.max_frame_size));
        let max_connections = config
            .max_connections
            .unwrap_or_else(fd_limit::default_max_connections);
        let admission = Arc::new(Admission::new(
            max_connections,
            config.max_connections_per_ip,
            config.max_connections_per_ipv6_56,
        ));
        let handshakes = Arc::new(Admission::new(
            u32::MAX,
            config.max_handshakes_per_ip,
            u32::MAX,
        ));
        metrics.connection_capacity.set(i64::from(max_connections));
        metrics.redis_up.set(1);
        let cluster = match config.redis_url {
            None => None,
            Some(_) => Some(Arc::new(
                Cluster::connect(&config, Arc::clone(&metrics)).await?,
            )),
        };
        let tenants = Tenants::open(config.tenants.as_deref())?;
        if !tenants.is_enabled() {
            tracing::warn!("no --tenants file: the tracker is open to every page, without tokens");
        }
        let shared = Arc::new(Shared {
            tenants,
            cluster,
            hashes: HashBook::new(HashConfig::from_config(&config)),
            registry,
            geo,
            metrics,
            shutdown: CancellationToken::new(),
            admission,
            handshakes,
            tasks: TaskTracker::new(),
            next_connection: AtomicU64::new(1),
            websocket,
            tls,
            config,
        });
        let local_addr = listener.local_addr()?;
        let housekeeper = Arc::clone(&shared);
        shared.tasks.spawn(supervisor::supervise(
            "housekeeping",
            shared.metrics.housekeeping_restarts.clone(),
            move || housekeeping(Arc::clone(&housekeeper)),
        ));
        if let Some(cluster) = &shared.cluster {
            join_cluster(&shared, cluster).await;
        }
        let metrics_addr = match metrics_listener {
            Some(listener) => {
                let addr = listener.local_addr()?;
                shared
                    .tasks
                    .spawn(metrics_listener::serve(listener, Arc::clone(&shared)));
                Some(addr)
            }
            None => None,
        };
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        tracing::info!(
            %local_addr,
            tls = shared.tls.is_some(),
            metrics = ?metrics_addr,
            geoip = shared.geo.is_enabled(),
            max_connections = shared.admission.capacity(),
            replica = shared.cluster.as_ref().map(|cluster| cluster.replica()),
            tenants = ?shared.tenants.ids(),
            "tracker listening"
        );
        Ok(Self {
            shared,
            local_addr,
            metrics_addr,
            accept,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address of the separate metrics port (`--metrics-listen`), when there is one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The tracker's metrics.
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.shared.metrics)
    }

    /// Reloads the GeoIP databases now (what SIGHUP does).
    pub fn reload_geoip(&self) {
        self.shared.geo.reload();
    }

    /// Rereads the tenants file now (what SIGHUP does).
    pub fn reload_tenants(&self) {
        self.shared.tenants.reload();
    }

    /// Stops accepting, tells every connected peer (WebSocket close 1001), and waits for the
    /// connections to close, at most `shutdown-timeout` seconds.
    pub async fn shutdown(self) {
        tracing::info!("shutting down");
        self.shared.shutdown.cancel();
        let _ = self.accept.await;
        self.shared.tasks.close();
        let limit = Duration::from_secs(self.shared.config.shutdown_timeout);
        if tokio::time::timeout(limit, self.shared.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("connections still open after the shutdown timeout; closing anyway");
        }
        if let Some(cluster) = &self.shared.cluster {
            cluster.retire().await;
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let accepted = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let Some(handshake) = admit_handshake(&shared, peer) else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                shared
                    .tasks
                    .spawn(serve(Arc::clone(&shared), stream, peer, handshake));
            }
            Err(error) => {
                // Typically out of file descriptors: back off instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Counts a connection in its handshakes against its address (the connecting one: a trusted
/// proxy is not limited, its clients are counted once their address is known); `None` when the
/// address has too many handshakes open, and the connection is then closed at once.
fn admit_handshake(shared: &Shared, peer: SocketAddr) -> Option<Option<ConnectionSlot>> {
    let proxies = &shared.config.trusted_proxies;
    if proxies.iter().any(|network| network.contains(&peer.ip())) {
        return Some(None);
    }
    match shared.handshakes.admit(peer.ip()) {
        Ok(slot) => Some(Some(slot)),
        Err(_) => {
            shared
                .metrics
                .rejected
                .with_label_values(&["handshakes_per_ip"])
                .inc();
            None
        }
    }
}

/// Serves one accepted connection; `handshake` holds its place among its address's handshakes
/// until the request head is read.
async fn serve(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    handshake: Option<ConnectionSlot>,
) {
    match shared.tls.clone() {
        // Boxed: a TLS session's future is several times larger than a plain one, and the task
        // of every plain connection would otherwise be sized for it.
        Some(acceptor) => Box::pin(serve_tls(shared, acceptor, stream, peer, handshake)).await,
        None => serve_stream(shared, stream, peer, handshake).await,
    }
}

async fn serve_tls(
    shared: Arc<Shared>,
    acceptor: TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    handshake: Option<ConnectionSlot>,
) {
    let limit = Duration::from_secs(shared.config.handshake_timeout);
    match tokio::time::timeout(limit, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => serve_stream(shared, tls, peer, handshake).await,
        Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
    }
}

/// What a request head asked for, extracted before the head's buffer is handed on.
enum Route {
    WebSocket {
        key: String,
        client: std::net::IpAddr,
        token: Option<String>,
        origin: Option<String>,
    },
    Endpoint(String),
    Invalid(&'static str),
}

fn route(head: &RequestHead, peer: SocketAddr, shared: &Shared) -> Route {
    let mut slots = RequestHead::header_slots();
    let Ok(request) = head.parse(&mut slots) else {
        return Route::Invalid("malformed request");
    };
    let target = request.path.unwrap_or("/");
    let path = target.split('?').next().unwrap_or("/").to_owned();
    if !http::is_websocket_upgrade(request.headers) {
        return Route::Endpoint(path);
    }
    if path != "/" {
        return Route::Invalid("WebSocket is served at /");
    }
    let Some(key) = http::header(request.headers, "sec-websocket-key") else {
        return Route::Invalid("missing Sec-WebSocket-Key");
    };
    let client = client_ip::resolve(peer.ip(), request.headers, &shared.config.trusted_proxies);
    Route::WebSocket {
        key: key.to_owned(),
        client,
        token: token::from_request_target(target).map(str::to_owned),
        origin: http::header(request.headers, "origin").map(str::to_owned),
    }
}

async fn serve_stream<S>(
    shared: Arc<Shared>,
    mut stream: S,
    peer: SocketAddr,
    handshake: Option<ConnectionSlot>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limit = Duration::from_secs(shared.config.handshake_timeout);
    let head = match tokio::time::timeout(limit, RequestHead::read(&mut stream)).await {
        Ok(Ok(head)) => head,
        Ok(Err(error)) => return tracing::debug!(%peer, %error, "no usable request"),
        Err(_) => return tracing::debug!(%peer, "request head timed out"),
    };
    drop(handshake);
    let result = match route(&head, peer, &shared) {
        Route::Invalid(why) => {
            http::respond(&mut stream, "400 Bad Request", "text/plain", why).await
        }
        Route::Endpoint(path) => endpoint(&shared, &mut stream, &path).await,
        Route::WebSocket {
            key,
            client,
            token,
            origin,
        } => {
            let tenant = match admit_tenant(&shared, token.as_deref(), origin.as_deref()) {
                Ok(tenant) => tenant,
                Err(refusal) => {
                    let (status, body) = refusal.response();
                    http::respond(&mut stream, status, "text/plain", body)
                        .await
                        .unwrap_or_else(
                            |error| tracing::debug!(%peer, %error, "HTTP response failed"),
                        );
                    return;
                }
            };
            return upgrade(shared, stream, head, &key, client, tenant).await;
        }
    };
    if let Err(error) = result {
        tracing::debug!(%peer, %error, "HTTP response failed");
    }
}

/// The tenant of an upgrade, when a tenants file is loaded; a refusal is counted.
fn admit_tenant(
    shared: &Shared,
    token: Option<&str>,
    origin: Option<&str>,
) -> Result<Option<TenantPass>, TenantRefusal> {
    if !shared.tenants.is_enabled() {
        return Ok(None);
    }
    match shared.tenants.admit(token, origin) {
        Ok(pass) => Ok(Some(pass)),
        Err((tenant, refusal)) => {
            let tenant = tenant.as_deref().unwrap_or("-");
            shared
                .metrics
                .tenant_refusals
                .with_label_values(&[tenant, refusal.label()])
                .inc();
            shared
                .metrics
                .rejected
                .with_label_values(&[refusal.label()])
                .inc();
            Err(refusal)
        }
    }
}

async fn upgrade<S>(
    shared: Arc<Shared>,
    mut stream: S,
    head: RequestHead,
    key: &str,
    client: std::net::IpAddr,
    tenant: Option<TenantPass>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if shared.shutdown.is_cancelled() {
        let _ = http::respond(
            &mut stream,
            "503 Service Unavailable",
            "text/plain",
            "shutting down",
        )
        .await;
        return;
    }
    let slot = match shared.admission.admit(client) {
        Ok(slot) => slot,
        Err(refused) => return refuse_connection(&shared, &mut stream, refused).await,
    };
    if http::accept_websocket(&mut stream, key).await.is_err() {
        return;
    }
    let config = Some(shared.websocket);
    let stream = ReadAhead::new(stream);
    let socket =
        WebSocketStream::from_partially_read(stream, head.into_rest(), Role::Server, config).await;
    connection::run(shared, socket, client, slot, tenant).await;
}

/// Answers an upgrade that [`Admission`] refused, and counts it.
async fn refuse_connection<S: AsyncWrite + Unpin>(
    shared: &Shared,
    stream: &mut S,
    refused: Refused,
) {
    let (reason, status, body) = match refused {
        Refused::AtCapacity => (
            "at_capacity",
            "503 Service Unavailable",
            "tracker at capacity, try another replica or later",
        ),
        Refused::TooManyFromAddress => (
            "connections_per_ip",
            "429 Too Many Requests",
            "too many connections from this address",
        ),
    };
    shared.metrics.rejected.with_label_values(&[reason]).inc();
    let _ = http::respond(stream, status, "text/plain", body).await;
}

async fn endpoint<S: AsyncWrite + Unpin>(
    shared: &Shared,
    stream: &mut S,
    path: &str,
) -> std::io::Result<()> {
    match path {
        "/healthz" => http::respond(stream, "200 OK", "text/plain", "ok\n").await,
        "/readyz" if shared.shutdown.is_cancelled() => {
            http::respond(
                stream,
                "503 Service Unavailable",
                "text/plain",
                "shutting down\n",
            )
            .await
        }
        "/readyz" if shared.admission.is_full() => {
            http::respond(
                stream,
                "503 Service Unavailable",
                "text/plain",
                "at capacity\n",
            )
            .await
        }
        "/readyz" => http::respond(stream, "200 OK", "text/plain", "ready\n").await,
        "/metrics" if shared.config.metrics_listen.is_none() => {
            let body = metrics_listener::render(shared);
            http::respond(stream, "200 OK", "text/plain; version=0.0.4", &body).await
        }
        _ => http::respond(stream, "404 Not Found", "text/plain", "not found\n").await,
    }
}

/// Expires silent peers and old hash reports, and reloads changed GeoIP and tenants files.
async fn housekeeping(shared: Arc<Shared>) {
    let peer_timeout = Duration::from_secs(shared.config.peer_timeout);
    let expiry_tick = (peer_timeout / 4).clamp(Duration::from_millis(200), Duration::from_secs(15));
    let mut expiry = tokio::time::interval(expiry_tick);
    let mut reload = tokio::time::interval(Duration::from_secs(
        shared.config.geoip_reload_interval.max(1),
    ));
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = expiry.tick() => {
                let expired = shared.registry.expire(peer_timeout);
                shared.metrics.peers_expired.inc_by(expired as u64);
                shared.hashes.expire();
            }
            _ = reload.tick() => {
                shared.geo.reload_changed();
                shared.tenants.reload_changed();
            }
        }
    }
}

/// Starts this replica's part in the cluster: the first heartbeat (so others see it before its
/// first peer), the subscriber that receives relays, and the heartbeat loop.
async fn join_cluster(shared: &Arc<Shared>, cluster: &Arc<Cluster>) {
    beat(shared, cluster).await;
    let (inbox, deliveries) = tokio::sync::mpsc::channel(remote::INBOX);
    let subscriber = Arc::clone(cluster);
    let shutdown = shared.shutdown.clone();
    shared
        .tasks
        .spawn(async move { subscriber.subscribe(inbox, shutdown).await });
    shared
        .tasks
        .spawn(remote::deliver_all(Arc::clone(shared), deliveries));
    let sender = Arc::clone(cluster);
    let shutdown = shared.shutdown.clone();
    shared
        .tasks
        .spawn(async move { sender.send_queued(shutdown).await });
    shared
        .tasks
        .spawn(heartbeats(Arc::clone(shared), Arc::clone(cluster)));
}

/// Beats every `--redis-heartbeat-interval` until shutdown.
async fn heartbeats(shared: Arc<Shared>, cluster: Arc<Cluster>) {
    let mut tick = tokio::time::interval(cluster.heartbeat_interval());
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = tick.tick() => beat(&shared, &cluster).await,
        }
    }
}

/// One heartbeat: writes this replica's peers back if Redis just returned, and removes the
/// entries of replicas that died.
async fn beat(shared: &Shared, cluster: &Cluster) {
    let heartbeat = cluster.heartbeat().await;
    if heartbeat.recovered && cluster.register(shared.registry.members()).await {
        cluster.mark_up();
    }
    for replica in heartbeat.dead {
        let removed = cluster.forget(replica).await;
        tracing::info!(
            replica,
            removed,
            "removed the peers of a replica that stopped beating"
        );
    }
}
