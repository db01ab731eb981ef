//! Viewers on one live stream, end to end on loopback: the real tracker, the real origin, real
//! WebRTC, the real core with integrity checking on (trusted hashes from the origin's hash
//! lists). The scenarios run one after another (they share two cores; timing is part of what
//! they check), each about half a minute of real time.

/// The tracker tests' real `redis-server` helper, shared rather than copied (its Redis Cluster
/// half is used by the tracker's tests only).
#[allow(dead_code)]
#[path = "../../../tracker/tests/support/redis.rs"]
mod redis;
mod support;

use std::time::Duration;

use demo_player::{FaultConfig, RunningOrigin};
use peer_native::cdn::{CdnClient, CdnConfig};
use support::{
    Audience, finish, offload, start_live_origin, start_tracker, tracker_config, wait_for,
};
use tokio::sync::Mutex;

/// One scenario at a time.
static SERIAL: Mutex<()> = Mutex::const_new(());

const STAGGER: Duration = Duration::from_millis(500);

/// Requests for segments (`.ts`) the origin has answered.
fn segment_requests(origin: &RunningOrigin) -> u64 {
    origin
        .stats()
        .paths
        .iter()
        .filter(|(path, _)| path.ends_with(".ts"))
        .map(|(_, counts)| counts.requests)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_viewers_share_most_bytes_and_deliver_the_origins_bytes() {
    let _serial = SERIAL.lock().await;
    let tracker = start_tracker("127.0.0.1:0".parse().unwrap(), tracker_config()).await;
    let origin = start_live_origin(FaultConfig::default()).await;
    let mut audience = Audience::new(&origin, tracker.local_addr());
    let mut viewers = Vec::new();
    for index in 0..5u64 {
        let config = audience.config(index + 1, Duration::from_secs(40) - STAGGER * index as u32);
        viewers.push(audience.spawn(config));
        tokio::time::sleep(STAGGER).await;
    }
    let summaries = finish(viewers).await;
    let origin_segments = segment_requests(&origin);
    let copies = audience.assert_delivered_identical_to_origin();
    let played: u64 = summaries.iter().map(|s| s.segments_delivered).sum();
    let offload = offload(&summaries);
    println!(
        "offload {:.1}%, origin segment requests {origin_segments}, segments played {played}",
        offload * 100.0
    );
    assert_eq!(copies as u64, played);
    assert!(played >= 5 * 10, "each viewer played: {played} segments");
    assert!(offload >= 0.5, "offload {:.1}% below 50%", offload * 100.0);
    // Viewers that only used the CDN would have asked it for every segment they played.
    assert!(
        origin_segments < played,
        "origin answered {origin_segments} segment requests for {played} segments played"
    );
    for summary in &summaries {
        assert_eq!(summary.integrity_failures, 0, "{summary:?}");
        assert_eq!(summary.stalls, 0, "{summary:?}");
    }
    origin.shutdown().await;
    tracker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_killed_mid_segment_is_replaced_by_a_range_request_without_a_stall() {
    let _serial = SERIAL.lock().await;
    let tracker = start_tracker("127.0.0.1:0".parse().unwrap(), tracker_config()).await;
    let origin = start_live_origin(FaultConfig::default()).await;
    let mut audience = Audience::new(&origin, tracker.local_addr());
    // One rendition (no ABR), and a slow uploader: each segment takes it longer than it
    // plays, so it is always in the middle of one.
    audience.playlist = audience.playlist.join("480p/index.m3u8").unwrap();
    audience.folders = vec!["480p"];
    let mut slow = audience.config(1, Duration::from_secs(60));
    slow.engine.upload_limit = Some(40_000);
    let slow = audience.spawn(slow);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut receiver = audience.spawn(audience.config(2, Duration::from_secs(25)));
    let got_peer_bytes = wait_for(&mut receiver.progress, Duration::from_secs(15), |s| {
        s.bytes_from_peers > 50_000
    })
    .await;
    assert!(
        got_peer_bytes,
        "the receiver never got bytes from the slow peer"
    );
    // Killed in the middle of a transfer: its data channel closes with a partial segment.
    slow.task.abort();
    let at_kill = receiver.progress.borrow().clone();
    let summaries = finish(vec![receiver]).await;
    let receiver = &summaries[0];
    audience.assert_delivered_identical_to_origin();
    assert!(
        receiver.segments_mixed > at_kill.segments_mixed
            && receiver.cdn_range_requests > at_kill.cdn_range_requests,
        "the partly received segment was completed by a Range request: {receiver:?}"
    );
    assert_eq!(receiver.stalls, 0, "{receiver:?}");
    assert!(receiver.segments_delivered >= 8, "{receiver:?}");
    origin.shutdown().await;
    tracker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_sending_corrupt_data_is_banned_and_no_corrupt_byte_is_delivered() {
    let _serial = SERIAL.lock().await;
    let tracker = start_tracker("127.0.0.1:0".parse().unwrap(), tracker_config()).await;
    let origin = start_live_origin(FaultConfig::default()).await;
    let mut audience = Audience::new(&origin, tracker.local_addr());
    let mut liar = audience.config(1, Duration::from_secs(30));
    liar.corrupt_uploads_for_testing = true;
    let liar = audience.spawn(liar);
    // The liar's own deliveries are honest (it verifies what it receives); drop them.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut honest = Vec::new();
    for index in 0..2u64 {
        honest.push(audience.spawn(audience.config(index + 2, Duration::from_secs(25))));
        tokio::time::sleep(STAGGER).await;
    }
    let honest = finish(honest).await;
    let liar = finish(vec![liar]).await;
    audience.assert_delivered_identical_to_origin();
    let banned: u64 = honest.iter().map(|s| s.peers_banned).sum();
    let failures: u64 = honest.iter().map(|s| s.integrity_failures).sum();
    assert!(banned >= 1, "the liar was banned");
    assert!(failures >= 1, "its data failed verification");
    assert!(liar[0].bytes_uploaded > 0, "the liar did upload");
    for summary in &honest {
        assert_eq!(summary.stalls, 0, "{summary:?}");
        assert!(summary.segments_delivered >= 8, "{summary:?}");
    }
    origin.shutdown().await;
    tracker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_keep_playing_while_the_origin_fails() {
    let _serial = SERIAL.lock().await;
    let tracker = start_tracker("127.0.0.1:0".parse().unwrap(), tracker_config()).await;
    let origin = start_live_origin(FaultConfig::default()).await;
    let mut audience = Audience::new(&origin, tracker.local_addr());
    let mut viewers = Vec::new();
    for index in 0..3u64 {
        let config = audience.config(index + 1, Duration::from_secs(35) - STAGGER * index as u32);
        viewers.push(audience.spawn(config));
        tokio::time::sleep(STAGGER).await;
    }
    tokio::time::sleep(Duration::from_secs(8)).await;
    // Segment requests now fail: 503s, then bodies cut short.
    let faults: FaultConfig = serde_json::from_str(
        r#"{"rules":[
            {"path":"*.ts","failure":{"kind":"status","status":503},"times":12},
            {"path":"*.ts","failure":{"kind":"truncate","after_bytes":2000},"times":12}
        ]}"#,
    )
    .unwrap();
    origin.set_faults(faults).unwrap();
    let summaries = finish(viewers).await;
    let cdn = CdnClient::new(CdnConfig::default()).unwrap();
    let left: FaultConfig =
        serde_json::from_slice(&cdn.get(&origin.url("/_control/faults")).await.unwrap()).unwrap();
    let unused: u64 = left.rules.iter().filter_map(|r| r.times).sum();
    println!("fault uses left: {unused} of 24");
    assert!(unused < 24, "the origin failed some segment requests");
    audience.assert_delivered_identical_to_origin();
    assert!(summaries.iter().any(|s| s.bytes_from_peers > 0));
    for summary in &summaries {
        assert_eq!(summary.stalls, 0, "{summary:?}");
        assert!(summary.segments_delivered >= 12, "{summary:?}");
    }
    origin.shutdown().await;
    tracker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_reconnect_to_a_restarted_tracker_and_keep_sharing() {
    let _serial = SERIAL.lock().await;
    let tracker = start_tracker("127.0.0.1:0".parse().unwrap(), tracker_config()).await;
    let addr = tracker.local_addr();
    let origin = start_live_origin(FaultConfig::default()).await;
    let mut audience = Audience::new(&origin, addr);
    let mut viewers = Vec::new();
    for index in 0..3u64 {
        let config = audience.config(index + 1, Duration::from_secs(35) - STAGGER * index as u32);
        viewers.push(audience.spawn(config));
        tokio::time::sleep(STAGGER).await;
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    tracker.shutdown().await;
    let shared_before: u64 = viewers
        .iter()
        .map(|v| v.progress.borrow().bytes_from_peers)
        .sum();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let tracker = start_tracker(addr, tracker_config()).await;
    // A newcomer meets the others only if they announced again to the new tracker.
    let mut newcomer = audience.spawn(audience.config(9, Duration::from_secs(20)));
    let met = wait_for(&mut newcomer.progress, Duration::from_secs(20), |s| {
        s.peers_opened > 0
    })
    .await;
    viewers.push(newcomer);
    let summaries = finish(viewers).await;
    assert!(met, "the newcomer met the reconnected viewers");
    let shared_after: u64 = summaries[..3].iter().map(|s| s.bytes_from_peers).sum();
    assert!(
        shared_after > shared_before,
        "sharing went on after the restart: {shared_before} then {shared_after} bytes"
    );
    audience.assert_delivered_identical_to_origin();
    for summary in &summaries {
        assert_eq!(summary.stalls, 0, "{summary:?}");
    }
    origin.shutdown().await;
    tracker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_on_two_tracker_replicas_share_through_redis() {
    let _serial = SERIAL.lock().await;
    let Some(redis) = redis::RedisServer::start().await else {
        return;
    };
    let mut config = tracker_config();
    config.redis_url = Some(redis.url());
    let replicas = [
        start_tracker("127.0.0.1:0".parse().unwrap(), config.clone()).await,
        start_tracker("127.0.0.1:0".parse().unwrap(), config).await,
    ];
    let origin = start_live_origin(FaultConfig::default()).await;
    let mut audience = Audience::new(&origin, replicas[0].local_addr());
    let mut viewers = Vec::new();
    for index in 0..4u64 {
        let mut config =
            audience.config(index + 1, Duration::from_secs(30) - STAGGER * index as u32);
        // Viewers alternate between the replicas, as a load balancer spreads them.
        config.tracker = format!("ws://{}/", replicas[index as usize % 2].local_addr());
        viewers.push(audience.spawn(config));
        tokio::time::sleep(STAGGER).await;
    }
    let summaries = finish(viewers).await;
    let copies = audience.assert_delivered_identical_to_origin();
    let played: u64 = summaries.iter().map(|s| s.segments_delivered).sum();
    let offload = offload(&summaries);
    println!("offload across replicas {:.1}%", offload * 100.0);
    assert_eq!(copies as u64, played);
    assert!(offload >= 0.4, "offload {:.1}% below 40%", offload * 100.0);
    for summary in &summaries {
        assert_eq!(summary.integrity_failures, 0, "{summary:?}");
        assert_eq!(summary.stalls, 0, "{summary:?}");
    }
    for replica in &replicas {
        let crossed = "tracker_relayed_across_replicas_total{kind=\"offer\"}";
        let offers = support::tracker_metric(replica.local_addr(), crossed).await;
        assert!(
            offers >= 1.0,
            "offers reached {} from the other replica",
            replica.local_addr()
        );
    }
    origin.shutdown().await;
    for replica in replicas {
        replica.shutdown().await;
    }
}
