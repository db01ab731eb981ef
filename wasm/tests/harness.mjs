// Shared setup of the browser tests: the real tracker, the test origin (live) and the native
// virtual viewer as child processes on loopback, a static server for the package and the test
// page, and headless Chromium driven by playwright-core.
import { spawn, execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { createServer } from "node:http";
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const wasmDir = join(dirname(fileURLToPath(import.meta.url)), "..");
export const root = join(wasmDir, "..");
const workDir = join(wasmDir, "tests", "work");
const targetDir = process.env.CARGO_TARGET_DIR ?? join(root, "target");
const children = new Set();
/** The address WebRTC may use: the veth of the tests' own network namespace (tests/run.sh). */
const testAddress = process.env.P2P_TEST_ADDRESS ?? "127.0.0.1";

/** Stops every child process the test started (their open pipes would keep the test's process alive). */
export function stopChildren() {
  for (const child of children) child.kill("SIGKILL");
  children.clear();
}
process.on("exit", stopChildren);

/**
 * Builds the binaries the tests run and the package (once per test process when missing). The
 * binaries come from `cargo test --no-run`: integration tests make cargo build every package's
 * binaries into the target dir with the feature set of `cargo test --workspace`, so after CI's
 * test step this is a no-op instead of a second build of the workspace with other features.
 */
export function buildAll({ corrupt = false } = {}) {
  execFileSync("cargo", ["test", "--workspace", "--locked", "--no-run", "--quiet"], {
    cwd: root,
    stdio: "inherit",
  });
  buildPackage();
  if (corrupt && !existsSync(join(workDir, "corrupt", "index.js"))) {
    execFileSync("bash", [join(wasmDir, "build.sh"), "--features", "corrupt-uploads", "--out", join(workDir, "corrupt")], {
      stdio: "inherit",
    });
  }
}

/** Builds the package in `dist` when missing (tests/run.sh callers built it just before). */
export function buildPackage() {
  if (!existsSync(join(wasmDir, "dist", "index.js"))) {
    execFileSync("bash", [join(wasmDir, "build.sh")], { stdio: "inherit" });
  }
}

/**
 * A one-rendition copy of the sample stream (every viewer in one swarm), generated if missing,
 * with its hash list (`segment-hashes`) next to the media playlist, where the package looks.
 */
export function media() {
  const sample = join(root, "demo-player", "media", "sample");
  execFileSync("bash", [join(root, "demo-player", "media", "generate.sh")], { stdio: "inherit" });
  const dir = join(workDir, "media");
  if (!existsSync(join(dir, "master.m3u8"))) {
    mkdirSync(dir, { recursive: true });
    cpSync(join(sample, "240p"), join(dir, "240p"), { recursive: true });
    const master = readFileSync(join(sample, "master.m3u8"), "utf8").split("\n");
    const at = master.findIndex((line) => line.startsWith("240p/"));
    const playlist = join(dir, "240p", "index.m3u8");
    writeFileSync(`${playlist}.hashes`, execFileSync(bin("segment-hashes"), [playlist]));
    writeFileSync(join(dir, "master.m3u8"), ["#EXTM3U", master[at - 1], master[at], ""].join("\n"));
  }
  return dir;
}

/** SHA-256 (hex) of the file behind a segment URL of the origin. */
export function originSha256(mediaDir, url) {
  const path = new URL(url).pathname;
  return createHash("sha256").update(readFileSync(join(mediaDir, normalize(path)))).digest("hex");
}

function bin(name) {
  return join(targetDir, "debug", name);
}

/** Starts a child process; resolves with it once `ready` matches a line of its output. */
export function start(name, args, ready, env = {}) {
  if (process.env.TRACE_CHILDREN) env = { RUST_LOG: "debug", ...env };
  const child = spawn(bin(name), args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  child.output = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start:\n${child.output}`)), 30_000);
    const onData = (chunk) => {
      child.output += chunk;
      const match = child.output.match(ready);
      if (match) {
        clearTimeout(timer);
        resolve({ child, match });
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("exit", (code) => reject(new Error(`${name} exited with ${code}:\n${child.output}`)));
  });
}

/** A free TCP port on 127.0.0.1. */
async function freePort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** The tracker on a free loopback port, with extra command-line `args`: its WebSocket URL. */
export async function startTracker(args = []) {
  const port = await freePort();
  await start("tracker", ["--listen", `127.0.0.1:${port}`, ...args], /tracker listening/);
  return `ws://127.0.0.1:${port}/`;
}

/** The samples of the `/metrics` of the tracker at `tracker` (its WebSocket URL): name with labels → value. */
export async function trackerMetrics(tracker) {
  const text = await (await fetch(new URL("/metrics", tracker.replace(/^ws/, "http")))).text();
  const lines = text.split("\n").filter((l) => l && !l.startsWith("#"));
  return new Map(lines.map((l) => [l.slice(0, l.lastIndexOf(" ")), Number(l.slice(l.lastIndexOf(" ") + 1))]));
}

/** A counter or gauge from the `/metrics` of the tracker at `tracker` (its WebSocket URL); 0 when absent. */
export async function trackerMetric(tracker, nameAndLabels) {
  return (await trackerMetrics(tracker)).get(nameAndLabels) ?? 0;
}

/** The test origin serving `dir` as a live stream, with extra command-line `args`: the master playlist URL. */
export async function startOrigin(dir, args = []) {
  const { match } = await start("origin", ["--media", dir, "--listen", "127.0.0.1:0", "--live", ...args], /origin listening on (http:\/\/\S+)/);
  return `${match[1]}/master.m3u8`;
}

const types = { ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm", ".map": "application/json" };

/** Serves the package (`/dist`, `/corrupt`), `node_modules` and the test pages. */
export async function startStatic() {
  const mounts = {
    "/dist/": join(wasmDir, "dist"),
    "/corrupt/": join(workDir, "corrupt"),
    "/node_modules/": join(wasmDir, "node_modules"),
    "/pages/": join(wasmDir, "tests", "pages"),
  };
  const server = createServer((request, response) => {
    const path = decodeURIComponent(new URL(request.url, "http://x").pathname);
    const mount = Object.keys(mounts).find((m) => path.startsWith(m));
    const file = mount && normalize(join(mounts[mount], path.slice(mount.length)));
    if (!file || !file.startsWith(mounts[mount]) || !existsSync(file)) {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, { "content-type": types[extname(file)] ?? "application/octet-stream" });
    response.end(readFileSync(file));
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${server.address().port}`, close: () => server.close() };
}

/** Headless Chromium (Debian's package), WebRTC on loopback host candidates. */
export function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--autoplay-policy=no-user-gesture-required",
      "--disable-features=WebRtcHideLocalIpsWithMdns",
      "--allow-loopback-in-peer-connection",
    ],
  });
}

/**
 * Builds what the tests need, starts the tracker, the live origin on the test media, the page
 * server and Chromium, runs `body({ dir, tracker, src, browser, open })` (`open(options)` opens
 * a player page: `openPlayer` with the stream filled in), and stops everything afterwards.
 */
export async function withStream({ corrupt = false, trackerArgs = [], originArgs = [] }, body) {
  buildAll({ corrupt });
  const dir = media();
  const tracker = await startTracker(trackerArgs);
  const src = await startOrigin(dir, originArgs);
  const statics = await startStatic();
  const browser = await launchBrowser();
  try {
    const open = (options) => openPlayer(browser, statics.url, { src, tracker, ...options });
    return await body({ dir, tracker, src, browser, open });
  } finally {
    await browser.close();
    statics.close();
    stopChildren();
  }
}

/** Opens a test page (`page`: a file of `tests/pages/`, by default the package's player). */
export async function openPlayer(browser, staticUrl, { player, src, tracker, pkg = "/dist", page: file = "player.html" }) {
  const page = await browser.newPage();
  page.logs = [];
  page.on("console", (m) => page.logs.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => page.logs.push(`pageerror: ${e.message}`));
  const query = new URLSearchParams({ player, src, tracker, pkg, ice: testAddress });
  await page.goto(`${staticUrl}/pages/${file}?${query}`);
  await page.waitForFunction(() => typeof window.report === "function", null, { timeout: 30_000 });
  return page;
}

/** What the page reports. */
export function report(page) {
  return page.evaluate(() => window.report());
}

/** Checks that playback kept going: after startup, never stuck for more than `maxGap` seconds. */
export function longestFreeze(samples) {
  let longest = 0;
  let since;
  for (const [i, s] of samples.entries()) {
    if (s.time === 0) continue;
    if (i > 0 && s.time === samples[i - 1].time) {
      since ??= samples[i - 1].at;
      longest = Math.max(longest, s.at - since);
    } else {
      since = undefined;
    }
  }
  return longest;
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs a binary to completion: its stdout (rejects on a non-zero exit). */
export function run(name, args) {
  const child = spawn(bin(name), args, { stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk) => (stdout += chunk));
  child.stderr.on("data", (chunk) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    child.on("exit", (code) => {
      children.delete(child);
      if (code === 0) resolve(stdout);
      else reject(new Error(`${name} exited with ${code}:\n${stderr.slice(-3000)}`));
    });
  });
}
