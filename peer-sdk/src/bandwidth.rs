//! Bandwidth estimate for the player's ABR.
//!
//! Only CDN transfers are measured: a segment that arrives from a peer's prefetch (or that was
//! already stored) says nothing about the network path the player would fall back to, so P2P bursts
//! never push the player to a rendition the CDN cannot sustain.

use std::time::Duration;

/// Exponentially weighted throughput of CDN transfers, weighted by bytes.
#[derive(Debug, Clone)]
pub struct BandwidthEstimator {
    bits_per_second: f64,
}

/// Bytes after which an old sample has half its weight.
const HALF_LIFE_BYTES: f64 = 2_000_000.0;

impl BandwidthEstimator {
    /// Starts at `initial` bits per second.
    pub fn new(initial: f64) -> Self {
        BandwidthEstimator {
            bits_per_second: initial,
        }
    }

    /// Records a transfer of `bytes` that took `elapsed`.
    pub fn sample(&mut self, bytes: u64, elapsed: Duration) {
        let secs = elapsed.as_secs_f64().max(0.001);
        let rate = bytes as f64 * 8.0 / secs;
        let weight = 1.0 - 0.5f64.powf(bytes as f64 / HALF_LIFE_BYTES);
        self.bits_per_second += weight * (rate - self.bits_per_second);
    }

    /// The current estimate in bits per second.
    pub fn estimate(&self) -> f64 {
        self.bits_per_second
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converges_towards_measured_rate() {
        let mut estimator = BandwidthEstimator::new(1e6);
        for _ in 0..50 {
            estimator.sample(500_000, Duration::from_secs(1));
        }
        assert!((estimator.estimate() - 4e6).abs() < 1e5);
    }
}
