//! The `tracker` binary as an operator runs it: settings from `TRACKER_*` variables and a TOML
//! file, GeoIP databases reloaded on SIGHUP, and a graceful drain on SIGTERM.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use support::geoip::{PARIS_ISP_A, PARIS_ISP_B, Place, scratch_dir, source, write_asn_db};
use support::{Client, id, metric};
use tokio::process::{Child, Command};

/// A loopback port nobody listens on right now.
fn free_port() -> SocketAddr {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap()
}

fn signal(child: &Child, signal: libc::c_int) {
    let pid = child.id().expect("the tracker is running") as libc::pid_t;
    // SAFETY: sends a signal to our own child process; no memory is involved.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
}

async fn wait_for_listener(addr: SocketAddr) {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the tracker did not listen on {addr}");
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
