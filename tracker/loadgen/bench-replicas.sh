#!/usr/bin/env bash
# The scale-out benchmark of tracker/BENCHMARKS.md ("Replicas and Redis"): the same load against
#   one   — one in-memory tracker;
#   two   — two tracker replicas sharing one redis-server (viewers alternate between them);
# RUNS times each, on fresh processes, all on this machine's two cores:
#   1. throughput ramp: peak relayed messages/s (the servers' CPU includes Redis's);
#   2. fixed rate at half the peak announce rate: announce-to-offer p50/p99, split into offers
#      relayed within one replica and across replicas;
#   with two replicas, from the trackers' /metrics and Redis's INFO: Redis round trips and
#   commands per announce, and Redis CPU.
# Prints every run, the medians and the ratio two / one.
#
# Usage: tracker/loadgen/bench-replicas.sh   (RUNS=3 CONNECTIONS=4000 SWARMS=2000)
set -euo pipefail
cd "$(dirname "$0")/../.."

RUNS=${RUNS:-3}
CONNECTIONS=${CONNECTIONS:-4000}
SWARMS=${SWARMS:-2000}
PORT=${PORT:-18450}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
ulimit -n "$(ulimit -Hn)"
command -v redis-server >/dev/null || { echo "needs redis-server (bash .ci/install)" >&2; exit 1; }

cargo build --release -j2 -p tracker -p tracker-loadgen >&2
LOADGEN=$CARGO_TARGET_DIR/release/tracker-loadgen
TRACKER=$CARGO_TARGET_DIR/release/tracker
RESULTS=$(mktemp -d)
REDIS_PORT=$((PORT + 10))
PIDS=()
ADDRS=()

wait_for_port() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on port $1" >&2
    return 1
}

# Starts setup $1 (one, two) and sets PIDS (trackers, then redis) and ADDRS.
start_setup() {
    PIDS=() ADDRS=()
    local redis=()
    if [ "$1" = two ]; then
        redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
            --loglevel warning &
        REDIS_PID=$!
        wait_for_port "$REDIS_PORT"
        redis=(--redis-url "redis://127.0.0.1:$REDIS_PORT/")
    fi
    local count=1
    [ "$1" = two ] && count=2
    for i in $(seq "$count"); do
        local port=$((PORT + i))
        "$TRACKER" --listen "127.0.0.1:$port" --log warn "${redis[@]}" &
        PIDS+=($!)
        ADDRS+=("127.0.0.1:$port")
        wait_for_port "$port"
    done
    [ "$1" = two ] && PIDS+=("$REDIS_PID")
    return 0
}

stop_setup() {
    kill "${PIDS[@]}" 2>/dev/null || true
    wait "${PIDS[@]}" 2>/dev/null || true
    sleep 0.5
}

# One loadgen run against the running setup; extra flags in "$@".
load() {
    local IFS=,
    "$LOADGEN" --tracker "${ADDRS[*]}" --tracker-pid "${PIDS[*]}" --connections "$CONNECTIONS" \
        --swarms "$SWARMS" --zipf-exponent 1.0 --offers-min 5 --offers-max 10 \
        --source-addresses 100 --json "$@"
}

# Sums a counter over the running trackers' /metrics.
tracker_sum() {
    local total=0
    for addr in "${ADDRS[@]}"; do
        value=$(curl -s "http://$addr/metrics" | awk -v name="$1" '$1 == name { print $2 }')
        total=$(awk -v a="$total" -v b="${value:-0}" 'BEGIN { print a + b }')
    done
    echo "$total"
}

# Redis figures as JSON: total commands and CPU seconds so far.
redis_figures() {
    redis-cli -p "$REDIS_PORT" info commandstats | awk -F'[=,:]' '/^cmdstat/ { calls += $3 } END { printf "%d ", calls }'
    redis-cli -p "$REDIS_PORT" info cpu | awk -F: '/^used_cpu_(sys|user):/ { cpu += $2 } END { printf "%f\n", cpu }'
}

for setup in one two; do
    for run in $(seq "$RUNS"); do
        echo "== $setup run $run: throughput ramp" >&2
        start_setup "$setup"
        load --ramp-start 500 --ramp-factor 1.2 --max-steps 24 --step-seconds 3 \
            > "$RESULTS/$setup-ramp-$run.json"
        stop_setup
        half=$(node tracker/loadgen/js/report.mjs half-peak "$RESULTS/$setup-ramp-$run.json")
        echo "== $setup run $run: latency at $half announces/s (half the peak)" >&2
        start_setup "$setup"
        if [ "$setup" = two ]; then read -r calls0 cpu0 < <(redis_figures); fi
        started=$(date +%s.%N)
        load --rate "$half" --duration 8 --warmup 2 > "$RESULTS/$setup-half-$run.json"
        if [ "$setup" = two ]; then
            read -r calls1 cpu1 < <(redis_figures)
            elapsed=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
            announces=$(tracker_sum tracker_announces_total)
            trips=$(( $(tracker_sum 'tracker_redis_round_trip_seconds_count{op="announce"}') \
                    + $(tracker_sum 'tracker_redis_round_trip_seconds_count{op="relay"}') ))
            answers=$(tracker_sum 'tracker_relayed_across_replicas_total{kind="answer"}')
            cat > "$RESULTS/$setup-redis-$run.json" <<JSON
{"announces": $announces, "announce_and_relay_round_trips": $trips, "cross_replica_answers": $answers,
 "redis_commands": $((calls1 - calls0)), "redis_cpu_seconds": $(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { print b - a }'),
 "seconds": $elapsed}
JSON
        fi
        stop_setup
    done
done

node tracker/loadgen/js/report.mjs replicas "$RESULTS"
