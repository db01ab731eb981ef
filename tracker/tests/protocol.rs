//! The WebTorrent protocol over real WebSockets against an in-process tracker.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};
use support::{Client, answer, id, metric, start};

#[tokio::test]
async fn offers_reach_distinct_peers_and_answers_return_to_the_offerer() {
    let tracker = start(|_| {}).await;
    let addr = tracker.local_addr();
    let swarm = id(b'S', 1);
    let mut receivers = Vec::new();
    for n in 0..4 {
        let mut client = Client::connect(addr).await;
        let reply = client.announce(&swarm, &id(b'R', n), 0).await;
        assert_eq!(reply["action"], "announce");
        receivers.push(client);
    }
    let mut offerer = Client::connect(addr).await;
    let offerer_id = id(b'O', 0xE9); // bytes above 0x7F travel as two-byte UTF-8 characters
    let reply = offerer.announce(&swarm, &offerer_id, 3).await;
    assert_eq!(reply["info_hash"], swarm);
    assert_eq!(reply["interval"], 120);
    assert_eq!(reply["incomplete"], 5);
    assert_eq!(reply["complete"], 0);

    let mut seen_offers = HashSet::new();
    let mut answered = 0;
    for (n, receiver) in receivers.iter_mut().enumerate() {
        let Some(offer) = receiver.try_recv(Duration::from_millis(300)).await else {
            continue;
        };
        assert_eq!(offer["action"], "announce");
        assert_eq!(offer["peer_id"], offerer_id);
        assert_eq!(offer["info_hash"], swarm);
        assert_eq!(offer["offer"]["type"], "offer");
        assert!(
            offer.get("ext").is_none(),
            "extension data never reaches vanilla clients"
        );
        assert!(seen_offers.insert(offer["offer_id"].as_str().unwrap().to_owned()));
        receiver
            .send(&answer(&swarm, &id(b'R', n as u8), &offer))
            .await;
        answered += 1;
        let returned = offerer.recv().await;
        assert_eq!(returned["peer_id"], id(b'R', n as u8));
        assert_eq!(returned["offer_id"], offer["offer_id"]);
        assert_eq!(returned["answer"]["type"], "answer");
        assert!(
            returned["answer"]["sdp"]
                .as_str()
                .unwrap()
                .starts_with("v=0")
        );
    }
    assert_eq!(
        answered, 3,
        "each of the three offers went to a different peer"
    );
    assert_eq!(metric(addr, "tracker_answers_relayed_total").await, 3.0);
    tracker.shutdown().await;
}

#[tokio::test]
async fn an_offer_is_never_relayed_to_its_sender_and_numwant_caps_offers() {
    let tracker = start(|_| {}).await;
    let addr = tracker.local_addr();
    let swarm = id(b'S', 2);
    let mut alone = Client::connect(addr).await;
    alone.announce(&swarm, &id(b'A', 1), 5).await;
    assert!(alone.try_recv(Duration::from_millis(300)).await.is_none());

    let mut other = Client::connect(addr).await;
    other.announce(&swarm, &id(b'B', 1), 0).await;
    let mut message = support::announce(&swarm, &id(b'A', 1), 5);
    message["numwant"] = json!(0);
    alone.send(&message).await;
    alone.recv_action_reply().await;
    assert!(
        other.try_recv(Duration::from_millis(300)).await.is_none(),
        "numwant 0 relays nothing"
    );
    tracker.shutdown().await;
}

#[tokio::test]
async fn answers_only_to_pending_offers_and_only_while_unexpired() {
    let tracker = start(|c| c.offer_timeout = 1).await;
    let addr = tracker.local_addr();
    let swarm = id(b'S', 3);
    let mut receiver = Client::connect(addr).await;
    receiver.announce(&swarm, &id(b'R', 1), 0).await;
    let mut offerer = Client::connect(addr).await;
    offerer.announce(&swarm, &id(b'O', 1), 1).await;
    let offer = receiver.recv().await;

    // An answer to an offer id that was never relayed to this peer is refused.
    let mut forged = answer(&swarm, &id(b'R', 1), &offer);
    forged["offer_id"] = json!(id(b'X', 9));
    receiver.send(&forged).await;
    let failure = receiver.recv().await;
    assert_eq!(
        failure["failure reason"],
        "answer to an unknown or expired offer"
    );
    assert_eq!(failure["info_hash"], swarm);

    // After the offer timeout, even the right answer is refused.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    receiver.send(&answer(&swarm, &id(b'R', 1), &offer)).await;
    let failure = receiver.recv().await;
    assert_eq!(
        failure["failure reason"],
        "answer to an unknown or expired offer"
    );
    assert!(offerer.try_recv(Duration::from_millis(300)).await.is_none());
    tracker.shutdown().await;
}

#[tokio::test]
async fn scrape_counts_and_removal_on_stop_and_on_close() {
    let tracker = start(|_| {}).await;
    let addr = tracker.local_addr();
    let (one, two) = (id(b'S', 4), id(b'S', 5));
    let mut seeder = Client::connect(addr).await;
    let mut message = support::announce(&one, &id(b'P', 1), 0);
    message["event"] = json!("completed");
    seeder.send(&message).await;
    seeder.recv_action_reply().await;
    // Several swarms on one connection.
    let mut leecher = Client::connect(addr).await;
    leecher.announce(&one, &id(b'P', 2), 0).await;
    leecher.announce(&two, &id(b'P', 2), 0).await;

    let mut observer = Client::connect(addr).await;
    observer
        .send(&json!({"action": "scrape", "info_hash": [one, two]}))
        .await;
    let scrape = observer.recv().await;
    assert_eq!(scrape["action"], "scrape");
    assert_eq!(scrape["files"][&one]["complete"], 1);
    assert_eq!(scrape["files"][&one]["incomplete"], 1);
    assert_eq!(scrape["files"][&two]["incomplete"], 1);

    let mut stop = support::announce(&two, &id(b'P', 2), 0);
    stop["event"] = json!("stopped");
    leecher.send(&stop).await;
    assert_eq!(leecher.recv_action_reply().await["incomplete"], 0);

    seeder.close().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    observer
        .send(&json!({"action": "scrape", "info_hash": one}))
        .await;
    let scrape = observer.recv().await;
    assert_eq!(
        scrape["files"][&one]["complete"], 0,
        "closing removes the peer at once"
    );
    assert_eq!(scrape["files"][&one]["incomplete"], 1);
    tracker.shutdown().await;
}

#[tokio::test]
async fn silent_peers_expire() {
    let tracker = start(|c| c.peer_timeout = 1).await;
    let addr = tracker.local_addr();
    let swarm = id(b'S', 6);
    let mut quiet = Client::connect(addr).await;
    quiet.announce(&swarm, &id(b'Q', 1), 0).await;
    // The connection keeps talking (scrapes, so it stays open), but the peer never announces again.
    let scrape = json!({"action": "scrape", "info_hash": swarm});
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(450)).await;
        quiet.send(&scrape).await;
        assert_eq!(quiet.recv().await["action"], "scrape");
    }
    let mut offerer = Client::connect(addr).await;
    let reply = offerer.announce(&swarm, &id(b'O', 1), 1).await;
    assert_eq!(reply["incomplete"], 1, "only the new peer remains");
    assert!(quiet.try_recv(Duration::from_millis(300)).await.is_none());
    assert!(metric(addr, "tracker_peers_expired_total").await >= 1.0);
    tracker.shutdown().await;
}

#[tokio::test]
async fn silent_connections_are_closed_and_talking_ones_kept() {
    let tracker = start(|c| c.peer_timeout = 1).await;
    let addr = tracker.local_addr();
    let mut silent = Client::connect(addr).await;
    let mut talking = Client::connect(addr).await;
    let swarm = id(b'S', 8);
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        talking.announce(&swarm, &id(b'T', 1), 0).await;
    }
    assert!(silent.closed_within(Duration::from_secs(2)).await);
    assert_eq!(
        talking.announce(&swarm, &id(b'T', 1), 0).await["incomplete"],
        1
    );
    tracker.shutdown().await;
}

/// The incomplete count of `swarm`, scraped by `client`.
async fn incomplete(client: &mut Client, swarm: &str) -> Value {
    client
        .send(&json!({"action": "scrape", "info_hash": swarm}))
        .await;
    client.recv().await["files"][swarm]["incomplete"].clone()
}

#[tokio::test]
async fn a_client_gone_without_closing_is_found_by_a_ping_and_its_peer_id_freed() {
    let tracker = start(|c| c.ping_interval = 1).await;
    let addr = tracker.local_addr();
    let swarm = id(b'S', 9);
    let mut gone = Client::connect(addr).await;
    gone.announce(&swarm, &id(b'G', 1), 0).await;
    let mut observer = Client::connect(addr).await;
    assert_eq!(incomplete(&mut observer, &swarm).await, 1);
    // `gone` reads nothing from now on, so it never answers the ping (a half-open connection
    // behaves the same); the observer keeps talking, so it stays.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        incomplete(&mut observer, &swarm).await;
    }
    assert_eq!(incomplete(&mut observer, &swarm).await, 0);
    let mut again = Client::connect(addr).await;
    let reply = again.announce(&swarm, &id(b'G', 1), 0).await;
    assert_eq!(reply["incomplete"], 1, "the peer_id is free again: {reply}");
    assert_eq!(gone.close_code(Duration::from_secs(1)).await, Some(1001));
    let unresponsive = "tracker_connections_closed_total{reason=\"unresponsive\"}";
    assert_eq!(metric(addr, unresponsive).await, 1.0);
    tracker.shutdown().await;
}

#[tokio::test]
async fn a_quiet_client_that_answers_pings_keeps_its_connection_and_peers() {
    let tracker = start(|c| c.ping_interval = 1).await;
    let addr = tracker.local_addr();
    let swarm = id(b'S', 10);
    let mut quiet = Client::connect(addr).await;
    quiet.announce(&swarm, &id(b'Q', 1), 0).await;
    // Reading is all it does: the WebSocket library answers the tracker's pings.
    assert!(!quiet.closed_within(Duration::from_millis(3500)).await);
    let mut observer = Client::connect(addr).await;
    assert_eq!(incomplete(&mut observer, &swarm).await, 1);
    assert!(metric(addr, "tracker_connections").await >= 2.0);
    let unresponsive = "tracker_connections_closed_total{reason=\"unresponsive\"}";
    assert_eq!(metric(addr, unresponsive).await, 0.0);
    tracker.shutdown().await;
}

#[tokio::test]
async fn a_reconnected_client_takes_its_peer_id_over_from_its_vanished_connection() {
    let tracker = start(|_| {}).await;
    let addr = tracker.local_addr();
    let swarm = id(b'S', 11);
    let mut old = Client::connect(addr).await;
    old.announce(&swarm, &id(b'M', 1), 0).await;
    // `old` reads nothing from now on, like a connection left half-open by a network change:
    // it answers no ping. The client comes back on a new connection with the same peer_id.
    let mut new = Client::connect(addr).await;
    let asked = tokio::time::Instant::now();
    let reply = new.announce(&swarm, &id(b'M', 1), 0).await;
    assert_eq!(reply["incomplete"], 1, "{reply}");
    assert!(
        asked.elapsed() >= Duration::from_millis(2900),
        "the old connection had its chance to answer"
    );
    assert_eq!(metric(addr, "tracker_peer_id_takeovers_total").await, 1.0);

    // Offers now reach the new connection, and its answers travel back.
    let mut offerer = Client::connect(addr).await;
    offerer.announce(&swarm, &id(b'O', 1), 1).await;
    let offer = new.recv().await;
    assert_eq!(offer["peer_id"], id(b'O', 1));
    new.send(&answer(&swarm, &id(b'M', 1), &offer)).await;
    assert_eq!(offerer.recv().await["answer"]["type"], "answer");
    // The old connection leaving does not take the peer out of the swarm.
    old.close().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(incomplete(&mut offerer, &swarm).await, 2);
    tracker.shutdown().await;
}

#[tokio::test]
async fn hashes_are_accepted_once_independent_networks_agree() {
    let tracker = start(|c| c.hash_quorum = 2).await;
    let addr = tracker.local_addr();
    let swarm = id(b'S', 7);
    let digest = "ab".repeat(32);
    let report = |peer: &str| {
        json!({"action": "hash_report", "info_hash": swarm, "peer_id": peer,
               "segment": "seg-1.ts", "sha256": digest})
    };
    let query = json!({"action": "hash_query", "info_hash": swarm, "segments": ["seg-1.ts"]});
    // Two peers in the same /16 count once.
    let mut a = Client::connect_from(addr, "127.10.0.1".parse().unwrap()).await;
    let mut b = Client::connect_from(addr, "127.10.0.2".parse().unwrap()).await;
    let mut c = Client::connect_from(addr, "127.11.0.1".parse().unwrap()).await;
    for (client, n) in [(&mut a, 1), (&mut b, 2), (&mut c, 3)] {
        client.announce(&swarm, &id(b'H', n), 0).await;
    }
    a.send(&report(&id(b'H', 1))).await;
    b.send(&report(&id(b'H', 2))).await;
    a.send(&query).await;
    assert_eq!(a.recv().await["hashes"], json!({}));
    c.send(&report(&id(b'H', 3))).await;
    c.send(&query).await;
    let reply = c.recv().await;
    assert_eq!(reply["action"], "hash_query");
    assert_eq!(reply["hashes"]["seg-1.ts"], digest);

    // Reports for swarms the peer has not joined are refused.
    let mut stranger = Client::connect(addr).await;
    stranger.send(&report(&id(b'H', 9))).await;
    let failure = stranger.recv().await;
    assert_eq!(
        failure["failure reason"],
        "announce to the swarm with this peer_id first"
    );
    tracker.shutdown().await;
}

#[tokio::test]
async fn http_endpoints_and_graceful_shutdown() {
    let tracker = start(|c| c.shutdown_timeout = 2).await;
    let addr = tracker.local_addr();
    assert_eq!(
        support::http_get(addr, "/healthz").await,
        (200, "ok\n".into())
    );
    assert_eq!(support::http_get(addr, "/readyz").await.0, 200);
    assert_eq!(support::http_get(addr, "/nope").await.0, 404);
    let mut client = Client::connect(addr).await;
    client.announce(&id(b'S', 8), &id(b'P', 1), 0).await;
    let (_, metrics) = support::http_get(addr, "/metrics").await;
    for name in [
        "tracker_connections 1",
        "tracker_swarms 1",
        "tracker_peers 1",
        "tracker_announces_total 1",
    ] {
        assert!(metrics.contains(name), "missing {name:?} in\n{metrics}");
    }
    let shutdown = tokio::spawn(tracker.shutdown());
    assert!(
        client.closed_within(Duration::from_secs(2)).await,
        "peers are told to go away"
    );
    tokio::time::timeout(Duration::from_secs(3), shutdown)
        .await
        .unwrap()
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}

type RawSocket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// A receiver in `swarm` with a tiny socket receive buffer that reads its announce reply, then
/// nothing: the tracker's writes to it soon stall.
async fn stuck_receiver(addr: std::net::SocketAddr, swarm: &str) -> RawSocket {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let (mut stuck, _) = tokio_tungstenite::client_async(format!("ws://{addr}/"), stream)
        .await
        .unwrap();
    let announce = support::announce(swarm, &id(b'R', 1), 0).to_string();
    stuck.send(Message::text(announce)).await.unwrap();
    assert!(matches!(stuck.next().await, Some(Ok(Message::Text(_)))));
    stuck
}

/// Announces 30 KB offers into `swarm` until the tracker warns that one could not be delivered;
/// returns the round and the warning.
async fn offer_until_warned(offerer: &mut Client, swarm: &str) -> (u8, Value) {
    for round in 0..200u8 {
        let mut message = support::announce(swarm, &id(b'O', 1), 1);
        message["offers"][0]["offer"]["sdp"] = json!("a".repeat(30_000));
        message["offers"][0]["offer_id"] = json!(id(0xF1, round));
        offerer.send(&message).await;
        let reply = offerer.recv_action_reply().await;
        if let Some(warning) = reply.get("warning message") {
            return (round, warning.clone());
        }
    }
    panic!("a full queue shows up as a warning");
}

#[tokio::test]
async fn offers_to_a_peer_that_stopped_reading_are_dropped_with_a_warning() {
    let tracker = start(|c| {
        c.outgoing_queue = 1;
        c.max_messages_per_second = 1000;
        // One offerer fills the queue: the per-pair offer budget must not drain it first.
        c.max_offers_per_pair = 1000;
        c.max_offers_per_receiver = 1000;
    })
    .await;
    let addr = tracker.local_addr();
    let swarm = id(b'S', 9);
    let stuck = stuck_receiver(addr, &swarm).await;
    let mut offerer = Client::connect(addr).await;
    let (round, warning) = offer_until_warned(&mut offerer, &swarm).await;
    assert_eq!(
        warning,
        "some offers could not be delivered: peers are busy"
    );
    assert!(round >= 1, "the first offers were queued");
    assert!(metric(addr, "tracker_deliveries_dropped_total").await >= 1.0);
    // The offerer's own connection is unaffected.
    assert_eq!(
        offerer.announce(&swarm, &id(b'O', 1), 0).await["incomplete"],
        2
    );
    drop(stuck);
    tracker.shutdown().await;
}

#[tokio::test]
async fn a_connection_whose_writes_stall_is_closed_as_unresponsive() {
    let tracker = start(|c| {
        c.outgoing_queue = 1;
        c.max_messages_per_second = 1000;
        // One offerer fills the queue: the per-pair offer budget must not drain it first.
        c.max_offers_per_pair = 1000;
        c.max_offers_per_receiver = 1000;
        c.ping_interval = 1;
    })
    .await;
    let addr = tracker.local_addr();
    let swarm = id(b'S', 12);
    // Its connection task blocks on a write that never completes, as towards a client whose
    // network vanished once the unacknowledged data fills the socket buffer.
    let stuck = stuck_receiver(addr, &swarm).await;
    let mut offerer = Client::connect(addr).await;
    offer_until_warned(&mut offerer, &swarm).await;
    // The offerer keeps talking (so it answers its own pings) until the stalled peer is gone.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while incomplete(&mut offerer, &swarm).await != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stalled connection is still in the swarm"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let unresponsive = "tracker_connections_closed_total{reason=\"unresponsive\"}";
    assert_eq!(metric(addr, unresponsive).await, 1.0);
    drop(stuck);
    tracker.shutdown().await;
}
