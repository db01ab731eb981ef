//! Tenants: the customers allowed to use the tracker, each with its page origins, the secret
//! its tokens are signed with, and its quotas. They come from a TOML file (`--tenants`) that
//! is reloaded when it changes and on SIGHUP; without one the tracker is open to every page.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use hmac::Mac;
use serde::Deserialize;

use crate::id::Id20;
use crate::limits::RateLimiter;
use crate::token::{self, TokenError};

/// One tenant as written in the tenants file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TenantSpec {
    /// The id tokens name (letters, digits, `-`, `_`).
    pub id: String,
    /// Page origins allowed to connect (`https://player.example.com`); `*` allows any page.
    pub origins: Vec<String>,
    /// The key tokens are signed with.
    pub secret: String,
    /// Most open connections of the tenant on this replica.
    pub max_connections: Option<u32>,
    /// Most swarms the tenant's connections may be in at once.
    pub max_swarms: Option<u32>,
    /// Announces per second over all the tenant's connections (bursts of ten seconds' worth).
    pub max_announces_per_second: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantsFile {
    #[serde(default)]
    tenant: Vec<TenantSpec>,
}

/// A tenant and what it uses right now. The usage outlives reloads of the file.
pub struct Tenant {
    spec: TenantSpec,
    usage: Arc<Usage>,
    /// XORed into every info hash of the tenant's clients, so that the swarms of different
    /// tenants never share a key; derived from the secret so no other tenant can aim at it.
    swarm_mask: Id20,
}

/// What one tenant uses.
#[derive(Default)]
pub struct Usage {
    connections: AtomicU32,
    swarms: Mutex<HashMap<Id20, u32>>,
    announces: Mutex<Option<RateLimiter>>,
}

/// Why an upgrade is refused by tenant checks: each maps to an HTTP status and a reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantRefusal {
    /// No `token` query parameter.
    MissingToken,
    /// A token that does not parse or whose signature does not match.
    InvalidToken,
    /// A token past its expiry.
    ExpiredToken,
    /// A token naming a tenant the file does not list.
    UnknownTenant,
    /// An `Origin` header missing or not on the tenant's list.
    OriginNotAllowed,
    /// The tenant's connection quota is used up.
    ConnectionQuota,
}

impl TenantRefusal {
    /// The `reason` label of the refusal metrics.
    pub fn label(self) -> &'static str {
        match self {
            Self::MissingToken => "missing_token",
            Self::InvalidToken => "invalid_token",
            Self::ExpiredToken => "expired_token",
            Self::UnknownTenant => "unknown_tenant",
            Self::OriginNotAllowed => "origin_not_allowed",
            Self::ConnectionQuota => "tenant_connections",
        }
    }

    /// The HTTP status line and body of the refusal (documented in PROTOCOL.md).
    pub fn response(self) -> (&'static str, &'static str) {
        match self {
            Self::MissingToken => ("401 Unauthorized", "missing token"),
            Self::InvalidToken => ("401 Unauthorized", "invalid token"),
            Self::ExpiredToken => ("401 Unauthorized", "token expired"),
            Self::UnknownTenant => ("403 Forbidden", "unknown tenant"),
            Self::OriginNotAllowed => ("403 Forbidden", "origin not allowed"),
            Self::ConnectionQuota => ("429 Too Many Requests", "tenant connection quota reached"),
        }
    }
}

/// A connection admitted for a tenant; its connection is counted until this is dropped.
pub struct TenantPass {
    tenant: Arc<Tenant>,
    /// The only swarm the token allows, if scoped.
    pub swarm: Option<Id20>,
}

impl Drop for TenantPass {
    fn drop(&mut self) {
        self.tenant
            .usage
            .connections
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl TenantPass {
    /// The tenant's id.
    pub fn id(&self) -> &str {
        &self.tenant.spec.id
    }

    /// The key under which the tracker keeps the swarm the client calls `info_hash` (and back:
    /// the mapping is its own inverse).
    pub fn swarm_key(&self, info_hash: Id20) -> Id20 {
        let mut key = info_hash;
        for (byte, mask) in key.0.iter_mut().zip(self.tenant.swarm_mask.0) {
            *byte ^= mask;
        }
        key
    }

    /// Takes one announce from the tenant's rate; `false` when it is used up.
    pub fn allow_announce(&self, now: Instant) -> bool {
        let Some(rate) = self.tenant.spec.max_announces_per_second else {
            return true;
        };
        let mut bucket = lock(&self.tenant.usage.announces);
        bucket
            .get_or_insert_with(|| RateLimiter::new(rate, rate.saturating_mul(10)))
            .allow(now)
    }

    /// Whether the tenant may be in swarm `key`: it is already, or it is in fewer swarms than
    /// its quota.
    pub fn may_enter_swarm(&self, key: Id20) -> bool {
        let swarms = lock(&self.tenant.usage.swarms);
        let max = self
            .tenant
            .spec
            .max_swarms
            .map_or(usize::MAX, |m| m as usize);
        swarms.contains_key(&key) || swarms.len() < max
    }

    /// Counts one more of the tenant's memberships of swarm `key`.
    pub fn enter_swarm(&self, key: Id20) {
        *lock(&self.tenant.usage.swarms).entry(key).or_default() += 1;
    }

    /// Counts one membership of swarm `key` less.
    pub fn leave_swarm(&self, key: Id20) {
        let mut swarms = lock(&self.tenant.usage.swarms);
        if let Some(count) = swarms.get_mut(&key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                swarms.remove(&key);
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The loaded tenants file, reloaded when it changes.
pub struct Tenants {
    path: Option<PathBuf>,
    loaded: RwLock<Loaded>,
}

#[derive(Default)]
struct Loaded {
    by_id: HashMap<String, Arc<Tenant>>,
    modified: Option<SystemTime>,
}

impl Tenants {
    /// Loads `path`; `None` leaves the tracker open to every page.
    pub fn open(path: Option<&Path>) -> anyhow::Result<Self> {
        let tenants = Self {
            path: path.map(Path::to_path_buf),
            loaded: RwLock::default(),
        };
        if let Some(path) = path {
            let loaded = read(path, &HashMap::new())?;
            *tenants.loaded.write().unwrap_or_else(|e| e.into_inner()) = loaded;
        }
        Ok(tenants)
    }

    /// Whether connections must present a tenant token.
    pub fn is_enabled(&self) -> bool {
        self.path.is_some()
    }

    /// The ids of the loaded tenants.
    pub fn ids(&self) -> Vec<String> {
        let loaded = self.loaded.read().unwrap_or_else(|e| e.into_inner());
        let mut ids: Vec<String> = loaded.by_id.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Rereads the file now (SIGHUP); a file that does not load leaves the tenants as they were.
    pub fn reload(&self) {
        self.reload_if(|_| true);
    }

    /// Rereads the file if its modification time changed.
    pub fn reload_changed(&self) {
        self.reload_if(|loaded| loaded.modified != self.path.as_deref().and_then(modified));
    }

    fn reload_if(&self, due: impl FnOnce(&Loaded) -> bool) {
        let Some(path) = &self.path else { return };
        let current = {
            let loaded = self.loaded.read().unwrap_or_else(|e| e.into_inner());
            if !due(&loaded) {
                return;
            }
            loaded.by_id.clone()
        };
        match read(path, &current) {
            Ok(fresh) => {
                tracing::info!(path = %path.display(), tenants = fresh.by_id.len(), "tenants loaded");
                *self.loaded.write().unwrap_or_else(|e| e.into_inner()) = fresh;
            }
            Err(error) => {
                tracing::error!(%error, "tenants file not reloaded; keeping the tenants loaded before");
            }
        }
    }

    /// Admits an upgrade carrying `token` (from the URL) and `origin` (the header).
    pub fn admit(
        &self,
        token: Option<&str>,
        origin: Option<&str>,
    ) -> Result<TenantPass, (Option<String>, TenantRefusal)> {
        let token = token.ok_or((None, TenantRefusal::MissingToken))?;
        let claims = token::parse(token).map_err(|_| (None, TenantRefusal::InvalidToken))?;
        let tenant = {
            let loaded = self.loaded.read().unwrap_or_else(|e| e.into_inner());
            loaded.by_id.get(claims.tenant).cloned()
        };
        let tenant = tenant.ok_or((None, TenantRefusal::UnknownTenant))?;
        let refuse = |refusal| (Some(tenant.spec.id.clone()), refusal);
        claims
            .verify(tenant.spec.secret.as_bytes(), unix_now())
            .map_err(|error| match error {
                TokenError::Expired => refuse(TenantRefusal::ExpiredToken),
                TokenError::Malformed | TokenError::Forged => refuse(TenantRefusal::InvalidToken),
            })?;
        if !origin.is_some_and(|origin| tenant.allows_origin(origin)) {
            return Err(refuse(TenantRefusal::OriginNotAllowed));
        }
        let max = tenant.spec.max_connections.unwrap_or(u32::MAX);
        let counted =
            tenant
                .usage
                .connections
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    (n < max).then_some(n + 1)
                });
        if counted.is_err() {
            return Err(refuse(TenantRefusal::ConnectionQuota));
        }
        Ok(TenantPass {
            swarm: claims.swarm,
            tenant,
        })
    }

    /// The secret of tenant `id`, for minting tokens.
    pub fn secret(&self, id: &str) -> Option<String> {
        let loaded = self.loaded.read().unwrap_or_else(|e| e.into_inner());
        loaded
            .by_id
            .get(id)
            .map(|tenant| tenant.spec.secret.clone())
    }
}

impl Tenant {
    fn allows_origin(&self, origin: &str) -> bool {
        self.spec
            .origins
            .iter()
            .any(|allowed| allowed == "*" || allowed.eq_ignore_ascii_case(origin))
    }
}

/// The current time in Unix seconds.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Reads and checks the file; tenants already loaded keep their usage.
fn read(path: &Path, current: &HashMap<String, Arc<Tenant>>) -> anyhow::Result<Loaded> {
    let modified = modified(path);
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read tenants file {}", path.display()))?;
    let file: TenantsFile = toml::from_str(&text)
        .with_context(|| format!("invalid tenants file {}", path.display()))?;
    let mut by_id = HashMap::new();
    for spec in file.tenant {
        anyhow::ensure!(
            token::is_valid_tenant_id(&spec.id),
            "{}: tenant id {:?} must be 1 to 64 letters, digits, '-' or '_'",
            path.display(),
            spec.id
        );
        anyhow::ensure!(
            spec.secret.len() >= 16,
            "{}: the secret of tenant {:?} must be at least 16 bytes",
            path.display(),
            spec.id
        );
        let usage = current
            .get(&spec.id)
            .map_or_else(Default::default, |tenant| Arc::clone(&tenant.usage));
        let swarm_mask = swarm_mask(&spec.secret);
        let id = spec.id.clone();
        let tenant = Arc::new(Tenant {
            spec,
            usage,
            swarm_mask,
        });
        anyhow::ensure!(
            by_id.insert(id.clone(), tenant).is_none(),
            "{}: tenant {id:?} listed twice",
            path.display()
        );
    }
    Ok(Loaded { by_id, modified })
}

fn swarm_mask(secret: &str) -> Id20 {
    let mut mac = token::keyed(secret.as_bytes());
    mac.update(b"swarm key");
    let digest = mac.finalize().into_bytes();
    let mut mask = [0u8; 20];
    mask.copy_from_slice(&digest[..20]);
    Id20(mask)
}
