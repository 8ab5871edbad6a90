//! The persistence protocol's types: a local write is *prepared* (the record to persist is
//! made, overflow checked once), the caller persists it, then *commits* it.

use crate::named::{CounterName, MapError};

use crate::time::Duration;
use core::fmt;
use heapless::Deque;

/// Requests waiting for `poll_persist`. Local requests coalesce with a Local request at the back
/// of the queue (their records carry absolute totals, so the later one covers the earlier),
/// so a caller that drains after every `prepare` never has more than three here.
pub const PERSIST_CAPACITY: usize = 8;

/// A local operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum LocalOp {
    /// Add to this node's increments.
    Increment(u64),
    /// Add to this node's decrements.
    Decrement(u64),
}

/// A prepared local write: its record carries the node's totals after it. Hand it back to
/// `Replica::commit` once every record up to `seq` is durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[must_use = "a prepared write changes nothing until it is committed"]
pub struct Prepared {
    /// Position in the persist stream.
    pub seq: u64,
    /// Total increments after this write.
    pub inc: u64,
    /// Total decrements after this write.
    pub dec: u64,
    /// The named counter written (`None`: the default counter); `inc` and `dec` are the
    /// node's totals in it.
    pub counter: Option<CounterName>,
}

/// What `Replica::poll_persist` wrote into the caller's sink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Persisting {
    /// Position in the persist stream: records must be made durable in this order.
    pub seq: u64,
    /// What the record is.
    pub kind: PersistKind,
}

/// The kind of a record to persist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PersistKind {
    /// The node's entry id (a fresh incarnation), before any local write.
    Identity,
    /// The node's own totals after local writes.
    Local,
    /// The node's own totals in one named counter after local writes to it.
    NamedLocal,
    /// The whole merged state. It covers every record before it in the stream, so a store may
    /// drop those once it is durable.
    Snapshot,
}

/// When merged state is snapshotted: once `interval` has passed since the last snapshot and
/// the state changed, or as soon as `after_changes` changes accumulated. What counts as a
/// change: any raised entry, or with `merges_only` only entries of other nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SnapshotPolicy {
    /// Least time between snapshots.
    pub interval: Duration,
    /// Changes that make a snapshot due at once (0: never by count).
    pub after_changes: u32,
    /// Count only what merges changed (other nodes' entries), not the own entry. For a store
    /// that keeps the latest record of each kind, where the Local record already holds the
    /// own totals (the boards' flash): a snapshot after a press would only wear the flash.
    /// Hosts keep `false`: their log is compacted by snapshots.
    pub merges_only: bool,
}

impl SnapshotPolicy {
    /// Hosts: every 5 s while the state changes.
    pub const HOST: SnapshotPolicy = SnapshotPolicy {
        interval: Duration::from_secs(5),
        after_changes: 0,
        merges_only: false,
    };
}

/// Why a write could not be prepared. Nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum PrepareError {
    /// The local total would overflow `u64`.
    Overflow,
    /// The persist queue is full: the caller has not drained `poll_persist`.
    Backlog,
    /// A named write refused: a bad name, or no room for another counter (`too_many_counters`)
    /// or for this node's cell in it.
    Named(MapError),
}

impl PrepareError {
    /// The stable error name of every interface.
    pub const fn name(self) -> &'static str {
        match self {
            PrepareError::Overflow => "overflow",
            PrepareError::Backlog => "backlog",
            PrepareError::Named(e) => e.name(),
        }
    }
}

impl fmt::Display for PrepareError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrepareError::Overflow => f.write_str("the counter would overflow"),
            PrepareError::Backlog => f.write_str("the persist queue is full"),
            PrepareError::Named(e) => write!(f, "{e}"),
        }
    }
}

impl core::error::Error for PrepareError {}

/// Why a write could not be committed. Nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum CommitError {
    /// The fresh identity was not reported persisted (`Replica::persisted`) yet.
    IdentityNotPersisted,
    /// The write was prepared by another replica (its sequence number was never handed out).
    Unknown,
}

impl fmt::Display for CommitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CommitError::IdentityNotPersisted => "the node's identity is not persisted yet",
            CommitError::Unknown => "no such prepared write",
        })
    }
}

impl core::error::Error for CommitError {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Request {
    Identity,
    Local {
        inc: u64,
        dec: u64,
    },
    /// The prepared totals of the named write in this slot of the replica's table.
    NamedLocal {
        slot: u16,
    },
    Snapshot,
}

/// The ordered stream of records to persist.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    items: Deque<(u64, Request), PERSIST_CAPACITY>,
    next_seq: u64,
}

impl Queue {
    /// Queues `request`; returns its sequence number. A Local request replaces a Local request
    /// at the back (which it covers) and takes a new number: whoever waits for the old number
    /// is served by the new record.
    pub(crate) fn push(&mut self, request: Request) -> Result<u64, PrepareError> {
        let seq = self.next_seq;
        let coalesce = match (request, self.items.back()) {
            (Request::Local { .. }, Some((_, Request::Local { .. })))
            | (Request::Snapshot, Some((_, Request::Snapshot))) => true,
            (Request::NamedLocal { slot }, Some((_, Request::NamedLocal { slot: last }))) => {
                slot == *last
            }
            _ => false,
        };
        if coalesce {
            if let Some(last) = self.items.back_mut() {
                *last = (seq, request);
            }
        } else {
            self.items
                .push_back((seq, request))
                .map_err(|_| PrepareError::Backlog)?;
        }
        self.next_seq += 1;
        Ok(seq)
    }

    pub(crate) fn front(&self) -> Option<(u64, Request)> {
        self.items.front().copied()
    }

    pub(crate) fn pop(&mut self) {
        self.items.pop_front();
    }

    pub(crate) fn has_snapshot(&self) -> bool {
        self.items.iter().any(|(_, r)| *r == Request::Snapshot)
    }

    pub(crate) fn has_named(&self) -> bool {
        self.items
            .iter()
            .any(|(_, r)| matches!(r, Request::NamedLocal { .. }))
    }

    pub(crate) fn is_full(&self) -> bool {
        self.items.is_full()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub(crate) fn issued(&self, seq: u64) -> bool {
        seq < self.next_seq
    }
}
