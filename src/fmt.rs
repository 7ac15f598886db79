//! Logging shim: `log` or `defmt` (optional, mutually exclusive features), or nothing.
//!
//! Modules use `crate::fmt::{log_debug, log_info, log_warn}` and never name a logging crate, so the
//! choice is the firmware's. Log lines never carry codes, tokens or secrets: only what an operator
//! needs (a full table, a replay detected and the family revoked, a snapshot refused and why, a clock
//! found behind the snapshot).
#![allow(unused_macros, unused_imports)]

#[cfg(all(feature = "log", feature = "defmt"))]
compile_error!("features `log` and `defmt` are mutually exclusive");

macro_rules! log_debug {
    ($($arg:tt)*) => {{
        #[cfg(feature = "log")]
        ::log::debug!($($arg)*);
        #[cfg(feature = "defmt")]
        ::defmt::debug!($($arg)*);
        #[cfg(not(any(feature = "log", feature = "defmt")))]
        { let _ = ($($arg)*); }
    }};
}

macro_rules! log_warn {
    ($($arg:tt)*) => {{
        #[cfg(feature = "log")]
        ::log::warn!($($arg)*);
        #[cfg(feature = "defmt")]
        ::defmt::warn!($($arg)*);
        #[cfg(not(any(feature = "log", feature = "defmt")))]
        { let _ = ($($arg)*); }
    }};
}

macro_rules! log_info {
    ($($arg:tt)*) => {{
        #[cfg(feature = "log")]
        ::log::info!($($arg)*);
        #[cfg(feature = "defmt")]
        ::defmt::info!($($arg)*);
        #[cfg(not(any(feature = "log", feature = "defmt")))]
        { let _ = ($($arg)*); }
    }};
}

pub(crate) use log_debug;
pub(crate) use log_info;
pub(crate) use log_warn;
