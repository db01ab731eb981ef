//! What goes into the engine ([`Input`]) and what comes out of it ([`Output`], [`Event`]).

use crate::integrity::Digest;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

/// Identifies one segment: the rendition (swarm) it belongs to and its media sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentKey {
    /// Index of the rendition in the stream, as the driver numbers them.
    pub rendition: u16,
    /// Media sequence number of the segment.
    pub seq: u64,
}

/// What the engine knows about one segment from the playlist (and its hash list, if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Which segment.
    pub key: SegmentKey,
    /// Where the CDN serves it.
    pub url: String,
    /// Media time at which the segment starts playing.
    pub start: Duration,
    /// Playback duration of the segment.
    pub duration: Duration,
    /// Trusted SHA-256 and size from the stream's hash list, if it publishes one.
    pub hash: Option<crate::integrity::SegmentHash>,
}

/// The driver's handle for one remote peer (stable for that remote; a banned id stays banned).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerId(pub u64);

/// Identifies one HTTP request the engine asked the driver to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// Identifies one digest the engine asked the driver to compute
/// (see [`crate::Config::external_digest`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DigestJob(pub u64);

/// What the player is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaybackState {
    /// Waiting for the first segment.
    Starting,
    /// The playhead advances in real time.
    Playing,
    /// Paused by the viewer.
    Paused,
    /// The buffer ran dry; playback waits for data.
    Stalled,
}

/// An input to [`crate::Engine::handle`].
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// The (media) playlist of a rendition was loaded or refreshed; new segments are added.
    Playlist {
        /// The rendition the playlist belongs to.
        rendition: u16,
        /// Whether the stream is live (a sliding window) rather than VOD.
        live: bool,
        /// The segments it lists.
        segments: &'a [SegmentInfo],
    },
    /// The player asked for a segment; answered by [`Output::Deliver`].
    SegmentRequested(SegmentKey),
    /// The player no longer wants a segment it requested (e.g. after an ABR switch).
    SegmentAbandoned(SegmentKey),
    /// The playhead moved or the playback state changed.
    Playhead {
        /// Current media time.
        position: Duration,
        /// Current playback state.
        state: PlaybackState,
    },
    /// A data channel to a peer opened.
    PeerConnected {
        /// The remote peer.
        peer: PeerId,
        /// The rendition (swarm) the connection belongs to.
        rendition: u16,
        /// The channel's maximum message size in bytes.
        max_message_size: usize,
    },
    /// A peer sent one data-channel message.
    PeerMessage {
        /// The sender.
        peer: PeerId,
        /// The message bytes.
        bytes: &'a [u8],
    },
    /// The channel's buffered amount fell to `buffered` bytes (the channel's `bufferedamountlow`).
    PeerBufferedAmountLow {
        /// The peer whose channel drained.
        peer: PeerId,
        /// Bytes still buffered.
        buffered: usize,
    },
    /// The channel to a peer closed.
    PeerLeft(PeerId),
    /// Body bytes of an HTTP request arrived (in order).
    HttpData {
        /// The request.
        request: RequestId,
        /// The next bytes of the body.
        bytes: &'a [u8],
    },
    /// An HTTP request finished successfully.
    HttpFinished(RequestId),
    /// An HTTP request failed (network error, non-2xx status, truncated body).
    HttpFailed(RequestId),
    /// A trusted hash of a segment arrived after its playlist: agreed at the tracker by enough
    /// independent reporters, or from a hash list loaded late.
    TrackerHash {
        /// Which segment.
        key: SegmentKey,
        /// Its SHA-256.
        sha256: Digest,
        /// Its size in bytes, when the source states it (the tracker does not: a matching
        /// digest fixes the size anyway; `None` keeps the size the engine plans with).
        size: Option<u64>,
    },
    /// The driver computed the SHA-256 asked for by [`Output::ComputeDigest`].
    DigestComputed {
        /// The job it answers.
        job: DigestJob,
        /// SHA-256 of the job's bytes.
        sha256: Digest,
    },
}

/// An action the driver must carry out, from [`crate::Engine::poll_output`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send one data-channel message to a peer.
    SendToPeer {
        /// The receiver.
        peer: PeerId,
        /// The message.
        bytes: Vec<u8>,
    },
    /// Close the channel to a peer (its id may be banned; see [`Event::PeerBanned`]).
    DisconnectPeer {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: DisconnectReason,
    },
    /// Start an HTTP GET; report with [`Input::HttpData`] / [`Input::HttpFinished`] / [`Input::HttpFailed`].
    HttpRequest {
        /// The id to report under.
        request: RequestId,
        /// The URL.
        url: String,
        /// Byte range (`Range: bytes=start-(end-1)`), or `None` for the whole resource.
        range: Option<Range<u64>>,
    },
    /// Abort an HTTP request; report nothing more for it.
    HttpAbort(RequestId),
    /// Hand a complete, verified segment to the player.
    Deliver {
        /// Which segment.
        key: SegmentKey,
        /// Its bytes.
        data: Arc<[u8]>,
    },
    /// Join the swarm of a rendition at the tracker (announce).
    Announce {
        /// The rendition.
        rendition: u16,
    },
    /// Report to the tracker the hash of a segment this peer fetched entirely from the CDN.
    ReportHash {
        /// Which segment.
        key: SegmentKey,
        /// Its SHA-256.
        sha256: Digest,
        /// Its size.
        size: u64,
    },
    /// Ask the tracker for the agreed hash of a segment; answered by [`Input::TrackerHash`].
    QueryHash(SegmentKey),
    /// Compute the SHA-256 of `data` (e.g. with the browser's async `crypto.subtle`) and answer
    /// with [`Input::DigestComputed`]. Only emitted when [`crate::Config::external_digest`] is set.
    ComputeDigest {
        /// The id to answer under.
        job: DigestJob,
        /// The bytes to hash.
        data: Arc<[u8]>,
    },
    /// Something an integrator may show or log.
    Event(Event),
}

/// Why the engine closes a peer connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The peer sent a malformed or out-of-protocol message.
    ProtocolViolation,
    /// The peer speaks an incompatible protocol version.
    IncompatibleVersion,
    /// The peer sent data that failed integrity verification.
    CorruptData,
    /// The connection cap was reached and this peer was the least useful.
    LeastUseful,
    /// The peer is banned.
    Banned,
}

/// Where the bytes of a delivered segment came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentSource {
    /// Entirely from the CDN.
    Cdn,
    /// Entirely from peers.
    Peers,
    /// Partly from peers, the rest by HTTP range from the CDN.
    Mixed,
}

/// A notable happening, for dashboards and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A segment was delivered to the player.
    SegmentDelivered {
        /// Which segment.
        key: SegmentKey,
        /// Where its bytes came from.
        source: SegmentSource,
        /// Its size.
        bytes: u64,
        /// Time from the player's request to delivery.
        latency: Duration,
    },
    /// A peer completed the handshake.
    PeerConnected(PeerId),
    /// A peer connection ended.
    PeerDisconnected(PeerId),
    /// A segment assembled from peers did not match its trusted hash.
    IntegrityFailure(SegmentKey),
    /// A peer was identified as the sender of corrupt data and banned.
    PeerBanned(PeerId),
}
