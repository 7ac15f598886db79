#!/usr/bin/env bash
# The Embassy gateway (examples/embassy-gateway), end to end on two targets:
#
#   host  the gateway as a Linux process on a TAP device (feature `host`);
#   mps2  the Cortex-M4 firmware (feature `mps2`) booted under QEMU's mps2-an386 machine, with its
#         LAN9118 Ethernet on QEMU's user-mode network (restrict=on, one port forwarded to 127.0.0.1).
#
# Both run inside a private network namespace and get the same checks (check_* below): metadata, the
# device flow with curl, the verification page (Basic auth + CSRF), /api/me, error cases, the
# confidential client, device-code replay and refresh, three concurrent pollers with a page user, the
# crate's `device` example, idle and dribbling connections closed by the read timeout, and persistence:
# the gateway killed with SIGKILL and restarted on the same state file keeps the approved grant, the
# refresh token and a revocation. The mps2 run also reports the deepest stack (GET /debug/stack of the
# `probe` build), and a separate run under `-icount shift=0` the instructions per request.
#
# Builds first: the STM32F767ZI firmware (with and without the OAuth routes: flash and RAM), the mps2
# firmware (flash and RAM), clippy and the framing unit tests of the example, the host gateway.
#
# Usage: .ci/embassy.sh        (from any directory; needs root for `ip netns`)
# Env:   EMBASSY_TARGET_DIR      cargo target dir of the example (default: examples/embassy-gateway/target)
#        EMBASSY_SKIP_FIRMWARE=1 skip the STM32 builds
#        EMBASSY_TARGETS         which targets to run (default "host mps2")
#
# All traffic stays inside the namespace this script creates (o2d-e2e-PID): the host gateway's TAP link
# and QEMU's forwarded port on the namespace's own loopback. A trap kills what the script started and
# deletes the namespace on any exit. Every wait is bounded.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
CRATE="$ROOT/examples/embassy-gateway"
TARGET=thumbv7em-none-eabihf
TARGET_DIR=${EMBASSY_TARGET_DIR:-${CARGO_TARGET_DIR:-$CRATE/target}}
TARGETS=${EMBASSY_TARGETS:-host mps2}
WORK=$(mktemp -d /tmp/o2d-embassy.XXXXXX)
NS="o2d-e2e-$$"
TAP=tap-o2d
HOST_GW_IP=10.42.0.2
HOST_IP=10.42.0.1
CLIENT_IP=10.42.0.3
HOST_PORT=8080
MPS2_PORT=8080
READ_TIMEOUT=3
INTERVAL=1
SOCKETS=4
# QEMU's virtual clock (`-icount shift=0`): one instruction per nanosecond. Every request comes from
# QEMU's one user-mode address, and one address may hold at most half of the 16 grant slots (the
# table's fair share), so the samples stay under 8 live codes.
ICOUNT_SAMPLES=7

start=$(date +%s)
phase_start=$start
phase_name=
PHASES=()
log() { printf '==> [%4ss] %s\n' "$(($(date +%s) - start))" "$*" >&2; }
phase() { # phase NAME: closes the running phase (printing its time) and opens the next
    local now
    now=$(date +%s)
    if [ -n "$phase_name" ]; then
        PHASES+=("$(printf '%-44s %5s s' "$phase_name" "$((now - phase_start))")")
        log "phase '$phase_name' took $((now - phase_start)) s"
    fi
    phase_name=$1
    phase_start=$now
    [ -z "$1" ] || log "$1"
}
fail() {
    printf 'FAIL: %s\n' "$*" >&2
    if [ -f "$WORK/gateway.log" ]; then
        echo "--- gateway log (last 40 lines) ---" >&2
        tail -n 40 "$WORK/gateway.log" >&2 || true
    fi
    exit 1
}
passed=0
ok() {
    passed=$((passed + 1))
    printf '  ok  %s\n' "$*" >&2
}

if [ "$(id -u)" -ne 0 ]; then
    echo "embassy.sh needs root (it creates a network namespace and a TAP device)" >&2
    exit 1
fi

# --- cleanup -------------------------------------------------------------------------------------------
GW_PID=
BG_PIDS=()
cleanup() {
    local status=$?
    set +e
    for pid in "${BG_PIDS[@]}" $GW_PID; do
        kill -KILL "$pid" 2>/dev/null
    done
    for pid in "${BG_PIDS[@]}" $GW_PID; do
        wait "$pid" 2>/dev/null
    done
    if ip netns list 2>/dev/null | grep -qw "$NS"; then
        # Anything still running inside our own namespace was started by this script.
        for pid in $(ip netns pids "$NS" 2>/dev/null); do
            kill -KILL "$pid" 2>/dev/null
        done
        ip netns del "$NS" 2>/dev/null
    fi
    rm -rf "$WORK"
    exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- tools ---------------------------------------------------------------------------------------------
phase "tools"
if ! rustup target list --installed | grep -qx "$TARGET"; then
    log "installing Rust target $TARGET"
    rustup target add "$TARGET"
fi
need_apt=()
command -v ip >/dev/null || need_apt+=(iproute2)
command -v curl >/dev/null || need_apt+=(curl)
command -v arm-none-eabi-size >/dev/null || need_apt+=(binutils-arm-none-eabi)
case " $TARGETS " in *" mps2 "*) command -v qemu-system-arm >/dev/null || need_apt+=(qemu-system-arm) ;; esac
if [ ${#need_apt[@]} -gt 0 ]; then
    log "installing ${need_apt[*]}"
    # Another job on this machine may hold the dpkg lock: wait for it (bounded) rather than fail.
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
        "${need_apt[@]}" >/dev/null
fi
if [ ! -c /dev/net/tun ]; then
    modprobe tun 2>/dev/null || true
    mkdir -p /dev/net
    [ -c /dev/net/tun ] || mknod /dev/net/tun c 10 200
fi

cargo_ex() { # cargo_ex SUBCOMMAND ARGS...: cargo in the example's crate, with its target dir
    local sub=$1
    shift
    (cd "$CRATE" && nice -n 10 cargo "$sub" --target-dir "$TARGET_DIR" "$@")
}
FW="$TARGET_DIR/$TARGET/release/embassy-gateway"
FW_ARGS=(--release --target "$TARGET" --no-default-features)

# --- firmware ------------------------------------------------------------------------------------------
# "flash" = .text + .data (what is programmed), "RAM" = .data + .bss (static RAM; the stack comes on top).
size_line() { arm-none-eabi-size "$1" | awk 'NR == 2 { print $1 + $2, $2 + $3 }'; }
if [ "${EMBASSY_SKIP_FIRMWARE:-0}" != 1 ]; then
    phase "STM32F767ZI firmware (stm32, stm32+no-oauth) and its clippy"
    cargo_ex build "${FW_ARGS[@]}" --features stm32
    cp "$FW" "$WORK/fw-oauth.elf"
    cargo_ex clippy -q "${FW_ARGS[@]}" --features stm32 -- -D warnings
    cargo_ex build "${FW_ARGS[@]}" --features stm32,no-oauth
    cp "$FW" "$WORK/fw-plain.elf"
    arm-none-eabi-size "$WORK/fw-oauth.elf" "$WORK/fw-plain.elf"
    read -r flash_with ram_with < <(size_line "$WORK/fw-oauth.elf")
    read -r flash_without ram_without < <(size_line "$WORK/fw-plain.elf")
    printf '%-28s %10s %10s\n' "STM32F767ZI firmware" "flash (B)" "RAM (B)"
    printf '%-28s %10s %10s\n' "with the OAuth server" "$flash_with" "$ram_with"
    printf '%-28s %10s %10s\n' "without (no-oauth)" "$flash_without" "$ram_without"
    printf '%-28s %10s %10s\n' "difference" "$((flash_with - flash_without))" "$((ram_with - ram_without))"
    [ "$flash_with" -gt "$flash_without" ] || fail "the OAuth build is not larger than the no-oauth build"
    ok "firmware builds (stm32, stm32+no-oauth)"
fi
case " $TARGETS " in *" mps2 "*)
    phase "mps2 firmware (mps2, mps2+probe) and its clippy"
    cargo_ex build "${FW_ARGS[@]}" --features mps2
    cp "$FW" "$WORK/mps2.elf"
    cargo_ex clippy -q "${FW_ARGS[@]}" --features mps2,probe -- -D warnings
    cargo_ex build "${FW_ARGS[@]}" --features mps2,probe
    cp "$FW" "$WORK/mps2-probe.elf"
    arm-none-eabi-size "$WORK/mps2.elf" "$WORK/mps2-probe.elf"
    read -r MPS2_FLASH MPS2_RAM < <(size_line "$WORK/mps2.elf")
    ok "mps2 firmware builds: $MPS2_FLASH B flash, $MPS2_RAM B static RAM (+ 64 KiB stack region)"
    ;;
esac

# --- host build ----------------------------------------------------------------------------------------
# The example is its own workspace, so the root's fmt and clippy steps do not see it.
phase "format, clippy, unit tests and the host gateway"
if cargo fmt --version >/dev/null 2>&1; then (cd "$CRATE" && cargo fmt --check); fi
cargo_ex clippy -q -- -D warnings
# The LAN9118 framing rules, compiled for the host.
cargo_ex test -q 2>&1 | tail -n 3 >&2
cargo_ex build
GATEWAY="$TARGET_DIR/debug/embassy-gateway"
ok "host gateway built; framing unit tests pass"
phase "the crate's device example"
(cd "$ROOT" && nice -n 10 cargo build -q --example device)
DEVICE_BIN=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps 2>/dev/null |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/debug/examples/device
[ -x "$DEVICE_BIN" ] || fail "device example not found at $DEVICE_BIN"

# --- namespace and TAP ---------------------------------------------------------------------------------
phase "network namespace"
log "creating network namespace $NS with $TAP ($HOST_IP/24 on our side, host gateway at $HOST_GW_IP)"
ip netns add "$NS"
nsx() { ip netns exec "$NS" "$@"; }
nsx ip link set lo up
nsx ip tuntap add dev "$TAP" mode tap
nsx ip addr add "$HOST_IP/24" dev "$TAP"
# A second address of the namespace, for the legitimate client of the abuse checks.
nsx ip addr add "$CLIENT_IP/24" dev "$TAP"
nsx ip link set "$TAP" up

# --- the target under test -----------------------------------------------------------------------------
# KIND is host or mps2; BASE, CONNECT_HOST and CONNECT_PORT say where clients reach it; STATE is its
# state file (the host gateway's file, the mps2 board's flash).
KIND=
BASE=
CONNECT_HOST=
CONNECT_PORT=
STATE=
ELF=
QEMU_EXTRA=
use_target() { # use_target KIND [ELF]
    KIND=$1
    STATE="$WORK/state-$KIND.bin"
    rm -f "$STATE"
    case "$KIND" in
    host)
        CONNECT_HOST=$HOST_GW_IP
        CONNECT_PORT=$HOST_PORT
        ;;
    mps2)
        CONNECT_HOST=127.0.0.1
        CONNECT_PORT=$MPS2_PORT
        ELF=$2
        ;;
    esac
    BASE="http://$CONNECT_HOST:$CONNECT_PORT"
}

start_gateway() {
    : >"$WORK/gateway.log"
    # Not through a shell function, so that $! is the gateway (ip netns exec, env and runner.sh exec it).
    case "$KIND" in
    host)
        # shellcheck disable=SC2086 # HOST_EXTRA: extra options, split on purpose
        ip netns exec "$NS" "$GATEWAY" --tap "$TAP" --addr "$HOST_GW_IP/24" --port "$HOST_PORT" --state "$STATE" \
            --read-timeout "$READ_TIMEOUT" --interval "$INTERVAL" $HOST_EXTRA >>"$WORK/gateway.log" 2>&1 &
        ;;
    mps2)
        ip netns exec "$NS" env O2D_PORT="$MPS2_PORT" O2D_STATE="$STATE" O2D_QEMU="$QEMU_EXTRA" \
            O2D_ARGS="--read-timeout $READ_TIMEOUT --interval $INTERVAL" \
            "$CRATE/runner.sh" "$ELF" </dev/null >>"$WORK/gateway.log" 2>&1 &
        ;;
    esac
    GW_PID=$!
    local i
    for i in $(seq 300); do # 30 s
        grep -q "listening on" "$WORK/gateway.log" && break
        kill -0 "$GW_PID" 2>/dev/null || fail "the $KIND gateway exited at start"
        sleep 0.1
    done
    grep -q "listening on" "$WORK/gateway.log" || fail "the $KIND gateway did not start within 30 s"
    # The first packet may wait for ARP (host) or the guest's stack (QEMU forwards before it is up):
    # retry until the gateway answers (bounded).
    nsx curl -sS -o /dev/null -m 5 --retry 10 --retry-delay 1 --retry-all-errors "$BASE/" ||
        fail "the $KIND gateway does not answer on $BASE"
}
kill_gateway() { # SIGKILL: a power cut for the firmware, a crash for the host process
    kill -KILL "$GW_PID" 2>/dev/null || true
    wait "$GW_PID" 2>/dev/null || true
    GW_PID=
}

# --- HTTP helpers --------------------------------------------------------------------------------------
# req ARGS...: runs curl in the namespace; sets STATUS, BODY (and HEADERS).
# What every client here does on a `503` (the answer of a full connection pool): retry after its
# Retry-After, a few times. One address may hold 2 of the board's 3 serving sockets, and the pollers,
# the page user and the checks all share one.
POLITE=(--retry 4)
req() {
    local out
    out=$(nsx curl "${POLITE[@]}" -sS -m 10 -D "$WORK/headers" -o "$WORK/body" -w '%{http_code}' "$@") || {
        STATUS=000
        BODY=
        HEADERS=
        return 0
    }
    STATUS=$out
    BODY=$(cat "$WORK/body")
    HEADERS=$(cat "$WORK/headers")
}
expect() { # expect STATUS WHAT [SUBSTRING]
    [ "$STATUS" = "$1" ] || fail "$KIND: $2: expected HTTP $1, got $STATUS: $BODY"
    if [ $# -ge 3 ]; then
        case "$BODY" in *"$3"*) ;; *) fail "$KIND: $2: body lacks $3: $BODY" ;; esac
    fi
    ok "$KIND: $2 ($STATUS)"
}
field() { # field NAME JSON -> the string value of "NAME"
    printf '%s' "$2" | sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"
}
number() { # number NAME JSON -> the numeric value of "NAME"
    printf '%s' "$2" | sed -n "s/.*\"$1\":\([0-9][0-9]*\).*/\1/p"
}
DC_GRANT='urn:ietf:params:oauth:grant-type:device_code'

# authorize CLIENT_ARGS... -> sets DEVICE_CODE, USER_CODE
authorize() {
    req "$@" -d scope=profile "$BASE/oauth/device"
    [ "$STATUS" = 200 ] || fail "$KIND: device authorization: HTTP $STATUS: $BODY"
    DEVICE_CODE=$(field device_code "$BODY")
    USER_CODE=$(field user_code "$BODY")
    [ -n "$DEVICE_CODE" ] && [ -n "$USER_CODE" ] || fail "$KIND: device authorization: no codes in $BODY"
}
# approve USER_CODE: the verification page as a person uses it (GET, read the CSRF field, POST approve).
approve() {
    local html csrf
    html=$(nsx curl "${POLITE[@]}" -sS -m 10 -u alice:wonderland "$BASE/activate?user_code=$1") || fail "$KIND: GET /activate failed"
    csrf=$(printf '%s' "$html" | sed -n 's/.*name="csrf" value="\([^"]*\)".*/\1/p')
    [ -n "$csrf" ] || fail "$KIND: no CSRF field on the confirmation page: $html"
    req -u alice:wonderland --data-urlencode "user_code=$1" --data-urlencode "csrf=$csrf" -d action=approve \
        "$BASE/activate"
    [ "$STATUS" = 200 ] || fail "$KIND: approve $1: HTTP $STATUS: $BODY"
    case "$BODY" in *"Device approved"*) ;; *) fail "$KIND: approve $1: no 'Device approved' in the page" ;; esac
}
# poll_token CLIENT_ARGS...: polls the token endpoint for DEVICE_CODE as RFC 8628 asks of a device:
# waiting the interval before each poll (5 s more after a slow_down), at most 10 polls, until an
# answer other than authorization_pending. Sets STATUS and BODY.
poll_token() {
    local wait=$INTERVAL i
    for i in $(seq 10); do
        sleep "$wait" # the protocol's polling interval, not a synchronisation
        req "$@" -d "grant_type=$DC_GRANT" -d "device_code=$DEVICE_CODE" "$BASE/oauth/token"
        case "$STATUS:$BODY" in
        400:*authorization_pending*) ;;
        400:*slow_down*) wait=$((wait + 5)) ;;
        *) return 0 ;;
        esac
    done
}
# wait_saved PATTERN: waits (bounded) until the state of the last request whose access-log line matches
# PATTERN is in the state file: a "snapshot saved (..., up to date)" line logged after that request.
wait_saved() {
    local line i
    line=$(grep -n -- "$1" "$WORK/gateway.log" | tail -n 1 | cut -d: -f1)
    [ -n "$line" ] || fail "$KIND: no '$1' in the log"
    for i in $(seq 100); do # 10 s; the gateway coalesces saves for 100 ms
        tail -n +"$((line + 1))" "$WORK/gateway.log" | grep -q 'snapshot saved (.*up to date)' && return 0
        sleep 0.1
    done
    fail "$KIND: the state after '$1' was not saved within 10 s"
}

# --- the checks ----------------------------------------------------------------------------------------
check_flow() {
    log "$KIND: device flow with curl"
    req "$BASE/.well-known/oauth-authorization-server"
    expect 200 "metadata" "\"issuer\":\"$BASE\""
    authorize -d client_id=tv-demo
    ok "$KIND: device authorization (user code $USER_CODE)"
    req -d client_id=tv-demo -d "grant_type=$DC_GRANT" -d "device_code=$DEVICE_CODE" "$BASE/oauth/token"
    expect 400 "poll before approval" '"error":"authorization_pending"'
    req "$BASE/activate"
    expect 401 "verification page without sign-in"
    grep -qi '^www-authenticate: basic' <<<"$HEADERS" || fail "$KIND: 401 without a Basic challenge"
    req -u alice:wonderland "$BASE/activate?user_code=$USER_CODE"
    expect 200 "verification page, signed in" 'id="approve"'
    req -u alice:wonderland --data-urlencode "user_code=$USER_CODE" -d csrf=AAAAAAAAAAAAAAAAAAAAAA \
        -d action=approve "$BASE/activate"
    expect 403 "approval with a wrong CSRF token"
    approve "$USER_CODE"
    ok "$KIND: approval on the verification page"
    poll_token -d client_id=tv-demo
    expect 200 "token" '"access_token":"'
    ACCESS=$(field access_token "$BODY")
    REFRESH=$(field refresh_token "$BODY")
    req -H "Authorization: Bearer $ACCESS" "$BASE/api/me"
    expect 200 "/api/me with the token" '"name":"alice"'
    case "$BODY" in *'"client_id":"tv-demo"'*) ;; *) fail "$KIND: /api/me: wrong client: $BODY" ;; esac
    req "$BASE/api/me"
    expect 401 "/api/me without a token"
    grep -qi '^www-authenticate: bearer' <<<"$HEADERS" || fail "$KIND: /api/me 401 without a Bearer challenge"
    req -H "Authorization: Bearer ${ACCESS%?}x" "$BASE/api/me"
    expect 401 "/api/me with a forged token" 'invalid_token'
}

check_errors() {
    log "$KIND: error cases"
    req -d client_id=nobody -d scope=profile "$BASE/oauth/device"
    expect 401 "unknown client" '"error":"invalid_client"'
    req -u printer-demo:wrong-secret -d scope=profile "$BASE/oauth/device"
    expect 401 "confidential client, wrong secret" '"error":"invalid_client"'
    req "$BASE/oauth/token"
    expect 405 "GET on the token endpoint"
    grep -qi '^allow: post' <<<"$HEADERS" || fail "$KIND: 405 without Allow: POST"
    req -d client_id=tv-demo -d grant_type=password -d username=a -d password=b "$BASE/oauth/token"
    expect 400 "unknown grant type" '"error":"unsupported_grant_type"'
    req -d client_id=tv-demo -d scope=admin "$BASE/oauth/device"
    expect 400 "unknown scope" '"error":"invalid_scope"'
    req -H 'Content-Type: text/plain' --data-binary 'client_id=tv-demo' "$BASE/oauth/device"
    expect 415 "wrong content type"
    req "$BASE/nowhere"
    expect 404 "unknown path"
}

check_confidential() {
    log "$KIND: confidential client, replay, refresh, introspection"
    authorize -u printer-demo:printer-secret
    approve "$USER_CODE"
    poll_token -u printer-demo:printer-secret
    expect 200 "printer token (client_secret_basic)" '"access_token":"'
    PRINTER_ACCESS=$(field access_token "$BODY")
    req -u printer-demo:printer-secret -d "grant_type=$DC_GRANT" -d "device_code=$DEVICE_CODE" "$BASE/oauth/token"
    expect 400 "device code replay" '"error":"invalid_grant"'
    req -H "Authorization: Bearer $PRINTER_ACCESS" "$BASE/api/me"
    expect 401 "a token revoked by the replay"
    req -d client_id=tv-demo -d grant_type=refresh_token -d "refresh_token=$REFRESH" "$BASE/oauth/token"
    expect 200 "refresh" '"refresh_token":"'
    ACCESS2=$(field access_token "$BODY")
    REFRESH2=$(field refresh_token "$BODY")
    req -u printer-demo:printer-secret -d "token=$ACCESS2" "$BASE/oauth/introspect"
    expect 200 "introspection" '"active":true'
}

poller() { # poller N: a whole device flow, polling at the interval; writes its outcome to $WORK/poller.N
    local n=$1 body dc uc status i
    body=$(nsx curl "${POLITE[@]}" -sS -m 10 -d client_id=tv-demo -d scope=profile "$BASE/oauth/device") || {
        echo "authorize failed" >"$WORK/poller.$n"
        return 1
    }
    dc=$(field device_code "$body")
    uc=$(field user_code "$body")
    echo "$uc" >"$WORK/code.$n"
    for i in $(seq 30); do # at most 30 polls of at most 5 s each
        sleep "$INTERVAL"  # the protocol's polling interval
        status=$(nsx curl "${POLITE[@]}" -sS -m 5 -o "$WORK/poll.$n" -w '%{http_code}' -d client_id=tv-demo \
            -d "grant_type=$DC_GRANT" -d "device_code=$dc" "$BASE/oauth/token") || continue
        if [ "$status" = 200 ]; then
            echo ok >"$WORK/poller.$n"
            return 0
        fi
        grep -q -e authorization_pending -e slow_down "$WORK/poll.$n" || {
            echo "poll: $status $(cat "$WORK/poll.$n")" >"$WORK/poller.$n"
            return 1
        }
    done
    echo "gave up" >"$WORK/poller.$n"
    return 1
}
wait_file() { # wait_file FILE SECONDS: bounded wait for FILE to be non-empty
    local i
    for i in $(seq $(($2 * 10))); do
        [ -s "$1" ] && return 0
        sleep 0.1
    done
    return 1
}

check_concurrent() {
    log "$KIND: three concurrent pollers and a page user"
    local pollers=() n
    rm -f "$WORK"/poller.* "$WORK"/code.* "$WORK"/poll.*
    for n in 1 2 3; do
        poller "$n" &
        pollers+=($!)
        BG_PIDS+=($!)
    done
    for n in 1 2 3; do
        wait_file "$WORK/code.$n" 10 || fail "$KIND: poller $n got no user code"
        approve "$(cat "$WORK/code.$n")"
    done
    ok "$KIND: page user approved three codes while their devices polled"
    for n in 1 2 3; do
        wait "${pollers[$((n - 1))]}" || fail "$KIND: poller $n: $(cat "$WORK/poller.$n" 2>/dev/null)"
    done
    BG_PIDS=()
    ok "$KIND: three concurrent pollers got their tokens"
}

check_device_example() {
    log "$KIND: the crate's device example"
    local code= dev i
    ip netns exec "$NS" timeout 60 "$DEVICE_BIN" --base "$BASE" --client tv-demo --scope profile --max-wait 45 \
        >"$WORK/device.out" 2>&1 &
    dev=$!
    BG_PIDS+=("$dev")
    for i in $(seq 100); do
        code=$(sed -n 's/.*enter the code \([A-Z]\{4\}-[A-Z]\{4\}\).*/\1/p' "$WORK/device.out")
        [ -n "$code" ] && break
        sleep 0.1
    done
    [ -n "$code" ] || fail "$KIND: the device example printed no user code: $(cat "$WORK/device.out")"
    approve "$code"
    wait "$dev" || fail "$KIND: the device example failed: $(cat "$WORK/device.out")"
    BG_PIDS=()
    grep -q 'GET /api/me -> 200' "$WORK/device.out" ||
        fail "$KIND: device example: no /api/me 200: $(cat "$WORK/device.out")"
    ok "$KIND: device example: codes, polling, token and /api/me"
}

# --- connections under abuse ---------------------------------------------------------------------------
# An attacker (.ci/conn-attacker.py, from the namespace's own address) takes the gateway's sockets three
# ways while a client, from another address of the namespace, makes requests (the host build; on the
# emulated board, the idle case only, see below). The library's pool keeps one socket listening,
# closes idle connections first and caps each peer at 2 of the 3 slots; the bound on each client
# request comes from the configured deadlines (3 read timeouts plus 5 s), with curl retrying a 503.
ABUSE_COUNT=6
check_abuse() {
    local mode t0 ms slowest bound i apid client=() modes=(idle dribble close-dribble)
    bound=$((3 * READ_TIMEOUT + 5))
    [ "$KIND" = host ] && client=(--interface "$CLIENT_IP")
    # Through QEMU's user-mode network every connection comes from one address: a client there is the
    # attacker's twin, which the per-peer cap cannot tell apart from it. There the idle case shows
    # that a peer at its cap gets its own idle connection recycled; the host build runs all three.
    [ "$KIND" = mps2 ] && modes=(idle)
    for mode in "${modes[@]}"; do
        log "$KIND: $ABUSE_COUNT '$mode' attacker connections beside a client"
        # Not through nsx (a shell function): $! must be the attacker itself (ip netns exec execs it).
        ip netns exec "$NS" python3 "$ROOT/.ci/conn-attacker.py" "$mode" "$CONNECT_HOST" "$CONNECT_PORT" \
            "$ABUSE_COUNT" 30 >"$WORK/attacker-$mode.log" 2>&1 &
        apid=$!
        BG_PIDS+=("$apid")
        sleep 2 # the attacker takes what it can
        slowest=0
        for i in $(seq 5); do
            t0=$(date +%s%N)
            req "${client[@]}" --retry 30 --retry-delay 1 --retry-all-errors --retry-max-time "$bound" \
                "$BASE/.well-known/oauth-authorization-server"
            ms=$((($(date +%s%N) - t0) / 1000000))
            [ "$STATUS" = 200 ] || fail "$KIND: $mode attacker: client request $i: HTTP $STATUS"
            [ "$ms" -le $((bound * 1000)) ] || fail "$KIND: $mode attacker: client request $i took $ms ms (bound $bound s)"
            [ "$ms" -gt "$slowest" ] && slowest=$ms
        done
        kill "$apid" 2>/dev/null || true
        wait "$apid" 2>/dev/null || true
        ok "$KIND: $mode attacker: 5 client requests served, slowest $slowest ms (bound $bound s)"
    done
    # A real flow once the attackers are gone, from the attacker's own address: its slots come back
    # as the gateway sees its connections end (within the drain deadline).
    req --retry 10 --retry-delay 1 --retry-all-errors --retry-max-time "$bound" "$BASE/"
    [ "$STATUS" = 200 ] || fail "$KIND: the attacker's address is not served after it left: HTTP $STATUS"
    authorize -d client_id=tv-demo
    approve "$USER_CODE"
    poll_token -d client_id=tv-demo
    expect 200 "token after the attackers" '"access_token":"'
}

STACK_DEEPEST=0
stack_report() { # mps2 probe build: the deepest stack since boot
    [ "$KIND" = mps2 ] || return 0
    req "$BASE/debug/stack"
    expect 200 "stack report" '"stack_used":'
    local used size
    used=$(number stack_used "$BODY")
    size=$(number stack_size "$BODY")
    [ "$used" -lt "$size" ] || fail "$KIND: the stack reached the bottom of its region ($used of $size bytes)"
    [ "$used" -gt "$STACK_DEEPEST" ] && STACK_DEEPEST=$used
    STACK_SIZE=$size
}

check_persistence() {
    log "$KIND: persistence: an approved grant, a refresh token and a revocation survive SIGKILL"
    authorize -d client_id=tv-demo
    local pending_code=$DEVICE_CODE
    approve "$USER_CODE"
    wait_saved "POST /activate 200"
    stack_report
    kill_gateway
    start_gateway
    grep -q "snapshot restored" "$WORK/gateway.log" || fail "$KIND: no snapshot restored at restart"
    req "$BASE/status"
    expect 200 "/status after the restart" '"store":"restored"'
    DEVICE_CODE=$pending_code
    poll_token -d client_id=tv-demo
    expect 200 "a grant approved before the kill, exchanged after it" '"access_token":"'
    req -H "Authorization: Bearer $ACCESS2" "$BASE/api/me"
    expect 200 "a token from before the restart" '"name":"alice"'
    req -H "Authorization: Bearer $PRINTER_ACCESS" "$BASE/api/me"
    expect 401 "a token revoked before the restart stays revoked"
    req -d client_id=tv-demo -d grant_type=refresh_token -d "refresh_token=$REFRESH2" "$BASE/oauth/token"
    expect 200 "a refresh token from before the restart" '"access_token":"'
    req -d client_id=tv-demo -d grant_type=refresh_token -d "refresh_token=$REFRESH" "$BASE/oauth/token"
    expect 400 "a rotated-out refresh token (replay) after the restart" '"error":"invalid_grant"'
    stack_report
}

# host: with every flash write 300 ms slow, a refresh answered and the gateway killed at once: the
# rotated refresh token must work after the restart (its response waited for the flash), not count as
# a replay of a rotation the flash never saw.
check_durable_refresh() {
    log "host: a refresh is on flash before its response leaves (flash 300 ms slow, SIGKILL at once)"
    kill_gateway
    HOST_EXTRA="--flash-latency 300"
    start_gateway
    HOST_EXTRA=
    authorize -d client_id=tv-demo
    approve "$USER_CODE"
    poll_token -d client_id=tv-demo
    expect 200 "a token under a slow flash" '"refresh_token":"'
    local first t0 ms
    first=$(field refresh_token "$BODY")
    t0=$(date +%s%N)
    req -d client_id=tv-demo -d grant_type=refresh_token -d "refresh_token=$first" "$BASE/oauth/token"
    ms=$((($(date +%s%N) - t0) / 1000000))
    kill_gateway
    expect 200 "a refresh under a slow flash ($ms ms)" '"refresh_token":"'
    [ "$ms" -ge 300 ] || fail "host: the refresh response came in $ms ms, before a 300 ms flash write could end"
    local second
    second=$(field refresh_token "$BODY")
    start_gateway
    req -d client_id=tv-demo -d grant_type=refresh_token -d "refresh_token=$second" "$BASE/oauth/token"
    expect 200 "the rotated refresh token after a kill right after its response" '"access_token":"'
}

run_suite() { # run_suite KIND [ELF]
    use_target "$@"
    phase "$KIND: end-to-end checks"
    start_gateway
    grep "listening on" "$WORK/gateway.log" >&2
    check_flow
    check_errors
    check_confidential
    check_concurrent
    check_device_example
    check_abuse
    check_persistence
    [ "$KIND" = host ] && check_durable_refresh
    kill_gateway
    cp "$WORK/gateway.log" "$WORK/gateway-$KIND.log"
}

# --- the clock from SNTP (host build) ------------------------------------------------------------------
HOST_EXTRA=
SNTP_PORT=12300
check_clock_case() { # check_clock_case MODE: starts a responder (unless MODE is absent), then the gateway
    local mode=$1 responder=
    if [ "$mode" != absent ]; then
        ip netns exec "$NS" python3 "$ROOT/.ci/sntp-responder.py" "$HOST_IP" "$SNTP_PORT" "$mode" 7200 \
            >"$WORK/sntp-$mode.log" 2>&1 &
        responder=$!
        BG_PIDS+=("$responder")
        wait_file_line "$WORK/sntp-$mode.log" "sntp responder on" 10 || fail "the SNTP responder did not start"
    fi
    HOST_EXTRA="--sntp $HOST_IP:$SNTP_PORT --untrusted-clock"
    start_gateway
    HOST_EXTRA=
    req "$BASE/status"
    [ "$STATUS" = 200 ] || fail "host: /status: HTTP $STATUS"
    CLOCK_STATUS=$BODY
    [ -n "$responder" ] && kill "$responder" 2>/dev/null
    true
}
wait_file_line() { # wait_file_line FILE TEXT SECS
    local i
    for i in $(seq $(($3 * 10))); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
check_clock() {
    phase "host: the clock from SNTP (a responder in the namespace: good, wrong, absent)"
    local now reported
    # A good answer, two hours ahead of this machine: the gateway takes it, trusts its clock, and so
    # restores the snapshot the suite left whole.
    check_clock_case good
    grep -q "clock: set by SNTP from $HOST_IP:$SNTP_PORT" "$WORK/gateway.log" || fail "host: SNTP answer not taken"
    case "$CLOCK_STATUS" in *'"clock":"sntp","trusted":true'*'"store":"restored"'*) ;; *) fail "host: /status after SNTP: $CLOCK_STATUS" ;; esac
    now=$(date +%s)
    reported=$(number now "$CLOCK_STATUS")
    [ $((reported - now - 7200)) -le 60 ] && [ $((now + 7200 - reported)) -le 60 ] ||
        fail "host: clock $reported after SNTP, expected $((now + 7200)) within 60 s"
    grep -q "snapshot restored" "$WORK/gateway.log" || fail "host: no snapshot restored under the SNTP clock"
    if grep -q "clock was behind" "$WORK/gateway.log"; then fail "host: a trusted clock dropped the state"; fi
    ok "host: SNTP sets the clock (+7200 s, within 60 s) before the restore, which keeps the state"
    authorize -d client_id=tv-demo
    approve "$USER_CODE"
    poll_token -d client_id=tv-demo
    expect 200 "a flow under the SNTP clock" '"access_token":"'
    kill_gateway
    # A reply whose origin timestamp is not ours (forged, or for another request): refused.
    check_clock_case wrong-origin
    grep -q "SNTP from $HOST_IP:$SNTP_PORT: origin timestamp not ours; the clock stays untrusted" \
        "$WORK/gateway.log" || fail "host: a wrong SNTP answer was not refused: $(grep clock: "$WORK/gateway.log")"
    case "$CLOCK_STATUS" in *'"clock":"untrusted","trusted":false'*'"store":"clock-untrusted"'*) ;; *) fail "host: /status: $CLOCK_STATUS" ;; esac
    grep -q "clock was behind: state dropped" "$WORK/gateway.log" ||
        fail "host: an untrusted clock behind the snapshot did not fail safe"
    ok "host: a wrong SNTP answer is refused; the untrusted clock fails safe (state dropped, serial kept)"
    kill_gateway
    # No server at all: the query times out, the gateway serves anyway, and says its clock is untrusted.
    check_clock_case absent
    grep -q "SNTP from $HOST_IP:$SNTP_PORT: no answer; the clock stays untrusted" "$WORK/gateway.log" ||
        fail "host: no log line for an absent SNTP server"
    case "$CLOCK_STATUS" in *'"trusted":false'*) ;; *) fail "host: /status without SNTP: $CLOCK_STATUS" ;; esac
    req "$BASE/.well-known/oauth-authorization-server"
    expect 200 "metadata without an SNTP answer"
    kill_gateway
}

# --- instructions per request (mps2 under -icount) -----------------------------------------------------
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "-" }'; }
costs() { # costs "METHOD PATH STATUS" -> the handler's instructions of each such request, one a line
    grep -o "cost $1 [0-9]* ns" "$WORK/gateway.log" | awk '{ print $(NF - 1) }'
}
run_icount() {
    use_target mps2 "$WORK/mps2-probe.elf"
    phase "mps2: instructions per request (-icount shift=0)"
    QEMU_EXTRA="-icount shift=0"
    start_gateway
    local codes=() i
    authorize -d client_id=tv-demo
    approve "$USER_CODE"
    poll_token -d client_id=tv-demo
    expect 200 "icount: token" '"access_token":"'
    ACCESS=$(field access_token "$BODY")
    for i in $(seq "$ICOUNT_SAMPLES"); do
        authorize -d client_id=tv-demo
        codes+=("$DEVICE_CODE")
    done
    for DEVICE_CODE in "${codes[@]}"; do # one poll per grant: pending, never slow_down
        req -d client_id=tv-demo -d "grant_type=$DC_GRANT" -d "device_code=$DEVICE_CODE" "$BASE/oauth/token"
        [ "$STATUS" = 400 ] || fail "icount: poll: HTTP $STATUS: $BODY"
    done
    for i in $(seq "$ICOUNT_SAMPLES"); do
        req -H "Authorization: Bearer $ACCESS" "$BASE/api/me"
        [ "$STATUS" = 200 ] || fail "icount: /api/me: HTTP $STATUS"
    done
    kill_gateway
    QEMU_EXTRA=
    local poll me dev
    poll=$(costs "POST /oauth/token 400" | median)
    me=$(costs "GET /api/me 200" | median)
    dev=$(costs "POST /oauth/device 200" | median)
    [ "$(costs "POST /oauth/token 400" | wc -l)" -ge "$ICOUNT_SAMPLES" ] || fail "icount: poll costs missing"
    [ "$(costs "GET /api/me 200" | wc -l)" -ge "$ICOUNT_SAMPLES" ] || fail "icount: /api/me costs missing"
    ICOUNT_TABLE=$(
        printf '%-44s %12s\n' "mps2, median of $ICOUNT_SAMPLES, handler only" "instructions"
        printf '%-44s %12s\n' "token poll (authorization_pending)" "$poll"
        printf '%-44s %12s\n' "bearer check (GET /api/me)" "$me"
        printf '%-44s %12s\n' "device authorization" "$dev"
    )
    printf '%s\n' "$ICOUNT_TABLE"
    ok "instructions per request measured under -icount"
}

ICOUNT_TABLE=
STACK_SIZE=
for kind in $TARGETS; do
    case "$kind" in
    host)
        run_suite host
        check_clock
        ;;
    mps2)
        run_suite mps2 "$WORK/mps2-probe.elf"
        run_icount
        ;;
    *) fail "unknown target $kind" ;;
    esac
done
phase ""

echo "--- embassy gateway: figures ---"
if [ -n "${MPS2_FLASH:-}" ]; then
    printf '%-44s %12s\n' "mps2 firmware (release, feature mps2)" "bytes"
    printf '%-44s %12s\n' "flash (.text + .data)" "$MPS2_FLASH"
    printf '%-44s %12s\n' "static RAM (.data + .bss)" "$MPS2_RAM"
    printf '%-44s %12s\n' "deepest stack, whole e2e run (of $STACK_SIZE)" "$STACK_DEEPEST"
fi
[ -z "$ICOUNT_TABLE" ] || printf '%s\n' "$ICOUNT_TABLE"
echo "--- phases ---"
printf '%s\n' "${PHASES[@]}"
log "embassy gateway: $passed checks passed in $(($(date +%s) - start)) s"
echo "embassy: $passed passed, 0 failed"
