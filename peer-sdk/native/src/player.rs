//! A headless player: a buffer drained in real time at the segments' durations, requests for
//! the next segments while the buffer is below its goal, and ABR by measured bandwidth.

use std::collections::BTreeMap;
use std::time::Duration;

use peer_sdk::PlaybackState;

/// Buffer the player tries to hold ahead of the playhead.
const BUFFER_GOAL: Duration = Duration::from_secs(8);
/// Share of the measured bandwidth a rendition's bit rate may use.
const ABR_SAFETY: f64 = 0.7;
/// Below this much buffer the player steps down one rendition.
const PANIC_BUFFER: Duration = Duration::from_secs(2);
/// How far behind the live edge playback starts, in segments.
const LIVE_START_BEHIND_EDGE: u64 = 3;

/// A segment the player knows from the playlists.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Known {
    /// Media time at which it starts.
    pub start: Duration,
    /// Its duration.
    pub duration: Duration,
}

/// The player's state.
#[derive(Debug)]
pub struct Player {
    bitrates: Vec<u64>,
    rendition: u16,
    /// Segments by sequence number (renditions are aligned: one numbering for all).
    known: BTreeMap<u64, Known>,
    live: bool,
    next_seq: Option<u64>,
    in_flight: Option<(u16, u64)>,
    position: Duration,
    buffered_until: Duration,
    state: PlaybackState,
    last_tick: Duration,
    started_at: Option<Duration>,
    stalls: u64,
    stall_time: Duration,
    switches: u64,
    /// Whether a segment was requested yet (the first takes the rendition the estimate affords).
    requested: bool,
    /// Whether a low buffer means trouble: the buffer once held twice [`PANIC_BUFFER`], or
    /// playback stalled. Until then (start-up, one segment in) it does not step down.
    panic_armed: bool,
}

impl Player {
    /// A player for renditions of these bit rates (lowest first). Its first request takes the
    /// highest rendition the bandwidth estimate affords; later ones climb one step at a time.
    pub fn new(bitrates: Vec<u64>) -> Self {
        Self {
            bitrates,
            rendition: 0,
            known: BTreeMap::new(),
            live: false,
            next_seq: None,
            in_flight: None,
            position: Duration::ZERO,
            buffered_until: Duration::ZERO,
            state: PlaybackState::Starting,
            last_tick: Duration::ZERO,
            started_at: None,
            stalls: 0,
            stall_time: Duration::ZERO,
            switches: 0,
            requested: false,
            panic_armed: false,
        }
    }

    /// Learns segments from a playlist load.
    pub fn add_segments(&mut self, live: bool, segments: impl IntoIterator<Item = (u64, Known)>) {
        self.live = live;
        self.known.extend(segments);
        if self.next_seq.is_none() {
            let first = self.known.keys().next().copied();
            let last = self.known.keys().next_back().copied();
            self.next_seq = match (live, first, last) {
                (true, Some(first), Some(last)) => {
                    Some(last.saturating_sub(LIVE_START_BEHIND_EDGE).max(first))
                }
                (false, Some(first), _) => Some(first),
                _ => None,
            };
            if let Some(seq) = self.next_seq {
                let start = self.known[&seq].start;
                self.position = start;
                self.buffered_until = start;
            }
        }
    }

    /// Lets real time pass: drains the buffer while playing, stalls when it is empty.
    pub fn advance(&mut self, now: Duration) {
        let elapsed = now.saturating_sub(self.last_tick);
        self.last_tick = now;
        match self.state {
            PlaybackState::Playing => {
                self.position += elapsed;
                if self.position >= self.buffered_until {
                    self.position = self.buffered_until;
                    self.state = PlaybackState::Stalled;
                    self.stalls += 1;
                    self.panic_armed = true;
                }
            }
            PlaybackState::Stalled => self.stall_time += elapsed,
            PlaybackState::Starting | PlaybackState::Paused => {}
        }
    }

    /// The next segment to request as `(rendition, seq)`, choosing the rendition by ABR from
    /// `bandwidth` (bits per second); `None` while one is in flight or the buffer is full.
    pub fn next_request(&mut self, bandwidth: f64) -> Option<(u16, u64)> {
        if self.in_flight.is_some() || self.buffer() >= BUFFER_GOAL {
            return None;
        }
        let seq = self.next_seq?;
        self.known.get(&seq)?;
        let chosen = self.choose_rendition(bandwidth);
        if !self.requested {
            self.requested = true;
            self.rendition = chosen;
        } else if chosen != self.rendition {
            self.switches += 1;
            self.rendition = chosen;
        }
        self.in_flight = Some((self.rendition, seq));
        Some((self.rendition, seq))
    }

    fn choose_rendition(&self, bandwidth: f64) -> u16 {
        if self.panic_armed && self.state == PlaybackState::Playing && self.buffer() < PANIC_BUFFER
        {
            return self.rendition.saturating_sub(1);
        }
        let affordable = self
            .bitrates
            .iter()
            .rposition(|&b| b as f64 <= bandwidth * ABR_SAFETY)
            .unwrap_or(0);
        let chosen = match self.requested {
            true => affordable.min(usize::from(self.rendition) + 1),
            false => affordable,
        };
        u16::try_from(chosen).unwrap_or(self.rendition)
    }

    /// A requested segment was delivered at `now`.
    pub fn delivered(&mut self, rendition: u16, seq: u64, now: Duration) {
        if self.in_flight != Some((rendition, seq)) {
            return;
        }
        self.in_flight = None;
        self.next_seq = Some(seq + 1);
        if let Some(known) = self.known.get(&seq) {
            self.buffered_until = self.buffered_until.max(known.start + known.duration);
        }
        self.panic_armed |= self.buffer() >= 2 * PANIC_BUFFER;
        if matches!(self.state, PlaybackState::Starting | PlaybackState::Stalled) {
            self.started_at.get_or_insert(now);
            self.state = PlaybackState::Playing;
        }
        let keep_from = seq.saturating_sub(16);
        self.known = self.known.split_off(&keep_from);
    }

    /// The media time of the playhead.
    pub fn position(&self) -> Duration {
        self.position
    }

    /// Playing, stalled, starting.
    pub fn state(&self) -> PlaybackState {
        self.state
    }

    /// The rendition being played.
    pub fn rendition(&self) -> u16 {
        self.rendition
    }

    /// Media buffered ahead of the playhead.
    pub fn buffer(&self) -> Duration {
        self.buffered_until.saturating_sub(self.position)
    }

    /// When the first segment arrived (the time given to [`Player::delivered`]).
    pub fn started_at(&self) -> Option<Duration> {
        self.started_at
    }

    /// Stalls after playback started, and their total time.
    pub fn stalls(&self) -> (u64, Duration) {
        (self.stalls, self.stall_time)
    }

    /// Rendition switches made by ABR.
    pub fn switches(&self) -> u64 {
        self.switches
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segments(from: u64, to: u64) -> Vec<(u64, Known)> {
        (from..to)
            .map(|seq| {
                let start = Duration::from_secs(2 * seq);
                let duration = Duration::from_secs(2);
                (seq, Known { start, duration })
            })
            .collect()
    }

    #[test]
    fn live_playback_starts_behind_the_edge_and_drains_in_real_time() {
        let mut player = Player::new(vec![100_000]);
        player.add_segments(true, segments(10, 16));
        assert_eq!(player.next_request(1e6), Some((0, 12)));
        assert_eq!(player.next_request(1e6), None, "one request at a time");
        player.advance(Duration::from_secs(1));
        player.delivered(0, 12, Duration::from_secs(1));
        assert_eq!(player.state(), PlaybackState::Playing);
        assert_eq!(player.buffer(), Duration::from_secs(2));
        player.advance(Duration::from_secs(2));
        assert_eq!(player.buffer(), Duration::from_secs(1));
        player.advance(Duration::from_secs(4));
        assert_eq!(player.state(), PlaybackState::Stalled);
        assert_eq!(player.stalls().0, 1);
    }

    #[test]
    fn abr_starts_where_the_estimate_allows_then_climbs_one_step_at_a_time() {
        let mut player = Player::new(vec![100_000, 200_000, 400_000]);
        player.add_segments(false, segments(0, 10));
        assert_eq!(player.next_request(200_000.0), Some((0, 0)), "affordable");
        player.delivered(0, 0, Duration::ZERO);
        assert_eq!(player.next_request(10e6), Some((1, 1)), "one step up");
        player.delivered(1, 1, Duration::ZERO);
        assert_eq!(player.next_request(10e6), Some((2, 2)));
        player.delivered(2, 2, Duration::ZERO);
        assert_eq!(
            player.next_request(200_000.0),
            Some((0, 3)),
            "too slow for more"
        );
        assert_eq!(player.switches(), 3);
        let mut fast = Player::new(vec![100_000, 200_000, 400_000]);
        fast.add_segments(false, segments(0, 10));
        assert_eq!(fast.next_request(10e6), Some((2, 0)), "starts on the top");
        assert_eq!(fast.switches(), 0);
    }

    #[test]
    fn a_low_buffer_steps_down_only_once_it_means_trouble() {
        let mut player = Player::new(vec![100_000, 400_000]);
        player.add_segments(false, segments(0, 10));
        assert_eq!(player.next_request(10e6), Some((1, 0)));
        player.delivered(1, 0, Duration::ZERO);
        player.advance(Duration::from_millis(500));
        assert!(player.buffer() < PANIC_BUFFER);
        assert_eq!(
            player.next_request(10e6),
            Some((1, 1)),
            "start-up: no panic"
        );
        player.delivered(1, 1, Duration::from_millis(500));
        assert_eq!(player.next_request(10e6), Some((1, 2)));
        player.delivered(1, 2, Duration::from_millis(500));
        player.advance(Duration::from_millis(4500));
        assert!(player.buffer() < PANIC_BUFFER);
        assert_eq!(player.next_request(10e6), Some((0, 3)), "steps down");
    }
}
