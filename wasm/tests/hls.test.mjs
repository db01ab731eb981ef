import { test } from "node:test";
import { playTogether } from "./swarm.mjs";

test("three pages play one live stream through hls.js, later ones mostly from peers", { timeout: 600_000 }, () =>
  playTogether("hls"));
