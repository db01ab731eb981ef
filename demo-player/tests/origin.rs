//! The origin over real HTTP on loopback, serving the generated sample stream.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use demo_player::{FaultConfig, LiveConfig, OriginConfig, RunningOrigin, sample_media};
use m3u8_rs::{MediaPlaylist, Playlist};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn start_origin(live: Option<LiveConfig>, faults: &str) -> RunningOrigin {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = OriginConfig {
        media_dir: sample_media().expect("sample media (needs Debian's ffmpeg)"),
        live,
        faults: serde_json::from_str(faults).unwrap(),
    };
    demo_player::start(listener, config).await.unwrap()
}

async fn vod_origin() -> RunningOrigin {
    start_origin(None, r#"{"rules":[]}"#).await
}

fn media_file(path: &str) -> Vec<u8> {
    std::fs::read(sample_media().unwrap().join(path.trim_start_matches('/'))).unwrap()
}

fn media_playlist(text: &[u8]) -> MediaPlaylist {
    match m3u8_rs::parse_playlist_res(text).unwrap() {
        Playlist::MediaPlaylist(playlist) => playlist,
        Playlist::MasterPlaylist(_) => panic!("expected a media playlist"),
    }
}

async fn get(url: &str, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut request = reqwest::Client::new().get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    (status, headers, response.bytes().await.unwrap().to_vec())
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .map_or("", |value| value.to_str().unwrap())
}

#[tokio::test]
async fn vod_playlists_and_segments_are_byte_identical_to_the_files() {
    let origin = vod_origin().await;
    let (status, headers, master) = get(&origin.url("/master.m3u8"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        header(&headers, "content-type"),
        "application/vnd.apple.mpegurl"
    );
    assert_eq!(master, media_file("master.m3u8"));
    let Playlist::MasterPlaylist(master) = m3u8_rs::parse_playlist_res(&master).unwrap() else {
        panic!("master.m3u8 is not a master playlist");
    };
    assert_eq!(master.variants.len(), 3, "three renditions");
    for variant in &master.variants {
        let path = format!("/{}", variant.uri);
        let (status, _, text) = get(&origin.url(&path), &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(text, media_file(&path));
        let playlist = media_playlist(&text);
        assert!(
            playlist.end_list && playlist.segments.len() >= 30,
            "about 2 minutes of VOD"
        );
        let dir = path.rsplit_once('/').unwrap().0;
        for segment in [
            &playlist.segments[0],
            &playlist.segments[1],
            playlist.segments.last().unwrap(),
        ] {
            let segment_path = format!("{dir}/{}", segment.uri);
            let (status, headers, bytes) = get(&origin.url(&segment_path), &[]).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(header(&headers, "content-type"), "video/mp2t");
            assert_eq!(header(&headers, "accept-ranges"), "bytes");
            assert_eq!(bytes, media_file(&segment_path), "{segment_path}");
        }
    }
}

#[tokio::test]
async fn live_window_advances_and_media_sequence_increases() {
    let live = LiveConfig {
        window_segments: 4,
        speed: 20.0,
    };
    let origin = start_origin(Some(live), r#"{"rules":[]}"#).await;
    let vod = media_playlist(&media_file("/240p/index.m3u8"));
    let started = Instant::now();
    let (status, headers, text) = get(&origin.url("/240p/index.m3u8"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "cache-control"), "no-cache");
    let first = media_playlist(&text);
    assert!(
        !first.end_list && first.playlist_type.is_none(),
        "a live playlist"
    );
    assert_eq!(first.segments.len(), 4);
    // Every listed segment is served, byte-identical to its file.
    for (offset, segment) in first.segments.iter().enumerate() {
        let seq = first.media_sequence + offset as u64;
        assert_eq!(
            segment.uri,
            format!(
                "{}?seq={seq}",
                vod.segments[seq as usize % vod.segments.len()].uri
            )
        );
        let (status, _, bytes) = get(&origin.url(&format!("/240p/{}", segment.uri)), &[]).await;
        assert_eq!(status, StatusCode::OK);
        let file = segment.uri.split('?').next().unwrap();
        assert_eq!(bytes, media_file(&format!("/240p/{file}")));
    }
    // A segment whose time has not come is not there yet.
    let future = first.media_sequence + 40;
    let future_uri = &vod.segments[future as usize % vod.segments.len()].uri;
    let (status, _, _) = get(
        &origin.url(&format!("/240p/{future_uri}?seq={future}")),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // 2-second segments at speed 20 come ten a second.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let later = media_playlist(&get(&origin.url("/240p/index.m3u8"), &[]).await.2);
    let advanced = later.media_sequence - first.media_sequence;
    let most = (started.elapsed().as_secs_f64() * 10.0).ceil() as u64 + 1;
    assert!(
        (5..=most).contains(&advanced),
        "advanced {advanced} segments in 0.6 s (at most {most})"
    );
    assert_eq!(later.segments.len(), 4);
}

#[tokio::test]
async fn live_stream_loops_the_content_with_a_discontinuity() {
    let live = LiveConfig {
        window_segments: 5,
        speed: 500.0,
    };
    let origin = start_origin(Some(live), r#"{"rules":[]}"#).await;
    let count = media_playlist(&media_file("/360p/index.m3u8"))
        .segments
        .len() as u64;
    // 0.5 s at speed 500 is 250 s of media: past the end of the 2-minute content.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let live = media_playlist(&get(&origin.url("/360p/index.m3u8"), &[]).await.2);
    assert!(
        live.media_sequence >= count,
        "sequence {} has looped",
        live.media_sequence
    );
    assert_eq!(live.discontinuity_sequence, live.media_sequence / count);
    for (offset, segment) in live.segments.iter().enumerate() {
        let seq = live.media_sequence + offset as u64;
        assert_eq!(
            segment.discontinuity,
            offset > 0 && seq % count == 0,
            "seq {seq}"
        );
        assert!(
            segment
                .uri
                .starts_with(&format!("segment_{:03}.ts?", seq % count))
        );
    }
}

#[tokio::test]
async fn range_requests_get_partial_content_or_416() {
    let origin = vod_origin().await;
    let path = "/480p/segment_002.ts";
    let file = media_file(path);
    let len = file.len();
    let url = origin.url(path);
    let cases = [
        ("bytes=0-9", 0, 9),
        ("bytes=100-", 100, len - 1),
        ("bytes=-10", len - 10, len - 1),
        ("bytes=10-99999999", 10, len - 1),
    ];
    for (range, start, end) in cases {
        let (status, headers, body) = get(&url, &[("range", range)]).await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            header(&headers, "content-range"),
            format!("bytes {start}-{end}/{len}"),
            "{range}"
        );
        assert_eq!(
            header(&headers, "content-length"),
            (end + 1 - start).to_string()
        );
        assert_eq!(body, file[start..=end], "{range}");
    }
    for unsatisfiable in [
        format!("bytes={len}-"),
        "bytes=99999999999999999999999-".to_owned(),
    ] {
        let (status, headers, _) = get(&url, &[("range", &unsatisfiable)]).await;
        assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE, "{unsatisfiable}");
        assert_eq!(header(&headers, "content-range"), format!("bytes */{len}"));
    }
    // Nonsense Range headers get a clean client error or the whole file, never a server error.
    for absurd in [
        "bytes=abc",
        "bytes=5-1",
        "pages=1-2",
        "bytes=0-1,5-9",
        "bytes=--1",
        "bytes=",
    ] {
        let (status, _, body) = get(&url, &[("range", absurd)]).await;
        assert!(
            status == StatusCode::OK && body == file || status == StatusCode::RANGE_NOT_SATISFIABLE,
            "{absurd}: {status}"
        );
    }
    let (status, _, body) = get(&url, &[]).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, file),
        "still serving after bad ranges"
    );
}

#[tokio::test]
async fn cors_headers_and_preflight() {
    let origin = vod_origin().await;
    let url = origin.url("/240p/segment_000.ts");
    let preflight = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "http://player.example")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "range")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());
    let headers = preflight.headers();
    assert_eq!(header(headers, "access-control-allow-origin"), "*");
    assert!(header(headers, "access-control-allow-methods").contains("GET"));
    assert_eq!(header(headers, "access-control-allow-headers"), "*");

    let (status, headers, _) = get(
        &url,
        &[("origin", "http://player.example"), ("range", "bytes=0-1")],
    )
    .await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&headers, "access-control-allow-origin"), "*");
    let exposed = header(&headers, "access-control-expose-headers");
    for name in ["content-range", "content-length", "accept-ranges"] {
        assert!(exposed.contains(name), "{name} not exposed in {exposed:?}");
    }
}

#[tokio::test]
async fn status_fault_hits_matching_paths_for_the_given_times() {
    let faults =
        r#"{"rules":[{"path":"/480p/*.ts","failure":{"kind":"status","status":503},"times":2}]}"#;
    let origin = start_origin(None, faults).await;
    let url = origin.url("/480p/segment_000.ts");
    assert_eq!(get(&url, &[]).await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        get(&origin.url("/240p/segment_000.ts"), &[]).await.0,
        StatusCode::OK,
        "other paths untouched"
    );
    assert_eq!(get(&url, &[]).await.0, StatusCode::SERVICE_UNAVAILABLE);
    let (status, _, body) = get(&url, &[]).await;
    assert_eq!(status, StatusCode::OK, "the rule ran out after 2 requests");
    assert_eq!(body, media_file("/480p/segment_000.ts"));
}

#[tokio::test]
async fn truncation_fault_cuts_the_body_short_of_its_length() {
    let faults = r#"{"rules":[{"path":"/240p/segment_001.ts","failure":{"kind":"truncate","after_bytes":5000}}]}"#;
    let origin = start_origin(None, faults).await;
    let mut response = reqwest::get(origin.url("/240p/segment_001.ts"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let announced = response.content_length().unwrap();
    assert_eq!(announced, media_file("/240p/segment_001.ts").len() as u64);
    let mut received = 0;
    let outcome = loop {
        match response.chunk().await {
            Ok(Some(chunk)) => received += chunk.len(),
            Ok(None) => break Ok(()),
            Err(error) => break Err(error),
        }
    };
    assert!(outcome.is_err(), "the client sees an incomplete body");
    assert_eq!(received, 5000);
    let stats = origin.stats();
    assert_eq!(stats.paths["/240p/segment_001.ts"].bytes, 5000);
}

#[tokio::test]
async fn stall_fault_stops_the_body_midway() {
    let faults = r#"{"rules":[
        {"path":"/240p/segment_003.ts","failure":{"kind":"stall","after_bytes":1000}},
        {"path":"/240p/segment_004.ts","failure":{"kind":"stall","after_bytes":1000,"for_ms":400}}
    ]}"#;
    let origin = start_origin(None, faults).await;
    // Stalled until the client gives up: the first 1000 bytes arrive, then nothing.
    let mut response = reqwest::get(origin.url("/240p/segment_003.ts"))
        .await
        .unwrap();
    let mut received = 0;
    let outcome = tokio::time::timeout(Duration::from_millis(700), async {
        while let Some(chunk) = response.chunk().await.unwrap() {
            received += chunk.len();
        }
    })
    .await;
    assert!(outcome.is_err(), "the body never finishes");
    assert_eq!(received, 1000);
    // A stall with for_ms resumes and delivers the whole file.
    let started = Instant::now();
    let (status, _, body) = get(&origin.url("/240p/segment_004.ts"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(body, media_file("/240p/segment_004.ts"));
}

#[tokio::test]
async fn latency_fault_delays_the_response() {
    let origin = start_origin(
        None,
        r#"{"rules":[{"path":"/master.m3u8","latency_ms":400}]}"#,
    )
    .await;
    let started = Instant::now();
    assert_eq!(
        get(&origin.url("/master.m3u8"), &[]).await.0,
        StatusCode::OK
    );
    assert!(started.elapsed() >= Duration::from_millis(400));
    let started = Instant::now();
    assert_eq!(
        get(&origin.url("/240p/index.m3u8"), &[]).await.0,
        StatusCode::OK
    );
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "unmatched paths are not delayed"
    );
}

#[tokio::test]
async fn bandwidth_cap_measurably_slows_a_transfer() {
    let path = "/480p/segment_005.ts";
    let size = media_file(path).len() as f64;
    let rate = 200_000.0;
    let faults = format!(r#"{{"rules":[{{"path":"{path}","bandwidth_bytes_per_sec":{rate}}}]}}"#);
    let origin = start_origin(None, &faults).await;
    let started = Instant::now();
    let (_, _, body) = get(&origin.url(path), &[]).await;
    let capped = started.elapsed().as_secs_f64();
    assert_eq!(body.len() as f64, size);
    assert!(
        capped >= 0.9 * size / rate,
        "{size} bytes took {capped} s at {rate} B/s"
    );
    assert!(
        capped < 3.0 * size / rate,
        "{size} bytes took {capped} s at {rate} B/s"
    );
    let started = Instant::now();
    get(&origin.url("/480p/segment_006.ts"), &[]).await;
    assert!(
        started.elapsed().as_secs_f64() < capped / 2.0,
        "the uncapped path is faster"
    );
}

#[tokio::test]
async fn control_endpoint_sets_shows_and_clears_faults() {
    let origin = vod_origin().await;
    let client = reqwest::Client::new();
    let control = origin.url("/_control/faults");
    let rules =
        serde_json::json!({"rules":[{"path":"/360p/*","failure":{"kind":"status","status":500}}]});
    let response = client.post(&control).json(&rules).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        get(&origin.url("/360p/index.m3u8"), &[]).await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    let shown: serde_json::Value = client
        .get(&control)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown, rules);
    // Refused rules are reported and leave the faults as they were.
    for bad in [
        r#"{"rules":[{"path":"["}]}"#,
        r#"{"rules":[{"path":"/a","surprise":1}]}"#,
        "not json",
    ] {
        let response = client
            .post(&control)
            .header("content-type", "application/json")
            .body(bad)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_client_error(),
            "{bad}: {}",
            response.status()
        );
    }
    assert_eq!(
        client
            .get(&control)
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap(),
        rules
    );
    let response = client.delete(&control).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        get(&origin.url("/360p/index.m3u8"), &[]).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn stats_count_requests_and_bytes_per_path() {
    let origin = vod_origin().await;
    for _ in 0..3 {
        get(&origin.url("/240p/segment_000.ts"), &[]).await;
    }
    get(
        &origin.url("/240p/segment_001.ts"),
        &[("range", "bytes=0-99")],
    )
    .await;
    let stats: demo_player::StatsSnapshot = reqwest::get(origin.url("/_stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let segment = media_file("/240p/segment_000.ts").len() as u64;
    assert_eq!(stats.paths["/240p/segment_000.ts"].requests, 3);
    assert_eq!(stats.paths["/240p/segment_000.ts"].bytes, 3 * segment);
    assert_eq!(stats.paths["/240p/segment_001.ts"].bytes, 100);
    assert_eq!(
        stats.total.requests, 4,
        "control and stats requests are not counted"
    );
    assert_eq!(stats.total.bytes, 3 * segment + 100);
    let reset = reqwest::Client::new()
        .delete(origin.url("/_stats"))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    assert_eq!(origin.stats(), demo_player::StatsSnapshot::default());
}

/// Sends `request` as raw bytes (HTTP clients would normalise the paths under test away).
async fn raw_request(origin: &RunningOrigin, request: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(origin.addr()).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test]
async fn path_traversal_and_garbage_get_clean_errors() {
    let origin = start_origin(Some(LiveConfig::default()), r#"{"rules":[]}"#).await;
    for path in [
        "/../Cargo.toml",
        "/240p/../../Cargo.toml",
        "/%2e%2e/Cargo.toml",
        "/240p/..%2f..%2fCargo.toml",
        "/..\\Cargo.toml",
        "/240p/segment_000.ts?seq=18446744073709551615",
        "/240p/segment_000.ts?seq=-1",
        "/240p/index.m3u8?seq=abc",
        "/240p/",
    ] {
        let response = raw_request(
            &origin,
            &format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"),
        )
        .await;
        let status_line = response.lines().next().unwrap_or_default();
        assert!(
            status_line.starts_with("HTTP/1.1 4")
                || path.ends_with("abc") && status_line.starts_with("HTTP/1.1 200"),
            "{path}: {status_line}"
        );
        assert!(
            !response.contains("[package]"),
            "{path} escaped the media folder"
        );
    }
    let garbage = raw_request(&origin, "\x16\x03\x01 not http at all\r\n\r\n").await;
    assert!(
        garbage.is_empty() || garbage.starts_with("HTTP/1.1 400"),
        "{garbage}"
    );
    assert_eq!(
        get(&origin.url("/master.m3u8"), &[]).await.0,
        StatusCode::OK,
        "still serving"
    );
}

#[tokio::test]
async fn readme_control_example_is_accepted() {
    let readme =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("README.md"))
            .unwrap();
    let example = readme
        .split("```json\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("README has a json example");
    let config: FaultConfig = serde_json::from_str(example).unwrap();
    let origin = vod_origin().await;
    let response = reqwest::Client::new()
        .post(origin.url("/_control/faults"))
        .header("content-type", "application/json")
        .body(example.to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let shown: FaultConfig = response.json().await.unwrap();
    assert_eq!(shown, config);
}

#[tokio::test]
async fn shutdown_closes_the_listener() {
    let origin = vod_origin().await;
    let addr = origin.addr();
    origin.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn the_binary_documents_its_flags_and_takes_them_from_env() {
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_origin"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    for flag in [
        "--media",
        "--listen",
        "--live",
        "--window",
        "--speed",
        "--faults",
        "ORIGIN_MEDIA",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_origin"))
        .env("ORIGIN_MEDIA", sample_media().unwrap())
        .env("ORIGIN_LISTEN", "127.0.0.1:0")
        .env("ORIGIN_LIVE", "true")
        .env("ORIGIN_WINDOW", "3")
        .env(
            "ORIGIN_FAULTS",
            r#"{"rules":[{"path":"/master.m3u8","failure":{"kind":"status","status":502}}]}"#,
        )
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    tokio::io::AsyncBufReadExt::read_line(&mut stdout, &mut line)
        .await
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("origin listening on ")
        .expect(&line)
        .to_owned();
    assert_eq!(
        get(&format!("{base}/master.m3u8"), &[]).await.0,
        StatusCode::BAD_GATEWAY
    );
    let live = media_playlist(&get(&format!("{base}/480p/index.m3u8"), &[]).await.2);
    assert_eq!(live.segments.len(), 3);
    assert!(!live.end_list);
    child.kill().await.unwrap();
}
