// Interoperability with p2p-media-loader 2.x (the npm packages `p2p-media-loader-core` and
// `p2p-media-loader-hlsjs`, versions pinned in package.json): two pages play the live stream
// through hls.js and p2p-media-loader with our tracker as their only tracker; the later page
// must get segment bytes from the earlier one over a WebRTC data channel that our tracker
// signalled, and hand hls.js only the origin's bytes.
import assert from "node:assert/strict";
import { test } from "node:test";
import * as h from "./harness.mjs";

const page = "p2pml.html";

/** The sum of a metric over all its label sets. */
function total(metrics, name) {
  let sum = 0;
  for (const [key, value] of metrics) if (key === name || key.startsWith(`${name}{`)) sum += value;
  return sum;
}

/** Seconds of playback between the first and the last sample that had started. */
function played(samples) {
  const started = samples.filter((s) => s.time > 0);
  return started.length ? started.at(-1).time - started[0].time : 0;
}

test("p2p-media-loader 2.x pages meet through the tracker and share segments over WebRTC", { timeout: 180_000 }, () =>
  h.withStream({}, async ({ dir, tracker, open }) => {
    const began = performance.now();
    const first = await open({ page });
    await h.sleep(8_000);
    const later = await open({ page });
    const joined = performance.now();
    // Until the later page played 15 s with some segment from a peer handed to hls.js, at most 50 s.
    let reports;
    do {
      await h.sleep(1_000);
      reports = await Promise.all([first, later].map(h.report));
      const [, r] = reports;
      const fromPeers = new Set(r.loaded.filter((l) => l.source === "p2p").map((l) => l.url));
      if (played(r.samples) >= 15 && r.deliveries.some((d) => fromPeers.has(d.url))) break;
    } while (performance.now() - joined < 50_000);
    const metrics = await h.trackerMetrics(tracker);

    for (const [i, r] of reports.entries()) {
      const sources = r.loaded.reduce((n, l) => ({ ...n, [l.source]: (n[l.source] ?? 0) + 1 }), {});
      console.log(`p2pml page ${i}: http ${r.chunks.http} B, p2p ${r.chunks.p2p} B, uploaded ${r.uploaded} B, segments ${JSON.stringify(sources)}, peers ${r.peersConnected}, played ${played(r.samples).toFixed(1)} s, longest freeze ${h.longestFreeze(r.samples).toFixed(1)} s, peer errors ${JSON.stringify(r.peerErrors)}`);
    }
    const relayed = { offers: total(metrics, "tracker_offers_relayed_total"), answers: total(metrics, "tracker_answers_relayed_total") };
    const rejected = [...metrics].filter(([key, value]) => key.startsWith("tracker_rejected_total") && value > 0);
    console.log(`p2pml tracker: announces ${total(metrics, "tracker_announces_total")}, offers relayed ${relayed.offers}, answers relayed ${relayed.answers}, rejected ${JSON.stringify(rejected)}; ${((performance.now() - began) / 1000).toFixed(0)} s from the first page`);

    // The tracker took every message of p2p-media-loader and relayed its signalling.
    assert.deepEqual(rejected, [], "the tracker refused messages of p2p-media-loader");
    for (const [i, r] of reports.entries()) {
      assert.deepEqual(r.trackerWarnings, [], `page ${i} got failure reasons or warnings from the tracker`);
    }
    assert.ok(relayed.offers > 0, "the tracker relayed no offer");
    assert.ok(relayed.answers > 0, "the tracker relayed no answer");

    // The pages connected over WebRTC (our tracker is the only one they know) and the later
    // page got segment bytes from the earlier one.
    const [firstReport, laterReport] = reports;
    assert.ok(firstReport.peersConnected >= 1 && laterReport.peersConnected >= 1, "the pages never connected to each other");
    assert.ok(laterReport.chunks.p2p > 0, "the later page got no bytes from a peer");
    assert.ok(firstReport.uploaded > 0, "the earlier page uploaded nothing");
    for (const [i, r] of reports.entries()) {
      for (const l of r.loaded) assert.ok(l.source === "http" || l.bytes > 0, `page ${i}: ${l.url} came from a peer empty`);
    }

    // hls.js got the origin's bytes, among them segments that came from the peer, and played them.
    const fromPeers = new Set(laterReport.loaded.filter((l) => l.source === "p2p").map((l) => l.url));
    assert.ok(laterReport.deliveries.some((d) => fromPeers.has(d.url)), "no segment from a peer reached hls.js");
    for (const [i, r] of reports.entries()) {
      if (r.errors.length) console.log([first, later][i].logs.slice(-20).join("\n"));
      assert.deepEqual(r.errors, [], `page ${i} had player or tracker errors`);
      for (const d of r.deliveries) assert.equal(d.sha256, h.originSha256(dir, d.url), `page ${i}: ${d.url} differs from the origin's`);
    }
    assert.ok(played(laterReport.samples) >= 10, `the later page played only ${played(laterReport.samples).toFixed(1)} s`);
  }));
