//! The TAP node's resets, standing in for the chip's: a watchdog on its own OS thread (as the
//! hardware one counts on its own), fed by the board program's main loop, and a panic hook.
//! A reset ends the process with its own exit code after saying so on stdout (`reset
//! watchdog`, `reset panic`); whoever runs the node starts it again on the same flash file,
//! as power-on after a reset runs the firmware again on the same flash. RAM is lost, the flash
//! is kept.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Exit code of a watchdog reset.
pub const EXIT_WATCHDOG: i32 = 87;
/// Exit code of a reset after a panic.
pub const EXIT_PANIC: i32 = 88;

/// How often the watchdog's thread looks at the last feed.
const CHECK_EVERY: Duration = Duration::from_millis(50);

/// A watchdog that resets the node unless fed within its timeout.
pub struct SoftWatchdog {
    started: Instant,
    /// Milliseconds since `started` at the last feed.
    fed_at: Arc<AtomicU64>,
}

impl SoftWatchdog {
    /// Starts counting down `timeout` at once (as the boards start theirs first thing).
    pub fn start(timeout: Duration) -> Self {
        let started = Instant::now();
        let fed_at = Arc::new(AtomicU64::new(0));
        let seen = Arc::clone(&fed_at);
        std::thread::spawn(move || loop {
            std::thread::sleep(CHECK_EVERY);
            let last = Duration::from_millis(seen.load(Ordering::Relaxed));
            if started.elapsed().saturating_sub(last) > timeout {
                crate::say("reset watchdog");
                log::error!("watchdog: not fed for {timeout:?}; resetting");
                std::process::exit(EXIT_WATCHDOG);
            }
        });
        Self { started, fed_at }
    }
}

impl tally_board::supervise::Watchdog for SoftWatchdog {
    fn feed(&mut self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.fed_at.store(ms, Ordering::Relaxed);
    }
}

/// A panic anywhere resets the node (the boards reset from their panic handlers).
pub fn reset_on_panic() {
    std::panic::set_hook(Box::new(|info| {
        log::error!("{info}");
        crate::say("reset panic");
        std::process::exit(EXIT_PANIC);
    }));
}
