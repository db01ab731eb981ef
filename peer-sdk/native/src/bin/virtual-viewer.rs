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
    /// Deliver peer data without verification (by default every peer byte is checked against
    /// the stream's hash lists).
    #[arg(long, env = "VIRTUAL_VIEWER_NO_INTEGRITY")]
    no_integrity: bool,
    /// Take trusted hashes from this hash list instead of the sidecar next to each media
    /// playlist. A segment's entry is the one naming its URI as the playlist writes it, else the
    /// one whose URI, resolved against the list's URL, is the segment's URL without query.
    #[arg(long, env = "VIRTUAL_VIEWER_HASH_LIST", value_name = "URL")]
    hash_list: Option<Url>,
    /// TEST ONLY: play a malicious peer that flips every payload byte of the segment data it
    /// uploads (to test other peers' integrity checks). Its own playback is unaffected.
    #[arg(long, env = "VIRTUAL_VIEWER_CORRUPT_UPLOADS")]
    corrupt_uploads: bool,
    /// Seconds between periodic stats lines (0: none).
    #[arg(long, env = "VIRTUAL_VIEWER_STATS_EVERY", default_value_t = 10)]
    stats_every: u64,
    /// Spread the viewers' starts evenly over this many seconds (0: all at once). Each viewer
    /// still watches for --duration seconds.
    #[arg(long, env = "VIRTUAL_VIEWER_RAMP", default_value_t = 0.0)]
    ramp: f64,
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
    /// Seconds from a viewer's first announce to its first open data channel (viewers that
    /// opened one), median and 99th percentile.
    announce_to_channel_seconds_p50: Option<f64>,
    announce_to_channel_seconds_p99: Option<f64>,
    /// Process CPU time (user + system) over the run, seconds, and per viewer per second of
    /// run time (1.0 = one core); `None` where `/proc` is not available.
    cpu_seconds: Option<f64>,
    cpu_cores_per_viewer: Option<f64>,
    /// Peak resident memory of the process and its share per viewer, MiB.
    peak_rss_mib: Option<f64>,
    peak_rss_mib_per_viewer: Option<f64>,
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
    let run_started = std::time::Instant::now();
    let cpu_before = cpu_seconds();
    let ramp_step = Duration::from_secs_f64(args.ramp.max(0.0) / args.viewers.max(1) as f64);
    for index in 0..args.viewers {
        if index > 0 && !ramp_step.is_zero() {
            tokio::time::sleep(ramp_step).await;
        }
        let mut engine = peer_sdk::Config {
            seed: index as u64 + 1,
            ..peer_sdk::Config::default()
        };
        if args.no_integrity {
            engine.integrity = IntegrityMode::Off;
        }
        let mut config = ViewerConfig::new(
            args.playlist.clone(),
            args.tracker.clone(),
            Duration::from_secs(args.duration),
        );
        config.engine = engine;
        config.offers_per_announce = args.offers;
        config.hash_list = args.hash_list.clone();
        config.corrupt_uploads_for_testing = args.corrupt_uploads;
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
    let mut summary = summarize(per_viewer);
    let wall = run_started.elapsed().as_secs_f64();
    let viewers = summary.viewers.max(1) as f64;
    if let (Some(before), Some(after)) = (cpu_before, cpu_seconds()) {
        summary.cpu_seconds = Some(after - before);
        summary.cpu_cores_per_viewer = Some((after - before) / wall / viewers);
    }
    summary.peak_rss_mib = peak_rss_mib();
    summary.peak_rss_mib_per_viewer = summary.peak_rss_mib.map(|m| m / viewers);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "viewers {} | CDN {} B | peers {} B | uploaded {} B | offload {:.1}% | stalls {} ({:.1} s) | startup p50 {:?} s | integrity failures {} | announce to channel p50 {:?} s p99 {:?} s | CPU {:?} s | peak RSS {:?} MiB",
            summary.viewers,
            summary.bytes_from_cdn,
            summary.bytes_from_peers,
            summary.bytes_uploaded,
            summary.offload * 100.0,
            summary.stalls,
            summary.stall_seconds,
            summary.startup_seconds_p50,
            summary.integrity_failures,
            summary.announce_to_channel_seconds_p50,
            summary.announce_to_channel_seconds_p99,
            summary.cpu_seconds,
            summary.peak_rss_mib,
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
    let mut channel_waits: Vec<f64> = per_viewer
        .iter()
        .filter_map(|v| v.announce_to_channel_seconds)
        .collect();
    channel_waits.sort_by(f64::total_cmp);
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
        announce_to_channel_seconds_p50: percentile(&channel_waits, 0.50),
        announce_to_channel_seconds_p99: percentile(&channel_waits, 0.99),
        cpu_seconds: None,
        cpu_cores_per_viewer: None,
        peak_rss_mib: None,
        peak_rss_mib_per_viewer: None,
        per_viewer,
    }
}

/// The `q` quantile of sorted values (nearest rank).
fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let rank = ((q * sorted.len() as f64).ceil() as usize).saturating_sub(1);
    sorted.get(rank.min(last)).copied()
}

/// CPU time (user + system) this process used so far, from `/proc/self/stat` (Linux).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // The kernel's USER_HZ is 100 on every Linux platform Rust supports.
    Some((utime + stime) / 100.0)
}

/// Peak resident set size of this process, MiB, from `/proc/self/status` (Linux).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
