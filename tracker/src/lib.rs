#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod client_ip;
pub mod cluster;
pub mod config;
mod connection;
pub mod fd_limit;
pub mod geo;
pub mod hashes;
pub mod http;
pub mod id;
pub mod limits;
mod liveness;
pub mod matching;
pub mod metrics;
mod metrics_listener;
pub mod protocol;
pub mod read_ahead;
pub mod registry;
pub mod relay;
mod remote;
pub mod server;
mod shared;
pub mod stall;
mod supervisor;
pub mod tenants;
pub mod tls;
pub mod token;

pub use config::Config;
pub use id::Id20;
pub use server::Tracker;
