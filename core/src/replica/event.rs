//! [`Event`]: what happened inside a replica, handed out by `Replica::poll_event`.

use crate::id::NodeId;
use heapless::Deque;

/// Events held until polled. Beyond this the oldest are dropped (counted); a `Changed` event
/// coalesces with a `Changed` before it, so a burst of merges is one event.
pub const EVENT_CAPACITY: usize = 8;

/// Why the value changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Cause {
    /// A local write was committed.
    Local,
    /// A merge (gossip or restored state) raised an entry.
    Merge,
}

/// What is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Capacity {
    /// A Push held more entries than the counter can take (it was refused whole).
    Entries,
    /// A sender could not be added to the full peer table.
    Peers,
    /// Named counters of a named Push were refused whole (no room for their names, ids or
    /// cells); the others were merged.
    Counters,
}

/// Something that happened, for adapters and programs to react to instead of polling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Event<const L: usize> {
    /// The value changed (the latest value, when several changes coalesced).
    Changed {
        /// The cluster value as this node knows it now.
        value: i128,
        /// What changed it last.
        cause: Cause,
    },
    /// Some named counter changed (read them with `Replica::named`). Coalesces like
    /// `Changed`.
    NamedChanged {
        /// What changed them last.
        cause: Cause,
    },
    /// A peer answered again after being down.
    PeerUp(NodeId<L>),
    /// A peer is down after repeated send failures.
    PeerDown(NodeId<L>),
    /// Peers went down because nothing was heard from them within the failure timeout.
    PeersSilent(u32),
    /// Something was refused for lack of room.
    CapacityExceeded(Capacity),
}

/// The bounded event queue.
#[derive(Debug, Default)]
pub(crate) struct Events<const L: usize> {
    queue: Deque<Event<L>, EVENT_CAPACITY>,
    pub(crate) dropped: u64,
}

impl<const L: usize> Events<L> {
    pub(crate) fn push(&mut self, event: Event<L>) {
        let same_kind = matches!(
            (event, self.queue.back()),
            (Event::Changed { .. }, Some(Event::Changed { .. }))
                | (Event::NamedChanged { .. }, Some(Event::NamedChanged { .. }))
        );
        if same_kind {
            if let Some(last) = self.queue.back_mut() {
                *last = event;
            }
            return;
        }
        if self.queue.is_full() {
            self.queue.pop_front();
            self.dropped += 1;
        }
        let _ = self.queue.push_back(event);
    }

    pub(crate) fn pop(&mut self) -> Option<Event<L>> {
        self.queue.pop_front()
    }
}
