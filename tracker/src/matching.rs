//! How candidate peers are ranked; the code lives in the `peer-matching` crate so that the swarm
//! simulator runs the same matching as the tracker.

pub use peer_matching::*;
