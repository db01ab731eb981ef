//! Prometheus metrics of the tracker, served at `/metrics`.

use crate::matching::Tier;
use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Every metric the tracker exports.
pub struct Metrics {
    registry: Registry,
    /// Open WebSocket connections.
    pub connections: IntGauge,
    /// The most WebSocket connections admitted at once (`--max-connections`).
    pub connection_capacity: IntGauge,
    /// Swarms with at least one peer (refreshed at each scrape of `/metrics`).
    pub swarms: IntGauge,
    /// Peers over all swarms (refreshed at each scrape of `/metrics`).
    pub peers: IntGauge,
    /// Announces processed.
    pub announces: IntCounter,
    /// Scrape requests processed.
    pub scrapes: IntCounter,
    /// Offers relayed, by the matching tier of the receiver.
    pub offers_relayed: IntCounterVec,
    /// Answers relayed back to their offerer.
    pub answers_relayed: IntCounter,
    /// Messages for a peer dropped because its outgoing queue was full.
    pub deliveries_dropped: IntCounter,
    /// Refused messages and connections, by reason.
    pub rejected: IntCounterVec,
    /// GeoIP lookups, by database and result.
    pub geoip_lookups: IntCounterVec,
    /// Segment hash reports, by outcome.
    pub hash_reports: IntCounterVec,
    /// Peers removed for silence.
    pub peers_expired: IntCounter,
    /// Peer ids handed to a new connection because their old one did not answer a probe.
    pub peer_id_takeovers: IntCounter,
    /// Connections ended, by why.
    pub connections_closed: IntCounterVec,
    /// 1 while Redis answers (or no Redis is configured), 0 while this replica serves alone.
    pub redis_up: IntGauge,
    /// Redis round trips, by operation, and how long they took.
    pub redis_round_trip_seconds: HistogramVec,
    /// Redis round trips that failed or timed out.
    pub redis_errors: IntCounter,
    /// Membership entries written to Redis.
    pub redis_entries_written: IntCounter,
    /// Membership entries removed from Redis because they expired or their replica died.
    pub redis_entries_expired: IntCounter,
    /// Offers and answers received from other replicas and delivered to a peer of this one.
    pub relayed_across_replicas: IntCounterVec,
    /// Restarts of the housekeeping task after it failed.
    pub housekeeping_restarts: IntCounter,
    /// Open connections, by tenant.
    pub tenant_connections: IntGaugeVec,
    /// Announces, by tenant.
    pub tenant_announces: IntCounterVec,
    /// Refused upgrades and messages, by tenant (`-` when no known tenant was named) and reason.
    pub tenant_refusals: IntCounterVec,
    /// `offers_relayed` resolved per tier, in `Tier::ALL` order (no label lookup per offer).
    offers_by_tier: Vec<IntCounter>,
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let metric = IntCounter::new(name, help).expect("valid metric definition");
    registry
        .register(Box::new(metric.clone()))
        .expect("unique metric name");
    metric
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let metric = IntGauge::new(name, help).expect("valid metric definition");
    registry
        .register(Box::new(metric.clone()))
        .expect("unique metric name");
    metric
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let metric =
        IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    registry
        .register(Box::new(metric.clone()))
        .expect("unique metric name");
    metric
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let metric = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    registry
        .register(Box::new(metric.clone()))
        .expect("unique metric name");
    metric
}

fn histogram_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let buckets = vec![
        0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    ];
    let opts = HistogramOpts::new(name, help).buckets(buckets);
    let metric = HistogramVec::new(opts, labels).expect("valid metric definition");
    registry
        .register(Box::new(metric.clone()))
        .expect("unique metric name");
    metric
}

impl Metrics {
    /// Registers every metric in a fresh registry.
    pub fn new() -> Self {
        let r = Registry::new_custom(Some("tracker".into()), None).expect("valid prefix");
        let offers_relayed = counter_vec(
            &r,
            "offers_relayed_total",
            "Offers relayed, by matching tier of the receiving peer",
            &["tier"],
        );
        let offers_by_tier = Tier::ALL
            .iter()
            .map(|tier| offers_relayed.with_label_values(&[tier.label()]))
            .collect();
        Self {
            offers_relayed,
            offers_by_tier,
            connections: gauge(&r, "connections", "Open WebSocket connections"),
            connection_capacity: gauge(
                &r,
                "connection_capacity",
                "Most WebSocket connections admitted at once (--max-connections)",
            ),
            swarms: gauge(&r, "swarms", "Swarms with at least one peer"),
            peers: gauge(&r, "peers", "Peers over all swarms"),
            announces: counter(&r, "announces_total", "Announces processed"),
            scrapes: counter(&r, "scrapes_total", "Scrapes processed"),
            answers_relayed: counter(&r, "answers_relayed_total", "Answers relayed to offerers"),
            deliveries_dropped: counter(
                &r,
                "deliveries_dropped_total",
                "Messages dropped because the receiving peer's queue was full",
            ),
            housekeeping_restarts: counter(
                &r,
                "housekeeping_restarts_total",
                "Restarts of the housekeeping task after it failed",
            ),
            tenant_connections: gauge_vec(
                &r,
                "tenant_connections",
                "Open WebSocket connections by tenant",
                &["tenant"],
            ),
            tenant_announces: counter_vec(
                &r,
                "tenant_announces_total",
                "Announces by tenant",
                &["tenant"],
            ),
            tenant_refusals: counter_vec(
                &r,
                "tenant_refusals_total",
                "Refused upgrades and messages by tenant and reason",
                &["tenant", "reason"],
            ),
            rejected: counter_vec(
                &r,
                "rejected_total",
                "Refused messages and connections, by reason",
                &["reason"],
            ),
            geoip_lookups: counter_vec(
                &r,
                "geoip_lookups_total",
                "GeoIP lookups by database and result",
                &["database", "result"],
            ),
            hash_reports: counter_vec(
                &r,
                "hash_reports_total",
                "Segment hash reports by outcome",
                &["outcome"],
            ),
            peers_expired: counter(&r, "peers_expired_total", "Peers removed for silence"),
            peer_id_takeovers: counter(
                &r,
                "peer_id_takeovers_total",
                "Peer ids taken over from a connection that did not answer a probe",
            ),
            connections_closed: counter_vec(
                &r,
                "connections_closed_total",
                "Connections ended, by reason",
                &["reason"],
            ),
            redis_up: gauge(
                &r,
                "redis_up",
                "1 while Redis answers or none is configured, 0 while serving alone",
            ),
            redis_round_trip_seconds: histogram_vec(
                &r,
                "redis_round_trip_seconds",
                "Redis round trips by operation, and their latency",
                &["op"],
            ),
            redis_errors: counter(&r, "redis_errors_total", "Redis round trips that failed"),
            redis_entries_written: counter(
                &r,
                "redis_entries_written_total",
                "Membership entries written to Redis",
            ),
            redis_entries_expired: counter(
                &r,
                "redis_entries_expired_total",
                "Membership entries removed from Redis as expired or of a dead replica",
            ),
            relayed_across_replicas: counter_vec(
                &r,
                "relayed_across_replicas_total",
                "Offers and answers from other replicas delivered to a peer of this one",
                &["kind"],
            ),
            registry: r,
        }
    }

    /// Counts one offer relayed to a peer of `tier`.
    pub fn offer_relayed(&self, tier: Tier) {
        if let Some(counter) = self.offers_by_tier.get(tier as usize) {
            counter.inc();
        }
    }

    /// Records one Redis round trip of operation `op`.
    pub fn redis_round_trip(&self, op: &str, took: Duration) {
        self.redis_round_trip_seconds
            .with_label_values(&[op])
            .observe(took.as_secs_f64());
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        let families = self.registry.gather();
        if TextEncoder::new().encode(&families, &mut buffer).is_err() {
            return String::new();
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
