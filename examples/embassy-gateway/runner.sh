#!/usr/bin/env bash
# The cargo runner for `--target thumbv7em-none-eabihf` (see .cargo/config.toml): boots an `mps2`
# build under QEMU, hands an `stm32` build to probe-rs. It tells them apart by the ELF's entry point:
# the mps2-an386 image lives at address 0 (memory-mps2.x), the STM32's in flash at 0x0800_0000.
#
#   runner.sh ELF [probe-rs arguments...]
#
# For mps2, QEMU's user-mode network is restricted to the forwarded port: 127.0.0.1:$O2D_PORT on this
# machine reaches the gateway's port 80, nothing else goes in or out. Environment (all optional):
#   O2D_PORT   host port forwarded to the gateway (default 8080; the issuer URL follows it)
#   O2D_STATE  the flash file (default embassy-gateway-mps2.bin in the current directory; no spaces)
#   O2D_ARGS   more firmware options, e.g. "--read-timeout 3 --interval 1 --log debug"
#   O2D_QEMU   more QEMU options, e.g. "-icount shift=0"
# Stop it with Ctrl-C.
set -euo pipefail

elf=${1:?usage: runner.sh ELF [args...]}
shift
entry=$(od -An -tx4 -j24 -N4 "$elf" | tr -d ' ')
case "$entry" in
0000*)
    port=${O2D_PORT:-8080}
    state=${O2D_STATE:-embassy-gateway-mps2.bin}
    # shellcheck disable=SC2086 # O2D_QEMU is a list of options
    exec qemu-system-arm -machine mps2-an386 -cpu cortex-m4 \
        -display none -monitor none -serial none \
        -semihosting-config enable=on,target=native \
        -nic "user,restrict=on,hostfwd=tcp:127.0.0.1:$port-:80" \
        ${O2D_QEMU:-} \
        -kernel "$elf" \
        -append "--issuer http://127.0.0.1:$port --state $state ${O2D_ARGS:-}"
    ;;
08*)
    exec probe-rs run --chip STM32F767ZITx "$elf" "$@"
    ;;
*)
    echo "runner.sh: $elf: entry point 0x$entry is neither an mps2 nor an STM32 image" >&2
    exit 1
    ;;
esac
