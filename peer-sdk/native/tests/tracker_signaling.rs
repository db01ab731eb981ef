//! Peers meet through the real tracker (in-process, real WebSockets) and open real data
//! channels; the tracker is restarted under them.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use peer_native::id20::Id20;
use peer_native::rtc::{Channel, LinkEvent, PeerLink, RtcFactory};
use peer_native::signaling::{Signaling, SignalingConfig, SignalingEvent};
use peer_native::tracker_client::{Backoff, TrackerEvent};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

const SWARM: Id20 = [0xAB; 20];

async fn start_tracker(listener: TcpListener) -> tracker::Tracker {
    let config = tracker::Config::with_listen(listener.local_addr().unwrap());
    tracker::Tracker::start_on(listener, config)
        .await
        .expect("tracker starts")
}

fn config(url: &str) -> SignalingConfig {
    let mut config = SignalingConfig::new(url);
    config.offers_per_announce = 2;
    config.backoff = Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_millis(800),
    };
    config
}

/// Waits (at most 20 s) for the next tracker event matching `wanted`, skipping others.
async fn wait_tracker(events: &mut mpsc::Receiver<SignalingEvent>, wanted: TrackerEvent) {
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(event) = events.recv().await {
            if matches!(&event, SignalingEvent::Tracker(e) if *e == wanted) {
                return;
            }
        }
        panic!("signaling ended");
    })
    .await;
    assert!(found.is_ok(), "no {wanted:?} within 20 s");
}

/// Waits for the next negotiated peer and its open data channel.
async fn wait_peer(events: &mut mpsc::Receiver<SignalingEvent>) -> (Id20, PeerLink, Channel) {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match events.recv().await.expect("signaling running") {
                SignalingEvent::Peer {
                    peer_id,
                    mut link,
                    info_hash,
                    ..
                } => {
                    assert_eq!(info_hash, SWARM);
                    if let Some(LinkEvent::Open(channel)) = link.next_event().await {
                        return (peer_id, link, channel);
                    }
                }
                SignalingEvent::Tracker(_) => {}
            }
        }
    })
    .await
    .expect("a peer connects within 20 s")
}

async fn exchange(a: &Channel, b_link: &mut PeerLink, text: &'static [u8]) {
    a.send(Bytes::from_static(text)).await.unwrap();
    match b_link.next_event().await {
        Some(LinkEvent::Message(m)) => assert_eq!(&m[..], text),
        other => panic!("expected {text:?}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_meet_through_the_tracker_and_meet_again_after_it_restarts() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let url = format!("ws://{addr}/");
    let tracker = start_tracker(listener).await;
    let factory = Arc::new(RtcFactory::loopback());

    let (a, mut a_events) = Signaling::spawn(config(&url), Arc::clone(&factory));
    wait_tracker(&mut a_events, TrackerEvent::Connected).await;
    a.join(SWARM);
    // A is alone: its announce is answered, its offers go nowhere.
    let reply = tokio::time::timeout(Duration::from_secs(10), a_events.recv()).await;
    assert!(
        matches!(
            reply,
            Ok(Some(SignalingEvent::Tracker(TrackerEvent::AnnounceReply {
                info_hash: SWARM,
                ..
            })))
        ),
        "announce reply, got {reply:?}"
    );

    let (b, mut b_events) = Signaling::spawn(config(&url), Arc::clone(&factory));
    b.join(SWARM);
    // B's offer reaches A, A answers through the tracker, B applies the answer.
    let (a_sees, mut a_link, a_channel) = wait_peer(&mut a_events).await;
    let (b_sees, mut b_link, b_channel) = wait_peer(&mut b_events).await;
    assert_eq!(a_sees, b.peer_id());
    assert_eq!(b_sees, a.peer_id());
    exchange(&a_channel, &mut b_link, b"hello from a").await;
    exchange(&b_channel, &mut a_link, b"hello from b").await;
    a_link.close().await;
    b_link.close().await;

    // Restart the tracker on the same address: both reconnect and announce again.
    tracker.shutdown().await;
    wait_tracker(&mut a_events, TrackerEvent::Disconnected).await;
    wait_tracker(&mut b_events, TrackerEvent::Disconnected).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let tracker = start_tracker(TcpListener::bind(addr).await.expect("rebind")).await;
    let (_, mut a_link, a_channel) = wait_peer(&mut a_events).await;
    let (_, mut b_link, b_channel) = wait_peer(&mut b_events).await;
    exchange(&a_channel, &mut b_link, b"after restart a").await;
    exchange(&b_channel, &mut a_link, b"after restart b").await;
    drop((a, b));
    tracker.shutdown().await;
}

/// Waits (at most 20 s) for this peer's next announce reply.
async fn wait_announce_reply(events: &mut mpsc::Receiver<SignalingEvent>) {
    let replied = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let event = events.recv().await.expect("signaling running");
            if matches!(
                event,
                SignalingEvent::Tracker(TrackerEvent::AnnounceReply { .. })
            ) {
                return;
            }
        }
    })
    .await;
    assert!(replied.is_ok(), "no announce reply within 20 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_left_alone_announces_again_within_seconds() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let tracker = start_tracker(listener).await;
    let factory = Arc::new(RtcFactory::loopback());
    // A announces first, to an empty swarm: its offers reach nobody.
    let (a, mut a_events) = Signaling::spawn(config(&url), Arc::clone(&factory));
    a.join(SWARM);
    wait_announce_reply(&mut a_events).await;
    // B joins without offers: only A's next announce can connect them, and the tracker's
    // interval (120 s) is far away.
    let mut quiet = config(&url);
    quiet.offers_per_announce = 0;
    let (b, mut b_events) = Signaling::spawn(quiet, Arc::clone(&factory));
    b.join(SWARM);
    wait_announce_reply(&mut b_events).await;
    let lost_last_peer = tokio::time::Instant::now();
    a.announce_within(peer_sdk::tracker_session::REANNOUNCE_AFTER_LOSS);
    let (b_sees, _b_link, _) = wait_peer(&mut b_events).await;
    let waited = lost_last_peer.elapsed();
    println!("announced again and connected after {waited:?}");
    assert_eq!(b_sees, a.peer_id());
    assert!(waited < Duration::from_secs(10), "took {waited:?}");
    drop((a, b));
    tracker.shutdown().await;
}
