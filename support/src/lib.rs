//! What the crate's tests, benchmarks, fuzz targets and size probe share, so each builds its sample
//! provider and speaks HTTP to a gateway the same way:
//!
//! - [`sample`]: the sample providers (clients, scopes, key, verification URI), `no_std`;
//! - `client` (feature `std`): requests as bytes, responses parsed from bytes or read from a stream.
//!
//! Not a library for users of the crate: it is not published.
#![no_std]

#[cfg(feature = "std")]
extern crate std;

#[cfg(feature = "std")]
pub mod client;
pub mod sample;
