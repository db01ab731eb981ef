//! WebRTC peer connections: offers and answers with every ICE candidate gathered (no trickle,
//! as WebTorrent), one ordered data channel per connection, its real maximum message size,
//! and buffered-amount backpressure reported to the core.

use crate::driver::Driver;
use crate::js::{self, get, get_f64};
use js_sys::{Function, Promise, Uint8Array};
use peer_sdk::{Input, PeerId};
use std::time::Duration;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    MessageEvent, RtcConfiguration, RtcDataChannel, RtcDataChannelEvent, RtcDataChannelType,
    RtcIceGatheringState, RtcPeerConnection, RtcPeerConnectionState, RtcSdpType,
    RtcSessionDescriptionInit,
};

/// The label of the data channel peers open to each other (as the native runtime).
const CHANNEL_LABEL: &str = "p2pvd";
/// The largest message when the browser does not tell (RFC 8841 default).
const DEFAULT_MAX_MESSAGE_SIZE: usize = 65_536;
/// Longest wait for ICE gathering; the SDP then carries the candidates found so far.
const GATHER_TIMEOUT: Duration = Duration::from_secs(3);
/// A connection whose channel has not opened by then is given up.
const OPEN_TIMEOUT: Duration = Duration::from_secs(20);

/// What a new peer connection needs from the settings.
#[derive(Clone)]
pub struct RtcSettings {
    ice_servers: JsValue,
    candidate_filter: Option<Function>,
}

/// One peer connection and its browser callbacks.
pub struct Peer {
    pc: RtcPeerConnection,
    channel: Option<RtcDataChannel>,
    rendition: u16,
    created: Duration,
    open: bool,
    handlers: Vec<Closure<dyn FnMut(JsValue)>>,
}

impl Peer {
    /// Bytes queued on the data channel, once it exists.
    pub fn buffered_amount(&self) -> Option<usize> {
        Some(self.channel.as_ref()?.buffered_amount() as usize)
    }

    /// Sends one message (dropped if the channel is not open).
    pub fn send(&self, bytes: &[u8]) {
        if let Some(channel) = &self.channel {
            // Test builds only: every payload byte this peer uploads is flipped.
            #[cfg(feature = "corrupt-uploads")]
            let corrupted = peer_sdk::wire::with_flipped_payload(bytes);
            #[cfg(feature = "corrupt-uploads")]
            let bytes = corrupted.as_slice();
            let _ = channel.send_with_u8_array(bytes);
        }
    }

    /// Closes the connection and detaches its callbacks (they stay allocated until dropped).
    pub fn close(&self) {
        if let Some(channel) = &self.channel {
            channel.set_onopen(None);
            channel.set_onmessage(None);
            channel.set_onclose(None);
            channel.set_onbufferedamountlow(None);
            channel.close();
        }
        self.pc.set_ondatachannel(None);
        self.pc.set_onconnectionstatechange(None);
        self.pc.close();
    }
}

fn new_connection(rtc: &RtcSettings) -> Option<RtcPeerConnection> {
    let config = RtcConfiguration::new();
    if rtc.ice_servers.is_object() {
        config.set_ice_servers(&rtc.ice_servers);
    }
    RtcPeerConnection::new_with_configuration(&config).ok()
}

/// Waits until ICE gathering completed (or [`GATHER_TIMEOUT`] passed), looking every 20 ms.
async fn gathered(pc: &RtcPeerConnection) {
    let start = js::now();
    while pc.ice_gathering_state() != RtcIceGatheringState::Complete
        && js::now().saturating_sub(start) < GATHER_TIMEOUT
    {
        let tick = Promise::new(&mut |resolve, _| {
            js::set_timeout(&resolve, Duration::from_millis(20));
        });
        let _ = JsFuture::from(tick).await;
    }
}

/// The local SDP once gathered, with only the candidates the integrator's filter keeps.
async fn local_sdp(rtc: &RtcSettings, pc: &RtcPeerConnection) -> Option<String> {
    gathered(pc).await;
    let sdp = pc.local_description()?.sdp();
    let Some(filter) = &rtc.candidate_filter else {
        return Some(sdp);
    };
    let kept: Vec<&str> = sdp
        .split("\r\n")
        .filter(|line| {
            !line.starts_with("a=candidate:")
                || filter
                    .call1(&JsValue::NULL, &JsValue::from_str(line))
                    .is_ok_and(|keep| keep.is_truthy())
        })
        .collect();
    Some(kept.join("\r\n"))
}

fn description(kind: RtcSdpType, sdp: &str) -> RtcSessionDescriptionInit {
    let description = RtcSessionDescriptionInit::new(kind);
    description.set_sdp(sdp);
    description
}

/// A new connection with its data channel and a complete offer SDP.
pub async fn create_offer(
    rtc: &RtcSettings,
) -> Option<(RtcPeerConnection, RtcDataChannel, String)> {
    let pc = new_connection(rtc)?;
    let channel = pc.create_data_channel(CHANNEL_LABEL);
    let made = async {
        let offer = JsFuture::from(pc.create_offer()).await.ok()?;
        let sdp = js::get_string(&offer, "sdp")?;
        JsFuture::from(pc.set_local_description(&description(RtcSdpType::Offer, &sdp)))
            .await
            .ok()?;
        local_sdp(rtc, &pc).await
    };
    match made.await {
        Some(sdp) => Some((pc, channel, sdp)),
        None => {
            pc.close();
            None
        }
    }
}

/// Answers a remote offer: the connection (its channel arrives with `datachannel`) and the SDP.
pub async fn accept_offer(rtc: &RtcSettings, offer: &str) -> Option<(RtcPeerConnection, String)> {
    let pc = new_connection(rtc)?;
    let made = async {
        let remote = description(RtcSdpType::Offer, offer);
        JsFuture::from(pc.set_remote_description(&remote))
            .await
            .ok()?;
        let answer = JsFuture::from(pc.create_answer()).await.ok()?;
        let sdp = js::get_string(&answer, "sdp")?;
        JsFuture::from(pc.set_local_description(&description(RtcSdpType::Answer, &sdp)))
            .await
            .ok()?;
        local_sdp(rtc, &pc).await
    };
    match made.await {
        Some(sdp) => Some((pc, sdp)),
        None => {
            pc.close();
            None
        }
    }
}

/// Applies a remote answer to one of our offers; `false` if the browser refused it.
pub async fn set_answer(pc: &RtcPeerConnection, answer: &str) -> bool {
    let remote = description(RtcSdpType::Answer, answer);
    JsFuture::from(pc.set_remote_description(&remote))
        .await
        .is_ok()
}

impl Driver {
    /// What peer connections need from the settings.
    pub fn rtc_settings(&self) -> RtcSettings {
        RtcSettings {
            ice_servers: self.settings.ice_servers.clone(),
            candidate_filter: self.settings.candidate_filter.clone(),
        }
    }

    /// Takes a negotiated connection in; the core hears of it when its channel opens.
    pub fn attach_peer(
        &mut self,
        pc: RtcPeerConnection,
        channel: Option<RtcDataChannel>,
        rendition: u16,
    ) {
        let peer = PeerId(self.next_peer);
        self.next_peer += 1;
        let this = self.this.clone();
        let on_state = Closure::<dyn FnMut(JsValue)>::new(move |_| {
            Driver::with(&this, |d| {
                let failed = d.peers.get(&peer).is_some_and(|p| {
                    matches!(
                        p.pc.connection_state(),
                        RtcPeerConnectionState::Failed | RtcPeerConnectionState::Closed
                    )
                });
                if failed {
                    d.peer_closed(peer);
                }
            });
        });
        pc.set_onconnectionstatechange(Some(on_state.as_ref().unchecked_ref()));
        let mut handlers = vec![on_state];
        if channel.is_none() {
            let this = self.this.clone();
            let on_channel = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
                if let Some(event) = event.dyn_ref::<RtcDataChannelEvent>() {
                    let channel = event.channel();
                    Driver::with(&this, |d| d.wire_channel(peer, channel));
                }
            });
            pc.set_ondatachannel(Some(on_channel.as_ref().unchecked_ref()));
            handlers.push(on_channel);
        }
        let link = Peer {
            pc,
            channel: None,
            rendition,
            created: js::now(),
            open: false,
            handlers,
        };
        self.peers.insert(peer, link);
        if let Some(channel) = channel {
            self.wire_channel(peer, channel);
        }
    }

    fn wire_channel(&mut self, peer: PeerId, channel: RtcDataChannel) {
        let low_threshold = self.settings.buffered_amount_low();
        let Some(link) = self.peers.get_mut(&peer) else {
            channel.close();
            return;
        };
        channel.set_binary_type(RtcDataChannelType::Arraybuffer);
        channel.set_buffered_amount_low_threshold(u32::try_from(low_threshold).unwrap_or(0));
        let this = self.this.clone();
        let on_open = Closure::<dyn FnMut(JsValue)>::new(move |_| {
            Driver::with(&this, |d| d.peer_opened(peer));
        });
        let this = self.this.clone();
        let on_message = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
            let Some(event) = event.dyn_ref::<MessageEvent>() else {
                return;
            };
            let bytes = Uint8Array::new(&event.data()).to_vec();
            Driver::with(&this, |d| {
                // A message can be dispatched before the channel's `open` event (the remote's
                // handshake right after it opened its end): it proves the channel open.
                d.peer_opened(peer);
                d.input(Input::PeerMessage {
                    peer,
                    bytes: &bytes,
                });
            });
        });
        let this = self.this.clone();
        let on_low = Closure::<dyn FnMut(JsValue)>::new(move |_| {
            Driver::with(&this, |d| {
                let buffered = d.peers.get(&peer).and_then(|p| p.channel.as_ref());
                if let Some(buffered) = buffered.map(|c| c.buffered_amount() as usize) {
                    d.input(Input::PeerBufferedAmountLow { peer, buffered });
                }
            });
        });
        let this = self.this.clone();
        let on_close = Closure::<dyn FnMut(JsValue)>::new(move |_| {
            Driver::with(&this, |d| d.peer_closed(peer));
        });
        channel.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        channel.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        channel.set_onbufferedamountlow(Some(on_low.as_ref().unchecked_ref()));
        channel.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        link.handlers
            .extend([on_open, on_message, on_low, on_close]);
        link.channel = Some(channel);
    }

    /// The channel to `peer` is open: the core learns of the peer (once).
    fn peer_opened(&mut self, peer: PeerId) {
        let Some(link) = self.peers.get_mut(&peer).filter(|link| !link.open) else {
            return;
        };
        link.open = true;
        let max_message_size = get_f64(&get(&link.pc, "sctp"), "maxMessageSize")
            .filter(|size| *size >= 1024.0)
            .map_or(DEFAULT_MAX_MESSAGE_SIZE, |size| size.min(1e9) as usize);
        let rendition = link.rendition;
        self.input(Input::PeerConnected {
            peer,
            rendition,
            max_message_size,
        });
    }

    /// The connection to a peer ended (closed by the remote, failed, or never opened).
    fn peer_closed(&mut self, peer: PeerId) {
        let was_open = self.peers.get(&peer).is_some_and(|p| p.open);
        self.drop_peer(peer);
        let peers_left = self.peers.iter().count();
        self.signaling.peer_lost(js::now(), peers_left);
        if was_open {
            self.input(Input::PeerLeft(peer));
        }
    }

    /// Gives up connections whose channel did not open in time.
    pub fn drop_unopened_peers(&mut self, now: Duration) {
        let stale: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| !p.open && now.saturating_sub(p.created) > OPEN_TIMEOUT)
            .map(|(id, _)| *id)
            .collect();
        for peer in stale {
            self.peer_closed(peer);
        }
    }
}
