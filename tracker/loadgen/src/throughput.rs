//! Throughput mode: a ramp of announce rates until relayed messages/s stop growing, or one
//! fixed rate held for a while (for latency at a chosen load).

use serde::Serialize;
use tokio::time::Instant;

use crate::config::Config;
use crate::peer::Behaviour;
use crate::procfs;
use crate::session::Session;
use crate::stats::{Totals, Window};

/// Steps without a new peak after which the ramp ends.
const STEPS_WITHOUT_GAIN: u32 = 2;
/// Growth below which a step does not count as a new peak.
const MIN_GAIN: f64 = 1.03;

/// The result of a throughput run.
#[derive(Debug, Serialize)]
pub struct ThroughputReport {
    /// Connections open when the load started.
    pub connections: u64,
    /// Every measured window (ramp steps, or the one fixed-rate window).
    pub windows: Vec<Window>,
    /// The window with the most relayed messages/s.
    pub peak: Window,
    /// Whole-run counts.
    pub totals: Totals,
}

/// Runs the throughput mode described by `config`.
pub async fn run(config: &Config) -> anyhow::Result<ThroughputReport> {
    let mut session = Session::new(config)?;
    let connections = session
        .open(
            config.connections,
            Behaviour::Active,
            Config::seconds(config.connect_timeout),
        )
        .await;
    anyhow::ensure!(
        connections > 0,
        "no connection to {:?} could be opened",
        config.tracker
    );
    eprintln!("{connections} connections open to {:?}", config.tracker);
    let mut windows = Vec::new();
    match config.rate {
        Some(rate) => windows.push(measure(&session, config, rate, config.duration).await),
        None => {
            let mut rate = config.ramp_start;
            let mut best = 0.0;
            let mut without_gain = 0;
            for _ in 0..config.max_steps {
                let window = measure(&session, config, rate, config.step_seconds).await;
                if window.relayed_messages_per_sec > best * MIN_GAIN {
                    without_gain = 0;
                } else {
                    without_gain += 1;
                }
                best = f64::max(best, window.relayed_messages_per_sec);
                windows.push(window);
                if without_gain >= STEPS_WITHOUT_GAIN {
                    break;
                }
                rate *= config.ramp_factor;
            }
        }
    }
    let totals = session.snapshot().totals();
    session.stop().await;
    let peak = windows
        .iter()
        .max_by(|a, b| {
            a.relayed_messages_per_sec
                .total_cmp(&b.relayed_messages_per_sec)
        })
        .cloned()
        .expect("at least one window");
    Ok(ThroughputReport {
        connections,
        windows,
        peak,
        totals,
    })
}

/// Holds `rate` announces/s for the warm-up, then measures `seconds`.
async fn measure(session: &Session, config: &Config, rate: f64, seconds: f64) -> Window {
    session.set_rate(rate);
    tokio::time::sleep(Config::seconds(config.warmup)).await;
    let cpu = || {
        let server = config.server_cpu_seconds();
        (
            server,
            procfs::cpu_seconds(std::process::id()).unwrap_or(0.0),
        )
    };
    let cpu_wait = || {
        let server = config.server_cpu_wait_seconds();
        (server, procfs::cpu_wait_seconds(std::process::id()))
    };
    let start = session.snapshot();
    let (server_before, loadgen_before) = cpu();
    let (server_wait_before, loadgen_wait_before) = cpu_wait();
    let started = Instant::now();
    tokio::time::sleep(Config::seconds(seconds)).await;
    let end = session.snapshot();
    let (server_after, loadgen_after) = cpu();
    let (server_wait_after, loadgen_wait_after) = cpu_wait();
    let difference = |before: Option<f64>, after: Option<f64>| {
        before.zip(after).map(|(before, after)| after - before)
    };
    let window = Window::between(&start, &end, started.elapsed(), rate)
        .with_cpu(
            difference(server_before, server_after),
            loadgen_after - loadgen_before,
        )
        .with_cpu_wait(
            difference(server_wait_before, server_wait_after),
            difference(loadgen_wait_before, loadgen_wait_after),
        );
    eprintln!("{}", window.describe());
    window
}

impl ThroughputReport {
    /// The human-readable summary.
    pub fn summary(&self) -> String {
        let peak = &self.peak;
        format!(
            "peak: {:.0} relayed messages/s ({:.0} offers/s + {:.0} answers/s) at {:.0} announces/s \
             over {} connections; announce-to-offer latency p50 {:.2} ms, p99 {:.2} ms; \
             {} failures, {} connection errors in the run{}",
            peak.relayed_messages_per_sec,
            peak.offers_relayed_per_sec,
            peak.answers_relayed_per_sec,
            peak.announces_per_sec,
            self.connections,
            peak.offer_latency_p50_ms,
            peak.offer_latency_p99_ms,
            self.totals.failures,
            self.totals.connect_errors + self.totals.disconnects,
            peak.relayed_messages_per_server_cpu_second
                .map_or(String::new(), |per_cpu| format!(
                    "; {per_cpu:.0} relayed messages per tracker CPU second"
                ))
        )
    }
}
