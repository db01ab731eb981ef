//! `origin`: serves an HLS folder as VOD or live, with Range, CORS and injectable faults.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use demo_player::{FaultConfig, LiveConfig, OriginConfig};
use tracing_subscriber::EnvFilter;

/// Test origin for HLS: serves a folder as VOD, or with --live as a live stream that slides a
/// window over the same segments in real time (looping the content). Supports Range requests
/// and CORS. For tests: per-path latency, bandwidth caps and failures (5xx, truncated bodies,
/// stalls), set with --faults or at run time with `POST /_control/faults`; `GET /_stats` counts
/// requests and bytes per path.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Folder to serve: a master playlist, media playlists and segments (see media/generate.sh).
    #[arg(long, env = "ORIGIN_MEDIA", value_name = "DIR")]
    media: PathBuf,

    /// Address to listen on.
    #[arg(
        long,
        env = "ORIGIN_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:8080"
    )]
    listen: String,

    /// Serve every media playlist as a live sliding window instead of VOD.
    #[arg(long, env = "ORIGIN_LIVE")]
    live: bool,

    /// Live: segments in each live playlist.
    #[arg(
        long,
        env = "ORIGIN_WINDOW",
        value_name = "SEGMENTS",
        default_value_t = 6
    )]
    window: u64,

    /// Live: how fast the stream's clock runs (2 publishes segments twice as fast as real time).
    #[arg(
        long,
        env = "ORIGIN_SPEED",
        value_name = "FACTOR",
        default_value_t = 1.0
    )]
    speed: f64,

    /// Fault rules in force from the start, as JSON: the body `POST /_control/faults` takes,
    /// e.g. '{"rules":[{"path":"/480p/*","latency_ms":200}]}'.
    #[arg(long, env = "ORIGIN_FAULTS", value_name = "JSON")]
    faults: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let faults: FaultConfig = match &args.faults {
        Some(json) => {
            serde_json::from_str(json).context("--faults is not a valid fault configuration")?
        }
        None => FaultConfig::default(),
    };
    let live = args.live.then_some(LiveConfig {
        window_segments: args.window,
        speed: args.speed,
    });
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let config = OriginConfig {
        media_dir: args.media,
        live,
        faults,
    };
    let origin = demo_player::start(listener, config).await?;
    println!("origin listening on http://{}", origin.addr());
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    origin.shutdown().await;
    Ok(())
}
