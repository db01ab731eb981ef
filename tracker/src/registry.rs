//! Swarm membership: who is in which swarm, and whom an offer should go to.
//!
//! [`SwarmRegistry`] is the seam for several replicas: [`MemoryRegistry`] keeps one process's
//! swarms in sharded maps; a shared implementation can keep them elsewhere.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use indexmap::{IndexMap, IndexSet};
use rand::Rng;

use crate::cluster::{RemotePeer, ReplicaId};
use crate::geo::Locality;
use crate::id::Id20;
use crate::matching::{self, Group, Load, RankKey, Tier};
use crate::protocol::PeerExtension;
use crate::relay::Route;

/// Identifies one client connection within this process.
pub type ConnectionId = u64;

/// A peer as it announces itself to a swarm.
#[derive(Debug, Clone)]
pub struct PeerRecord {
    /// The peer's id in this swarm.
    pub peer_id: Id20,
    /// The connection it announced on.
    pub connection: ConnectionId,
    /// How to reach it.
    pub route: Route,
    /// Where it is.
    pub locality: Arc<Locality>,
    /// Extension fields it sent.
    pub ext: PeerExtension,
    /// Whether it is a seeder (`completed`).
    pub complete: bool,
}

/// Where a chosen peer's connection is.
#[derive(Debug)]
pub enum Destination {
    /// On this replica.
    Local(Route),
    /// On another replica.
    Remote {
        /// The replica.
        replica: ReplicaId,
    },
}

/// A peer chosen to receive an offer.
#[derive(Debug)]
pub struct Target {
    /// Its id.
    pub peer_id: Id20,
    /// How to reach it.
    pub destination: Destination,
    /// How close it is to the offering peer.
    pub tier: Tier,
}

/// A peer of this replica, as written to Redis.
#[derive(Debug, Clone)]
pub struct LocalMember {
    /// Its swarm.
    pub info_hash: Id20,
    /// Its id.
    pub peer_id: Id20,
    /// Its connection.
    pub connection: ConnectionId,
    /// Where it is.
    pub locality: Locality,
    /// Its extension fields.
    pub ext: PeerExtension,
    /// Whether it is a seeder.
    pub complete: bool,
}

/// The connection through which a peer is in a swarm.
#[derive(Debug, Clone)]
pub struct Owner {
    /// The connection.
    pub connection: ConnectionId,
    /// How to reach it.
    pub route: Route,
}

/// Seeders and leechers of a swarm.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SwarmCounts {
    /// Seeders.
    pub complete: u64,
    /// Leechers.
    pub incomplete: u64,
}

/// Everything an announce yields.
#[derive(Debug)]
pub struct AnnounceOutcome {
    /// The swarm after the announce.
    pub counts: SwarmCounts,
    /// The peers the announce's offers go to, best first, at most as many as asked.
    pub targets: Vec<Target>,
}

/// Why the registry refused an announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// Another live connection announced this peer id in this swarm.
    #[error("peer_id is in use by another connection")]
    PeerIdTaken,
}

/// Totals for metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct RegistryTotals {
    /// Swarms with at least one peer.
    pub swarms: usize,
    /// Peers over all swarms.
    pub peers: usize,
}

/// Swarm membership and peer selection.
pub trait SwarmRegistry: Send + Sync {
    /// Adds or refreshes `peer` in `info_hash`, then picks up to `want` other peers to receive
    /// its offers, closest first, among this registry's peers and `remote` (peers of the swarm
    /// held by other replicas).
    fn announce(
        &self,
        info_hash: Id20,
        peer: PeerRecord,
        want: usize,
        remote: &[RemotePeer],
    ) -> Result<AnnounceOutcome, RegistryError>;
    /// Removes the peer if it belongs to `connection`.
    fn leave(&self, info_hash: &Id20, peer_id: &Id20, connection: ConnectionId) -> SwarmCounts;
    /// Whether the peer is in the swarm through `connection`.
    fn is_member(&self, info_hash: &Id20, peer_id: &Id20, connection: ConnectionId) -> bool;
    /// The connection through which the peer is in the swarm, if it is (`None` also when that
    /// connection lives elsewhere and cannot be reached from here).
    fn owner(&self, info_hash: &Id20, peer_id: &Id20) -> Option<Owner>;
    /// The swarm's figures.
    fn counts(&self, info_hash: &Id20) -> SwarmCounts;
    /// Removes peers silent for longer than `idle`; returns how many.
    fn expire(&self, idle: Duration) -> usize;
    /// Totals over all swarms.
    fn totals(&self) -> RegistryTotals;
    /// Every peer of every swarm.
    fn members(&self) -> Vec<LocalMember>;
}

/// Matching parameters of the in-memory registry.
#[derive(Debug, Clone, Copy)]
pub struct MatchingConfig {
    /// Peers within this distance count as near.
    pub nearby_km: f32,
    /// At most this many candidates are ranked per announce (bounded work in huge swarms).
    pub max_candidates: usize,
}

struct Member {
    connection: ConnectionId,
    route: Route,
    /// A copy, not the connection's `Arc`: ranking reads it for hundreds of members per
    /// announce, and inline in the map it costs no pointer chase (cache miss) each.
    locality: Locality,
    ext: PeerExtension,
    complete: bool,
    last_seen: Instant,
    recent_offers: u32,
}

#[derive(Default)]
struct Swarm {
    peers: IndexMap<Id20, Member>,
    groups: HashMap<Group, IndexSet<Id20>>,
    complete: u64,
}

impl Swarm {
    fn counts(&self) -> SwarmCounts {
        SwarmCounts {
            complete: self.complete,
            incomplete: self.peers.len() as u64 - self.complete,
        }
    }

    fn upsert(&mut self, peer: PeerRecord) -> Result<(), RegistryError> {
        if let Some(member) = self.peers.get_mut(&peer.peer_id) {
            if member.connection != peer.connection && !member.route.is_closed() {
                return Err(RegistryError::PeerIdTaken);
            }
            if member.connection != peer.connection {
                self.remove(&peer.peer_id);
            } else {
                self.complete += u64::from(peer.complete && !member.complete);
                member.complete |= peer.complete;
                member.ext = peer.ext;
                member.last_seen = Instant::now();
                member.recent_offers = 0;
                return Ok(());
            }
        }
        let group = Group::of(&peer.locality);
        self.groups.entry(group).or_default().insert(peer.peer_id);
        self.complete += u64::from(peer.complete);
        let member = Member {
            connection: peer.connection,
            route: peer.route,
            locality: Locality::clone(&peer.locality),
            ext: peer.ext,
            complete: peer.complete,
            last_seen: Instant::now(),
            recent_offers: 0,
        };
        self.peers.insert(peer.peer_id, member);
        Ok(())
    }

    fn remove(&mut self, peer_id: &Id20) {
        let Some(member) = self.peers.swap_remove(peer_id) else {
            return;
        };
        self.complete -= u64::from(member.complete);
        let group = Group::of(&member.locality);
        if let Some(set) = self.groups.get_mut(&group) {
            set.swap_remove(peer_id);
            if set.is_empty() {
                self.groups.remove(&group);
            }
        }
    }

    /// Indices into `peers` worth ranking, without repeats: the whole swarm when it is small,
    /// else a random window of the sender's own group and a random window of the whole swarm.
    fn candidates(&self, from: &Member, limit: usize, rng: &mut impl Rng) -> Vec<usize> {
        if self.peers.len() <= limit {
            return (0..self.peers.len()).collect();
        }
        let mut picked = Vec::with_capacity(limit + limit / 4);
        if let Some(group) = self.groups.get(&Group::of(&from.locality)) {
            picked.extend(random_window(group.len(), limit / 4, rng).filter_map(|i| {
                group
                    .get_index(i)
                    .and_then(|id| self.peers.get_index_of(id))
            }));
        }
        picked.extend(random_window(self.peers.len(), limit, rng));
        picked.sort_unstable();
        picked.dedup();
        picked
    }

    fn select(
        &mut self,
        from_id: &Id20,
        want: usize,
        remote: &[RemotePeer],
        config: &MatchingConfig,
        rng: &mut impl Rng,
    ) -> Vec<Target> {
        let Some(from) = self.peers.get(from_id) else {
            return Vec::new();
        };
        // Only eligible candidates are ranked; whether their connection is still open is checked
        // for the winners alone (a closed one is about to leave the swarm anyway).
        let mut ranked: Vec<(RankKey, Pick)> = self
            .candidates(from, config.max_candidates, rng)
            .into_iter()
            .filter_map(|index| {
                let (id, member) = self.peers.get_index(index)?;
                if id == from_id || !(from.ext.upload || member.ext.upload) {
                    return None;
                }
                let load = Load {
                    recent_offers: member.recent_offers,
                    capacity: member.ext.capacity,
                    position: member.ext.position,
                };
                let key = rank_for(from, &member.locality, load, config, rng);
                Some((key, Pick::Local(index)))
            })
            .collect();
        ranked.extend(remote.iter().enumerate().filter_map(|(index, peer)| {
            let eligible = from.ext.upload || peer.entry.ext.upload;
            if peer.peer_id == *from_id || !eligible || self.peers.contains_key(&peer.peer_id) {
                return None;
            }
            let load = Load {
                recent_offers: 0,
                capacity: peer.entry.ext.capacity,
                position: peer.entry.ext.position,
            };
            let key = rank_for(from, &peer.entry.locality, load, config, rng);
            Some((key, Pick::Remote(index)))
        }));
        let mut chosen = Vec::with_capacity(want.min(ranked.len()));
        let mut start = 0;
        // Partial selection: bring the best `need` to the front, sort only those, keep the open
        // ones; repeat on the rest only if some were closed.
        while chosen.len() < want && start < ranked.len() {
            let rest = &mut ranked[start..];
            let take = (want - chosen.len()).min(rest.len());
            if rest.len() > take {
                rest.select_nth_unstable(take - 1);
            }
            rest[..take].sort_unstable();
            chosen.extend(
                rest[..take]
                    .iter()
                    .filter(|(_, pick)| match pick {
                        Pick::Local(index) => self
                            .peers
                            .get_index(*index)
                            .is_some_and(|(_, member)| !member.route.is_closed()),
                        Pick::Remote(_) => true,
                    })
                    .copied(),
            );
            start += take;
        }
        chosen
            .into_iter()
            .filter_map(|(key, pick)| match pick {
                Pick::Local(index) => {
                    let (id, member) = self.peers.get_index_mut(index)?;
                    member.recent_offers = member.recent_offers.saturating_add(1);
                    Some(Target {
                        peer_id: *id,
                        destination: Destination::Local(member.route.clone()),
                        tier: key.0,
                    })
                }
                Pick::Remote(index) => {
                    let peer = remote.get(index)?;
                    Some(Target {
                        peer_id: peer.peer_id,
                        destination: Destination::Remote {
                            replica: peer.replica,
                        },
                        tier: key.0,
                    })
                }
            })
            .collect()
    }
}

/// A ranked candidate: an index into the swarm's peers, or into the remote peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Pick {
    Local(usize),
    Remote(usize),
}

/// How good a match `to` is for `from`.
fn rank_for(
    from: &Member,
    to: &Locality,
    load: Load,
    config: &MatchingConfig,
    rng: &mut impl Rng,
) -> RankKey {
    matching::rank(
        &from.locality,
        from.ext.position,
        to,
        load,
        config.nearby_km,
        rng.random(),
    )
}

/// Up to `count` consecutive positions (wrapping) from a random start in `0..len`.
fn random_window(len: usize, count: usize, rng: &mut impl Rng) -> impl Iterator<Item = usize> {
    let start = if len == 0 {
        0
    } else {
        rng.random_range(0..len)
    };
    (0..count.min(len)).map(move |i| (start + i) % len)
}

/// One process's swarms, in sharded maps.
pub struct MemoryRegistry {
    swarms: DashMap<Id20, Swarm>,
    config: MatchingConfig,
}

impl MemoryRegistry {
    /// An empty registry.
    pub fn new(config: MatchingConfig) -> Self {
        Self {
            swarms: DashMap::new(),
            config,
        }
    }
}

impl SwarmRegistry for MemoryRegistry {
    fn announce(
        &self,
        info_hash: Id20,
        peer: PeerRecord,
        want: usize,
        remote: &[RemotePeer],
    ) -> Result<AnnounceOutcome, RegistryError> {
        let peer_id = peer.peer_id;
        let mut swarm = self.swarms.entry(info_hash).or_default();
        swarm.upsert(peer)?;
        let targets = if want == 0 {
            Vec::new()
        } else {
            swarm.select(&peer_id, want, remote, &self.config, &mut rand::rng())
        };
        Ok(AnnounceOutcome {
            counts: swarm.counts(),
            targets,
        })
    }

    fn leave(&self, info_hash: &Id20, peer_id: &Id20, connection: ConnectionId) -> SwarmCounts {
        let Some(mut swarm) = self.swarms.get_mut(info_hash) else {
            return SwarmCounts::default();
        };
        if swarm
            .peers
            .get(peer_id)
            .is_some_and(|m| m.connection == connection)
        {
            swarm.remove(peer_id);
        }
        let counts = swarm.counts();
        drop(swarm);
        self.swarms.remove_if(info_hash, |_, s| s.peers.is_empty());
        counts
    }

    fn is_member(&self, info_hash: &Id20, peer_id: &Id20, connection: ConnectionId) -> bool {
        self.swarms.get(info_hash).is_some_and(|swarm| {
            swarm
                .peers
                .get(peer_id)
                .is_some_and(|m| m.connection == connection)
        })
    }

    fn owner(&self, info_hash: &Id20, peer_id: &Id20) -> Option<Owner> {
        let swarm = self.swarms.get(info_hash)?;
        let member = swarm.peers.get(peer_id)?;
        Some(Owner {
            connection: member.connection,
            route: member.route.clone(),
        })
    }

    fn counts(&self, info_hash: &Id20) -> SwarmCounts {
        self.swarms
            .get(info_hash)
            .map(|s| s.counts())
            .unwrap_or_default()
    }

    fn expire(&self, idle: Duration) -> usize {
        let cutoff = Instant::now().checked_sub(idle);
        let mut removed = 0;
        self.swarms.retain(|_, swarm| {
            let stale: Vec<Id20> = swarm
                .peers
                .iter()
                .filter(|(_, m)| cutoff.is_some_and(|c| m.last_seen < c) || m.route.is_closed())
                .map(|(id, _)| *id)
                .collect();
            removed += stale.len();
            stale.iter().for_each(|id| swarm.remove(id));
            !swarm.peers.is_empty()
        });
        removed
    }

    fn totals(&self) -> RegistryTotals {
        let mut totals = RegistryTotals {
            swarms: self.swarms.len(),
            peers: 0,
        };
        for swarm in self.swarms.iter() {
            totals.peers += swarm.peers.len();
        }
        totals
    }

    fn members(&self) -> Vec<LocalMember> {
        let mut members = Vec::new();
        for swarm in self.swarms.iter() {
            members.extend(swarm.peers.iter().map(|(peer_id, member)| LocalMember {
                info_hash: *swarm.key(),
                peer_id: *peer_id,
                connection: member.connection,
                locality: member.locality.clone(),
                ext: member.ext,
                complete: member.complete,
            }));
        }
        members
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    const CONFIG: MatchingConfig = MatchingConfig {
        nearby_km: 500.0,
        max_candidates: 64,
    };

    fn peer(
        n: u8,
        ip: &str,
        asn: Option<u32>,
        upload: bool,
    ) -> (PeerRecord, mpsc::Receiver<crate::relay::Delivery>) {
        let (route, rx) = mpsc::channel(4);
        let mut locality = Locality::from_ip(ip.parse().unwrap());
        locality.asn = asn;
        let ext = PeerExtension {
            upload,
            ..PeerExtension::default()
        };
        let record = PeerRecord {
            peer_id: Id20([n; 20]),
            connection: u64::from(n),
            route,
            locality: Arc::new(locality),
            ext,
            complete: false,
        };
        (record, rx)
    }

    #[test]
    fn never_offers_to_itself_and_prefers_same_asn() {
        let registry = MemoryRegistry::new(CONFIG);
        let swarm = Id20([9; 20]);
        let mut keep = Vec::new();
        for n in 1..=20 {
            let (record, rx) = peer(n, &format!("10.{n}.0.1"), Some(u32::from(n % 2)), true);
            keep.push(rx);
            registry.announce(swarm, record, 0, &[]).unwrap();
        }
        let (me, _rx) = peer(1, "10.1.0.1", Some(1), true);
        let outcome = registry.announce(swarm, me, 5, &[]).unwrap();
        assert_eq!(outcome.targets.len(), 5);
        for target in &outcome.targets {
            assert_ne!(target.peer_id, Id20([1; 20]));
            assert_eq!(target.tier, Tier::Asn);
        }
    }

    #[test]
    fn closed_connections_are_skipped_and_the_next_best_taken() {
        let registry = MemoryRegistry::new(CONFIG);
        let swarm = Id20([9; 20]);
        let mut open = Vec::new();
        for n in 2..=9 {
            let (record, rx) = peer(n, &format!("10.{n}.0.1"), Some(u32::from(n)), true);
            registry.announce(swarm, record, 0, &[]).unwrap();
            // Even peers close their connection without leaving yet.
            if n % 2 == 1 {
                open.push(rx);
            }
        }
        let (me, _rx) = peer(1, "10.1.0.1", Some(1), true);
        let outcome = registry.announce(swarm, me, 3, &[]).unwrap();
        let mut ids: Vec<u8> = outcome.targets.iter().map(|t| t.peer_id.0[0]).collect();
        ids.sort_unstable();
        assert_eq!(ids.len(), 3);
        assert!(ids.iter().all(|n| n % 2 == 1), "{ids:?}");
        let all = registry.announce(swarm, peer(1, "10.1.0.1", Some(1), true).0, 8, &[]);
        assert_eq!(all.unwrap().targets.len(), 4);
    }

    #[test]
    fn download_only_peers_are_not_matched_together() {
        let registry = MemoryRegistry::new(CONFIG);
        let swarm = Id20([9; 20]);
        let (a, _ra) = peer(1, "10.0.0.1", None, false);
        let (b, _rb) = peer(2, "10.0.0.2", None, false);
        let (c, _rc) = peer(3, "10.0.0.3", None, true);
        registry.announce(swarm, a, 0, &[]).unwrap();
        registry.announce(swarm, c, 0, &[]).unwrap();
        let outcome = registry.announce(swarm, b, 5, &[]).unwrap();
        let ids: Vec<_> = outcome.targets.iter().map(|t| t.peer_id).collect();
        assert_eq!(ids, vec![Id20([3; 20])]);
    }

    #[test]
    fn a_live_peer_id_cannot_be_taken_over_and_leaving_empties_the_swarm() {
        let registry = MemoryRegistry::new(CONFIG);
        let swarm = Id20([9; 20]);
        let (a, _ra) = peer(1, "10.0.0.1", None, true);
        let (mut intruder, _ri) = peer(2, "10.0.0.2", None, true);
        intruder.peer_id = a.peer_id;
        registry.announce(swarm, a, 0, &[]).unwrap();
        assert_eq!(
            registry.announce(swarm, intruder, 0, &[]).unwrap_err(),
            RegistryError::PeerIdTaken
        );
        registry.leave(&swarm, &Id20([1; 20]), 1);
        assert_eq!(registry.totals().swarms, 0);
    }
}
