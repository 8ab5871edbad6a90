//! [`Trickle`]: the adaptive interval between digest exchanges (RFC 6206, without
//! suppression).
//!
//! The interval `I` starts at `I_min` (the sync interval). In each interval the exchange fires
//! once, at a random point of its second half. An interval that ends *consistent* (nothing
//! changed, every digest agreed, no send failed, no peer came or came back) doubles `I`, up to
//! `I_max`; any inconsistency sets `I` back to `I_min` at once and starts a new interval.
//!
//! A **round** is one `I_min`: the unit of every "rounds until agreement" figure, whatever the
//! current interval. A quiet cluster runs few exchanges per round; a busy one, one per round.

use crate::time::{Duration, Instant};

/// The timer of one node. Pure: the engine feeds it time and randomness.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub(crate) struct Trickle {
    min: Duration,
    max: Duration,
    interval: Duration,
    ends: Instant,
    fire: Instant,
    fired: bool,
    consistent: bool,
}

impl Trickle {
    /// A timer whose first interval starts at `now`, with `I_max = min · 2^doublings`. The
    /// first exchange fires at the end of the first interval (a node just started has peers to
    /// learn first).
    pub(crate) fn new(min: Duration, doublings: u8, now: Instant) -> Self {
        let min = Duration::from_millis(min.as_millis().max(1));
        let max = min.saturating_mul(1u64 << doublings.min(20));
        Self {
            min,
            max,
            interval: min,
            ends: now + min,
            fire: now + min,
            fired: false,
            consistent: true,
        }
    }

    /// The current interval `I`.
    pub(crate) fn interval(&self) -> Duration {
        self.interval
    }

    /// When [`Trickle::poll`] has something to do.
    pub(crate) fn next(&self) -> Instant {
        if self.fired {
            self.ends
        } else {
            self.fire.min(self.ends)
        }
    }

    /// Something inconsistent happened: back to `I_min` now (a new interval, firing within it).
    /// Already at `I_min`, the interval runs on, only marked inconsistent (RFC 6206 §4.2).
    pub(crate) fn reset(&mut self, now: Instant, random: u32) {
        self.consistent = false;
        if self.interval > self.min {
            self.interval = self.min;
            self.start(now, random);
        }
    }

    /// Advances to `now`: returns true when the exchange of this interval is due (once per
    /// interval). Ends intervals as their time comes, doubling after a consistent one.
    pub(crate) fn poll(&mut self, now: Instant, random: u32) -> bool {
        if now >= self.ends {
            let missed = !self.fired;
            if self.consistent {
                self.interval = Duration::from_millis(
                    self.interval
                        .as_millis()
                        .saturating_mul(2)
                        .min(self.max.as_millis()),
                );
            }
            self.start(now, random);
            if missed {
                // The exchange of the interval that ended never fired (the first interval, or
                // a busy adapter that polled late): fire now; the new interval fires later.
                return true;
            }
        }
        if !self.fired && now >= self.fire {
            self.fired = true;
            return true;
        }
        false
    }

    fn start(&mut self, now: Instant, random: u32) {
        let half = self.interval.as_millis() / 2;
        let offset = (u64::from(random) * half.max(1)) >> 32;
        self.ends = now + self.interval;
        self.fire = now + Duration::from_millis(half + offset);
        self.fired = false;
        self.consistent = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    /// Runs `t` with polls every millisecond up to `until`; returns the fire times.
    fn fires(t: &mut Trickle, from: u64, until: u64) -> Vec<u64> {
        (from..until)
            .filter(|&ms| t.poll(at(ms), 0x8000_0000))
            .collect()
    }

    #[test]
    fn quiet_intervals_double_up_to_the_maximum() {
        let mut t = Trickle::new(Duration::from_millis(100), 3, at(0));
        let f = fires(&mut t, 0, 2000);
        // First at 100 (end of the first interval); then intervals of 200, 400, 800, 800, …
        // each firing at 3/4 of its length.
        assert_eq!(f, vec![100, 250, 600, 1300]);
        assert_eq!(t.interval(), Duration::from_millis(800));
    }

    #[test]
    fn reset_returns_to_the_minimum_at_once() {
        let mut t = Trickle::new(Duration::from_millis(100), 6, at(0));
        let _ = fires(&mut t, 0, 3000);
        assert!(t.interval() >= Duration::from_millis(1600));
        t.reset(at(3000), 0);
        assert_eq!(t.interval(), Duration::from_millis(100));
        assert_eq!(t.next(), at(3050));
        // An inconsistent interval at the minimum does not double.
        t.reset(at(3010), 0);
        let f = fires(&mut t, 3000, 3200);
        assert_eq!(f, vec![3050, 3175]);
        assert_eq!(t.interval(), Duration::from_millis(100));
    }

    #[test]
    fn a_late_poll_still_fires_once_per_interval() {
        let mut t = Trickle::new(Duration::from_millis(100), 0, at(0));
        assert!(t.poll(at(350), 0));
        assert!(!t.poll(at(351), 0));
        assert!(t.poll(at(450), 0));
    }
}
