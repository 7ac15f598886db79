//! What the probe firmware runs: one function per request kind, shared by the flash variants
//! (`src/main.rs`) and the stack/instruction measurement (`src/bin/measure.rs`).
#![no_std]

#[cfg(feature = "core")]
pub mod requests;

#[cfg(feature = "core_http")]
pub mod web;
