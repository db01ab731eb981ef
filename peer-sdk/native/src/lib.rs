//! The native runtime of the peer SDK: the I/O a peer needs around the sans-IO core, on tokio.
//!
//! - [`rtc`]: WebRTC peer connections with one data channel (the `webrtc` crate);
//! - [`tracker_client`]: the WebTorrent tracker protocol over WebSocket, with reconnects;
//! - [`signaling`]: meeting peers through the tracker (offers out, answers back);
//! - [`cdn`]: HTTP GETs and `Range` requests to the CDN (`reqwest` with rustls);
//! - [`hls`]: HLS playlists and live refresh;
//! - [`swarm_id`]: the swarm's `info_hash` from stream and rendition.
#![warn(missing_docs)]

pub mod cdn;
pub mod hls;
pub mod id20;
pub mod player;
pub mod rtc;
pub mod signaling;
pub mod tracker_client;
pub mod viewer;

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
