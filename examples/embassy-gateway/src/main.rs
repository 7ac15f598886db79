//! The oauth2-devices gateway on embassy: the same application code on a Linux TAP device (feature
//! `host`, the default) and on a Nucleo-F767ZI (feature `stm32`). See README.md.
#![cfg_attr(feature = "stm32", no_std)]
#![cfg_attr(feature = "stm32", no_main)]
// The `no-oauth` build (for size comparisons) leaves the configuration and helpers unused.
#![cfg_attr(feature = "no-oauth", allow(dead_code, unused_imports, unused_macros, unused_variables))]

#[cfg(all(feature = "host", feature = "stm32"))]
compile_error!("pick one board: `host` (default) or `--no-default-features --features stm32`");
#[cfg(not(any(feature = "host", feature = "stm32")))]
compile_error!("pick a board: `host` (default) or `--no-default-features --features stm32`");

#[macro_use]
mod fmt;

mod config;
mod server;

#[cfg(feature = "host")]
mod host;
#[cfg(feature = "stm32")]
mod stm32;

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
