//! The `tracker` binary as an operator runs it: settings from `TRACKER_*` variables and a TOML
//! file, GeoIP databases reloaded on SIGHUP, and a graceful drain on SIGTERM.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use support::geoip::{PARIS_ISP_A, PARIS_ISP_B, Place, scratch_dir, source, write_asn_db};
use support::{Client, free_port, id, metric, wait_for_listener};
use tokio::process::{Child, Command};

fn signal(child: &Child, signal: libc::c_int) {
    let pid = child.id().expect("the tracker is running") as libc::pid_t;
    // SAFETY: sends a signal to our own child process; no memory is involved.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
}

/// One offer from ISP A (host `n`) to a lone receiver in `receiver_place` (host `n`), in swarm
/// `n`; returns how many offers the tracker has counted as same-ISP so far.
async fn relay_one_offer(addr: SocketAddr, receiver_place: &Place, n: u8) -> f64 {
    let swarm = id(b'S', n);
    let mut receiver = Client::connect_from(addr, source(receiver_place, n)).await;
    receiver.announce(&swarm, &id(b'R', n), 0).await;
    let mut offerer = Client::connect_from(addr, source(&PARIS_ISP_A, n)).await;
    offerer.announce(&swarm, &id(b'O', n), 1).await;
    assert_eq!(receiver.recv().await["peer_id"], id(b'O', n));
    metric(addr, "tracker_offers_relayed_total{tier=\"asn\"}").await
}

fn write_config(path: &Path, asn_db: &Path) {
    let text = format!(
        "geoip-asn = {:?}\ngeoip-reload-interval = 3600\nshutdown-timeout = 5\n",
        asn_db.to_str().unwrap()
    );
    std::fs::write(path, text).unwrap();
}

#[tokio::test]
async fn settings_from_env_and_file_reload_on_sighup_drain_on_sigterm() {
    let dir = scratch_dir("binary");
    let asn_db = dir.join("asn.mmdb");
    write_asn_db(&asn_db, &[&PARIS_ISP_A]);
    let config = dir.join("tracker.toml");
    write_config(&config, &asn_db);
    let addr = free_port();
    let mut tracker = Command::new(env!("CARGO_BIN_EXE_tracker"))
        .args(["--log", "warn"])
        .env("TRACKER_LISTEN", addr.to_string())
        .env("TRACKER_CONFIG", &config)
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_for_listener(addr).await;

    // ISP B's network is not in the database yet: not a same-ISP match.
    assert_eq!(relay_one_offer(addr, &PARIS_ISP_B, 1).await, 0.0);
    // Now ISP B's network belongs to ISP A. The file watcher checks hourly here, so only
    // SIGHUP can make the tracker see it.
    let merged = Place {
        asn: PARIS_ISP_A.asn,
        ..PARIS_ISP_B
    };
    write_asn_db(&asn_db, &[&PARIS_ISP_A, &merged]);
    signal(&tracker, libc::SIGHUP);
    let mut same_isp = 0.0;
    for n in 2..40 {
        same_isp = relay_one_offer(addr, &PARIS_ISP_B, n).await;
        if same_isp > 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(same_isp, 1.0, "after SIGHUP the new database is used");

    // SIGTERM: connected peers are told the tracker is going away (close 1001), then it exits.
    let mut peer = Client::connect(addr).await;
    peer.announce(&id(b'S', 99), &id(b'P', 1), 0).await;
    signal(&tracker, libc::SIGTERM);
    assert_eq!(peer.close_code(Duration::from_secs(5)).await, Some(1001));
    drop(peer);
    let status = tokio::time::timeout(Duration::from_secs(6), tracker.wait())
        .await
        .expect("the tracker exits within its shutdown timeout")
        .unwrap();
    assert!(status.success(), "{status}");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

/// Started with a soft open-file limit of 100 under a hard one of 160 (a typical shell's 1024
/// under a higher hard limit, scaled down), the tracker raises its limit to 160 and admits
/// 160 − 32 = 128 WebSocket connections. Those beyond get HTTP 503 instead of exhausting the
/// process's files, so health probes are still answered.
#[tokio::test]
async fn the_open_file_limit_is_raised_and_bounds_the_connections_admitted() {
    let addr = free_port();
    let _tracker = Command::new("sh")
        .args([
            "-c",
            "ulimit -S -n 100 && ulimit -H -n 160 && exec \"$0\" \"$@\"",
        ])
        .arg(env!("CARGO_BIN_EXE_tracker"))
        .args(["--log", "warn", "--listen", &addr.to_string()])
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_for_listener(addr).await;
    assert_eq!(metric(addr, "tracker_connection_capacity").await, 128.0);

    let mut admitted = Vec::new();
    let mut refused = 0;
    for n in 0..150u8 {
        let source = std::net::IpAddr::from([127, 0, 2, n + 1]);
        let attempt = Client::try_connect_with_headers(addr, source, &[]);
        match tokio::time::timeout(Duration::from_secs(5), attempt).await {
            Ok(Ok(client)) => admitted.push(client),
            Ok(refusal) => {
                assert_eq!(support::refusal_status(refusal), 503);
                refused += 1;
            }
            Err(_) => panic!("connection {n} was neither admitted nor refused"),
        }
    }
    assert_eq!((admitted.len(), refused), (128, 22));
    assert_eq!(support::http_get(addr, "/healthz").await.0, 200);
    assert_eq!(support::http_get(addr, "/readyz").await.0, 503);
    // Every admitted connection is still served.
    let swarm = id(b'S', 9);
    for (n, client) in admitted.iter_mut().enumerate().step_by(16) {
        let reply = client.announce(&swarm, &id(b'P', n as u8), 0).await;
        assert!(reply.get("interval").is_some(), "{reply}");
    }
}
