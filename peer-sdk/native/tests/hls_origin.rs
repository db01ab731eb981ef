//! HLS playlists of the origin's sample stream, VOD and live.

use std::time::Duration;

use demo_player::{FaultConfig, LiveConfig, OriginConfig, RunningOrigin};
use peer_native::cdn::{CdnClient, CdnConfig};
use peer_native::hls::{self, LivePlaylist};
use peer_sdk::swarm_id;
use tokio::net::TcpListener;
use url::Url;

async fn origin(live: Option<LiveConfig>) -> RunningOrigin {
    let media_dir = demo_player::sample_media().expect("sample media (needs ffmpeg)");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = OriginConfig {
        media_dir,
        live,
        faults: FaultConfig::default(),
    };
    demo_player::start(listener, config).await.unwrap()
}

#[tokio::test]
async fn the_sample_stream_has_three_renditions_in_distinct_swarms() {
    let origin = origin(None).await;
    let cdn = CdnClient::new(CdnConfig::default()).unwrap();
    let master = Url::parse(&origin.url("/master.m3u8?token=secret")).unwrap();
    let stream = hls::load_stream(&cdn, &master, None).await.unwrap();
    assert_eq!(stream.renditions.len(), 3);
    let bandwidths: Vec<_> = stream.renditions.iter().map(|r| r.bandwidth).collect();
    assert!(bandwidths.windows(2).all(|w| w[0] < w[1]), "{bandwidths:?}");
    let mut ids: Vec<_> = stream.renditions.iter().map(|r| r.info_hash).collect();
    ids.dedup();
    assert_eq!(ids.len(), 3, "one swarm per rendition");
    let stream_id = origin.url("/master.m3u8");
    let low = &stream.renditions[0];
    assert!(low.url.path().ends_with("/index.m3u8"));
    let text = String::from_utf8(cdn.get(master.as_str()).await.unwrap().to_vec()).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains(&format!("BANDWIDTH={}", low.bandwidth.unwrap())))
        .unwrap();
    let attribute = |name: &str| {
        let start = line.find(&format!("{name}="))? + name.len() + 1;
        let rest = &line[start..];
        let value = match rest.strip_prefix('"') {
            Some(quoted) => &quoted[..quoted.find('"')?],
            None => rest.split(',').next()?,
        };
        Some(value.to_owned())
    };
    let key = swarm_id::rendition_key(
        low.bandwidth,
        attribute("CODECS").as_deref(),
        attribute("RESOLUTION").as_deref(),
    );
    assert_eq!(low.info_hash, swarm_id::info_hash(&stream_id, &key));

    let media = hls::parse_media(&low.url, &cdn.get(low.url.as_str()).await.unwrap()).unwrap();
    assert!(!media.live);
    let total: Duration = media.segments.iter().map(|s| s.duration).sum();
    assert!(
        total >= Duration::from_secs(100),
        "about two minutes, got {total:?}"
    );
    let first = cdn.get(media.segments[0].url.as_str()).await.unwrap();
    assert_eq!(first[0], 0x47, "an MPEG-TS segment");
    origin.shutdown().await;
}

#[tokio::test]
async fn a_live_playlist_slides_and_each_segment_is_seen_once() {
    let live = LiveConfig {
        window_segments: 4,
        speed: 4.0,
    };
    let origin = origin(Some(live)).await;
    let cdn = CdnClient::new(CdnConfig::default()).unwrap();
    let url = Url::parse(&origin.url("/240p/index.m3u8")).unwrap();
    let mut playlist = LivePlaylist::new(url);
    let mut seen = playlist.refresh(&cdn).await.unwrap();
    assert!(playlist.is_live());
    assert!(!seen.is_empty());
    // Segments of 2 s at speed 4 appear every 0.5 s; poll a few times for 2 s.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        seen.extend(playlist.refresh(&cdn).await.unwrap());
    }
    let seqs: Vec<u64> = seen.iter().map(|s| s.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "consecutive, no repeats: {seqs:?}"
    );
    assert!(seqs.len() >= 6, "the window moved: {seqs:?}");
    assert_eq!(playlist.last_seq(), seqs.last().copied());
    origin.shutdown().await;
}
