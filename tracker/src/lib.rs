//! A WebTorrent-compatible signaling tracker for peer-assisted video delivery.
//!
//! Viewers announce the swarm (stream × rendition) they are in; the tracker relays their WebRTC
//! offers to the closest peers of the same swarm (same ISP, then nearby, then same country, then
//! anyone) and relays the answers back. See `PROTOCOL.md` for the wire format and `README.md`
//! for running and configuring it.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let config = tracker::Config::with_listen("127.0.0.1:0".parse()?);
//! let running = tracker::Tracker::start(config).await?;
//! println!("ws://{}/", running.local_addr());
//! running.shutdown().await;
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

pub mod client_ip;
pub mod config;
mod connection;
pub mod geo;
pub mod hashes;
pub mod http;
pub mod id;
pub mod limits;
pub mod matching;
pub mod metrics;
pub mod protocol;
pub mod registry;
pub mod relay;
pub mod server;
pub mod tls;

pub use config::Config;
pub use id::Id20;
pub use server::Tracker;
