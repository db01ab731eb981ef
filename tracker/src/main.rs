//! The `tracker` binary: loads the configuration, serves until SIGTERM or Ctrl-C, reloads GeoIP
//! databases on SIGHUP.

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
    let tracker = Tracker::start(config).await?;
    wait_for_termination(&tracker).await?;
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

async fn wait_for_termination(tracker: &Tracker) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = terminate.recv() => return Ok(()),
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = hangup.recv() => tracker.reload_geoip(),
        }
    }
}
