//! Segment-hash agreement in Redis, with the rules of the in-process book
//! ([`crate::hashes::HashBook`]): one vote per network, a quorum of agreeing networks, a bounded
//! number of networks per segment and of segments per swarm, and a lifetime.
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `p2pvd:{H}:votes` | hash | segment name → `group=sha256,group=sha256…` until accepted |
//! | `p2pvd:{H}:accepted` | hash | segment name → accepted SHA-256 (hex) |
//! | `p2pvd:{H}:segments` | sorted set | segment names scored by when first reported (ms) |

use std::sync::LazyLock;

use crate::hashes::ReportOutcome;
use crate::matching::Group;

/// The text that names a reporter's network in a vote.
pub fn group_tag(group: Group) -> String {
    match group {
        Group::Asn(asn) => format!("a{asn}"),
        Group::Prefix(prefix) => format!("p{prefix:x}"),
    }
}

/// The outcome a script's reply names.
pub fn outcome(reply: &str) -> ReportOutcome {
    match reply {
        "counted" => ReportOutcome::Counted,
        "accepted" => ReportOutcome::Accepted,
        "duplicate" => ReportOutcome::Duplicate,
        _ => ReportOutcome::Conflict,
    }
}

/// Records one report.
///
/// KEYS: votes, accepted, segments. ARGV: segment, sha256 hex, group tag, quorum, most networks
/// per segment, most segments per swarm, now (ms), lifetime (ms).
/// Returns `counted`, `accepted`, `duplicate` or `conflict`.
pub const REPORT_LUA: &str = r#"
local seg, sha, group = ARGV[1], ARGV[2], ARGV[3]
local now, ttl = tonumber(ARGV[7]), tonumber(ARGV[8])
local old = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now - ttl, 'LIMIT', 0, 64)
for _, s in ipairs(old) do
  redis.call('HDEL', KEYS[1], s)
  redis.call('HDEL', KEYS[2], s)
  redis.call('ZREM', KEYS[3], s)
end
local accepted = redis.call('HGET', KEYS[2], seg)
if accepted then
  if accepted == sha then return 'duplicate' else return 'conflict' end
end
local votes = redis.call('HGET', KEYS[1], seg) or ''
local count, agreeing = 0, 0
for g, h in string.gmatch(votes, '([^=,]+)=([^,]+)') do
  count = count + 1
  if g == group then
    if h == sha then return 'duplicate' else return 'conflict' end
  end
  if h == sha then agreeing = agreeing + 1 end
end
if count >= tonumber(ARGV[5]) then return 'conflict' end
if not redis.call('ZSCORE', KEYS[3], seg) then
  if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[6]) then
    local oldest = redis.call('ZPOPMIN', KEYS[3])
    redis.call('HDEL', KEYS[1], oldest[1])
    redis.call('HDEL', KEYS[2], oldest[1])
  end
  redis.call('ZADD', KEYS[3], now, seg)
end
local result
if agreeing + 1 >= tonumber(ARGV[4]) then
  redis.call('HSET', KEYS[2], seg, sha)
  redis.call('HDEL', KEYS[1], seg)
  result = 'accepted'
else
  local sep = ''
  if votes ~= '' then sep = ',' end
  redis.call('HSET', KEYS[1], seg, votes .. sep .. group .. '=' .. sha)
  result = 'counted'
end
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ttl) end
return result
"#;

/// [`REPORT_LUA`], called by its SHA-1.
pub static REPORT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(REPORT_LUA));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_have_distinct_tags() {
        assert_eq!(group_tag(Group::Asn(64512)), "a64512");
        assert_ne!(group_tag(Group::Prefix(1)), group_tag(Group::Asn(1)));
        assert_eq!(outcome("accepted"), ReportOutcome::Accepted);
        assert_eq!(outcome("anything else"), ReportOutcome::Conflict);
    }
}
