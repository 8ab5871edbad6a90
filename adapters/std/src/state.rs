//! [`NodeState`]: what a node's threads hold in common — the replica behind a mutex, the
//! clock, the driver's wake-up signal, the journal and the flags.

use crate::journal::Journal;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant as StdInstant;
use tally_core::{GrowableReplica, Instant};

/// The replica type of host nodes: 255-byte ids, growable stores.
pub type HostReplica = GrowableReplica<255>;

pub(crate) struct NodeState {
    replica: Mutex<HostReplica>,
    origin: StdInstant,
    /// Set by [`NodeState::kick`], cleared by the driver when it wakes: while it is set, more
    /// kicks cost one atomic swap (no lock, no futex), however many writes arrive.
    kicked: AtomicBool,
    wake: Mutex<()>,
    wake_cv: Condvar,
    /// Bumped (under its mutex) after every change of the value, for [`crate::Node::wait_changed`].
    pub(crate) changes: Mutex<u64>,
    pub(crate) changes_cv: Condvar,
    /// Threads in [`crate::Node::wait_changed`]: only for them must a local write wake the
    /// driver at once (it drains the write's event at its next timer otherwise).
    pub(crate) change_waiters: AtomicUsize,
    pub(crate) journal: Option<Arc<dyn Journal>>,
    pub(crate) shutdown: AtomicBool,
    pub(crate) isolated: AtomicBool,
}

impl NodeState {
    pub(crate) fn new(
        replica: HostReplica,
        origin: StdInstant,
        journal: Option<Arc<dyn Journal>>,
    ) -> Self {
        Self {
            replica: Mutex::new(replica),
            origin,
            kicked: AtomicBool::new(false),
            wake: Mutex::new(()),
            wake_cv: Condvar::new(),
            changes: Mutex::new(0),
            changes_cv: Condvar::new(),
            change_waiters: AtomicUsize::new(0),
            journal,
            shutdown: AtomicBool::new(false),
            isolated: AtomicBool::new(false),
        }
    }

    /// The replica. A panic in another thread while holding the lock does not poison the
    /// node: the replica's state is valid between calls, so the guard is recovered.
    pub(crate) fn replica(&self) -> MutexGuard<'_, HostReplica> {
        self.replica.lock().unwrap_or_else(|p| p.into_inner())
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

    /// Wakes the driver (something may be ready to send or persist).
    pub(crate) fn kick(&self) {
        if self.kicked.swap(true, Ordering::AcqRel) {
            return; // the driver has a wake-up pending and will see this change too
        }
        // Taking the lock orders this against a driver between its check and its sleep.
        drop(self.wake.lock().unwrap_or_else(|p| p.into_inner()));
        self.wake_cv.notify_one();
    }

    /// Sleeps until kicked or until `deadline`; a kick that came while the driver was busy
    /// returns at once. Either way the next kick wakes it again.
    pub(crate) fn wait(&self, deadline: StdInstant) {
        let mut guard = self.wake.lock().unwrap_or_else(|p| p.into_inner());
        while !self.kicked.load(Ordering::Acquire) && !self.is_shutting_down() {
            let now = StdInstant::now();
            if now >= deadline {
                break;
            }
            let (g, _) = self
                .wake_cv
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(|p| p.into_inner());
            guard = g;
        }
        self.kicked.store(false, Ordering::Release);
    }

    /// After local writes committed: the engine wants them pushed at once (its timeout moved
    /// to now), so the driver is woken. Kicks coalesce: under load, one wake-up serves every
    /// write that came while the driver was busy.
    pub(crate) fn local_committed(&self) {
        self.kick();
    }

    /// Tells waiters of [`crate::Node::wait_changed`] that the value changed.
    pub(crate) fn note_change(&self) {
        let mut n = self.changes.lock().unwrap_or_else(|p| p.into_inner());
        *n += 1;
        self.changes_cv.notify_all();
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    pub(crate) fn is_isolated(&self) -> bool {
        self.isolated.load(Ordering::Relaxed)
    }
}
