//! Request and byte counters per path, served by `GET /_stats`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// Most distinct paths counted one by one; requests to further paths count in the totals only.
pub const MAX_TRACKED_PATHS: usize = 10_000;

/// A snapshot of the counters, as `GET /_stats` returns it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// All media requests (everything but `/_control` and `/_stats`).
    pub total: Counts,
    /// Counts per request path (without the query string).
    pub paths: BTreeMap<String, Counts>,
}

/// Requests and body bytes sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Requests received.
    pub requests: u64,
    /// Response body bytes actually sent (a truncated body counts what went out).
    pub bytes: u64,
}

/// The live counters.
#[derive(Debug, Default)]
pub struct Stats {
    total: Arc<Counters>,
    paths: Mutex<BTreeMap<String, Arc<Counters>>>,
}

/// Counters that one response's body adds its bytes to.
#[derive(Debug, Default)]
pub struct Counters {
    requests: AtomicU64,
    bytes: AtomicU64,
}

/// Where one response's bytes are counted: the totals and, when tracked, its path.
#[derive(Debug, Clone)]
pub struct ByteCounter {
    total: Arc<Counters>,
    path: Option<Arc<Counters>>,
}

impl Stats {
    /// Counts a request to `path` and returns the counter its body bytes go to.
    pub fn record_request(&self, path: &str) -> ByteCounter {
        self.total.requests.fetch_add(1, Ordering::Relaxed);
        let path_counters = {
            let mut paths = self
                .paths
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            match paths.get(path) {
                Some(counters) => Some(counters.clone()),
                None if paths.len() < MAX_TRACKED_PATHS => {
                    Some(paths.entry(path.to_owned()).or_default().clone())
                }
                None => None,
            }
        };
        if let Some(counters) = &path_counters {
            counters.requests.fetch_add(1, Ordering::Relaxed);
        }
        ByteCounter {
            total: self.total.clone(),
            path: path_counters,
        }
    }

    /// The counters as they are now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let paths = self
            .paths
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        StatsSnapshot {
            total: self.total.counts(),
            paths: paths
                .iter()
                .map(|(path, counters)| (path.clone(), counters.counts()))
                .collect(),
        }
    }

    /// Sets every counter back to zero.
    pub fn reset(&self) {
        let mut paths = self
            .paths
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        paths.clear();
        self.total.requests.store(0, Ordering::Relaxed);
        self.total.bytes.store(0, Ordering::Relaxed);
    }
}

impl Counters {
    fn counts(&self) -> Counts {
        Counts {
            requests: self.requests.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }
}

impl ByteCounter {
    /// Adds `bytes` sent.
    pub fn add(&self, bytes: u64) {
        self.total.bytes.fetch_add(bytes, Ordering::Relaxed);
        if let Some(path) = &self.path {
            path.bytes.fetch_add(bytes, Ordering::Relaxed);
        }
    }
}
