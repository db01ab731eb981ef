import { test } from "node:test";
import { playTogether } from "./swarm.mjs";

test("three pages play one live stream through Shaka Player, later ones mostly from peers", { timeout: 600_000 }, () =>
  playTogether("shaka"));
