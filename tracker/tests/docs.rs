//! The README's configuration table, metrics table and example file stay true to the binary.

mod support;

use std::collections::BTreeSet;

use clap::CommandFactory;
use serde_json::json;
use support::geoip::{PARIS_ISP_A, scratch_dir, source, write_asn_db};
use support::{Client, id, start};
use tracker::Config;

const README: &str = include_str!("../README.md");

#[test]
fn the_example_config_file_loads() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tracker.example.toml");
    let config = Config::load(["tracker", "--config", path]).unwrap();
    assert_eq!(config.max_connections_per_ip, 256);
    assert_eq!(config.trusted_proxies.len(), 2);
}

#[test]
fn every_flag_and_variable_is_documented_in_the_readme() {
    for arg in Config::command().get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if long == "help" || long == "version" {
            continue;
        }
        let row = format!(
            "| `--{long}` | `{}` |",
            arg.get_env().unwrap().to_str().unwrap()
        );
        assert!(
            README.contains(&row),
            "README lacks the row for --{long}: {row}"
        );
    }
}

/// The metric names of the README's metrics table.
fn readme_metrics() -> BTreeSet<String> {
    README
        .lines()
        .filter_map(|line| line.strip_prefix("| `tracker_"))
        .filter_map(|rest| Some(format!("tracker_{}", rest.split_once('`')?.0)))
        .collect()
}

#[tokio::test]
async fn the_readme_lists_exactly_the_exported_metrics() {
    let asn_db = scratch_dir("docs").join("asn.mmdb");
    write_asn_db(&asn_db, &[&PARIS_ISP_A]);
    let tracker = start(|c| c.geoip_asn = Some(asn_db)).await;
    let addr = tracker.local_addr();
    // Some traffic of every kind, so that labelled families have a series to show.
    let swarm = id(b'S', 1);
    let mut receiver = Client::connect_from(addr, source(&PARIS_ISP_A, 1)).await;
    receiver.announce(&swarm, &id(b'R', 1), 0).await;
    let mut offerer = Client::connect_from(addr, source(&PARIS_ISP_A, 2)).await;
    offerer.announce(&swarm, &id(b'O', 1), 1).await;
    let offer = receiver.recv().await;
    receiver
        .send(&support::answer(&swarm, &id(b'R', 1), &offer))
        .await;
    assert_eq!(offerer.recv().await["answer"]["type"], "answer");
    receiver
        .send(&json!({"action": "scrape", "info_hash": swarm}))
        .await;
    receiver.recv().await;
    receiver.send_text("not json").await;
    receiver.recv().await;
    receiver
        .send(
            &json!({"action": "hash_report", "info_hash": swarm, "peer_id": id(b'R', 1),
                       "segment": "seg-1.ts", "sha256": "ab".repeat(32)}),
        )
        .await;
    // The hash report has no reply; a scrape after it proves it was handled.
    receiver
        .send(&json!({"action": "scrape", "info_hash": swarm}))
        .await;
    receiver.recv().await;
    // A connection that ends, so that closed connections have a series.
    Client::connect(addr).await.close().await;
    let closed = "tracker_connections_closed_total{reason=\"client\"}";
    for _ in 0..50 {
        if support::metric(addr, closed).await >= 1.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let (_, body) = support::http_get(addr, "/metrics").await;
    let exported: BTreeSet<String> = body
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| Some(rest.split_once(' ')?.0.to_owned()))
        .collect();
    // Families that only a replica with Redis fills; `tests/cluster.rs` checks they appear.
    let documented: BTreeSet<String> = readme_metrics()
        .into_iter()
        .filter(|name| !REDIS_ONLY.contains(&name.as_str()))
        .filter(|name| !TENANTS_ONLY.contains(&name.as_str()))
        .collect();
    assert_eq!(documented, exported, "README table vs /metrics:\n{body}");
    tracker.shutdown().await;
}

/// Metric families without a series until tenants are configured; `tests/tenants.rs` checks
/// they appear.
const TENANTS_ONLY: [&str; 3] = [
    "tracker_tenant_connections",
    "tracker_tenant_announces_total",
    "tracker_tenant_refusals_total",
];

/// Metric families without a series until Redis is in use.
const REDIS_ONLY: [&str; 2] = [
    "tracker_redis_round_trip_seconds",
    "tracker_relayed_across_replicas_total",
];
