//! The `virtual-viewer` binary as the README runs it: several viewers in one process against the
//! real tracker and the real live origin, the final summary as JSON on stdout. Trusted hashes
//! come from one list given with `--hash-list` (the playlists' sidecars answer 404), so peer
//! bytes can only be delivered if the binary read that list.

mod support;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use demo_player::{FaultConfig, LiveConfig, OriginConfig};
use peer_sdk::integrity::{HashList, SegmentHash, sha256};
use serde_json::Value;
use support::{start_tracker, tracker_config};
use tokio::net::TcpListener;

/// A media folder with the sample's 480p rendition and, at its root, `all.hashes` naming every
/// segment as `480p/segment_NNN.ts`.
fn media_with_root_hash_list() -> PathBuf {
    let sample = demo_player::sample_media().expect("sample media (needs ffmpeg)");
    let dir = std::env::temp_dir().join(format!("virtual-viewer-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("480p")).unwrap();
    let mut list = HashList::default();
    let mut uris = Vec::new();
    for entry in std::fs::read_dir(sample.join("480p")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(dir.join("480p").join(&name), &bytes).unwrap();
        if name.ends_with(".ts") {
            let uri = format!("480p/{name}");
            let hash = SegmentHash {
                sha256: sha256(&bytes),
                size: bytes.len() as u64,
            };
            list.insert(uri.clone(), hash);
            uris.push(uri);
        }
    }
    std::fs::write(
        dir.join("all.hashes"),
        list.render(uris.iter().map(String::as_str)),
    )
    .unwrap();
    dir
}

fn number(summary: &Value, key: &str) -> f64 {
    summary[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {summary}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_viewers_in_one_process_share_with_hashes_from_a_given_list() {
    let media = media_with_root_hash_list();
    let faults: FaultConfig = serde_json::from_str(
        r#"{"rules":[{"path":"*.m3u8.hashes","failure":{"kind":"status","status":404}}]}"#,
    )
    .unwrap();
    let origin = demo_player::start(
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        OriginConfig {
            media_dir: media.clone(),
            live: Some(LiveConfig {
                window_segments: 6,
                speed: 1.0,
            }),
            faults,
        },
    )
    .await
    .unwrap();
    let tracker = start_tracker("127.0.0.1:0".parse().unwrap(), tracker_config()).await;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_virtual-viewer"))
        .args(["--tracker", &format!("ws://{}/", tracker.local_addr())])
        .args(["--viewers", "3", "--duration", "16", "--ramp", "1"])
        .args(["--stats-every", "5", "--json"])
        .args(["--hash-list", &origin.url("/all.hashes")])
        .arg(origin.url("/480p/index.m3u8"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), output)
        .await
        .expect("virtual-viewer ends by itself")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "virtual-viewer failed: {stderr}");
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    println!("{summary:#}");
    assert_eq!(summary["viewers"], 3);
    assert_eq!(summary["per_viewer"].as_array().unwrap().len(), 3);
    assert!(
        stderr.contains("virtual-viewer:"),
        "periodic stats: {stderr}"
    );
    assert_eq!(number(&summary, "stalls"), 0.0);
    assert_eq!(number(&summary, "integrity_failures"), 0.0);
    assert!(
        number(&summary, "bytes_from_peers") > 0.0,
        "peer data verified against --hash-list"
    );
    for viewer in summary["per_viewer"].as_array().unwrap() {
        assert!(number(viewer, "segments_delivered") >= 6.0, "{viewer}");
    }
    for key in [
        "offload",
        "startup_seconds_p50",
        "announce_to_channel_seconds_p50",
        "announce_to_channel_seconds_p99",
        "cpu_seconds",
        "cpu_cores_per_viewer",
        "peak_rss_mib",
        "peak_rss_mib_per_viewer",
    ] {
        number(&summary, key);
    }
    origin.shutdown().await;
    tracker.shutdown().await;
    let _ = std::fs::remove_dir_all(&media);
}
