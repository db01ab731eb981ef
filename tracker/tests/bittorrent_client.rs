//! Interoperability with the real `bittorrent-tracker` npm client: two clients (separate node
//! processes, the library's WebSocket code unmodified) join one swarm through this tracker; the
//! offer one creates must reach the other intact, and the answer must come back intact.
//!
//! WebRTC itself is a test double in node (`tests/js/fake-webrtc.mjs`): the polyfill the client
//! imports needs a native build that cannot be made on this machine. Only SDP text is exchanged.

mod support;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/js")
}

fn spawn(role: &str, url: &str) -> (Child, Lines<BufReader<ChildStdout>>) {
    let mut child = Command::new("node")
        .args([
            "--import",
            "./register-fake-webrtc.mjs",
            "interop.mjs",
            role,
            url,
        ])
        .current_dir(js_dir())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node must be installed (see .ci/install)");
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

async fn next_json(lines: &mut Lines<BufReader<ChildStdout>>) -> Value {
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("the node client answered in time")
        .unwrap()
        .expect("the node client printed a line");
    serde_json::from_str(&line).unwrap()
}

#[tokio::test]
async fn offers_and_answers_cross_intact_between_real_clients() {
    if !installed() {
        return;
    }
    let tracker = support::start(|_| {}).await;
    let url = format!("ws://{}", tracker.local_addr());
    exchange(&url, &url).await;
    tracker.shutdown().await;
}

#[tokio::test]
async fn real_clients_on_two_replicas_meet_through_redis() {
    if !installed() {
        return;
    }
    let Some(redis) = support::redis::RedisServer::start().await else {
        return;
    };
    let url = redis.url();
    let a = support::start(|c| c.redis_url = Some(url.clone())).await;
    let b = support::start(|c| c.redis_url = Some(url)).await;
    let (a_url, b_url) = (
        format!("ws://{}", a.local_addr()),
        format!("ws://{}", b.local_addr()),
    );
    exchange(&a_url, &b_url).await;
    a.shutdown().await;
    b.shutdown().await;
}

/// Whether `tests/js` is installed (CI must have it).
fn installed() -> bool {
    if js_dir().join("node_modules/bittorrent-tracker").exists() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must install tests/js (npm ci)"
    );
    eprintln!("SKIPPED: run `npm ci` in tracker/tests/js (bash .ci/install does) to run this test");
    false
}

/// An answerer joins through `answerer_url`, then an offerer through `offerer_url`; the offer
/// and the answer must cross intact, and both clients must parse every reply.
async fn exchange(offerer_url: &str, answerer_url: &str) {
    let (mut answerer, mut answerer_out) = spawn("answerer", answerer_url);
    assert_eq!(next_json(&mut answerer_out).await["ready"], true);
    let (mut offerer, mut offerer_out) = spawn("offerer", offerer_url);
    let offered = next_json(&mut offerer_out).await;
    let answered = next_json(&mut answerer_out).await;
    offerer.wait().await.unwrap();
    answerer.wait().await.unwrap();

    for side in [&offered, &answered] {
        assert_eq!(side["error"], Value::Null, "{side}");
        assert_eq!(side["warnings"], serde_json::json!([]), "{side}");
    }
    // The answerer received one of the offers, byte for byte.
    let created: Vec<&str> = offered["offersCreated"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let received = answered["remoteOffers"][0].as_str().unwrap();
    assert!(created.contains(&received), "offer arrived intact");
    // The offerer received exactly the answer the answerer created.
    assert_eq!(offered["remoteAnswers"][0], answered["answersCreated"][0]);
    // The client parsed the announce replies and the scrape.
    let first_update = &answered["updates"][0];
    assert_eq!(first_update["incomplete"], 1);
    assert_eq!(first_update["interval"], 120);
    assert_eq!(offered["scrapes"][0]["incomplete"], 2);
}
