//! Offers follow ISP tiers end to end: a small GeoIP ASN database built here maps loopback /16s
//! to two made-up ISPs (A: 127.1/16 and 127.3/16, B: 127.2/16); peers connect to the real
//! tracker from source addresses in those networks, and each newcomer's one offer reaches, and
//! opens a real data channel to, the peer of its own ISP although a peer of the other ISP is in
//! the swarm. A's newcomer (127.3.0.1) shares a longer address prefix with B's peer (127.2.0.1)
//! than with A's (127.1.0.1), so only the ASN tier can send its offer to A.
//! (The data channels themselves use 127.0.0.1: the tracker matches by the WebSocket's source.)

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use mmdb_writer::Writer;
use peer_native::id20::Id20;
use peer_native::rtc::{LinkEvent, RtcFactory};
use peer_native::signaling::{Signaling, SignalingConfig, SignalingEvent};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

const SWARM: Id20 = [0x5A; 20];

#[derive(Serialize)]
struct Asn {
    autonomous_system_number: u32,
    autonomous_system_organization: String,
}

fn write_asn_db(path: &std::path::Path, networks: &[(&str, u32)]) {
    let mut writer = Writer::builder("GeoLite2-ASN")
        .description(&[("en", "test ASN database")])
        .build();
    for (network, asn) in networks {
        let record = Asn {
            autonomous_system_number: *asn,
            autonomous_system_organization: format!("Test ISP {asn}"),
        };
        writer
            .insert(network.parse::<IpNet>().unwrap(), &record)
            .unwrap();
    }
    std::fs::write(path, writer.to_bytes().unwrap()).unwrap();
}

struct Viewer {
    signaling: Signaling,
    events: mpsc::Receiver<SignalingEvent>,
}

fn join(tracker: &str, source: &str, factory: &Arc<RtcFactory>) -> Viewer {
    let mut config = SignalingConfig::new(tracker);
    config.offers_per_announce = 1;
    config.source = Some(source.parse::<IpAddr>().unwrap());
    let (signaling, events) = Signaling::spawn(config, Arc::clone(factory));
    signaling.join(SWARM);
    Viewer { signaling, events }
}

/// The peer this viewer's own offer reached, once the data channel to it is open.
async fn offered_to(viewer: &mut Viewer) -> Id20 {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match viewer.events.recv().await.expect("signaling running") {
                SignalingEvent::Peer {
                    peer_id,
                    mut link,
                    initiator: true,
                    ..
                } => {
                    let opened = link.next_event().await;
                    assert!(matches!(opened, Some(LinkEvent::Open(_))), "channel opens");
                    // Keep the connection up for the rest of the test.
                    tokio::spawn(async move { while link.next_event().await.is_some() {} });
                    return peer_id;
                }
                _ => continue,
            }
        }
    })
    .await
    .expect("the newcomer's offer was answered within 20 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offers_follow_isp_tiers() {
    let dir = std::env::temp_dir().join(format!("peer-native-geo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let asn_db = dir.join("asn.mmdb");
    write_asn_db(
        &asn_db,
        &[
            ("127.1.0.0/16", 64501),
            ("127.3.0.0/16", 64501),
            ("127.2.0.0/16", 64502),
        ],
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut config = tracker::Config::with_listen(listener.local_addr().unwrap());
    config.geoip_asn = Some(asn_db);
    let tracker = tracker::Tracker::start_on(listener, config).await.unwrap();
    let url = format!("ws://{}/", tracker.local_addr());
    let factory = Arc::new(RtcFactory::loopback());

    let a1 = join(&url, "127.1.0.1", &factory);
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Alone with a peer of another ISP, b1 still meets it: tiers rank, never partition.
    let mut b1 = join(&url, "127.2.0.1", &factory);
    assert_eq!(offered_to(&mut b1).await, a1.signaling.peer_id());
    let mut a2 = join(&url, "127.3.0.1", &factory);
    assert_eq!(
        offered_to(&mut a2).await,
        a1.signaling.peer_id(),
        "ISP A's newcomer is matched with ISP A"
    );
    let mut b2 = join(&url, "127.2.0.2", &factory);
    assert_eq!(
        offered_to(&mut b2).await,
        b1.signaling.peer_id(),
        "ISP B's newcomer is matched with ISP B"
    );
    drop((a1, b1, a2, b2));
    tracker.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
