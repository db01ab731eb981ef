//! When to ping a quiet client, and when to give up on it.
//!
//! A client that vanished without closing (its network changed, its machine slept) leaves a
//! half-open connection that the tracker would otherwise keep for the whole peer timeout: its
//! peers stay in their swarms and take offers that are never answered, and the client's new
//! connection cannot announce the same `peer_id`. A WebSocket ping after a short silence tells
//! the two apart: live clients (browsers, the `ws` and tungstenite libraries) answer it by
//! themselves, and a connection that sends no frame at all for another interval is closed.

use std::time::{Duration, Instant};

/// What is due when the [`Liveness::deadline`] passes.
#[derive(Debug, PartialEq, Eq)]
pub enum Due {
    /// Nothing yet (the deadline moved).
    Nothing,
    /// Send a ping.
    Ping,
    /// No message for the whole peer timeout: close, the client's peers have expired.
    Silent,
    /// No frame at all since the ping: close, the client is gone.
    Unresponsive,
}

/// The liveness clock of one connection.
#[derive(Debug)]
pub struct Liveness {
    ping_interval: Option<Duration>,
    silence_limit: Duration,
    last_frame: Instant,
    last_message: Instant,
    ping_sent: Option<Instant>,
}

impl Liveness {
    /// A clock started at `now`; `ping_interval` `None` never pings.
    pub fn new(now: Instant, ping_interval: Option<Duration>, silence_limit: Duration) -> Self {
        Self {
            ping_interval,
            silence_limit,
            last_frame: now,
            last_message: now,
            ping_sent: None,
        }
    }

    /// Records a frame from the client: any frame proves it is there; `is_message` (not a
    /// control frame) also counts as talking.
    pub fn on_frame(&mut self, now: Instant, is_message: bool) {
        self.last_frame = now;
        self.ping_sent = None;
        if is_message {
            self.last_message = now;
        }
    }

    /// When [`Liveness::due`] should next be asked.
    pub fn deadline(&self) -> Instant {
        let silent = self.last_message + self.silence_limit;
        match self.ping_interval {
            Some(interval) => silent.min(self.ping_sent.unwrap_or(self.last_frame) + interval),
            None => silent,
        }
    }

    /// What is due at `now`; a ping it returns counts as sent.
    pub fn due(&mut self, now: Instant) -> Due {
        if now >= self.last_message + self.silence_limit {
            return Due::Silent;
        }
        let Some(interval) = self.ping_interval else {
            return Due::Nothing;
        };
        match self.ping_sent {
            Some(sent) if now >= sent + interval => Due::Unresponsive,
            None if now >= self.last_frame + interval => {
                self.ping_sent = Some(now);
                Due::Ping
            }
            _ => Due::Nothing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_quiet_client_is_pinged_then_closed_if_it_does_not_answer() {
        let start = Instant::now();
        let mut clock = Liveness::new(start, Some(20 * SECOND), 300 * SECOND);
        assert_eq!(clock.deadline(), start + 20 * SECOND);
        assert_eq!(clock.due(start + 19 * SECOND), Due::Nothing);
        assert_eq!(clock.due(start + 20 * SECOND), Due::Ping);
        assert_eq!(clock.deadline(), start + 40 * SECOND);
        assert_eq!(clock.due(start + 39 * SECOND), Due::Nothing);
        assert_eq!(clock.due(start + 40 * SECOND), Due::Unresponsive);
    }

    #[test]
    fn a_pong_keeps_the_connection_but_only_messages_keep_it_past_the_peer_timeout() {
        let start = Instant::now();
        let mut clock = Liveness::new(start, Some(20 * SECOND), 50 * SECOND);
        assert_eq!(clock.due(start + 20 * SECOND), Due::Ping);
        clock.on_frame(start + 21 * SECOND, false);
        assert_eq!(clock.deadline(), start + 41 * SECOND);
        assert_eq!(clock.due(start + 41 * SECOND), Due::Ping);
        clock.on_frame(start + 42 * SECOND, false);
        assert_eq!(clock.deadline(), start + 50 * SECOND);
        assert_eq!(clock.due(start + 50 * SECOND), Due::Silent);
    }

    #[test]
    fn a_message_restarts_both_clocks() {
        let start = Instant::now();
        let mut clock = Liveness::new(start, Some(20 * SECOND), 50 * SECOND);
        assert_eq!(clock.due(start + 20 * SECOND), Due::Ping);
        clock.on_frame(start + 30 * SECOND, true);
        assert_eq!(clock.deadline(), start + 50 * SECOND);
        assert_eq!(clock.due(start + 79 * SECOND), Due::Ping);
    }

    #[test]
    fn without_pings_only_the_peer_timeout_closes() {
        let start = Instant::now();
        let mut clock = Liveness::new(start, None, 50 * SECOND);
        assert_eq!(clock.deadline(), start + 50 * SECOND);
        assert_eq!(clock.due(start + 49 * SECOND), Due::Nothing);
        assert_eq!(clock.due(start + 50 * SECOND), Due::Silent);
    }
}
