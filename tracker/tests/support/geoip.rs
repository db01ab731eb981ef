//! Small MaxMind-format databases built by the tests: made-up ISPs and cities for loopback
//! networks (127.a.0.0/16), so clients bound to 127.a.b.c sources are located end to end.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use mmdb_writer::Writer;
use serde::Serialize;

#[derive(Serialize)]
struct Asn {
    autonomous_system_number: u32,
    autonomous_system_organization: String,
}

#[derive(Serialize)]
struct Country {
    iso_code: String,
}

#[derive(Serialize)]
struct Location {
    latitude: f64,
    longitude: f64,
}

#[derive(Serialize)]
struct City {
    city: BTreeMap<String, BTreeMap<String, String>>,
    country: Country,
    location: Location,
}

/// A made-up place: the /16 it covers, its ISP, country and coordinates.
pub struct Place {
    pub network: &'static str,
    pub asn: u32,
    pub country: &'static str,
    pub coordinates: (f64, f64),
}

/// ISP A in Paris.
pub const PARIS_ISP_A: Place = Place {
    network: "127.1.0.0/16",
    asn: 64501,
    country: "FR",
    coordinates: (48.85, 2.35),
};
/// ISP B in Paris.
pub const PARIS_ISP_B: Place = Place {
    network: "127.2.0.0/16",
    asn: 64502,
    country: "FR",
    coordinates: (48.86, 2.34),
};
/// ISP C in Lyon, 390 km from Paris.
pub const LYON_ISP_C: Place = Place {
    network: "127.3.0.0/16",
    asn: 64503,
    country: "FR",
    coordinates: (45.76, 4.84),
};
/// ISP D in Tokyo.
pub const TOKYO_ISP_D: Place = Place {
    network: "127.4.0.0/16",
    asn: 64504,
    country: "JP",
    coordinates: (35.68, 139.69),
};
/// Every place.
pub const ALL: [&Place; 4] = [&PARIS_ISP_A, &PARIS_ISP_B, &LYON_ISP_C, &TOKYO_ISP_D];

/// A fresh directory for one test's files.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tracker-geo-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes a GeoLite2-ASN-layout database of `places`.
pub fn write_asn_db(path: &Path, places: &[&Place]) {
    let mut writer = Writer::builder("GeoLite2-ASN")
        .description(&[("en", "test ASN database")])
        .build();
    for place in places {
        let record = Asn {
            autonomous_system_number: place.asn,
            autonomous_system_organization: format!("Test ISP {}", place.asn),
        };
        writer
            .insert(place.network.parse::<IpNet>().unwrap(), &record)
            .unwrap();
    }
    std::fs::write(path, writer.to_bytes().unwrap()).unwrap();
}

/// Writes a GeoLite2-City-layout database of `places`.
pub fn write_city_db(path: &Path, places: &[&Place]) {
    let mut writer = Writer::builder("GeoLite2-City")
        .description(&[("en", "test City database")])
        .build();
    for place in places {
        let names = BTreeMap::from([("en".to_string(), format!("City of {}", place.asn))]);
        let record = City {
            city: BTreeMap::from([("names".to_string(), names)]),
            country: Country {
                iso_code: place.country.into(),
            },
            location: Location {
                latitude: place.coordinates.0,
                longitude: place.coordinates.1,
            },
        };
        writer
            .insert(place.network.parse::<IpNet>().unwrap(), &record)
            .unwrap();
    }
    std::fs::write(path, writer.to_bytes().unwrap()).unwrap();
}

/// Source address number `host` inside `place`'s network.
pub fn source(place: &Place, host: u8) -> IpAddr {
    let network: IpNet = place.network.parse().unwrap();
    let IpAddr::V4(base) = network.network() else {
        unreachable!()
    };
    let octets = base.octets();
    IpAddr::from([octets[0], octets[1], 0, host])
}
