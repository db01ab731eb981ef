//! Shared helpers of the integration tests: a tracker in-process and real WebSocket clients,
//! optionally bound to a chosen loopback source address.
#![allow(dead_code)]

pub mod geoip;
pub mod redis;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tracker::{Config, Tracker};

/// How long a test waits for a message that should arrive.
pub const PATIENCE: Duration = Duration::from_secs(5);

/// Starts a tracker on an ephemeral loopback port, after `adjust` tunes its config.
pub async fn start(adjust: impl FnOnce(&mut Config)) -> Tracker {
    let mut config = Config::with_listen("127.0.0.1:0".parse().unwrap());
    adjust(&mut config);
    let listener = tokio::net::TcpListener::bind(config.listen).await.unwrap();
    Tracker::start_on(listener, config).await.unwrap()
}

/// A 20-byte id as the binary string clients send: `tag` then the byte `n` repeated.
pub fn id(tag: u8, n: u8) -> String {
    let mut bytes = [n; 20];
    bytes[0] = tag;
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// A WebSocket client of the tracker.
pub struct Client {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Client {
    /// Connects from 127.0.0.1.
    pub async fn connect(tracker: SocketAddr) -> Self {
        Self::connect_from(tracker, "127.0.0.1".parse().unwrap()).await
    }

    /// Connects with the socket bound to `source` (any 127.x.y.z works on Linux).
    pub async fn connect_from(tracker: SocketAddr, source: IpAddr) -> Self {
        Self::try_connect_with_headers(tracker, source, &[])
            .await
            .unwrap()
    }

    /// Connects from `source` with extra request headers (e.g. `X-Forwarded-For`); the error
    /// is the tracker's refusal (e.g. HTTP 429).
    pub async fn try_connect_with_headers(
        tracker: SocketAddr,
        source: IpAddr,
        headers: &[(&'static str, &str)],
    ) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        Self::try_connect_to(tracker, source, "/", headers).await
    }

    /// Connects from `source` to `path` (e.g. `/?token=...`) with extra request headers.
    pub async fn try_connect_to(
        tracker: SocketAddr,
        source: IpAddr,
        path: &str,
        headers: &[(&'static str, &str)],
    ) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(source, 0)).unwrap();
        let stream = socket.connect(tracker).await.unwrap();
        let mut request = format!("ws://{tracker}{path}")
            .into_client_request()
            .unwrap();
        for (name, value) in headers {
            request.headers_mut().append(*name, value.parse().unwrap());
        }
        let (socket, _) =
            tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream)).await?;
        Ok(Self { socket })
    }

    /// Sends a JSON value.
    pub async fn send(&mut self, message: &Value) {
        self.send_text(&message.to_string()).await;
    }

    /// Sends raw text.
    pub async fn send_text(&mut self, text: &str) {
        self.socket.send(Message::text(text)).await.unwrap();
    }

    /// Sends a raw frame.
    pub async fn send_message(&mut self, message: Message) {
        self.socket.send(message).await.unwrap();
    }

    /// The next JSON message, failing the test after [`PATIENCE`].
    pub async fn recv(&mut self) -> Value {
        self.try_recv(PATIENCE)
            .await
            .expect("expected a message from the tracker")
    }

    /// The next JSON message within `wait`, if any (`None` also when the socket closed).
    pub async fn try_recv(&mut self, wait: Duration) -> Option<Value> {
        loop {
            let message = tokio::time::timeout(wait, self.socket.next())
                .await
                .ok()??
                .ok()?;
            match message {
                Message::Text(text) => return Some(serde_json::from_str(&text).unwrap()),
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    /// Whether the tracker closed the connection within `wait`.
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.socket.next()).await {
                Err(_) => return false,
                Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => return true,
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// The close code the tracker sent within `wait` (`None`: no close frame arrived).
    pub async fn close_code(&mut self, wait: Duration) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.socket.next()).await {
                Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| f.code.into()),
                Ok(Some(Ok(_))) => continue,
                _ => return None,
            }
        }
    }

    /// Announces to `info_hash` as `peer_id` with `offers` offers (ids `offer_id(k)`).
    pub async fn announce(&mut self, info_hash: &str, peer_id: &str, offers: usize) -> Value {
        self.send(&announce(info_hash, peer_id, offers)).await;
        self.recv_action_reply().await
    }

    /// Waits for the announce reply (skipping relayed offers that may arrive first).
    pub async fn recv_action_reply(&mut self) -> Value {
        loop {
            let message = self.recv().await;
            if message.get("interval").is_some() || message.get("failure reason").is_some() {
                return message;
            }
        }
    }

    /// Closes the connection.
    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}

/// The offer id of offer `k` of peer `peer_tag`.
pub fn offer_id(peer_tag: u8, k: u8) -> String {
    id(0xF0, peer_tag.wrapping_mul(16).wrapping_add(k))
}

/// An announce with `offers` distinct offers, as the `bittorrent-tracker` client sends it.
pub fn announce(info_hash: &str, peer_id: &str, offers: usize) -> Value {
    let tag = peer_id.chars().nth(1).map_or(0, |c| c as u32 as u8);
    let offers: Vec<Value> = (0..offers)
        .map(|k| {
            json!({
                "offer": {"type": "offer", "sdp": format!("v=0\r\no=- {k} 2 IN IP4 127.0.0.1\r\n")},
                "offer_id": offer_id(tag, k as u8),
            })
        })
        .collect();
    json!({
        "action": "announce", "info_hash": info_hash, "peer_id": peer_id, "event": "started",
        "numwant": offers.len(), "uploaded": 0, "downloaded": 0, "left": 1000, "offers": offers,
    })
}

/// The answer a receiving peer sends back for a relayed offer.
pub fn answer(info_hash: &str, peer_id: &str, offer: &Value) -> Value {
    json!({
        "action": "announce", "info_hash": info_hash, "peer_id": peer_id,
        "to_peer_id": offer["peer_id"], "offer_id": offer["offer_id"],
        "answer": {"type": "answer", "sdp": format!("v=0\r\nanswer-from-{}\r\n", peer_id.len())},
    })
}

/// The HTTP status with which the tracker refused a WebSocket upgrade; panics if it was accepted.
pub fn refusal_status(attempt: Result<Client, tokio_tungstenite::tungstenite::Error>) -> u16 {
    match attempt {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("expected an HTTP refusal, got {other:?}"),
        Ok(_) => panic!("expected an HTTP refusal, the connection was accepted"),
    }
}

/// Reads a counter or gauge from the tracker's `/metrics` over real HTTP.
pub async fn metric(tracker: SocketAddr, name_and_labels: &str) -> f64 {
    let body = http_get(tracker, "/metrics").await.1;
    body.lines()
        .find_map(|line| line.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// A plain HTTP/1.1 GET: `(status code, body)`.
pub async fn http_get(tracker: SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(tracker).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> SocketAddr {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap()
}

/// Waits (at most 10 s) until something listens on `addr`.
pub async fn wait_for_listener(addr: SocketAddr) {
    for _ in 0..100 {
        if TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the tracker did not listen on {addr}");
}
