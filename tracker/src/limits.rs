//! Rate and count limits that keep one client from hurting the others.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::id::Id20;

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

/// The relayed offers one receiver takes per second: at most `per_receiver` in all and
/// `per_sender` from one offering peer, so that one sender cannot flood a chosen peer and push
/// the offers of the others out of its pending list. Offers beyond are dropped.
#[derive(Debug)]
pub struct OfferBudget {
    per_sender: u32,
    per_receiver: u32,
    window_start: Instant,
    total: u32,
    /// Offers this second by sender; at most `per_receiver` entries.
    by_sender: HashMap<Id20, u32>,
}

impl OfferBudget {
    /// A budget of `per_sender` and `per_receiver` offers per second.
    pub fn new(per_sender: u32, per_receiver: u32) -> Self {
        Self {
            per_sender,
            per_receiver,
            window_start: Instant::now(),
            total: 0,
            by_sender: HashMap::new(),
        }
    }

    /// Takes one offer from `sender` if both budgets allow it.
    pub fn allow(&mut self, sender: Id20, now: Instant) -> bool {
        if now.saturating_duration_since(self.window_start) >= Duration::from_secs(1) {
            self.window_start = now;
            self.total = 0;
            self.by_sender.clear();
        }
        if self.total >= self.per_receiver {
            return false;
        }
        let from_sender = self.by_sender.entry(sender).or_default();
        if *from_sender >= self.per_sender {
            return false;
        }
        *from_sender += 1;
        self.total += 1;
        true
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

/// Admission of connections: at most `max_total` open in all and `max_per_ip` from one client
/// address, where all of an IPv6 /64 counts as one address (a single subscriber is routinely
/// given a whole /64), and at most `max_per_56` from one IPv6 /56 (subscribers often hold a /56
/// or more, and could otherwise open `max_per_ip` connections from each of its 256 /64s).
#[derive(Debug)]
pub struct Admission {
    max_total: u32,
    max_per_ip: u32,
    max_per_56: u32,
    total: AtomicU32,
    per_ip: DashMap<IpAddr, u32>,
    per_56: DashMap<IpAddr, u32>,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `max_total` connections are open.
    AtCapacity,
    /// `max_per_ip` connections are open from this client address (or `max_per_56` from its
    /// IPv6 /56).
    TooManyFromAddress,
}

/// One admitted connection; gives its place back when dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    admission: Arc<Admission>,
    ip: IpAddr,
    network_56: Option<IpAddr>,
}

impl Admission {
    /// Admits at most `max_total` connections, `max_per_ip` of them from one address and
    /// `max_per_56` from one IPv6 /56.
    pub fn new(max_total: u32, max_per_ip: u32, max_per_56: u32) -> Self {
        Self {
            max_total,
            max_per_ip,
            max_per_56,
            total: AtomicU32::new(0),
            per_ip: DashMap::new(),
            per_56: DashMap::new(),
        }
    }

    /// Counts one more connection from `ip`, unless a limit is reached.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionSlot, Refused> {
        let (ip, network_56) = subscriber(ip);
        self.total
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < self.max_total).then_some(open + 1)
            })
            .map_err(|_| Refused::AtCapacity)?;
        if !take(&self.per_ip, ip, self.max_per_ip) {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(Refused::TooManyFromAddress);
        }
        if let Some(network) = network_56
            && !take(&self.per_56, network, self.max_per_56)
        {
            give_back(&self.per_ip, ip);
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(Refused::TooManyFromAddress);
        }
        Ok(ConnectionSlot {
            admission: Arc::clone(self),
            ip,
            network_56,
        })
    }

    /// Whether `max_total` connections are open.
    pub fn is_full(&self) -> bool {
        self.total.load(Ordering::Acquire) >= self.max_total
    }

    /// The most connections admitted at once.
    pub fn capacity(&self) -> u32 {
        self.max_total
    }
}

/// Counts one more for `key` unless it has `max`.
fn take(counts: &DashMap<IpAddr, u32>, key: IpAddr, max: u32) -> bool {
    let mut count = counts.entry(key).or_insert(0);
    if *count >= max {
        drop(count);
        counts.remove_if(&key, |_, count| *count == 0);
        return false;
    }
    *count += 1;
    true
}

/// Counts one less for `key`.
fn give_back(counts: &DashMap<IpAddr, u32>, key: IpAddr) {
    if let Some(mut count) = counts.get_mut(&key) {
        *count = count.saturating_sub(1);
    }
    counts.remove_if(&key, |_, count| *count == 0);
}

/// The address that stands for one subscriber: an IPv4 address (also when written IPv4-mapped),
/// or the /64 network of an IPv6 address; and for IPv6, its /56 network.
fn subscriber(ip: IpAddr) -> (IpAddr, Option<IpAddr>) {
    let network = |v6: std::net::Ipv6Addr, bits: u32| -> IpAddr {
        IpAddr::V6((u128::from(v6) & !(u128::MAX >> bits)).into())
    };
    match ip {
        IpAddr::V4(_) => (ip, None),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => (IpAddr::V4(v4), None),
            None => (network(v6, 64), Some(network(v6, 56))),
        },
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let admission = &self.admission;
        give_back(&admission.per_ip, self.ip);
        if let Some(network) = self.network_56 {
            give_back(&admission.per_56, network);
        }
        admission.total.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offer_budget_caps_each_sender_and_the_total_per_second() {
        let mut budget = OfferBudget::new(2, 3);
        let start = Instant::now();
        let (a, b, c) = (Id20([1; 20]), Id20([2; 20]), Id20([3; 20]));
        assert!(budget.allow(a, start) && budget.allow(a, start));
        assert!(!budget.allow(a, start), "a third offer from one sender");
        assert!(budget.allow(b, start));
        assert!(!budget.allow(c, start), "a fourth offer in all");
        let later = start + Duration::from_secs(1);
        assert!(budget.allow(a, later) && budget.allow(c, later));
    }

    #[test]
    fn bucket_allows_burst_then_rate() {
        let mut limiter = RateLimiter::new(10, 3);
        let t = Instant::now();
        assert!((0..3).all(|_| limiter.allow(t)));
        assert!(!limiter.allow(t));
        assert!(limiter.allow(t + Duration::from_millis(100)));
    }

    #[test]
    fn connections_are_admitted_per_address_and_in_all() {
        let admission = Arc::new(Admission::new(2, 1, u32::MAX));
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let c: IpAddr = "127.0.0.3".parse().unwrap();
        let first = admission.admit(a).unwrap();
        assert_eq!(admission.admit(a).unwrap_err(), Refused::TooManyFromAddress);
        // A refusal for the address takes no place in the total.
        let second = admission.admit(b).unwrap();
        assert!(admission.is_full());
        assert_eq!(admission.admit(c).unwrap_err(), Refused::AtCapacity);
        drop(first);
        assert!(!admission.is_full());
        let _third = admission.admit(a).unwrap();
        drop(second);
        assert!(admission.admit(c).is_ok());
    }

    #[test]
    fn an_ipv6_64_counts_as_one_address() {
        let admission = Arc::new(Admission::new(10, 1, u32::MAX));
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        let _first = admission.admit(ip("2001:db8:1:2::1")).unwrap();
        let same_64 = admission.admit(ip("2001:db8:1:2:ffff::9"));
        assert_eq!(same_64.unwrap_err(), Refused::TooManyFromAddress);
        assert!(admission.admit(ip("2001:db8:1:3::1")).is_ok());
        let _v4 = admission.admit(ip("192.0.2.1")).unwrap();
        let mapped = admission.admit(ip("::ffff:192.0.2.1"));
        assert_eq!(mapped.unwrap_err(), Refused::TooManyFromAddress);
    }

    #[test]
    fn an_ipv6_56_has_its_own_cap_over_its_64s() {
        let admission = Arc::new(Admission::new(100, 10, 2));
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        let _first = admission.admit(ip("2001:db8:0:100::1")).unwrap();
        let second = admission.admit(ip("2001:db8:0:1ff::1")).unwrap();
        let third_64 = admission.admit(ip("2001:db8:0:1aa::1"));
        assert_eq!(third_64.unwrap_err(), Refused::TooManyFromAddress);
        assert!(
            admission.admit(ip("2001:db8:0:200::1")).is_ok(),
            "another /56"
        );
        drop(second);
        assert!(admission.admit(ip("2001:db8:0:1aa::1")).is_ok());
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
