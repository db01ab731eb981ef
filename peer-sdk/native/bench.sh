#!/usr/bin/env bash
# The native swarm benchmark (peer-sdk/BENCHMARKS.md, "Native swarm"): the release tracker and
# the release origin serving the sample media live on loopback, then one virtual-viewer process
# running VIEWERS viewers for DURATION seconds. Prints the figures of each run and the medians.
#
#   peer-sdk/native/bench.sh [RUNS]          # default 3 runs
#
# Environment: VIEWERS (50), DURATION (120), RAMP (0: all viewers start at once), PLAYLIST (path
# on the origin, master.m3u8), OUT (a folder for each run's JSON summary, origin stats and logs;
# default a temporary one), CARGO_TARGET_DIR (as cargo), NO_BUILD (set: use the release binaries
# already built), VIEWER_LOG (RUST_LOG of virtual-viewer, warn). Needs curl and python3.
set -euo pipefail

runs=${1:-3}
viewers=${VIEWERS:-50}
duration=${DURATION:-120}
ramp=${RAMP:-0}
root=$(cd "$(dirname "$0")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"

if [ -z "${NO_BUILD:-}" ]; then
    cargo build --release --quiet --manifest-path "$root/Cargo.toml" \
        -p tracker -p demo-player -p peer-native --bin tracker --bin origin --bin virtual-viewer
fi
media=$("$root/demo-player/media/generate.sh" >/dev/null && echo "$root/demo-player/media/sample")

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

# A free loopback port (the kernel's choice, released at once).
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Waits until URL answers.
wait_http() {
    for _ in $(seq 100); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "bench: $1 did not answer" >&2
    return 1
}

for run in $(seq "$runs"); do
    tracker_port=$(free_port)
    origin_port=$(free_port)
    TRACKER_LOG=warn "$target/release/tracker" --listen "127.0.0.1:$tracker_port" \
        >"$out/tracker-$run.log" 2>&1 &
    pids=($!)
    RUST_LOG=warn "$target/release/origin" --media "$media" --listen "127.0.0.1:$origin_port" \
        --live >"$out/origin-$run.log" 2>&1 &
    pids+=($!)
    wait_http "http://127.0.0.1:$tracker_port/healthz"
    wait_http "http://127.0.0.1:$origin_port/master.m3u8"
    RUST_LOG=${VIEWER_LOG:-warn} "$target/release/virtual-viewer" --tracker "ws://127.0.0.1:$tracker_port/" \
        --viewers "$viewers" --duration "$duration" --ramp "$ramp" --json \
        "http://127.0.0.1:$origin_port/${PLAYLIST:-master.m3u8}" >"$out/run-$run.json" 2>"$out/viewer-$run.log"
    curl -fsS "http://127.0.0.1:$origin_port/_stats" >"$out/origin-stats-$run.json"
    cleanup
    pids=()
    python3 - "$out/run-$run.json" "$out/origin-stats-$run.json" "$run" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
o = json.load(open(sys.argv[2]))
segs = sum(c["requests"] for p, c in o["paths"].items() if p.endswith(".ts"))
played = sum(v["segments_delivered"] for v in s["per_viewer"])
print(f"run {sys.argv[3]}: viewers {s['viewers']} | offload {s['offload']*100:.1f}% | "
      f"stalls {s['stalls']} ({s['stall_seconds']:.1f} s) | "
      f"announce->channel p50 {s['announce_to_channel_seconds_p50']} s "
      f"p99 {s['announce_to_channel_seconds_p99']} s | "
      f"CPU {s['cpu_cores_per_viewer']*100:.2f}% of a core per viewer | "
      f"peak RSS {s['peak_rss_mib']:.0f} MiB ({s['peak_rss_mib_per_viewer']:.2f} MiB per viewer) | "
      f"origin segment requests {segs} for {played} segments played | "
      f"integrity failures {s['integrity_failures']}")
EOF
done

python3 - "$out" "$runs" <<'EOF'
import json, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
rs = [json.load(open(f"{out}/run-{i}.json")) for i in range(1, runs + 1)]
def med(key, scale=1.0):
    vals = [r[key] for r in rs if r.get(key) is not None]
    return statistics.median(vals) * scale if vals else None
print(f"median of {runs}: offload {med('offload', 100):.1f}% | stalls {med('stalls')} | "
      f"announce->channel p50 {med('announce_to_channel_seconds_p50', 1000):.0f} ms "
      f"p99 {med('announce_to_channel_seconds_p99', 1000):.0f} ms | "
      f"CPU {med('cpu_cores_per_viewer', 100):.2f}% of a core per viewer | "
      f"peak RSS {med('peak_rss_mib_per_viewer'):.2f} MiB per viewer")
print(f"summaries and logs in {out}")
EOF
