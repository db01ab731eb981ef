//! `tracker-loadgen`: drives a WebTorrent signaling tracker with realistic viewers and prints
//! relayed messages/s, announce-to-offer latency and resident memory per idle connection; and
//! measures the kernel's floor under any tracker on this machine.

mod config;
mod floor;
mod idle;
mod peer;
mod procfs;
mod sdp;
mod session;
mod stats;
mod swarms;
mod throughput;
mod wire;

use clap::Parser;

use crate::config::{Config, Mode};

fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    config.validate()?;
    let (summary, json) = match config.mode {
        Mode::Throughput => {
            let report = runtime(&config)?.block_on(throughput::run(&config))?;
            (report.summary(), serde_json::to_string_pretty(&report)?)
        }
        Mode::IdleMemory => {
            let report = runtime(&config)?.block_on(idle::run(&config))?;
            (report.summary(), serde_json::to_string_pretty(&report)?)
        }
        // Plain threads: the floor must not pay for an async runtime.
        Mode::LoopbackFloor => {
            let report = floor::run(&config)?;
            (report.summary(), serde_json::to_string_pretty(&report)?)
        }
    };
    if config.json {
        eprintln!("{summary}");
        println!("{json}");
    } else {
        println!("{summary}");
    }
    Ok(())
}

/// The runtime the viewers run on: `--threads` workers, or one current thread.
fn runtime(config: &Config) -> std::io::Result<tokio::runtime::Runtime> {
    if config.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.threads)
            .enable_all()
            .build()
    }
}
