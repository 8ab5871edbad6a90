//! Logging macros: `defmt` when the feature is on, nothing otherwise.
//!
//! The core logs rarely (a peer going down, a reject) and never per frame at info level.

#[cfg(feature = "defmt")]
macro_rules! debug {
    ($($arg:tt)*) => { defmt::debug!($($arg)*) };
}

#[cfg(not(feature = "defmt"))]
macro_rules! debug {
    ($($arg:tt)*) => {{ let _ = ($($arg)*,); }};
}

pub(crate) use debug;
