//! The core's own clock types: milliseconds in a `u64`, fed in by the caller.
//!
//! The core never reads a clock. Adapters convert from `std::time::Instant` or
//! `embassy_time::Instant` by taking milliseconds since some fixed origin of their choosing.

use core::fmt;
use core::ops::{Add, AddAssign, Sub};

/// A point in time, in milliseconds since an origin the caller chooses (boot, process start…).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Instant {
    millis: u64,
}

/// A span of time in milliseconds.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Duration {
    millis: u64,
}

impl Instant {
    /// The origin.
    pub const ZERO: Instant = Instant { millis: 0 };

    /// An instant `millis` milliseconds after the origin.
    pub const fn from_millis(millis: u64) -> Self {
        Self { millis }
    }

    /// Milliseconds since the origin.
    pub const fn as_millis(self) -> u64 {
        self.millis
    }

    /// Time from `earlier` to `self`, or zero when `earlier` is later.
    pub const fn saturating_since(self, earlier: Instant) -> Duration {
        Duration {
            millis: self.millis.saturating_sub(earlier.millis),
        }
    }
}

impl Duration {
    /// No time.
    pub const ZERO: Duration = Duration { millis: 0 };

    /// A duration of `millis` milliseconds.
    pub const fn from_millis(millis: u64) -> Self {
        Self { millis }
    }

    /// A duration of `secs` seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Self {
            millis: secs.saturating_mul(1000),
        }
    }

    /// Length in milliseconds.
    pub const fn as_millis(self) -> u64 {
        self.millis
    }

    /// `self * k`, saturating.
    pub const fn saturating_mul(self, k: u64) -> Duration {
        Duration {
            millis: self.millis.saturating_mul(k),
        }
    }
}

/// An optional instant in 8 bytes (`Option<Instant>` takes 16): for bookkeeping fields kept
/// per peer, where memory on microcontrollers is counted.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Stamp(u64);

impl Stamp {
    /// No instant.
    pub const NONE: Stamp = Stamp(u64::MAX);

    /// The instant `at` (`u64::MAX` ms cannot be stored and reads as none).
    pub const fn at(at: Instant) -> Self {
        Stamp(at.millis)
    }

    /// The instant, if any.
    pub const fn get(self) -> Option<Instant> {
        if self.0 == u64::MAX {
            None
        } else {
            Some(Instant { millis: self.0 })
        }
    }
}

impl Default for Stamp {
    fn default() -> Self {
        Self::NONE
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, rhs: Duration) -> Instant {
        Instant {
            millis: self.millis.saturating_add(rhs.millis),
        }
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, rhs: Duration) {
        *self = *self + rhs;
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_since(rhs)
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.millis)
    }
}

impl fmt::Debug for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.millis)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Instant::from_millis(u64::MAX - 1);
        assert_eq!((t + Duration::from_secs(5)).as_millis(), u64::MAX);
        assert_eq!(Instant::ZERO - t, Duration::ZERO);
        assert_eq!(t - Instant::ZERO, Duration::from_millis(u64::MAX - 1));
        assert_eq!(Duration::from_secs(2).as_millis(), 2000);
    }
}
