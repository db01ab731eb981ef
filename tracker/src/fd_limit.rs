//! The process's open-file limit, which bounds how many connections the tracker can hold: raised
//! to its hard maximum at start, and the source of the default `--max-connections`.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Raises the soft open-file limit to the hard one. Returns the soft limit before and after
/// (`None`: unlimited), or why it could not be raised.
pub fn raise_to_hard() -> std::io::Result<(Option<u64>, Option<u64>)> {
    let limit = getrlimit(Resource::Nofile);
    // An unlimited hard limit is not a valid soft limit for open files: keep the soft one.
    if limit.maximum.is_some() && limit.current != limit.maximum {
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            },
        )?;
    }
    Ok((limit.current, getrlimit(Resource::Nofile).current))
}

/// The default `--max-connections`: the soft open-file limit in force, minus [`reserve`].
pub fn default_max_connections() -> u32 {
    let soft = getrlimit(Resource::Nofile)
        .current
        .unwrap_or(u64::from(u32::MAX));
    connections_within(soft)
}

/// File descriptors kept back from WebSocket connections out of `limit`: for the listener,
/// handshakes, health probes and metric scrapes in flight, and GeoIP reloads. 1/32 of the
/// limit, at least 32.
pub fn reserve(limit: u64) -> u64 {
    (limit / 32).max(32)
}

/// WebSocket connections that fit within an open-file limit of `limit` (at least one).
fn connections_within(limit: u64) -> u32 {
    let usable = limit.saturating_sub(reserve(limit)).max(1);
    u32::try_from(usable).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_of_the_limit_is_kept_back() {
        assert_eq!(connections_within(1024), 992);
        assert_eq!(connections_within(20_000), 19_375);
        assert_eq!(connections_within(1 << 20), 1_015_808);
        assert_eq!(connections_within(10), 1);
        assert_eq!(connections_within(u64::MAX), u32::MAX);
    }
}
