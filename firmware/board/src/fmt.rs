//! Logging: defmt with the `defmt` feature (the boards), the `log` crate with the `log`
//! feature (the TAP node), nothing otherwise (host tests). In scope through `#[macro_use]` on
//! the module.

#[cfg(feature = "defmt")]
macro_rules! info {
    ($($arg:tt)*) => { defmt::info!($($arg)*) };
}
#[cfg(feature = "defmt")]
macro_rules! warn {
    ($($arg:tt)*) => { defmt::warn!($($arg)*) };
}

#[cfg(all(feature = "log", not(feature = "defmt")))]
macro_rules! info {
    ($($arg:tt)*) => { log::info!($($arg)*) };
}
#[cfg(all(feature = "log", not(feature = "defmt")))]
macro_rules! warn {
    ($($arg:tt)*) => { log::warn!($($arg)*) };
}

#[cfg(not(any(feature = "defmt", feature = "log")))]
macro_rules! info {
    ($($arg:tt)*) => {{ let _ = ($($arg)*,); }};
}
#[cfg(not(any(feature = "defmt", feature = "log")))]
macro_rules! warn {
    ($($arg:tt)*) => {{ let _ = ($($arg)*,); }};
}
