//! Engine tests: feed inputs, check outputs.

use super::*;
use crate::integrity::{SegmentHash, sha256};
use crate::io::{DisconnectReason, Event, SegmentSource};
use crate::wire::{Message, VERSION};
use proptest::prelude::*;

const SEG: Duration = Duration::from_secs(2);
const PEER: PeerId = PeerId(7);

fn key(seq: u64) -> SegmentKey {
    SegmentKey { rendition: 0, seq }
}

fn content(seq: u64, size: usize) -> Vec<u8> {
    (0..size).map(|i| (i as u64 * 31 + seq * 7) as u8).collect()
}

fn info(seq: u64, size: usize, hashed: bool) -> SegmentInfo {
    SegmentInfo {
        key: key(seq),
        url: format!("https://cdn/{seq}.ts"),
        start: SEG * seq as u32,
        duration: SEG,
        hash: hashed.then(|| SegmentHash {
            sha256: sha256(&content(seq, size)),
            size: size as u64,
        }),
    }
}

fn drain(engine: &mut Engine) -> Vec<Output> {
    std::iter::from_fn(|| engine.poll_output()).collect()
}

fn sent_messages(outputs: &[Output]) -> Vec<(PeerId, Message<'_>)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::SendToPeer { peer, bytes } => Some((*peer, Message::decode(bytes).unwrap())),
            _ => None,
        })
        .collect()
}

fn http_requests(outputs: &[Output]) -> Vec<(RequestId, Option<std::ops::Range<u64>>)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::HttpRequest { request, range, .. } => Some((*request, range.clone())),
            _ => None,
        })
        .collect()
}

fn delivered(outputs: &[Output]) -> Vec<(SegmentKey, Vec<u8>)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Deliver { key, data } => Some((*key, data.to_vec())),
            _ => None,
        })
        .collect()
}

/// An engine playing at media time 0, with segments 0..10 of `size` bytes listed, and one
/// handshaken peer that has `peer_has`.
fn setup(size: usize, hashed: bool, peer_has: &[u64]) -> Engine {
    setup_with(Config::default(), false, size, hashed, peer_has)
}

/// [`setup`] with a given configuration, live or VOD.
fn setup_with(config: Config, live: bool, size: usize, hashed: bool, peer_has: &[u64]) -> Engine {
    let mut engine = Engine::new(config);
    let now = Duration::ZERO;
    let segments: Vec<SegmentInfo> = (0..10).map(|s| info(s, size, hashed)).collect();
    engine.handle(
        Input::Playlist {
            rendition: 0,
            live,
            segments: &segments,
        },
        now,
    );
    engine.handle(
        Input::Playhead {
            position: Duration::ZERO,
            state: PlaybackState::Playing,
        },
        now,
    );
    connect_peer(&mut engine, PEER, peer_has, now);
    drain(&mut engine);
    engine
}

fn connect_peer(engine: &mut Engine, peer: PeerId, has: &[u64], now: Duration) {
    engine.handle(
        Input::PeerConnected {
            peer,
            rendition: 0,
            max_message_size: 65536,
        },
        now,
    );
    let handshake = Message::Handshake {
        version: VERSION,
        uploads: true,
        upload_capacity: 0,
    };
    engine.handle(
        Input::PeerMessage {
            peer,
            bytes: &handshake.encode(),
        },
        now,
    );
    if !has.is_empty() {
        let size = engine.segments[&key(has[0])].size_hint.unwrap_or(40_000) as u32;
        let have = Message::Have(has.iter().map(|s| (*s, size)).collect());
        engine.handle(
            Input::PeerMessage {
                peer,
                bytes: &have.encode(),
            },
            now,
        );
    }
}

fn send_data(
    engine: &mut Engine,
    peer: PeerId,
    seq: u64,
    range: std::ops::Range<u64>,
    data: &[u8],
    now: Duration,
) {
    let message = Message::Data {
        seq,
        offset: range.start as u32,
        payload: &data[range.start as usize..range.end as usize],
    };
    engine.handle(
        Input::PeerMessage {
            peer,
            bytes: &message.encode(),
        },
        now,
    );
}

#[test]
fn segment_far_ahead_comes_from_the_peer_that_has_it() {
    let mut engine = setup(40_000, true, &[5]);
    engine.handle(Input::SegmentRequested(key(5)), Duration::ZERO);
    let out = drain(&mut engine);
    assert!(
        http_requests(&out).is_empty(),
        "no CDN request while a peer can serve in time"
    );
    let requests: Vec<_> = sent_messages(&out)
        .into_iter()
        .filter(|(_, m)| matches!(m, Message::Request { .. }))
        .collect();
    assert_eq!(
        requests,
        vec![(
            PEER,
            Message::Request {
                seq: 5,
                offset: 0,
                length: 40_000
            }
        )]
    );
    let data = content(5, 40_000);
    send_data(
        &mut engine,
        PEER,
        5,
        0..40_000,
        &data,
        Duration::from_millis(100),
    );
    let out = drain(&mut engine);
    assert_eq!(delivered(&out), vec![(key(5), data)]);
    assert_eq!(engine.stats().segments_from_peers, 1);
}

#[test]
fn urgent_segment_comes_from_the_cdn() {
    let mut engine = setup(40_000, true, &[0]);
    engine.handle(Input::SegmentRequested(key(0)), Duration::ZERO);
    let out = drain(&mut engine);
    assert_eq!(http_requests(&out).len(), 1);
    let (request, range) = http_requests(&out)[0].clone();
    assert_eq!(range, None);
    let data = content(0, 40_000);
    engine.handle(
        Input::HttpData {
            request,
            bytes: &data,
        },
        Duration::from_millis(50),
    );
    engine.handle(Input::HttpFinished(request), Duration::from_millis(50));
    let out = drain(&mut engine);
    assert_eq!(delivered(&out), vec![(key(0), data)]);
    let SegmentSource::Cdn = engine_source(&out) else {
        panic!("expected a CDN segment")
    };
}

fn engine_source(out: &[Output]) -> SegmentSource {
    out.iter()
        .find_map(|o| match o {
            Output::Event(Event::SegmentDelivered { source, .. }) => Some(*source),
            _ => None,
        })
        .expect("a delivery event")
}

#[test]
fn stalled_peer_is_completed_from_the_cdn_by_range_in_time() {
    let mut engine = setup(40_000, true, &[2]);
    engine.handle(Input::SegmentRequested(key(2)), Duration::ZERO);
    drain(&mut engine);
    let data = content(2, 40_000);
    // The peer sends the first 16 KiB, then nothing more.
    send_data(
        &mut engine,
        PEER,
        2,
        0..16_384,
        &data,
        Duration::from_millis(100),
    );
    drain(&mut engine);
    let mut now = Duration::from_millis(100);
    let mut range_request = None;
    let mut cancelled = false;
    while let Some(t) = engine.poll_timeout() {
        now = t;
        engine.handle_timeout(now);
        let out = drain(&mut engine);
        cancelled |= sent_messages(&out).contains(&(PEER, Message::Cancel { seq: 2 }));
        if let Some(req) = http_requests(&out).into_iter().next() {
            range_request = Some(req);
            break;
        }
    }
    assert!(cancelled, "the stalled transfer is cancelled");
    let (request, range) = range_request.expect("a CDN fallback");
    assert_eq!(range, Some(16_384..40_000), "only the missing bytes");
    let deadline = SEG * 2;
    let cdn_time = engine.config.cdn_rtt + Duration::from_millis(100);
    assert!(
        now + cdn_time < deadline,
        "fallback at {now:?} leaves the CDN time"
    );
    engine.handle(
        Input::HttpData {
            request,
            bytes: &data[16_384..],
        },
        now + cdn_time,
    );
    engine.handle(Input::HttpFinished(request), now + cdn_time);
    let out = drain(&mut engine);
    assert_eq!(delivered(&out), vec![(key(2), data)]);
    assert_eq!(engine_source(&out), SegmentSource::Mixed);
}

#[test]
fn a_range_request_that_fails_after_its_last_byte_still_completes_the_segment() {
    let mut engine = setup(40_000, true, &[2]);
    engine.handle(Input::SegmentRequested(key(2)), Duration::ZERO);
    drain(&mut engine);
    let data = content(2, 40_000);
    let at = Duration::from_millis(100);
    send_data(&mut engine, PEER, 2, 0..16_384, &data, at);
    drain(&mut engine);
    let (now, (request, range)) = loop {
        let now = engine
            .poll_timeout()
            .expect("a wake-up for the deadline check");
        engine.handle_timeout(now);
        if let Some(request) = http_requests(&drain(&mut engine)).into_iter().next() {
            break (now, request);
        }
    };
    assert_eq!(range, Some(16_384..40_000));
    engine.handle(
        Input::HttpData {
            request,
            bytes: &data[16_384..],
        },
        now,
    );
    engine.handle(Input::HttpFailed(request), now);
    let out = drain(&mut engine);
    assert_eq!(delivered(&out), vec![(key(2), data)]);
    assert!(http_requests(&out).is_empty(), "no byte is fetched twice");
}

#[test]
fn corrupt_peer_data_is_never_delivered_and_the_sender_is_banned() {
    let mut engine = setup(40_000, true, &[5]);
    engine.handle(Input::SegmentRequested(key(5)), Duration::ZERO);
    drain(&mut engine);
    let mut bad = content(5, 40_000);
    bad[100] ^= 1;
    send_data(
        &mut engine,
        PEER,
        5,
        0..40_000,
        &bad,
        Duration::from_millis(100),
    );
    let out = drain(&mut engine);
    assert!(delivered(&out).is_empty());
    assert!(out.contains(&Output::Event(Event::IntegrityFailure(key(5)))));
    let (request, range) = http_requests(&out)[0].clone();
    assert_eq!(range, None);
    let good = content(5, 40_000);
    engine.handle(
        Input::HttpData {
            request,
            bytes: &good,
        },
        Duration::from_millis(200),
    );
    engine.handle(Input::HttpFinished(request), Duration::from_millis(200));
    let out = drain(&mut engine);
    assert_eq!(delivered(&out), vec![(key(5), good)]);
    assert!(out.contains(&Output::DisconnectPeer {
        peer: PEER,
        reason: DisconnectReason::CorruptData
    }));
    assert_eq!(engine.stats().peers_banned, 1);
    engine.handle(
        Input::PeerConnected {
            peer: PEER,
            rendition: 0,
            max_message_size: 65536,
        },
        Duration::from_millis(300),
    );
    assert!(drain(&mut engine).contains(&Output::DisconnectPeer {
        peer: PEER,
        reason: DisconnectReason::Banned
    }));
}

#[test]
fn peer_data_waits_for_the_tracker_hash() {
    let mut engine = setup(40_000, false, &[5]);
    engine.handle(Input::SegmentRequested(key(5)), Duration::ZERO);
    drain(&mut engine);
    let data = content(5, 40_000);
    send_data(
        &mut engine,
        PEER,
        5,
        0..40_000,
        &data,
        Duration::from_millis(100),
    );
    let out = drain(&mut engine);
    assert!(delivered(&out).is_empty(), "unverified bytes are held back");
    assert!(out.contains(&Output::QueryHash(key(5))));
    engine.handle(
        Input::TrackerHash {
            key: key(5),
            sha256: sha256(&data),
            size: Some(40_000),
        },
        Duration::from_millis(200),
    );
    assert_eq!(delivered(&drain(&mut engine)), vec![(key(5), data)]);
}

#[test]
fn a_tracker_hash_without_a_size_verifies_peer_data_by_its_digest() {
    let mut engine = setup(40_000, false, &[5, 6]);
    let data = content(5, 40_000);
    let at = Duration::from_millis(100);
    engine.handle(
        Input::TrackerHash {
            key: key(6),
            sha256: sha256(&content(6, 40_000)),
            size: None,
        },
        at,
    );
    engine.handle(Input::SegmentRequested(key(5)), at);
    drain(&mut engine);
    send_data(&mut engine, PEER, 5, 0..40_000, &data, at);
    assert!(drain(&mut engine).contains(&Output::QueryHash(key(5))));
    engine.handle(
        Input::TrackerHash {
            key: key(5),
            sha256: sha256(&data),
            size: None,
        },
        Duration::from_millis(200),
    );
    assert_eq!(delivered(&drain(&mut engine)), vec![(key(5), data)]);
    assert_eq!(
        engine.segments[&key(6)].size_hint,
        Some(40_000),
        "the size the peer announced is still planned with"
    );
}

#[test]
fn peer_data_of_another_length_fails_a_size_less_tracker_hash() {
    let mut engine = setup(40_000, false, &[5]);
    engine.handle(Input::SegmentRequested(key(5)), Duration::ZERO);
    drain(&mut engine);
    // The peer announced 40,000 bytes; the true segment is one byte shorter.
    let truth = content(5, 39_999);
    let at = Duration::from_millis(100);
    send_data(&mut engine, PEER, 5, 0..40_000, &content(5, 40_000), at);
    drain(&mut engine);
    engine.handle(
        Input::TrackerHash {
            key: key(5),
            sha256: sha256(&truth),
            size: None,
        },
        at,
    );
    let out = drain(&mut engine);
    assert!(delivered(&out).is_empty());
    assert!(out.contains(&Output::Event(Event::IntegrityFailure(key(5)))));
    let requests = http_requests(&out);
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].1, None, "refetched whole from the CDN");
}

fn digest_jobs(outputs: &[Output]) -> Vec<(DigestJob, Vec<u8>)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::ComputeDigest { job, data } => Some((*job, data.to_vec())),
            _ => None,
        })
        .collect()
}

fn external_digest() -> Config {
    Config {
        external_digest: true,
        ..Config::default()
    }
}

#[test]
fn external_digest_verifies_peer_data_only_after_the_driver_answers() {
    let mut engine = setup_with(external_digest(), false, 40_000, true, &[5]);
    engine.handle(Input::SegmentRequested(key(5)), Duration::ZERO);
    drain(&mut engine);
    let data = content(5, 40_000);
    let at = Duration::from_millis(100);
    send_data(&mut engine, PEER, 5, 0..40_000, &data, at);
    let out = drain(&mut engine);
    assert!(delivered(&out).is_empty(), "nothing before the digest");
    let jobs = digest_jobs(&out);
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].1, data, "the driver hashes the assembled segment");
    // A stale or unknown job changes nothing.
    let stale = DigestJob(jobs[0].0.0 + 100);
    engine.handle(
        Input::DigestComputed {
            job: stale,
            sha256: sha256(&data),
        },
        at,
    );
    assert!(drain(&mut engine).is_empty());
    engine.handle(
        Input::DigestComputed {
            job: jobs[0].0,
            sha256: sha256(&data),
        },
        at,
    );
    let out = drain(&mut engine);
    assert_eq!(delivered(&out), vec![(key(5), data)]);
    assert!(digest_jobs(&out).is_empty());
}

#[test]
fn external_digest_mismatch_is_an_integrity_failure() {
    let mut engine = setup_with(external_digest(), false, 40_000, true, &[5]);
    engine.handle(Input::SegmentRequested(key(5)), Duration::ZERO);
    drain(&mut engine);
    let mut bad = content(5, 40_000);
    bad[7] ^= 1;
    let at = Duration::from_millis(100);
    send_data(&mut engine, PEER, 5, 0..40_000, &bad, at);
    let (job, bytes) = digest_jobs(&drain(&mut engine)).remove(0);
    engine.handle(
        Input::DigestComputed {
            job,
            sha256: sha256(&bytes),
        },
        at,
    );
    let out = drain(&mut engine);
    assert!(delivered(&out).is_empty());
    assert!(out.contains(&Output::Event(Event::IntegrityFailure(key(5)))));
    assert_eq!(http_requests(&out).len(), 1, "refetched from the CDN");
}

/// Fetches live segment 0 (no trusted hash) from the CDN and returns the outputs.
fn fetch_live_segment_from_cdn(engine: &mut Engine, data: &[u8]) -> Vec<Output> {
    engine.handle(Input::SegmentRequested(key(0)), Duration::ZERO);
    let (request, _) = http_requests(&drain(engine))[0].clone();
    let at = Duration::from_millis(50);
    engine.handle(
        Input::HttpData {
            request,
            bytes: data,
        },
        at,
    );
    engine.handle(Input::HttpFinished(request), at);
    drain(engine)
}

#[test]
fn cdn_segment_hash_is_reported_inline_by_default() {
    let mut engine = setup_with(Config::default(), true, 40_000, false, &[]);
    let data = content(0, 40_000);
    let out = fetch_live_segment_from_cdn(&mut engine, &data);
    assert_eq!(delivered(&out), vec![(key(0), data.clone())]);
    assert!(digest_jobs(&out).is_empty());
    assert!(out.contains(&Output::ReportHash {
        key: key(0),
        sha256: sha256(&data),
        size: 40_000
    }));
}

#[test]
fn external_digest_reports_the_cdn_segment_hash_when_the_driver_answers() {
    let mut engine = setup_with(external_digest(), true, 40_000, false, &[]);
    let data = content(0, 40_000);
    let out = fetch_live_segment_from_cdn(&mut engine, &data);
    assert_eq!(
        delivered(&out),
        vec![(key(0), data.clone())],
        "CDN data is delivered without waiting for the digest"
    );
    assert!(!out.iter().any(|o| matches!(o, Output::ReportHash { .. })));
    let (job, bytes) = digest_jobs(&out).remove(0);
    assert_eq!(bytes, data);
    engine.handle(
        Input::DigestComputed {
            job,
            sha256: sha256(&bytes),
        },
        Duration::from_millis(60),
    );
    assert_eq!(
        drain(&mut engine),
        vec![Output::ReportHash {
            key: key(0),
            sha256: sha256(&data),
            size: 40_000
        }]
    );
}

#[test]
fn serves_requests_in_chunks_within_the_message_size() {
    let mut engine = setup(40_000, true, &[]);
    engine.handle(Input::SegmentRequested(key(0)), Duration::ZERO);
    let out = drain(&mut engine);
    let (request, _) = http_requests(&out)[0].clone();
    let data = content(0, 40_000);
    engine.handle(
        Input::HttpData {
            request,
            bytes: &data,
        },
        Duration::ZERO,
    );
    engine.handle(Input::HttpFinished(request), Duration::ZERO);
    let out = drain(&mut engine);
    assert!(sent_messages(&out).contains(&(PEER, Message::Have(vec![(0, 40_000)]))));
    let ask = Message::Request {
        seq: 0,
        offset: 1000,
        length: 39_000,
    };
    engine.handle(
        Input::PeerMessage {
            peer: PEER,
            bytes: &ask.encode(),
        },
        Duration::ZERO,
    );
    let out = drain(&mut engine);
    let mut got = Vec::new();
    for (_, message) in sent_messages(&out) {
        if let Message::Data {
            offset, payload, ..
        } = message
        {
            assert_eq!(offset as usize, 1000 + got.len());
            assert!(payload.len() <= 16 * 1024);
            got.extend_from_slice(payload);
        }
    }
    assert_eq!(got, data[1000..]);
    assert_eq!(engine.stats().bytes_uploaded, 39_000);
}

#[test]
fn live_availability_behind_the_retention_window_is_forgotten() {
    let config = Config {
        live_retention: 3,
        ..Config::default()
    };
    let mut engine = setup_with(config, true, 1000, true, &[6, 7, 8, 9]);
    assert_eq!(engine.peers[&PEER].have.len(), 4);
    let newer: Vec<SegmentInfo> = (10..13).map(|s| info(s, 1000, true)).collect();
    let playlist = Input::Playlist {
        rendition: 0,
        live: true,
        segments: &newer,
    };
    engine.handle(playlist, Duration::ZERO);
    // Newest is 12: segments from 9 on are kept, as the peer keeps them.
    let have: Vec<u64> = engine.peers[&PEER].have.keys().copied().collect();
    assert_eq!(have, [9]);
}

#[test]
fn violators_are_disconnected() {
    let mut engine = setup(40_000, true, &[]);
    engine.handle(
        Input::PeerMessage {
            peer: PEER,
            bytes: &[0x04, 1, 2],
        },
        Duration::ZERO,
    );
    assert!(drain(&mut engine).contains(&Output::DisconnectPeer {
        peer: PEER,
        reason: DisconnectReason::ProtocolViolation
    }));
    assert_eq!(engine.stats().peers_connected, 0);
}

#[test]
fn several_peers_share_the_byte_ranges_of_one_segment() {
    let mut engine = setup(100_000, true, &[6]);
    connect_peer(&mut engine, PeerId(8), &[6], Duration::ZERO);
    connect_peer(&mut engine, PeerId(9), &[6], Duration::ZERO);
    drain(&mut engine);
    engine.handle(Input::SegmentRequested(key(6)), Duration::ZERO);
    let out = drain(&mut engine);
    let mut ranges: Vec<(u32, u32)> = sent_messages(&out)
        .into_iter()
        .filter_map(|(_, m)| match m {
            Message::Request { offset, length, .. } => Some((offset, offset + length)),
            _ => None,
        })
        .collect();
    ranges.sort();
    assert!(
        ranges.len() >= 2,
        "the segment is split over several peers: {ranges:?}"
    );
    assert_eq!(ranges.first().unwrap().0, 0);
    assert_eq!(ranges.last().unwrap().1, 100_000);
    assert!(
        ranges.windows(2).all(|w| w[0].1 == w[1].0),
        "contiguous, disjoint: {ranges:?}"
    );
}

proptest! {
    /// Whatever peers do (send honestly, corrupt, stall, leave): no CDN byte is requested twice
    /// and no byte is fetched twice unless verification failed, and nothing unverified reaches
    /// the player.
    #[test]
    fn no_byte_twice_and_no_unverified_delivery(
        behaviours in prop::collection::vec(0..4u8, 3),
        steps in 1..60usize,
    ) {
        let size = 100_000usize;
        let mut engine = setup(size, true, &[6]);
        connect_peer(&mut engine, PeerId(8), &[6], Duration::ZERO);
        connect_peer(&mut engine, PeerId(9), &[6], Duration::ZERO);
        drain(&mut engine);
        let good = content(6, size);
        engine.handle(Input::SegmentRequested(key(6)), Duration::ZERO);
        let mut now = Duration::ZERO;
        let mut requested = RangeSetCheck::default();
        let mut open_peer: Vec<(PeerId, u64, u64)> = Vec::new();
        let mut open_http: Vec<(RequestId, std::ops::Range<u64>)> = Vec::new();
        let mut delivered_data = None;
        let mut failed = false;
        for _ in 0..steps {
            for output in drain(&mut engine) {
                match output {
                    Output::SendToPeer { peer, bytes } => match Message::decode(&bytes).unwrap() {
                        Message::Request { offset, length, .. } => {
                            let r = u64::from(offset)..u64::from(offset) + u64::from(length);
                            open_peer.push((peer, r.start, r.end));
                        }
                        Message::Cancel { .. } => open_peer.retain(|(p, _, _)| *p != peer),
                        _ => {}
                    },
                    Output::HttpRequest { request, range, .. } => {
                        let r = range.unwrap_or(0..size as u64);
                        prop_assert!(failed || requested.add(r.clone()), "CDN range {r:?} requested twice");
                        open_http.push((request, r));
                    }
                    Output::Event(Event::IntegrityFailure(_)) => failed = true,
                    Output::Deliver { data, .. } => delivered_data = Some(data.to_vec()),
                    _ => {}
                }
            }
            if delivered_data.is_some() {
                break;
            }
            now += Duration::from_millis(100);
            // Each peer acts by its behaviour: 0 honest, 1 corrupt, 2 stalls, 3 leaves.
            if let Some((peer, start, end)) = open_peer.first().copied() {
                let index = (peer.0 - 7) as usize;
                let chunk_end = (start + 16_384).min(end);
                match behaviours[index] {
                    0 | 1 => {
                        let mut bytes = good.clone();
                        if behaviours[index] == 1 { bytes[start as usize] ^= 0xff; }
                        send_data(&mut engine, peer, 6, start..chunk_end, &bytes, now);
                        open_peer[0].1 = chunk_end;
                        if chunk_end == end { open_peer.remove(0); }
                    }
                    2 => open_peer.rotate_left(1),
                    _ => {
                        engine.handle(Input::PeerLeft(peer), now);
                        open_peer.retain(|(p, _, _)| *p != peer);
                    }
                }
            } else if let Some((request, range)) = open_http.pop() {
                engine.handle(Input::HttpData { request, bytes: &good[range.start as usize..range.end as usize] }, now);
                engine.handle(Input::HttpFinished(request), now);
            } else {
                now = engine.poll_timeout().unwrap_or(now).max(now);
                engine.handle_timeout(now);
            }
        }
        if let Some(data) = delivered_data {
            prop_assert!(data == good, "delivered bytes differ from the original");
            let stats = engine.stats();
            if !failed {
                prop_assert_eq!(stats.bytes_from_peers + stats.bytes_from_cdn, size as u64, "a byte was fetched twice");
            }
        }
    }
}

/// Tracks requested ranges; `add` is false if a range overlaps an earlier one.
#[derive(Default)]
struct RangeSetCheck(crate::ranges::RangeSet);

impl RangeSetCheck {
    fn add(&mut self, range: std::ops::Range<u64>) -> bool {
        let fresh = !self.0.overlaps(&range);
        self.0.insert(range);
        fresh
    }
}

/// Five live engines that all know each other's tickets; each requested segment 0 and now
/// sees segment 10 appear in the playlist. Returns which engines asked the CDN for it.
fn elect(engines: &mut [Engine], now: Duration) -> Vec<usize> {
    let pulls = |outputs: &[Output]| {
        outputs
            .iter()
            .any(|o| matches!(o, Output::HttpRequest { url, .. } if url.ends_with("/10.ts")))
    };
    let mut pullers = Vec::new();
    for (index, engine) in engines.iter_mut().enumerate() {
        if now.is_zero() {
            let listed: Vec<SegmentInfo> = (0..11).map(|s| info(s, 40_000, false)).collect();
            engine.handle(
                Input::Playlist {
                    rendition: 0,
                    live: true,
                    segments: &listed,
                },
                now,
            );
        } else {
            engine.handle_timeout(now);
        }
        let out = drain(engine);
        if pulls(&out) {
            pullers.push(index);
        }
    }
    pullers
}

#[test]
fn one_peer_per_neighbourhood_pulls_a_new_live_segment_and_a_backup_follows() {
    let mut engines: Vec<Engine> = (0..5u64)
        .map(|seed| {
            setup_with(
                Config {
                    seed,
                    ..Config::default()
                },
                true,
                40_000,
                false,
                &[],
            )
        })
        .collect();
    let tickets: Vec<u64> = engines.iter().map(|e| e.ticket).collect();
    for (index, engine) in engines.iter_mut().enumerate() {
        engine.handle(Input::SegmentRequested(key(0)), Duration::ZERO);
        for (other, ticket) in tickets.iter().enumerate().filter(|(o, _)| *o != index) {
            let peer = PeerId(100 + other as u64);
            connect_peer(engine, peer, &[], Duration::ZERO);
            let bytes = Message::Ticket(*ticket).encode();
            engine.handle(
                Input::PeerMessage {
                    peer,
                    bytes: &bytes,
                },
                Duration::ZERO,
            );
        }
        drain(engine);
    }
    let mut by_rank: Vec<usize> = (0..tickets.len()).collect();
    by_rank.sort_by_key(|&i| crate::wire::pull_rank(tickets[i], 10));
    assert_eq!(elect(&mut engines, Duration::ZERO), vec![by_rank[0]]);
    // Nobody announced it a segment duration later: one more seat.
    assert_eq!(elect(&mut engines, SEG), vec![by_rank[1]]);
}

#[test]
fn data_in_flight_after_an_absent_is_tolerated_and_the_request_is_cancelled() {
    let mut engine = setup(40_000, true, &[5]);
    engine.handle(Input::SegmentRequested(key(5)), Duration::ZERO);
    drain(&mut engine);
    let absent = Message::Absent { seq: 5 }.encode();
    engine.handle(
        Input::PeerMessage {
            peer: PEER,
            bytes: &absent,
        },
        Duration::from_millis(10),
    );
    let out = drain(&mut engine);
    assert!(sent_messages(&out).contains(&(PEER, Message::Cancel { seq: 5 })));
    // Asked again after the back-off, the peer's chunks of the first request still arrive.
    let later = Duration::from_millis(500);
    engine.handle_timeout(later);
    let out = drain(&mut engine);
    assert!(sent_messages(&out).contains(&(
        PEER,
        Message::Request {
            seq: 5,
            offset: 0,
            length: 40_000
        }
    )));
    let data = content(5, 40_000);
    send_data(&mut engine, PEER, 5, 16_384..32_768, &data, later);
    send_data(&mut engine, PEER, 5, 0..40_000, &data, later);
    let out = drain(&mut engine);
    assert!(
        !out.iter()
            .any(|o| matches!(o, Output::DisconnectPeer { .. })),
        "stale data is not a violation"
    );
    assert_eq!(delivered(&out), vec![(key(5), data)]);
}

proptest! {
    /// A peer that stalls after any number of chunks never makes the player wait when the CDN,
    /// delivering at the rate the engine expects, could have served the segment in time: the
    /// missing bytes are asked for early enough and the segment is delivered by its deadline.
    #[test]
    fn a_stalled_peer_never_makes_the_player_stall(
        size in 20_000..400_000usize,
        sent_share in 0.0..1.0f64,
        seq in 2..8u64,
    ) {
        let mut engine = setup(size, true, &[seq]);
        engine.handle(Input::SegmentRequested(key(seq)), Duration::ZERO);
        drain(&mut engine);
        let data = content(seq, size);
        let chunk = 16_384;
        let sent = ((size as f64 * sent_share) as usize / chunk * chunk).min(size - 1);
        let mut now = Duration::from_millis(100);
        for start in (0..sent).step_by(chunk) {
            send_data(&mut engine, PEER, seq, start as u64..(start + chunk).min(sent) as u64, &data, now);
        }
        drain(&mut engine);
        let deadline = SEG * seq as u32;
        let config = Config::default();
        let expected_cdn = |bytes: u64| {
            config.cdn_rtt + Duration::from_secs_f64(bytes as f64 * 8.0 / config.initial_bandwidth)
        };
        let mut pending: Vec<(RequestId, std::ops::Range<u64>)> = Vec::new();
        let mut delivered_at = None;
        while delivered_at.is_none() {
            // The CDN answers each request after the time the engine expects it to take.
            let next_http = pending
                .first()
                .map(|(_, range)| now + expected_cdn(range.end - range.start));
            let next = match (engine.poll_timeout(), next_http) {
                (Some(t), Some(h)) => t.min(h),
                (Some(t), None) => t,
                (None, Some(h)) => h,
                (None, None) => break,
            };
            now = next;
            if next_http == Some(now) {
                let (request, range) = pending.remove(0);
                let bytes = &data[range.start as usize..range.end as usize];
                engine.handle(Input::HttpData { request, bytes }, now);
                engine.handle(Input::HttpFinished(request), now);
            } else {
                engine.handle_timeout(now);
            }
            let out = drain(&mut engine);
            for (request, range) in http_requests(&out) {
                let range = range.unwrap_or(0..size as u64);
                prop_assert!(range.start >= sent as u64, "bytes already received are not refetched");
                pending.push((request, range));
            }
            if !delivered(&out).is_empty() {
                delivered_at = Some(now);
            }
        }
        let at = delivered_at.expect("the segment is delivered");
        prop_assert!(at <= deadline, "delivered at {at:?}, due at {deadline:?}");
    }
}
