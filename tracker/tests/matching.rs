//! Matching end to end: small GeoIP databases built here map loopback sources (127.a.b.c) to
//! made-up ISPs and cities; clients connect from those addresses; the tests check which peer
//! each offer reaches and the tier the tracker counted.

mod support;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use mmdb_writer::Writer;
use serde::Serialize;
use support::{Client, id, metric, start};

#[derive(Serialize)]
struct Asn {
    autonomous_system_number: u32,
    autonomous_system_organization: String,
}

#[derive(Serialize)]
struct Country {
    iso_code: String,
}

#[derive(Serialize)]
struct Location {
    latitude: f64,
    longitude: f64,
}

#[derive(Serialize)]
struct City {
    city: BTreeMap<String, BTreeMap<String, String>>,
    country: Country,
    location: Location,
}

/// A made-up place: the /16 it covers, its ISP, country and coordinates.
struct Place {
    network: &'static str,
    asn: u32,
    country: &'static str,
    coordinates: (f64, f64),
}

const PARIS_ISP_A: Place = Place {
    network: "127.1.0.0/16",
    asn: 64501,
    country: "FR",
    coordinates: (48.85, 2.35),
};
const PARIS_ISP_B: Place = Place {
    network: "127.2.0.0/16",
    asn: 64502,
    country: "FR",
    coordinates: (48.86, 2.34),
};
const LYON_ISP_C: Place = Place {
    network: "127.3.0.0/16",
    asn: 64503,
    country: "FR",
    coordinates: (45.76, 4.84),
};
const TOKYO_ISP_D: Place = Place {
    network: "127.4.0.0/16",
    asn: 64504,
    country: "JP",
    coordinates: (35.68, 139.69),
};
const ALL: [&Place; 4] = [&PARIS_ISP_A, &PARIS_ISP_B, &LYON_ISP_C, &TOKYO_ISP_D];

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tracker-geo-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_asn_db(path: &Path, places: &[&Place]) {
    let mut writer = Writer::new("GeoLite2-ASN");
    for place in places {
        let record = Asn {
            autonomous_system_number: place.asn,
            autonomous_system_organization: format!("Test ISP {}", place.asn),
        };
        writer
            .insert(place.network.parse::<IpNet>().unwrap(), &record)
            .unwrap();
    }
    std::fs::write(path, writer.to_bytes().unwrap()).unwrap();
}

fn write_city_db(path: &Path, places: &[&Place]) {
    let mut writer = Writer::new("GeoLite2-City");
    for place in places {
        let names = BTreeMap::from([("en".to_string(), format!("City of {}", place.asn))]);
        let record = City {
            city: BTreeMap::from([("names".to_string(), names)]),
            country: Country {
                iso_code: place.country.into(),
            },
            location: Location {
                latitude: place.coordinates.0,
                longitude: place.coordinates.1,
            },
        };
        writer
            .insert(place.network.parse::<IpNet>().unwrap(), &record)
            .unwrap();
    }
    std::fs::write(path, writer.to_bytes().unwrap()).unwrap();
}

fn source(place: &Place, host: u8) -> IpAddr {
    let network: IpNet = place.network.parse().unwrap();
    let IpAddr::V4(base) = network.network() else {
        unreachable!()
    };
    let octets = base.octets();
    IpAddr::from([octets[0], octets[1], 0, host])
}

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
