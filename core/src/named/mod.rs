//! Named counters (issue 16, first step): any number of PN-Counters under names, merged per
//! name, with observed-remove — the state only; the wire extension, persistence and APIs that
//! carry it come in later steps.
//!
//! - [`CounterName`]: 1–64 bytes of `[A-Za-z0-9._-]`, safe in URLs, file names and metric labels.
//! - [`CounterMap`]: the map. Ids are held once, in a table shared by every counter, so a board
//!   pays 65 bytes per id plus 40 per (counter, id) cell, not a 32-entry counter per name.

mod map;
mod name;
pub mod wire;

pub use map::{Cell, CounterMap, MapError, Totals};
pub use name::{CounterName, NameError, MAX_NAME};

/// A map on fixed stores: `K` counters, `I` ids, `C` cells, ids of at most `L` bytes. No heap.
pub type FixedCounterMap<const K: usize, const I: usize, const C: usize, const L: usize> =
    CounterMap<
        L,
        heapless::Vec<CounterName, K>,
        heapless::Vec<crate::NodeId<L>, I>,
        heapless::Vec<Cell, C>,
    >;

/// A map on growable heap stores (hosts).
#[cfg(feature = "alloc")]
pub type GrowableCounterMap<const L: usize> = CounterMap<
    L,
    crate::slots::Growable<CounterName>,
    crate::slots::Growable<crate::NodeId<L>>,
    crate::slots::Growable<Cell>,
>;
