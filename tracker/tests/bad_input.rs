//! Every refusal: a `failure reason` naming the problem, the connection kept unless it keeps
//! abusing, and other peers unaffected.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{Client, id, start};
use tokio_tungstenite::tungstenite::Message;

async fn failure_for(client: &mut Client, text: &str) -> serde_json::Value {
    client.send_text(text).await;
    let reply = client.recv().await;
    assert!(
        reply.get("failure reason").is_some(),
        "expected a failure for {text}: {reply}"
    );
    reply
}

#[tokio::test]
async fn malformed_messages_get_named_failures_and_the_connection_stays() {
    let tracker = start(|_| {}).await;
    let addr = tracker.local_addr();
    let swarm = id(b'S', 1);
    let mut bystander = Client::connect(addr).await;
    bystander.announce(&swarm, &id(b'B', 1), 0).await;
    let mut client = Client::connect(addr).await;

    let reply = failure_for(&mut client, "{not json").await;
    assert!(
        reply["failure reason"]
            .as_str()
            .unwrap()
            .starts_with("malformed message")
    );
    let reply = failure_for(&mut client, r#"{"action":"teleport"}"#).await;
    assert_eq!(reply["failure reason"], "unknown action \"teleport\"");
    let short = json!({"action": "announce", "info_hash": "tooshort", "peer_id": id(b'P', 1)});
    let reply = failure_for(&mut client, &short.to_string()).await;
    assert_eq!(
        reply["failure reason"],
        "invalid info_hash: must be 20 characters, got 8"
    );
    assert_eq!(reply["action"], "announce");
    let wide = json!({"action": "announce", "info_hash": swarm, "peer_id": "€".repeat(20)});
    let reply = failure_for(&mut client, &wide.to_string()).await;
    assert_eq!(
        reply["failure reason"],
        "invalid peer_id: characters must be in U+0000..U+00FF"
    );
    assert_eq!(
        reply["info_hash"], swarm,
        "the failure names the swarm when it is known"
    );
    let no_offer_id = json!({"action": "announce", "info_hash": swarm, "peer_id": id(b'P', 1),
                             "offers": [{"offer": {"type": "offer", "sdp": "x"}}]});
    let reply = failure_for(&mut client, &no_offer_id.to_string()).await;
    assert!(
        reply["failure reason"]
            .as_str()
            .unwrap()
            .starts_with("malformed message")
    );
    let reply = failure_for(&mut client, r#"{"action":"scrape"}"#).await;
    assert_eq!(reply["failure reason"], "missing field info_hash");
    client.send_message(Message::binary(vec![0xff, 0xfe])).await;
    assert_eq!(
        client.recv().await["failure reason"],
        "messages must be UTF-8 JSON text"
    );

    // The connection still works, and the bystander noticed nothing but a normal offer.
    let reply = client.announce(&swarm, &id(b'P', 1), 1).await;
    assert_eq!(reply["incomplete"], 2);
    let offer = bystander.recv().await;
    assert_eq!(offer["peer_id"], id(b'P', 1));
    assert!(
        bystander
            .try_recv(Duration::from_millis(200))
            .await
            .is_none()
    );
    assert!(support::metric(addr, "tracker_rejected_total{reason=\"malformed\"}").await >= 2.0);
    tracker.shutdown().await;
}

#[tokio::test]
async fn size_and_count_limits() {
    let tracker = start(|c| {
        c.max_offers_per_announce = 2;
        c.max_swarms_per_connection = 2;
        c.max_message_size = 2048;
        c.max_frame_size = 8192;
        c.max_scrape_hashes = 2;
    })
    .await;
    let addr = tracker.local_addr();
    let mut client = Client::connect(addr).await;

    let too_many = support::announce(&id(b'S', 1), &id(b'P', 1), 3);
    let reply = failure_for(&mut client, &too_many.to_string()).await;
    assert_eq!(
        reply["failure reason"],
        "invalid offers: too many offers in one announce"
    );

    client.announce(&id(b'S', 1), &id(b'P', 1), 0).await;
    client.announce(&id(b'S', 2), &id(b'P', 1), 0).await;
    let third = support::announce(&id(b'S', 3), &id(b'P', 1), 0);
    let reply = failure_for(&mut client, &third.to_string()).await;
    assert_eq!(
        reply["failure reason"],
        "too many swarms on this connection"
    );

    let scrape = json!({"action": "scrape", "info_hash": [id(b'S', 1), id(b'S', 2), id(b'S', 3)]});
    let reply = failure_for(&mut client, &scrape.to_string()).await;
    assert_eq!(
        reply["failure reason"],
        "invalid info_hash: too many info hashes in one scrape"
    );

    let big = json!({"action": "announce", "padding": "x".repeat(4000)});
    let reply = failure_for(&mut client, &big.to_string()).await;
    assert_eq!(reply["failure reason"], "message too large");
    assert_eq!(
        client.announce(&id(b'S', 1), &id(b'P', 1), 0).await["action"],
        "announce"
    );

    // A frame above the hard frame limit closes the connection.
    client.send_text(&"x".repeat(10_000)).await;
    assert!(client.closed_within(Duration::from_secs(2)).await);
    tracker.shutdown().await;
}

#[tokio::test]
async fn message_rate_connection_count_and_persistent_abuse() {
    let tracker = start(|c| {
        c.max_messages_per_second = 5;
        c.max_connections_per_ip = 2;
        c.max_strikes = 5;
    })
    .await;
    let addr = tracker.local_addr();
    let swarm = id(b'S', 1);
    let mut flooder = Client::connect(addr).await;
    let scrape = json!({"action": "scrape", "info_hash": swarm}).to_string();
    // Ten seconds' worth at once is accepted: a lagging tracker reads backlogs like this.
    for _ in 0..50 {
        flooder.send_text(&scrape).await;
    }
    for _ in 0..50 {
        assert!(flooder.recv().await.get("files").is_some());
    }
    let mut limited = 0;
    for _ in 0..4 {
        flooder.send_text(&scrape).await;
    }
    for _ in 0..4 {
        match flooder.try_recv(Duration::from_secs(1)).await {
            Some(reply) if reply["failure reason"] == "rate limit exceeded: slow down" => {
                limited += 1
            }
            Some(_) => {}
            None => break,
        }
    }
    assert!(
        limited >= 3,
        "54 at once at 5/s (burst 50) are limited: {limited}"
    );

    // More than max-strikes refusals in a minute: the connection is closed.
    let mut abuser = Client::connect(addr).await;
    for _ in 0..7 {
        abuser.send_text("garbage").await;
    }
    assert!(abuser.closed_within(Duration::from_secs(2)).await);
    let abusive = "tracker_connections_closed_total{reason=\"abusive\"}";
    assert_eq!(support::metric(addr, abusive).await, 1.0);

    // Per-IP connection cap: the third connection from one address is refused over HTTP.
    let _a = Client::connect_from(addr, "127.0.0.9".parse().unwrap()).await;
    let _b = Client::connect_from(addr, "127.0.0.9".parse().unwrap()).await;
    let third = Client::try_connect_with_headers(addr, "127.0.0.9".parse().unwrap(), &[]).await;
    assert_eq!(support::refusal_status(third), 429);
    assert!(
        support::metric(
            addr,
            "tracker_rejected_total{reason=\"connections_per_ip\"}"
        )
        .await
            >= 1.0
    );
    tracker.shutdown().await;
}

#[tokio::test]
async fn connections_beyond_capacity_are_refused_and_the_tracker_reports_not_ready() {
    let tracker = start(|c| c.max_connections = Some(2)).await;
    let addr = tracker.local_addr();
    let from = |host: u8| std::net::IpAddr::from([127, 0, 0, host]);
    let first = Client::connect_from(addr, from(21)).await;
    assert_eq!(support::http_get(addr, "/readyz").await.0, 200);
    let mut second = Client::connect_from(addr, from(22)).await;
    assert_eq!(
        support::http_get(addr, "/readyz").await,
        (503, "at capacity\n".into())
    );

    let third = Client::try_connect_with_headers(addr, from(23), &[]).await;
    assert_eq!(support::refusal_status(third), 503);
    assert_eq!(support::http_get(addr, "/healthz").await.0, 200);
    let at_capacity = "tracker_rejected_total{reason=\"at_capacity\"}";
    assert_eq!(support::metric(addr, at_capacity).await, 1.0);
    assert_eq!(
        support::metric(addr, "tracker_connection_capacity").await,
        2.0
    );
    // The admitted connections are served as before.
    let swarm = id(b'S', 1);
    assert_eq!(
        second.announce(&swarm, &id(b'P', 2), 0).await["incomplete"],
        1
    );

    // A closed connection frees its place.
    drop(first);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while support::http_get(addr, "/readyz").await.0 != 200 {
        assert!(tokio::time::Instant::now() < deadline, "still at capacity");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut fourth = Client::connect_from(addr, from(23)).await;
    assert_eq!(
        fourth.announce(&swarm, &id(b'P', 4), 0).await["incomplete"],
        2
    );
    tracker.shutdown().await;
}

#[tokio::test]
async fn a_peer_id_cannot_be_hijacked_by_another_connection() {
    let tracker = start(|_| {}).await;
    let addr = tracker.local_addr();
    let swarm = id(b'S', 1);
    let mut owner = Client::connect(addr).await;
    owner.announce(&swarm, &id(b'P', 1), 0).await;
    // The owner is there: while it reads, its WebSocket library answers the tracker's probe.
    let owner_reads = tokio::spawn(async move { owner.try_recv(Duration::from_secs(10)).await });
    let mut intruder = Client::connect(addr).await;
    let reply = intruder.announce(&swarm, &id(b'P', 1), 0).await;
    assert_eq!(
        reply["failure reason"],
        "peer_id is in use by another connection"
    );
    assert_eq!(
        support::metric(addr, "tracker_peer_id_takeovers_total").await,
        0.0
    );
    owner_reads.abort();
    tracker.shutdown().await;

    // Without pings there is no probe either: a conflict is refused at once.
    let tracker = start(|c| c.ping_interval = 0).await;
    let addr = tracker.local_addr();
    let mut owner = Client::connect(addr).await;
    owner.announce(&swarm, &id(b'P', 1), 0).await;
    let mut intruder = Client::connect(addr).await;
    let asked = tokio::time::Instant::now();
    let reply = intruder.announce(&swarm, &id(b'P', 1), 0).await;
    assert!(reply.get("failure reason").is_some(), "{reply}");
    assert!(asked.elapsed() < Duration::from_secs(1));
    tracker.shutdown().await;
}

#[tokio::test]
async fn late_answers_are_refused_without_closing_the_connection() {
    let tracker = start(|c| {
        c.max_strikes = 2;
        c.max_pending_offers = 1;
    })
    .await;
    let addr = tracker.local_addr();
    let swarm = id(b'S', 7);
    let mut receiver = Client::connect(addr).await;
    receiver.announce(&swarm, &id(b'R', 1), 0).await;
    let mut offerer = Client::connect(addr).await;
    let mut offers = Vec::new();
    for round in 0..5 {
        // One offer per announce, each with an id of its own: each evicts the one before.
        let mut announce = support::announce(&swarm, &id(b'O', 1), 1);
        announce["offers"][0]["offer_id"] = json!(support::offer_id(b'O', round));
        offerer.send(&announce).await;
        offerer.recv_action_reply().await;
        offers.push(receiver.recv().await);
    }
    // Answers to the four evicted offers: more refusals than max-strikes allows...
    for offer in &offers[..4] {
        let late = support::answer(&swarm, &id(b'R', 1), offer);
        let failure = failure_for(&mut receiver, &late.to_string()).await;
        assert_eq!(
            failure["failure reason"],
            "answer to an unknown or expired offer"
        );
    }
    // ...yet the connection stays, and the answer to the offer still held is relayed.
    let last = support::answer(&swarm, &id(b'R', 1), &offers[4]);
    receiver.send(&last).await;
    let relayed = offerer.recv().await;
    assert_eq!(relayed["answer"], last["answer"]);
    assert_eq!(relayed["offer_id"], offers[4]["offer_id"]);
    tracker.shutdown().await;
}
