// The npm package as a user gets it: `npm pack`, installed from the tarball into a new project,
// imported by node, its declarations type-checked, and every code example of the README
// type-checked against them (so the README shows the API as it is).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import * as h from "./harness.mjs";

const npm = (args, cwd) => execFileSync("npm", [...args, "--no-audit", "--no-fund", "--loglevel=error"], { cwd, encoding: "utf8" });

test("npm pack makes a package that installs, imports and type-checks the README's examples", { timeout: 600_000 }, () => {
  h.buildPackage();
  const project = join(h.wasmDir, "tests", "work", "consumer");
  rmSync(project, { recursive: true, force: true });
  mkdirSync(project, { recursive: true });

  const [packed] = JSON.parse(npm(["pack", "--json", "--pack-destination", project], h.wasmDir));
  const files = packed.files.map((f) => f.path).sort();
  assert.deepEqual(files, [
    "README.md",
    "dist/hlsjs.d.ts",
    "dist/index.d.ts",
    "dist/index.js",
    "dist/peer_wasm_bg.wasm",
    "dist/shaka.d.ts",
    "package.json",
  ]);
  console.log(`${packed.filename}: ${packed.size} B packed, ${packed.unpackedSize} B unpacked`);

  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module" }));
  npm(["install", "--offline", join(project, packed.filename)], project);
  // The players and the compiler a user would have (no network here: linked from this folder).
  for (const dep of ["hls.js", "shaka-player", "typescript"]) {
    symlinkSync(join(h.wasmDir, "node_modules", dep), join(project, "node_modules", dep));
  }

  // Node imports it by name; with P2P off it needs neither the .wasm nor a browser.
  const imported = execFileSync(
    "node",
    [
      "--input-type=module",
      "-e",
      `const m = await import("p2pvd-peer");
       const p2p = await m.P2pMedia.create({ trackers: [], p2p: false });
       console.log(JSON.stringify({ exports: Object.keys(m).sort(), stats: p2p.stats(), load: p2p.load("https://cdn/x.ts") ?? null }));`,
    ],
    { cwd: project, encoding: "utf8" },
  );
  const { exports, stats, load } = JSON.parse(imported);
  assert.deepEqual(exports, ["P2pMedia", "hlsLoaders", "registerShakaScheme"]);
  assert.equal(stats.p2p, false);
  assert.equal(load, null, "with P2P off every load falls through to the player's loader");

  // The README's examples, each as its own module, against the installed declarations.
  const readme = readFileSync(join(project, "node_modules", "p2pvd-peer", "README.md"), "utf8");
  const examples = [...readme.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]);
  assert.ok(examples.length >= 4, `the README has only ${examples.length} examples`);
  const names = examples.map((code, i) => {
    const name = `example-${i + 1}.ts`;
    writeFileSync(join(project, name), `declare const video: HTMLVideoElement;\n${code}export {};\n`);
    return name;
  });
  writeFileSync(
    join(project, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: { target: "ES2022", module: "ES2022", moduleResolution: "bundler", lib: ["ES2022", "DOM"], strict: true, noEmit: true, skipLibCheck: true },
      files: names,
    }),
  );
  const tsc = join(project, "node_modules", "typescript", "bin", "tsc");
  const check = (args) => {
    try {
      execFileSync("node", [tsc, ...args], { cwd: project, encoding: "utf8" });
    } catch (e) {
      assert.fail(`tsc ${args.join(" ")}:\n${e.stdout}${e.stderr}`);
    }
  };
  check(["-p", "tsconfig.json"]);
  // The package's own declarations, strictly (skipLibCheck above skips them).
  check(["--noEmit", "--strict", "--lib", "ES2022,DOM", "--module", "ES2022", "--moduleResolution", "bundler", "node_modules/p2pvd-peer/dist/index.d.ts"]);
});
