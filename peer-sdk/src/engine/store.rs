//! Verified segments: delivery to the player, sharing with peers, and retention
//! (live: a window behind the newest segment; VOD: a memory budget).

use super::{Engine, SegmentState};
use crate::io::{Event, Output, SegmentKey, SegmentSource};
use crate::wire::Message;
use std::sync::Arc;

/// A complete, verified segment.
#[derive(Debug, Clone)]
pub(super) struct Stored {
    pub(super) data: Arc<[u8]>,
    pub(super) source: SegmentSource,
}

impl Engine {
    /// Keeps a verified segment, hands it to the player if wanted, and tells the peers.
    pub(super) fn store(&mut self, key: SegmentKey, stored: Stored) {
        let Some(segment) = self.segments.get_mut(&key) else {
            return;
        };
        segment.state = SegmentState::Stored(stored.clone());
        self.stored_bytes += stored.data.len() as u64;
        match stored.source {
            SegmentSource::Cdn => self.stats.segments_from_cdn += 1,
            SegmentSource::Peers => self.stats.segments_from_peers += 1,
            SegmentSource::Mixed => self.stats.segments_mixed += 1,
        }
        if segment.wanted_since.is_some() {
            self.deliver(key, &stored);
        }
        if self.config.upload {
            let have = Message::Have(vec![(key.seq, stored.data.len() as u32)]).encode();
            self.broadcast(key.rendition, &have);
        }
        self.enforce_retention();
    }

    /// Hands a stored segment to the player.
    pub(super) fn deliver(&mut self, key: SegmentKey, stored: &Stored) {
        let Some(segment) = self.segments.get_mut(&key) else {
            return;
        };
        let Some(since) = segment.wanted_since.take() else {
            return;
        };
        self.outputs.push_back(Output::Deliver {
            key,
            data: stored.data.clone(),
        });
        self.outputs
            .push_back(Output::Event(Event::SegmentDelivered {
                key,
                source: stored.source,
                bytes: stored.data.len() as u64,
                latency: self.now.saturating_sub(since),
            }));
    }

    /// Whether a live segment is too old for the swarm to still use.
    pub(super) fn is_expired(&self, key: SegmentKey) -> bool {
        self.live
            && self
                .newest_seq
                .get(&key.rendition)
                .is_some_and(|newest| key.seq + self.config.live_retention < *newest)
    }

    /// Drops live segments behind the retention window, and VOD segments beyond the budget.
    pub(super) fn enforce_retention(&mut self) {
        if self.live {
            let expired: Vec<SegmentKey> = self
                .segments
                .keys()
                .copied()
                .filter(|key| self.is_expired(*key))
                .collect();
            for key in expired {
                self.forget(key);
            }
            self.forget_expired_offers();
        } else {
            while self.stored_bytes > self.config.vod_memory_budget {
                let Some(victim) = self.vod_victim() else {
                    break;
                };
                self.evict(victim);
            }
        }
    }

    /// VOD eviction order: the oldest segment behind the playhead, else the farthest ahead.
    fn vod_victim(&self) -> Option<SegmentKey> {
        let position = self.position_now().unwrap_or_default();
        let stored = self.segments.iter().filter(|(_, s)| {
            matches!(s.state, SegmentState::Stored(_)) && s.wanted_since.is_none()
        });
        let (behind, ahead): (Vec<_>, Vec<_>) =
            stored.partition(|(_, s)| s.info.start + s.info.duration <= position);
        behind.first().or(ahead.last()).map(|(key, _)| **key)
    }

    /// Drops an expired live segment. Peers drop it on their own (they expire by the same
    /// window), so no `Lost` is sent.
    fn forget(&mut self, key: SegmentKey) {
        let Some(segment) = self.segments.remove(&key) else {
            return;
        };
        match segment.state {
            SegmentState::Stored(stored) => self.stored_bytes -= stored.data.len() as u64,
            SegmentState::Fetching(fetch) => self.abandon_fetch(key, *fetch),
            SegmentState::Missing => {}
        }
    }

    /// Live: forgets the segments peers announced that are now behind the retention window
    /// (they drop them on their own), so availability stays the size of the window.
    fn forget_expired_offers(&mut self) {
        for p in self.peers.values_mut() {
            let Some(newest) = self.newest_seq.get(&p.rendition) else {
                continue;
            };
            let first_kept = newest.saturating_sub(self.config.live_retention);
            p.have.retain(|seq, _| *seq >= first_kept);
        }
    }

    /// Frees a stored segment's bytes and tells the peers it is gone.
    fn evict(&mut self, key: SegmentKey) {
        let Some(segment) = self.segments.get_mut(&key) else {
            return;
        };
        if let SegmentState::Stored(stored) = &segment.state {
            self.stored_bytes -= stored.data.len() as u64;
            segment.state = SegmentState::Missing;
            if self.config.upload {
                let lost = Message::Lost(vec![key.seq]).encode();
                self.broadcast(key.rendition, &lost);
            }
        }
    }
}
