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
# Usage: tracker/loadgen/bench.sh  (RUNS=3 IDLE_CONNECTIONS=19000 CONNECTIONS=5000 SWARMS=2000
#                                   COMMON_RATE=250)
#        RUNS=1 SERVERS=ours tracker/loadgen/bench.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

RUNS=${RUNS:-3}
SERVERS=${SERVERS:-"ours reference"}
CONNECTIONS=${CONNECTIONS:-5000}
SWARMS=${SWARMS:-2000}
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
LOAD=(--tracker "127.0.0.1:$PORT" --connections "$CONNECTIONS" --swarms "$SWARMS" --zipf-exponent 1.0
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

# The figures of the JSON reports (js/report.mjs).
report() { node tracker/loadgen/js/report.mjs "$@"; }

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
        # Half the peak announce rate the server sustained (announces whose offers it relayed).
        half=$(report half-peak "$RESULTS/$server-ramp-$run.json")
        latency_run "$server" "half-$run" "$half" "half the peak"
        # Half the announce rate of the busiest step in which the server kept up.
        half=$(report half-kept-up "$RESULTS/$server-ramp-$run.json")
        latency_run "$server" "halfkept-$run" "$half" "half the busiest step that kept up"
        latency_run "$server" "common-$run" "$COMMON_RATE" "the same load for both"
        echo "== $server run $run: idle memory" >&2
        start_server "$server"
        "$LOADGEN" --mode idle-memory --tracker "127.0.0.1:$PORT" --tracker-pid "$SERVER_PID" \
            --connections "$IDLE_CONNECTIONS" --source-addresses 100 --swarms "$SWARMS" --json \
            > "$RESULTS/$server-idle-$run.json"
        stop_server
    done
done

report summary "$RESULTS" $SERVERS
