//! [`MapStores`]: where a [`CounterMap`](super::CounterMap) keeps its tables, as one type
//! parameter — fixed `heapless` vectors on boards ([`FixedStores`]), growable vectors on hosts
//! ([`GrowableStores`]), or none at all ([`Unnamed`]: a node without named counters).

use super::map::Cell;
use super::name::CounterName;
use crate::id::NodeId;
use crate::slots::{NoSlots, Slots};

/// A local write to a named counter prepared but not yet committed: the counter and the node's
/// totals in it after the write (see `Replica::prepare_named`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct NamedWrite {
    /// The counter.
    pub name: CounterName,
    /// The node's increments in it after the write.
    pub inc: u64,
    /// The node's decrements in it after the write.
    pub dec: u64,
}

/// The four stores of named counters: names, ids, cells, and prepared local writes.
pub trait MapStores<const L: usize> {
    /// Counter names, sorted.
    type Names: Slots<CounterName>;
    /// Entry ids, sorted (shared by every counter).
    type Ids: Slots<NodeId<L>>;
    /// Cells, sorted by (name, id).
    type Cells: Slots<Cell>;
    /// Local writes prepared and not yet committed, one per counter.
    type Writes: Slots<NamedWrite>;

    /// The stores of a new map (fixed stores are simply empty; growable ones get their bounds).
    fn stores() -> (Self::Names, Self::Ids, Self::Cells, Self::Writes);
}

/// Fixed stores: `K` counters, `I` ids, `C` cells, `W` prepared writes. No heap.
#[derive(Clone, Copy, Debug)]
pub struct FixedStores<const K: usize, const I: usize, const C: usize, const W: usize>;

impl<const L: usize, const K: usize, const I: usize, const C: usize, const W: usize> MapStores<L>
    for FixedStores<K, I, C, W>
{
    type Names = heapless::Vec<CounterName, K>;
    type Ids = heapless::Vec<NodeId<L>, I>;
    type Cells = heapless::Vec<Cell, C>;
    type Writes = heapless::Vec<NamedWrite, W>;

    fn stores() -> (Self::Names, Self::Ids, Self::Cells, Self::Writes) {
        Default::default()
    }
}

/// No named counters: every table is empty and takes no memory, so a node announces no
/// [`Caps::NAMED`](crate::ext::Caps::NAMED) and refuses every named write.
#[derive(Clone, Copy, Debug)]
pub struct Unnamed;

impl<const L: usize> MapStores<L> for Unnamed {
    type Names = NoSlots;
    type Ids = NoSlots;
    type Cells = NoSlots;
    type Writes = NoSlots;

    fn stores() -> (Self::Names, Self::Ids, Self::Cells, Self::Writes) {
        (NoSlots, NoSlots, NoSlots, NoSlots)
    }
}

/// Host limits of named counters.
pub mod host {
    /// Counters per node (and so per cluster).
    pub const MAX_COUNTERS: usize = 10_000;
    /// Distinct entry ids across all counters.
    pub const MAX_IDS: usize = 65_536;
    /// Cells (one per counter and id that wrote to it).
    pub const MAX_CELLS: usize = 1 << 20;
}

/// Growable heap stores with the [`host`] limits.
#[cfg(feature = "alloc")]
#[derive(Clone, Copy, Debug)]
pub struct GrowableStores;

#[cfg(feature = "alloc")]
impl<const L: usize> MapStores<L> for GrowableStores {
    type Names = crate::slots::Growable<CounterName>;
    type Ids = crate::slots::Growable<NodeId<L>>;
    type Cells = crate::slots::Growable<Cell>;
    type Writes = crate::slots::Growable<NamedWrite>;

    fn stores() -> (Self::Names, Self::Ids, Self::Cells, Self::Writes) {
        use crate::slots::Growable;
        (
            Growable::with_max_len(host::MAX_COUNTERS),
            Growable::with_max_len(host::MAX_IDS),
            Growable::with_max_len(host::MAX_CELLS),
            Growable::with_max_len(host::MAX_COUNTERS),
        )
    }
}
