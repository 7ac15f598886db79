#!/usr/bin/env bash
# Load test: the host gateway (examples/gateway.rs) against the transport
# floor (a trivial server on the same transport, inside the `load` bin).
# Loopback only, bounded in time. Figures: BENCHMARKS.md.
#
# Usage: bash benches/load.sh [SECONDS [CONNECTIONS [ROUNDS]]]   (from any directory)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SECONDS_PER_RUN=${1:-2}
CONNECTIONS=${2:-4}
ROUNDS=${3:-3}

cargo build -q --release --example gateway
cargo build -q --release -p oauth2-devices-benches --bin load
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')

work=$(mktemp -d)
# The gateway logs one line per request; keep it in a file, not a terminal.
GATEWAY_ADDR=127.0.0.1:0 "$TARGET_DIR/release/examples/gateway" --no-state >"$work/gateway.log" 2>&1 &
gateway=$!
cleanup() {
    kill "$gateway" 2>/dev/null || true
    wait "$gateway" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

addr=
for _ in $(seq 100); do
    addr=$(sed -n 's|^listening on http://||p' "$work/gateway.log" | head -n1)
    [ -n "$addr" ] && break
    kill -0 "$gateway" 2>/dev/null || { cat "$work/gateway.log" >&2; echo "the gateway exited" >&2; exit 1; }
    sleep 0.1
done
[ -n "$addr" ] || { echo "the gateway did not report its address" >&2; exit 1; }

"$TARGET_DIR/release/load" --gateway "$addr" --seconds "$SECONDS_PER_RUN" --connections "$CONNECTIONS" --rounds "$ROUNDS"
