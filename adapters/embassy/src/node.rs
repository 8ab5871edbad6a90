//! [`Node`]: the handle a program keeps to count, read and watch a running node.

use crate::state::{now, AdapterStats, Shared};
use embassy_sync::blocking_mutex::raw::RawMutex;
use tally_core::{CounterError, Entry, FixedEngine, NodeId, PeerSource, Stats};

/// Why a node could not start or an operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum NodeError {
    /// The id or advertised address is not valid (empty, too long, or not `host:port`).
    BadId,
    /// A static peer address is not `host:port`, or the peer table is full.
    BadPeer,
    /// The local total would overflow `u64`.
    Overflow,
    /// Restored state does not fit the counter or is not sorted by id.
    BadState,
    /// The engine is not built (cannot happen through [`crate::new`]).
    NotStarted,
}

impl core::fmt::Display for NodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            NodeError::BadId => "invalid node id or advertised address",
            NodeError::BadPeer => "invalid peer address or peer table full",
            NodeError::Overflow => "the counter would overflow",
            NodeError::BadState => "restored state does not fit the counter",
            NodeError::NotStarted => "node engine not built",
        })
    }
}

impl core::error::Error for NodeError {}

/// A handle to a running node: cheap to copy, usable from any task of the executor that runs
/// the node (or from any task, with a `CriticalSectionRawMutex`).
pub struct Node<'a, M: RawMutex, const N: usize = 32, const P: usize = 16, const L: usize = 64> {
    pub(crate) shared: &'a Shared<M, N, P, L>,
}

impl<M: RawMutex, const N: usize, const P: usize, const L: usize> Clone for Node<'_, M, N, P, L> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M: RawMutex, const N: usize, const P: usize, const L: usize> Copy for Node<'_, M, N, P, L> {}

impl<M: RawMutex, const N: usize, const P: usize, const L: usize> Node<'_, M, N, P, L> {
    /// The node id.
    pub fn id(&self) -> Option<NodeId<L>> {
        self.shared.with(|e| *e.id())
    }

    /// Adds `by` to this node's increments; returns the new value.
    pub fn increment(&self, by: u64) -> Result<i128, NodeError> {
        self.update(|e| e.increment(by))
    }

    /// Adds `by` to this node's decrements; returns the new value.
    pub fn decrement(&self, by: u64) -> Result<i128, NodeError> {
        self.update(|e| e.decrement(by))
    }

    fn update(
        &self,
        op: impl FnOnce(&mut FixedEngine<N, P, L>) -> Result<u64, CounterError>,
    ) -> Result<i128, NodeError> {
        let value = self
            .shared
            .with(|e| op(e).map(|_| e.value()))
            .ok_or(NodeError::NotStarted)?
            .map_err(|_| NodeError::Overflow)?;
        self.shared.changed.signal(value);
        Ok(value)
    }

    /// The cluster value as this node knows it.
    pub fn value(&self) -> i128 {
        self.shared.with(|e| e.value()).unwrap_or(0)
    }

    /// This node's own (inc, dec) totals.
    pub fn local(&self) -> (u64, u64) {
        self.shared
            .with(|e| {
                let l = e.counter().local_entry();
                (l.inc, l.dec)
            })
            .unwrap_or((0, 0))
    }

    /// Calls `f` with every entry, sorted by id (zero entries included), under the engine's
    /// lock: keep `f` short (e.g. copy into a buffer to persist).
    pub fn for_each_entry(&self, mut f: impl FnMut(&Entry<L>)) {
        self.shared
            .with(|e| e.counter().entries().iter().for_each(&mut f));
    }

    /// Merges a saved state (entries strictly sorted by id, e.g. read back from flash), own
    /// entry included. Returns whether anything rose.
    pub fn restore<'i, I>(&self, entries: I) -> Result<bool, NodeError>
    where
        I: Iterator<Item = (&'i str, u64, u64)> + Clone,
    {
        let changed = self
            .shared
            .with(|e| e.merge_state(entries))
            .ok_or(NodeError::NotStarted)?
            .map_err(|_| NodeError::BadState)?;
        if changed {
            self.shared.changed.signal(self.value());
        }
        Ok(changed)
    }

    /// Waits until the value changes (a local update or a merge that raised a total) and
    /// returns the new value. Changes that happen while nobody waits are coalesced into the
    /// latest. Meant for one waiter (e.g. the task that blinks the LED and persists).
    pub async fn wait_changed(&self) -> i128 {
        self.shared.changed.wait().await
    }

    /// Adds a peer (e.g. from discovery). Returns true when it was new.
    pub fn add_peer(&self, addr: &str, source: PeerSource) -> Result<bool, NodeError> {
        let now = now();
        self.shared
            .with(|e| e.add_peer(addr, source, now))
            .ok_or(NodeError::NotStarted)?
            .map_err(|_| NodeError::BadPeer)
    }

    /// Removes a peer.
    pub fn remove_peer(&self, addr: &str) -> bool {
        self.shared.with(|e| e.remove_peer(addr)).unwrap_or(false)
    }

    /// What the engine has done.
    pub fn stats(&self) -> Option<Stats> {
        self.shared.with(|e| e.stats().clone())
    }

    /// What the adapter has done.
    pub fn adapter_stats(&self) -> AdapterStats {
        self.shared.stats.lock(|c| c.get())
    }

    /// Runs `f` on the engine under its lock (advanced use: metrics, inspection). Do not call
    /// other methods of this handle inside `f`.
    pub fn with_engine<R>(&self, f: impl FnOnce(&mut FixedEngine<N, P, L>) -> R) -> Option<R> {
        self.shared.with(f)
    }

    /// Asks the runner to drain the engine's queue now rather than at its next timer.
    pub fn kick(&self) {
        self.shared.wake.signal(());
    }
}
