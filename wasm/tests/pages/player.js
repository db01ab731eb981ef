// Test page: plays `src` with hls.js or Shaka through the package (`pkg`: /dist or a test build)
// and exposes what happened as `window.report()`.
const query = new URLSearchParams(location.search);
const { P2pMedia, hlsLoaders, registerShakaScheme } = await import(`${query.get("pkg") ?? "/dist"}/index.js`);
const video = document.getElementById("video");
const report = { deliveries: [], loaded: [], events: {}, sources: {}, errors: [], samples: [] };

const p2p = await P2pMedia.create({
  trackers: [query.get("tracker")],
  // Only the test network's address (tests/run.sh): no traffic to any other address.
  candidateFilter: query.get("ice") ? (line) => line.includes(` ${query.get("ice")} `) : undefined,
});
for (const type of ["segment-loaded", "peer-connected", "peer-closed", "integrity-failure", "peer-banned"]) {
  p2p.on(type, (detail) => {
    report.events[type] = (report.events[type] ?? 0) + 1;
    if (type === "segment-loaded") {
      report.sources[detail.source] = (report.sources[detail.source] ?? 0) + 1;
      report.loaded.push({ ...detail, at: performance.now() / 1000 });
    }
  });
}
// Record the SHA-256 of every segment the package hands to the player.
const load = p2p.load.bind(p2p);
p2p.load = (url) => {
  const promise = load(url);
  promise?.then(async (data) => {
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
    report.deliveries.push({ url, size: data.byteLength, sha256: [...digest].map((b) => b.toString(16).padStart(2, "0")).join("") });
  });
  return promise;
};

const src = query.get("src");
if (query.get("player") === "shaka") {
  shaka.polyfill.installAll();
  registerShakaScheme(p2p, shaka);
  const player = new shaka.Player();
  player.addEventListener("error", (e) => report.errors.push(String(e.detail?.code ?? e)));
  await player.attach(video);
  await player.load(src).catch((e) => report.errors.push(`load: ${e.code ?? e}`));
} else {
  const hls = new Hls({ ...hlsLoaders(p2p, Hls) });
  hls.on(Hls.Events.ERROR, (_, data) => data.fatal && report.errors.push(`${data.type}: ${data.details}`));
  hls.loadSource(src);
  hls.attachMedia(video);
}
p2p.attachMedia(video);
window.p2p = p2p;
video.play().catch(() => {});
setInterval(() => report.samples.push({ at: performance.now() / 1000, time: video.currentTime }), 500);
window.report = () => ({ ...report, stats: p2p.stats(), currentTime: video.currentTime });
