#!/usr/bin/env bash
# HTTPS against plain HTTP on the host gateway (BENCHMARKS.md, "HTTPS"): keep-alive requests per second
# with wrk, both gateways pinned to CPU 0 and the client to CPU 1, twice each, alternating; then full
# TLS handshakes per second with `openssl s_time -new`. Loopback only; every run is bounded in time.
#
# Usage: bash benches/tls.sh     (needs wrk, openssl and taskset; builds the gateway in release)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
for tool in wrk openssl taskset; do
    command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 1; }
done
cargo build -q --release --example gateway
BIN=target/release/examples/gateway
STATE=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$STATE"; }
trap cleanup EXIT

start() { # start LOG ARGS...: a pinned gateway on a free port; prints its base URL
    local log=$1
    shift
    taskset -c 0 "$BIN" --addr 127.0.0.1:0 "$@" >"$log" 2>&1 &
    PIDS+=($!)
    local i
    for i in $(seq 100); do
        grep -q '^listening on ' "$log" 2>/dev/null && break
        sleep 0.1
    done
    sed -n 's/^listening on //p' "$log" | head -n 1
}

PLAIN=$(start "$STATE/plain.log" --no-state)
TLS=$(start "$STATE/tls.log" --tls --state-dir "$STATE/tls")
[ -n "$PLAIN" ] && [ -n "$TLS" ] || { echo "a gateway did not start" >&2; exit 1; }
PATH_=/.well-known/oauth-authorization-server
for run in 1 2; do
    for base in "$PLAIN" "$TLS"; do
        echo "== run $run: $base (wrk -t1 -c8 -d6s, keep-alive)"
        taskset -c 1 timeout 30 wrk -t1 -c8 -d6s --latency "$base$PATH_" | grep -E 'Requests/sec|50%|99%'
    done
done
echo "== full TLS handshakes (openssl s_time -new -time 5)"
taskset -c 1 timeout 30 openssl s_time -connect "${TLS#https://}" -new -time 5 2>&1 | grep -E 'connections in' || true
