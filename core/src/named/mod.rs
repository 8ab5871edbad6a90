//! Named counters: any number of PN-Counters under names, merged per name, with
//! observed-remove (`docs/EXTENSIONS.md` §6). The engine gossips them to peers that announce
//! [`Caps::NAMED`](crate::ext::Caps::NAMED); the default counter stays the reference one.
//!
//! - [`CounterName`]: 1–64 bytes of `[A-Za-z0-9._-]`, safe in URLs, file names and metric labels.
//! - [`CounterMap`]: the map. Ids are held once, in a table shared by every counter, so a board
//!   pays 65 bytes per id (ids of up to 64 bytes) plus 40 per (counter, id) cell, not a 32-entry counter per name.

mod map;
mod name;
mod stores;
pub mod wire;

pub use map::{merge_sorted_cells, Cell, CounterMap, MapError, MergeReport, Totals};
pub use name::{CounterName, NameError, MAX_NAME};
#[cfg(feature = "alloc")]
pub use stores::GrowableStores;
pub use stores::{host, FixedStores, MapStores, NamedWrite, Unnamed};

/// A map on fixed stores: `K` counters, `I` ids, `C` cells, ids of at most `L` bytes. No heap.
pub type FixedCounterMap<const K: usize, const I: usize, const C: usize, const L: usize> =
    CounterMap<L, FixedStores<K, I, C, 0>>;

/// A map on growable heap stores with the [`host`] limits.
#[cfg(feature = "alloc")]
pub type GrowableCounterMap<const L: usize> = CounterMap<L, GrowableStores>;
