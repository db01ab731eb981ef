// The swarm scenario shared by the hls.js and Shaka tests: one page starts alone, two more
// join; all play the same live stream for a while through the package.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import * as h from "./harness.mjs";

/**
 * Plays with `player` ("hls" or "shaka") on three pages and checks offload, playback and bytes.
 * `trackerArgs` and `originArgs` go to the tracker's and the origin's command lines; the later
 * pages must get at least `minShare` of their bytes from peers; `check` runs last with the
 * tracker's URL and the pages' reports.
 */
export async function playTogether(player, { trackerArgs = [], originArgs = [], minShare = 0.5, check } = {}) {
  await h.withStream({ trackerArgs, originArgs }, async ({ dir, tracker, open }) => {
    const first = await open({ player });
    await h.sleep(6_000);
    const pages = [first];
    for (let i = 0; i < 2; i++) pages.push(await open({ player }));
    await h.sleep(60_000);
    const reports = await Promise.all(pages.map(h.report));
    writeFileSync(join(h.wasmDir, "tests", "work", `${player}-reports.json`), JSON.stringify(reports));
    for (const [i, { stats, currentTime, sources, events, samples }] of reports.entries()) {
      console.log(`${player} page ${i}: longest freeze ${h.longestFreeze(samples).toFixed(1)} s, time ${currentTime.toFixed(1)} s, cdn ${stats.bytesFromCdn} B, peers ${stats.bytesFromPeers} B, uploaded ${stats.bytesUploaded} B, offload ${(stats.offload * 100).toFixed(0)}%, segments ${JSON.stringify(sources)}, events ${JSON.stringify(events)}`);
    }
    for (const [i, r] of reports.entries()) {
      const { currentTime, errors, deliveries } = r;
      if (errors.length) console.log(pages[i].logs.slice(-20).join("\n"));
      assert.deepEqual(errors, [], `page ${i} had player errors`);
      assert.ok(deliveries.length >= 10, `page ${i} got only ${deliveries.length} segments`);
      for (const d of deliveries) assert.equal(d.sha256, h.originSha256(dir, d.url), `page ${i}: ${d.url} differs from the origin's`);
      const freeze = h.longestFreeze(r.samples);
      if (freeze >= 2.5) {
        const timeline = r.loaded.map((l) => `${l.at.toFixed(1)}s #${l.sequence} ${l.source} ${Math.round(l.latencyMs)}ms`);
        console.log(`page ${i} deliveries: ${timeline.join(", ")}\n${pages[i].logs.slice(-20).join("\n")}`);
      }
      assert.ok(freeze < 2.5, `page ${i}: playback froze for ${freeze.toFixed(1)} s`);
      assert.ok(currentTime > 20, `page ${i} played only ${currentTime} s`);
    }
    // Which later page pulls a new live segment from the CDN is drawn at random, so one page's
    // share varies from run to run; the later pages together must get most bytes from peers.
    const later = reports.slice(1).map((r) => r.stats);
    const fromPeers = later.reduce((sum, s) => sum + s.bytesFromPeers, 0);
    const total = later.reduce((sum, s) => sum + s.bytesFromPeers + s.bytesFromCdn, 0);
    console.log(`${player}: later pages got ${((fromPeers / total) * 100).toFixed(0)}% of their bytes from peers`);
    assert.ok(fromPeers / total >= minShare, `later pages got only ${((fromPeers / total) * 100).toFixed(0)}% from peers`);
    await check?.({ tracker, reports });
  });
}
