//! The player model: a buffer that drains in simulated real time and stalls when empty,
//! requesting segments one at a time (as hls.js does) with ABR by the engine's estimate.

/// What the player is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Starting,
    Playing,
    Stalled,
}

/// One viewer's player.
#[derive(Debug, Clone)]
pub(super) struct Player {
    pub(super) phase: Phase,
    /// Media time (seconds) of the playhead at `anchor_wall`.
    anchor_media: f64,
    anchor_wall: f64,
    /// Sequence number of the first segment not yet buffered.
    pub(super) buffered_to: u64,
    /// The segment requested and not yet delivered.
    pub(super) outstanding: Option<u64>,
    pub(super) joined_at: f64,
    pub(super) started_at: Option<f64>,
    stalled_since: Option<f64>,
    pub(super) stall_time: f64,
    /// When the next player check is due (generation check for stale ticks).
    pub(super) tick_at: Option<u64>,
}

impl Player {
    pub(super) fn new(first_seq: u64, segment_secs: f64, joined_at: f64) -> Player {
        Player {
            phase: Phase::Starting,
            anchor_media: first_seq as f64 * segment_secs,
            anchor_wall: joined_at,
            buffered_to: first_seq,
            outstanding: None,
            joined_at,
            started_at: None,
            stalled_since: None,
            stall_time: 0.0,
            tick_at: None,
        }
    }

    /// Media time of the playhead at `now`.
    pub(super) fn position(&self, now: f64) -> f64 {
        match self.phase {
            Phase::Playing => self.anchor_media + (now - self.anchor_wall),
            _ => self.anchor_media,
        }
    }

    /// Seconds of media buffered ahead of the playhead.
    pub(super) fn ahead(&self, now: f64, segment_secs: f64) -> f64 {
        self.buffered_to as f64 * segment_secs - self.position(now)
    }

    /// A segment arrived; returns true if the phase changed.
    pub(super) fn on_delivered(&mut self, now: f64, segment_secs: f64) -> bool {
        self.outstanding = None;
        let seq = self.buffered_to;
        self.buffered_to += 1;
        match self.phase {
            Phase::Starting => {
                self.started_at = Some(now);
                self.play_from(seq as f64 * segment_secs, now);
                true
            }
            Phase::Stalled => {
                let media = self.anchor_media;
                self.stall_time += now - self.stalled_since.take().unwrap_or(now);
                self.play_from(media, now);
                true
            }
            Phase::Playing => false,
        }
    }

    fn play_from(&mut self, media: f64, now: f64) {
        self.phase = Phase::Playing;
        self.anchor_media = media;
        self.anchor_wall = now;
    }

    /// The buffer ran dry at `now`.
    pub(super) fn stall(&mut self, now: f64, segment_secs: f64) {
        self.anchor_media = self.buffered_to as f64 * segment_secs;
        self.anchor_wall = now;
        self.phase = Phase::Stalled;
        self.stalled_since = Some(now);
    }

    /// Closes the books at the end of the session.
    pub(super) fn finish(&mut self, now: f64) {
        if let Some(since) = self.stalled_since.take() {
            self.stall_time += now - since;
        }
    }

    /// Watch time (from startup to the end of the session, stalls included).
    pub(super) fn watch_time(&self, end: f64) -> f64 {
        self.started_at.map_or(0.0, |s| (end - s).max(0.0))
    }
}
