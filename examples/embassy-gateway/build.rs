//! The firmware builds link with cortex-m-rt's `link.x`, which includes a `memory.x`: this build script
//! writes `memory-stm32.x` (feature `stm32`, plus defmt's `defmt.x`) or `memory-mps2.x` (feature `mps2`)
//! as `memory.x` into OUT_DIR. The host build needs nothing, so nothing is set for it and `cargo run` on
//! the host stays plain.
//!
//! No file of the crate is named `memory.x`: the linker looks for it in its working directory before the
//! search path. A dependency's stray `memory.x` on the search path would not fit either board
//! (`memory-mps2.x` defines the `STACK` region the `mps2` link needs), so a wrong map fails the link
//! instead of building a broken image.
use std::{env, fs, path::PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=memory-stm32.x");
    println!("cargo:rerun-if-changed=memory-mps2.x");
    println!("cargo:rerun-if-changed=build.rs");
    let stm32 = env::var_os("CARGO_FEATURE_STM32").is_some();
    let mps2 = env::var_os("CARGO_FEATURE_MPS2").is_some();
    let map: &[u8] = match (stm32, mps2) {
        (true, false) => include_bytes!("memory-stm32.x"),
        (false, true) => include_bytes!("memory-mps2.x"),
        _ => return,
    };
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    fs::write(out.join("memory.x"), map).expect("write memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-link-arg-bins=--nmagic");
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
    if stm32 {
        println!("cargo:rustc-link-arg-bins=-Tdefmt.x");
    }
}
