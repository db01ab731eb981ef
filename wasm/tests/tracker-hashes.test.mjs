import assert from "node:assert/strict";
import { test } from "node:test";
import * as h from "./harness.mjs";
import { playTogether } from "./swarm.mjs";

// The origin publishes no hash list (404), so every peer byte is checked against the hashes the
// pages report to the tracker after their CDN fetches. All pages reach the tracker from one
// address, one network: a quorum of one lets their reports be accepted.
const noHashLists = { rules: [{ path: "*.hashes", failure: { kind: "status", status: 404 } }] };

test("three pages share a live stream without a hash list, verified by hashes agreed at the tracker", { timeout: 600_000 }, () =>
  playTogether("hls", {
    trackerArgs: ["--hash-quorum", "1"],
    originArgs: ["--faults", JSON.stringify(noHashLists)],
    // Peer bytes that arrive before their segment's hash is agreed wait for it (re-asked every
    // 0.5 s), and the CDN serves the segment when the hash comes too late: a smaller share than
    // with a hash list, and a varying one (47% and 48% in two runs; 50%, 23% and 49% when the
    // core re-asked every 2 s).
    minShare: 0.15,
    check: async ({ tracker, reports }) => {
      const accepted = await h.trackerMetric(tracker, 'tracker_hash_reports_total{outcome="accepted"}');
      const conflicts = await h.trackerMetric(tracker, 'tracker_hash_reports_total{outcome="conflict"}');
      const fromPeers = reports.reduce((n, r) => n + (r.sources.peers ?? 0) + (r.sources.mixed ?? 0), 0);
      console.log(`tracker: ${accepted} hashes accepted, ${conflicts} conflicts; ${fromPeers} segments with peer bytes, each verified by one of them`);
      assert.ok(accepted > 0, "no hash report was accepted");
      assert.equal(conflicts, 0, "the pages reported different hashes for one segment");
      assert.ok(fromPeers > 0, "no segment came from peers");
    },
  }));
