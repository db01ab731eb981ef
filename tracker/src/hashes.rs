//! The segment-hash extension: peers report the SHA-256 of segments they fetched from the CDN;
//! a hash is accepted once enough independent networks (distinct ASNs or /16s) agree on it.
//! Bounded: a fixed number of segments per swarm, a few competing hashes per segment, and expiry.

use std::time::{Duration, Instant};

use dashmap::DashMap;
use indexmap::IndexMap;

use crate::id::Id20;
use crate::matching::Group;

/// Agreement rules and bounds.
#[derive(Debug, Clone, Copy)]
pub struct HashConfig {
    /// Independent reporters needed before a hash is accepted.
    pub quorum: usize,
    /// Segments remembered per swarm; the oldest are forgotten first.
    pub max_segments: usize,
    /// How long a segment's reports are kept.
    pub ttl: Duration,
}

impl HashConfig {
    /// The rules `config` sets.
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self {
            quorum: config.hash_quorum.max(1),
            max_segments: config.hash_max_segments.max(1),
            ttl: Duration::from_secs(config.hash_ttl),
        }
    }
}

/// Networks whose reports are counted per segment; reports from further networks are ignored.
/// Each network votes once, so junk hashes from one network cannot crowd out the true one: a
/// hash stays blockable only by more than `MAX_REPORTERS - quorum` colluding networks.
pub const MAX_REPORTERS: usize = 32;

/// What a report did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportOutcome {
    /// Counted towards a hash that is not yet accepted.
    Counted,
    /// This report completed the quorum.
    Accepted,
    /// The reporter's network had already vouched for this hash, or it was already accepted.
    Duplicate,
    /// Disagrees with the accepted hash or with its network's earlier report, or the segment
    /// already has reports from `MAX_REPORTERS` networks: ignored.
    Conflict,
}

impl ReportOutcome {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Counted => "counted",
            Self::Accepted => "accepted",
            Self::Duplicate => "duplicate",
            Self::Conflict => "conflict",
        }
    }
}

struct Votes {
    created: Instant,
    /// Each reporting network with the one hash it vouched for.
    reports: Vec<(Group, [u8; 32])>,
    accepted: Option<[u8; 32]>,
}

/// Reports and accepted hashes for every swarm.
pub struct HashBook {
    swarms: DashMap<Id20, IndexMap<String, Votes>>,
    config: HashConfig,
}

impl HashBook {
    /// An empty book.
    pub fn new(config: HashConfig) -> Self {
        Self {
            swarms: DashMap::new(),
            config,
        }
    }

    /// Records that a peer in network `group` computed `hash` for `segment`.
    pub fn report(
        &self,
        swarm: Id20,
        segment: &str,
        hash: [u8; 32],
        group: Group,
    ) -> ReportOutcome {
        let mut segments = self.swarms.entry(swarm).or_default();
        if !segments.contains_key(segment) && segments.len() >= self.config.max_segments {
            segments.shift_remove_index(0);
        }
        let votes = segments.entry(segment.to_owned()).or_insert_with(|| Votes {
            created: Instant::now(),
            reports: Vec::new(),
            accepted: None,
        });
        if let Some(accepted) = votes.accepted {
            return if accepted == hash {
                ReportOutcome::Duplicate
            } else {
                ReportOutcome::Conflict
            };
        }
        if let Some((_, vouched)) = votes.reports.iter().find(|(g, _)| *g == group) {
            return if *vouched == hash {
                ReportOutcome::Duplicate
            } else {
                ReportOutcome::Conflict
            };
        }
        if votes.reports.len() >= MAX_REPORTERS {
            return ReportOutcome::Conflict;
        }
        votes.reports.push((group, hash));
        let agreeing = votes.reports.iter().filter(|(_, h)| *h == hash).count();
        if agreeing >= self.config.quorum {
            votes.accepted = Some(hash);
            votes.reports = Vec::new();
            ReportOutcome::Accepted
        } else {
            ReportOutcome::Counted
        }
    }

    /// The accepted hashes among `segments`.
    pub fn accepted(&self, swarm: &Id20, segments: &[String]) -> Vec<(String, [u8; 32])> {
        let Some(known) = self.swarms.get(swarm) else {
            return Vec::new();
        };
        segments
            .iter()
            .filter_map(|name| Some((name.clone(), known.get(name)?.accepted?)))
            .collect()
    }

    /// Forgets segments older than the configured time to live.
    pub fn expire(&self) {
        let Some(cutoff) = Instant::now().checked_sub(self.config.ttl) else {
            return;
        };
        self.swarms.retain(|_, segments| {
            segments.retain(|_, votes| votes.created >= cutoff);
            !segments.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SWARM: Id20 = Id20([1; 20]);

    fn book(quorum: usize, max_segments: usize) -> HashBook {
        HashBook::new(HashConfig {
            quorum,
            max_segments,
            ttl: Duration::from_secs(60),
        })
    }

    #[test]
    fn accepted_only_after_quorum_of_distinct_networks() {
        let book = book(2, 10);
        let hash = [7; 32];
        assert_eq!(
            book.report(SWARM, "s1", hash, Group::Asn(1)),
            ReportOutcome::Counted
        );
        assert_eq!(
            book.report(SWARM, "s1", hash, Group::Asn(1)),
            ReportOutcome::Duplicate
        );
        assert!(book.accepted(&SWARM, &["s1".into()]).is_empty());
        assert_eq!(
            book.report(SWARM, "s1", hash, Group::Asn(2)),
            ReportOutcome::Accepted
        );
        assert_eq!(
            book.accepted(&SWARM, &["s1".into()]),
            vec![("s1".to_string(), hash)]
        );
        assert_eq!(
            book.report(SWARM, "s1", [8; 32], Group::Asn(3)),
            ReportOutcome::Conflict
        );
    }

    #[test]
    fn a_minority_of_liars_cannot_win() {
        let book = book(2, 10);
        assert_eq!(
            book.report(SWARM, "s", [6; 32], Group::Asn(66)),
            ReportOutcome::Counted
        );
        book.report(SWARM, "s", [7; 32], Group::Asn(1));
        book.report(SWARM, "s", [7; 32], Group::Asn(2));
        assert_eq!(book.accepted(&SWARM, &["s".into()])[0].1, [7; 32]);
    }

    #[test]
    fn one_network_cannot_crowd_out_the_true_hash() {
        let book = book(2, 10);
        for junk in 0..40 {
            let outcome = book.report(SWARM, "s", [junk; 32], Group::Asn(66));
            let expected = if junk == 0 {
                ReportOutcome::Counted
            } else {
                ReportOutcome::Conflict
            };
            assert_eq!(outcome, expected, "junk report {junk}");
        }
        book.report(SWARM, "s", [99; 32], Group::Asn(1));
        assert_eq!(
            book.report(SWARM, "s", [99; 32], Group::Asn(2)),
            ReportOutcome::Accepted
        );
        assert_eq!(book.accepted(&SWARM, &["s".into()])[0].1, [99; 32]);
    }

    #[test]
    fn reporters_per_segment_are_bounded() {
        let book = book(MAX_REPORTERS + 1, 10);
        for asn in 0..MAX_REPORTERS as u32 {
            book.report(SWARM, "s", [7; 32], Group::Asn(asn));
        }
        assert_eq!(
            book.report(SWARM, "s", [7; 32], Group::Asn(1000)),
            ReportOutcome::Conflict
        );
    }

    #[test]
    fn memory_is_bounded_per_swarm() {
        let book = book(1, 3);
        for n in 0..10 {
            book.report(SWARM, &format!("s{n}"), [n; 32], Group::Asn(1));
        }
        let names: Vec<String> = (0..10).map(|n| format!("s{n}")).collect();
        let kept: Vec<_> = book
            .accepted(&SWARM, &names)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(kept, vec!["s7", "s8", "s9"]);
    }
}
