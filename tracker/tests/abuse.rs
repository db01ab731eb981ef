//! Abuse limits: each abuse reproduced, and the victim shown unaffected with the limit on.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{Client, answer, id, start};

/// Offers the receiver's pending list holds in these tests.
const PENDING: usize = 8;

/// A receiver holds an honest offer while an attacker floods it with 30 offers; returns how
/// many of the attacker's offers reached the receiver and whether the honest offerer still got
/// the receiver's answer.
async fn flood_a_receiver(max_offers_per_pair: u32) -> (usize, bool) {
    let tracker = start(|config| {
        config.max_pending_offers = PENDING;
        config.max_offers_per_pair = max_offers_per_pair;
        config.max_offers_per_receiver = 1000;
    })
    .await;
    let addr = tracker.local_addr();
    let swarm = id(b'S', 1);
    let mut receiver = Client::connect(addr).await;
    receiver.announce(&swarm, &id(b'R', 1), 0).await;
    let mut honest = Client::connect(addr).await;
    honest.announce(&swarm, &id(b'H', 2), 1).await;
    let honest_offer = receiver.recv().await;
    assert_eq!(honest_offer["peer_id"], id(b'H', 2).as_str());

    let mut attacker = Client::connect(addr).await;
    for _ in 0..30 {
        // Two offers: one reaches the receiver, the other the honest peer.
        attacker
            .send(&support::announce(&swarm, &id(b'A', 3), 2))
            .await;
    }
    for _ in 0..30 {
        attacker.recv_action_reply().await;
    }
    let mut from_attacker = 0;
    while let Some(message) = receiver.try_recv(Duration::from_millis(300)).await {
        from_attacker += usize::from(message["peer_id"] == id(b'A', 3).as_str());
    }
    receiver
        .send(&answer(&swarm, &id(b'R', 1), &honest_offer))
        .await;
    let answered = answer_arrives(&mut honest).await;
    tracker.shutdown().await;
    (from_attacker, answered)
}

/// Whether an answer reaches `client` (skipping offers relayed to it meanwhile).
async fn answer_arrives(client: &mut Client) -> bool {
    while let Some(message) = client.try_recv(Duration::from_secs(1)).await {
        if message.get("answer").is_some_and(Value::is_object) {
            return true;
        }
    }
    false
}

#[tokio::test]
async fn a_flood_of_offers_from_one_peer_no_longer_evicts_the_receivers_real_offers() {
    // Without a per-pair budget the flood pushes the honest offer out of the receiver's pending
    // list, and the receiver's answer to it is refused.
    let (flooded, answered) = flood_a_receiver(1000).await;
    assert_eq!(flooded, 30);
    assert!(!answered, "the abuse did not reproduce");
    // With it, the attacker gets five offers through and the honest peer its answer.
    let (flooded, answered) = flood_a_receiver(5).await;
    assert_eq!(flooded, 5);
    assert!(answered, "the honest offer was evicted");
}

/// A copy of the ASN database at `path` with most of its search tree cut out and its metadata
/// intact: `maxminddb` opens it and then panics on lookups.
fn corrupt_copy(path: &std::path::Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    let marker = b"\xab\xcd\xefMaxMind.com";
    let metadata = bytes
        .windows(marker.len())
        .rposition(|window| window == marker)
        .unwrap();
    let mut corrupt = bytes[..16].to_vec();
    corrupt.extend_from_slice(&bytes[metadata..]);
    corrupt
}

#[tokio::test]
async fn a_corrupt_geoip_file_is_refused_at_reload_and_the_loaded_one_stays() {
    use support::geoip::{ALL, PARIS_ISP_A, scratch_dir, source, write_asn_db};
    let path = scratch_dir("abuse-geoip").join("asn.mmdb");
    write_asn_db(&path, &ALL);
    let corrupt = corrupt_copy(&path);
    // The abuse: the library opens the corrupt file, and a lookup panics.
    let reader = maxminddb::Reader::from_source(corrupt.clone()).expect("metadata intact");
    let ip = source(&PARIS_ISP_A, 1);
    let lookup = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = reader.lookup(ip);
    }));
    assert!(lookup.is_err(), "the corrupt file no longer panics lookups");

    let tracker = start(|config| config.geoip_asn = Some(path.clone())).await;
    let addr = tracker.local_addr();
    std::fs::write(&path, &corrupt).unwrap();
    tracker.reload_geoip();
    let mut client = Client::connect_from(addr, ip).await;
    let reply = client.announce(&id(b'S', 1), &id(b'A', 1), 0).await;
    assert_eq!(reply["interval"], 120, "{reply}");
    let hits = r#"tracker_geoip_lookups_total{database="asn",result="hit"}"#;
    assert_eq!(
        support::metric(addr, hits).await,
        1.0,
        "the loaded database stays in use"
    );
    tracker.shutdown().await;
}

#[tokio::test]
async fn half_open_handshakes_from_one_address_are_capped_and_others_still_connect() {
    use tokio::io::AsyncReadExt;
    let tracker = start(|config| config.max_handshakes_per_ip = 4).await;
    let addr = tracker.local_addr();
    let attacker: std::net::IpAddr = "127.0.0.5".parse().unwrap();
    let mut stalled = Vec::new();
    for _ in 0..4 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(std::net::SocketAddr::new(attacker, 0)).unwrap();
        stalled.push(socket.connect(addr).await.unwrap());
    }
    // Let the tracker accept the four before the fifth arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(std::net::SocketAddr::new(attacker, 0)).unwrap();
    let mut fifth = socket.connect(addr).await.unwrap();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(2), fifth.read(&mut byte)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the fifth handshake was not closed"
    );

    let victim: std::net::IpAddr = "127.0.0.6".parse().unwrap();
    let mut client = Client::connect_from(addr, victim).await;
    assert_eq!(
        client.announce(&id(b'S', 1), &id(b'V', 1), 0).await["interval"],
        120
    );
    // Once a stalled handshake ends, the address may connect again.
    drop(stalled.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = Client::connect_from(addr, attacker).await;
    assert_eq!(
        again.announce(&id(b'S', 1), &id(b'A', 1), 0).await["interval"],
        120
    );
    drop(stalled);
    tracker.shutdown().await;
}
