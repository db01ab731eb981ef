//! Idle-memory mode: the tracker's resident memory as idle connections pile up.

use std::time::Duration;

use serde::Serialize;

use crate::config::Config;
use crate::peer::Behaviour;
use crate::procfs::resident_kib;
use crate::session::Session;

/// One memory reading.
#[derive(Clone, Debug, Serialize)]
pub struct Reading {
    /// Idle connections open.
    pub connections: u64,
    /// The tracker's VmRSS, KiB.
    pub rss_kib: u64,
}

/// The result of an idle-memory run.
#[derive(Debug, Serialize)]
pub struct IdleReport {
    /// The tracker's VmRSS before any connection, KiB.
    pub baseline_rss_kib: u64,
    /// Readings after each step.
    pub readings: Vec<Reading>,
    /// KiB per connection: the slope between the first and the last reading.
    pub kib_per_connection: f64,
    /// KiB per connection over the baseline at the last reading.
    pub kib_per_connection_over_baseline: f64,
    /// Connections that could not be opened or were lost.
    pub connection_errors: u64,
}

/// Runs the idle-memory mode described by `config`.
pub async fn run(config: &Config) -> anyhow::Result<IdleReport> {
    let pid = config
        .tracker_pid
        .first()
        .copied()
        .ok_or_else(|| anyhow::anyhow!("idle-memory mode needs --tracker-pid"))?;
    let baseline_rss_kib = resident_kib(pid)?;
    let mut session = Session::new(config)?;
    let steps = config.idle_steps.max(2);
    let mut readings = Vec::new();
    for step in 1..=steps {
        let target = (u64::from(config.connections) * u64::from(step) / u64::from(steps)) as u32;
        let open = session
            .open(
                target,
                Behaviour::Idle,
                Config::seconds(config.connect_timeout),
            )
            .await;
        tokio::time::sleep(Config::seconds(config.settle)).await;
        let reading = Reading {
            connections: open,
            rss_kib: resident_kib(pid)?,
        };
        eprintln!(
            "{:>6} idle connections: tracker VmRSS {} KiB",
            reading.connections, reading.rss_kib
        );
        readings.push(reading);
    }
    let totals = session.snapshot().totals();
    session.stop().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (first, last) = (&readings[0], &readings[readings.len() - 1]);
    let slope = (last.rss_kib as f64 - first.rss_kib as f64)
        / (last.connections.saturating_sub(first.connections)).max(1) as f64;
    let over_baseline =
        (last.rss_kib as f64 - baseline_rss_kib as f64) / last.connections.max(1) as f64;
    Ok(IdleReport {
        baseline_rss_kib,
        kib_per_connection: slope,
        kib_per_connection_over_baseline: over_baseline,
        connection_errors: totals.connect_errors + totals.disconnects,
        readings,
    })
}

impl IdleReport {
    /// The human-readable summary.
    pub fn summary(&self) -> String {
        let last = self.readings.last().expect("at least two readings");
        format!(
            "idle memory: {:.2} KiB per connection (slope from {} to {} connections); \
             {:.2} KiB per connection over the {} KiB baseline at {} connections; {} connection errors",
            self.kib_per_connection,
            self.readings[0].connections,
            last.connections,
            self.kib_per_connection_over_baseline,
            self.baseline_rss_kib,
            last.connections,
            self.connection_errors
        )
    }
}
