import assert from "node:assert/strict";
import { test } from "node:test";
import * as h from "./harness.mjs";

/** What the victim page must show: corrupt data seen, sender banned, only correct bytes played. */
function assertNeverPlayedCorrupt(good, dir) {
  assert.ok(good.stats.integrityFailures >= 1, "the victim never saw an integrity failure");
  assert.ok((good.events["peer-banned"] ?? 0) >= 1, "the corrupting peer was not banned");
  assert.deepEqual(good.errors, []);
  assert.ok(good.deliveries.length >= 8, `victim got only ${good.deliveries.length} segments`);
  for (const d of good.deliveries) assert.equal(d.sha256, h.originSha256(dir, d.url), `${d.url} reached the player corrupted`);
  assert.ok(good.currentTime > 10, `victim played only ${good.currentTime} s`);
}

test("a page never plays the corrupt data a browser peer sends it", { timeout: 900_000 }, async () => {
  await h.withStream({ corrupt: true }, async ({ dir, open }) => {
    // A test build of the package that flips every byte it uploads.
    const liar = await open({ player: "hls", pkg: "/corrupt" });
    await h.sleep(6_000);
    const victim = await open({ player: "hls" });
    await h.sleep(30_000);
    const [bad, good] = await Promise.all([h.report(liar), h.report(victim)]);
    console.log(`corrupting page: uploaded ${bad.stats.bytesUploaded} B; victim: events ${JSON.stringify(good.events)}, stats ${JSON.stringify(good.stats)}`);
    assert.ok(bad.stats.bytesUploaded > 0, "the corrupting page never uploaded, so nothing was tested");
    assertNeverPlayedCorrupt(good, dir);
  });
});

test("a page never plays the corrupt data a native peer sends it", { timeout: 600_000 }, async () => {
  await h.withStream({}, async ({ dir, tracker, src, open }) => {
    // virtual-viewer's test-only mode: every payload byte it uploads is flipped.
    const liar = h.run("virtual-viewer", ["--tracker", tracker, "--duration", "42", "--corrupt-uploads", "--stats-every", "0", "--json", src]);
    await h.sleep(6_000);
    const victim = await open({ player: "hls" });
    await h.sleep(30_000);
    const good = await h.report(victim);
    const bad = JSON.parse(await liar);
    console.log(`corrupting native peer: uploaded ${bad.bytes_uploaded} B; victim: events ${JSON.stringify(good.events)}, stats ${JSON.stringify(good.stats)}`);
    assert.ok(bad.bytes_uploaded > 0, "the corrupting native peer never uploaded, so nothing was tested");
    assertNeverPlayedCorrupt(good, dir);
  });
});
