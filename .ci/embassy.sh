#!/usr/bin/env bash
# The Embassy gateway (examples/embassy-gateway): builds the STM32F767ZI firmware (with and without the
# OAuth routes, and prints their flash and RAM), builds the host variant, then runs it on a TAP device
# inside a private network namespace and drives the whole device flow against it with curl: device
# authorization, pending poll, approval on the verification page (Basic auth + CSRF), token, /api/me,
# error cases, concurrent pollers with a page user, the crate's `device` example, idle connections
# closed by the read timeout, and the snapshot surviving a restart.
#
# Usage: .ci/embassy.sh        (from any directory; needs root for `ip netns`)
# Env:   EMBASSY_TARGET_DIR    cargo target dir of the example (default: examples/embassy-gateway/target)
#        EMBASSY_SKIP_FIRMWARE=1  skip the firmware builds (host-only run)
#
# All traffic stays inside the namespace this script creates (o2d-e2e-PID); a trap kills the gateway
# and the helpers it started and deletes the namespace on any exit.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
CRATE="$ROOT/examples/embassy-gateway"
TARGET=thumbv7em-none-eabihf
TARGET_DIR=${EMBASSY_TARGET_DIR:-${CARGO_TARGET_DIR:-$CRATE/target}}
WORK=$(mktemp -d /tmp/o2d-embassy.XXXXXX)
NS="o2d-e2e-$$"
TAP=tap-o2d
GW_IP=10.42.0.2
HOST_IP=10.42.0.1
PORT=8080
BASE="http://$GW_IP:$PORT"
READ_TIMEOUT=3
INTERVAL=1
SOCKETS=4

start=$(date +%s)
log() { printf '==> [%4ss] %s\n' "$(($(date +%s) - start))" "$*" >&2; }
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
        kill "$pid" 2>/dev/null
    done
    for pid in "${BG_PIDS[@]}" $GW_PID; do
        wait "$pid" 2>/dev/null
    done
    if ip netns list 2>/dev/null | grep -qw "$NS"; then
        # Anything still running inside our own namespace was started by this script.
        for pid in $(ip netns pids "$NS" 2>/dev/null); do
            kill "$pid" 2>/dev/null
        done
        ip netns del "$NS" 2>/dev/null
    fi
    rm -rf "$WORK"
    exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- tools ---------------------------------------------------------------------------------------------
if ! rustup target list --installed | grep -qx "$TARGET"; then
    log "installing Rust target $TARGET"
    rustup target add "$TARGET"
fi
need_apt=()
command -v ip >/dev/null || need_apt+=(iproute2)
command -v curl >/dev/null || need_apt+=(curl)
command -v arm-none-eabi-size >/dev/null || need_apt+=(binutils-arm-none-eabi)
if [ ${#need_apt[@]} -gt 0 ]; then
    log "installing ${need_apt[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
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

# --- firmware ------------------------------------------------------------------------------------------
# "flash" = .text + .data (what is programmed), "RAM" = .data + .bss (static RAM; the stack comes on top).
size_line() { arm-none-eabi-size "$1" | awk 'NR == 2 { print $1 + $2, $2 + $3 }'; }
if [ "${EMBASSY_SKIP_FIRMWARE:-0}" != 1 ]; then
    FW="$TARGET_DIR/$TARGET/release/embassy-gateway"
    log "building the firmware (release, $TARGET, stm32)"
    t0=$(date +%s)
    cargo_ex build --release --target "$TARGET" --no-default-features --features stm32
    cp "$FW" "$WORK/fw-oauth.elf"
    log "firmware built in $(($(date +%s) - t0)) s"
    t0=$(date +%s)
    log "building the firmware without the OAuth routes (stm32,no-oauth)"
    cargo_ex build --release --target "$TARGET" --no-default-features --features stm32,no-oauth
    cp "$FW" "$WORK/fw-plain.elf"
    log "built in $(($(date +%s) - t0)) s"
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

# --- host build ----------------------------------------------------------------------------------------
# The example is its own workspace, so the root's fmt and clippy steps do not see it.
log "format and clippy (host build) of the example"
if cargo fmt --version >/dev/null 2>&1; then (cd "$CRATE" && cargo fmt --check); fi
cargo_ex clippy -q -- -D warnings
log "building the host gateway"
t0=$(date +%s)
cargo_ex build
GATEWAY="$TARGET_DIR/debug/embassy-gateway"
log "host gateway built in $(($(date +%s) - t0)) s"
DEVICE_BIN=
if [ -f "$ROOT/examples/device.rs" ]; then
    log "building the crate's device example"
    (cd "$ROOT" && nice -n 10 cargo build -q --example device)
    DEVICE_BIN=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps 2>/dev/null |
        sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/debug/examples/device
    [ -x "$DEVICE_BIN" ] || fail "device example not found at $DEVICE_BIN"
fi

# --- namespace and TAP ---------------------------------------------------------------------------------
log "creating network namespace $NS with $TAP ($HOST_IP/24 on our side, gateway at $GW_IP)"
ip netns add "$NS"
nsx() { ip netns exec "$NS" "$@"; }
nsx ip link set lo up
nsx ip tuntap add dev "$TAP" mode tap
nsx ip addr add "$HOST_IP/24" dev "$TAP"
nsx ip link set "$TAP" up

STATE="$WORK/state.bin"
start_gateway() {
    : >"$WORK/gateway.log"
    # Not through a shell function, so that $! is the gateway itself (ip netns exec execs it).
    ip netns exec "$NS" "$GATEWAY" --tap "$TAP" --addr "$GW_IP/24" --port "$PORT" --state "$STATE" \
        --read-timeout "$READ_TIMEOUT" --interval "$INTERVAL" >>"$WORK/gateway.log" 2>&1 &
    GW_PID=$!
    local i
    for i in $(seq 100); do
        grep -q "^listening on" "$WORK/gateway.log" && break
        kill -0 "$GW_PID" 2>/dev/null || fail "the gateway exited at start"
        sleep 0.1
    done
    grep -q "^listening on" "$WORK/gateway.log" || fail "the gateway did not start within 10 s"
    # The first packet waits for ARP; retry until the gateway answers (bounded).
    nsx curl -sS -o /dev/null -m 2 --retry 10 --retry-delay 1 --retry-connrefused "$BASE/" ||
        fail "the gateway does not answer on $BASE"
}
stop_gateway() {
    kill "$GW_PID" 2>/dev/null || true
    wait "$GW_PID" 2>/dev/null || true
    GW_PID=
}

# --- HTTP helpers --------------------------------------------------------------------------------------
# req ARGS...: runs curl in the namespace; sets STATUS, BODY (and HEADERS).
req() {
    local out
    out=$(nsx curl -sS -m 10 -D "$WORK/headers" -o "$WORK/body" -w '%{http_code}' "$@") || {
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
    [ "$STATUS" = "$1" ] || fail "$2: expected HTTP $1, got $STATUS: $BODY"
    if [ $# -ge 3 ]; then
        case "$BODY" in *"$3"*) ;; *) fail "$2: body lacks $3: $BODY" ;; esac
    fi
    ok "$2 ($STATUS)"
}
field() { # field NAME JSON -> the string value of "NAME"
    printf '%s' "$2" | sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"
}
DC_GRANT='urn:ietf:params:oauth:grant-type:device_code'

# authorize CLIENT_ARGS... -> sets DEVICE_CODE, USER_CODE
authorize() {
    req "$@" -d scope=profile "$BASE/oauth/device"
    [ "$STATUS" = 200 ] || fail "device authorization: HTTP $STATUS: $BODY"
    DEVICE_CODE=$(field device_code "$BODY")
    USER_CODE=$(field user_code "$BODY")
    [ -n "$DEVICE_CODE" ] && [ -n "$USER_CODE" ] || fail "device authorization: no codes in $BODY"
}
# approve USER_CODE: the verification page as a person uses it (GET, read the CSRF field, POST approve).
approve() {
    local html csrf
    html=$(nsx curl -sS -m 10 -u alice:wonderland "$BASE/activate?user_code=$1") || fail "GET /activate failed"
    csrf=$(printf '%s' "$html" | sed -n 's/.*name="csrf" value="\([^"]*\)".*/\1/p')
    [ -n "$csrf" ] || fail "no CSRF field on the confirmation page: $html"
    req -u alice:wonderland --data-urlencode "user_code=$1" --data-urlencode "csrf=$csrf" -d action=approve \
        "$BASE/activate"
    [ "$STATUS" = 200 ] || fail "approve $1: HTTP $STATUS: $BODY"
    case "$BODY" in *"Device approved"*) ;; *) fail "approve $1: no 'Device approved' in the page" ;; esac
}

# --- the flow ------------------------------------------------------------------------------------------
log "starting the host gateway in $NS"
start_gateway
grep "^listening on" "$WORK/gateway.log" >&2

log "device flow with curl"
req "$BASE/.well-known/oauth-authorization-server"
expect 200 "metadata" "\"issuer\":\"$BASE\""
authorize -d client_id=tv-demo
ok "device authorization (user code $USER_CODE)"
req -d client_id=tv-demo -d "grant_type=$DC_GRANT" -d "device_code=$DEVICE_CODE" "$BASE/oauth/token"
expect 400 "poll before approval" '"error":"authorization_pending"'
req "$BASE/activate"
expect 401 "verification page without sign-in"
grep -qi '^www-authenticate: basic' <<<"$HEADERS" || fail "401 without a Basic challenge"
req -u alice:wonderland "$BASE/activate?user_code=$USER_CODE"
expect 200 "verification page, signed in" 'id="approve"'
req -u alice:wonderland --data-urlencode "user_code=$USER_CODE" -d csrf=AAAAAAAAAAAAAAAAAAAAAA -d action=approve \
    "$BASE/activate"
expect 403 "approval with a wrong CSRF token"
approve "$USER_CODE"
ok "approval on the verification page"
sleep "$INTERVAL"
req -d client_id=tv-demo -d "grant_type=$DC_GRANT" -d "device_code=$DEVICE_CODE" "$BASE/oauth/token"
expect 200 "token" '"access_token":"'
ACCESS=$(field access_token "$BODY")
REFRESH=$(field refresh_token "$BODY")
req -H "Authorization: Bearer $ACCESS" "$BASE/api/me"
expect 200 "/api/me with the token" '"name":"alice"'
case "$BODY" in *'"client_id":"tv-demo"'*) ;; *) fail "/api/me: wrong client: $BODY" ;; esac
req "$BASE/api/me"
expect 401 "/api/me without a token"
grep -qi '^www-authenticate: bearer' <<<"$HEADERS" || fail "/api/me 401 without a Bearer challenge"
req -H "Authorization: Bearer ${ACCESS%?}x" "$BASE/api/me"
expect 401 "/api/me with a forged token" 'invalid_token'

log "error cases"
req -d client_id=nobody -d scope=profile "$BASE/oauth/device"
expect 401 "unknown client" '"error":"invalid_client"'
req -u printer-demo:wrong-secret -d scope=profile "$BASE/oauth/device"
expect 401 "confidential client, wrong secret" '"error":"invalid_client"'
req "$BASE/oauth/token"
expect 405 "GET on the token endpoint"
grep -qi '^allow: post' <<<"$HEADERS" || fail "405 without Allow: POST"
req -d client_id=tv-demo -d grant_type=password -d username=a -d password=b "$BASE/oauth/token"
expect 400 "unknown grant type" '"error":"unsupported_grant_type"'
req -d client_id=tv-demo -d scope=admin "$BASE/oauth/device"
expect 400 "unknown scope" '"error":"invalid_scope"'
req -H 'Content-Type: text/plain' --data-binary 'client_id=tv-demo' "$BASE/oauth/device"
expect 415 "wrong content type"
req "$BASE/nowhere"
expect 404 "unknown path"

log "confidential client, replay, refresh, introspection"
authorize -u printer-demo:printer-secret
approve "$USER_CODE"
sleep "$INTERVAL"
req -u printer-demo:printer-secret -d "grant_type=$DC_GRANT" -d "device_code=$DEVICE_CODE" "$BASE/oauth/token"
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

log "three concurrent pollers and a page user"
poller() { # poller N: a whole device flow, polling at the interval; writes its outcome to $WORK/poller.N
    local n=$1 body dc uc status i
    body=$(nsx curl -sS -m 10 -d client_id=tv-demo -d scope=profile "$BASE/oauth/device") || {
        echo "authorize failed" >"$WORK/poller.$n"
        return 1
    }
    dc=$(field device_code "$body")
    uc=$(field user_code "$body")
    echo "$uc" >"$WORK/code.$n"
    for i in $(seq 30); do # at most 30 polls of at most 5 s each
        sleep "$INTERVAL"
        status=$(nsx curl -sS -m 5 -o "$WORK/poll.$n" -w '%{http_code}' -d client_id=tv-demo \
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
POLLERS=()
for n in 1 2 3; do
    poller "$n" &
    POLLERS+=($!)
    BG_PIDS+=($!)
done
for n in 1 2 3; do
    for i in $(seq 100); do
        [ -s "$WORK/code.$n" ] && break
        sleep 0.1
    done
    [ -s "$WORK/code.$n" ] || fail "poller $n got no user code"
    approve "$(cat "$WORK/code.$n")"
done
ok "page user approved three codes while their devices polled"
for n in 1 2 3; do
    wait "${POLLERS[$((n - 1))]}" || fail "poller $n: $(cat "$WORK/poller.$n" 2>/dev/null)"
done
BG_PIDS=()
ok "three concurrent pollers got their tokens"

if [ -n "$DEVICE_BIN" ]; then
    log "the crate's device example against the embassy gateway"
    ip netns exec "$NS" timeout 60 "$DEVICE_BIN" --base "$BASE" --client tv-demo --scope profile --max-wait 45 \
        >"$WORK/device.out" 2>&1 &
    DEV_PID=$!
    BG_PIDS+=("$DEV_PID")
    code=
    for i in $(seq 100); do
        code=$(sed -n 's/.*enter the code \([A-Z]\{4\}-[A-Z]\{4\}\).*/\1/p' "$WORK/device.out")
        [ -n "$code" ] && break
        sleep 0.1
    done
    [ -n "$code" ] || fail "the device example printed no user code: $(cat "$WORK/device.out")"
    approve "$code"
    wait "$DEV_PID" || fail "the device example failed: $(cat "$WORK/device.out")"
    BG_PIDS=()
    grep -q 'GET /api/me -> 200' "$WORK/device.out" || fail "device example: no /api/me 200: $(cat "$WORK/device.out")"
    ok "device example: codes, polling, token and /api/me"
fi

log "idle connections: $SOCKETS held open (one of them dribbling) do not lock out a real client"
# Each helper holds one TCP connection from inside the namespace; they stop by themselves.
sleep 1 # let the sockets of earlier connections finish closing
log_mark=$(wc -l <"$WORK/gateway.log")
for n in $(seq $((SOCKETS - 1))); do
    ip netns exec "$NS" bash -c "exec 3<>/dev/tcp/$GW_IP/$PORT && exec sleep 30" 2>/dev/null &
    BG_PIDS+=($!)
done
ip netns exec "$NS" bash -c "exec 3<>/dev/tcp/$GW_IP/$PORT && printf 'GET / HTTP/1.1\r\nHost: gw\r\nX-Slow: ' >&3 &&
    for i in \$(seq 60); do printf 'a' >&3 || exit 0; sleep 0.5; done" 2>/dev/null &
BG_PIDS+=($!)
sleep 0.5
t0=$(date +%s)
# With every socket taken the gateway refuses new connections until the read timeout frees them
# (so curl reports a few refused connections below before it gets in).
req --retry 30 --retry-delay 1 --retry-connrefused --retry-max-time 25 -d client_id=tv-demo -d scope=profile \
    "$BASE/oauth/device"
[ "$STATUS" = 200 ] || fail "client locked out by idle connections: HTTP $STATUS"
DEVICE_CODE=$(field device_code "$BODY")
USER_CODE=$(field user_code "$BODY")
approve "$USER_CODE"
sleep "$INTERVAL"
req -d client_id=tv-demo -d "grant_type=$DC_GRANT" -d "device_code=$DEVICE_CODE" "$BASE/oauth/token"
expect 200 "token after the idle connections were dropped" '"access_token":"'
elapsed=$(($(date +%s) - t0))
[ "$elapsed" -le $((READ_TIMEOUT + 10)) ] || fail "the flow took ${elapsed} s with idle connections (read timeout ${READ_TIMEOUT} s)"
timeouts=$(tail -n +"$((log_mark + 1))" "$WORK/gateway.log" | grep -c ': timeout' || true)
[ "$timeouts" -ge "$SOCKETS" ] || fail "expected $SOCKETS read timeouts in the log, saw $timeouts"
ok "flow completed in ${elapsed} s; $timeouts idle/dribbling connections timed out"
for pid in "${BG_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
for pid in "${BG_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
BG_PIDS=()

log "persistence: restart the gateway on the same state file"
sleep 0.5 # let the last snapshot save (the persistence task coalesces for 100 ms)
stop_gateway
start_gateway
grep -q "snapshot restored" "$WORK/gateway.log" || fail "no snapshot restored at restart"
req -H "Authorization: Bearer $ACCESS2" "$BASE/api/me"
expect 200 "a token from before the restart" '"name":"alice"'
req -d client_id=tv-demo -d grant_type=refresh_token -d "refresh_token=$REFRESH2" "$BASE/oauth/token"
expect 200 "a refresh token from before the restart" '"access_token":"'
req -d client_id=tv-demo -d grant_type=refresh_token -d "refresh_token=$REFRESH" "$BASE/oauth/token"
expect 400 "a rotated-out refresh token (replay) after the restart" '"error":"invalid_grant"'

stop_gateway
log "embassy gateway: $passed checks passed in $(($(date +%s) - start)) s"
echo "embassy: $passed passed, 0 failed"
