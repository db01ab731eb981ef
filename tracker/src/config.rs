//! Configuration: command-line flags, each also readable from a `TRACKER_*` environment variable
//! and from an optional TOML file whose keys are the long flag names. Precedence: flag, then
//! environment, then file, then the built-in default.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use ipnet::IpNet;

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The tracker's settings.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "tracker",
    version,
    about = "WebTorrent-compatible signaling tracker that matches video peers by ISP, geography and rendition",
    after_help = "Every flag can also be set with the environment variable shown, or as a key of \
                  the TOML file given with --config (the long flag name without dashes, e.g. \
                  `max-offers-per-announce = 10`). Flags win over the environment, which wins \
                  over the file."
)]
pub struct Config {
    /// TOML file with settings (keys are the long flag names).
    #[arg(long, env = "TRACKER_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Address for the WebSocket (at `/`) and the HTTP endpoints (`/healthz`, `/readyz`, `/metrics`).
    #[arg(long, env = "TRACKER_LISTEN", default_value = "0.0.0.0:8000")]
    pub listen: SocketAddr,

    /// Separate address serving `/metrics` (plain HTTP); the public port then answers it with
    /// 404. Without it `/metrics` is served on --listen.
    #[arg(long, env = "TRACKER_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,

    /// PEM certificate chain; with --tls-key, serves wss:// and https:// instead of ws:// and http://.
    #[arg(
        long,
        env = "TRACKER_TLS_CERT",
        value_name = "PATH",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for --tls-cert.
    #[arg(
        long,
        env = "TRACKER_TLS_KEY",
        value_name = "PATH",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    /// MaxMind-format ASN database (GeoLite2-ASN layout). Optional.
    #[arg(long, env = "TRACKER_GEOIP_ASN", value_name = "PATH")]
    pub geoip_asn: Option<PathBuf>,

    /// MaxMind-format City or Country database (GeoLite2 layouts). Optional.
    #[arg(long, env = "TRACKER_GEOIP_LOCATION", value_name = "PATH")]
    pub geoip_location: Option<PathBuf>,

    /// Seconds between checks for changed GeoIP files (they also reload on SIGHUP).
    #[arg(long, env = "TRACKER_GEOIP_RELOAD_INTERVAL", default_value_t = 60)]
    pub geoip_reload_interval: u64,

    /// Networks of reverse proxies whose X-Forwarded-For / Forwarded headers are believed
    /// (comma-separated CIDRs).
    #[arg(
        long,
        env = "TRACKER_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_name = "CIDR"
    )]
    pub trusted_proxies: Vec<IpNet>,

    /// Seconds between announces that clients are told to keep.
    #[arg(long, env = "TRACKER_ANNOUNCE_INTERVAL", default_value_t = 120)]
    pub announce_interval: u64,

    /// Seconds of silence after which a peer is removed from its swarms and a connection that
    /// sent nothing for as long is closed.
    #[arg(long, env = "TRACKER_PEER_TIMEOUT", default_value_t = 300)]
    pub peer_timeout: u64,

    /// Seconds of silence after which a connection is pinged; one that sends no frame (not even
    /// the pong) for as long again is closed as gone. 0 disables pings, and with them the
    /// probe that lets a reconnected client take its `peer_id` over from a vanished connection.
    #[arg(long, env = "TRACKER_PING_INTERVAL", default_value_t = 20)]
    pub ping_interval: u64,

    /// Seconds during which an answer to a relayed offer is accepted.
    #[arg(long, env = "TRACKER_OFFER_TIMEOUT", default_value_t = 50)]
    pub offer_timeout: u64,

    /// Largest WebSocket message accepted, in bytes (larger ones get a `failure reason`).
    #[arg(long, env = "TRACKER_MAX_MESSAGE_SIZE", default_value_t = 64 * 1024)]
    pub max_message_size: usize,

    /// Largest WebSocket frame accepted, in bytes (larger ones close the connection).
    #[arg(long, env = "TRACKER_MAX_FRAME_SIZE", default_value_t = 256 * 1024)]
    pub max_frame_size: usize,

    /// Most offers accepted in one announce.
    #[arg(long, env = "TRACKER_MAX_OFFERS_PER_ANNOUNCE", default_value_t = 10)]
    pub max_offers_per_announce: usize,

    /// Most swarm memberships (swarm and peer id pairs) one connection may hold.
    #[arg(long, env = "TRACKER_MAX_SWARMS_PER_CONNECTION", default_value_t = 32)]
    pub max_swarms_per_connection: usize,

    /// Most open WebSocket connections in all: further upgrades get HTTP 503 and `/readyz`
    /// reports not ready until connections close. Default: the open-file limit (raised to its
    /// hard maximum at start) minus 1/32 of it (at least 32), kept back for the listener,
    /// handshakes, probes and scrapes.
    #[arg(long, env = "TRACKER_MAX_CONNECTIONS", value_name = "COUNT")]
    pub max_connections: Option<u32>,

    /// Most open connections from one client address (all of an IPv6 /64 counts as one).
    #[arg(long, env = "TRACKER_MAX_CONNECTIONS_PER_IP", default_value_t = 256)]
    pub max_connections_per_ip: u32,

    /// Most open connections from one IPv6 /56 (over all its /64s).
    #[arg(
        long,
        env = "TRACKER_MAX_CONNECTIONS_PER_IPV6_56",
        default_value_t = 1024
    )]
    pub max_connections_per_ipv6_56: u32,

    /// Most connections from one address still in their TLS or HTTP handshake (the address
    /// that connects: a trusted proxy is not limited).
    #[arg(long, env = "TRACKER_MAX_HANDSHAKES_PER_IP", default_value_t = 64)]
    pub max_handshakes_per_ip: u32,

    /// Messages per second one connection may send on average (bursts of ten seconds' worth).
    #[arg(long, env = "TRACKER_MAX_MESSAGES_PER_SECOND", default_value_t = 50)]
    pub max_messages_per_second: u32,

    /// Refused messages per minute after which a connection is closed (answers to unknown or
    /// expired offers do not count).
    #[arg(long, env = "TRACKER_MAX_STRIKES", default_value_t = 20)]
    pub max_strikes: u32,

    /// Most info hashes in one scrape, and segments in one hash query.
    #[arg(long, env = "TRACKER_MAX_SCRAPE_HASHES", default_value_t = 64)]
    pub max_scrape_hashes: usize,

    /// Offers a connection remembers while waiting for their answers.
    #[arg(long, env = "TRACKER_MAX_PENDING_OFFERS", default_value_t = 64)]
    pub max_pending_offers: usize,

    /// Offers one peer may relay to one receiving peer per second (more are dropped).
    #[arg(long, env = "TRACKER_MAX_OFFERS_PER_PAIR", default_value_t = 5)]
    pub max_offers_per_pair: u32,

    /// Offers one receiving peer is relayed per second from all senders (more are dropped).
    #[arg(long, env = "TRACKER_MAX_OFFERS_PER_RECEIVER", default_value_t = 20)]
    pub max_offers_per_receiver: u32,

    /// Messages queued for one connection before further ones are dropped.
    #[arg(long, env = "TRACKER_OUTGOING_QUEUE", default_value_t = 64)]
    pub outgoing_queue: usize,

    /// Peers within this many kilometres count as near (the distance tier).
    #[arg(long, env = "TRACKER_NEARBY_KM", default_value_t = 500.0)]
    pub nearby_km: f32,

    /// Candidates ranked per announce in large swarms (bounds the work per announce).
    #[arg(long, env = "TRACKER_MATCH_CANDIDATES", default_value_t = 256)]
    pub match_candidates: usize,

    /// Independent networks (distinct ASNs or /16s) that must report the same segment hash
    /// before it is accepted.
    #[arg(long, env = "TRACKER_HASH_QUORUM", default_value_t = 3)]
    pub hash_quorum: usize,

    /// Segments whose hash reports are kept per swarm.
    #[arg(long, env = "TRACKER_HASH_MAX_SEGMENTS", default_value_t = 1024)]
    pub hash_max_segments: usize,

    /// Seconds a segment's hash reports are kept.
    #[arg(long, env = "TRACKER_HASH_TTL", default_value_t = 600)]
    pub hash_ttl: u64,

    /// Redis that several replicas share swarms through (`redis://` or `rediss://`; with
    /// --redis-cluster, comma-separated URLs of Redis Cluster nodes): all replicas then behave as
    /// one tracker. Without it the tracker keeps everything in this process. See SCALING.md.
    #[arg(long, env = "TRACKER_REDIS_URL", value_name = "URL")]
    pub redis_url: Option<String>,

    /// File holding the Redis password (overrides one in the URL; a trailing newline is
    /// ignored), e.g. a mounted secret.
    #[arg(long, env = "TRACKER_REDIS_PASSWORD_FILE", value_name = "PATH")]
    pub redis_password_file: Option<PathBuf>,

    /// --redis-url names nodes of a Redis Cluster (also a single configuration endpoint).
    #[arg(long, env = "TRACKER_REDIS_CLUSTER")]
    pub redis_cluster: bool,

    /// Seconds between a replica's heartbeats; a replica silent for three is dead and its peers
    /// leave the others' view.
    #[arg(long, env = "TRACKER_REDIS_HEARTBEAT_INTERVAL", default_value_t = 2)]
    pub redis_heartbeat_interval: u64,

    /// Peers of other replicas read from Redis per announce (bounds the work in huge swarms).
    #[arg(long, env = "TRACKER_REDIS_CANDIDATES", default_value_t = 64)]
    pub redis_candidates: usize,

    /// Milliseconds a Redis round trip may take before Redis counts as lost and the replica
    /// serves its own peers alone until a heartbeat gets through again.
    #[arg(long, env = "TRACKER_REDIS_TIMEOUT_MS", default_value_t = 1000)]
    pub redis_timeout_ms: u64,

    /// Seconds to wait for connections to close after SIGTERM.
    #[arg(long, env = "TRACKER_SHUTDOWN_TIMEOUT", default_value_t = 10)]
    pub shutdown_timeout: u64,

    /// Seconds a client has to complete the TLS and HTTP handshakes.
    #[arg(long, env = "TRACKER_HANDSHAKE_TIMEOUT", default_value_t = 10)]
    pub handshake_timeout: u64,

    /// TOML file of tenants (`[[tenant]]` tables with `id`, `origins`, `secret` and optional
    /// quotas), reloaded when it changes and on SIGHUP. With it every connection needs a tenant
    /// token (`/?token=...`) and an allowed `Origin`; without it the tracker is open to every page.
    #[arg(long, env = "TRACKER_TENANTS", value_name = "PATH", global = true)]
    pub tenants: Option<PathBuf>,

    /// Log filter (tracing `EnvFilter` syntax, e.g. `info` or `tracker=debug`).
    #[arg(long, env = "TRACKER_LOG", default_value = "info")]
    pub log: String,

    /// Log format.
    #[arg(long, env = "TRACKER_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// What to do instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands: without one, the tracker serves.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Prints a token for a tenant of the --tenants file, signed with its secret.
    Token(TokenArgs),
}

/// The arguments of `tracker token`.
#[derive(Debug, Clone, clap::Args)]
pub struct TokenArgs {
    /// The tenant's id.
    #[arg(long)]
    pub tenant: String,

    /// How long the token is valid: a number with `s`, `m`, `h` or `d` (e.g. `1h`).
    #[arg(long, default_value = "1h", value_parser = parse_ttl)]
    pub ttl: Duration,

    /// Limit the token to one swarm: its info hash as 40 hex digits.
    #[arg(long, value_name = "HEX")]
    pub swarm: Option<String>,
}

/// Parses a duration such as `90s`, `15m`, `1h` or `7d`.
fn parse_ttl(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected e.g. 1h"))?;
    let seconds = match unit {
        "s" | "" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: the unit must be s, m, h or d")),
    };
    number
        .checked_mul(seconds)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{text:?}: too long"))
}

impl Config {
    /// The interval of liveness pings, `None` when they are disabled.
    pub fn ping_interval(&self) -> Option<Duration> {
        (self.ping_interval > 0).then(|| Duration::from_secs(self.ping_interval))
    }

    /// Reads flags, environment and the optional TOML file, in that order of precedence.
    pub fn load<I, T>(args: I) -> anyhow::Result<Self>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let mut command = Self::command();
        let first_pass = Self::command().ignore_errors(true).get_matches_from(&args);
        if let Some(path) = first_pass.get_one::<PathBuf>("config") {
            for (id, values) in file_defaults(path)? {
                if !command
                    .get_arguments()
                    .any(|arg| arg.get_id() == id.as_str())
                {
                    anyhow::bail!(
                        "{}: unknown setting {:?}",
                        path.display(),
                        id.replace('_', "-")
                    );
                }
                command = command.mut_arg(id, |arg| arg.default_values(values));
            }
        }
        let matches = command.try_get_matches_from(&args)?;
        Ok(Self::from_arg_matches(&matches)?)
    }

    /// Defaults for tests and embedding: every built-in default, listening on `listen`.
    pub fn with_listen(listen: SocketAddr) -> Self {
        let mut config = Self::parse_from(["tracker"]);
        config.listen = listen;
        config
    }

    /// The announce interval.
    pub fn announce_interval(&self) -> Duration {
        Duration::from_secs(self.announce_interval)
    }
}

/// The TOML file's settings as argument ids and their values as text.
fn file_defaults(path: &Path) -> anyhow::Result<Vec<(String, Vec<String>)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("invalid TOML in {}", path.display()))?;
    table
        .into_iter()
        .map(|(key, value)| {
            let values = match value {
                toml::Value::Array(items) => items.iter().map(scalar_text).collect(),
                other => vec![scalar_text(&other)],
            };
            Ok((key.replace('-', "_"), values))
        })
        .collect()
}

fn scalar_text(value: &toml::Value) -> String {
    match value {
        toml::Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_listen_on_port_8000() {
        let config = Config::load(["tracker"]).unwrap();
        assert_eq!(config.listen, "0.0.0.0:8000".parse().unwrap());
        assert_eq!(config.max_offers_per_announce, 10);
    }

    #[test]
    fn file_values_apply_and_flags_override_them() {
        let dir = std::env::temp_dir().join(format!("tracker-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("tracker.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\nmax-offers-per-announce = 5\ntrusted-proxies = [\"10.0.0.0/8\"]\n",
        )
        .unwrap();
        let path = file.to_str().unwrap();
        let config = Config::load(["tracker", "--config", path]).unwrap();
        assert_eq!(config.listen, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(config.max_offers_per_announce, 5);
        assert_eq!(
            config.trusted_proxies,
            vec!["10.0.0.0/8".parse::<IpNet>().unwrap()]
        );
        let config = Config::load([
            "tracker",
            "--config",
            path,
            "--max-offers-per-announce",
            "7",
        ])
        .unwrap();
        assert_eq!(config.max_offers_per_announce, 7);
    }

    #[test]
    fn the_token_subcommand_parses_its_ttl() {
        let config = Config::load(["tracker", "token", "--tenant", "acme", "--ttl", "2h"]).unwrap();
        let Some(Command::Token(args)) = config.command else {
            panic!("no token subcommand");
        };
        assert_eq!(
            (args.tenant.as_str(), args.ttl),
            ("acme", Duration::from_secs(7200))
        );
        assert!(Config::load(["tracker", "token", "--tenant", "a", "--ttl", "1y"]).is_err());
        assert!(Config::load(["tracker"]).unwrap().command.is_none());
    }

    #[test]
    fn unknown_file_keys_are_an_error() {
        let file = std::env::temp_dir().join(format!("tracker-bad-{}.toml", std::process::id()));
        std::fs::write(&file, "no-such-setting = 1\n").unwrap();
        let error = Config::load(["tracker", "--config", file.to_str().unwrap()]).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("unknown setting \"no-such-setting\""),
            "{error}"
        );
    }
}
