//! The simulator's scenarios, shortened to two simulated minutes so that `cargo test` runs them
//! in seconds (the workspace builds peer-sdk optimised in test builds too), with the issue's
//! targets asserted on them. The engines are the real ones; only the network, the CDN and the
//! tracker are modelled, because the point is a swarm, which no real stack runs here.
//!
//! Shortened to 120 s, a sixth of the run is the join ramp (every viewer's first segments come
//! from the CDN), so the offload floors here sit below the full-size targets (85% and 75%),
//! which `BENCHMARKS.md` reports for the full 300 s scenarios (several seeds). Every other
//! target is asserted as the issue states it. The runs are deterministic (seeded), so the
//! figures are the same on every machine.

use peer_sdk::sim::{Matching, Report, Scenario, run};

/// Loads `scenarios/NAME.toml` and shrinks it to `peers` viewers and `secs` simulated seconds.
fn shrunk(name: &str, peers: usize, secs: f64) -> Scenario {
    let path = format!("{}/scenarios/{name}.toml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("scenario file");
    let mut scenario: Scenario = toml::from_str(&text).expect("scenario parses");
    scenario.peers = peers;
    scenario.duration_secs = secs;
    scenario.join_window_secs = scenario.join_window_secs.min(secs / 4.0);
    scenario
}

/// Runs a scenario and prints its report (shown by `cargo test -- --nocapture`).
fn run_and_show(scenario: &Scenario) -> Report {
    let report = run(scenario);
    eprintln!("{report}");
    assert_eq!(
        report.p2p.protocol_violations, 0,
        "well-behaved engines never see a protocol violation"
    );
    report
}

#[test]
fn every_scenario_file_parses() {
    for name in ["live-100", "live-100-corrupt", "cdn-capped", "live-10k"] {
        shrunk(name, 1, 1.0);
    }
}

#[test]
fn live_swarm_offloads_without_more_rebuffering_than_the_cdn() {
    let report = run_and_show(&shrunk("live-100", 100, 120.0));
    assert!(report.p2p.offload >= 0.78, "offload {}", report.p2p.offload);
    assert!(
        report.p2p.rebuffer_ratio <= report.cdn_only.rebuffer_ratio,
        "p2p {} vs cdn-only {}",
        report.p2p.rebuffer_ratio,
        report.cdn_only.rebuffer_ratio
    );
    assert_eq!(report.p2p.corrupt_delivered, 0);
}

#[test]
fn corrupt_senders_never_reach_the_player() {
    let report = run_and_show(&shrunk("live-100-corrupt", 100, 120.0));
    assert_eq!(
        report.p2p.corrupt_delivered, 0,
        "no corrupt segment delivered"
    );
    assert!(
        report.p2p.integrity_rejects > 0,
        "corrupt data was sent and caught"
    );
    assert!(report.p2p.peers_banned > 0, "corrupt senders are banned");
    assert!(report.p2p.offload >= 0.72, "offload {}", report.p2p.offload);
}

#[test]
fn a_capped_cdn_rebuffers_far_less_with_peers() {
    let report = run_and_show(&shrunk("cdn-capped", 100, 120.0));
    assert!(report.cdn_only.rebuffer_ratio > 0.0, "the cap must bite");
    assert!(
        report.p2p.rebuffer_ratio <= report.cdn_only.rebuffer_ratio / 3.0,
        "p2p {} vs cdn-only {}",
        report.p2p.rebuffer_ratio,
        report.cdn_only.rebuffer_ratio
    );
}

#[test]
fn reconnecting_peers_see_no_message_of_their_earlier_connection() {
    // Ten connections at most per viewer in a large swarm: evictions and re-introductions
    // connect the same two viewers again while their earlier connection still carries data.
    let report = run_and_show(&shrunk("live-10k", 400, 120.0));
    assert!(report.p2p.offload > 0.0, "offload {}", report.p2p.offload);
}

#[test]
fn tracker_matching_keeps_more_bytes_inside_an_asn_than_random_matching() {
    let mut scenario = shrunk("live-100", 60, 60.0);
    scenario.asns = 4;
    scenario.matching = Matching::Tracker;
    let matched = run(&scenario).p2p;
    scenario.matching = Matching::Random;
    let random = run(&scenario).p2p;
    assert!(
        matched.same_asn_share > random.same_asn_share + 0.15,
        "same-ASN share: matched {} vs random {}",
        matched.same_asn_share,
        random.same_asn_share
    );
}
