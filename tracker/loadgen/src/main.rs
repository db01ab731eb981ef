//! `tracker-loadgen`: drives a WebTorrent signaling tracker with realistic viewers and prints
//! relayed messages/s, announce-to-offer latency and resident memory per idle connection.

mod config;
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
    let runtime = if config.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(run(&config))
}

async fn run(config: &Config) -> anyhow::Result<()> {
    let (summary, json) = match config.mode {
        Mode::Throughput => {
            let report = throughput::run(config).await?;
            (report.summary(), serde_json::to_string_pretty(&report)?)
        }
        Mode::IdleMemory => {
            let report = idle::run(config).await?;
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
