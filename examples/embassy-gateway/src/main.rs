//! The oauth2-devices gateway on embassy: the same application code on a Linux TAP device (feature
//! `host`, the default), on a Nucleo-F767ZI (feature `stm32`) and on QEMU's mps2-an386 Cortex-M4 board
//! (feature `mps2`). See README.md.
#![cfg_attr(any(feature = "stm32", feature = "mps2"), no_std)]
#![cfg_attr(any(feature = "stm32", feature = "mps2"), no_main)]
// The `no-oauth` build (for size comparisons) leaves the configuration and helpers unused.
#![cfg_attr(feature = "no-oauth", allow(dead_code, unused_imports, unused_macros, unused_variables))]

#[cfg(any(
    all(feature = "host", feature = "stm32"),
    all(feature = "host", feature = "mps2"),
    all(feature = "stm32", feature = "mps2")
))]
compile_error!("pick one board: `host` (default), or `--no-default-features --features stm32` or `... mps2`");
#[cfg(not(any(feature = "host", feature = "stm32", feature = "mps2")))]
compile_error!("pick a board: `host` (default), or `--no-default-features --features stm32` or `... mps2`");
#[cfg(all(feature = "probe", not(feature = "mps2")))]
compile_error!("the `probe` feature measures the `mps2` board only");

#[macro_use]
mod fmt;

mod clock;
mod config;
#[cfg(not(feature = "no-oauth"))]
mod persist;
mod server;
// The mps2 board's network (QEMU's `restrict=on`) reaches no time server: it keeps the host's clock.
#[cfg(not(feature = "no-oauth"))]
#[cfg_attr(feature = "mps2", allow(dead_code))]
mod sntp;

#[cfg(feature = "host")]
mod host;
#[cfg(feature = "mps2")]
mod mps2;
#[cfg(feature = "stm32")]
mod stm32;

// The LAN9118 framing rules are pure functions: the host build compiles them for their unit tests
// (`cargo test`), the mps2 build as part of its driver.
#[cfg(all(test, feature = "host"))]
#[path = "mps2/lan9118/framing.rs"]
mod lan9118_framing;

#[cfg(feature = "host")]
#[embassy_executor::main]
async fn main(spawner: embassy_executor::Spawner) {
    host::main(spawner).await
}

#[cfg(feature = "stm32")]
#[embassy_executor::main]
async fn main(spawner: embassy_executor::Spawner) {
    stm32::main(spawner).await
}

#[cfg(feature = "mps2")]
#[embassy_executor::main]
async fn main(spawner: embassy_executor::Spawner) {
    mps2::main(spawner).await
}
