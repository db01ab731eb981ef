//! The CDN client against the real test origin (in-process), with its fault injection.

use std::time::Duration;

use demo_player::{Failure, FaultConfig, FaultRule, OriginConfig, RunningOrigin};
use peer_native::cdn::{CdnClient, CdnConfig, CdnError, Download, Progress};
use tokio::net::TcpListener;

const SEGMENT: &str = "/480p/segment_001.ts";

async fn origin() -> (RunningOrigin, Vec<u8>) {
    let media_dir = demo_player::sample_media().expect("sample media (needs ffmpeg)");
    let bytes = std::fs::read(media_dir.join(&SEGMENT[1..])).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = OriginConfig {
        media_dir,
        live: None,
        faults: FaultConfig::default(),
    };
    (demo_player::start(listener, config).await.unwrap(), bytes)
}

fn rule(failure: Option<Failure>, bandwidth: Option<u64>) -> FaultConfig {
    FaultConfig {
        rules: vec![FaultRule {
            path: SEGMENT.into(),
            latency_ms: 0,
            bandwidth_bytes_per_sec: bandwidth,
            failure,
            times: None,
        }],
    }
}

/// Collects a download; returns the body and how many progress reports carried data.
async fn collect(mut download: Download) -> Result<(Vec<u8>, usize), CdnError> {
    let mut body = Vec::new();
    let mut reports = 0;
    loop {
        match download.next().await? {
            Progress::Data(bytes) => {
                body.extend_from_slice(&bytes);
                reports += 1;
            }
            Progress::Done => return Ok((body, reports)),
        }
    }
}

#[tokio::test]
async fn whole_segments_and_ranges_arrive_byte_identical() {
    let (origin, file) = origin().await;
    let cdn = CdnClient::new(CdnConfig::default()).unwrap();
    let url = origin.url(SEGMENT);
    let (body, _) = collect(cdn.fetch(&url, None)).await.unwrap();
    assert!(body == file, "full GET equals the file");
    let len = file.len() as u64;
    for range in [0..1, 100..5000, len - 777..len] {
        let (body, _) = collect(cdn.fetch(&url, Some(range.clone()))).await.unwrap();
        assert!(
            body[..] == file[range.start as usize..range.end as usize],
            "range {range:?}"
        );
    }
    assert!(matches!(
        cdn.fetch(&url, Some(len..len + 10)).next().await,
        Err(CdnError::Status(status)) if status.as_u16() == 416
    ));
    origin.shutdown().await;
}

#[tokio::test]
async fn progress_is_reported_as_bytes_arrive() {
    let (origin, file) = origin().await;
    origin
        .set_faults(rule(None, Some(file.len() as u64 * 4)))
        .unwrap();
    let cdn = CdnClient::new(CdnConfig::default()).unwrap();
    let (body, reports) = collect(cdn.fetch(&origin.url(SEGMENT), None))
        .await
        .unwrap();
    assert!(body == file);
    assert!(
        reports >= 3,
        "a paced body comes in several reports, got {reports}"
    );
    origin.shutdown().await;
}

#[tokio::test]
async fn server_errors_and_truncated_bodies_are_reported_as_errors() {
    let (origin, _) = origin().await;
    let cdn = CdnClient::new(CdnConfig::default()).unwrap();
    let url = origin.url(SEGMENT);

    origin
        .set_faults(rule(Some(Failure::Status { status: 503 }), None))
        .unwrap();
    let error = collect(cdn.fetch(&url, None)).await.unwrap_err();
    assert!(
        matches!(error, CdnError::Status(s) if s.as_u16() == 503),
        "{error}"
    );

    origin
        .set_faults(rule(Some(Failure::Truncate { after_bytes: 1000 }), None))
        .unwrap();
    let error = collect(cdn.fetch(&url, None)).await.unwrap_err();
    assert!(
        matches!(error, CdnError::Transport(_) | CdnError::Truncated { .. }),
        "a cut body is an error: {error}"
    );
    let error = collect(cdn.fetch(&url, Some(0..5000))).await.unwrap_err();
    assert!(
        matches!(error, CdnError::Transport(_) | CdnError::Truncated { .. }),
        "a cut range is an error: {error}"
    );

    origin.set_faults(FaultConfig::default()).unwrap();
    assert!(
        collect(cdn.fetch(&url, None)).await.is_ok(),
        "healthy again"
    );
    origin.shutdown().await;
}

#[tokio::test]
async fn aborting_a_stalled_download_closes_its_connection() {
    let (origin, _) = origin().await;
    let stall = Failure::Stall {
        after_bytes: 1000,
        for_ms: None,
    };
    origin.set_faults(rule(Some(stall), None)).unwrap();
    let cdn = CdnClient::new(CdnConfig::default()).unwrap();
    let mut download = cdn.fetch(&origin.url(SEGMENT), None);
    let first = tokio::time::timeout(Duration::from_secs(5), download.next()).await;
    assert!(matches!(first, Ok(Ok(Progress::Data(_)))), "{first:?}");
    let more = tokio::time::timeout(Duration::from_millis(300), download.next()).await;
    assert!(more.is_err(), "the body is stalled");
    download.abort();
    // The origin's graceful shutdown waits for open connections: it ends only if ours closed.
    let shutdown = tokio::time::timeout(Duration::from_secs(5), origin.shutdown()).await;
    assert!(
        shutdown.is_ok(),
        "the aborted request's connection is closed"
    );
}
