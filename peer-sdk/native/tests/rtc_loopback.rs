//! Two real WebRTC peer connections in one process, over loopback UDP.

use std::time::{Duration, Instant};

use bytes::Bytes;
use peer_native::rtc::{Channel, LinkEvent, PeerLink, RtcFactory};
use sha2::{Digest, Sha256};

const CHUNK: usize = 16 * 1024;
const HIGH_WATER: usize = 1024 * 1024;

/// Connects an offerer and an answerer; returns both links with their open channels and the
/// time from offer creation to both channels open.
async fn connect(factory: &RtcFactory) -> ((PeerLink, Channel), (PeerLink, Channel), Duration) {
    let started = Instant::now();
    let offer = factory.create_offer().await.expect("offer");
    assert!(
        offer.sdp.contains("a=candidate:"),
        "candidates gathered into the offer"
    );
    assert!(offer.sdp.contains("127.0.0.1"), "loopback host candidate");
    let (answer_sdp, mut answerer) = factory.accept_offer(&offer.sdp).await.expect("answer");
    assert!(answer_sdp.contains("a=candidate:"));
    let mut offerer = offer
        .accept_answer(&answer_sdp)
        .await
        .expect("apply answer");
    let a = wait_open(&mut offerer).await;
    let b = wait_open(&mut answerer).await;
    let elapsed = started.elapsed();
    ((offerer, a), (answerer, b), elapsed)
}

async fn wait_open(link: &mut PeerLink) -> Channel {
    let wait = async {
        match link.next_event().await.expect("link events") {
            LinkEvent::Open(channel) => channel,
            other => panic!("unexpected event before open: {other:?}"),
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .expect("data channel opens within 10 s")
}

/// Sends `data` in chunks, waiting for the buffered amount to drain when it gets high.
async fn send_all(channel: Channel, data: Bytes) {
    for chunk in data.chunks(CHUNK) {
        if channel.buffered_amount().await > HIGH_WATER {
            channel.buffered_amount_low().await;
        }
        channel
            .send(Bytes::copy_from_slice(chunk))
            .await
            .expect("send");
    }
}

async fn receive_exactly(link: &mut PeerLink, len: usize) -> Vec<u8> {
    let mut received = Vec::with_capacity(len);
    while received.len() < len {
        match link.next_event().await.expect("link events") {
            LinkEvent::Message(bytes) => received.extend_from_slice(&bytes),
            other => panic!("unexpected event: {other:?}"),
        }
    }
    received
}

fn pattern(len: usize, seed: u8) -> Bytes {
    let mut hasher_state = Sha256::digest([seed]).to_vec();
    let mut data = Vec::with_capacity(len + 32);
    while data.len() < len {
        hasher_state = Sha256::digest(&hasher_state).to_vec();
        data.extend_from_slice(&hasher_state);
    }
    data.truncate(len);
    Bytes::from(data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn megabytes_cross_both_ways_byte_identical() {
    let factory = RtcFactory::loopback();
    let ((mut a_link, a), (mut b_link, b), _) = connect(&factory).await;
    assert_eq!(a.max_message_size(), 65_536);
    assert_eq!(b.max_message_size(), 65_536);

    // 10 MiB each way in release builds; 2 MiB in debug builds, where SCTP is slow and the
    // suite must stay short.
    const LEN: usize = if cfg!(debug_assertions) { 2 } else { 10 } * 1024 * 1024;
    let a_data = pattern(LEN, 1);
    let b_data = pattern(LEN, 2);
    let started = Instant::now();
    let send_a = tokio::spawn(send_all(a.clone(), a_data.clone()));
    let send_b = tokio::spawn(send_all(b.clone(), b_data.clone()));
    let (at_b, at_a) = tokio::join!(
        receive_exactly(&mut b_link, LEN),
        receive_exactly(&mut a_link, LEN)
    );
    let elapsed = started.elapsed();
    send_a.await.unwrap();
    send_b.await.unwrap();
    assert!(at_b == a_data[..], "a -> b bytes identical");
    assert!(at_a == b_data[..], "b -> a bytes identical");
    let mbit_per_s = (2 * LEN * 8) as f64 / elapsed.as_secs_f64() / 1e6;
    println!(
        "rtc: 2 x {} MiB in {:.2} s = {mbit_per_s:.0} Mbit/s total over one channel pair",
        LEN >> 20,
        elapsed.as_secs_f64()
    );
    a_link.close().await;
    b_link.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_channel_opens_quickly_on_loopback() {
    let factory = RtcFactory::loopback();
    let mut times = Vec::new();
    for _ in 0..5 {
        let ((a_link, a), (mut b_link, _b), elapsed) = connect(&factory).await;
        times.push(elapsed);
        a.send(Bytes::from_static(b"ping")).await.unwrap();
        match b_link.next_event().await {
            Some(LinkEvent::Message(m)) => assert_eq!(&m[..], b"ping"),
            other => panic!("expected the ping, got {other:?}"),
        }
        a_link.close().await;
        b_link.close().await;
    }
    times.sort();
    println!(
        "rtc: offer creation to data channel open, p50 {:?} (runs {times:?})",
        times[2]
    );
    assert!(times[2] < Duration::from_secs(3), "p50 {:?}", times[2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_one_side_reports_closed_on_the_other() {
    let factory = RtcFactory::loopback();
    let ((a_link, _a), (mut b_link, _b), _) = connect(&factory).await;
    a_link.close().await;
    let closed = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(event) = b_link.next_event().await {
            if matches!(event, LinkEvent::Closed) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(closed, Ok(true), "the remote side notices the close");
}
