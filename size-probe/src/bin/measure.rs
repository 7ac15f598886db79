//! Stack depth and instructions of each request kind on a Cortex-M4, under QEMU (`mps2-an386`) with
//! `-icount shift=0`; prints through semihosting. Run by `bash .ci/footprint.sh`, or:
//! `cd size-probe && cargo run --release --features measure --bin measure`.
//!
//! **Stack**: before each request the region below the stack pointer is painted with a pattern; the
//! request runs in a function of its own; the deepest word no longer holding the pattern gives the bytes
//! used (its frame, its callees', the return address and saved registers). Output buffers belong to the
//! caller, so this is the library's own use.
//!
//! **Instructions**: QEMU 7.2 does not model the DWT cycle counter (its registers read as zero here,
//! checked below), and this build has no TCG plugins, so the count comes from SysTick: clocked by the
//! 25 MHz system clock of the board, it ticks every 40 ns of virtual time, and under `-icount shift=0`
//! every instruction takes exactly 1 ns of virtual time. So instructions = ticks × 40, to within ±40.
//! The factor is not assumed: it is calibrated at start-up on a loop of known length, and a run without
//! `-icount` is reported as such.
//!
//! The RAM table of `benches/src/sizes.rs` is printed too, as laid out for this target.
//!
//! **Budgets**: a request deeper than [`STACK_BUDGET`] bytes of stack fails the run (no `MEASURE OK`,
//! exit status 1): it is a safety limit, since a task's stack is sized by it and an overflow corrupts
//! memory silently. So does a pending grant over [`GRANT_RAM_BUDGET`] bytes (the figure the crate
//! documents and its tests pin). Instruction counts are advisory: reported, never failing.
#![no_std]
#![no_main]

use core::arch::asm;
use core::fmt::Write as _;
use core::hint::black_box;
use core::panic::PanicInfo;

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::{DWT, SYST};
use cortex_m_rt::{entry, exception, ExceptionFrame};
use cortex_m_semihosting::{debug, hio};
use oauth2_devices::heapless;
use oauth2_devices::prelude::*;
use oauth2_devices::request::TokenQuery;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use size_probe::requests::{self, public, Probe};
use size_probe::web;

#[path = "../../../benches/src/sizes.rs"]
mod sizes;

/// Bytes painted below the stack pointer before each measurement (more than the budget, so that a
/// request over it is measured, not missed).
const PAINT: usize = 16 * 1024;
/// The most stack one request may use, in bytes; more fails the run.
const STACK_BUDGET: usize = 4096;
/// The most RAM one pending grant may cost, in bytes; more fails the run.
const GRANT_RAM_BUDGET: usize = 32;
const PATTERN: u32 = 0xC5A3_5A3C;

/// Semihosting stdout as a `core::fmt::Write` sink.
struct Out(Option<hio::HostStream>);

impl core::fmt::Write for Out {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        if let Some(h) = self.0.as_mut() {
            let _ = h.write_all(s.as_bytes());
        }
        Ok(())
    }
}

fn exit(ok: bool) -> ! {
    debug::exit(if ok { debug::EXIT_SUCCESS } else { debug::EXIT_FAILURE });
    loop {
        cortex_m::asm::bkpt();
    }
}

/// What one measurement found.
#[derive(Clone, Copy)]
struct Sample {
    stack: usize,
    ticks: u32,
}

/// Runs `f` in a frame of its own, so that everything it puts on the stack is below the painted mark.
#[inline(never)]
fn call<R>(f: impl FnOnce() -> R) -> R {
    black_box(f())
}

/// Paints the stack, starts SysTick, runs `f`, and reads both back.
#[inline(never)]
fn measure<R>(f: impl FnOnce() -> R) -> (Sample, R) {
    let sp: usize;
    // SAFETY: reads the stack pointer.
    unsafe { asm!("mov {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags)) };
    let bottom = (sp - PAINT) & !3;
    let mut a = bottom;
    while a < sp & !3 {
        // SAFETY: RAM below the stack pointer is unused (no interrupts are enabled) and 4 MiB long.
        unsafe { core::ptr::write_volatile(a as *mut u32, PATTERN) };
        a += 4;
    }
    let start = SYST::get_current();
    let r = call(f);
    let end = SYST::get_current();
    let mut deepest = sp & !3;
    let mut a = bottom;
    while a < sp & !3 {
        // SAFETY: as above; the region was painted by this function.
        if unsafe { core::ptr::read_volatile(a as *const u32) } != PATTERN {
            deepest = a;
            break;
        }
        a += 4;
    }
    // SysTick counts down from 0xFF_FFFF and wraps (every 16.7 M ticks, far more than a request takes).
    let ticks = start.wrapping_sub(end) & 0x00FF_FFFF;
    (Sample { stack: sp - deepest, ticks }, r)
}

/// `n` iterations of `subs; bne`: 2n instructions.
#[inline(never)]
fn spin(n: u32) {
    // SAFETY: register-only loop.
    unsafe { asm!("1:", "subs {0}, {0}, #1", "bne 1b", inout(reg) n => _, options(nomem, nostack)) };
}

struct Report {
    out: Out,
    /// Ticks of an empty measurement (the call and the two SysTick reads).
    overhead: Sample,
    /// Instructions per SysTick tick, ×1000.
    milli_insns_per_tick: u64,
    failed: bool,
    /// Deepest stack of a request (start-up excluded).
    max_stack: usize,
}

impl Report {
    fn row(&mut self, what: &str, s: Sample) {
        let stack = s.stack.saturating_sub(self.overhead.stack);
        let ticks = u64::from(s.ticks.saturating_sub(self.overhead.ticks));
        let insns = ticks * self.milli_insns_per_tick / 1000;
        let counted = !what.starts_with('(');
        if counted {
            self.max_stack = self.max_stack.max(stack);
        }
        let over = if counted && stack >= STACK_BUDGET { "  OVER THE STACK BUDGET" } else { "" };
        let _ = writeln!(self.out, "  {what:<44} {stack:>7} {insns:>12}{over}");
    }

    fn check(&mut self, ok: bool, what: &str) {
        if !ok {
            let _ = writeln!(self.out, "MEASURE FAILED: {what}");
            self.failed = true;
        }
    }
}

#[entry]
fn main() -> ! {
    let mut out = Out(hio::hstdout().ok());
    let _ = writeln!(out, "size-probe measure: cortex-m4 (mps2-an386), opt-level z, lto");
    let _ = writeln!(out, "RAM footprint (size_of, bytes) on thumbv7em-none-eabihf, 32-bit pointers");
    for (what, bytes) in sizes::rows() {
        let _ = writeln!(out, "  {what:<52} {bytes:>6}");
    }
    let g = sizes::per_grant();
    let grant_ok = g <= GRANT_RAM_BUDGET;
    let _ = writeln!(
        out,
        "budget (fails the run): <= {GRANT_RAM_BUDGET} B of RAM per pending grant: {} ({g} B)",
        if grant_ok { "met" } else { "EXCEEDED" }
    );

    let Some(mut cp) = cortex_m::Peripherals::take() else { exit(false) };
    // DWT CYCCNT: enabled, then read around a loop; QEMU leaves it at zero.
    cp.DCB.enable_trace();
    cp.DWT.enable_cycle_counter();
    let c0 = DWT::cycle_count();
    spin(1000);
    let dwt_delta = DWT::cycle_count().wrapping_sub(c0);
    cp.SYST.set_clock_source(SystClkSource::Core);
    cp.SYST.set_reload(0x00FF_FFFF);
    cp.SYST.clear_current();
    cp.SYST.enable_counter();

    // Calibration: the empty measurement, then loops of known length.
    let (overhead, ()) = measure(|| ());
    let (short, ()) = measure(|| spin(black_box(1_000)));
    let (long, ()) = measure(|| spin(black_box(201_000)));
    let dticks = u64::from(long.ticks.saturating_sub(short.ticks)).max(1);
    let measured = 2 * 200_000 * 1000 / dticks;
    // Under -icount shift=0 the loop takes 400 000 ns, 10 000 ticks of 40 ns, ±1 for where the ticks
    // fall: take the exact factor when the measurement agrees with it.
    let icount = measured.abs_diff(40_000) <= 400;
    let milli_insns_per_tick = if icount { 40_000 } else { measured };
    let _ = writeln!(
        out,
        "calibration: DWT CYCCNT advanced {dwt_delta} over 2000 instructions ({}); SysTick: 400000 \
         instructions = {dticks} ticks, {}.{:03} instructions/tick ({}); measurement overhead {} ticks, {} B",
        if dwt_delta == 0 { "not modelled" } else { "modelled" },
        measured / 1000,
        measured % 1000,
        if icount {
            "-icount shift=0, 25 MHz SysTick: counts are instructions, ±40"
        } else {
            "NOT -icount shift=0: these are not instruction counts"
        },
        overhead.ticks,
        overhead.stack,
    );
    let mut r = Report { out, overhead, milli_insns_per_tick, failed: false, max_stack: 0 };
    r.check(grant_ok, "RAM per pending grant over its budget");
    let _ = writeln!(r.out, "per request (stack: budget {STACK_BUDGET} B, fails the run; instructions: advisory)");
    let _ = writeln!(r.out, "per request, typed (JSON or challenge included): stack bytes  instructions");

    let mut rng = ChaCha20Rng::seed_from_u64(8628);
    let mut salt = [0u8; 16];
    rng.fill_bytes(&mut salt);
    let (s, p) = measure(|| requests::provider(&mut rng, &[0x42; 32], salt));
    r.row("(start-up: Provider::build by value, 2 clients)", s);
    // The firmware's way: the provider already where it stays (a `static` there; this frame here), then
    // `init` in place. What start-up then costs beyond the provider's own bytes is this row.
    if let Some(mut in_place) = requests::new_in_place(salt) {
        let (s, ok) = measure(|| requests::init_in_place(&mut in_place, &mut rng, &[0x42; 32]));
        r.row("(start-up: Provider::init in place)", s);
        r.check(ok, "Provider::init");
        black_box(&in_place);
    }
    let Some(mut p) = p else {
        r.check(false, "provider");
        exit(false)
    };
    let mut json = [0u8; 512];
    let now = 1_000u64;
    let profile = p.scopes().parse("profile").unwrap_or(ScopeSet::EMPTY);
    let tv = public(requests::CLIENT_ID);

    // Fill the grant table so the look-ups below scan a full table, as on a busy gateway.
    for _ in 0..15 {
        let req = DeviceAuthorizationRequest { client: tv, scope: Some("profile email") };
        let ok = requests::device_authorization(&mut p, now, &req, &mut rng, &mut json).is_ok();
        r.check(ok, "filling the grant table");
    }

    let req = DeviceAuthorizationRequest { client: tv, scope: Some("profile") };
    let (s, auth) = measure(|| requests::device_authorization(&mut p, now, &req, &mut rng, &mut json));
    r.row("device authorization (16th grant)", s);
    let Ok(auth) = auth else {
        r.check(false, "device authorization");
        exit(false)
    };

    let poll = TokenRequest { client: tv, grant: Grant::DeviceCode { device_code: &auth.device_code } };
    let (s, res) = measure(|| requests::token(&mut p, now + 1, &poll, &mut json));
    r.row("token poll: authorization_pending", s);
    r.check(res.err() == Some(ErrorCode::AuthorizationPending), "pending");

    let (s, res) = measure(|| requests::token(&mut p, now + 2, &poll, &mut json));
    r.row("token poll: slow_down", s);
    r.check(res.err() == Some(ErrorCode::SlowDown), "slow_down");

    let typed = auth.user_code.display();
    let (s, res) = measure(|| requests::approve(&mut p, now + 3, &typed, b"user:42", 42, profile));
    r.row("approve (user code typed on the page)", s);
    r.check(res.is_ok(), "approve");

    let (s, res) = measure(|| requests::token(&mut p, now + 10, &poll, &mut json));
    r.row("token poll: exchange (access + refresh)", s);
    let Ok(tokens) = res else {
        r.check(false, "exchange");
        exit(false)
    };

    let header = requests::bearer_header(&tokens.access_token);
    let mut challenge = heapless::String::<192>::new();
    let (s, res) = measure(|| requests::check_bearer(&p, now + 11, Some(&header), profile, &mut challenge));
    r.row("bearer check: valid", s);
    r.check(res == Ok(42), "bearer valid");

    let email = p.scopes().parse("email").unwrap_or(ScopeSet::EMPTY);
    let (s, res) = measure(|| requests::check_bearer(&p, now + 11, Some(&header), email, &mut challenge));
    r.row("bearer check: insufficient_scope + challenge", s);
    r.check(res == Err(BearerError::InsufficientScope), "bearer scope");

    let Some(refresh) = tokens.refresh_token.clone() else {
        r.check(false, "refresh token");
        exit(false)
    };
    let rotate = TokenRequest { client: tv, grant: Grant::RefreshToken { refresh_token: &refresh, scope: None } };
    let (s, res) = measure(|| requests::token(&mut p, now + 12, &rotate, &mut json));
    r.row("token: refresh rotation", s);
    r.check(res.is_ok(), "refresh");

    let printer = ClientCredentials::new(requests::CONFIDENTIAL_ID, Some(requests::SECRET));
    let q = TokenQuery { client: printer, token: &tokens.access_token };
    let (s, res) = measure(|| p.introspect(now + 13, &q).map(|i| i.write_json(p.scopes(), p.clients(), &mut json)));
    r.row("introspection (confidential client)", s);
    r.check(matches!(res, Ok(Ok(_))), "introspect");

    let q = TokenQuery { client: tv, token: &tokens.access_token };
    let (s, res) = measure(|| p.revoke(now + 13, &q));
    r.row("revocation", s);
    r.check(res.is_ok(), "revoke");

    http_requests(&mut r, &mut p, &mut rng, now + 100);

    let max = r.max_stack;
    let stack_ok = max < STACK_BUDGET;
    let _ = writeln!(
        r.out,
        "budget (fails the run): < {STACK_BUDGET} B of stack per request: {} (deepest request {max} B)",
        if stack_ok { "met" } else { "EXCEEDED" }
    );
    r.check(stack_ok, "a request used more stack than its budget");
    if r.failed {
        exit(false)
    }
    let _ = writeln!(r.out, "MEASURE OK");
    exit(true)
}

/// The string value of `"key":"…"` in a JSON document.
fn json_str<'a>(doc: &'a [u8], key: &str) -> Option<&'a str> {
    let doc = core::str::from_utf8(doc).ok()?;
    let mut pat = heapless::String::<32>::new();
    write!(pat, "\"{key}\":\"").ok()?;
    let start = doc.find(pat.as_str())? + pat.len();
    let len = doc.get(start..)?.find('"')?;
    doc.get(start..start + len)
}

/// base64url without padding, for the page's anti-CSRF field.
fn base64url(bytes: &[u8]) -> heapless::String<32> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = heapless::String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            let _ = out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

/// Every endpoint once, as bytes in and bytes out through `http::handle`.
fn http_requests(r: &mut Report, p: &mut Probe, rng: &mut ChaCha20Rng, now: u64) {
    let mut app = web::ProbeApp { signed_in: true };
    let mut input = [0u8; web::CONFIG.input_buffer_len()];
    let mut output = [0u8; oauth2_devices::http::MIN_OUTPUT_LEN];
    let _ = writeln!(r.out, "per HTTP request (bytes in, bytes out: http::handle)");
    let mut run = |r: &mut Report, p: &mut Probe, what: &str, now: u64, req: &web::Bytes, want: u16, out: &mut [u8]| {
        let bytes = req.as_bytes();
        let len = bytes.len().min(input.len());
        input[..len].copy_from_slice(&bytes[..len]);
        let (s, status) = measure(|| web::serve(p, &mut app, rng, now, &mut input[..len], out));
        r.row(what, s);
        if status != want {
            let _ = writeln!(r.out, "MEASURE FAILED: {what}: status {status}, expected {want}");
            r.failed = true;
        }
    };
    let cid = requests::CLIENT_ID;

    let req = web::request("POST", "/oauth/device", "", &fmt::<64>(format_args!("client_id={cid}&scope=profile")));
    run(r, p, "POST /oauth/device", now, &req, 200, &mut output);
    let (Some(device_code), Some(user_code)) = (json_str(&output, "device_code"), json_str(&output, "user_code"))
    else {
        r.check(false, "device authorization response");
        return;
    };
    let device_code: heapless::String<32> = device_code.try_into().unwrap_or_default();
    let user_code: heapless::String<9> = user_code.try_into().unwrap_or_default();

    let grant = "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code";
    let poll = web::request(
        "POST",
        "/oauth/token",
        "",
        &fmt::<160>(format_args!("grant_type={grant}&device_code={device_code}&client_id={cid}")),
    );
    run(r, p, "POST /oauth/token (authorization_pending)", now + 1, &poll, 400, &mut output);

    let page = web::request("GET", &fmt::<64>(format_args!("/activate?user_code={user_code}")), "", "");
    run(r, p, "GET /activate?user_code= (confirmation page)", now + 2, &page, 200, &mut output);

    let csrf = base64url(&p.csrf_tag(b"user:42"));
    let approve = web::request(
        "POST",
        "/activate",
        "",
        &fmt::<128>(format_args!("user_code={user_code}&csrf={csrf}&action=approve")),
    );
    run(r, p, "POST /activate (approve)", now + 3, &approve, 200, &mut output);

    run(r, p, "POST /oauth/token (exchange)", now + 10, &poll, 200, &mut output);
    let (Some(access), Some(refresh)) = (json_str(&output, "access_token"), json_str(&output, "refresh_token")) else {
        r.check(false, "token response");
        return;
    };
    let access: heapless::String<64> = access.try_into().unwrap_or_default();
    let refresh: heapless::String<64> = refresh.try_into().unwrap_or_default();

    let api = web::request("GET", "/api/sensors", &fmt::<96>(format_args!("Authorization: Bearer {access}\r\n")), "");
    run(r, p, "GET /api/sensors (bearer check + app)", now + 11, &api, 200, &mut output);

    let rotate = web::request(
        "POST",
        "/oauth/token",
        "",
        &fmt::<160>(format_args!("grant_type=refresh_token&refresh_token={refresh}&client_id={cid}")),
    );
    run(r, p, "POST /oauth/token (refresh rotation)", now + 12, &rotate, 200, &mut output);

    let (id, secret) = (requests::CONFIDENTIAL_ID, requests::SECRET);
    let introspect = web::request(
        "POST",
        "/oauth/introspect",
        "",
        &fmt::<160>(format_args!("token={access}&client_id={id}&client_secret={secret}")),
    );
    run(r, p, "POST /oauth/introspect", now + 13, &introspect, 200, &mut output);

    let revoke = web::request("POST", "/oauth/revoke", "", &fmt::<160>(format_args!("token={access}&client_id={cid}")));
    run(r, p, "POST /oauth/revoke", now + 14, &revoke, 200, &mut output);

    let metadata = web::request("GET", "/.well-known/oauth-authorization-server", "", "");
    run(r, p, "GET /.well-known/oauth-authorization-server", now + 15, &metadata, 200, &mut output);
}

/// Formats into a fixed-capacity string.
fn fmt<const N: usize>(args: core::fmt::Arguments<'_>) -> heapless::String<N> {
    let mut s = heapless::String::new();
    let _ = s.write_fmt(args);
    s
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    let mut out = Out(hio::hstdout().ok());
    let _ = writeln!(out, "MEASURE FAILED: {info}");
    exit(false)
}

#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    let mut out = Out(hio::hstdout().ok());
    let _ = writeln!(out, "MEASURE FAILED: HardFault\n{frame:?}");
    exit(false)
}
