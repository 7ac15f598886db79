#!/usr/bin/env bash
# Footprint of oauth2-devices: RAM (size_of, host and Cortex-M4), flash
# (size-probe firmware variants for thumbv7em-none-eabihf), stack depth and
# instructions per request (Cortex-M4 under QEMU mps2-an386, -icount shift=0).
# The figures and how to read them: BENCHMARKS.md.
#
# Usage: bash .ci/footprint.sh        (from any directory)
# Env:   FOOTPRINT_TIMEOUT   seconds before QEMU is killed (default 120)
#        FOOTPRINT_LOG       where the QEMU output goes
#                            (default size-probe/target/footprint/measure.log)
#
# Installs what it needs if missing (the thumbv7em target with rustup;
# binutils-arm-none-eabi and qemu-system-arm with apt-get).
#
# Budgets and targets: the stack budget (< 4 KiB per request) and the RAM per
# pending grant (<= 32 B) are safety limits: the measure bin fails (no
# `MEASURE OK`, exit status 1) when one is exceeded, and so does this script.
# The flash figures and instruction counts are ADVISORY: targets that later
# features move, reported with a verdict but never failing the run. Exits
# non-zero if something fails to install, build or run, or a budget is
# exceeded.
set -euo pipefail

TARGET=thumbv7em-none-eabihf
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
PROBE="$ROOT/size-probe"
PROBE_TARGET_DIR="$PROBE/target"
OUT="$PROBE_TARGET_DIR/footprint"
LOG=${FOOTPRINT_LOG:-$OUT/measure.log}
TIMEOUT=${FOOTPRINT_TIMEOUT:-120}
# The flash target of the library (core_http minus baseline, default features with the pages), in
# bytes: advisory (BENCHMARKS.md; without the `page` feature the target is 38 KiB, benches/flash-nopage.sh).
FLASH_TARGET=$((44 * 1024))

log() { printf '==> %s\n' "$*" >&2; }

# --- tools ------------------------------------------------------------------
if command -v rustup >/dev/null 2>&1; then
    if ! rustup target list --installed | grep -qx "$TARGET"; then
        log "installing Rust target $TARGET"
        rustup target add "$TARGET"
    fi
else
    log "rustup not found; assuming the $TARGET standard library is installed"
fi

missing=()
command -v arm-none-eabi-size >/dev/null 2>&1 || missing+=(binutils-arm-none-eabi)
command -v qemu-system-arm >/dev/null 2>&1 || missing+=(qemu-system-arm)
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]} with apt-get"
    SUDO=
    if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
    $SUDO apt-get update
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

# --- RAM on the host ----------------------------------------------------------
log "host RAM figures (cargo run -p oauth2-devices-benches --bin footprint)"
cargo run -q -p oauth2-devices-benches --bin footprint

# --- flash: size-probe variants -----------------------------------------------
# A RUSTFLAGS/CARGO_ENCODED_RUSTFLAGS from the environment replaces the
# rustflags of size-probe/.cargo/config.toml, which would drop cortex-m-rt's
# linker script; re-add it for the firmware builds only.
# (Only when set and non-empty: cargo takes even an empty variable as the flags.)
probe_cargo() {
    (
        cd "$PROBE"
        if [ -n "${CARGO_ENCODED_RUSTFLAGS:-}" ]; then
            export CARGO_ENCODED_RUSTFLAGS="${CARGO_ENCODED_RUSTFLAGS}"$'\x1f'"-Clink-arg=-Tlink.x"
        elif [ -n "${RUSTFLAGS:-}" ]; then
            export RUSTFLAGS="$RUSTFLAGS -C link-arg=-Tlink.x"
        fi
        cargo build -q --release --target "$TARGET" --target-dir "$PROBE_TARGET_DIR" "$@"
    )
}

mkdir -p "$OUT"
variants=(baseline core core_http)
for v in "${variants[@]}"; do
    log "building size-probe --features $v (opt-level z, lto, codegen-units 1)"
    probe_cargo --features "$v" --bin size-probe
    cp "$PROBE_TARGET_DIR/$TARGET/release/size-probe" "$OUT/size-probe-$v"
done

# Section sizes from `arm-none-eabi-size -A`: vector_table text rodata data bss.
sections() {
    arm-none-eabi-size -A "$1" | awk '
        $1==".vector_table"{v=$2} $1==".text"{t=$2} $1==".rodata"{r=$2}
        $1==".data"{d=$2} $1==".bss"{b=$2}
        END{printf "%d %d %d %d %d\n", v, t, r, d, b}'
}

echo
echo "Flash and static RAM on $TARGET (arm-none-eabi-size -A, bytes; flash = .vector_table+.text+.rodata+.data; advisory)"
printf '  %-10s %8s %8s %12s %8s %6s %6s %8s %16s\n' \
    variant .text .rodata text+rodata .vector .data .bss flash "Δ text+rodata"
base=
http_delta=0
for v in "${variants[@]}"; do
    read -r vt t r d b < <(sections "$OUT/size-probe-$v")
    tr=$((t + r))
    if [ -z "$base" ]; then base=$tr; fi
    delta=$((tr - base))
    if [ "$v" = core_http ]; then http_delta=$delta; fi
    printf '  %-10s %8d %8d %12d %8d %6d %6d %8d %16s\n' \
        "$v" "$t" "$r" "$tr" "$vt" "$d" "$b" $((vt + t + r + d)) "+$delta"
done
verdict=$([ "$http_delta" -lt "$FLASH_TARGET" ] && echo met || echo missed)
echo "advisory target (reported, not failing): provider core + HTTP < 44 KiB flash (core_http - baseline, .text+.rodata): $verdict ($http_delta B)"

# --- stack and instructions under QEMU ----------------------------------------
log "building size-probe measure (--features measure)"
probe_cargo --features measure --bin measure
echo
log "running the measurement under qemu-system-arm (mps2-an386, -icount shift=0, timeout ${TIMEOUT}s);"
log "stack per request and RAM per grant are budgets (failing), instruction counts advisory"
set +e
timeout "$TIMEOUT" qemu-system-arm \
    -cpu cortex-m4 -machine mps2-an386 -nographic -icount shift=0 \
    -semihosting-config enable=on,target=native \
    -kernel "$PROBE_TARGET_DIR/$TARGET/release/measure" </dev/null >"$LOG" 2>&1
status=$?
set -e
tr -d '\r' <"$LOG"
if [ "$status" -eq 124 ]; then
    log "FAIL: qemu timed out after ${TIMEOUT}s"
    exit 1
fi
if [ "$status" -ne 0 ] || ! tr -d '\r' <"$LOG" | grep -qx 'MEASURE OK'; then
    tr -d '\r' <"$LOG" | grep -E 'MEASURE FAILED|OVER THE STACK BUDGET|EXCEEDED' >&2 || true
    log "FAIL: a budget was exceeded or the measurement did not complete (qemu status $status); log: $LOG"
    exit 1
fi
log "footprint done"
