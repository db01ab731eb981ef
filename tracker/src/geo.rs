//! Where a client is: its address, and what optional MaxMind-format GeoIP databases say about it
//! (ASN, country, city coordinates). Databases reload without a restart.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use maxminddb::Reader;
use serde::Deserialize;

use crate::metrics::Metrics;

pub use peer_matching::Locality;

#[derive(Deserialize)]
struct AsnRecord {
    autonomous_system_number: Option<u32>,
}

#[derive(Deserialize)]
struct LocationRecord<'a> {
    #[serde(borrow)]
    country: Option<CountryRecord<'a>>,
    location: Option<CoordinatesRecord>,
}

#[derive(Deserialize)]
struct CountryRecord<'a> {
    iso_code: Option<&'a str>,
}

#[derive(Deserialize)]
struct CoordinatesRecord {
    latitude: Option<f64>,
    longitude: Option<f64>,
}

/// One database file, swapped atomically when it is reloaded.
struct Database {
    path: PathBuf,
    reader: RwLock<Arc<Reader<Vec<u8>>>>,
    modified: Mutex<Option<SystemTime>>,
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl Database {
    fn open(path: &Path) -> anyhow::Result<Self> {
        let reader = open_reader(path)?;
        Ok(Self {
            path: path.to_owned(),
            reader: RwLock::new(Arc::new(reader)),
            modified: Mutex::new(modified(path)),
        })
    }

    fn current(&self) -> Arc<Reader<Vec<u8>>> {
        self.reader
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reopens the file; on error the previous contents stay in use.
    fn reload(&self) -> anyhow::Result<()> {
        let reader = open_reader(&self.path)?;
        *self.reader.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(reader);
        *self.modified.lock().unwrap_or_else(|e| e.into_inner()) = modified(&self.path);
        tracing::info!(path = %self.path.display(), "GeoIP database reloaded");
        Ok(())
    }

    fn changed(&self) -> bool {
        let now = modified(&self.path);
        now.is_some() && now != *self.modified.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Opens and verifies a database: `maxminddb` indexes the search tree without bounds checks, so
/// a corrupt file with intact metadata opens fine and then panics on lookups. The whole tree and
/// data section are checked before the file is used, and a panic while checking counts as
/// corrupt too.
fn open_reader(path: &Path) -> anyhow::Result<Reader<Vec<u8>>> {
    let corrupt = |e: &dyn std::fmt::Display| {
        anyhow::anyhow!("cannot open GeoIP database {}: {e}", path.display())
    };
    let reader = Reader::open_readfile(path).map_err(|e| corrupt(&e))?;
    let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reader.verify()));
    match checked {
        Ok(Ok(())) => Ok(reader),
        Ok(Err(error)) => Err(corrupt(&error)),
        Err(_) => Err(corrupt(&"the search tree points outside the file")),
    }
}

/// The optional GeoIP databases.
pub struct GeoIp {
    asn: Option<Database>,
    location: Option<Database>,
    metrics: Arc<Metrics>,
}

impl GeoIp {
    /// Opens the configured databases (either may be absent).
    pub fn open(
        asn: Option<&Path>,
        location: Option<&Path>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            asn: asn.map(Database::open).transpose()?,
            location: location.map(Database::open).transpose()?,
            metrics,
        })
    }

    /// Whether any database is configured.
    pub fn is_enabled(&self) -> bool {
        self.asn.is_some() || self.location.is_some()
    }

    /// Looks an address up in every configured database.
    pub fn locate(&self, ip: IpAddr) -> Locality {
        let mut locality = Locality::from_ip(ip);
        if let Some(db) = &self.asn {
            let record: Option<AsnRecord> = self.lookup(db, "asn", ip);
            locality.asn = record.and_then(|r| r.autonomous_system_number);
        }
        if let Some(db) = &self.location {
            let reader = db.current();
            if let Some(record) = self.decode::<LocationRecord>(&reader, "location", ip) {
                locality.country = record
                    .country
                    .and_then(|c| c.iso_code)
                    .and_then(|code| code.as_bytes().try_into().ok());
                locality.coordinates = record
                    .location
                    .and_then(|l| Some((l.latitude? as f32, l.longitude? as f32)));
            }
        }
        locality
    }

    fn lookup<T: for<'de> Deserialize<'de>>(
        &self,
        db: &Database,
        name: &str,
        ip: IpAddr,
    ) -> Option<T> {
        self.decode(&db.current(), name, ip)
    }

    fn decode<'r, T: Deserialize<'r>>(
        &self,
        reader: &'r Reader<Vec<u8>>,
        name: &str,
        ip: IpAddr,
    ) -> Option<T> {
        let result = reader.lookup(ip).and_then(|found| found.decode::<T>());
        let outcome = match &result {
            Ok(Some(_)) => "hit",
            Ok(None) => "miss",
            Err(_) => "error",
        };
        self.metrics
            .geoip_lookups
            .with_label_values(&[name, outcome])
            .inc();
        result.ok().flatten()
    }

    /// Reloads every database now (SIGHUP).
    pub fn reload(&self) {
        for db in self.databases() {
            if let Err(error) = db.reload() {
                tracing::warn!(%error, "GeoIP reload failed; keeping the previous database");
            }
        }
    }

    /// Reloads the databases whose file changed since they were loaded.
    pub fn reload_changed(&self) {
        for db in self.databases().filter(|db| db.changed()) {
            if let Err(error) = db.reload() {
                tracing::warn!(%error, "GeoIP reload failed; keeping the previous database");
            }
        }
    }

    fn databases(&self) -> impl Iterator<Item = &Database> {
        self.asn.iter().chain(self.location.iter())
    }
}
