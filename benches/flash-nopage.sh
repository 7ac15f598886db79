#!/usr/bin/env bash
# Flash of the provider core + HTTP binding WITHOUT the default-on `page`
# feature (the verification and connected-devices pages), beside the default
# build: the size-probe firmware's core_http variant, built once as it is and
# once from a temporary copy of size-probe/ whose core_http feature leaves
# `oauth2-devices/page` out. Same profile, target and measurement as
# .ci/footprint.sh (arm-none-eabi-size -A, .text+.rodata minus the baseline
# variant's). Advisory figures; see BENCHMARKS.md.
#
# Usage: bash benches/flash-nopage.sh        (from any directory; after or
#        instead of .ci/footprint.sh, whose tools it needs: the
#        thumbv7em-none-eabihf target and arm-none-eabi-size)
set -euo pipefail
TARGET=thumbv7em-none-eabihf
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
PROBE="$ROOT/size-probe"
TARGET_DIR="$PROBE/target"
OUT="$TARGET_DIR/footprint"
mkdir -p "$OUT"

copy=$(mktemp -d)
trap 'rm -rf "$copy"' EXIT
# The copy: sources, memory map, build script and cargo config; the library by absolute path.
cp -r "$PROBE/src" "$PROBE/build.rs" "$PROBE/memory.x" "$PROBE/.cargo" "$PROBE/Cargo.lock" "$copy/"
sed -e "s|path = \"\.\.\"|path = \"$ROOT\"|" \
    -e 's|^core_http = \["core", "oauth2-devices/http", "oauth2-devices/page"\]|core_http = ["core", "oauth2-devices/http"]|' \
    "$PROBE/Cargo.toml" >"$copy/Cargo.toml"
grep -q '^core_http = \["core", "oauth2-devices/http"\]$' "$copy/Cargo.toml" || {
    echo "size-probe/Cargo.toml: core_http is not [core, oauth2-devices/http, oauth2-devices/page] any more; update this script" >&2
    exit 1
}

build() { # DIR FEATURE NAME
    (cd "$1" && cargo build -q --release --target "$TARGET" --target-dir "$TARGET_DIR" --features "$2" --bin size-probe)
    cp "$TARGET_DIR/$TARGET/release/size-probe" "$OUT/size-probe-$3"
}
build "$PROBE" baseline baseline
build "$PROBE" core_http core_http
build "$copy" core_http core_http_nopage

text_rodata() {
    arm-none-eabi-size -A "$1" | awk '$1==".text"{t=$2} $1==".rodata"{r=$2} END{print t + r}'
}
base=$(text_rodata "$OUT/size-probe-baseline")
echo "provider core + HTTP, .text+.rodata minus baseline ($base B), $TARGET, opt-level z:"
for v in core_http core_http_nopage; do
    d=$(($(text_rodata "$OUT/size-probe-$v") - base))
    case $v in
        core_http) limit=$((44 * 1024)); what="default features (page on)" ;;
        *) limit=$((38 * 1024)); what="without the page feature" ;;
    esac
    verdict=$([ "$d" -le "$limit" ] && echo met || echo missed)
    awk -v w="$what" -v d="$d" -v l=$((limit / 1024)) -v v="$verdict" \
        'BEGIN{printf "  %-28s %6d B = %5.1f KiB   target <= %d KiB: %s\n", w, d, d / 1024, l, v}'
done
