//! The test origin: an HTTP server that serves an HLS folder as VOD or as a live sliding window,
//! with `Range`, CORS, and per-path faults (latency, bandwidth cap, 5xx, truncation, stalls)
//! set at start or at run time through `POST /_control/faults`; `GET /_stats` counts requests
//! and bytes per path. Next to each media playlist it serves the sidecar hash list
//! `PLAYLIST.hashes` that peers verify peer-delivered segments against ([`hashes`]).
//!
//! Start it in-process on a listener of your own:
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use demo_player::{OriginConfig, LiveConfig, FaultConfig, sample_media};
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let origin = demo_player::start(listener, OriginConfig {
//!     media_dir: sample_media()?,
//!     live: Some(LiveConfig { window_segments: 6, speed: 1.0 }),
//!     faults: FaultConfig::default(),
//! }).await?;
//! println!("master playlist at {}", origin.url("/master.m3u8"));
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod faults;
pub mod hashes;
pub mod live;
pub mod sample;
pub mod server;
pub mod shaping;
pub mod stats;

pub use faults::{Failure, FaultConfig, FaultRule};
pub use live::LiveConfig;
pub use sample::sample_media;
pub use server::{OriginConfig, RunningOrigin, StartError, start};
pub use stats::{Counts, StatsSnapshot};
