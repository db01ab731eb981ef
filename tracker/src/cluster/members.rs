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
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Where it is.
    pub locality: Locality,
    /// Its extension fields.
    pub ext: PeerExtension,
    /// Whether it is a seeder.
    pub seed: bool,
}

/// Flags of the stored form.
const UPLOAD: u8 = 1;
const SEED: u8 = 2;
const POSITION: u8 = 4;
const ASN: u8 = 8;
const COUNTRY: u8 = 16;
const COORDINATES: u8 = 32;
const IPV6: u8 = 64;

/// Bytes of the stored form before the address.
const FIXED: usize = 1 + 8 + 8 + 4 + 2 + 4 + 4;

impl Entry {
    /// The entry of a peer at `locality` with extension fields `ext`.
    pub fn new(locality: &Locality, ext: &PeerExtension, seed: bool) -> Self {
        Self {
            locality: locality.clone(),
            ext: *ext,
            seed,
        }
    }

    /// Appends the stored form: fixed-width little-endian fields and the address, so that
    /// reading a swarm's entries costs no parsing (hundreds are read per announce).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let l = &self.locality;
        let set = |present: bool, flag: u8| if present { flag } else { 0 };
        let flags = set(self.ext.upload, UPLOAD)
            | set(self.seed, SEED)
            | set(self.ext.position.is_some(), POSITION)
            | set(l.asn.is_some(), ASN)
            | set(l.country.is_some(), COUNTRY)
            | set(l.coordinates.is_some(), COORDINATES)
            | set(l.ip.is_ipv6(), IPV6);
        let (lat, lon) = l.coordinates.unwrap_or_default();
        out.push(flags);
        out.extend_from_slice(&self.ext.capacity.to_le_bytes());
        out.extend_from_slice(&self.ext.position.unwrap_or_default().to_le_bytes());
        out.extend_from_slice(&l.asn.unwrap_or_default().to_le_bytes());
        out.extend_from_slice(&l.country.unwrap_or_default());
        out.extend_from_slice(&lat.to_le_bytes());
        out.extend_from_slice(&lon.to_le_bytes());
        match l.ip {
            IpAddr::V4(v4) => out.extend_from_slice(&v4.octets()),
            IpAddr::V6(v6) => out.extend_from_slice(&v6.octets()),
        }
    }

    /// Reads the stored form; `None` for anything else.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let (fixed, address) = bytes.split_at_checked(FIXED)?;
        let flags = fixed[0];
        let has = |flag: u8| flags & flag != 0;
        let field = |at: usize, len: usize| &fixed[at..at + len];
        let u64_at = |at| u64::from_le_bytes(field(at, 8).try_into().unwrap_or_default());
        let f32_at = |at| f32::from_le_bytes(field(at, 4).try_into().unwrap_or_default());
        let ip = match (has(IPV6), address.len()) {
            (false, 4) => IpAddr::from(<[u8; 4]>::try_from(address).ok()?),
            (true, 16) => IpAddr::from(<[u8; 16]>::try_from(address).ok()?),
            _ => return None,
        };
        let asn = u32::from_le_bytes(field(17, 4).try_into().ok()?);
        let country: [u8; 2] = field(21, 2).try_into().ok()?;
        Some(Self {
            locality: Locality {
                ip,
                asn: has(ASN).then_some(asn),
                country: has(COUNTRY).then_some(country),
                coordinates: has(COORDINATES).then(|| (f32_at(23), f32_at(27))),
            },
            ext: PeerExtension {
                upload: has(UPLOAD),
                capacity: u64_at(1),
                position: has(POSITION).then(|| f64::from_bits(u64_at(9))),
            },
            seed: has(SEED),
        })
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
    /// Decodes a stored `<replica>.<connection> <entry>` value; `None` for anything else.
    pub fn decode(peer_id: &[u8], value: &[u8]) -> Option<Self> {
        let peer_id = Id20(peer_id.try_into().ok()?);
        let space = value.iter().position(|&b| b == b' ')?;
        let owner = std::str::from_utf8(&value[..space]).ok()?;
        let (replica, connection) = owner.split_once('.')?;
        Some(Self {
            peer_id,
            replica: replica.parse().ok()?,
            connection: connection.parse().ok()?,
            entry: Entry::decode(&value[space + 1..])?,
        })
    }
}

/// The stored value of a peer's entry: its owner tag, then the entry.
pub fn stored_value(replica: ReplicaId, connection: u64, entry: &Entry) -> Vec<u8> {
    let mut value = owner_tag(replica, connection).into_bytes();
    entry.encode(&mut value);
    value
}

/// Prunes expired entries (a bounded number per call), refuses a peer id that another replica
/// holds unless forced, writes the peer's entry, refreshes the swarm's expiry, and returns the
/// swarm's size and seeders. (The candidates are read by a plain `HRANDFIELD` pipelined after
/// it: returned through Lua, each entry would be converted twice.)
///
/// KEYS: peers, expiry, seeds. ARGV: now (ms), expires (ms), peer id, stored value, seeder
/// (`1`/`0`), key lifetime (ms), this replica's tag, force (`1`/`0`).
/// Returns `{"taken", holder's value}` or `{"ok", pruned, peers, seeders}`.
pub const ANNOUNCE_LUA: &str = r#"
local pruned = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, 64)
for _, id in ipairs(pruned) do
  redis.call('HDEL', KEYS[1], id)
  redis.call('SREM', KEYS[3], id)
  redis.call('ZREM', KEYS[2], id)
end
local old = redis.call('HGET', KEYS[1], ARGV[3])
if old and ARGV[8] == '0' and string.sub(old, 1, #ARGV[7]) ~= ARGV[7] then
  return {'taken', old}
end
redis.call('HSET', KEYS[1], ARGV[3], ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
if ARGV[5] == '1' then redis.call('SADD', KEYS[3], ARGV[3]) else redis.call('SREM', KEYS[3], ARGV[3]) end
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[6]) end
return {'ok', #pruned, redis.call('HLEN', KEYS[1]), redis.call('SCARD', KEYS[3])}
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
        let mut located = Locality::from_ip("10.1.2.3".parse().unwrap());
        located.asn = Some(64512);
        located.country = Some(*b"FR");
        located.coordinates = Some((48.85, 2.35));
        let ext = PeerExtension {
            upload: false,
            capacity: 1_000_000,
            position: Some(12.5),
        };
        let bare = Locality::from_ip("2001:db8::1".parse().unwrap());
        for (locality, seed) in [(located, true), (bare, false)] {
            let entry = Entry::new(&locality, &ext, seed);
            let value = stored_value(7, 42, &entry);
            let peer = RemotePeer::decode(&[3; 20], &value).unwrap();
            assert_eq!(
                (peer.peer_id, peer.replica, peer.connection),
                (Id20([3; 20]), 7, 42)
            );
            assert_eq!(peer.entry, entry);
            assert!(RemotePeer::decode(&[3; 19], &value).is_none());
            assert!(RemotePeer::decode(&[3; 20], &value[..value.len() - 1]).is_none());
        }
        assert!(RemotePeer::decode(&[3; 20], b"7.42 short").is_none());
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
