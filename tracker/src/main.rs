//! The `tracker` binary: loads the configuration, serves until SIGTERM or Ctrl-C, reloads GeoIP
//! databases on SIGHUP.

use tokio::signal::unix::{Signal, SignalKind, signal};
use tracing_subscriber::EnvFilter;
use tracker::Tracker;
use tracker::config::{Config, LogFormat};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = match Config::load(std::env::args_os()) {
        Ok(config) => config,
        Err(error) => match error.downcast::<clap::Error>() {
            Ok(clap_error) => clap_error.exit(),
            Err(error) => return Err(error),
        },
    };
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

    /// Reloads the GeoIP databases on SIGHUP; returns on SIGTERM or SIGINT (Ctrl-C).
    async fn wait_for_termination(mut self, tracker: &Tracker) {
        loop {
            tokio::select! {
                _ = self.terminate.recv() => return,
                _ = self.interrupt.recv() => return,
                _ = self.hangup.recv() => tracker.reload_geoip(),
            }
        }
    }
}
