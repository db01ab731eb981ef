//! `virtual-viewer`: headless viewers that play an HLS stream in real time over the peer SDK,
//! print periodic stats and a final summary.

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use peer_native::cdn::{CdnClient, CdnConfig};
use peer_native::rtc::RtcFactory;
use peer_native::viewer::{ViewerConfig, ViewerHooks, ViewerSummary, run_viewer};
use peer_sdk::IntegrityMode;
use serde::Serialize;
use url::Url;

/// Plays a stream headlessly with N peer-assisted viewers in one process.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The tracker's WebSocket URL, e.g. ws://127.0.0.1:8000/.
    #[arg(long, env = "VIRTUAL_VIEWER_TRACKER")]
    tracker: String,
    /// How many viewers to run.
    #[arg(long, env = "VIRTUAL_VIEWER_VIEWERS", default_value_t = 1)]
    viewers: usize,
    /// How long each viewer watches, in seconds.
    #[arg(long, env = "VIRTUAL_VIEWER_DURATION", default_value_t = 60)]
    duration: u64,
    /// Print the final summary as JSON (one object) instead of text.
    #[arg(long)]
    json: bool,
    /// Offers sent with each announce.
    #[arg(long, env = "VIRTUAL_VIEWER_OFFERS", default_value_t = 5)]
    offers: usize,
    /// Deliver peer data without verification (only while no hash source is wired).
    #[arg(long, env = "VIRTUAL_VIEWER_NO_INTEGRITY")]
    no_integrity: bool,
    /// Seconds between periodic stats lines (0: none).
    #[arg(long, env = "VIRTUAL_VIEWER_STATS_EVERY", default_value_t = 10)]
    stats_every: u64,
    /// The master playlist URL.
    playlist: Url,
}

/// The final summary.
#[derive(Debug, Serialize)]
struct Summary {
    viewers: usize,
    bytes_from_cdn: u64,
    bytes_from_peers: u64,
    bytes_uploaded: u64,
    offload: f64,
    stalls: u64,
    stall_seconds: f64,
    startup_seconds_p50: Option<f64>,
    integrity_failures: u64,
    per_viewer: Vec<ViewerSummary>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let factory = Arc::new(RtcFactory::loopback());
    let cdn = CdnClient::new(CdnConfig::default())?;
    let mut tasks = Vec::with_capacity(args.viewers);
    let mut progress = Vec::with_capacity(args.viewers);
    for index in 0..args.viewers {
        let mut engine = peer_sdk::Config {
            seed: index as u64 + 1,
            ..peer_sdk::Config::default()
        };
        if args.no_integrity {
            engine.integrity = IntegrityMode::Off;
        }
        let config = ViewerConfig {
            playlist: args.playlist.clone(),
            tracker: args.tracker.clone(),
            duration: Duration::from_secs(args.duration),
            engine,
            offers_per_announce: args.offers,
        };
        let (progress_tx, progress_rx) = tokio::sync::watch::channel(ViewerSummary::default());
        progress.push(progress_rx);
        let hooks = ViewerHooks {
            deliveries: None,
            progress: Some(progress_tx),
        };
        tasks.push(tokio::spawn(run_viewer(
            config,
            Arc::clone(&factory),
            cdn.clone(),
            hooks,
        )));
    }
    let ticker = (args.stats_every > 0).then(|| {
        let every = Duration::from_secs(args.stats_every);
        tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(every).await;
                let now: Vec<ViewerSummary> =
                    progress.iter().map(|p| p.borrow().clone()).collect();
                let totals = summarize(now);
                eprintln!(
                    "virtual-viewer: {:>4.0} s | CDN {} B | peers {} B | offload {:.1}% | stalls {} | peers connected {}",
                    started.elapsed().as_secs_f64(),
                    totals.bytes_from_cdn,
                    totals.bytes_from_peers,
                    totals.offload * 100.0,
                    totals.stalls,
                    totals.per_viewer.iter().map(|v| v.peers).sum::<usize>(),
                );
            }
        })
    });
    let mut per_viewer = Vec::with_capacity(tasks.len());
    for task in tasks {
        per_viewer.push(task.await??);
    }
    if let Some(ticker) = ticker {
        ticker.abort();
    }
    let summary = summarize(per_viewer);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "viewers {} | CDN {} B | peers {} B | uploaded {} B | offload {:.1}% | stalls {} ({:.1} s) | startup p50 {:?} s | integrity failures {}",
            summary.viewers,
            summary.bytes_from_cdn,
            summary.bytes_from_peers,
            summary.bytes_uploaded,
            summary.offload * 100.0,
            summary.stalls,
            summary.stall_seconds,
            summary.startup_seconds_p50,
            summary.integrity_failures
        );
    }
    Ok(())
}

fn summarize(per_viewer: Vec<ViewerSummary>) -> Summary {
    let sum = |f: fn(&ViewerSummary) -> u64| per_viewer.iter().map(f).sum::<u64>();
    let bytes_from_cdn = sum(|v| v.bytes_from_cdn);
    let bytes_from_peers = sum(|v| v.bytes_from_peers);
    let total = bytes_from_cdn + bytes_from_peers;
    let mut startups: Vec<f64> = per_viewer
        .iter()
        .filter_map(|v| v.startup_seconds)
        .collect();
    startups.sort_by(f64::total_cmp);
    Summary {
        viewers: per_viewer.len(),
        bytes_from_cdn,
        bytes_from_peers,
        bytes_uploaded: sum(|v| v.bytes_uploaded),
        offload: if total == 0 {
            0.0
        } else {
            bytes_from_peers as f64 / total as f64
        },
        stalls: sum(|v| v.stalls),
        stall_seconds: per_viewer.iter().map(|v| v.stall_seconds).sum(),
        startup_seconds_p50: startups.get(startups.len() / 2).copied(),
        integrity_failures: sum(|v| v.integrity_failures),
        per_viewer,
    }
}
