//! Logging macros: `log` on the host, `defmt` on the board. Arguments must be printable by both
//! (integers, `&str`, embassy-net addresses and endpoints).

#[cfg(feature = "stm32")]
macro_rules! info {
    ($($t:tt)*) => { ::defmt::info!($($t)*) };
}
#[cfg(feature = "stm32")]
macro_rules! warn {
    ($($t:tt)*) => { ::defmt::warn!($($t)*) };
}
#[cfg(feature = "stm32")]
#[allow(unused_macros)]
macro_rules! debug {
    ($($t:tt)*) => { ::defmt::debug!($($t)*) };
}

#[cfg(not(feature = "stm32"))]
macro_rules! info {
    ($($t:tt)*) => { ::log::info!($($t)*) };
}
#[cfg(not(feature = "stm32"))]
macro_rules! warn {
    ($($t:tt)*) => { ::log::warn!($($t)*) };
}
#[cfg(not(feature = "stm32"))]
#[allow(unused_macros)]
macro_rules! debug {
    ($($t:tt)*) => { ::log::debug!($($t)*) };
}
