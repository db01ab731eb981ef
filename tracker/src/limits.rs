//! Rate and count limits that keep one client from hurting the others.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;

/// A token bucket: `rate` messages per second on average, bursts of up to `burst`.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    /// A full bucket.
    pub fn new(rate: u32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            rate: f64::from(rate),
            burst,
            tokens: burst,
            updated: Instant::now(),
        }
    }

    /// Takes one token if there is one.
    pub fn allow(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Counts protocol violations; too many within a window means the client keeps abusing.
#[derive(Debug)]
pub struct Strikes {
    max: u32,
    window: Duration,
    count: u32,
    window_start: Instant,
}

impl Strikes {
    /// Allows `max` strikes per `window`.
    pub fn new(max: u32, window: Duration) -> Self {
        Self {
            max,
            window,
            count: 0,
            window_start: Instant::now(),
        }
    }

    /// Records a strike; returns `true` when the limit is exceeded.
    pub fn strike(&mut self, now: Instant) -> bool {
        if now.saturating_duration_since(self.window_start) > self.window {
            self.window_start = now;
            self.count = 0;
        }
        self.count += 1;
        self.count > self.max
    }
}

/// Open connections per client address.
#[derive(Debug, Default)]
pub struct ConnectionsPerIp {
    counts: DashMap<IpAddr, u32>,
}

/// One counted connection; releases its count when dropped.
#[derive(Debug)]
pub struct IpSlot {
    owner: Arc<ConnectionsPerIp>,
    ip: IpAddr,
}

impl ConnectionsPerIp {
    /// Counts one more connection from `ip` unless it already has `max`.
    pub fn acquire(self: &Arc<Self>, ip: IpAddr, max: u32) -> Option<IpSlot> {
        let mut count = self.counts.entry(ip).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(IpSlot {
            owner: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        if let Some(mut count) = self.owner.counts.get_mut(&self.ip) {
            *count -= 1;
        }
        self.owner
            .counts
            .remove_if(&self.ip, |_, count| *count == 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_rate() {
        let mut limiter = RateLimiter::new(10, 3);
        let t = Instant::now();
        assert!((0..3).all(|_| limiter.allow(t)));
        assert!(!limiter.allow(t));
        assert!(limiter.allow(t + Duration::from_millis(100)));
    }

    #[test]
    fn ip_slots_are_counted_and_released() {
        let counts = Arc::new(ConnectionsPerIp::default());
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let first = counts.acquire(ip, 1).unwrap();
        assert!(counts.acquire(ip, 1).is_none());
        drop(first);
        assert!(counts.acquire(ip, 1).is_some());
    }

    #[test]
    fn strikes_reset_after_the_window() {
        let mut strikes = Strikes::new(1, Duration::from_secs(1));
        let t = Instant::now();
        assert!(!strikes.strike(t));
        assert!(strikes.strike(t));
        assert!(!strikes.strike(t + Duration::from_secs(2)));
    }
}
