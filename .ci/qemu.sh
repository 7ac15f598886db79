#!/usr/bin/env bash
# Builds tests/qemu (a no_std, allocator-free test binary) for Cortex-M4 and
# runs the shared device-flow scenario on QEMU's mps2-an386 machine through
# semihosting. Fails unless QEMU exits 0 *and* the output has `QEMU FLOW OK`.
#
# Usage: .ci/qemu.sh            (from any directory)
# Env:   QEMU_TIMEOUT  seconds before the emulator is killed (default 300)
#        QEMU_LOG      where to write the captured output
#                      (default tests/qemu/target/qemu.log)
set -euo pipefail

TARGET=thumbv7em-none-eabihf
BIN=oauth2-devices-qemu

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
CRATE="$ROOT/tests/qemu"
ELF="$CRATE/target/$TARGET/release/$BIN"
LOG=${QEMU_LOG:-$CRATE/target/qemu.log}
TIMEOUT=${QEMU_TIMEOUT:-300}

log() { printf '==> %s\n' "$*" >&2; }

# --- toolchain target -------------------------------------------------------
if command -v rustup >/dev/null 2>&1; then
    if ! rustup target list --installed | grep -qx "$TARGET"; then
        log "installing Rust target $TARGET"
        rustup target add "$TARGET"
    fi
else
    log "rustup not found; assuming the $TARGET standard library is installed"
fi

# --- emulator ---------------------------------------------------------------
if ! command -v qemu-system-arm >/dev/null 2>&1; then
    log "qemu-system-arm not found; installing it with apt-get"
    SUDO=
    if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
    $SUDO apt-get update
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends qemu-system-arm
fi
qemu-system-arm --version | head -n1 >&2

# --- build ------------------------------------------------------------------
# A RUSTFLAGS/CARGO_ENCODED_RUSTFLAGS from the environment (e.g. CI's
# "-D warnings") *replaces* the rustflags in tests/qemu/.cargo/config.toml,
# which would drop cortex-m-rt's linker script; re-add it in that case.
if [ -n "${CARGO_ENCODED_RUSTFLAGS:-}" ]; then
    export CARGO_ENCODED_RUSTFLAGS="${CARGO_ENCODED_RUSTFLAGS}"$'\x1f'"-Clink-arg=-Tlink.x"
elif [ -n "${RUSTFLAGS:-}" ]; then
    export RUSTFLAGS="$RUSTFLAGS -C link-arg=-Tlink.x"
fi
log "building $BIN (release, $TARGET)"
(cd "$CRATE" && cargo build --release)

if command -v arm-none-eabi-size >/dev/null 2>&1; then
    arm-none-eabi-size "$ELF"
fi

# --- run --------------------------------------------------------------------
mkdir -p "$(dirname "$LOG")"
log "running under qemu-system-arm (mps2-an386, timeout ${TIMEOUT}s); log: $LOG"
start=$(date +%s)
set +e
timeout "$TIMEOUT" qemu-system-arm \
    -cpu cortex-m4 -machine mps2-an386 -nographic \
    -semihosting-config enable=on,target=native \
    -kernel "$ELF" </dev/null 2>&1 | tee "$LOG"
status=${PIPESTATUS[0]}
set -e
log "qemu exited with status $status after $(( $(date +%s) - start ))s"

if [ "$status" -eq 124 ]; then
    log "FAIL: qemu timed out after ${TIMEOUT}s"
    exit 1
fi
if [ "$status" -ne 0 ]; then
    log "FAIL: qemu exited with status $status"
    exit 1
fi
if ! tr -d '\r' <"$LOG" | grep -qx 'QEMU FLOW OK'; then
    log "FAIL: 'QEMU FLOW OK' not found in $LOG"
    exit 1
fi
log "PASS"
