//! `--metrics-listen`: `/metrics` on its own port, and then not on the public one.

mod support;

use support::{Client, http_get, id, start};

#[tokio::test]
async fn metrics_move_to_their_own_port_and_leave_the_public_one() {
    let tracker =
        start(|config| config.metrics_listen = Some("127.0.0.1:0".parse().unwrap())).await;
    let public = tracker.local_addr();
    let metrics = tracker.metrics_addr().expect("a metrics port");
    assert_ne!(public, metrics);
    let mut client = Client::connect(public).await;
    client.announce(&id(b'S', 1), &id(b'A', 1), 0).await;

    let (status, body) = http_get(metrics, "/metrics").await;
    assert_eq!(status, 200);
    assert!(body.contains("tracker_announces_total 1"), "{body}");
    assert!(body.contains("tracker_peers 1"), "{body}");
    assert_eq!(http_get(metrics, "/healthz").await.0, 404);
    assert_eq!(http_get(public, "/metrics").await.0, 404);
    assert_eq!(http_get(public, "/healthz").await.0, 200);
    tracker.shutdown().await;
}

#[tokio::test]
async fn without_a_metrics_port_the_public_one_serves_them() {
    let tracker = start(|_| {}).await;
    assert_eq!(tracker.metrics_addr(), None);
    let (status, body) = http_get(tracker.local_addr(), "/metrics").await;
    assert_eq!(status, 200);
    assert!(body.contains("tracker_connections"), "{body}");
    tracker.shutdown().await;
}
