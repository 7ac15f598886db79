#!/usr/bin/env bash
# Load test: the host gateway (examples/gateway.rs) against the transport
# floor (a trivial server on the same transport, the `load` bin's
# --serve-floor), with the `load` bin's own client and, when installed, wrk;
# then the 200 path of POST /oauth/device from 127.0.0.2..=127.0.0.9.
# Loopback only, bounded in time. Figures: BENCHMARKS.md.
#
# Usage: bash benches/load.sh [SECONDS [CONNECTIONS [ROUNDS]]]   (from any directory)
# Env:   LOAD_SERVER_CPU  core for the gateway and the floor (default 0)
#        LOAD_CLIENT_CPU  core for the clients, the load bin and wrk (default 1)
#        LOAD_PIN=0       no taskset (server and clients share every core)
#        LOAD_WRK=0       skip wrk even if it is installed (Debian package `wrk`)
#        LOAD_GATEWAY_ARGS  more options for the gateway
#        LOAD_GATEWAY_BIN   a gateway executable built elsewhere (another commit),
#                           instead of this tree's examples/gateway.rs
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SECONDS_PER_RUN=${1:-2}
CONNECTIONS=${2:-8}
ROUNDS=${3:-3}
SERVER_CPU=${LOAD_SERVER_CPU:-0}
CLIENT_CPU=${LOAD_CLIENT_CPU:-1}

cargo build -q --release -p oauth2-devices-benches --bin load
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
GATEWAY_BIN=${LOAD_GATEWAY_BIN:-}
if [ -z "$GATEWAY_BIN" ]; then
    cargo build -q --release --example gateway
    GATEWAY_BIN="$TARGET_DIR/release/examples/gateway"
fi

server=()
client=()
floor_args=()
if [ "${LOAD_PIN:-1}" != 0 ] && command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
    server=(taskset -c "$SERVER_CPU")
    client=(taskset -c "$CLIENT_CPU")
    floor_args=(--floor-cpu "$SERVER_CPU")
    echo "pinned: gateway and floor on CPU $SERVER_CPU, clients on CPU $CLIENT_CPU (taskset)"
else
    echo "not pinned: server and clients share the cores"
fi
wrk_args=()
if [ "${LOAD_WRK:-1}" != 0 ] && command -v wrk >/dev/null 2>&1; then
    wrk_args=(--wrk)
else
    echo "wrk: not measured (install the Debian package wrk, or LOAD_WRK=0 was set)"
fi

work=$(mktemp -d)
# The gateway logs one line per request; keep it in a file, not a terminal.
# shellcheck disable=SC2086
"${server[@]}" "$GATEWAY_BIN" --addr 127.0.0.1:0 --no-state ${LOAD_GATEWAY_ARGS:-} \
    >"$work/gateway.log" 2>&1 &
gateway=$!
cleanup() {
    kill "$gateway" 2>/dev/null || true
    wait "$gateway" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# Its first line is `listening on http://ADDR` (port 0: the system picks one).
addr=
for _ in $(seq 100); do
    addr=$(head -n1 "$work/gateway.log" | sed -n 's|^listening on http://||p')
    [ -n "$addr" ] && break
    kill -0 "$gateway" 2>/dev/null || { cat "$work/gateway.log" >&2; echo "the gateway exited" >&2; exit 1; }
    sleep 0.1
done
[ -n "$addr" ] || { echo "the gateway did not report its address" >&2; exit 1; }

"${client[@]}" "$TARGET_DIR/release/load" --gateway "$addr" --seconds "$SECONDS_PER_RUN" \
    --connections "$CONNECTIONS" --rounds "$ROUNDS" --device-seconds "$SECONDS_PER_RUN" --gateway-pid "$gateway" \
    "${floor_args[@]}" "${wrk_args[@]}"
