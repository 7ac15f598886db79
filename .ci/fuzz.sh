#!/usr/bin/env bash
# Fuzz smoke run: builds every cargo-fuzz target in fuzz/ and runs each for a bounded time with its
# dictionary and a temporary copy of its seed corpus (so the run adds nothing to the repository).
# Fails on any crash, leak, timeout or out-of-memory. Works from any directory.
#
#   FUZZ_SECONDS=20   seconds per target (default 20)
#   FUZZ_TARGETS="…"  targets to run (default: every target `cargo fuzz list` reports)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TERM_COLOR=never
seconds=${FUZZ_SECONDS:-20}

if ! cargo +nightly --version >/dev/null 2>&1; then
  rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

cd fuzz
targets=${FUZZ_TARGETS:-$(cargo +nightly fuzz list)}
cargo +nightly fuzz build

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bin=target/$(rustc -vV | sed -n 's/^host: //p')/release
status=0
for t in $targets; do
  mkdir -p "$work/$t/corpus"
  if [ -d "corpus/$t" ]; then
    cp corpus/"$t"/seed-* "$work/$t/corpus/" 2>/dev/null || true
  fi
  dict=()
  [ -f "dict/$t.dict" ] && dict=(-dict="dict/$t.dict")
  echo "==> fuzz $t for ${seconds}s"
  # One process on one core; -rss_limit_mb and -timeout are libFuzzer's defaults made explicit.
  if "$bin/$t" "$work/$t/corpus" "${dict[@]}" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
    -artifact_prefix="$work/$t/" -print_final_stats=1 >"$work/$t.log" 2>&1; then
    grep -E '^#[0-9]+[[:space:]]+DONE' "$work/$t.log" | tail -1 || true
  else
    status=1
    echo "!! $t failed:"
    grep -A4 -E 'panicked at|==ERROR|ERROR: libFuzzer' "$work/$t.log" | head -n 40 || true
    echo "!! the end of its log:"
    tail -n 15 "$work/$t.log"
    for a in "$work/$t"/crash-* "$work/$t"/leak-* "$work/$t"/timeout-* "$work/$t"/oom-*; do
      [ -f "$a" ] || continue
      echo "!! reproducer $(basename "$a") (base64):"
      base64 -w0 "$a"
      echo
    done
  fi
done
exit $status
