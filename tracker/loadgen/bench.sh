#!/usr/bin/env bash
# The tracker benchmark of tracker/BENCHMARKS.md: builds in release, then for our `tracker` and for
# the `bittorrent-tracker` npm server (WebSocket only), RUNS times each on a fresh server process:
#   1. throughput ramp: peak relayed messages/s (offers + answers delivered);
#   2. fixed rate at half the peak announce rate the server sustained: announce-to-offer
#      latency p50/p99;
#   2b. fixed rate at half the busiest ramp step in which the server kept up (delivered every
#      offer it took, p99 under 100 ms);
#   3. fixed rate of COMMON_RATE announces/s for every server: latency under the same load;
#   (the ramp also gives the most relayed messages/s of a step whose p99 stayed under 5 ms)
#   4. idle memory: server VmRSS per idle connection (slope between IDLE_CONNECTIONS/4 and
#      IDLE_CONNECTIONS; the per-process fd limit here is 20000, so 50,000 cannot be reached).
# And, RUNS times with no server at all, the loopback floor: the CPU the kernel takes per message
# across a loopback TCP connection (CONNECTIONS pairs), which with the transfers a relayed message
# takes (from the ramp) gives the most relayed messages/s any server could reach on this machine.
# Prints every run and the medians, and the ratio ours / reference.
#
# Usage: tracker/loadgen/bench.sh  (RUNS=3 IDLE_CONNECTIONS=19000 CONNECTIONS=5000 COMMON_RATE=250)
#        RUNS=1 SERVERS=ours tracker/loadgen/bench.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

RUNS=${RUNS:-3}
SERVERS=${SERVERS:-"ours reference"}
CONNECTIONS=${CONNECTIONS:-5000}
IDLE_CONNECTIONS=${IDLE_CONNECTIONS:-19000}
COMMON_RATE=${COMMON_RATE:-250}
PORT=${PORT:-18400}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
ulimit -n "$(ulimit -Hn)"

cargo build --release -j2 -p tracker -p tracker-loadgen >&2
if [ ! -d tracker/loadgen/js/node_modules ]; then
    (cd tracker/loadgen/js && npm ci --no-audit --no-fund --loglevel=error) >&2
fi
LOADGEN=$CARGO_TARGET_DIR/release/tracker-loadgen
TRACKER=$CARGO_TARGET_DIR/release/tracker
LOAD=(--tracker "127.0.0.1:$PORT" --connections "$CONNECTIONS" --swarms 1000 --zipf-exponent 1.0
      --offers-min 5 --offers-max 10 --source-addresses 100)
RESULTS=$(mktemp -d)
SERVER_PID=

# Starts server $1 on $PORT (our tracker with its defaults) and sets SERVER_PID.
start_server() {
    if [ "$1" = ours ]; then
        "$TRACKER" --listen "127.0.0.1:$PORT" --log warn &
        SERVER_PID=$!
        for _ in $(seq 50); do
            (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return 0
            sleep 0.1
        done
        echo "tracker did not start" >&2
        return 1
    else
        exec {out}< <(cd tracker/loadgen/js && exec node reference-server.mjs "$PORT")
        read -r line <&"$out"
        SERVER_PID=${line##* }
    fi
}

stop_server() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    # The reference server runs in a process substitution; wait for its port to close.
    while kill -0 "$SERVER_PID" 2>/dev/null; do sleep 0.1; done
    sleep 0.5
}

# Runs server $1 at $3 announces/s and saves the report as $RESULTS/$1-$2.json ($4: why).
latency_run() {
    echo "== $1: latency at $3 announces/s ($4)" >&2
    start_server "$1"
    "$LOADGEN" "${LOAD[@]}" --tracker-pid "$SERVER_PID" --rate "$3" --duration 6 --warmup 2 \
        --json > "$RESULTS/$1-$2.json"
    stop_server
}

# The ramp steps (of report `r`) in which the server kept up: every offer it took was delivered
# (the relayed offers per announce of the first, light step, within 5 %) and the p99 stayed under
# 100 ms.
export KEPT_UP_STEPS='(r) => r.windows.filter((w) => w.offer_latency_p99_ms < 100 && w.failures === 0 && w.offers_relayed_per_sec / w.announces_per_sec >= 0.95 * r.windows[0].offers_relayed_per_sec / r.windows[0].announces_per_sec)'

# Prints field $2 (a JS expression on `r`) of the JSON report in file $1.
field() { node -e "const r = JSON.parse(require('fs').readFileSync('$1', 'utf8')); console.log($2)"; }

for run in $(seq "$RUNS"); do
    echo "== loopback floor run $run" >&2
    "$LOADGEN" --mode loopback-floor --connections "$CONNECTIONS" --source-addresses 100 \
        --duration 5 --warmup 1 --json > "$RESULTS/floor-$run.json"
done

for server in $SERVERS; do
    for run in $(seq "$RUNS"); do
        echo "== $server run $run: throughput ramp" >&2
        start_server "$server"
        "$LOADGEN" "${LOAD[@]}" --tracker-pid "$SERVER_PID" --ramp-start 500 --ramp-factor 1.2 \
            --max-steps 24 --step-seconds 3 --json \
            > "$RESULTS/$server-ramp-$run.json"
        stop_server
        # The peak rate the server sustained: announces whose offers it relayed. At the peak
        # step a saturated server falls behind the announces sent, so the sent rate overstates
        # it; the relayed offers per announce of the first (light) step convert back.
        sustained=$(field "$RESULTS/$server-ramp-$run.json" \
            "Math.min(r.peak.announces_per_sec, r.peak.offers_relayed_per_sec * r.windows[0].announces_per_sec / r.windows[0].offers_relayed_per_sec)")
        half=$(node -e "console.log(Math.max(1, Math.round($sustained / 2)))")
        latency_run "$server" "half-$run" "$half" "half the peak"
        # Half the announce rate of the busiest step in which the server kept up.
        kept_up=$(field "$RESULTS/$server-ramp-$run.json" \
            "Math.max(r.windows[0].announces_per_sec, ...($KEPT_UP_STEPS)(r).map((w) => w.announces_per_sec))")
        half=$(node -e "console.log(Math.max(1, Math.round($kept_up / 2)))")
        latency_run "$server" "halfkept-$run" "$half" "half the busiest step that kept up"
        latency_run "$server" "common-$run" "$COMMON_RATE" "the same load for both"
        echo "== $server run $run: idle memory" >&2
        start_server "$server"
        "$LOADGEN" --mode idle-memory --tracker "127.0.0.1:$PORT" --tracker-pid "$SERVER_PID" \
            --connections "$IDLE_CONNECTIONS" --source-addresses 100 --swarms 1000 --json \
            > "$RESULTS/$server-idle-$run.json"
        stop_server
    done
done

node - "$RESULTS" $SERVERS <<'EOF'
const fs = require('fs')
const [dir, ...servers] = process.argv.slice(2)
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2 }
const load = (server, kind) => fs.readdirSync(dir).filter((f) => f.startsWith(`${server}-${kind}-`)).sort().map((f) => JSON.parse(fs.readFileSync(`${dir}/${f}`, 'utf8')))
const keptUpSteps = eval(process.env.KEPT_UP_STEPS)
const show = (figures) => {
  for (const [name, values] of Object.entries(figures)) {
    console.log(`  ${name.padEnd(34)} median ${median(values).toFixed(2).padStart(12)}   runs ${values.map((v) => v.toFixed(2)).join(', ')}`)
  }
}
const floor = fs.readdirSync(dir).filter((f) => f.startsWith('floor-')).sort().map((f) => JSON.parse(fs.readFileSync(`${dir}/${f}`, 'utf8')))
const floorFigures = {
  'floor µs of CPU per transfer': floor.map((r) => r.cpu_us_per_transfer),
  'floor transfers/s on all cores': floor.map((r) => r.transfers_per_sec_on_all_cores),
}
console.log(`\nloopback floor (${floor[0].connections} connection pairs, ${floor[0].message_bytes}-byte messages):`)
show(floorFigures)
const figures = {}
for (const server of servers) {
  const ramp = load(server, 'ramp'), half = load(server, 'half'), idle = load(server, 'idle')
  const common = load(server, 'common'), halfKept = load(server, 'halfkept')
  const f = {
    'peak relayed messages/s': ramp.map((r) => r.peak.relayed_messages_per_sec),
    'peak announces/s (sent)': ramp.map((r) => r.peak.announces_per_sec),
    'peak relayed offers/s': ramp.map((r) => r.peak.offers_relayed_per_sec),
    'peak relayed answers/s': ramp.map((r) => r.peak.answers_relayed_per_sec),
    'transfers per relayed message': ramp.map((r) => r.windows[0].transfers_per_relayed_message),
    'ceiling relayed msgs/s (floor)': ramp.map((r) => median(floorFigures['floor transfers/s on all cores']) / r.windows[0].transfers_per_relayed_message),
    'peak server CPU cores': ramp.map((r) => r.peak.server_cpu_cores),
    'peak loadgen CPU cores': ramp.map((r) => r.peak.loadgen_cpu_cores),
    'peak relayed msgs per server CPU s': ramp.map((r) => r.peak.relayed_messages_per_server_cpu_second),
    'peak server waits for CPU': ramp.map((r) => r.peak.server_cpu_wait ?? 0),
    'most msgs/s at a p99 < 5 ms step': ramp.map((r) => Math.max(0, ...r.windows.filter((w) => w.offer_latency_p99_ms < 5).map((w) => w.relayed_messages_per_sec))),
    'kept-up step relayed msgs/s': ramp.map((r) => Math.max(r.windows[0].relayed_messages_per_sec, ...keptUpSteps(r).map((w) => w.relayed_messages_per_sec))),
    'half-kept-up announces/s': halfKept.map((r) => r.windows[0].announces_per_sec),
    'half-kept-up relayed msgs/s': halfKept.map((r) => r.windows[0].relayed_messages_per_sec),
    'half-kept-up offer latency p50 ms': halfKept.map((r) => r.windows[0].offer_latency_p50_ms),
    'half-kept-up offer latency p99 ms': halfKept.map((r) => r.windows[0].offer_latency_p99_ms),
    'half-peak announces/s': half.map((r) => r.windows[0].announces_per_sec),
    'half-peak offer latency p50 ms': half.map((r) => r.windows[0].offer_latency_p50_ms),
    'half-peak offer latency p99 ms': half.map((r) => r.windows[0].offer_latency_p99_ms),
    'half-peak server CPU cores': half.map((r) => r.windows[0].server_cpu_cores),
    'half-peak server waits for CPU': half.map((r) => r.windows[0].server_cpu_wait ?? 0),
    'half-peak loadgen waits for CPU': half.map((r) => r.windows[0].loadgen_cpu_wait ?? 0),
    'common-rate announces/s': common.map((r) => r.windows[0].announces_per_sec),
    'common-rate offer latency p50 ms': common.map((r) => r.windows[0].offer_latency_p50_ms),
    'common-rate offer latency p99 ms': common.map((r) => r.windows[0].offer_latency_p99_ms),
    'common-rate server CPU cores': common.map((r) => r.windows[0].server_cpu_cores),
    'common-rate server waits for CPU': common.map((r) => r.windows[0].server_cpu_wait ?? 0),
    'idle KiB per connection': idle.map((r) => r.kib_per_connection),
    'idle connections reached': idle.map((r) => r.readings[r.readings.length - 1].connections),
    'failures + connection errors': [...ramp, ...half, ...halfKept, ...common].map((r) => r.totals.failures + r.totals.connect_errors + r.totals.disconnects),
  }
  figures[server] = f
  console.log(`\n${server}:`)
  show(f)
}
if (figures.ours && figures.reference) {
  console.log('\nratio ours / reference (medians):')
  for (const name of Object.keys(figures.ours)) {
    const a = median(figures.ours[name]), b = median(figures.reference[name])
    if (b) console.log(`  ${name.padEnd(34)} ${(a / b).toFixed(2)}`)
  }
}
console.log(`\nraw JSON reports: ${dir}`)
EOF
