//! Several replicas behind one Redis behave as one tracker: a real `redis-server` on a loopback
//! port, trackers in this process (and as separate `tracker` processes where a replica must die
//! or be stopped by a signal), real WebSocket clients on different replicas.

mod support;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::geoip::{
    PARIS_ISP_A, PARIS_ISP_B, TOKYO_ISP_D, scratch_dir, source, write_asn_db, write_city_db,
};
use support::redis::{RedisCluster, RedisServer};
use support::{Client, answer, free_port, id, metric, start, wait_for_listener};
use tokio::process::{Child, Command};
use tracker::Tracker;

/// A replica of the cluster that `redis` is, after `adjust`.
async fn replica(redis: &RedisServer, adjust: impl FnOnce(&mut tracker::Config)) -> Tracker {
    let url = redis.url();
    start(move |config| {
        config.redis_url = Some(url);
        config.redis_heartbeat_interval = 1;
        adjust(config);
    })
    .await
}

/// The swarm's `incomplete` count as a scrape on `addr` reports it.
async fn scraped_peers(addr: SocketAddr, swarm: &str) -> u64 {
    let mut client = Client::connect(addr).await;
    client
        .send(&json!({"action": "scrape", "info_hash": swarm}))
        .await;
    let reply = client.recv().await;
    reply["files"][swarm]["incomplete"].as_u64().unwrap_or(0)
}

/// Polls `condition` every 100 ms until it holds or `limit` passes; returns how long it took.
async fn within<F, Fut>(limit: Duration, mut condition: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < limit {
        if condition().await {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

#[tokio::test]
async fn offers_and_answers_cross_replicas_and_forged_or_late_answers_are_refused() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let a = replica(&redis, |c| c.offer_timeout = 2).await;
    let b = replica(&redis, |c| c.offer_timeout = 2).await;
    let swarm = id(b'S', 1);
    let mut receiver = Client::connect(b.local_addr()).await;
    receiver.announce(&swarm, &id(b'R', 1), 0).await;
    let mut intruder = Client::connect(b.local_addr()).await;
    intruder.announce(&swarm, &id(b'I', 1), 0).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    // The offerer on A sees the peers of B, and its offer reaches one of them.
    let mut offerer = Client::connect(a.local_addr()).await;
    let reply = offerer.announce(&swarm, &id(b'O', 1), 2).await;
    assert_eq!(reply["incomplete"], 3, "{reply}");
    let offer = receiver.recv().await;
    assert_eq!(offer["peer_id"], id(b'O', 1));
    assert_eq!(offer["offer"]["type"], "offer");
    let second = intruder.recv().await;
    assert_eq!(second["peer_id"], id(b'O', 1));

    // A peer that did not receive this offer cannot answer it.
    let mut forged = answer(&swarm, &id(b'I', 1), &offer);
    forged["offer_id"] = offer["offer_id"].clone();
    intruder.send(&forged).await;
    assert_eq!(
        intruder.recv().await["failure reason"],
        "answer to an unknown or expired offer"
    );
    // The real answer travels back to A.
    receiver.send(&answer(&swarm, &id(b'R', 1), &offer)).await;
    let answered = offerer.recv().await;
    assert_eq!(answered["peer_id"], id(b'R', 1));
    assert_eq!(answered["offer_id"], offer["offer_id"]);
    assert_eq!(answered["answer"]["type"], "answer");
    // Nothing else came: the forged answer was not relayed.
    assert!(offerer.try_recv(Duration::from_millis(300)).await.is_none());

    // An answer after the offer expired is refused too.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    intruder.send(&answer(&swarm, &id(b'I', 1), &second)).await;
    assert_eq!(
        intruder.recv().await["failure reason"],
        "answer to an unknown or expired offer"
    );
    assert!(offerer.try_recv(Duration::from_millis(300)).await.is_none());

    // Scrapes count every replica's peers; the cross-replica families have series.
    assert_eq!(scraped_peers(b.local_addr(), &swarm).await, 3);
    let offers = "tracker_relayed_across_replicas_total{kind=\"offer\"}";
    assert_eq!(metric(b.local_addr(), offers).await, 2.0);
    let answers = "tracker_relayed_across_replicas_total{kind=\"answer\"}";
    assert_eq!(metric(a.local_addr(), answers).await, 1.0);
    let announce_trips = "tracker_redis_round_trip_seconds_count{op=\"announce\"}";
    assert!(metric(a.local_addr(), announce_trips).await >= 1.0);
    assert_eq!(metric(a.local_addr(), "tracker_redis_up").await, 1.0);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn matching_ranks_the_peers_of_every_replica_by_tier() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let dir = scratch_dir("cluster-tiers");
    let (asn_db, city_db) = (dir.join("asn.mmdb"), dir.join("city.mmdb"));
    let places = [&PARIS_ISP_A, &PARIS_ISP_B, &TOKYO_ISP_D];
    write_asn_db(&asn_db, &places);
    write_city_db(&city_db, &places);
    let geo = |c: &mut tracker::Config| {
        c.geoip_asn = Some(asn_db.clone());
        c.geoip_location = Some(city_db.clone());
        c.nearby_km = 100.0;
    };
    let a = replica(&redis, geo).await;
    let b = replica(&redis, geo).await;
    let swarm = id(b'S', 2);
    // Same ISP as the offerer, on the other replica; nearby and far peers on the offerer's own.
    let mut same_isp = Client::connect_from(b.local_addr(), source(&PARIS_ISP_A, 20)).await;
    same_isp.announce(&swarm, &id(b'R', 1), 0).await;
    let mut near = Client::connect_from(a.local_addr(), source(&PARIS_ISP_B, 21)).await;
    near.announce(&swarm, &id(b'R', 2), 0).await;
    let mut far = Client::connect_from(a.local_addr(), source(&TOKYO_ISP_D, 22)).await;
    far.announce(&swarm, &id(b'R', 3), 0).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut offerer = Client::connect_from(a.local_addr(), source(&PARIS_ISP_A, 23)).await;
    offerer.announce(&swarm, &id(b'O', 1), 1).await;
    assert_eq!(same_isp.recv().await["peer_id"], id(b'O', 1));
    let asn = "tracker_offers_relayed_total{tier=\"asn\"}";
    assert_eq!(metric(a.local_addr(), asn).await, 1.0);
    // With the same-ISP peer gone, the next best is the nearby one on the offerer's replica.
    same_isp.close().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    offerer.announce(&swarm, &id(b'O', 1), 1).await;
    assert_eq!(near.recv().await["peer_id"], id(b'O', 1));
    assert!(far.try_recv(Duration::from_millis(300)).await.is_none());
    let distance = "tracker_offers_relayed_total{tier=\"distance\"}";
    assert_eq!(metric(a.local_addr(), distance).await, 1.0);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn hashes_agree_from_reports_sent_to_different_replicas() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let a = replica(&redis, |c| c.hash_quorum = 3).await;
    let b = replica(&redis, |c| c.hash_quorum = 3).await;
    let swarm = id(b'S', 3);
    let digest = "cd".repeat(32);
    let query = json!({"action": "hash_query", "info_hash": swarm, "segments": ["seg-7.ts"]});
    let mut reporters = Vec::new();
    for (n, (addr, ip)) in [
        (a.local_addr(), "127.21.0.1"),
        (b.local_addr(), "127.22.0.1"),
        (a.local_addr(), "127.23.0.1"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut client = Client::connect_from(addr, ip.parse().unwrap()).await;
        let peer = id(b'H', n as u8);
        client.announce(&swarm, &peer, 0).await;
        client
            .send(
                &json!({"action": "hash_report", "info_hash": swarm, "peer_id": peer,
                           "segment": "seg-7.ts", "sha256": digest}),
            )
            .await;
        reporters.push(client);
    }
    // Each report is answered by nothing; a query after them sees the quorum of three networks.
    let mut asker = Client::connect(b.local_addr()).await;
    let mut agreed = None;
    for _ in 0..30 {
        asker.send(&query).await;
        agreed = Some(asker.recv().await["hashes"]["seg-7.ts"].clone());
        if agreed == Some(Value::from(digest.clone())) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        agreed,
        Some(Value::from(digest)),
        "the replicas agreed on the hash"
    );
    let accepted = "tracker_hash_reports_total{outcome=\"accepted\"}";
    assert_eq!(metric(a.local_addr(), accepted).await, 1.0);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_replica_without_redis_serves_its_own_peers_and_rejoins_when_redis_returns() {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let a = replica(&redis, |c| c.redis_timeout_ms = 200).await;
    let b = replica(&redis, |c| c.redis_timeout_ms = 200).await;
    let swarm = id(b'S', 4);
    let mut held = Client::connect(a.local_addr()).await;
    held.announce(&swarm, &id(b'R', 1), 0).await;

    redis.stop();
    // A's peers still meet each other, and the WebSocket stays open.
    let mut local = Client::connect(a.local_addr()).await;
    let reply = local.announce(&swarm, &id(b'O', 1), 1).await;
    assert_eq!(reply["action"], "announce", "{reply}");
    assert_eq!(held.recv().await["peer_id"], id(b'O', 1));
    assert_eq!(support::http_get(a.local_addr(), "/readyz").await.0, 200);
    let down = within(Duration::from_secs(3), || async {
        metric(a.local_addr(), "tracker_redis_up").await == 0.0
    })
    .await;
    assert!(down.is_some(), "the lost Redis shows in /metrics");

    // Redis comes back empty: A writes its peers back, and a peer of B meets them again.
    redis.resume().await;
    let back = within(Duration::from_secs(5), || async {
        metric(a.local_addr(), "tracker_redis_up").await == 1.0
            && metric(b.local_addr(), "tracker_redis_up").await == 1.0
    })
    .await;
    assert!(back.is_some(), "both replicas use Redis again");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut remote = Client::connect(b.local_addr()).await;
    let reply = remote.announce(&swarm, &id(b'P', 1), 2).await;
    assert_eq!(reply["incomplete"], 3, "{reply}");
    let first = held.recv().await;
    let second = local.recv().await;
    assert_eq!(
        (first["peer_id"].clone(), second["peer_id"].clone()),
        (json!(id(b'P', 1)), json!(id(b'P', 1)))
    );
    a.shutdown().await;
    b.shutdown().await;
}

/// A `tracker` process of the cluster, listening on `addr`.
fn spawn_replica(redis: &RedisServer, addr: SocketAddr) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tracker"))
        .args(["--listen", &addr.to_string(), "--redis-url", &redis.url()])
        .args(["--redis-heartbeat-interval", "1"])
        .args(["--shutdown-timeout", "2", "--log", "warn"])
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the tracker binary starts")
}

/// A replica process with one peer in `swarm`, seen from the in-process replica `observer`.
async fn replica_process_with_a_peer(
    redis: &RedisServer,
    observer: &Tracker,
    swarm: &str,
    peer: &str,
) -> (Child, Client) {
    let addr = free_port();
    let child = spawn_replica(redis, addr);
    wait_for_listener(addr).await;
    let mut client = Client::connect(addr).await;
    client.announce(swarm, peer, 0).await;
    let seen = within(Duration::from_secs(3), || async {
        scraped_peers(observer.local_addr(), swarm).await == 1
    })
    .await;
    assert!(seen.is_some(), "the other replica sees the peer");
    (child, client)
}

#[tokio::test]
async fn peers_of_a_killed_replica_leave_within_the_bound_and_of_a_stopped_one_at_once() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let observer = replica(&redis, |_| {}).await;
    let killed_swarm = id(b'S', 5);
    let (mut killed, _client) =
        replica_process_with_a_peer(&redis, &observer, &killed_swarm, &id(b'K', 1)).await;
    killed.kill().await.unwrap(); // SIGKILL: no goodbye.
    let gone = within(Duration::from_secs(10), || async {
        scraped_peers(observer.local_addr(), &killed_swarm).await == 0
    })
    .await;
    // Three missed heartbeats of a second, the observer's next heartbeat, and its scrape.
    let bound = Duration::from_secs(3 + 2);
    assert!(
        gone.is_some_and(|took| took <= bound),
        "gone after {gone:?}"
    );
    // Nobody is offered to the dead replica's peer.
    let mut offerer = Client::connect(observer.local_addr()).await;
    let reply = offerer.announce(&killed_swarm, &id(b'O', 1), 1).await;
    assert_eq!(reply["incomplete"], 1, "{reply}");

    let stopped_swarm = id(b'S', 6);
    let (stopped, _client) =
        replica_process_with_a_peer(&redis, &observer, &stopped_swarm, &id(b'T', 1)).await;
    let pid = stopped.id().unwrap() as libc::pid_t;
    // SAFETY: sends SIGTERM to our own child process; no memory is involved.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let gone = within(Duration::from_secs(3), || async {
        scraped_peers(observer.local_addr(), &stopped_swarm).await == 0
    })
    .await;
    assert!(gone.is_some(), "a stopped replica's peers leave at once");
    observer.shutdown().await;
}

#[tokio::test]
async fn a_peer_id_moves_between_replicas_only_when_its_old_connection_is_gone() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let a = replica(&redis, |_| {}).await;
    let b = replica(&redis, |_| {}).await;
    let swarm = id(b'S', 7);
    // A live holder on A: while it reads, its WebSocket library answers A's probe.
    let mut owner = Client::connect(a.local_addr()).await;
    owner.announce(&swarm, &id(b'P', 1), 0).await;
    let owner_reads = tokio::spawn(async move { owner.try_recv(Duration::from_secs(10)).await });
    let mut intruder = Client::connect(b.local_addr()).await;
    let reply = intruder.announce(&swarm, &id(b'P', 1), 0).await;
    assert_eq!(
        reply["failure reason"],
        "peer_id is in use by another connection"
    );
    owner_reads.abort();

    // A holder that reads nothing any more (a half-open connection after a network change):
    // the client, reconnected through B, gets its peer id back after A's probe.
    let mut old = Client::connect(a.local_addr()).await;
    old.announce(&swarm, &id(b'M', 1), 0).await;
    let mut new = Client::connect(b.local_addr()).await;
    let asked = Instant::now();
    let reply = new.announce(&swarm, &id(b'M', 1), 0).await;
    assert_eq!(reply["action"], "announce", "{reply}");
    assert!(
        asked.elapsed() >= Duration::from_millis(2900),
        "the old connection had its chance"
    );
    let takeovers = "tracker_peer_id_takeovers_total";
    assert_eq!(metric(a.local_addr(), takeovers).await, 1.0);
    // Offers for that peer id now reach the new connection on B.
    let mut offerer = Client::connect(a.local_addr()).await;
    offerer.announce(&swarm, &id(b'O', 1), 3).await;
    assert_eq!(new.recv().await["peer_id"], id(b'O', 1));
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn replicas_share_swarms_through_a_redis_cluster_that_spreads_them_over_its_nodes() {
    let Some(cluster) = RedisCluster::start().await else {
        return;
    };
    let urls = cluster.urls();
    let on_cluster = |c: &mut tracker::Config| {
        c.redis_url = Some(urls.clone());
        c.redis_cluster = true;
        c.redis_heartbeat_interval = 1;
    };
    let a = start(on_cluster).await;
    let b = start(on_cluster).await;
    // Swarms whose keys land on different nodes, each with a receiver on B and an offerer on A.
    let mut receivers = Vec::new();
    for n in 0..12 {
        let swarm = id(b'C', n);
        let mut receiver = Client::connect(b.local_addr()).await;
        receiver.announce(&swarm, &id(b'R', n), 0).await;
        receivers.push((swarm, receiver));
    }
    for (n, (swarm, receiver)) in receivers.iter_mut().enumerate() {
        let mut offerer = Client::connect(a.local_addr()).await;
        let reply = offerer.announce(swarm, &id(b'O', n as u8), 1).await;
        assert_eq!(reply["incomplete"], 2, "{reply}");
        let offer = receiver.recv().await;
        assert_eq!(offer["peer_id"], id(b'O', n as u8));
        receiver
            .send(&answer(swarm, &id(b'R', n as u8), &offer))
            .await;
        assert_eq!(offerer.recv().await["peer_id"], id(b'R', n as u8));
    }
    let holding = cluster.ports().filter(|&p| cluster.keys_on(p) > 0).count();
    assert!(
        holding >= 2,
        "the swarms' keys spread over {holding} node(s)"
    );
    assert_eq!(
        metric(a.local_addr(), "tracker_redis_errors_total").await,
        0.0
    );
    a.shutdown().await;
    b.shutdown().await;
}
