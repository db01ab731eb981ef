//! Counters and latency histograms shared by every connection, and the figures of one
//! measurement window computed from two snapshots.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Event counters, bumped by the connection tasks.
#[derive(Default)]
pub struct Counters {
    /// WebSocket connections established.
    pub connected: AtomicU64,
    /// Connections that could not be opened.
    pub connect_errors: AtomicU64,
    /// Connections the server closed or broke while the run was going.
    pub disconnects: AtomicU64,
    /// Announces sent.
    pub announces: AtomicU64,
    /// Offers sent inside announces.
    pub offers_sent: AtomicU64,
    /// Offers of other peers relayed to us.
    pub offers_received: AtomicU64,
    /// Answers we sent back.
    pub answers_sent: AtomicU64,
    /// Answers to our offers relayed to us.
    pub answers_received: AtomicU64,
    /// `failure reason` messages received.
    pub failures: AtomicU64,
    /// Other messages (announce replies, warnings).
    pub other_messages: AtomicU64,
}

/// The counters and histograms of a run.
pub struct Stats {
    /// Event counters.
    pub counters: Counters,
    /// Microseconds from sending an announce to a relayed offer of it arriving at another peer.
    offer_latency: Mutex<Histogram<u64>>,
    /// Microseconds from sending an announce to the answer to one of its offers arriving back.
    answer_latency: Mutex<Histogram<u64>>,
    /// Announce-to-offer latency of offers relayed within one replica (several replicas only).
    same_replica_latency: Mutex<Histogram<u64>>,
    /// Announce-to-offer latency of offers relayed from one replica to another.
    cross_replica_latency: Mutex<Histogram<u64>>,
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

impl Stats {
    /// Empty counters and histograms (1 µs to 100 s, three significant digits).
    pub fn new() -> Self {
        let histogram = || Histogram::new_with_bounds(1, 100_000_000, 3).expect("valid bounds");
        Self {
            counters: Counters::default(),
            offer_latency: Mutex::new(histogram()),
            answer_latency: Mutex::new(histogram()),
            same_replica_latency: Mutex::new(histogram()),
            cross_replica_latency: Mutex::new(histogram()),
        }
    }

    /// Adds one to `counter`.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Records announce-to-offer latencies (µs).
    pub fn record_offer_latencies(&self, micros: &[u64]) {
        record(&self.offer_latency, micros);
    }

    /// Records announce-to-answer latencies (µs).
    pub fn record_answer_latencies(&self, micros: &[u64]) {
        record(&self.answer_latency, micros);
    }

    /// Records offer latencies split by replica.
    pub fn record_replica_latencies(&self, latencies: &crate::peer::ReplicaLatencies) {
        record(&self.same_replica_latency, &latencies.same);
        record(&self.cross_replica_latency, &latencies.cross);
    }

    /// Current counter values; resets the histograms, so that each window has its own.
    pub fn take_snapshot(&self) -> Snapshot {
        let c = &self.counters;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Snapshot {
            connected: load(&c.connected),
            connect_errors: load(&c.connect_errors),
            disconnects: load(&c.disconnects),
            announces: load(&c.announces),
            offers_sent: load(&c.offers_sent),
            offers_received: load(&c.offers_received),
            answers_sent: load(&c.answers_sent),
            answers_received: load(&c.answers_received),
            failures: load(&c.failures),
            other_messages: load(&c.other_messages),
            offer_latency: take(&self.offer_latency),
            answer_latency: take(&self.answer_latency),
            same_replica_latency: take(&self.same_replica_latency),
            cross_replica_latency: take(&self.cross_replica_latency),
        }
    }
}

fn record(histogram: &Mutex<Histogram<u64>>, micros: &[u64]) {
    let mut histogram = histogram
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    for &value in micros {
        histogram.saturating_record(value.max(1));
    }
}

fn take(histogram: &Mutex<Histogram<u64>>) -> Histogram<u64> {
    let mut histogram = histogram
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    let taken = histogram.clone();
    histogram.reset();
    taken
}

/// Counter values at one moment, and the latencies recorded since the previous snapshot.
pub struct Snapshot {
    connected: u64,
    connect_errors: u64,
    disconnects: u64,
    announces: u64,
    offers_sent: u64,
    offers_received: u64,
    answers_sent: u64,
    answers_received: u64,
    failures: u64,
    other_messages: u64,
    offer_latency: Histogram<u64>,
    answer_latency: Histogram<u64>,
    same_replica_latency: Histogram<u64>,
    cross_replica_latency: Histogram<u64>,
}

/// The figures of one measurement window.
#[derive(Clone, Debug, Serialize)]
pub struct Window {
    /// Target announce rate (announces/s) during the window; 0 when unpaced.
    pub target_announces_per_sec: f64,
    /// Length of the window in seconds.
    pub seconds: f64,
    /// Connections open at the end of the window.
    pub connections: u64,
    /// Announces sent per second.
    pub announces_per_sec: f64,
    /// Offers sent (inside announces) per second.
    pub offers_sent_per_sec: f64,
    /// Relayed offers delivered to peers per second.
    pub offers_relayed_per_sec: f64,
    /// Relayed answers delivered to offerers per second.
    pub answers_relayed_per_sec: f64,
    /// Relayed messages (offers + answers) delivered per second: the headline figure.
    pub relayed_messages_per_sec: f64,
    /// Messages that crossed a socket (announces, the tracker's replies and refusals, relayed
    /// offers, answers sent and relayed) per relayed message: with the loopback floor's CPU per transfer, the
    /// least CPU a relayed message can cost on this machine.
    pub transfers_per_relayed_message: f64,
    /// Announce-to-offer latency, median, in milliseconds.
    pub offer_latency_p50_ms: f64,
    /// Announce-to-offer latency, 99th percentile, in milliseconds.
    pub offer_latency_p99_ms: f64,
    /// Announce-to-answer (round trip through two peers) latency, 99th percentile, in milliseconds.
    pub answer_latency_p99_ms: f64,
    /// Announce-to-offer latency within one replica, median and 99th percentile, in ms (0
    /// with one tracker address).
    pub same_replica_offer_p50_ms: f64,
    /// See `same_replica_offer_p50_ms`.
    pub same_replica_offer_p99_ms: f64,
    /// Announce-to-offer latency across replicas, median, in ms.
    pub cross_replica_offer_p50_ms: f64,
    /// Announce-to-offer latency across replicas, 99th percentile, in ms.
    pub cross_replica_offer_p99_ms: f64,
    /// `failure reason` messages received in the window.
    pub failures: u64,
    /// Connection errors and disconnects in the window.
    pub connection_errors: u64,
    /// CPU the tracker used, in cores (CPU seconds per second), when its pid is known.
    pub server_cpu_cores: Option<f64>,
    /// Relayed messages per CPU second of the tracker: its efficiency, independent of how much
    /// of the machine it got.
    pub relayed_messages_per_server_cpu_second: Option<f64>,
    /// CPU the load generator used, in cores.
    pub loadgen_cpu_cores: f64,
    /// Time the tracker's threads were runnable but waiting for a CPU, in thread-seconds per
    /// second (from schedstat), when its pid is known: queueing for the CPU, not in the tracker.
    pub server_cpu_wait: Option<f64>,
    /// The same for the load generator's threads.
    pub loadgen_cpu_wait: Option<f64>,
}

impl Window {
    /// The figures between `start` and `end`, `elapsed` apart.
    pub fn between(start: &Snapshot, end: &Snapshot, elapsed: Duration, target: f64) -> Self {
        let seconds = elapsed.as_secs_f64().max(1e-9);
        let rate = |pick: fn(&Snapshot) -> u64| (pick(end) - pick(start)) as f64 / seconds;
        let offers = rate(|s| s.offers_received);
        let answers = rate(|s| s.answers_received);
        let transfers = rate(|s| {
            s.announces
                + s.other_messages
                + s.failures
                + s.offers_received
                + s.answers_sent
                + s.answers_received
        });
        let ms = |histogram: &Histogram<u64>, quantile: f64| {
            if histogram.is_empty() {
                0.0
            } else {
                histogram.value_at_quantile(quantile) as f64 / 1000.0
            }
        };
        Self {
            target_announces_per_sec: target,
            seconds,
            connections: end.connected - end.disconnects,
            announces_per_sec: rate(|s| s.announces),
            offers_sent_per_sec: rate(|s| s.offers_sent),
            offers_relayed_per_sec: offers,
            answers_relayed_per_sec: answers,
            relayed_messages_per_sec: offers + answers,
            transfers_per_relayed_message: if offers + answers > 0.0 {
                transfers / (offers + answers)
            } else {
                0.0
            },
            offer_latency_p50_ms: ms(&end.offer_latency, 0.5),
            offer_latency_p99_ms: ms(&end.offer_latency, 0.99),
            answer_latency_p99_ms: ms(&end.answer_latency, 0.99),
            same_replica_offer_p50_ms: ms(&end.same_replica_latency, 0.5),
            same_replica_offer_p99_ms: ms(&end.same_replica_latency, 0.99),
            cross_replica_offer_p50_ms: ms(&end.cross_replica_latency, 0.5),
            cross_replica_offer_p99_ms: ms(&end.cross_replica_latency, 0.99),
            failures: end.failures - start.failures,
            connection_errors: (end.connect_errors + end.disconnects)
                - (start.connect_errors + start.disconnects),
            server_cpu_cores: None,
            relayed_messages_per_server_cpu_second: None,
            loadgen_cpu_cores: 0.0,
            server_cpu_wait: None,
            loadgen_cpu_wait: None,
        }
    }

    /// Adds the CPU seconds the tracker (if known) and the load generator used in the window.
    pub fn with_cpu(mut self, server_seconds: Option<f64>, loadgen_seconds: f64) -> Self {
        self.server_cpu_cores = server_seconds.map(|cpu| cpu / self.seconds);
        self.relayed_messages_per_server_cpu_second = server_seconds
            .filter(|&cpu| cpu > 0.0)
            .map(|cpu| self.relayed_messages_per_sec * self.seconds / cpu);
        self.loadgen_cpu_cores = loadgen_seconds / self.seconds;
        self
    }

    /// Adds the time the tracker's and the load generator's threads waited for a CPU (seconds
    /// in the window, summed over threads).
    pub fn with_cpu_wait(
        mut self,
        server_seconds: Option<f64>,
        loadgen_seconds: Option<f64>,
    ) -> Self {
        self.server_cpu_wait = server_seconds.map(|wait| wait / self.seconds);
        self.loadgen_cpu_wait = loadgen_seconds.map(|wait| wait / self.seconds);
        self
    }

    /// One line for the human-readable progress output.
    pub fn describe(&self) -> String {
        let server_cpu = self.server_cpu_cores.map_or(String::new(), |cores| {
            format!(" | tracker cpu {cores:.2} cores")
        });
        let wait = |value: Option<f64>| value.map_or("?".to_owned(), |w| format!("{w:.2}"));
        let cpu_wait = format!(
            " | waiting for a CPU: server {} generator {} thread-s/s",
            wait(self.server_cpu_wait),
            wait(self.loadgen_cpu_wait)
        );
        let replicas = if self.cross_replica_offer_p99_ms > 0.0 {
            format!(
                " | same replica p50 {:.2} p99 {:.2} ms, across replicas p50 {:.2} p99 {:.2} ms",
                self.same_replica_offer_p50_ms,
                self.same_replica_offer_p99_ms,
                self.cross_replica_offer_p50_ms,
                self.cross_replica_offer_p99_ms
            )
        } else {
            String::new()
        };
        format!(
            "target {:>8.0} ann/s | sent {:>8.0} ann/s {:>9.0} offers/s | relayed {:>9.0} offers/s {:>9.0} answers/s = {:>9.0} msg/s | offer latency p50 {:>7.2} ms p99 {:>8.2} ms | failures {} conn errors {}{server_cpu} loadgen cpu {:.2} cores{cpu_wait}{replicas}",
            self.target_announces_per_sec,
            self.announces_per_sec,
            self.offers_sent_per_sec,
            self.offers_relayed_per_sec,
            self.answers_relayed_per_sec,
            self.relayed_messages_per_sec,
            self.offer_latency_p50_ms,
            self.offer_latency_p99_ms,
            self.failures,
            self.connection_errors,
            self.loadgen_cpu_cores
        )
    }
}

impl Snapshot {
    /// The whole-run counts so far.
    pub fn totals(&self) -> Totals {
        Totals {
            announces: self.announces,
            offers_sent: self.offers_sent,
            offers_received: self.offers_received,
            answers_sent: self.answers_sent,
            answers_received: self.answers_received,
            failures: self.failures,
            other_messages: self.other_messages,
            connect_errors: self.connect_errors,
            disconnects: self.disconnects,
        }
    }
}

/// Whole-run counts.
#[derive(Clone, Debug, Serialize)]
pub struct Totals {
    /// Announces sent.
    pub announces: u64,
    /// Offers sent.
    pub offers_sent: u64,
    /// Relayed offers received.
    pub offers_received: u64,
    /// Answers sent.
    pub answers_sent: u64,
    /// Relayed answers received.
    pub answers_received: u64,
    /// `failure reason` messages received.
    pub failures: u64,
    /// Announce replies and other messages received.
    pub other_messages: u64,
    /// Connections that could not be opened.
    pub connect_errors: u64,
    /// Connections lost during the run.
    pub disconnects: u64,
}
