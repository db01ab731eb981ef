//! Swarm membership in Redis: one entry per peer with everything matching needs, an expiry that
//! announces refresh, and the Lua scripts that write and read a swarm in one round trip.
//!
//! Keys of one swarm share the hash tag `{<info_hash hex>}`, so they sit in one Redis Cluster
//! slot and one script may touch them all:
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `p2pvd:{H}:peers` | hash | peer id (20 raw bytes) → `<replica>.<connection> <entry JSON>` |
//! | `p2pvd:{H}:expiry` | sorted set | peer id scored by the Unix time (ms) its entry expires |
//! | `p2pvd:{H}:seeds` | set | peer ids of seeders |

use std::net::IpAddr;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use crate::geo::Locality;
use crate::id::Id20;
use crate::protocol::PeerExtension;

use super::ReplicaId;

/// The key of one of a swarm's structures.
pub fn swarm_key(info_hash: &Id20, suffix: &str) -> String {
    format!("p2pvd:{{{}}}:{suffix}", info_hash.to_hex())
}

/// Identifies the connection that owns an entry: `<replica>.<connection> `, the prefix of the
/// stored value (the space ends it, so one replica's prefix never matches another's).
pub fn owner_tag(replica: ReplicaId, connection: u64) -> String {
    format!("{replica}.{connection} ")
}

/// The prefix shared by every entry of one replica.
pub fn replica_tag(replica: ReplicaId) -> String {
    format!("{replica}.")
}

/// A peer as stored in Redis: its matching inputs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// Client address.
    pub ip: IpAddr,
    /// ASN, if located.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
    /// ISO country code, if located.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cc: Option<[u8; 2]>,
    /// Latitude and longitude, if located.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geo: Option<(f32, f32)>,
    /// Whether it uploads (not download-only).
    pub up: bool,
    /// Declared upload capacity, bytes per second.
    pub cap: u64,
    /// Playback position, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pos: Option<f64>,
    /// Whether it is a seeder.
    pub seed: bool,
}

impl Entry {
    /// The entry of a peer at `locality` with extension fields `ext`.
    pub fn new(locality: &Locality, ext: &PeerExtension, seeder: bool) -> Self {
        Self {
            ip: locality.ip,
            asn: locality.asn,
            cc: locality.country,
            geo: locality.coordinates,
            up: ext.upload,
            cap: ext.capacity,
            pos: ext.position,
            seed: seeder,
        }
    }

    /// Where the peer is.
    pub fn locality(&self) -> Locality {
        Locality {
            ip: self.ip,
            asn: self.asn,
            country: self.cc,
            coordinates: self.geo,
        }
    }

    /// Its extension fields.
    pub fn ext(&self) -> PeerExtension {
        PeerExtension {
            upload: self.up,
            capacity: self.cap,
            position: self.pos,
        }
    }
}

/// A peer of the swarm held by some replica, as read from Redis.
#[derive(Debug, Clone)]
pub struct RemotePeer {
    /// Its peer id.
    pub peer_id: Id20,
    /// The replica that holds its connection.
    pub replica: ReplicaId,
    /// That replica's connection id.
    pub connection: u64,
    /// Its matching inputs.
    pub entry: Entry,
}

impl RemotePeer {
    /// Decodes a stored `<replica>.<connection> <json>` value; `None` for anything else.
    pub fn decode(peer_id: &[u8], value: &[u8]) -> Option<Self> {
        let peer_id = Id20(peer_id.try_into().ok()?);
        let text = std::str::from_utf8(value).ok()?;
        let (owner, json) = text.split_once(' ')?;
        let (replica, connection) = owner.split_once('.')?;
        Some(Self {
            peer_id,
            replica: replica.parse().ok()?,
            connection: connection.parse().ok()?,
            entry: serde_json::from_str(json).ok()?,
        })
    }
}

/// Prunes expired entries (a bounded number per call), refuses a peer id that another
/// connection holds unless forced, writes the peer's entry, refreshes the swarm's expiry, and
/// returns the swarm's size and seeders with up to `ARGV[6]` entries (all of them in a small
/// swarm, a random sample in a large one).
///
/// KEYS: peers, expiry, seeds. ARGV: now (ms), expires (ms), peer id, stored value, seeder
/// (`1`/`0`), candidates, key lifetime (ms), owner tag, force (`1`/`0`).
/// Returns `{"taken", owner value}` or `{"ok", pruned, peers, seeders, id, value, id, value…}`.
pub const ANNOUNCE_LUA: &str = r#"
local pruned = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, 64)
for _, id in ipairs(pruned) do
  redis.call('HDEL', KEYS[1], id)
  redis.call('SREM', KEYS[3], id)
  redis.call('ZREM', KEYS[2], id)
end
local old = redis.call('HGET', KEYS[1], ARGV[3])
if old and ARGV[9] == '0' and string.sub(old, 1, #ARGV[8]) ~= ARGV[8] then
  return {'taken', old}
end
redis.call('HSET', KEYS[1], ARGV[3], ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
if ARGV[5] == '1' then redis.call('SADD', KEYS[3], ARGV[3]) else redis.call('SREM', KEYS[3], ARGV[3]) end
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[7]) end
local peers = redis.call('HLEN', KEYS[1])
local seeds = redis.call('SCARD', KEYS[3])
local sample
if peers <= tonumber(ARGV[6]) then
  sample = redis.call('HGETALL', KEYS[1])
else
  sample = redis.call('HRANDFIELD', KEYS[1], ARGV[6], 'WITHVALUES')
end
local reply = {'ok', #pruned, peers, seeds}
for _, v in ipairs(sample) do reply[#reply + 1] = v end
return reply
"#;

/// [`ANNOUNCE_LUA`], called by its SHA-1.
pub static ANNOUNCE: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(ANNOUNCE_LUA));

/// Removes a peer if its stored value starts with `ARGV[2]` (an owner tag, or a replica's
/// prefix), and returns the swarm's size and seeders.
///
/// KEYS: peers, expiry, seeds. ARGV: peer id, owner prefix. Returns `{removed, peers, seeders}`.
pub const LEAVE_LUA: &str = r#"
local old = redis.call('HGET', KEYS[1], ARGV[1])
local removed = 0
if old and string.sub(old, 1, #ARGV[2]) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('SREM', KEYS[3], ARGV[1])
  removed = 1
end
return {removed, redis.call('HLEN', KEYS[1]), redis.call('SCARD', KEYS[3])}
"#;

/// [`LEAVE_LUA`], called by its SHA-1.
pub static LEAVE: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(LEAVE_LUA));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_value_decodes_to_the_same_peer() {
        let mut locality = Locality::from_ip("10.1.2.3".parse().unwrap());
        locality.asn = Some(64512);
        locality.country = Some(*b"FR");
        locality.coordinates = Some((48.85, 2.35));
        let ext = PeerExtension {
            upload: false,
            capacity: 1_000_000,
            position: Some(12.5),
        };
        let entry = Entry::new(&locality, &ext, true);
        let value = format!(
            "{}{}",
            owner_tag(7, 42),
            serde_json::to_string(&entry).unwrap()
        );
        let peer = RemotePeer::decode(&[3; 20], value.as_bytes()).unwrap();
        assert_eq!(
            (peer.peer_id, peer.replica, peer.connection),
            (Id20([3; 20]), 7, 42)
        );
        assert_eq!(peer.entry.locality(), locality);
        assert_eq!(peer.entry.ext(), ext);
        assert!(peer.entry.seed);
        assert!(RemotePeer::decode(&[3; 19], value.as_bytes()).is_none());
        assert!(RemotePeer::decode(&[3; 20], b"7.42 {not json").is_none());
    }

    #[test]
    fn keys_of_one_swarm_share_a_hash_tag() {
        let info_hash = Id20([0xab; 20]);
        let tag = format!("{{{}}}", "ab".repeat(20));
        for suffix in ["peers", "expiry", "seeds", "votes"] {
            assert!(swarm_key(&info_hash, suffix).contains(&tag));
        }
        assert!(!owner_tag(1, 23).starts_with(&owner_tag(1, 2)));
    }
}
