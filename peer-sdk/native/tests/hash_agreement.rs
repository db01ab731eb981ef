//! A live stream that publishes no hash list, end to end: the real tracker, the real origin
//! (answering 404 for every hash list), real WebRTC, integrity on. Viewers on different /16
//! networks report to the tracker the SHA-256 of each segment they fetched from the CDN; once
//! `hash-quorum` networks agree, the tracker answers hash queries, and the viewers deliver
//! segments from peers only after their bytes matched that hash.

mod support;

use std::net::IpAddr;
use std::time::Duration;

use demo_player::{FaultConfig, RunningOrigin};
use support::{
    Audience, finish, offload, start_live_origin, start_tracker, tracker_config, tracker_metric,
};

/// Viewers, each on its own /16 network (127.N.0.1).
const VIEWERS: u8 = 6;
const STAGGER: Duration = Duration::from_millis(500);

/// Requests the origin answered for paths ending in `suffix`.
fn requests_for(origin: &RunningOrigin, suffix: &str) -> u64 {
    origin
        .stats()
        .paths
        .iter()
        .filter(|(path, _)| path.ends_with(suffix))
        .map(|(_, counts)| counts.requests)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agreed_tracker_hashes_let_peers_share_a_stream_without_a_hash_list() {
    let config = tracker_config();
    let quorum = config.hash_quorum;
    assert!(
        usize::from(VIEWERS) > quorum,
        "more networks than the quorum"
    );
    let tracker = start_tracker("127.0.0.1:0".parse().unwrap(), config).await;
    let no_hash_lists: FaultConfig = serde_json::from_str(
        r#"{"rules":[{"path":"*.hashes","failure":{"kind":"status","status":404}}]}"#,
    )
    .unwrap();
    let origin = start_live_origin(no_hash_lists).await;
    let mut audience = Audience::new(&origin, tracker.local_addr());
    // One rendition: every viewer is in one swarm, where the hashes are agreed.
    audience.playlist = audience.playlist.join("480p/index.m3u8").unwrap();
    audience.folders = vec!["480p"];
    let mut viewers = Vec::new();
    for index in 0..VIEWERS {
        let watch = Duration::from_secs(45) - STAGGER * u32::from(index);
        let mut config = audience.config(u64::from(index) + 1, watch);
        config.source = Some(IpAddr::from([127, index + 1, 0, 1]));
        viewers.push(audience.spawn(config));
        tokio::time::sleep(STAGGER).await;
    }
    let summaries = finish(viewers).await;
    let addr = tracker.local_addr();
    let metric = |outcome: &str| {
        let name = format!("tracker_hash_reports_total{{outcome=\"{outcome}\"}}");
        async move { tracker_metric(addr, &name).await }
    };
    let (accepted, counted, conflicts) = (
        metric("accepted").await,
        metric("counted").await,
        metric("conflict").await,
    );
    let copies = audience.assert_delivered_identical_to_origin() as u64;
    let played: u64 = summaries.iter().map(|s| s.segments_delivered).sum();
    let with_peer_bytes: u64 = summaries
        .iter()
        .map(|s| s.segments_from_peers + s.segments_mixed)
        .sum();
    let tracker_hashes: u64 = summaries.iter().map(|s| s.tracker_hashes).sum();
    let hash_timeouts: u64 = summaries.iter().map(|s| s.hash_timeouts).sum();
    let offload = offload(&summaries);
    println!(
        "bytes from peers {:.1}% (including those dropped at {hash_timeouts} hash timeouts), \
         segments played {played}, with peer bytes {with_peer_bytes} (each verified by a \
         tracker hash), tracker hashes answered {tracker_hashes}, hash reports: accepted \
         {accepted}, counted {counted}, conflicts {conflicts} (quorum {quorum})",
        offload * 100.0
    );
    assert!(
        requests_for(&origin, ".hashes") > 0,
        "viewers looked for hash lists"
    );
    assert_eq!(copies, played, "every delivered segment was checked");
    assert!(
        played >= u64::from(VIEWERS) * 10,
        "played {played} segments"
    );
    assert!(accepted >= 5.0, "the tracker accepted {accepted} hashes");
    assert_eq!(conflicts, 0.0, "honest viewers agree");
    assert!(tracker_hashes > 0, "the tracker answered hash queries");
    assert!(
        with_peer_bytes * 10 >= played,
        "only {with_peer_bytes} of {played} segments came from peers"
    );
    assert!(offload >= 0.2, "offload {:.1}% below 20%", offload * 100.0);
    for summary in &summaries {
        assert_eq!(summary.integrity_failures, 0, "{summary:?}");
        assert_eq!(summary.stalls, 0, "{summary:?}");
    }
    origin.shutdown().await;
    tracker.shutdown().await;
}
