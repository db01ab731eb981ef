/**
 * Peer-assisted HLS delivery in the browser. `P2pMedia` wraps the WebAssembly engine (the
 * same sans-IO core as the native runtime) and applies the integrator's policy; `hlsLoaders`
 * and `registerShakaScheme` connect it to hls.js and Shaka Player.
 */
import init, { P2p } from "./engine/peer_wasm.js";

export { hlsLoaders } from "./hlsjs.js";
export { registerShakaScheme } from "./shaka.js";

/** What to do on a metered or cellular connection (Network Information API). */
export type MeteredPolicy = "p2p" | "download-only" | "off";

/** Configuration of {@link P2pMedia.create}. Every field is optional except `trackers`. */
export interface P2pConfig {
  /** WebTorrent tracker WebSocket URLs, e.g. `["wss://tracker.example.com/"]`. */
  trackers: string[];
  /** `RTCConfiguration.iceServers` (STUN/TURN). Default: none (host candidates only). */
  iceServers?: RTCIceServer[];
  /** Stream id shared by every URL of the stream (tokenised or multi-CDN URLs). Default: the master playlist URL without query. */
  swarmId?: string;
  /** Segments due within this many seconds come from the CDN unless a peer finishes in time. Default 1.5. */
  urgentWindow?: number;
  /** Segments due within this many seconds are prefetched from peers. Default 30. */
  p2pWindow?: number;
  /** Upload cap in bytes per second. Default: unlimited. */
  uploadLimit?: number;
  /** Whether this viewer uploads to others. Default true. */
  upload?: boolean;
  /** Set false to turn P2P off entirely (every request goes to the CDN). Default true. */
  p2p?: boolean;
  /** Policy on metered or cellular connections. Default `"download-only"`. */
  onMetered?: MeteredPolicy;
  /** Trusted hashes: `"hash-list"` (a sidecar next to each media playlist, see PROTOCOL.md) or `"off"`. Default `"hash-list"`. */
  integrity?: "hash-list" | "off";
  /** Appended to the media playlist URL (without query) to find its hash list. Default `".hashes"`. */
  hashListSuffix?: string;
  /** WebRTC offers sent with each announce (1-10). Default 5. */
  offersPerAnnounce?: number;
  /** Most peer connections. Default 20. */
  maxPeers?: number;
  /** Keeps or drops each local ICE candidate line (`a=candidate:...`) before it is sent. */
  candidateFilter?: (candidate: string) => boolean;
}

/** Where a delivered segment came from. */
export type SegmentSource = "cdn" | "peers" | "mixed";

/** Events and their details. */
export interface P2pEvents {
  /** A segment was handed to the player. */
  "segment-loaded": { rendition: number; sequence: number; source: SegmentSource; bytes: number; latencyMs: number };
  /** A peer completed the handshake. */
  "peer-connected": { peer: number };
  /** A peer connection ended. */
  "peer-closed": { peer: number };
  /** Peer data for a segment failed verification; it is refetched from the CDN. */
  "integrity-failure": { rendition: number; sequence: number };
  /** A peer that sent corrupt data was banned. */
  "peer-banned": { peer: number };
}

/** Running totals. */
export interface P2pStats {
  /** Whether P2P runs (false: turned off by config or metered policy). */
  p2p: boolean;
  bytesFromCdn: number;
  bytesFromPeers: number;
  bytesUploaded: number;
  segmentsFromCdn: number;
  segmentsFromPeers: number;
  segmentsMixed: number;
  cdnRequests: number;
  integrityFailures: number;
  peersBanned: number;
  peersConnected: number;
  /** Share of received bytes that came from peers (0..1). */
  offload: number;
}

type Listener<K extends keyof P2pEvents> = (detail: P2pEvents[K]) => void;

interface NetworkInformation {
  type?: string;
  saveData?: boolean;
}

/** The effective P2P mode for this page's connection. */
function meteredMode(policy: MeteredPolicy): MeteredPolicy {
  const connection = (globalThis.navigator as { connection?: NetworkInformation } | undefined)?.connection;
  const metered = !!connection && (connection.saveData === true || connection.type === "cellular");
  return metered ? policy : "p2p";
}

let loaded: Promise<unknown> | undefined;

/** Peer-assisted delivery for one player. */
export class P2pMedia {
  private readonly engine: P2p | undefined;
  private readonly listeners = new Map<string, Set<(detail: never) => void>>();
  private playheadTimer: ReturnType<typeof setInterval> | undefined;

  private constructor(engine: (onEvent: (type: string, detail: unknown) => void) => P2p | undefined) {
    this.engine = engine((type, detail) => {
      for (const listener of this.listeners.get(type) ?? []) listener(detail as never);
    });
  }

  /** Loads the WebAssembly engine (once per page) and starts a session. */
  static async create(config: P2pConfig): Promise<P2pMedia> {
    const mode = config.p2p === false ? "off" : meteredMode(config.onMetered ?? "download-only");
    if (mode === "off") return new P2pMedia(() => undefined);
    loaded ??= init();
    await loaded;
    const upload = mode === "download-only" ? false : config.upload ?? true;
    return new P2pMedia((onEvent) => new P2p({ ...config, upload, onEvent }));
  }

  /** Listens for an event. */
  on<K extends keyof P2pEvents>(type: K, listener: Listener<K>): this {
    let set = this.listeners.get(type);
    if (!set) this.listeners.set(type, (set = new Set()));
    set.add(listener as (detail: never) => void);
    return this;
  }

  /** Stops listening. */
  off<K extends keyof P2pEvents>(type: K, listener: Listener<K>): this {
    this.listeners.get(type)?.delete(listener as (detail: never) => void);
    return this;
  }

  /** Shows the engine a playlist (master or media) the player loaded. */
  playlist(url: string, text: string): void {
    this.engine?.playlist(url, text);
  }

  /** The segment at `url` from peers or the CDN, or `undefined` when the caller must load it. */
  load(url: string): Promise<Uint8Array> | undefined {
    return this.engine?.load(url);
  }

  /** The player gave up a request made with {@link P2pMedia.load}. */
  abandon(url: string): void {
    this.engine?.abandon(url);
  }

  /** CDN throughput estimate in bits per second (peer transfers do not inflate it). */
  bandwidthEstimate(): number | undefined {
    return this.engine?.bandwidthEstimate();
  }

  /** Follows a media element's playhead (needed for deadlines and prefetch). */
  attachMedia(media: HTMLMediaElement): void {
    this.detachMedia();
    const report = () => {
      const t = media.currentTime;
      let ahead = 0;
      for (let i = 0; i < media.buffered.length; i++) {
        if (media.buffered.start(i) <= t + 0.1 && t <= media.buffered.end(i)) ahead = media.buffered.end(i) - t;
      }
      const state = media.paused
        ? "paused"
        : media.readyState >= 3
          ? "playing"
          : media.played.length > 0
            ? "stalled"
            : "starting";
      this.engine?.playhead(ahead, state);
    };
    this.playheadTimer = setInterval(report, 250);
  }

  /** Stops following the media element. */
  detachMedia(): void {
    if (this.playheadTimer !== undefined) clearInterval(this.playheadTimer);
    this.playheadTimer = undefined;
  }

  /** Running totals. */
  stats(): P2pStats {
    const zero = {
      bytesFromCdn: 0, bytesFromPeers: 0, bytesUploaded: 0, segmentsFromCdn: 0, segmentsFromPeers: 0,
      segmentsMixed: 0, cdnRequests: 0, integrityFailures: 0, peersBanned: 0, peersConnected: 0, offload: 0,
    };
    return { p2p: this.engine !== undefined, ...(this.engine ? (this.engine.stats() as typeof zero) : zero) };
  }

  /** Closes trackers and peers; pending loads reject. */
  destroy(): void {
    this.detachMedia();
    this.engine?.destroy();
    this.engine?.free();
  }
}
