//! The rules of a viewer's session with its trackers, kept without I/O so that every driver (the
//! native runtime, the browser runtime and the simulator) follows the same ones: the client
//! prefix of peer ids, how long an offer lives, the announce schedule and when to announce again
//! after losing peers, and the reconnect backoff.
//!
//! Re-announce policy: a viewer announces to the swarm it is in when it joins, then every
//! interval the tracker gives ([`DEFAULT_INTERVAL`] until it gives one); and when a connection
//! ends and no connection to its swarm is left, again within [`REANNOUNCE_AFTER_LOSS`] (with
//! fresh offers), since an interval of minutes would leave it alone. A viewer that still has
//! peers waits for the interval: re-announcing on every closed connection multiplies offers
//! and tracker load in a churning swarm.

use std::time::Duration;

/// This SDK's client prefix in peer ids (Azureus style, as WebTorrent).
pub const CLIENT_PREFIX: [u8; 8] = *b"-PV0001-";
/// How long an unanswered offer is kept (the tracker forgets offers after about as long).
pub const OFFER_LIFETIME: Duration = Duration::from_secs(50);
/// Re-announce period until the tracker gives one.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(120);
/// Longest wait for the next announce after the last connection to the swarm ended.
pub const REANNOUNCE_AFTER_LOSS: Duration = Duration::from_secs(5);

/// When to announce again after a connection ended, leaving `peers_left` connections to the
/// swarm: within [`REANNOUNCE_AFTER_LOSS`] when none is left, else at the regular interval
/// (`None`).
pub fn reannounce_after_loss(peers_left: usize) -> Option<Duration> {
    (peers_left == 0).then_some(REANNOUNCE_AFTER_LOSS)
}

/// Whether an unanswered offer of this age has expired.
pub fn offer_expired(age: Duration) -> bool {
    age > OFFER_LIFETIME
}

/// Reconnect timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Wait before the first reconnect attempt.
    pub initial: Duration,
    /// Longest wait between attempts.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(15),
        }
    }
}

impl Backoff {
    /// The wait before attempt `attempt` (0-based): doubling from `initial` up to `max`, with
    /// "equal jitter" (between half and all of it) so that clients do not reconnect in
    /// lockstep. `random` is a uniform draw from `[0, 1)` the driver supplies.
    pub fn delay(&self, attempt: u32, random: f64) -> Duration {
        let full = self
            .initial
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.max);
        full / 2 + full.mul_f64(random.clamp(0.0, 1.0) / 2.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let backoff = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        assert_eq!(backoff.delay(0, 0.0), Duration::from_millis(50));
        assert_eq!(backoff.delay(0, 1.0), Duration::from_millis(100));
        assert_eq!(backoff.delay(2, 0.5), Duration::from_millis(300));
        assert_eq!(backoff.delay(40, 0.0), Duration::from_millis(500));
        assert_eq!(backoff.delay(40, 1.0), Duration::from_secs(1));
        assert_eq!(
            backoff.delay(40, 7.0),
            Duration::from_secs(1),
            "bad draws are clamped"
        );
    }

    #[test]
    fn a_viewer_left_alone_announces_soon_and_one_with_peers_waits() {
        assert_eq!(reannounce_after_loss(0), Some(REANNOUNCE_AFTER_LOSS));
        assert_eq!(reannounce_after_loss(1), None);
        assert_eq!(reannounce_after_loss(12), None);
    }

    #[test]
    fn offers_expire_after_their_lifetime() {
        assert!(!offer_expired(OFFER_LIFETIME));
        assert!(offer_expired(OFFER_LIFETIME + Duration::from_millis(1)));
    }
}
