//! Logging macros: `defmt` or `log` when the feature is on, nothing otherwise.
//!
//! The adapter logs a node's start, peers going down and failed sends at debug level; never one
//! line per frame at info.

#[cfg(all(feature = "defmt", feature = "log"))]
compile_error!("features `defmt` and `log` are mutually exclusive");

#[cfg(feature = "defmt")]
macro_rules! info {
    ($($arg:tt)*) => { defmt::info!($($arg)*) };
}
#[cfg(feature = "defmt")]
macro_rules! debug {
    ($($arg:tt)*) => { defmt::debug!($($arg)*) };
}

#[cfg(feature = "log")]
macro_rules! info {
    ($($arg:tt)*) => { log::info!($($arg)*) };
}
#[cfg(feature = "log")]
macro_rules! debug {
    ($($arg:tt)*) => { log::debug!($($arg)*) };
}

#[cfg(not(any(feature = "defmt", feature = "log")))]
macro_rules! info {
    ($($arg:tt)*) => {{ let _ = ($($arg)*,); }};
}
#[cfg(not(any(feature = "defmt", feature = "log")))]
macro_rules! debug {
    ($($arg:tt)*) => {{ let _ = ($($arg)*,); }};
}

pub(crate) use debug;
pub(crate) use info;
