//! Downloads: choosing between peers and the CDN, splitting a segment's byte ranges across
//! sources, the continuous deadline check, assembling bytes, and verification before storage.

use super::peers::Peer;
use super::store::Stored;
use super::{Engine, Segment, SegmentState};
use crate::config::IntegrityMode;
use crate::integrity::{Digest, sha256};
use crate::io::{DigestJob, Event, Output, PeerId, RequestId, SegmentKey, SegmentSource};
use crate::ranges::RangeSet;
use crate::wire::{Message, pull_rank};
use rand::seq::SliceRandom;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

/// Peer bytes that failed verification and which peer sent which range of them.
type Suspect = (Arc<[u8]>, Vec<(PeerId, Range<u64>)>);

/// What a digest the driver computes (see [`crate::Config::external_digest`]) is for.
#[derive(Debug, Clone, Copy)]
pub(super) enum Purpose {
    /// Verifying a segment assembled from peer bytes.
    Verify(SegmentKey),
    /// Reporting to the tracker the hash of a segment of this size fetched from the CDN.
    Report(SegmentKey, u64),
}

/// Slack kept between a planned finish and a deadline.
const MARGIN: Duration = Duration::from_millis(200);
/// A peer whose transfer was dropped as stalled or too slow is not asked again for that
/// segment for this long.
const HOPELESS_AVOID: Duration = Duration::from_secs(2);
/// Most transfers we run from one peer at once.
const MAX_PARTS_PER_PEER: usize = 2;

/// A segment being assembled.
#[derive(Default)]
pub(super) struct Fetch {
    size: Option<u64>,
    data: Vec<u8>,
    received: RangeSet,
    parts: Vec<Part>,
    /// Which peer sent which bytes (to find a corrupt sender).
    peer_ranges: Vec<(PeerId, Range<u64>)>,
    from_peers: u64,
    from_cdn: u64,
    /// Peers not to ask for this segment until the given time (busy, stalled or too slow).
    avoid: Vec<(PeerId, Duration)>,
    /// After a failed verification or hash timeout: only the CDN may serve it.
    cdn_only: bool,
    /// Peer bytes that failed verification, kept to identify the sender against the CDN copy.
    suspect: Option<Suspect>,
    /// All bytes arrived but no trusted hash yet.
    awaiting_hash: bool,
    /// The complete segment, once every byte arrived.
    assembled: Option<Arc<[u8]>>,
    /// SHA-256 of `assembled`, once computed.
    digest: Option<Digest>,
    /// The driver is computing the digest under this job.
    digest_job: Option<DigestJob>,
    retry_after: Duration,
}

/// One source delivering one byte range.
struct Part {
    source: Source,
    range: Range<u64>,
    next: u64,
    started: Duration,
    last_progress: Duration,
    /// When the first chunk arrived, and where it ended (the rate is measured after it, so
    /// queueing at the sender does not count as slowness).
    first_chunk: Option<(Duration, u64)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    Peer(PeerId),
    Http(RequestId),
}

impl Fetch {
    /// Bytes neither received nor assigned to a running transfer (`None`: size unknown).
    fn uncovered(&self) -> Option<Vec<Range<u64>>> {
        let size = self.size?;
        let mut covered = self.received.clone();
        for part in &self.parts {
            covered.insert(part.next..part.range.end);
        }
        Some(covered.gaps(size))
    }

    fn is_idle(&self) -> bool {
        self.parts.is_empty() && self.received.is_empty() && !self.awaiting_hash
    }

    fn has_peer_parts(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p.source, Source::Peer(_)))
    }

    fn write(&mut self, offset: u64, bytes: &[u8]) {
        let end = offset as usize + bytes.len();
        if self.data.len() < end {
            self.data.resize(end, 0);
        }
        self.data[offset as usize..end].copy_from_slice(bytes);
        self.received.insert(offset..end as u64);
    }
}

impl Engine {
    fn cdn_time(&self, bytes: u64) -> Duration {
        let secs = bytes as f64 * 8.0 / self.bandwidth.estimate().max(1.0);
        self.config.cdn_rtt + Duration::from_secs_f64(secs.min(3600.0))
    }

    /// How long before a deadline the CDN must be asked for `bytes` at the latest: twice the
    /// expected CDN time (estimates are noisy) plus [`MARGIN`].
    fn fallback_lead(&self, bytes: u64) -> Duration {
        self.cdn_time(bytes) * 2 + MARGIN
    }

    /// How long before its deadline a wanted segment turns urgent (CDN unless a peer is about
    /// to finish): the urgent window, or longer when the CDN needs more for the missing bytes.
    fn cdn_lead(&self, segment: &Segment) -> Duration {
        let missing = match &segment.state {
            SegmentState::Fetching(fetch) => fetch
                .size
                .map(|size| size.saturating_sub(fetch.received.len())),
            _ => segment.size_hint,
        };
        self.config
            .urgent_window
            .max(self.fallback_lead(missing.unwrap_or(0)))
    }

    /// Live: the CDN-pull election for new segments. While no neighbour offers a new segment,
    /// the `cdn_pull_fanout` uploading peers whose tickets rank lowest for it (see
    /// [`crate::wire::pull_rank`]) among this peer and its neighbours pull it from the CDN at
    /// once; the others wait for it from peers. Every peer ranks the same tickets the same way,
    /// so a neighbourhood agrees on its pullers without a message. If nobody offers the segment
    /// one segment duration later (the puller left or is slow), the election is held again
    /// with more seats.
    pub(super) fn elect_cdn_pulls(&mut self) {
        let Some(rendition) = self.active_rendition else {
            return;
        };
        let now = self.now;
        let due: Vec<SegmentKey> = self
            .segments
            .range(
                SegmentKey { rendition, seq: 0 }..=SegmentKey {
                    rendition,
                    seq: u64::MAX,
                },
            )
            .filter(|(_, s)| s.next_pull_election.is_some_and(|t| t <= now))
            .map(|(key, _)| *key)
            .collect();
        let seats_per_round = self.config.cdn_pull_fanout.max(0.0).ceil() as usize;
        for key in due {
            let missing = match &self.segments[&key].state {
                SegmentState::Missing => true,
                SegmentState::Fetching(fetch) => fetch.is_idle(),
                SegmentState::Stored(_) => false,
            };
            let offered = self
                .peers
                .values()
                .any(|p| p.rendition == rendition && p.have.contains_key(&key.seq));
            let mine = pull_rank(self.ticket, key.seq);
            let ranked_lower = self
                .peers
                .values()
                .filter(|p| p.rendition == rendition && p.uploads_to_us)
                .filter_map(|p| p.ticket)
                .filter(|&ticket| pull_rank(ticket, key.seq) < mine)
                .count();
            let Some(segment) = self.segments.get_mut(&key) else {
                continue;
            };
            if !missing || offered || !self.config.upload {
                segment.next_pull_election = None;
                continue;
            }
            segment.pull_rounds += 1;
            let seats = seats_per_round * segment.pull_rounds as usize;
            let elected = ranked_lower < seats;
            segment.next_pull_election = (!elected).then(|| now + segment.info.duration);
            if elected {
                self.fetch_mut_or_start(key);
                self.start_cdn(key, None);
            }
        }
    }

    fn fetch_mut_or_start(&mut self, key: SegmentKey) -> Option<&mut Fetch> {
        let segment = self.segments.get_mut(&key)?;
        if matches!(segment.state, SegmentState::Missing) {
            segment.state = SegmentState::Fetching(Box::new(Fetch {
                size: segment.size_hint,
                ..Fetch::default()
            }));
        }
        match &mut segment.state {
            SegmentState::Fetching(fetch) => Some(fetch),
            _ => None,
        }
    }

    fn fetch_mut(&mut self, key: SegmentKey) -> Option<&mut Fetch> {
        match &mut self.segments.get_mut(&key)?.state {
            SegmentState::Fetching(fetch) => Some(fetch),
            _ => None,
        }
    }

    /// Records a segment's size as claimed by a peer (a trusted size is never replaced).
    pub(super) fn learn_size(&mut self, key: SegmentKey, size: u64) {
        let Some(segment) = self.segments.get_mut(&key) else {
            return;
        };
        let size = *segment.size_hint.get_or_insert(size);
        if let SegmentState::Fetching(fetch) = &mut segment.state {
            if fetch.size.is_none() && fetch.parts.is_empty() && fetch.received.is_empty() {
                fetch.size = Some(size);
            }
        }
    }

    /// Requests `range` (or the whole segment) from the CDN.
    fn start_cdn(&mut self, key: SegmentKey, range: Option<Range<u64>>) {
        let request = self.new_request_id();
        let now = self.now;
        let Some(segment) = self.segments.get(&key) else {
            return;
        };
        let url = segment.info.url.clone();
        let Some(fetch) = self.fetch_mut(key) else {
            return;
        };
        let part_range = range.clone().unwrap_or(0..fetch.size.unwrap_or(u64::MAX));
        fetch.parts.push(Part {
            source: Source::Http(request),
            next: part_range.start,
            range: part_range,
            started: now,
            last_progress: now,
            first_chunk: None,
        });
        self.http.insert(request, key);
        self.stats.cdn_requests += 1;
        self.push(Output::HttpRequest {
            request,
            url,
            range,
        });
    }

    /// Fetches the uncovered bytes of a segment from the CDN.
    fn cdn_for_gaps(&mut self, key: SegmentKey) {
        let Some(fetch) = self.fetch_mut_or_start(key) else {
            return;
        };
        match fetch.uncovered() {
            None if fetch.parts.is_empty() => self.start_cdn(key, None),
            None => {}
            Some(gaps) => {
                let whole = fetch.received.is_empty() && fetch.parts.is_empty();
                if whole {
                    self.start_cdn(key, None);
                } else {
                    for gap in gaps {
                        self.start_cdn(key, Some(gap));
                    }
                }
            }
        }
    }

    /// Splits the uncovered bytes of a segment across peers that have it. False if none can.
    fn start_p2p(&mut self, key: SegmentKey) -> bool {
        let can_serve = |p: &Peer| {
            p.rendition == key.rendition
                && p.uploads_to_us
                && p.active_parts < MAX_PARTS_PER_PEER
                && p.have.contains_key(&key.seq)
        };
        // The cheap test first: this runs on every input for every segment in the window, and
        // a segment no peer offers stays `Missing` (an idle fetch would only cost every later
        // scan a pointer chase).
        if !self.peers.values().any(can_serve) {
            return false;
        }
        let Some(gaps) = self.fetch_mut_or_start(key).and_then(|f| f.uncovered()) else {
            return false;
        };
        let total: u64 = gaps.iter().map(|g| g.end - g.start).sum();
        if total == 0 {
            return false;
        }
        let now = self.now;
        let avoid = match self.fetch_mut(key) {
            Some(fetch) => {
                fetch.avoid.retain(|(_, until)| *until > now);
                fetch.avoid.clone()
            }
            None => return false,
        };
        let mut candidates: Vec<(PeerId, usize, f64)> = self
            .peers
            .iter()
            .filter(|(id, p)| can_serve(p) && !avoid.iter().any(|(p, _)| p == *id))
            .map(|(id, p)| (*id, p.active_parts, p.rate))
            .collect();
        if candidates.is_empty() {
            return false;
        }
        candidates.shuffle(&mut self.rng);
        candidates.sort_by(|a, b| a.1.cmp(&b.1).then(b.2.total_cmp(&a.2)));
        let chunk = self.config.chunk_size as u64;
        let by_size = total.div_ceil(2 * chunk).max(1) as usize;
        let sources = candidates
            .len()
            .min(self.config.max_sources_per_segment.max(1))
            .min(by_size);
        let piece = total.div_ceil(sources as u64).div_ceil(chunk) * chunk;
        let mut assigned = 0;
        for gap in gaps {
            let mut at = gap.start;
            while at < gap.end {
                let end = (at + piece).min(gap.end);
                let peer = candidates[assigned % sources].0;
                self.request_from_peer(key, peer, at..end);
                assigned += 1;
                at = end;
            }
        }
        true
    }

    fn request_from_peer(&mut self, key: SegmentKey, peer: PeerId, range: Range<u64>) {
        let now = self.now;
        let Some(fetch) = self.fetch_mut(key) else {
            return;
        };
        fetch.parts.push(Part {
            source: Source::Peer(peer),
            next: range.start,
            range: range.clone(),
            started: now,
            last_progress: now,
            first_chunk: None,
        });
        if let Some(p) = self.peers.get_mut(&peer) {
            p.active_parts += 1;
        }
        let request = Message::Request {
            seq: key.seq,
            offset: range.start as u32,
            length: (range.end - range.start) as u32,
        };
        self.send(peer, request.encode());
    }

    /// Starts whatever the player's requests and the prefetch window need.
    pub(super) fn schedule_fetches(&mut self) {
        let wanted: Vec<SegmentKey> = self
            .segments
            .iter()
            .filter(|(_, s)| {
                s.wanted_since.is_some() && !matches!(s.state, SegmentState::Stored(_))
            })
            .map(|(key, _)| *key)
            .collect();
        for key in wanted {
            self.schedule_wanted(key);
        }
        self.prefetch();
    }

    fn schedule_wanted(&mut self, key: SegmentKey) {
        let now = self.now;
        let Some(segment) = self.segments.get(&key) else {
            return;
        };
        let deadline = self.deadline(segment).unwrap_or(now);
        let urgent = deadline <= now + self.cdn_lead(segment);
        let (cdn_only, retry_after, uncovered, awaiting) = match &segment.state {
            SegmentState::Fetching(f) => {
                (f.cdn_only, f.retry_after, f.uncovered(), f.awaiting_hash)
            }
            _ => (
                false,
                Duration::ZERO,
                segment.size_hint.map(|s| std::iter::once(0..s).collect()),
                false,
            ),
        };
        let idle_unknown_size = uncovered.is_none()
            && !matches!(&segment.state, SegmentState::Fetching(f) if !f.parts.is_empty());
        let has_gaps = uncovered.is_some_and(|g| !g.is_empty()) || idle_unknown_size;
        if !has_gaps || awaiting || now < retry_after {
            return;
        }
        if urgent || cdn_only {
            self.cdn_for_gaps(key);
        } else {
            self.start_p2p(key);
        }
    }

    /// Fetches upcoming segments from peers, a few at a time.
    fn prefetch(&mut self) {
        let (Some(position), Some(rendition)) = (self.position_now(), self.active_rendition) else {
            return;
        };
        let horizon = position + self.config.p2p_window;
        let urgent_until = self.now + self.config.urgent_window;
        let mut active = self
            .segments
            .values()
            .filter(|s| matches!(&s.state, SegmentState::Fetching(f) if f.has_peer_parts()))
            .count();
        let candidates: Vec<SegmentKey> = self
            .segments
            .range(
                SegmentKey { rendition, seq: 0 }..=SegmentKey {
                    rendition,
                    seq: u64::MAX,
                },
            )
            .filter(|(_, s)| s.info.start >= position && s.info.start <= horizon)
            .filter(|(_, s)| match &s.state {
                SegmentState::Missing => true,
                SegmentState::Fetching(f) => f.is_idle() && !f.cdn_only,
                SegmentState::Stored(_) => false,
            })
            .filter(|(_, s)| self.deadline(s).is_some_and(|d| d > urgent_until))
            .map(|(key, _)| *key)
            .collect();
        for key in candidates {
            if active >= self.config.max_parallel_p2p {
                break;
            }
            if self.start_p2p(key) {
                active += 1;
            }
        }
    }

    /// The continuous deadline check: drops peer transfers that stalled or cannot finish in
    /// time (their missing bytes are rescheduled), and gives up on hashes that come too late.
    pub(super) fn check_transfers(&mut self) {
        let now = self.now;
        let mut drops: Vec<(SegmentKey, PeerId)> = Vec::new();
        let mut hash_timeouts: Vec<SegmentKey> = Vec::new();
        let mut queries: Vec<SegmentKey> = Vec::new();
        for (key, segment) in &self.segments {
            let SegmentState::Fetching(fetch) = &segment.state else {
                continue;
            };
            let deadline = self.deadline(segment);
            for part in &fetch.parts {
                let Source::Peer(peer) = part.source else {
                    continue;
                };
                if self.peer_part_is_hopeless(part, peer, deadline) {
                    drops.push((*key, peer));
                }
            }
            if fetch.awaiting_hash {
                let size = fetch.size.unwrap_or_default();
                if deadline.is_some_and(|d| now + self.fallback_lead(size) >= d) {
                    hash_timeouts.push(*key);
                } else if segment
                    .hash_queried_at
                    .is_none_or(|at| now >= at + self.config.hash_query_interval)
                {
                    queries.push(*key);
                }
            }
        }
        for (key, peer) in drops {
            self.cancel(peer, key.seq);
            self.drop_peer_parts(key, peer);
            self.avoid_peer(key, peer, HOPELESS_AVOID);
        }
        for key in queries {
            self.query_hash(key);
        }
        for key in hash_timeouts {
            self.stats.hash_timeouts += 1;
            self.refetch_from_cdn(key, false);
        }
    }

    fn peer_part_is_hopeless(&self, part: &Part, peer: PeerId, deadline: Option<Duration>) -> bool {
        let now = self.now;
        // A queued request (no byte yet) gets longer: the peer may be serving others first.
        let patience = if part.next == part.range.start {
            3 * self.config.peer_stall_timeout
        } else {
            self.config.peer_stall_timeout
        };
        if now.saturating_sub(part.last_progress) >= patience {
            return true;
        }
        let Some(deadline) = deadline else {
            return false;
        };
        let remaining = part.range.end - part.next;
        let measured = part.first_chunk.and_then(|(at, end)| {
            let elapsed = now.saturating_sub(at).as_secs_f64();
            (part.next > end && elapsed > 0.0).then(|| (part.next - end) as f64 / elapsed)
        });
        let rate = measured.unwrap_or_else(|| self.peers.get(&peer).map_or(0.0, |p| p.rate));
        let cdn = self.cdn_time(remaining);
        if rate <= 0.0 {
            // Nothing measured yet: wait for data until the CDN would have to start.
            return now + self.fallback_lead(remaining) >= deadline;
        }
        let eta = Duration::from_secs_f64((remaining as f64 / rate).min(3600.0));
        // At the last moment the CDN could still make it, keep only a transfer that would finish
        // in time even at a third of its measured rate.
        let last_call = now + self.fallback_lead(remaining) >= deadline;
        (now + eta + MARGIN > deadline && eta > cdn)
            || (last_call && now + eta.mul_f64(3.0) + MARGIN > deadline)
    }

    /// Times at which [`Engine::check_transfers`] or the scheduler may act.
    pub(super) fn fetch_wake_times(&self, consider: &mut impl FnMut(Duration)) {
        for segment in self.segments.values() {
            if let Some(t) = segment.next_pull_election {
                consider(t);
            }
            let deadline = self.deadline(segment);
            if let (Some(d), Some(_)) = (deadline, segment.wanted_since) {
                consider(d.saturating_sub(self.cdn_lead(segment)));
            }
            let SegmentState::Fetching(fetch) = &segment.state else {
                continue;
            };
            consider(fetch.retry_after);
            for (_, until) in fetch
                .avoid
                .iter()
                .filter(|(_, until)| *until < Duration::MAX)
            {
                consider(*until);
            }
            for part in fetch
                .parts
                .iter()
                .filter(|p| matches!(p.source, Source::Peer(_)))
            {
                consider(part.last_progress + self.config.peer_stall_timeout);
                consider(part.last_progress + 3 * self.config.peer_stall_timeout);
                if let Some(d) = deadline {
                    consider(d.saturating_sub(self.fallback_lead(part.range.end - part.next)));
                }
            }
            if fetch.awaiting_hash {
                if let Some(d) = deadline {
                    consider(d.saturating_sub(self.fallback_lead(fetch.size.unwrap_or(0))));
                }
                if let Some(at) = segment.hash_queried_at {
                    consider(at + self.config.hash_query_interval);
                }
            }
        }
    }

    /// Asks no more of `peer` for this segment for `how_long`.
    pub(super) fn avoid_peer(&mut self, key: SegmentKey, peer: PeerId, how_long: Duration) {
        let until = self.now.saturating_add(how_long);
        if let Some(fetch) = self.fetch_mut(key) {
            fetch.avoid.push((peer, until));
        }
    }

    /// Removes a peer's transfers of one segment (their bytes become uncovered).
    pub(super) fn drop_peer_parts(&mut self, key: SegmentKey, peer: PeerId) {
        let Some(fetch) = self.fetch_mut(key) else {
            return;
        };
        let before = fetch.parts.len();
        fetch.parts.retain(|p| p.source != Source::Peer(peer));
        let dropped = before - fetch.parts.len();
        if let Some(p) = self.peers.get_mut(&peer) {
            p.active_parts -= dropped;
        }
    }

    /// Stops every transfer of a segment that is no longer needed.
    pub(super) fn abandon_fetch(&mut self, key: SegmentKey, fetch: Fetch) {
        for part in fetch.parts {
            match part.source {
                Source::Http(request) => {
                    self.http.remove(&request);
                    self.push(Output::HttpAbort(request));
                }
                Source::Peer(peer) => {
                    if let Some(p) = self.peers.get_mut(&peer) {
                        p.active_parts -= 1;
                    }
                    self.cancel(peer, key.seq);
                }
            }
        }
    }

    pub(super) fn on_data(&mut self, peer: PeerId, seq: u64, offset: u64, payload: &[u8]) {
        let Some(rendition) = self.peers.get(&peer).map(|p| p.rendition) else {
            return;
        };
        let key = SegmentKey { rendition, seq };
        let len = payload.len() as u64;
        let now = self.now;
        let cancelled = self
            .peers
            .get(&peer)
            .is_some_and(|p| p.cancelled.contains(&seq));
        let Some(fetch) = self.fetch_mut(key) else {
            return self.on_unsolicited(peer, len);
        };
        let source = Source::Peer(peer);
        let Some(index) = fetch.parts.iter().position(|p| p.source == source) else {
            return self.on_unsolicited(peer, len);
        };
        let part = &mut fetch.parts[index];
        if part.next != offset || offset + len > part.range.end {
            if cancelled {
                // In flight from a request we cancelled before asking again.
                return self.on_unsolicited(peer, len);
            }
            // Data must follow the request in order and stay inside it.
            self.drop_peer_parts(key, peer);
            return self.violation(peer);
        }
        part.next += len;
        part.last_progress = now;
        part.first_chunk.get_or_insert((now, part.next));
        let finished = part.next == part.range.end;
        let (started, start) = (part.started, part.range.start);
        fetch.write(offset, payload);
        fetch.from_peers += len;
        match fetch.peer_ranges.last_mut() {
            Some((p, r)) if *p == peer && r.end == offset => r.end += len,
            _ => fetch.peer_ranges.push((peer, offset..offset + len)),
        }
        if finished {
            fetch.parts.remove(index);
        }
        self.stats.bytes_from_peers += len;
        self.on_useful_data(peer, len);
        if finished {
            if let Some(p) = self.peers.get_mut(&peer) {
                p.active_parts -= 1;
                let secs = now.saturating_sub(started).as_secs_f64().max(0.001);
                let rate = (offset + len - start) as f64 / secs;
                p.rate = if p.rate == 0.0 {
                    rate
                } else {
                    0.7 * p.rate + 0.3 * rate
                };
            }
            self.try_complete(key);
        }
    }

    pub(super) fn on_http_data(&mut self, request: RequestId, bytes: &[u8]) {
        let Some(&key) = self.http.get(&request) else {
            return;
        };
        let now = self.now;
        let Some(fetch) = self.fetch_mut(key) else {
            return;
        };
        let Some(part) = fetch
            .parts
            .iter_mut()
            .find(|p| p.source == Source::Http(request))
        else {
            return;
        };
        let len = bytes.len() as u64;
        if part.next + len > part.range.end {
            self.push(Output::HttpAbort(request));
            return self.on_http_failed(request);
        }
        let offset = part.next;
        part.next += len;
        part.last_progress = now;
        fetch.write(offset, bytes);
        fetch.from_cdn += len;
        self.stats.bytes_from_cdn += len;
    }

    pub(super) fn on_http_finished(&mut self, request: RequestId) {
        let Some(key) = self.http.remove(&request) else {
            return;
        };
        let now = self.now;
        let retry_after = now + self.config.http_retry_delay;
        let Some(fetch) = self.fetch_mut(key) else {
            return;
        };
        let Some(index) = fetch
            .parts
            .iter()
            .position(|p| p.source == Source::Http(request))
        else {
            return;
        };
        let part = fetch.parts.remove(index);
        let whole_unknown = part.range.end == u64::MAX;
        if whole_unknown {
            fetch.size = Some(part.next);
        } else if part.next < part.range.end {
            // A truncated body: the rest is rescheduled.
            fetch.retry_after = retry_after;
            return;
        }
        let bytes = part.next - part.range.start;
        self.bandwidth
            .sample(bytes, now.saturating_sub(part.started));
        self.try_complete(key);
    }

    pub(super) fn on_http_failed(&mut self, request: RequestId) {
        let Some(key) = self.http.remove(&request) else {
            return;
        };
        let retry_after = self.now + self.config.http_retry_delay;
        let Some(fetch) = self.fetch_mut(key) else {
            return;
        };
        if let Some(index) = fetch
            .parts
            .iter()
            .position(|p| p.source == Source::Http(request))
        {
            let part = fetch.parts.remove(index);
            if part.range.end == u64::MAX && part.next > 0 {
                // Bytes of a body of unknown size cannot be resumed safely: start over.
                fetch.from_cdn = 0;
                fetch.received = RangeSet::default();
                fetch.data.clear();
            }
        }
        fetch.retry_after = retry_after;
        // A request can fail after its last byte arrived (e.g. the connection broke before the
        // end of the body was signalled): with nothing missing, the segment is complete.
        self.try_complete(key);
    }

    /// Once every byte is in: verify (if any came from peers) and store, or react to failure.
    /// Verification may wait for a trusted hash, and (with an external digest) for the driver.
    fn try_complete(&mut self, key: SegmentKey) {
        let check = self.config.integrity == IntegrityMode::Required;
        let Some(segment) = self.segments.get_mut(&key) else {
            return;
        };
        let trusted = segment.trusted;
        let SegmentState::Fetching(fetch) = &mut segment.state else {
            return;
        };
        let Some(size) = fetch.size else {
            return;
        };
        let data = match &fetch.assembled {
            Some(data) => data.clone(),
            None => {
                if !fetch.parts.is_empty() || !fetch.received.contains(&(0..size)) {
                    return;
                }
                let mut data = std::mem::take(&mut fetch.data);
                data.truncate(size as usize);
                let data: Arc<[u8]> = data.into();
                fetch.assembled = Some(data.clone());
                data
            }
        };
        let verified = if fetch.from_peers == 0 || !check {
            true
        } else {
            let Some(trusted) = trusted else {
                fetch.awaiting_hash = true;
                return self.query_hash(key);
            };
            let digest = match (fetch.digest, fetch.digest_job) {
                (Some(digest), _) => digest,
                (None, Some(_)) => return,
                (None, None) => match self.digest(&data, Purpose::Verify(key)) {
                    Some(digest) => digest,
                    None => return,
                },
            };
            trusted == digest
        };
        let Some(fetch) = self.fetch_mut(key).map(std::mem::take) else {
            return;
        };
        if !verified {
            self.stats.integrity_failures += 1;
            self.push(Output::Event(Event::IntegrityFailure(key)));
            self.refetch_from_cdn(key, true);
            if let Some(f) = self.fetch_mut(key) {
                f.suspect = Some((data, fetch.peer_ranges));
            }
            return;
        }
        if let Some((suspect_data, ranges)) = &fetch.suspect {
            self.ban_senders_of_corrupt_bytes(&data, suspect_data, ranges);
        }
        if fetch.from_peers == 0 && trusted.is_none() && self.live {
            if let Some(sha256) = self.digest(&data, Purpose::Report(key, size)) {
                self.push(Output::ReportHash { key, sha256, size });
            }
        }
        let source = match (fetch.from_peers, fetch.from_cdn) {
            (0, _) => SegmentSource::Cdn,
            (_, 0) => SegmentSource::Peers,
            _ => SegmentSource::Mixed,
        };
        self.store(key, Stored { data, source });
    }

    /// The SHA-256 of `data` now, or (with [`crate::Config::external_digest`]) `None` after
    /// asking the driver for it; the answer continues `purpose` in [`Engine::on_digest`].
    fn digest(&mut self, data: &Arc<[u8]>, purpose: Purpose) -> Option<Digest> {
        if !self.config.external_digest {
            return Some(sha256(data));
        }
        self.next_digest += 1;
        let job = DigestJob(self.next_digest);
        self.digests.insert(job, purpose);
        if let Purpose::Verify(key) = purpose {
            if let Some(fetch) = self.fetch_mut(key) {
                fetch.digest_job = Some(job);
            }
        }
        self.push(Output::ComputeDigest {
            job,
            data: data.clone(),
        });
        None
    }

    /// The driver computed a digest the engine asked for.
    pub(super) fn on_digest(&mut self, job: DigestJob, digest: Digest) {
        match self.digests.remove(&job) {
            Some(Purpose::Verify(key)) => {
                let Some(fetch) = self.fetch_mut(key) else {
                    return;
                };
                if fetch.digest_job == Some(job) {
                    fetch.digest_job = None;
                    fetch.digest = Some(digest);
                    self.try_complete(key);
                }
            }
            Some(Purpose::Report(key, size)) => self.push(Output::ReportHash {
                key,
                sha256: digest,
                size,
            }),
            None => {}
        }
    }

    /// Compares the bytes each peer sent against the trusted CDN copy; bans the liars.
    fn ban_senders_of_corrupt_bytes(
        &mut self,
        good: &[u8],
        suspect: &[u8],
        ranges: &[(PeerId, Range<u64>)],
    ) {
        for (peer, range) in ranges {
            let (start, end) = (range.start as usize, range.end as usize);
            if good.get(start..end) != suspect.get(start..end) {
                self.ban(*peer);
            }
        }
    }

    /// Throws away what peers sent and fetches the whole segment from the CDN.
    fn refetch_from_cdn(&mut self, key: SegmentKey, after_failure: bool) {
        let Some(segment) = self.segments.get_mut(&key) else {
            return;
        };
        let old = std::mem::replace(&mut segment.state, SegmentState::Missing);
        if let SegmentState::Fetching(old) = old {
            self.abandon_fetch(key, *old);
        }
        if let Some(fetch) = self.fetch_mut_or_start(key) {
            fetch.cdn_only = true;
        }
        if after_failure
            || self
                .segments
                .get(&key)
                .is_some_and(|s| s.wanted_since.is_some())
        {
            self.cdn_for_gaps(key);
        }
    }

    fn query_hash(&mut self, key: SegmentKey) {
        let now = self.now;
        if let Some(segment) = self.segments.get_mut(&key) {
            segment.hash_queried_at = Some(now);
            self.push(Output::QueryHash(key));
        }
    }

    /// A trusted hash arrived (from the tracker, or a hash list loaded late): verify a segment
    /// that waited for it. Without a size, the size hint the engine has is kept.
    pub(super) fn on_trusted_hash(&mut self, key: SegmentKey, sha256: Digest, size: Option<u64>) {
        let Some(segment) = self.segments.get_mut(&key) else {
            return;
        };
        if segment.trusted.is_some() {
            return;
        }
        segment.trusted = Some(sha256);
        if let Some(size) = size {
            segment.size_hint = Some(size);
            self.learn_size(key, size);
        }
        if let Some(fetch) = self.fetch_mut(key) {
            if fetch.awaiting_hash {
                fetch.awaiting_hash = false;
                self.try_complete(key);
            }
        }
    }
}
