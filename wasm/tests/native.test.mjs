import assert from "node:assert/strict";
import { test } from "node:test";
import * as h from "./harness.mjs";

test("a browser page and a native virtual viewer exchange segments both ways", { timeout: 600_000 }, async () => {
  await h.withStream({}, async ({ dir, tracker, src, open }) => {
    // The native viewer checks what the browser sends against the stream's hash lists (its default).
    const native = h.run("virtual-viewer", ["--tracker", tracker, "--duration", "50", "--stats-every", "0", "--json", src]);
    await h.sleep(4_000);
    const page = await open({ player: "hls" });
    await h.sleep(40_000);
    const r = await h.report(page);
    const summary = JSON.parse(await native);
    console.log(`browser: ${JSON.stringify(r.stats)}; native: from peers ${summary.bytes_from_peers} B, uploaded ${summary.bytes_uploaded} B`);
    assert.ok(r.stats.bytesFromPeers > 0, "the browser got nothing from the native peer");
    assert.ok(r.stats.bytesUploaded > 0, "the browser uploaded nothing to the native peer");
    assert.ok(summary.bytes_from_peers > 0, "the native peer got nothing from the browser");
    assert.ok(summary.bytes_uploaded > 0, "the native peer uploaded nothing");
    assert.equal(summary.integrity_failures, 0, "the native peer rejected data from the browser");
    for (const d of r.deliveries) assert.equal(d.sha256, h.originSha256(dir, d.url), `${d.url} differs from the origin's`);
  });
});
