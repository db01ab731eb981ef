//! What the end-to-end tests share: the real tracker and the real origin on loopback, viewers
//! run by the real driver over real WebRTC, and the check that every delivered segment equals
//! the origin's file.
#![allow(dead_code)] // Each test binary uses its own part of this module.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use demo_player::{FaultConfig, LiveConfig, OriginConfig, RunningOrigin};
use peer_native::cdn::{CdnClient, CdnConfig};
use peer_native::rtc::RtcFactory;
use peer_native::viewer::{Delivery, ViewerConfig, ViewerHooks, ViewerSummary, run_viewer};
use peer_sdk::SegmentKey;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use url::Url;

/// Folders of the sample stream's renditions, in the order the driver numbers them (bit rate).
pub const FOLDERS: [&str; 3] = ["240p", "360p", "480p"];

/// Starts the tracker on `addr` (port 0: any).
pub async fn start_tracker(addr: SocketAddr, config: tracker::Config) -> tracker::Tracker {
    let listener = TcpListener::bind(addr).await.unwrap();
    tracker::Tracker::start_on(listener, config).await.unwrap()
}

/// The tracker's default configuration on loopback.
pub fn tracker_config() -> tracker::Config {
    tracker::Config::with_listen("127.0.0.1:0".parse().unwrap())
}

/// Starts the origin serving the sample stream live (a 6-segment window at real speed).
pub async fn start_live_origin(faults: FaultConfig) -> RunningOrigin {
    demo_player::start(
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        OriginConfig {
            media_dir: demo_player::sample_media().expect("sample media (needs ffmpeg)"),
            live: Some(LiveConfig {
                window_segments: 6,
                speed: 1.0,
            }),
            faults,
        },
    )
    .await
    .unwrap()
}

/// One running viewer.
pub struct RunningViewer {
    /// The viewer's task; its result is the final summary.
    pub task: JoinHandle<anyhow::Result<ViewerSummary>>,
    /// The viewer's running totals.
    pub progress: watch::Receiver<ViewerSummary>,
}

/// Viewers of one stream meeting at one tracker, with every delivery collected.
pub struct Audience {
    /// The master playlist.
    pub playlist: Url,
    /// The tracker's WebSocket URL.
    pub tracker: String,
    /// The folder of each rendition the playlist lists, in the driver's order.
    pub folders: Vec<&'static str>,
    factory: Arc<RtcFactory>,
    cdn: CdnClient,
    deliveries: mpsc::UnboundedSender<Delivery>,
    delivered: mpsc::UnboundedReceiver<Delivery>,
}

impl Audience {
    /// An audience of the origin's stream at the tracker listening on `tracker`.
    pub fn new(origin: &RunningOrigin, tracker: SocketAddr) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let (deliveries, delivered) = mpsc::unbounded_channel();
        Self {
            playlist: Url::parse(&origin.url("/master.m3u8")).unwrap(),
            tracker: format!("ws://{tracker}/"),
            folders: FOLDERS.to_vec(),
            factory: Arc::new(RtcFactory::loopback()),
            cdn: CdnClient::new(CdnConfig::default()).unwrap(),
            deliveries,
            delivered,
        }
    }

    /// A viewer configuration with the core's defaults (integrity required) and its own seed.
    pub fn config(&self, seed: u64, duration: Duration) -> ViewerConfig {
        let mut config = ViewerConfig::new(self.playlist.clone(), self.tracker.clone(), duration);
        config.engine.seed = seed;
        config.offers_per_announce = 3;
        config
    }

    /// Starts a viewer.
    pub fn spawn(&self, config: ViewerConfig) -> RunningViewer {
        let (progress_tx, progress) = watch::channel(ViewerSummary::default());
        let hooks = ViewerHooks {
            deliveries: Some(self.deliveries.clone()),
            progress: Some(progress_tx),
        };
        let task = tokio::spawn(run_viewer(
            config,
            Arc::clone(&self.factory),
            self.cdn.clone(),
            hooks,
        ));
        RunningViewer { task, progress }
    }

    /// Asserts that every segment delivered so far equals the origin's file; returns how
    /// many were checked. The live origin loops the files: segment `seq` is file `seq % count`.
    pub fn assert_delivered_identical_to_origin(&mut self) -> usize {
        let mut by_key: HashMap<SegmentKey, Vec<Arc<[u8]>>> = HashMap::new();
        while let Ok((key, data)) = self.delivered.try_recv() {
            by_key.entry(key).or_default().push(data);
        }
        assert_identical_to_origin(&by_key, &self.folders)
    }
}

/// Waits for every viewer's summary, printing them.
pub async fn finish(viewers: Vec<RunningViewer>) -> Vec<ViewerSummary> {
    let mut summaries = Vec::new();
    for viewer in viewers {
        summaries.push(viewer.task.await.unwrap().unwrap());
    }
    println!("{}", serde_json::to_string_pretty(&summaries).unwrap());
    summaries
}

fn assert_identical_to_origin(
    delivered: &HashMap<SegmentKey, Vec<Arc<[u8]>>>,
    folders: &[&str],
) -> usize {
    let media_dir = demo_player::sample_media().unwrap();
    let count = std::fs::read_dir(media_dir.join(FOLDERS[0]))
        .unwrap()
        .filter(|entry| {
            entry.as_ref().unwrap().path().extension() == Some(std::ffi::OsStr::new("ts"))
        })
        .count() as u64;
    let mut checked = 0;
    for (key, copies) in delivered {
        let path = media_dir
            .join(folders[usize::from(key.rendition)])
            .join(format!("segment_{:03}.ts", key.seq % count));
        let file = std::fs::read(&path).unwrap();
        for data in copies {
            assert!(
                data[..] == file[..],
                "{key:?} differs from {}",
                path.display()
            );
            checked += 1;
        }
    }
    checked
}

/// Share of the bytes that crossed data channels.
pub fn offload(summaries: &[ViewerSummary]) -> f64 {
    let peers: u64 = summaries.iter().map(|s| s.bytes_from_peers).sum();
    let cdn: u64 = summaries.iter().map(|s| s.bytes_from_cdn).sum();
    peers as f64 / (peers + cdn).max(1) as f64
}

/// Reads a counter from the tracker's `/metrics` (0 when absent), e.g.
/// `tracker_hash_reports_total{outcome="accepted"}`.
pub async fn tracker_metric(tracker: SocketAddr, name_and_labels: &str) -> f64 {
    let cdn = CdnClient::new(CdnConfig::default()).unwrap();
    let body = cdn.get(&format!("http://{tracker}/metrics")).await.unwrap();
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|line| line.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Polls `condition` on a viewer's progress until it holds or `deadline` passes.
pub async fn wait_for(
    progress: &mut watch::Receiver<ViewerSummary>,
    deadline: Duration,
    condition: impl Fn(&ViewerSummary) -> bool,
) -> bool {
    tokio::time::timeout(deadline, progress.wait_for(|s| condition(s)))
        .await
        .is_ok_and(|r| r.is_ok())
}
