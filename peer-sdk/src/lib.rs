//! Peer-assisted segment delivery: a sans-IO engine that decides, segment by segment, whether
//! to fetch from peers or the CDN, speaks the peer wire protocol (`PROTOCOL.md`), verifies every
//! peer byte against a trusted SHA-256 before the player sees it, and keeps statistics.
//!
//! The [`Engine`] owns no sockets, clock or runtime. A driver (the native runtime, the WASM
//! runtime, or the [`sim`] simulator) feeds it [`Input`]s, carries out its [`Output`]s and wakes
//! it at [`Engine::poll_timeout`]. See the README for a worked example.
#![warn(missing_docs)]

pub mod bandwidth;
pub mod config;
mod engine;
pub mod integrity;
pub mod io;
pub mod ranges;
#[cfg(feature = "sim")]
pub mod sim;
pub mod stats;
pub mod stream;
pub mod swarm_id;
pub mod tracker_session;
pub mod wire;

pub use config::{Config, IntegrityMode};
pub use engine::Engine;
pub use integrity::{HashList, SegmentHash};
pub use io::{
    DigestJob, DisconnectReason, Event, Input, Output, PeerId, PlaybackState, RequestId,
    SegmentInfo, SegmentKey, SegmentSource,
};
pub use stats::Stats;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
