//! Runs the load generator for about two seconds against our tracker (in-process) and against the
//! `bittorrent-tracker` npm server (a real Node process), and checks that offers and answers flowed
//! through each, so the benchmark tool keeps working; and runs its loopback floor briefly.

use std::path::Path;
use std::process::Stdio;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// Runs `tracker-loadgen` with `args` (separated by spaces) and `--json`; returns its JSON report.
async fn loadgen_report(args: &str) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_tracker-loadgen"))
        .args(args.split_whitespace())
        .arg("--json")
        .output()
        .await
        .expect("the load generator runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "load generator failed: {stderr}");
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("not JSON ({error}): {stderr}"))
}

/// Runs `tracker-loadgen` at a low fixed rate against `tracker` and returns its JSON report.
async fn run_loadgen(tracker: &str) -> Value {
    let load = "--rate 60 --duration 2 --warmup 0.5 --connections 40 --swarms 4";
    loadgen_report(&format!(
        "--tracker {tracker} {load} --source-addresses 8 --sdp-pool 16"
    ))
    .await
}

/// Asserts that announces, offers and answers all flowed and nothing failed.
fn assert_signaling_flowed(report: &Value) {
    assert_eq!(report["connections"], 40, "{report:#}");
    let totals = &report["totals"];
    let count = |key: &str| totals[key].as_u64().unwrap();
    assert!(count("announces") >= 60, "{report:#}");
    assert!(count("offers_received") > 0, "{report:#}");
    assert!(count("answers_received") > 0, "{report:#}");
    assert!(count("answers_received") <= count("answers_sent"));
    assert_eq!(count("failures"), 0, "{report:#}");
    assert_eq!(count("connect_errors") + count("disconnects"), 0);
    let window = &report["windows"][0];
    assert!(window["relayed_messages_per_sec"].as_f64().unwrap() > 0.0);
    // Each answer crosses twice (to the tracker, to the offerer), each offer once, and every
    // announce and its reply come on top.
    let transfers = window["transfers_per_relayed_message"].as_f64().unwrap();
    assert!(transfers > 1.5, "{transfers} transfers per relayed message");
    assert!(window["offer_latency_p99_ms"].as_f64().unwrap() > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offers_and_answers_flow_through_our_tracker() {
    let config = tracker::Config::with_listen("127.0.0.1:0".parse().unwrap());
    let running = tracker::Tracker::start(config).await.unwrap();
    let report = run_loadgen(&running.local_addr().to_string()).await;
    running.shutdown().await;
    assert_signaling_flowed(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offers_and_answers_flow_through_the_reference_server() {
    let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("js");
    assert!(
        js.join("node_modules/bittorrent-tracker").is_dir(),
        "run `npm ci` in {} first (.ci/install does)",
        js.display()
    );
    let mut server = Command::new("node")
        .arg("reference-server.mjs")
        .arg("0")
        .current_dir(&js)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().expect("a startup line");
    let address = first
        .strip_prefix("listening ")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("unexpected startup line {first:?}"))
        .to_owned();
    let report = run_loadgen(&address).await;
    server.kill().await.unwrap();
    assert_signaling_flowed(&report);
}

#[tokio::test]
async fn the_loopback_floor_moves_messages_and_reports_their_cost() {
    let report = loadgen_report(
        "--mode loopback-floor --connections 20 --source-addresses 4 --message-size 1400 \
         --warmup 0.2 --duration 1",
    )
    .await;
    let figure = |key: &str| report[key].as_f64().unwrap();
    assert_eq!(report["connections"], 20, "{report:#}");
    assert!(figure("transfers_per_sec") > 1000.0, "{report:#}");
    assert!(figure("cpu_us_per_transfer") > 0.0, "{report:#}");
    let all_cores = figure("machine_cores") * 1e6 / figure("cpu_us_per_transfer");
    assert!((figure("transfers_per_sec_on_all_cores") - all_cores).abs() < 1.0);
}
