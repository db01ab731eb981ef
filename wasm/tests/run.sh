#!/usr/bin/env bash
# Runs the browser tests (node's test runner) inside a network namespace of their own, so that
# WebRTC traffic never reaches an address outside this machine: the namespace has loopback
# (tracker, origin and page server listen on 127.0.0.1) and one veth pair whose address
# 198.18.0.1 is where Chromium's host candidates live (Chromium gathers no loopback candidates,
# and only on the interface of the default route). Needs root (unshare -n), as in CI.
#
#   wasm/tests/run.sh [TEST FILE...]      (default: every tests/*.test.mjs)
set -euo pipefail
self=$(realpath "$0")
cd "$(dirname "$self")/.."
if [ -z "${P2P_TEST_ADDRESS:-}" ]; then
    exec unshare --net env P2P_TEST_ADDRESS=198.18.0.1 bash "$self" "$@"
fi
ip link set lo up
ip link add p2pt0 type veth peer name p2pt1
ip addr add "$P2P_TEST_ADDRESS/24" dev p2pt0
ip link set p2pt0 up
ip link set p2pt1 up
ip route add default via 198.18.0.2 dev p2pt0
(($#)) || set -- tests/*.test.mjs
rm -rf tests/work/corrupt   # the test build of the package is rebuilt with the code under test
exec node --test --test-concurrency=1 "$@"
