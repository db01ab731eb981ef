//! Peer connections: the wire protocol's handshake and availability, serving requests under
//! backpressure and the upload cap, the connection cap, and disconnecting violators.

use super::{Engine, SegmentState};
use crate::io::{DisconnectReason, Event, Output, PeerId, SegmentKey};
use crate::wire::{DATA_HEADER_LEN, Message, VERSION};
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

/// Most availability entries remembered per peer.
const MAX_HAVE_ENTRIES: usize = 4096;
/// Most queued upload requests per peer; more is a violation.
const MAX_QUEUED_UPLOADS: usize = 64;
/// Data bytes a peer may send in a row that match no open request (in flight after a cancel).
const MAX_UNSOLICITED_BYTES: u64 = 2 << 20;
/// After an `Absent`, the peer is asked again for that segment after this long.
const RETRY_ABSENT_AFTER: Duration = Duration::from_millis(400);
/// Segments cancelled at a peer that are remembered, to tolerate their data still in flight.
const REMEMBERED_CANCELS: usize = 16;
/// A new peer is protected from eviction by the connection cap for this long.
const EVICTION_GRACE: Duration = Duration::from_secs(10);

/// One connected peer.
pub(super) struct Peer {
    pub(super) rendition: u16,
    max_message_size: usize,
    handshake_done: bool,
    pub(super) uploads_to_us: bool,
    /// Segments the peer holds: sequence number to size.
    pub(super) have: BTreeMap<u64, u32>,
    pub(super) buffered: usize,
    uploads: VecDeque<UploadJob>,
    pub(super) useful_bytes: u64,
    connected_at: Duration,
    unsolicited: u64,
    /// Our transfers from this peer in progress.
    pub(super) active_parts: usize,
    /// Throughput of past transfers from this peer, bytes per second (0: unknown).
    pub(super) rate: f64,
    /// The peer's CDN-pull ticket (see [`crate::wire::Message::Ticket`]), once it sent one.
    pub(super) ticket: Option<u64>,
    /// Segments we recently cancelled at this peer, newest last.
    pub(super) cancelled: VecDeque<u64>,
}

/// A byte range a peer asked us for.
struct UploadJob {
    seq: u64,
    next: u64,
    end: u64,
}

impl Engine {
    pub(super) fn on_peer_connected(&mut self, peer: PeerId, rendition: u16, max_message: usize) {
        if self.banned.contains(&peer) {
            self.push(Output::DisconnectPeer {
                peer,
                reason: DisconnectReason::Banned,
            });
            return;
        }
        if self.peers.len() >= self.config.max_peers && !self.evict_least_useful() {
            self.push(Output::DisconnectPeer {
                peer,
                reason: DisconnectReason::LeastUseful,
            });
            return;
        }
        self.peers.insert(
            peer,
            Peer {
                rendition,
                max_message_size: max_message.max(DATA_HEADER_LEN + 1),
                handshake_done: false,
                uploads_to_us: false,
                have: BTreeMap::new(),
                buffered: 0,
                uploads: VecDeque::new(),
                useful_bytes: 0,
                connected_at: self.now,
                unsolicited: 0,
                active_parts: 0,
                rate: 0.0,
                ticket: None,
                cancelled: VecDeque::new(),
            },
        );
        self.stats.peers_connected = self.peers.len();
        let capacity = self
            .config
            .upload_limit
            .unwrap_or(0)
            .min(u64::from(u32::MAX)) as u32;
        let handshake = Message::Handshake {
            version: VERSION,
            uploads: self.config.upload,
            upload_capacity: capacity,
        };
        self.send(peer, handshake.encode());
        if self.config.upload {
            self.send(peer, Message::Ticket(self.ticket).encode());
        }
    }

    /// Drops the connected peer that gave us the fewest bytes (past its grace period).
    fn evict_least_useful(&mut self) -> bool {
        let now = self.now;
        let victim = self
            .peers
            .iter()
            .filter(|(_, p)| now.saturating_sub(p.connected_at) >= EVICTION_GRACE)
            .min_by_key(|(_, p)| (p.useful_bytes, p.have.len()))
            .map(|(id, _)| *id);
        match victim {
            Some(victim) => {
                self.disconnect(victim, DisconnectReason::LeastUseful);
                true
            }
            None => false,
        }
    }

    pub(super) fn on_peer_message(&mut self, peer: PeerId, bytes: &[u8]) {
        let Some(state) = self.peers.get(&peer) else {
            return;
        };
        let handshake_done = state.handshake_done;
        let message = match Message::decode(bytes) {
            Ok(message) => message,
            // Types from a later protocol version are skipped, as PROTOCOL.md requires.
            Err(crate::wire::DecodeError::UnknownType(_)) if handshake_done => return,
            Err(_) => return self.violation(peer),
        };
        match message {
            Message::Handshake {
                version, uploads, ..
            } => self.on_handshake(peer, version, uploads),
            _ if !handshake_done => self.violation(peer),
            Message::Have(entries) => self.on_have(peer, &entries),
            Message::Lost(seqs) => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    for seq in seqs {
                        p.have.remove(&seq);
                    }
                }
            }
            Message::Request {
                seq,
                offset,
                length,
            } => self.on_request(peer, seq, offset, length),
            Message::Cancel { seq } => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.uploads.retain(|job| job.seq != seq);
                }
                self.release_upload_slot_if_idle(peer);
            }
            Message::Absent { seq } => self.on_absent(peer, seq),
            Message::Data {
                seq,
                offset,
                payload,
            } => self.on_data(peer, seq, u64::from(offset), payload),
            Message::Ticket(ticket) => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.ticket = Some(ticket);
                }
            }
        }
    }

    fn on_handshake(&mut self, peer: PeerId, version: u8, uploads: bool) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if p.handshake_done {
            return self.violation(peer);
        }
        if version != VERSION {
            return self.disconnect(peer, DisconnectReason::IncompatibleVersion);
        }
        p.handshake_done = true;
        p.uploads_to_us = uploads;
        let rendition = p.rendition;
        self.push(Output::Event(Event::PeerConnected(peer)));
        if self.config.upload {
            let have: Vec<(u64, u32)> = self
                .segments
                .range(
                    SegmentKey { rendition, seq: 0 }..=SegmentKey {
                        rendition,
                        seq: u64::MAX,
                    },
                )
                .filter_map(|(key, s)| match &s.state {
                    SegmentState::Stored(stored) => Some((key.seq, stored.data.len() as u32)),
                    _ => None,
                })
                .collect();
            for batch in have.chunks(crate::wire::MAX_ENTRIES) {
                self.send(peer, Message::Have(batch.to_vec()).encode());
            }
        }
    }

    fn on_have(&mut self, peer: PeerId, entries: &[(u64, u32)]) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if !p.uploads_to_us {
            return;
        }
        let rendition = p.rendition;
        for &(seq, size) in entries {
            p.have.insert(seq, size);
        }
        while p.have.len() > MAX_HAVE_ENTRIES {
            p.have.pop_first();
        }
        for &(seq, size) in entries {
            self.learn_size(SegmentKey { rendition, seq }, u64::from(size));
        }
    }

    fn on_request(&mut self, peer: PeerId, seq: u64, offset: u32, length: u32) {
        let Some(p) = self.peers.get(&peer) else {
            return;
        };
        let key = SegmentKey {
            rendition: p.rendition,
            seq,
        };
        let end = u64::from(offset) + u64::from(length);
        // An uploader whose slots are taken turns new requesters away at once, so they ask a
        // peer that is free (queueing behind another transfer only delays them).
        let busy = !self.upload_order.contains(&peer)
            && self.upload_order.len() >= self.config.upload_slots.max(1);
        let servable = self.config.upload
            && !busy
            && matches!(self.segments.get(&key).map(|s| &s.state),
                Some(SegmentState::Stored(stored)) if end <= stored.data.len() as u64);
        if !servable {
            return self.send(peer, Message::Absent { seq }.encode());
        }
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if p.uploads.len() >= MAX_QUEUED_UPLOADS {
            return self.violation(peer);
        }
        p.uploads.push_back(UploadJob {
            seq,
            next: u64::from(offset),
            end,
        });
        if !self.upload_order.contains(&peer) {
            self.upload_order.push_back(peer);
        }
        self.pump_uploads(peer);
    }

    fn on_absent(&mut self, peer: PeerId, seq: u64) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        let key = SegmentKey {
            rendition: p.rendition,
            seq,
        };
        // Absent names only the segment: drop every request for it at this peer (and cancel
        // any the peer is still serving, tolerating their data in flight).
        self.drop_peer_parts(key, peer);
        self.cancel(peer, seq);
        // Absent may mean busy: ask again a little later.
        self.avoid_peer(key, peer, RETRY_ABSENT_AFTER);
    }

    /// Whether a peer holds one of the upload slots.
    fn holds_upload_slot(&self, peer: PeerId) -> bool {
        self.upload_order
            .iter()
            .take(self.config.upload_slots.max(1))
            .any(|p| *p == peer)
    }

    /// Frees the slot of a peer with nothing more to receive, and serves the next in line.
    fn release_upload_slot_if_idle(&mut self, peer: PeerId) {
        let idle = self.peers.get(&peer).is_none_or(|p| p.uploads.is_empty());
        if !idle {
            return;
        }
        let Some(at) = self.upload_order.iter().position(|p| *p == peer) else {
            return;
        };
        self.upload_order.remove(at);
        if let Some(&next) = self.upload_order.get(self.config.upload_slots.max(1) - 1) {
            self.pump_uploads(next);
        }
    }

    /// Sends queued data to a peer while its slot, its channel and the upload budget allow.
    pub(super) fn pump_uploads(&mut self, peer: PeerId) {
        if !self.holds_upload_slot(peer) {
            return;
        }
        loop {
            let Some(p) = self.peers.get(&peer) else {
                return;
            };
            let Some(job) = p.uploads.front() else {
                return self.release_upload_slot_if_idle(peer);
            };
            if p.buffered >= self.config.max_buffered_amount {
                return;
            }
            let key = SegmentKey {
                rendition: p.rendition,
                seq: job.seq,
            };
            let max_payload = self
                .config
                .chunk_size
                .min(p.max_message_size - DATA_HEADER_LEN);
            let len = (job.end - job.next).min(max_payload as u64) as usize;
            let (seq, offset) = (job.seq, job.next);
            if !self.take_upload_budget(len) {
                return;
            }
            let data = match self.segments.get(&key).map(|s| &s.state) {
                Some(SegmentState::Stored(stored)) => stored.data.clone(),
                _ => {
                    self.peers.get_mut(&peer).map(|p| p.uploads.pop_front());
                    self.send(peer, Message::Absent { seq }.encode());
                    continue;
                }
            };
            let start = offset as usize;
            let message = Message::Data {
                seq,
                offset: offset as u32,
                payload: &data[start..start + len],
            }
            .encode();
            let Some(p) = self.peers.get_mut(&peer) else {
                return;
            };
            p.buffered += message.len();
            let job = p.uploads.front_mut().expect("job checked above");
            job.next += len as u64;
            if job.next >= job.end {
                p.uploads.pop_front();
            }
            self.stats.bytes_uploaded += len as u64;
            self.send(peer, message);
        }
    }

    pub(super) fn pump_all_uploads(&mut self) {
        let busy: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| !p.uploads.is_empty())
            .map(|(id, _)| *id)
            .collect();
        for peer in busy {
            self.pump_uploads(peer);
        }
    }

    /// Takes `len` bytes from the upload token bucket (always succeeds without a cap).
    fn take_upload_budget(&mut self, len: usize) -> bool {
        let Some(limit) = self.config.upload_limit else {
            return true;
        };
        let budget = &mut self.upload_budget;
        let elapsed = self.now.saturating_sub(budget.at).as_secs_f64();
        // At most a quarter second of burst.
        budget.tokens = (budget.tokens + elapsed * limit as f64).min(limit as f64 / 4.0);
        budget.at = self.now;
        if budget.tokens < len as f64 && budget.tokens < limit as f64 / 4.0 {
            return false;
        }
        budget.tokens -= len as f64;
        true
    }

    pub(super) fn uploads_wait_for_budget(&self) -> bool {
        self.config.upload_limit.is_some()
            && self
                .peers
                .values()
                .any(|p| !p.uploads.is_empty() && p.buffered < self.config.max_buffered_amount)
    }

    /// Counts unsolicited data; a peer flooding us with it is a violator.
    pub(super) fn on_unsolicited(&mut self, peer: PeerId, len: u64) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        p.unsolicited += len;
        if p.unsolicited > MAX_UNSOLICITED_BYTES {
            self.violation(peer);
        }
    }

    pub(super) fn on_useful_data(&mut self, peer: PeerId, len: u64) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.unsolicited = 0;
            p.useful_bytes += len;
        }
    }

    /// Tells a peer to stop sending a segment; its data already in flight is tolerated.
    pub(super) fn cancel(&mut self, peer: PeerId, seq: u64) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if !p.cancelled.contains(&seq) {
            if p.cancelled.len() >= REMEMBERED_CANCELS {
                p.cancelled.pop_front();
            }
            p.cancelled.push_back(seq);
        }
        self.send(peer, Message::Cancel { seq }.encode());
    }

    pub(super) fn send(&mut self, peer: PeerId, bytes: Vec<u8>) {
        self.push(Output::SendToPeer { peer, bytes });
    }

    /// Sends one message to every handshaken peer of a rendition.
    pub(super) fn broadcast(&mut self, rendition: u16, bytes: &[u8]) {
        let targets: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.rendition == rendition && p.handshake_done)
            .map(|(id, _)| *id)
            .collect();
        for peer in targets {
            self.send(peer, bytes.to_vec());
        }
    }

    pub(super) fn violation(&mut self, peer: PeerId) {
        self.stats.protocol_violations += 1;
        self.disconnect(peer, DisconnectReason::ProtocolViolation);
    }

    /// Bans a peer that sent corrupt data.
    pub(super) fn ban(&mut self, peer: PeerId) {
        if self.banned.insert(peer) {
            self.stats.peers_banned += 1;
            self.push(Output::Event(Event::PeerBanned(peer)));
            self.disconnect(peer, DisconnectReason::CorruptData);
        }
    }

    pub(super) fn disconnect(&mut self, peer: PeerId, reason: DisconnectReason) {
        if self.peers.contains_key(&peer) {
            self.push(Output::DisconnectPeer { peer, reason });
            self.remove_peer(peer);
        }
    }

    pub(super) fn remove_peer(&mut self, peer: PeerId) {
        let Some(p) = self.peers.remove(&peer) else {
            return;
        };
        self.release_upload_slot_if_idle(peer);
        self.stats.peers_connected = self.peers.len();
        self.push(Output::Event(Event::PeerDisconnected(peer)));
        let rendition = p.rendition;
        let seqs: Vec<u64> = self
            .segments
            .iter()
            .filter(|(key, s)| {
                key.rendition == rendition && matches!(s.state, SegmentState::Fetching(_))
            })
            .map(|(key, _)| key.seq)
            .collect();
        for seq in seqs {
            self.drop_peer_parts(SegmentKey { rendition, seq }, peer);
        }
    }
}
