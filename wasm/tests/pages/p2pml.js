// Test page: plays `src` with hls.js through p2p-media-loader 2.x (not this project's package),
// which announces to `tracker` only, and exposes what happened as `window.report()`.
import { HlsJsP2PEngine } from "/node_modules/p2p-media-loader-hlsjs/dist/p2p-media-loader-hlsjs.es.js";

const query = new URLSearchParams(location.search);
const video = document.getElementById("video");
const report = {
  loaded: [], // p2p-media-loader's `onSegmentLoaded`
  deliveries: [], // every fragment handed to hls.js, with the SHA-256 of its bytes
  chunks: { http: 0, p2p: 0 }, // bytes by source (`onChunkDownloaded`)
  uploaded: 0, // bytes sent to peers (`onChunkUploaded`)
  peersConnected: 0,
  peerErrors: [],
  trackerWarnings: [], // a tracker's `failure reason` arrives as a warning
  errors: [],
  samples: [],
};

const engine = new HlsJsP2PEngine({
  core: {
    announceTrackers: [query.get("tracker")],
    rtcConfig: { iceServers: [] }, // host candidates only: the test network has no STUN server
    // With the default 15 s, every segment of the test's 12 s live window is "high demand", which
    // p2p-media-loader takes from the CDN whenever it can; with 2 s (one segment), the segments
    // further ahead come from peers, or from the CDN through one randomly chosen viewer.
    highDemandTimeWindow: 2,
  },
});
engine.addEventListener("onSegmentLoaded", ({ segmentUrl, bytesLength, downloadSource, peerId }) =>
  report.loaded.push({ url: segmentUrl, bytes: bytesLength, source: downloadSource, peerId, at: performance.now() / 1000 }));
engine.addEventListener("onChunkDownloaded", (bytes, source) => (report.chunks[source] += bytes));
engine.addEventListener("onChunkUploaded", (bytes) => (report.uploaded += bytes));
engine.addEventListener("onPeerConnect", () => report.peersConnected++);
engine.addEventListener("onPeerError", ({ error }) => report.peerErrors.push(String(error)));
engine.addEventListener("onTrackerWarning", ({ warning }) => report.trackerWarnings.push(String(warning)));
engine.addEventListener("onTrackerError", ({ error }) => report.errors.push(`tracker: ${error}`));

// p2p-media-loader's own fragment loader, wrapped to record the bytes it hands to hls.js (a copy,
// taken before hls.js parses them).
const { fLoader, pLoader } = engine.getConfigForHlsJs();
class RecordingFragmentLoader extends fLoader {
  load(context, config, callbacks) {
    let copy;
    const keep = (data) => (copy ??= data?.slice(0));
    super.load(context, config, {
      ...callbacks,
      onProgress: callbacks.onProgress && ((stats, ctx, data, details) => {
        keep(data);
        callbacks.onProgress(stats, ctx, data, details);
      }),
      onSuccess: (response, stats, ctx, details) => {
        keep(response.data);
        if (copy) {
          crypto.subtle.digest("SHA-256", copy).then((digest) => {
            const sha256 = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
            report.deliveries.push({ url: context.url, size: copy.byteLength, sha256 });
          });
        }
        callbacks.onSuccess(response, stats, ctx, details);
      },
    });
  }
}

// p2p-media-loader 2.3.1 hands hls.js the very ArrayBuffer it keeps to seed to peers; hls.js's
// transmuxing worker takes (detaches) that buffer, and peers then receive 0-byte segments, which
// stall their playback. Transmuxing on the main thread leaves the buffer in place.
const hls = new Hls({ pLoader, fLoader: RecordingFragmentLoader, enableWorker: false });
engine.bindHls(hls);
hls.on(Hls.Events.ERROR, (_, data) => {
  const { FRAG_PARSING_ERROR, BUFFER_APPEND_ERROR, BUFFER_APPENDING_ERROR } = Hls.ErrorDetails;
  const decoding = [FRAG_PARSING_ERROR, BUFFER_APPEND_ERROR, BUFFER_APPENDING_ERROR].includes(data.details);
  if (data.fatal || decoding) report.errors.push(`${data.type}: ${data.details}`);
});
hls.loadSource(query.get("src"));
hls.attachMedia(video);
video.play().catch(() => {});
setInterval(() => report.samples.push({ at: performance.now() / 1000, time: video.currentTime }), 500);
window.report = () => ({ ...report, currentTime: video.currentTime });
