//! Tenants: tokens and origins checked at the upgrade, swarms kept apart by tenant, quotas, the
//! tenants file reloaded, and tokens minted by `tracker token`.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use support::{Client, id, metric, start};
use tokio_tungstenite::tungstenite;
use tracker::Id20;
use tracker::tenants::unix_now;
use tracker::token::mint;

const ACME_SECRET: &str = "acme-secret-0123456789";
const GLOBEX_SECRET: &str = "globex-secret-0123456789";
const ACME_PAGE: &str = "https://player.acme.example";
const GLOBEX_PAGE: &str = "https://video.globex.example";

fn tenants_toml(acme_quotas: &str) -> String {
    format!(
        "[[tenant]]\nid = \"acme\"\norigins = [\"{ACME_PAGE}\"]\nsecret = \"{ACME_SECRET}\"\n{acme_quotas}\n\
         [[tenant]]\nid = \"globex\"\norigins = [\"{GLOBEX_PAGE}\"]\nsecret = \"{GLOBEX_SECRET}\"\n"
    )
}

fn write_tenants(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tracker-tenants-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tenants.toml");
    std::fs::write(&path, text).unwrap();
    path
}

async fn start_with_tenants(path: &Path) -> tracker::Tracker {
    let path = path.to_path_buf();
    start(|config| {
        config.tenants = Some(path);
        config.geoip_reload_interval = 1;
    })
    .await
}

fn localhost() -> IpAddr {
    "127.0.0.1".parse().unwrap()
}

fn token(tenant: &str, secret: &str, ttl: i64, swarm: Option<&str>) -> String {
    let expires = (unix_now() as i64 + ttl) as u64;
    let swarm = swarm.map(|hash| Id20::parse(hash).unwrap());
    mint(tenant, secret.as_bytes(), expires, swarm)
}

async fn try_connect(
    tracker: SocketAddr,
    token: Option<&str>,
    origin: Option<&str>,
) -> Result<Client, tungstenite::Error> {
    let path = token.map_or("/".to_owned(), |token| format!("/?token={token}"));
    let headers: Vec<(&'static str, &str)> = origin.map(|o| ("origin", o)).into_iter().collect();
    Client::try_connect_to(tracker, localhost(), &path, &headers).await
}

async fn connect(tracker: SocketAddr, tenant: &str) -> Client {
    let (secret, page) = match tenant {
        "acme" => (ACME_SECRET, ACME_PAGE),
        _ => (GLOBEX_SECRET, GLOBEX_PAGE),
    };
    let token = token(tenant, secret, 3600, None);
    try_connect(tracker, Some(&token), Some(page))
        .await
        .unwrap()
}

/// The status and body of a refused upgrade; panics if it was accepted.
fn refusal(attempt: Result<Client, tungstenite::Error>) -> (u16, String) {
    match attempt {
        Err(tungstenite::Error::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            (response.status().as_u16(), String::from_utf8(body).unwrap())
        }
        Err(other) => panic!("expected an HTTP refusal, got {other:?}"),
        Ok(_) => panic!("expected an HTTP refusal, the connection was accepted"),
    }
}

#[tokio::test]
async fn upgrades_without_a_valid_token_and_origin_are_refused_as_documented() {
    let path = write_tenants("refusals", &tenants_toml(""));
    let tracker = start_with_tenants(&path).await;
    let addr = tracker.local_addr();
    let valid = token("acme", ACME_SECRET, 3600, None);
    let expired = token("acme", ACME_SECRET, -1, None);
    let forged = token("acme", "not-the-secret-of-acme", 3600, None);
    let wrong_tenant = token("acme", GLOBEX_SECRET, 3600, None);
    let unknown = token("initech", ACME_SECRET, 3600, None);
    let cases = [
        (None, Some(ACME_PAGE), 401, "missing token"),
        (Some("garbage"), Some(ACME_PAGE), 401, "invalid token"),
        (
            Some(expired.as_str()),
            Some(ACME_PAGE),
            401,
            "token expired",
        ),
        (Some(forged.as_str()), Some(ACME_PAGE), 401, "invalid token"),
        (
            Some(wrong_tenant.as_str()),
            Some(ACME_PAGE),
            401,
            "invalid token",
        ),
        (
            Some(unknown.as_str()),
            Some(ACME_PAGE),
            403,
            "unknown tenant",
        ),
        (
            Some(valid.as_str()),
            Some(GLOBEX_PAGE),
            403,
            "origin not allowed",
        ),
        (Some(valid.as_str()), None, 403, "origin not allowed"),
    ];
    for (token, origin, status, reason) in cases {
        let got = refusal(try_connect(addr, token, origin).await);
        assert_eq!(
            got,
            (status, reason.to_owned()),
            "{token:?} from {origin:?}"
        );
    }
    let mut accepted = try_connect(addr, Some(&valid), Some(ACME_PAGE))
        .await
        .unwrap();
    let reply = accepted.announce(&id(b'S', 1), &id(b'A', 1), 0).await;
    assert_eq!(reply["interval"], 120, "{reply}");
    let refused = r#"tracker_tenant_refusals_total{reason="origin_not_allowed",tenant="acme"}"#;
    assert_eq!(metric(addr, refused).await, 2.0);
    let unknown = r#"tracker_tenant_refusals_total{reason="unknown_tenant",tenant="-"}"#;
    assert_eq!(metric(addr, unknown).await, 1.0);
    let open = r#"tracker_tenant_connections{tenant="acme"}"#;
    assert_eq!(metric(addr, open).await, 1.0);
    assert_eq!(
        metric(addr, r#"tracker_tenant_announces_total{tenant="acme"}"#).await,
        1.0
    );
    tracker.shutdown().await;
}

#[tokio::test]
async fn two_tenants_announcing_the_same_info_hash_never_meet() {
    let path = write_tenants("apart", &tenants_toml(""));
    let tracker = start_with_tenants(&path).await;
    let addr = tracker.local_addr();
    let swarm = id(b'S', 7);
    let mut acme_receiver = connect(addr, "acme").await;
    acme_receiver.announce(&swarm, &id(b'A', 1), 0).await;

    let mut globex = connect(addr, "globex").await;
    let reply = globex.announce(&swarm, &id(b'G', 1), 3).await;
    assert_eq!(reply["info_hash"], swarm.as_str());
    assert_eq!(reply["incomplete"], 1, "globex sees only itself: {reply}");
    assert!(
        acme_receiver
            .try_recv(Duration::from_millis(500))
            .await
            .is_none(),
        "an offer crossed from globex to acme"
    );

    let mut acme_offerer = connect(addr, "acme").await;
    let reply = acme_offerer.announce(&swarm, &id(b'B', 1), 3).await;
    assert_eq!(reply["incomplete"], 2, "{reply}");
    let offer = acme_receiver.recv().await;
    assert_eq!(
        offer["info_hash"],
        swarm.as_str(),
        "the client's own info hash comes back"
    );
    assert_eq!(offer["peer_id"], id(b'B', 1).as_str());

    globex
        .send(&serde_json::json!({"action": "scrape", "info_hash": swarm}))
        .await;
    let scrape = globex.recv().await;
    assert_eq!(scrape["files"][swarm.as_str()]["incomplete"], 1, "{scrape}");
    tracker.shutdown().await;
}

#[tokio::test]
async fn a_token_scoped_to_a_swarm_covers_only_that_swarm() {
    let path = write_tenants("scope", &tenants_toml(""));
    let tracker = start_with_tenants(&path).await;
    let allowed = id(b'S', 1);
    let token = token("acme", ACME_SECRET, 3600, Some(&allowed));
    let mut client = try_connect(tracker.local_addr(), Some(&token), Some(ACME_PAGE))
        .await
        .unwrap();
    assert_eq!(
        client.announce(&allowed, &id(b'A', 1), 0).await["interval"],
        120
    );
    let other = id(b'S', 2);
    let reply = client.announce(&other, &id(b'A', 1), 0).await;
    assert_eq!(
        reply["failure reason"],
        "the token does not cover this swarm"
    );
    assert_eq!(reply["info_hash"], other.as_str());
    tracker.shutdown().await;
}

#[tokio::test]
async fn tenant_quotas_refuse_connections_swarms_and_announces_beyond_them() {
    let quotas = "max-connections = 2\nmax-swarms = 2\nmax-announces-per-second = 1\n";
    let path = write_tenants("quotas", &tenants_toml(quotas));
    let tracker = start_with_tenants(&path).await;
    let addr = tracker.local_addr();
    let mut first = connect(addr, "acme").await;
    let second = connect(addr, "acme").await;
    let token = token("acme", ACME_SECRET, 3600, None);
    let third = try_connect(addr, Some(&token), Some(ACME_PAGE)).await;
    assert_eq!(
        refusal(third),
        (429, "tenant connection quota reached".to_owned())
    );
    // Another tenant is not affected by acme's quota.
    let mut globex = connect(addr, "globex").await;
    second.close().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _again = connect(addr, "acme").await;

    for n in 1..=2 {
        assert_eq!(
            first.announce(&id(b'S', n), &id(b'A', 1), 0).await["interval"],
            120
        );
    }
    let reply = first.announce(&id(b'S', 3), &id(b'A', 1), 0).await;
    assert_eq!(reply["failure reason"], "tenant swarm quota reached");
    // Ten seconds' worth of burst at one per second: the announces above took three.
    let mut refused = 0;
    for _ in 0..10 {
        let reply = first.announce(&id(b'S', 1), &id(b'A', 1), 0).await;
        refused +=
            usize::from(reply["failure reason"] == "tenant announce quota exceeded: slow down");
    }
    assert!((1..=3).contains(&refused), "{refused} refused");
    for n in 1..=5 {
        let reply = globex.announce(&id(b'S', n), &id(b'G', 1), 0).await;
        assert_eq!(reply["interval"], 120, "globex has no quotas: {reply}");
    }
    tracker.shutdown().await;
}

#[tokio::test]
async fn the_tenants_file_reloads_when_it_changes_and_keeps_the_old_one_when_broken() {
    let path = write_tenants("reload", &tenants_toml(""));
    let tracker = start_with_tenants(&path).await;
    let addr = tracker.local_addr();
    let initech_secret = "initech-secret-0123456789";
    let initech = token("initech", initech_secret, 3600, None);
    let page = "https://initech.example";
    assert_eq!(
        refusal(try_connect(addr, Some(&initech), Some(page)).await).0,
        403
    );

    let added = format!(
        "{}[[tenant]]\nid = \"initech\"\norigins = [\"{page}\"]\nsecret = \"{initech_secret}\"\n",
        tenants_toml("")
    );
    std::fs::write(&path, added).unwrap();
    let mut accepted = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Ok(client) = try_connect(addr, Some(&initech), Some(page)).await {
            accepted = Some(client);
            break;
        }
    }
    assert!(accepted.is_some(), "the changed file was not reloaded");

    std::fs::write(&path, "[[tenant]]\nid = \"broken\"\n").unwrap();
    tracker.reload_tenants();
    assert!(try_connect(addr, Some(&initech), Some(page)).await.is_ok());
    tracker.shutdown().await;
}

#[tokio::test]
async fn tracker_token_mints_a_token_the_tracker_accepts() {
    let path = write_tenants("mint", &tenants_toml(""));
    let tracker = start_with_tenants(&path).await;
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tracker"))
        .args(["token", "--tenant", "globex", "--ttl", "1h", "--tenants"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let token = String::from_utf8(output.stdout).unwrap();
    let token = token.trim();
    let mut client = try_connect(tracker.local_addr(), Some(token), Some(GLOBEX_PAGE))
        .await
        .unwrap();
    assert_eq!(
        client.announce(&id(b'S', 1), &id(b'G', 1), 0).await["interval"],
        120
    );
    let expires: u64 = token.split('.').nth(2).unwrap().parse().unwrap();
    assert!((3590..=3610).contains(&(expires - unix_now())), "{token}");
    tracker.shutdown().await;
}

#[tokio::test]
async fn without_a_tenants_file_the_tracker_stays_open() {
    let tracker = start(|_| {}).await;
    let mut client = Client::connect(tracker.local_addr()).await;
    assert_eq!(
        client.announce(&id(b'S', 1), &id(b'A', 1), 0).await["interval"],
        120
    );
    tracker.shutdown().await;
}
