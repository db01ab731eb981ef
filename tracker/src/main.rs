//! The `tracker` binary: loads the configuration, serves until SIGTERM or Ctrl-C, reloads GeoIP
//! databases and the tenants file on SIGHUP; `tracker token` prints a tenant token instead.

use tokio::signal::unix::{Signal, SignalKind, signal};
use tracing_subscriber::EnvFilter;
use tracker::Tracker;
use tracker::config::{Command, Config, LogFormat, TokenArgs};
use tracker::tenants::{Tenants, unix_now};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = match Config::load(std::env::args_os()) {
        Ok(config) => config,
        Err(error) => match error.downcast::<clap::Error>() {
            Ok(clap_error) => clap_error.exit(),
            Err(error) => return Err(error),
        },
    };
    if let Some(Command::Token(args)) = &config.command {
        println!("{}", mint_token(&config, args)?);
        return Ok(());
    }
    init_logging(&config)?;
    raise_open_file_limit();
    // Installed before the port opens: a signal that arrives once clients can connect is never
    // met by the default action (SIGHUP would otherwise kill the process).
    let signals = Signals::install()?;
    let tracker = Tracker::start(config).await?;
    signals.wait_for_termination(&tracker).await;
    tracker.shutdown().await;
    Ok(())
}

/// `tracker token`: a token for a tenant of the `--tenants` file.
fn mint_token(config: &Config, args: &TokenArgs) -> anyhow::Result<String> {
    let Some(path) = &config.tenants else {
        anyhow::bail!("tracker token needs --tenants (or TRACKER_TENANTS) to find the secret");
    };
    let tenants = Tenants::open(Some(path))?;
    let Some(secret) = tenants.secret(&args.tenant) else {
        anyhow::bail!("{}: no tenant {:?}", path.display(), args.tenant);
    };
    let swarm = match &args.swarm {
        None => None,
        Some(hex_text) => Some(tracker::Id20(parse_info_hash(hex_text)?)),
    };
    let expires = unix_now().saturating_add(args.ttl.as_secs());
    Ok(tracker::token::mint(
        &args.tenant,
        secret.as_bytes(),
        expires,
        swarm,
    ))
}

fn parse_info_hash(hex_text: &str) -> anyhow::Result<[u8; 20]> {
    let mut bytes = [0u8; 20];
    hex::decode_to_slice(hex_text, &mut bytes)
        .map_err(|_| anyhow::anyhow!("--swarm must be an info hash of 40 hex digits"))?;
    Ok(bytes)
}

fn init_logging(config: &Config) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&config.log)?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match config.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}

/// Every connection is an open file: lifts the soft limit (often 1024) to the hard one, as far as
/// the process may, before the default `--max-connections` is derived from it.
fn raise_open_file_limit() {
    match tracker::fd_limit::raise_to_hard() {
        Ok((before, after)) if before != after => {
            tracing::info!(?before, ?after, "raised the open-file limit");
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "cannot raise the open-file limit"),
    }
}

/// The signals the tracker acts on.
struct Signals {
    terminate: Signal,
    interrupt: Signal,
    hangup: Signal,
}

impl Signals {
    fn install() -> std::io::Result<Self> {
        Ok(Self {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    /// Reloads the GeoIP databases and tenants on SIGHUP; returns on SIGTERM or SIGINT (Ctrl-C).
    async fn wait_for_termination(mut self, tracker: &Tracker) {
        loop {
            tokio::select! {
                _ = self.terminate.recv() => return,
                _ = self.interrupt.recv() => return,
                _ = self.hangup.recv() => {
                    tracker.reload_geoip();
                    tracker.reload_tenants();
                }
            }
        }
    }
}
