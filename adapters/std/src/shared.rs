//! State shared by a node's threads: the engine behind a mutex, the clock, the wake-up signal
//! of the driver, and the adapter's own counters.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant as StdInstant;
use tally_core::{GrowableEngine, Instant};

/// The engine type of host nodes: 255-byte ids, growable stores.
pub type HostEngine = GrowableEngine<255>;

/// Counters of what the adapter itself did (the engine counts the rest).
#[derive(Debug, Default)]
pub struct AdapterCounters {
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Connections dropped because every worker was busy and the backlog was full.
    pub shed: AtomicU64,
    /// Frames delivered to peers.
    pub sent: AtomicU64,
    /// Frames that could not be delivered.
    pub send_failed: AtomicU64,
    /// Frames dropped because the send queue was full.
    pub send_dropped: AtomicU64,
}

/// A snapshot of the adapter's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdapterStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections shed.
    pub shed: u64,
    /// Frames delivered.
    pub sent: u64,
    /// Frames not delivered.
    pub send_failed: u64,
    /// Frames dropped from a full send queue.
    pub send_dropped: u64,
}

impl AdapterCounters {
    pub(crate) fn snapshot(&self) -> AdapterStats {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        AdapterStats {
            accepted: g(&self.accepted),
            shed: g(&self.shed),
            sent: g(&self.sent),
            send_failed: g(&self.send_failed),
            send_dropped: g(&self.send_dropped),
        }
    }
}

pub(crate) fn bump(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

pub(crate) struct Shared {
    engine: Mutex<HostEngine>,
    origin: StdInstant,
    wake: Mutex<bool>,
    wake_cv: Condvar,
    pub(crate) shutdown: AtomicBool,
    pub(crate) isolated: AtomicBool,
    pub(crate) counters: AdapterCounters,
}

impl Shared {
    pub(crate) fn new(engine: HostEngine, origin: StdInstant) -> Self {
        Self {
            engine: Mutex::new(engine),
            origin,
            wake: Mutex::new(false),
            wake_cv: Condvar::new(),
            shutdown: AtomicBool::new(false),
            isolated: AtomicBool::new(false),
            counters: AdapterCounters::default(),
        }
    }

    /// The engine. A panic in another thread while holding the lock does not poison the node:
    /// the engine's state is valid between calls, so the guard is recovered.
    pub(crate) fn engine(&self) -> MutexGuard<'_, HostEngine> {
        self.engine.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Milliseconds since the node started, as the core's clock.
    pub(crate) fn now(&self) -> Instant {
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        Instant::from_millis(ms)
    }

    /// Converts a core instant back to std time.
    pub(crate) fn to_std(&self, at: Instant) -> StdInstant {
        self.origin + std::time::Duration::from_millis(at.as_millis())
    }

    /// Wakes the driver (something may be ready to send).
    pub(crate) fn kick(&self) {
        let mut flag = self.wake.lock().unwrap_or_else(|p| p.into_inner());
        *flag = true;
        self.wake_cv.notify_one();
    }

    /// Sleeps until kicked or until `deadline`.
    pub(crate) fn wait(&self, deadline: StdInstant) {
        let mut flag = self.wake.lock().unwrap_or_else(|p| p.into_inner());
        while !*flag && !self.is_shutting_down() {
            let now = StdInstant::now();
            if now >= deadline {
                break;
            }
            let (g, _) = self
                .wake_cv
                .wait_timeout(flag, deadline - now)
                .unwrap_or_else(|p| p.into_inner());
            flag = g;
        }
        *flag = false;
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    pub(crate) fn is_isolated(&self) -> bool {
        self.isolated.load(Ordering::Relaxed)
    }
}
