//! Matching end to end: small GeoIP databases built here map loopback sources (127.a.b.c) to
//! made-up ISPs and cities; clients connect from those addresses; the tests check which peer
//! each offer reaches and the tier the tracker counted.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde_json::json;
use support::geoip::{
    ALL, LYON_ISP_C, PARIS_ISP_A, PARIS_ISP_B, Place, TOKYO_ISP_D, scratch_dir, source,
    write_asn_db, write_city_db,
};
use support::{Client, id, metric, start};

/// Which of `receivers` got an offer (at most one offer is sent per announce here).
async fn who_got_the_offer(receivers: &mut [(&str, Client)]) -> Vec<String> {
    let mut got = Vec::new();
    for (name, client) in receivers.iter_mut() {
        if client.try_recv(Duration::from_millis(250)).await.is_some() {
            got.push(name.to_string());
        }
    }
    got
}

#[tokio::test]
async fn offers_follow_isp_then_distance_then_country_then_anyone() {
    let dir = scratch_dir("tiers");
    let (asn_db, city_db) = (dir.join("asn.mmdb"), dir.join("city.mmdb"));
    write_asn_db(&asn_db, &ALL);
    write_city_db(&city_db, &ALL);
    let tracker = start(|c| {
        c.geoip_asn = Some(asn_db.clone());
        c.geoip_location = Some(city_db.clone());
        c.nearby_km = 100.0;
    })
    .await;
    let addr = tracker.local_addr();
    let swarm = id(b'S', 1);

    let mut receivers = Vec::new();
    for (n, (name, place)) in [
        ("same-isp", &PARIS_ISP_A),
        ("near", &PARIS_ISP_B),
        ("same-country", &LYON_ISP_C),
        ("far", &TOKYO_ISP_D),
    ]
    .into_iter()
    .enumerate()
    {
        let mut client = Client::connect_from(addr, source(place, 10)).await;
        client.announce(&swarm, &id(b'R', n as u8), 0).await;
        receivers.push((name, client));
    }

    let expected = [
        ("same-isp", "asn"),
        ("near", "distance"),
        ("same-country", "country"),
        ("far", "any"),
    ];
    for (round, (name, tier)) in expected.into_iter().enumerate() {
        let mut offerer = Client::connect_from(addr, source(&PARIS_ISP_A, 100 + round as u8)).await;
        offerer.announce(&swarm, &id(b'O', round as u8), 1).await;
        assert_eq!(
            who_got_the_offer(&mut receivers).await,
            vec![name.to_string()],
            "round {round}"
        );
        let counted = metric(
            addr,
            &format!("tracker_offers_relayed_total{{tier=\"{tier}\"}}"),
        )
        .await;
        assert_eq!(counted, 1.0, "tier {tier}");
        // The closest receiver leaves; the next round must fall through to the next tier.
        offerer.close().await;
        let (_, closest) = receivers.remove(0);
        closest.close().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        metric(
            addr,
            "tracker_geoip_lookups_total{database=\"asn\",result=\"hit\"}"
        )
        .await
            >= 8.0
    );
    tracker.shutdown().await;
}

#[tokio::test]
async fn one_peer_per_isp_still_connects_everyone() {
    let dir = scratch_dir("no-partition");
    let asn_db = dir.join("asn.mmdb");
    write_asn_db(&asn_db, &ALL);
    let tracker = start(|c| c.geoip_asn = Some(asn_db.clone())).await;
    let addr = tracker.local_addr();
    let swarm = id(b'S', 2);
    let mut others = Vec::new();
    for (n, place) in ALL[1..].iter().enumerate() {
        let mut client = Client::connect_from(addr, source(place, 1)).await;
        client.announce(&swarm, &id(b'R', n as u8), 0).await;
        others.push(client);
    }
    let mut offerer = Client::connect_from(addr, source(&PARIS_ISP_A, 1)).await;
    offerer.announce(&swarm, &id(b'O', 1), 3).await;
    for other in &mut others {
        assert!(
            other.try_recv(Duration::from_secs(1)).await.is_some(),
            "every ISP gets an offer"
        );
    }
    tracker.shutdown().await;
}

#[tokio::test]
async fn without_geoip_shared_prefixes_rank_first() {
    let tracker = start(|_| {}).await;
    let addr = tracker.local_addr();
    let swarm = id(b'S', 3);
    let mut receivers = Vec::new();
    for (n, (name, ip)) in [
        ("same-24", "127.50.1.20"),
        ("same-16", "127.50.9.20"),
        ("other", "127.60.0.1"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut client = Client::connect_from(addr, ip.parse().unwrap()).await;
        client.announce(&swarm, &id(b'R', n as u8), 0).await;
        receivers.push((name, client));
    }
    for (round, (name, tier)) in [
        ("same-24", "prefix_narrow"),
        ("same-16", "prefix_wide"),
        ("other", "any"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut offerer =
            Client::connect_from(addr, format!("127.50.1.{}", 100 + round).parse().unwrap()).await;
        offerer.announce(&swarm, &id(b'O', round as u8), 1).await;
        assert_eq!(
            who_got_the_offer(&mut receivers).await,
            vec![name.to_string()]
        );
        let counted = metric(
            addr,
            &format!("tracker_offers_relayed_total{{tier=\"{tier}\"}}"),
        )
        .await;
        assert_eq!(counted, 1.0);
        offerer.close().await;
        receivers.remove(0).1.close().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tracker.shutdown().await;
}

#[tokio::test]
async fn databases_reload_without_a_restart() {
    let dir = scratch_dir("reload");
    let asn_db = dir.join("asn.mmdb");
    write_asn_db(&asn_db, &[&PARIS_ISP_A]);
    let tracker = start(|c| {
        c.geoip_asn = Some(asn_db.clone());
        c.geoip_reload_interval = 1;
    })
    .await;
    let addr = tracker.local_addr();
    // Before the reload, 127.2.x is unknown; after it, it shares 127.1.x's ISP.
    let moved = Place {
        network: "127.2.0.0/16",
        ..PARIS_ISP_A
    };
    let swarm = id(b'S', 4);
    let mut far = Client::connect_from(addr, "127.9.0.1".parse().unwrap()).await;
    far.announce(&swarm, &id(b'R', 1), 0).await;
    tokio::time::sleep(Duration::from_millis(1100)).await; // distinct file modification time
    write_asn_db(&asn_db, &[&PARIS_ISP_A, &moved]);
    tokio::time::sleep(Duration::from_millis(2500)).await; // the file watcher picks it up
    let mut same = Client::connect_from(addr, source(&moved, 7)).await;
    same.announce(&swarm, &id(b'R', 2), 0).await;
    let mut offerer = Client::connect_from(addr, source(&PARIS_ISP_A, 7)).await;
    offerer.announce(&swarm, &id(b'O', 1), 1).await;
    assert!(
        same.try_recv(Duration::from_secs(1)).await.is_some(),
        "the reloaded ASN matched"
    );
    assert!(far.try_recv(Duration::from_millis(200)).await.is_none());
    tracker.reload_geoip(); // what SIGHUP does; must keep working
    tracker.shutdown().await;
}

/// Connects from `source` with one extra request header.
async fn connect_via(
    tracker: SocketAddr,
    source: IpAddr,
    header: &'static str,
    value: &'static str,
) -> Result<Client, tokio_tungstenite::tungstenite::Error> {
    Client::try_connect_with_headers(tracker, source, &[(header, value)]).await
}

#[tokio::test]
async fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
    let tracker = start(|c| {
        c.trusted_proxies = vec!["127.0.0.7/32".parse().unwrap()];
        c.max_connections_per_ip = 1;
    })
    .await;
    let addr = tracker.local_addr();
    let proxy: IpAddr = "127.0.0.7".parse().unwrap();
    let untrusted: IpAddr = "127.0.0.8".parse().unwrap();
    let connect = |source, header, value| connect_via(addr, source, header, value);

    // Through the trusted proxy, each forwarded client is counted (one connection per address)
    // and located by its own address: the rightmost hop that is not a trusted proxy.
    let swarm = id(b'S', 5);
    let mut near = connect(proxy, "X-Forwarded-For", "127.50.1.20")
        .await
        .unwrap();
    near.announce(&swarm, &id(b'R', 1), 0).await;
    let mut far = connect(proxy, "Forwarded", "for=\"127.60.0.1:4711\";proto=https")
        .await
        .unwrap();
    far.announce(&swarm, &id(b'R', 2), 0).await;
    assert_eq!(
        support::refusal_status(connect(proxy, "X-Forwarded-For", "127.50.1.20").await),
        429
    );
    let mut offerer = connect(proxy, "X-Forwarded-For", "6.6.6.6, 127.50.1.99, 127.0.0.7")
        .await
        .unwrap();
    offerer.announce(&swarm, &id(b'O', 1), 1).await;
    let mut receivers = [("near", near), ("far", far)];
    assert_eq!(who_got_the_offer(&mut receivers).await, vec!["near"]);
    assert_eq!(
        metric(addr, "tracker_offers_relayed_total{tier=\"prefix_narrow\"}").await,
        1.0
    );

    // From an untrusted peer the headers are ignored: its own address is counted.
    let _first = connect(untrusted, "X-Forwarded-For", "127.70.0.1")
        .await
        .unwrap();
    assert_eq!(
        support::refusal_status(connect(untrusted, "X-Forwarded-For", "127.70.0.2").await),
        429
    );
    // IPv6 clients are counted per /64, which one subscriber usually holds whole.
    let _v6 = connect(proxy, "X-Forwarded-For", "2001:db8:5:6::1")
        .await
        .unwrap();
    let same_64 = connect(proxy, "X-Forwarded-For", "[2001:db8:5:6:abcd::2]:443").await;
    assert_eq!(support::refusal_status(same_64), 429);
    let _next_64 = connect(proxy, "X-Forwarded-For", "2001:db8:5:7::1")
        .await
        .unwrap();
    tracker.shutdown().await;
}

#[tokio::test]
async fn extension_hints_steer_offers_over_the_wire() {
    let tracker = start(|_| {}).await;
    let addr = tracker.local_addr();
    let swarm = id(b'S', 6);
    let mut receivers = Vec::new();
    for (n, (name, ext)) in [
        ("download-only", json!({"upload": false, "position": 95.0})),
        ("far-in-the-video", json!({"position": 3000.0})),
        (
            "same-position",
            json!({"position": 100.0, "capacity": 500_000}),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let mut client = Client::connect(addr).await;
        let mut message = support::announce(&swarm, &id(b'R', n as u8), 0);
        message["ext"] = ext;
        client.send(&message).await;
        assert_eq!(client.recv_action_reply().await["action"], "announce");
        receivers.push((name, client));
    }
    let mut offerer = Client::connect(addr).await;
    let announce_with = |offers| {
        let mut message = support::announce(&swarm, &id(b'O', 1), offers);
        message["ext"] = json!({"upload": false, "position": 90.0});
        message
    };
    // One offer: the peer at the same playback position, never the other download-only peer.
    offerer.send(&announce_with(1)).await;
    offerer.recv_action_reply().await;
    assert_eq!(
        who_got_the_offer(&mut receivers).await,
        vec!["same-position"]
    );
    // Three offers: each uploading peer gets one; the download-only peer still none.
    offerer.send(&announce_with(3)).await;
    let reply = offerer.recv_action_reply().await;
    assert_eq!(reply["incomplete"], 4);
    assert_eq!(
        who_got_the_offer(&mut receivers).await,
        vec!["far-in-the-video", "same-position"]
    );
    tracker.shutdown().await;
}
