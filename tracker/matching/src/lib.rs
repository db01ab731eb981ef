//! Closeness between two peers, in tiers: same ISP (ASN), near by distance, same country, shared
//! IP prefix, anyone. Ranking never partitions a swarm: the farthest tier is still a match.

use std::net::IpAddr;

/// What the tracker knows of a client's place in the network.
#[derive(Debug, Clone, PartialEq)]
pub struct Locality {
    /// The client's address (after trusted-proxy resolution).
    pub ip: IpAddr,
    /// Autonomous system number (the ISP), from the ASN database.
    pub asn: Option<u32>,
    /// ISO 3166 country code, from the City or Country database.
    pub country: Option<[u8; 2]>,
    /// Latitude and longitude in degrees, from the City database.
    pub coordinates: Option<(f32, f32)>,
}

impl Locality {
    /// A locality known only by its address.
    pub fn from_ip(ip: IpAddr) -> Self {
        Self {
            ip,
            asn: None,
            country: None,
            coordinates: None,
        }
    }
}

/// How close the receiver of an offer is to its sender; the label of the offer metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    /// Same autonomous system (ISP).
    Asn,
    /// Both located, within the configured distance.
    Distance,
    /// Same country.
    Country,
    /// Same IPv4 /24 or IPv6 /48.
    NarrowPrefix,
    /// Same IPv4 /16 or IPv6 /32.
    WidePrefix,
    /// No closeness known.
    Any,
}

impl Tier {
    /// Every tier, closest first.
    pub const ALL: [Tier; 6] = [
        Tier::Asn,
        Tier::Distance,
        Tier::Country,
        Tier::NarrowPrefix,
        Tier::WidePrefix,
        Tier::Any,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Tier::Asn => "asn",
            Tier::Distance => "distance",
            Tier::Country => "country",
            Tier::NarrowPrefix => "prefix_narrow",
            Tier::WidePrefix => "prefix_wide",
            Tier::Any => "any",
        }
    }
}

/// A network group that counts as "independent" of others: the ASN when known, else the
/// IPv4 /16 or IPv6 /32. Used to bucket candidates and to count independent hash reporters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Group {
    /// An autonomous system.
    Asn(u32),
    /// A wide address prefix.
    Prefix(u128),
}

impl Group {
    /// The group a locality belongs to.
    pub fn of(locality: &Locality) -> Self {
        match locality.asn {
            Some(asn) => Group::Asn(asn),
            None => Group::Prefix(prefix(locality.ip, false)),
        }
    }
}

/// The address masked to the narrow (/24, /48) or wide (/16, /32) prefix, tagged by family.
fn prefix(ip: IpAddr, narrow: bool) -> u128 {
    match ip {
        IpAddr::V4(v4) => {
            let bits = if narrow { 24 } else { 16 };
            let masked = u32::from(v4) & (u32::MAX << (32 - bits));
            (1u128 << 64) | u128::from(masked)
        }
        IpAddr::V6(v6) => {
            let bits = if narrow { 48 } else { 32 };
            u128::from(v6) & (u128::MAX << (128 - bits))
        }
    }
}

/// Great-circle distance in kilometres.
pub fn distance_km(a: (f32, f32), b: (f32, f32)) -> f32 {
    let (lat1, lon1) = (f64::from(a.0).to_radians(), f64::from(a.1).to_radians());
    let (lat2, lon2) = (f64::from(b.0).to_radians(), f64::from(b.1).to_radians());
    let h = ((lat2 - lat1) / 2.0).sin().powi(2)
        + lat1.cos() * lat2.cos() * ((lon2 - lon1) / 2.0).sin().powi(2);
    (2.0 * 6371.0 * h.sqrt().asin()) as f32
}

/// The tier of `b` seen from `a`, and their distance when both are located.
pub fn closeness(a: &Locality, b: &Locality, nearby_km: f32) -> (Tier, Option<f32>) {
    let distance = match (a.coordinates, b.coordinates) {
        (Some(x), Some(y)) => Some(distance_km(x, y)),
        _ => None,
    };
    let tier = if a.asn.is_some() && a.asn == b.asn {
        Tier::Asn
    } else if distance.is_some_and(|d| d <= nearby_km) {
        Tier::Distance
    } else if a.country.is_some() && a.country == b.country {
        Tier::Country
    } else if prefix(a.ip, true) == prefix(b.ip, true) {
        Tier::NarrowPrefix
    } else if prefix(a.ip, false) == prefix(b.ip, false) {
        Tier::WidePrefix
    } else {
        Tier::Any
    };
    (tier, distance)
}

/// What ranking knows of a candidate besides its locality.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Offers relayed to it since its last announce (a proxy for its connections).
    pub recent_offers: u32,
    /// Announced upload capacity in bytes per second (0 = unknown).
    pub capacity: u64,
    /// Playback position in seconds, if announced (VOD).
    pub position: Option<f64>,
}

/// A sort key: smaller is better. Ties are broken by the caller's random component.
pub type RankKey = (Tier, u32, u8, u32, u32);

/// Ranks a candidate for receiving an offer from `from`.
pub fn rank(
    from: &Locality,
    from_position: Option<f64>,
    candidate: &Locality,
    load: Load,
    nearby_km: f32,
    random: u32,
) -> RankKey {
    let (tier, distance) = closeness(from, candidate, nearby_km);
    // Distance matters in 50 km steps; beyond that, peers count as equally near.
    let distance_step = distance.map_or(u32::MAX, |d| (d / 50.0) as u32);
    let position_gap = match (from_position, load.position) {
        (Some(a), Some(b)) if (a - b).abs() <= 60.0 => 0,
        (Some(_), Some(_)) => 2,
        _ => 1,
    };
    // Spare capacity: announced capacity (1 MB/s when unknown) shared by the peers it already
    // serves; compared on a log scale so that near-equal peers stay equal and get randomised.
    let capacity = if load.capacity == 0 {
        1_000_000
    } else {
        load.capacity
    };
    let spare = capacity / (1 + u64::from(load.recent_offers));
    let busy = 64 - spare.leading_zeros();
    (tier, distance_step, position_gap, u32::MAX - busy, random)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ip: &str) -> Locality {
        Locality::from_ip(ip.parse().unwrap())
    }

    #[test]
    fn tiers_follow_asn_then_distance_then_country_then_prefix() {
        let mut a = at("10.1.2.3");
        a.asn = Some(1);
        a.country = Some(*b"FR");
        a.coordinates = Some((48.85, 2.35)); // Paris
        let mut same_asn = at("11.0.0.1");
        same_asn.asn = Some(1);
        let mut near = at("12.0.0.1");
        near.coordinates = Some((50.85, 4.35)); // Brussels, ~260 km
        let mut same_country = at("13.0.0.1");
        same_country.country = Some(*b"FR");
        same_country.coordinates = Some((-21.1, 55.5)); // Réunion
        assert_eq!(closeness(&a, &same_asn, 500.0).0, Tier::Asn);
        assert_eq!(closeness(&a, &near, 500.0).0, Tier::Distance);
        assert_eq!(closeness(&a, &same_country, 500.0).0, Tier::Country);
        assert_eq!(
            closeness(&a, &at("10.1.2.200"), 500.0).0,
            Tier::NarrowPrefix
        );
        assert_eq!(closeness(&a, &at("10.1.99.1"), 500.0).0, Tier::WidePrefix);
        assert_eq!(closeness(&a, &at("99.1.2.3"), 500.0).0, Tier::Any);
    }

    #[test]
    fn ipv6_prefixes_are_48_and_32_bits() {
        let a = at("2001:db8:1:1::1");
        assert_eq!(
            closeness(&a, &at("2001:db8:1:2::9"), 0.0).0,
            Tier::NarrowPrefix
        );
        assert_eq!(closeness(&a, &at("2001:db8:2::9"), 0.0).0, Tier::WidePrefix);
        assert_eq!(closeness(&a, &at("2001:db9::1"), 0.0).0, Tier::Any);
    }

    #[test]
    fn spare_capacity_wins_among_equals() {
        let a = at("10.0.0.1");
        let b = at("20.0.0.1");
        let idle = Load {
            recent_offers: 0,
            capacity: 0,
            position: None,
        };
        let busy = Load {
            recent_offers: 30,
            capacity: 0,
            position: None,
        };
        assert!(rank(&a, None, &b, idle, 0.0, 9) < rank(&a, None, &b, busy, 0.0, 0));
    }

    #[test]
    fn distance_is_roughly_right() {
        let paris_london = distance_km((48.85, 2.35), (51.5, -0.12));
        assert!((330.0..360.0).contains(&paris_london), "{paris_london}");
    }
}
