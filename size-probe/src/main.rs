//! The flash-size probe: one firmware, three variants chosen by a cargo feature.
//!
//! - `baseline`: no provider; the same RNG as the other variants and a loop ended only by a volatile
//!   read, so nothing is optimised away. What a firmware costs before it serves OAuth.
//! - `core`: a provider (the gateway example's capacities) that handles device authorization, token
//!   polls and exchanges (both grants), approval of a user code and bearer checks, writing JSON bodies
//!   and challenges, on inputs hidden from the optimiser with `core::hint::black_box`.
//! - `core_http`: the same provider behind the HTTP binding: request bytes (hidden from the optimiser)
//!   go through `oauth2_devices::http::handle`, which routes them to every endpoint (device
//!   authorization, token, verification page, metadata, introspection, revocation, a protected route),
//!   and the response bytes come out. What an HTTP gateway links; the typed calls of `core` are not made.
//!
//! `bash .ci/footprint.sh` builds each and prints the section sizes.
#![no_std]
#![no_main]

#[cfg(not(any(feature = "baseline", feature = "core")))]
compile_error!("choose a variant: --features baseline, core or core_http");
#[cfg(all(feature = "baseline", feature = "core"))]
compile_error!("the baseline and core variants are exclusive");

use core::hint::black_box;
use core::panic::PanicInfo;

use cortex_m_rt::entry;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

/// Set by a debugger to stop the loop; read with a volatile load so the loop is not removed.
static STOP: u32 = 0;

fn stopped() -> bool {
    // SAFETY: an aligned read of a static.
    unsafe { core::ptr::read_volatile(&STOP) != 0 }
}

#[entry]
fn main() -> ! {
    // On a device the seed comes from the hardware RNG.
    let mut rng = ChaCha20Rng::from_seed(black_box([7; 32]));
    run(&mut rng);
    loop {
        cortex_m::asm::wfi();
    }
}

#[cfg(feature = "baseline")]
fn run(rng: &mut ChaCha20Rng) {
    let mut buf = [0u8; 16];
    while !stopped() {
        rng.fill_bytes(&mut buf);
        black_box(&buf);
    }
}

#[cfg(all(feature = "core", not(feature = "core_http")))]
fn run(rng: &mut ChaCha20Rng) {
    use oauth2_devices::heapless;
    use oauth2_devices::prelude::*;
    use size_probe::requests::{self, public};

    let mut salt = [0u8; 16];
    rng.fill_bytes(&mut salt);
    let Some(mut p) = requests::provider(rng, black_box(&[0x42; 32]), salt) else { return };
    let mut out = [0u8; 512];
    let mut challenge = heapless::String::<192>::new();
    let mut now = black_box(1_000u64);
    while !stopped() {
        now += black_box(7);
        let req = DeviceAuthorizationRequest {
            client: public(black_box(requests::CLIENT_ID)),
            scope: black_box(Some("profile")),
        };
        let Ok(auth) = requests::device_authorization(&mut p, now, &req, rng, &mut out) else { continue };
        black_box(&out);
        let client = ClientCredentials::new(black_box(requests::CLIENT_ID), black_box(None));
        let poll = TokenRequest { client, grant: black_box(Grant::DeviceCode { device_code: &auth.device_code }) };
        black_box(requests::token(&mut p, now, &poll, &mut out)).ok();
        let typed = auth.user_code.display();
        let granted = black_box(ScopeSet::from_bits(1));
        black_box(requests::approve(&mut p, now, black_box(&typed), black_box(b"user:42"), black_box(42), granted))
            .ok();
        let Ok(tokens) = requests::token(&mut p, now, &poll, &mut out) else { continue };
        let header = requests::bearer_header(&tokens.access_token);
        let user = requests::check_bearer(&p, now, black_box(Some(&header)), granted, &mut challenge);
        black_box((user, &challenge)).0.ok();
    }
}

#[cfg(feature = "core_http")]
fn run(rng: &mut ChaCha20Rng) {
    use size_probe::{requests, web};

    let mut salt = [0u8; 16];
    rng.fill_bytes(&mut salt);
    let Some(mut p) = requests::provider(rng, black_box(&[0x42; 32]), salt) else { return };
    let mut app = web::ProbeApp { signed_in: black_box(true) };
    let mut input = [0u8; CONFIG_INPUT];
    let mut output = [0u8; oauth2_devices::http::MIN_OUTPUT_LEN];
    let mut now = black_box(1_000u64);
    while !stopped() {
        now += black_box(1);
        // What a driver read from the socket, as far as the optimiser knows: anything.
        let len = black_box(&mut input).len().min(black_box(CONFIG_INPUT));
        let status = web::serve(&mut p, &mut app, rng, now, &mut input[..len], &mut output);
        black_box((status, &output));
    }
}

#[cfg(feature = "core_http")]
const CONFIG_INPUT: usize = size_probe::web::CONFIG.input_buffer_len();

#[panic_handler]
fn panic(_: &PanicInfo) -> ! {
    cortex_m::asm::udf()
}
