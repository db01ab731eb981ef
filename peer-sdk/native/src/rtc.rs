//! WebRTC peer connections with one ordered, reliable data channel (the `webrtc` crate).
//!
//! Signaling follows WebTorrent clients: ICE candidates are gathered completely before an offer or
//! answer is handed out, so the SDP carries every candidate and no trickle messages are needed.
//! [`RtcFactory::loopback`] restricts candidates to host candidates on 127.0.0.1 (no STUN, no
//! mDNS), which is what tests and single-machine swarms use.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, watch};
use webrtc::api::setting_engine::SettingEngine;
use webrtc::api::{API, APIBuilder};
use webrtc::data_channel::RTCDataChannel;
use webrtc::data_channel::data_channel_message::DataChannelMessage;
use webrtc::dtls::crypto::Certificate;
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice::network_type::NetworkType;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::certificate::RTCCertificate;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;

/// The label of the data channel peers open to each other.
pub const CHANNEL_LABEL: &str = "p2pvd";

/// The largest message a data channel accepts when the SDP does not say (RFC 8841).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 65_536;

/// Buffered bytes under which a channel signals that it can take more data. Well below the
/// core's default `max_buffered_amount` (64 KiB), so that its uploads resume before the channel
/// runs dry.
pub const BUFFERED_AMOUNT_LOW: usize = 16 * 1024;

/// How many received messages may wait for the application before the channel stops reading
/// (and SCTP flow control slows the sender down).
const RECEIVE_QUEUE: usize = 64;

/// How long ICE waits for a silent peer before the connection counts as failed.
const ICE_FAILED_AFTER: Duration = Duration::from_secs(5);

/// Answers a factory negotiates at once (from the answer until the data channel opens or the
/// connection fails); further offers wait their turn. Handshakes (DTLS, SCTP) are CPU work: when
/// many viewers in one process meet at once, hundreds of them sharing the CPU fairly would all
/// finish late, while a few at a time finish early one after another.
const MAX_NEGOTIATING_ANSWERS: usize = 8;

/// Errors of the WebRTC layer.
#[derive(Debug, thiserror::Error)]
pub enum RtcError {
    /// The WebRTC stack refused an operation (bad SDP, closed connection, ...).
    #[error("webrtc: {0}")]
    Webrtc(#[from] webrtc::Error),
    /// ICE gathering ended without a local description.
    #[error("no local description after ICE gathering")]
    NoLocalDescription,
}

/// Builds peer connections that share one configuration and one DTLS certificate (as a
/// browser shares one per origin): a new key pair per connection would only cost CPU, since
/// peers authenticate each other by the fingerprint in the SDP, whichever certificate it is.
pub struct RtcFactory {
    api: API,
    certificate: Option<RTCCertificate>,
    negotiating: Arc<Semaphore>,
}

impl RtcFactory {
    /// Peer connections that use only host candidates on the loopback address 127.0.0.1 over UDP:
    /// no STUN or TURN servers, no mDNS names.
    pub fn loopback() -> Self {
        let mut settings = SettingEngine::default();
        settings.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
        settings.set_network_types(vec![NetworkType::Udp4]);
        settings.set_include_loopback_candidate(true);
        settings.set_ip_filter(Box::new(|ip: IpAddr| ip.is_loopback()));
        settings.set_ice_timeouts(Some(ICE_FAILED_AFTER), Some(ICE_FAILED_AFTER), None);
        let api = APIBuilder::new().with_setting_engine(settings).build();
        Self {
            api,
            certificate: shared_certificate(),
            negotiating: Arc::new(Semaphore::new(MAX_NEGOTIATING_ANSWERS)),
        }
    }

    /// Creates a peer connection with a data channel and returns its offer, once every ICE
    /// candidate has been gathered into it.
    pub async fn create_offer(&self) -> Result<PendingOffer, RtcError> {
        let pc = self.new_connection().await?;
        let (events_tx, events) = mpsc::channel(RECEIVE_QUEUE);
        watch_connection(&pc, events_tx.clone(), Turn::none());
        let channel = pc.create_data_channel(CHANNEL_LABEL, None).await?;
        wire_channel(&pc, channel, events_tx, Turn::none());
        let offer = pc.create_offer(None).await?;
        let sdp = set_local_and_gather(&pc, offer).await?;
        Ok(PendingOffer {
            sdp,
            link: PeerLink { pc, events },
        })
    }

    /// Accepts a remote offer: returns the answer SDP (with all candidates) and the link, whose
    /// data channel opens once the offerer has applied the answer. Waits while the factory
    /// already negotiates [`MAX_NEGOTIATING_ANSWERS`] answers.
    pub async fn accept_offer(&self, offer_sdp: &str) -> Result<(String, PeerLink), RtcError> {
        let turn = Turn::take(&self.negotiating).await;
        let pc = self.new_connection().await?;
        let (events_tx, events) = mpsc::channel(RECEIVE_QUEUE);
        watch_connection(&pc, events_tx.clone(), turn.clone());
        let weak_pc = Arc::downgrade(&pc);
        pc.on_data_channel(Box::new(move |channel| {
            if let Some(pc) = weak_pc.upgrade() {
                wire_channel(&pc, channel, events_tx.clone(), turn.clone());
            }
            Box::pin(async {})
        }));
        let link = PeerLink { pc, events };
        link.pc
            .set_remote_description(RTCSessionDescription::offer(offer_sdp.to_owned())?)
            .await?;
        let answer = link.pc.create_answer(None).await?;
        let sdp = set_local_and_gather(&link.pc, answer).await?;
        Ok((sdp, link))
    }

    async fn new_connection(&self) -> Result<Arc<RTCPeerConnection>, RtcError> {
        let config = RTCConfiguration {
            certificates: self.certificate.iter().cloned().collect(),
            ..RTCConfiguration::default()
        };
        Ok(Arc::new(self.api.new_peer_connection(config).await?))
    }
}

/// A self-signed ECDSA P-256 certificate the factory uses for a year;
/// `None` if generation fails, and then each connection makes its own.
fn shared_certificate() -> Option<RTCCertificate> {
    let certificate = Certificate::generate_self_signed(vec!["peer-native".to_owned()]).ok()?;
    let expires = SystemTime::now() + Duration::from_secs(365 * 24 * 3600);
    Some(RTCCertificate::from_existing(certificate, expires))
}

/// Sets the local description and waits until ICE gathering completes; returns the full SDP.
async fn set_local_and_gather(
    pc: &RTCPeerConnection,
    description: RTCSessionDescription,
) -> Result<String, RtcError> {
    let mut gathered = pc.gathering_complete_promise().await;
    pc.set_local_description(description).await?;
    let _ = gathered.recv().await;
    let local = pc.local_description().await;
    local.map(|d| d.sdp).ok_or(RtcError::NoLocalDescription)
}

/// A place among the answers a factory negotiates at once, held from the answer until the data
/// channel opens or the connection ends, and at most for [`ICE_FAILED_AFTER`] twice (a
/// connection dropped half-way must not keep it). Clones share the place.
#[derive(Clone)]
struct Turn(Option<Arc<Mutex<Option<OwnedSemaphorePermit>>>>);

impl Turn {
    /// No place: offers are not limited.
    fn none() -> Self {
        Self(None)
    }

    /// Waits for a place.
    async fn take(places: &Arc<Semaphore>) -> Self {
        let Ok(permit) = Arc::clone(places).acquire_owned().await else {
            return Self::none();
        };
        let held = Arc::new(Mutex::new(Some(permit)));
        let weak = Arc::downgrade(&held);
        tokio::spawn(async move {
            tokio::time::sleep(2 * ICE_FAILED_AFTER).await;
            if let Some(held) = weak.upgrade() {
                Turn(Some(held)).end();
            }
        });
        Self(Some(held))
    }

    /// Gives the place back (once; later calls do nothing).
    fn end(&self) {
        if let Some(held) = &self.0 {
            held.lock().unwrap_or_else(PoisonError::into_inner).take();
        }
    }
}

/// Reports the end of the connection as [`LinkEvent::Closed`] (and ends its `turn`).
fn watch_connection(pc: &RTCPeerConnection, events: mpsc::Sender<LinkEvent>, turn: Turn) {
    pc.on_peer_connection_state_change(Box::new(move |state| {
        let events = events.clone();
        let turn = turn.clone();
        Box::pin(async move {
            if matches!(
                state,
                RTCPeerConnectionState::Failed
                    | RTCPeerConnectionState::Closed
                    | RTCPeerConnectionState::Disconnected
            ) {
                turn.end();
                let _ = events.send(LinkEvent::Closed).await;
            }
        })
    }));
}

/// Forwards a data channel's open (ending the negotiation's `turn`), messages and close to the
/// link's events.
fn wire_channel(
    pc: &Arc<RTCPeerConnection>,
    channel: Arc<RTCDataChannel>,
    events: mpsc::Sender<LinkEvent>,
    turn: Turn,
) {
    let on_open = events.clone();
    let opened = Arc::clone(&channel);
    let weak_pc = Arc::downgrade(pc);
    // Messages may arrive while the open handler still prepares the channel's handle: they
    // wait until `Open` has been reported, so the owner sees the remote's first message.
    let (open_reported, open_seen) = watch::channel(false);
    channel.on_open(Box::new(move || {
        turn.end();
        Box::pin(async move {
            let Some(pc) = weak_pc.upgrade() else { return };
            let handle = Channel::new(&pc, opened).await;
            let _ = on_open.send(LinkEvent::Open(handle)).await;
            open_reported.send_replace(true);
        })
    }));
    let on_message = events.clone();
    channel.on_message(Box::new(move |message: DataChannelMessage| {
        let on_message = on_message.clone();
        let mut open_seen = open_seen.clone();
        Box::pin(async move {
            if open_seen.wait_for(|open| *open).await.is_ok() {
                let _ = on_message.send(LinkEvent::Message(message.data)).await;
            }
        })
    }));
    channel.on_close(Box::new(move || {
        let events = events.clone();
        Box::pin(async move {
            let _ = events.send(LinkEvent::Closed).await;
        })
    }));
}

/// An offer whose peer connection waits for the remote answer.
pub struct PendingOffer {
    /// The offer SDP, including every gathered ICE candidate.
    pub sdp: String,
    link: PeerLink,
}

impl PendingOffer {
    /// Applies the remote answer; the data channel opens when the connection is up.
    pub async fn accept_answer(self, answer_sdp: &str) -> Result<PeerLink, RtcError> {
        let answer = RTCSessionDescription::answer(answer_sdp.to_owned())?;
        self.link.pc.set_remote_description(answer).await?;
        Ok(self.link)
    }

    /// Closes the unanswered connection.
    pub async fn close(self) {
        self.link.close().await;
    }
}

/// What happens on a peer link.
#[derive(Debug)]
pub enum LinkEvent {
    /// The data channel is open; the handle sends on it.
    Open(Channel),
    /// A binary message arrived.
    Message(Bytes),
    /// The channel or the connection closed or failed; no more events follow that matter.
    Closed,
}

/// One peer connection and the events of its data channel.
pub struct PeerLink {
    pc: Arc<RTCPeerConnection>,
    events: mpsc::Receiver<LinkEvent>,
}

impl PeerLink {
    /// The next event, or `None` when the link is gone.
    pub async fn next_event(&mut self) -> Option<LinkEvent> {
        self.events.recv().await
    }

    /// Closes the peer connection.
    pub async fn close(&self) {
        let _ = self.pc.close().await;
    }
}

impl std::fmt::Debug for PeerLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerLink")
            .field("state", &self.pc.connection_state())
            .finish()
    }
}

/// The sending side of an open data channel. Cheap to clone.
#[derive(Clone)]
pub struct Channel {
    channel: Arc<RTCDataChannel>,
    max_message_size: usize,
    buffered_low: Arc<Notify>,
}

impl Channel {
    async fn new(pc: &RTCPeerConnection, channel: Arc<RTCDataChannel>) -> Self {
        let remote_sdp = pc.remote_description().await.map(|d| d.sdp);
        let max_message_size = max_message_size(remote_sdp.as_deref().unwrap_or(""));
        let buffered_low = Arc::new(Notify::new());
        channel
            .set_buffered_amount_low_threshold(BUFFERED_AMOUNT_LOW)
            .await;
        let notify = Arc::clone(&buffered_low);
        channel
            .on_buffered_amount_low(Box::new(move || {
                notify.notify_waiters();
                Box::pin(async {})
            }))
            .await;
        Self {
            channel,
            max_message_size,
            buffered_low,
        }
    }

    /// The largest message this channel may send, from the remote's `a=max-message-size`.
    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// Sends one binary message (at most [`Channel::max_message_size`] bytes).
    pub async fn send(&self, message: Bytes) -> Result<(), RtcError> {
        self.channel.send(&message).await?;
        Ok(())
    }

    /// Bytes queued on the channel and not yet handed to the network.
    pub async fn buffered_amount(&self) -> usize {
        self.channel.buffered_amount().await
    }

    /// Waits until the buffered amount is at most [`BUFFERED_AMOUNT_LOW`].
    pub async fn buffered_amount_low(&self) {
        loop {
            let notified = self.buffered_low.notified();
            if self.buffered_amount().await <= BUFFERED_AMOUNT_LOW {
                return;
            }
            notified.await;
        }
    }

    /// Closes the data channel.
    pub async fn close(&self) {
        let _ = self.channel.close().await;
    }
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("label", &self.channel.label())
            .field("max_message_size", &self.max_message_size)
            .finish()
    }
}

/// The largest message we may send, given the remote SDP: its `a=max-message-size` (0 means no
/// limit), else the RFC 8841 default, and never above what this stack sends by default.
pub fn max_message_size(remote_sdp: &str) -> usize {
    let advertised = remote_sdp
        .lines()
        .find_map(|line| line.trim().strip_prefix("a=max-message-size:"))
        .and_then(|value| value.trim().parse::<usize>().ok());
    match advertised {
        Some(0) | None => DEFAULT_MAX_MESSAGE_SIZE,
        Some(size) => size.min(DEFAULT_MAX_MESSAGE_SIZE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_message_size_follows_the_remote_sdp() {
        assert_eq!(
            max_message_size("v=0\r\na=max-message-size:16384\r\n"),
            16384
        );
        assert_eq!(max_message_size("v=0\r\n"), DEFAULT_MAX_MESSAGE_SIZE);
        assert_eq!(max_message_size("a=max-message-size:0\r\n"), 65_536);
        assert_eq!(max_message_size("a=max-message-size:262144\r\n"), 65_536);
        assert_eq!(max_message_size("a=max-message-size:junk\r\n"), 65_536);
    }
}
