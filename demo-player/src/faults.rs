//! Fault rules: added latency, a bandwidth cap and injected failures, chosen per request path.

use std::sync::Mutex;
use std::time::Duration;

use globset::{Glob, GlobMatcher};
use serde::{Deserialize, Serialize};

/// Most rules one fault table holds; a longer list is refused.
pub const MAX_RULES: usize = 256;

/// The longest a stall without `for_ms` lasts; bounds how long a stalled response holds a task.
pub const MAX_STALL: Duration = Duration::from_secs(600);

/// The fault configuration, as taken by `--faults` and `POST /_control/faults`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultConfig {
    /// The rules, in order. Every rule whose `path` matches a request applies to it.
    pub rules: Vec<FaultRule>,
}

/// What happens to requests whose path matches `path`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// A glob over the request path, e.g. `/480p/*.ts` or `/*` (`*` also matches `/`,
    /// so `/240p/*` is a prefix match).
    pub path: String,
    /// Delay before the response starts, in milliseconds.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub latency_ms: u64,
    /// Cap on the body's transfer rate, in bytes per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_bytes_per_sec: Option<u64>,
    /// A failure to inject instead of a normal response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// Apply the rule to this many matching requests only; absent means every request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u64>,
}

/// An injected failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Failure {
    /// Answer with this status code (e.g. 503) and a short text body.
    Status {
        /// The HTTP status code, 400..=599.
        status: u16,
    },
    /// Announce the full length but close the connection after this many body bytes.
    Truncate {
        /// Body bytes sent before the connection is cut.
        after_bytes: u64,
    },
    /// Send this many body bytes, then stop sending (for `for_ms`, or until the client gives up).
    Stall {
        /// Body bytes sent before the stall.
        after_bytes: u64,
        /// How long the stall lasts before the rest is sent; absent means [`MAX_STALL`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        for_ms: Option<u64>,
    },
}

/// Why a fault configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum FaultConfigError {
    /// A rule's `path` is not a valid glob.
    #[error("rule {index}: path {path:?} is not a valid glob: {source}")]
    BadGlob {
        /// Position of the rule in the list.
        index: usize,
        /// The offending pattern.
        path: String,
        /// What the glob parser said.
        source: globset::Error,
    },
    /// A status failure outside 400..=599.
    #[error("rule {index}: failure status {status} must be in 400..=599")]
    BadStatus {
        /// Position of the rule in the list.
        index: usize,
        /// The offending status.
        status: u16,
    },
    /// A zero bandwidth cap would never finish a response.
    #[error("rule {index}: bandwidth_bytes_per_sec must be at least 1")]
    ZeroBandwidth {
        /// Position of the rule in the list.
        index: usize,
    },
    /// Too many rules.
    #[error("{count} rules given; at most {MAX_RULES} are allowed")]
    TooManyRules {
        /// How many were given.
        count: usize,
    },
}

/// The faults that apply to one request, merged over all matching rules.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppliedFaults {
    /// Sum of the matching rules' latencies.
    pub latency: Duration,
    /// The lowest matching bandwidth cap, in bytes per second.
    pub bandwidth_bytes_per_sec: Option<u64>,
    /// The first matching rule's failure.
    pub failure: Option<Failure>,
}

/// The live fault table: the configuration plus compiled globs and remaining use counts.
#[derive(Debug, Default)]
pub struct FaultTable {
    rules: Mutex<Vec<ActiveRule>>,
}

#[derive(Debug)]
struct ActiveRule {
    rule: FaultRule,
    matcher: GlobMatcher,
    remaining: Option<u64>,
}

impl FaultTable {
    /// Replaces all rules after checking every one; on error the table is unchanged.
    pub fn replace(&self, config: FaultConfig) -> Result<(), FaultConfigError> {
        let compiled = compile(config)?;
        *self.lock() = compiled;
        Ok(())
    }

    /// The current rules; a rule with `times` shows how many uses remain.
    pub fn config(&self) -> FaultConfig {
        let rules = self.lock();
        FaultConfig {
            rules: rules
                .iter()
                .map(|active| FaultRule {
                    times: active.remaining,
                    ..active.rule.clone()
                })
                .collect(),
        }
    }

    /// The faults for a request to `path`, using up one application of each counted rule.
    pub fn apply(&self, path: &str) -> AppliedFaults {
        let mut applied = AppliedFaults::default();
        for active in self.lock().iter_mut() {
            if active.remaining == Some(0) || !active.matcher.is_match(path) {
                continue;
            }
            if let Some(remaining) = active.remaining.as_mut() {
                *remaining -= 1;
            }
            let rule = &active.rule;
            applied.latency += Duration::from_millis(rule.latency_ms);
            applied.bandwidth_bytes_per_sec = match (
                applied.bandwidth_bytes_per_sec,
                rule.bandwidth_bytes_per_sec,
            ) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            applied.failure = applied.failure.or(rule.failure);
        }
        applied
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<ActiveRule>> {
        // A panic while holding this lock cannot leave the rules half-written; keep serving.
        self.rules
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn compile(config: FaultConfig) -> Result<Vec<ActiveRule>, FaultConfigError> {
    if config.rules.len() > MAX_RULES {
        return Err(FaultConfigError::TooManyRules {
            count: config.rules.len(),
        });
    }
    config
        .rules
        .into_iter()
        .enumerate()
        .map(|(index, rule)| {
            let matcher = Glob::new(&rule.path)
                .map_err(|source| FaultConfigError::BadGlob {
                    index,
                    path: rule.path.clone(),
                    source,
                })?
                .compile_matcher();
            if let Some(Failure::Status { status }) = rule.failure {
                if !(400..=599).contains(&status) {
                    return Err(FaultConfigError::BadStatus { index, status });
                }
            }
            if rule.bandwidth_bytes_per_sec == Some(0) {
                return Err(FaultConfigError::ZeroBandwidth { index });
            }
            Ok(ActiveRule {
                remaining: rule.times,
                matcher,
                rule,
            })
        })
        .collect()
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(json: &str) -> FaultTable {
        let table = FaultTable::default();
        table.replace(serde_json::from_str(json).unwrap()).unwrap();
        table
    }

    #[test]
    fn matching_rules_merge_and_counted_rules_run_out() {
        let table = table(
            r#"{"rules":[
                {"path":"/480p/*","latency_ms":100,"failure":{"kind":"status","status":503},"times":1},
                {"path":"/*","latency_ms":50,"bandwidth_bytes_per_sec":1000},
                {"path":"*.ts","bandwidth_bytes_per_sec":500}
            ]}"#,
        );
        let first = table.apply("/480p/segment_000.ts");
        assert_eq!(first.latency, Duration::from_millis(150));
        assert_eq!(first.bandwidth_bytes_per_sec, Some(500));
        assert_eq!(first.failure, Some(Failure::Status { status: 503 }));
        let second = table.apply("/480p/segment_000.ts");
        assert_eq!(second.failure, None);
        assert_eq!(second.latency, Duration::from_millis(50));
        assert_eq!(
            table.apply("/master.m3u8").bandwidth_bytes_per_sec,
            Some(1000)
        );
        assert_eq!(table.config().rules[0].times, Some(0));
    }

    #[test]
    fn bad_rules_are_refused_and_leave_the_table_unchanged() {
        let table = table(r#"{"rules":[{"path":"/a","latency_ms":1}]}"#);
        for bad in [
            r#"{"rules":[{"path":"/[","latency_ms":1}]}"#,
            r#"{"rules":[{"path":"/a","failure":{"kind":"status","status":200}}]}"#,
            r#"{"rules":[{"path":"/a","bandwidth_bytes_per_sec":0}]}"#,
        ] {
            assert!(
                table.replace(serde_json::from_str(bad).unwrap()).is_err(),
                "{bad}"
            );
        }
        assert_eq!(table.config().rules.len(), 1);
    }
}
