//! [`CounterMap`]: named PN-Counters with observed-remove, on three bounded stores.
//!
//! Counter names and entry ids each live once, in a table kept sorted by bytes; a [`Cell`] holds
//! one id's totals in one counter, and the cells are kept sorted by (name, id). Merge is per
//! cell: every field is the maximum of both sides, so it is commutative, associative and
//! idempotent.
//!
//! **Observed-remove.** Removing a counter does not delete its cells: it raises each cell's
//! *floor* to the totals it observed. A counter's value counts only what lies above the floors,
//! and a counter is shown while some cell rises above its floor. An increment concurrent with
//! the removal (made where the removal was not yet seen) lies above the floor that removal set,
//! so it survives the merge. The cost of a removal: its cells (40 bytes each, plus the name and
//! ids, which stay in their tables) are kept as floors; they count toward the limits.

use super::name::{CounterName, NameError};
use super::stores::MapStores;
use crate::id::NodeId;
use crate::slots::{CapacityExceeded, Slots};
use core::cmp::Ordering;
use core::hash::Hasher;
use twox_hash::XxHash64;

/// One id's totals in one counter, and the floors an observed removal left.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Totals {
    /// Increments made by the id.
    pub inc: u64,
    /// Decrements made by the id.
    pub dec: u64,
    /// Increments a removal observed (not counted).
    pub floor_inc: u64,
    /// Decrements a removal observed (not counted).
    pub floor_dec: u64,
}

impl Totals {
    /// What counts: the totals above the floors.
    pub fn value(&self) -> i128 {
        i128::from(self.inc.saturating_sub(self.floor_inc))
            - i128::from(self.dec.saturating_sub(self.floor_dec))
    }

    /// Whether anything lies above the floors.
    pub fn is_live(&self) -> bool {
        self.inc > self.floor_inc || self.dec > self.floor_dec
    }

    /// The field-wise maximum of both; returns true when `self` changed.
    fn join(&mut self, o: &Totals) -> bool {
        let before = *self;
        self.inc = self.inc.max(o.inc);
        self.dec = self.dec.max(o.dec);
        self.floor_inc = self.floor_inc.max(o.floor_inc);
        self.floor_dec = self.floor_dec.max(o.floor_dec);
        *self != before
    }
}

/// A cell: the totals of id `id` in counter `name` (indices into the map's tables).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Cell {
    /// Index of the counter's name.
    pub name: u16,
    /// Index of the entry id.
    pub id: u16,
    /// The map's clock when the cell last changed (local bookkeeping for delta sync, not
    /// state: see [`CounterMap::changed_since`]).
    pub changed: u32,
    /// Its totals.
    pub totals: Totals,
}

/// Why an operation on the map was refused. Every refusal changes nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum MapError {
    /// Not a counter name.
    BadName(NameError),
    /// Not an entry id (empty, too long or not printable ASCII).
    BadId,
    /// The counter table is full.
    TooManyCounters,
    /// The id or cell table is full.
    CapacityExceeded,
    /// A total would pass `u64::MAX`.
    Overflow,
    /// Merge input not strictly sorted by (name, id).
    Unsorted,
}

impl MapError {
    /// The stable error name of every interface.
    pub const fn name(self) -> &'static str {
        match self {
            MapError::BadName(_) => "bad_name",
            MapError::BadId => "bad_id",
            MapError::TooManyCounters => "too_many_counters",
            MapError::CapacityExceeded => "capacity_exceeded",
            MapError::Overflow => "overflow",
            MapError::Unsorted => "unsorted",
        }
    }
}

impl core::fmt::Display for MapError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            MapError::BadName(e) => write!(f, "{e}"),
            MapError::BadId => f.write_str("invalid entry id"),
            MapError::TooManyCounters => f.write_str("too many counters"),
            MapError::CapacityExceeded => f.write_str("no room for more ids or cells"),
            MapError::Overflow => f.write_str("a total would overflow"),
            MapError::Unsorted => f.write_str("merge input is not sorted by name and id"),
        }
    }
}

impl core::error::Error for MapError {}

impl From<CapacityExceeded> for MapError {
    fn from(_: CapacityExceeded) -> Self {
        MapError::CapacityExceeded
    }
}

/// Named counters, on the stores `M` gives. Writes name the entry id they count under (a
/// node's own: its `name#incarnation`).
pub struct CounterMap<const L: usize, M: MapStores<L>> {
    names: M::Names,
    ids: M::Ids,
    cells: M::Cells,
    /// Bumped by every change; changed cells carry its new value.
    clock: u32,
}

impl<const L: usize, M: MapStores<L>> Clone for CounterMap<L, M>
where
    M::Names: Clone,
    M::Ids: Clone,
    M::Cells: Clone,
{
    fn clone(&self) -> Self {
        Self {
            names: self.names.clone(),
            ids: self.ids.clone(),
            cells: self.cells.clone(),
            clock: self.clock,
        }
    }
}

impl<const L: usize, M: MapStores<L>> Default for CounterMap<L, M> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const L: usize, M: MapStores<L>> core::fmt::Debug for CounterMap<L, M> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CounterMap")
            .field("counters", &self.names.len())
            .field("ids", &self.ids.len())
            .field("cells", &self.cells.len())
            .finish()
    }
}

/// What a per-counter merge ([`CounterMap::merge_each`]) did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MergeReport {
    /// Some cell rose.
    pub changed: bool,
    /// Counters refused whole (no room for their name, ids or cells).
    pub refused: u32,
}

impl<const L: usize, M: MapStores<L>> CounterMap<L, M> {
    /// An empty map.
    pub fn new() -> Self {
        let (names, ids, cells, _) = M::stores();
        Self {
            names,
            ids,
            cells,
            clock: 0,
        }
    }

    /// The most counters this map holds (0: no named counters at all).
    pub fn max_counters(&self) -> usize {
        self.names.max_len()
    }

    /// The clock: bumped by every change (see [`Cell::changed`]).
    pub fn clock(&self) -> u32 {
        self.clock
    }

    /// Moves the clock forward to `at` (never back): an owner that keeps one clock for several
    /// structures (the engine's state version) sets it before a change.
    pub fn set_clock(&mut self, at: u32) {
        self.clock = self.clock.max(at);
    }

    /// Heap bytes the stores reserved (0 on fixed stores).
    pub fn heap_bytes(&self) -> usize {
        self.names.heap_bytes() + self.ids.heap_bytes() + self.cells.heap_bytes()
    }

    /// Counters held (shown or removed).
    pub fn names_len(&self) -> usize {
        self.names.len()
    }

    /// Cells held (live or floors).
    pub fn cells_len(&self) -> usize {
        self.cells.len()
    }

    /// The value of counter `name`: `None` when it does not exist or was removed.
    pub fn value(&self, name: &str) -> Option<i128> {
        let n = self.name_index(name).ok()?;
        let cells = self.cells_of(n);
        cells
            .iter()
            .any(|c| c.totals.is_live())
            .then(|| cells.iter().map(|c| c.totals.value()).sum())
    }

    /// Every shown counter with its value, sorted by name.
    pub fn counters(&self) -> impl Iterator<Item = (&str, i128)> + '_ {
        self.names
            .as_slice()
            .iter()
            .enumerate()
            .filter_map(|(i, name)| {
                let cells = self.cells_of(i as u16);
                cells
                    .iter()
                    .any(|c| c.totals.is_live())
                    .then(|| (name.as_str(), cells.iter().map(|c| c.totals.value()).sum()))
            })
    }

    /// Every cell as (name, id, totals), sorted by name then id: what a peer needs to merge.
    pub fn cells(&self) -> impl Iterator<Item = (&str, &str, Totals)> + Clone + '_ {
        self.cells.as_slice().iter().filter_map(|c| {
            let name = self.names.as_slice().get(usize::from(c.name))?;
            let id = self.ids.as_slice().get(usize::from(c.id))?;
            Some((name.as_str(), id.as_str(), c.totals))
        })
    }

    /// The cells that changed after clock `since` (0: every cell), sorted by name then id:
    /// what a peer known to hold the map as of `since` lacks.
    pub fn changed_since(
        &self,
        since: u32,
    ) -> impl Iterator<Item = (&str, &str, Totals)> + Clone + '_ {
        self.cells
            .as_slice()
            .iter()
            .filter(move |c| since == 0 || c.changed > since)
            .filter_map(|c| {
                let name = self.names.as_slice().get(usize::from(c.name))?;
                let id = self.ids.as_slice().get(usize::from(c.id))?;
                Some((name.as_str(), id.as_str(), c.totals))
            })
    }

    /// Cell `k` of the sorted cells as (name, id, totals, clock stamp of its last change).
    pub fn cell_at(&self, k: usize) -> Option<(&str, &str, Totals, u32)> {
        let c = self.cells.as_slice().get(k)?;
        let name = self.names.as_slice().get(usize::from(c.name))?;
        let id = self.ids.as_slice().get(usize::from(c.id))?;
        Some((name.as_str(), id.as_str(), c.totals, c.changed))
    }

    /// The totals of entry `id` in counter `name` (floors included).
    pub fn totals(&self, name: &str, id: &str) -> Totals {
        self.find(name, id)
            .and_then(|i| self.cells.as_slice().get(i))
            .map(|c| c.totals)
            .unwrap_or_default()
    }

    /// The digest of the named state (`docs/EXTENSIONS.md` §6.2): XXH64 (seed 0) of every
    /// cell, in order, as `name, id, inc, dec, floor_inc, floor_dec` (each string a length
    /// byte and its bytes, each number eight bytes big-endian). Equal maps have equal digests.
    pub fn digest(&self) -> u64 {
        let mut h = XxHash64::with_seed(0);
        for (name, id, t) in self.cells() {
            for s in [name, id] {
                // Names are at most 64 bytes and ids at most 255: one length byte each.
                h.write(&[s.len() as u8]);
                h.write(s.as_bytes());
            }
            for v in [t.inc, t.dec, t.floor_inc, t.floor_dec] {
                h.write(&v.to_be_bytes());
            }
        }
        h.finish()
    }

    /// Whether writes of entry `id` to the counters `names` could all be applied now (their
    /// names and cells fit). Refusals name the first limit met.
    pub fn room_for<'n>(
        &self,
        names: impl Iterator<Item = &'n str> + Clone,
        id: &str,
    ) -> Result<(), MapError> {
        // A handful of names (the writes in flight): quadratic de-duplication is fine.
        let (mut new_names, mut new_cells, mut any) = (0usize, 0usize, false);
        for (k, name) in names.clone().enumerate() {
            CounterName::new(name).map_err(MapError::BadName)?;
            if names.clone().take(k).any(|earlier| earlier == name) {
                continue;
            }
            any = true;
            new_names += usize::from(self.name_index(name).is_err());
            new_cells += usize::from(self.find(name, id).is_none());
        }
        if self.names.len() + new_names > self.names.max_len().min(usize::from(u16::MAX)) {
            return Err(MapError::TooManyCounters);
        }
        let new_id = any && self.id_index(id).is_err();
        if self.cells.len() + new_cells > self.cells.max_len()
            || self.ids.len() + usize::from(new_id) > self.ids.max_len().min(usize::from(u16::MAX))
        {
            return Err(MapError::CapacityExceeded);
        }
        Ok(())
    }

    /// Adds `inc` to the increments and `dec` to the decrements of entry `id` in counter
    /// `name`, creating it if needed. Returns its value after. A write of nothing creates
    /// nothing (and answers the value, 0 for a counter that is not shown).
    pub fn apply(&mut self, name: &str, id: &str, inc: u64, dec: u64) -> Result<i128, MapError> {
        let mut t = self.totals(name, id);
        t.inc = t.inc.checked_add(inc).ok_or(MapError::Overflow)?;
        t.dec = t.dec.checked_add(dec).ok_or(MapError::Overflow)?;
        self.raise(name, id, t.inc, t.dec)
    }

    /// Raises the totals of entry `id` in counter `name` to at least `(inc, dec)`, creating it
    /// if needed (a committed write whose record carried its totals after it). Returns the
    /// counter's value after. Raising to nothing new creates nothing.
    pub fn raise(&mut self, name: &str, id: &str, inc: u64, dec: u64) -> Result<i128, MapError> {
        let counter = CounterName::new(name).map_err(MapError::BadName)?;
        let local = NodeId::<L>::new(id).map_err(|_| MapError::BadId)?;
        let t = self.totals(name, id);
        if inc <= t.inc && dec <= t.dec {
            return Ok(self.value(name).unwrap_or(0));
        }
        self.check_room(core::iter::once((counter.as_str(), local.as_str())))?;
        let raised = Totals { inc, dec, ..t };
        let stamp = self.clock.wrapping_add(1);
        if self.put(counter, local, raised, stamp)? {
            self.clock = stamp;
        }
        Ok(self.value(name).unwrap_or(0))
    }

    /// Holds a place for counter `name` before anything is written to it: a board reserves the
    /// counters its buttons count on, so that counters merged from peers cannot take every
    /// place first. A reserved counter is not shown, holds no cell, and changes neither the
    /// digest nor what is sent until written; it counts toward the counter limit. Refused
    /// (changing nothing) when the name is bad or the counter table is full.
    pub fn reserve(&mut self, name: &str) -> Result<(), MapError> {
        let counter = CounterName::new(name).map_err(MapError::BadName)?;
        let Err(at) = self.name_index(name) else {
            return Ok(());
        };
        if self.names.len() >= self.names.max_len().min(usize::from(u16::MAX)) {
            return Err(MapError::TooManyCounters);
        }
        let at16 = u16::try_from(at).map_err(|_| MapError::TooManyCounters)?;
        self.names
            .try_insert(at, counter)
            .map_err(|_| MapError::TooManyCounters)?;
        self.shift_cells(|c| &mut c.name, at16);
        Ok(())
    }

    /// Removes counter `name` as observed here: everything it holds now stops counting; what
    /// other nodes add concurrently still counts. Returns false when it was not shown.
    pub fn remove(&mut self, name: &str) -> bool {
        let Ok(n) = self.name_index(name) else {
            return false;
        };
        let stamp = self.clock.wrapping_add(1);
        let mut shown = false;
        for c in self.cells.as_mut_slice() {
            if c.name == n && c.totals.is_live() {
                shown = true;
                c.totals.floor_inc = c.totals.inc;
                c.totals.floor_dec = c.totals.dec;
                c.changed = stamp;
            }
        }
        if shown {
            self.clock = stamp;
        }
        shown
    }

    /// Merges cells `(name, id, totals)`, strictly sorted by name then id (as [`Self::cells`]
    /// gives them). All or nothing: a bad name or id, unsorted input, or input that would not
    /// fit is refused and changes nothing. Returns true when the map changed.
    pub fn merge<'i, I>(&mut self, input: I) -> Result<bool, MapError>
    where
        I: IntoIterator<Item = (&'i str, &'i str, Totals)> + Clone,
        I::IntoIter: Clone,
    {
        check_input::<L, _>(input.clone().into_iter())?;
        self.check_room(input.clone().into_iter().map(|(n, i, _)| (n, i)))?;
        Ok(self.put_all(input.into_iter()))
    }

    /// Merges cells as [`Self::merge`] does, but counter by counter: a counter whose cells do
    /// not fit is refused whole (and counted), the others are merged. Invalid or unsorted input
    /// is refused whole and changes nothing.
    pub fn merge_each<'i, I>(&mut self, input: I) -> Result<MergeReport, MapError>
    where
        I: Iterator<Item = (&'i str, &'i str, Totals)> + Clone,
    {
        check_input::<L, _>(input.clone())?;
        let mut report = MergeReport::default();
        let mut rest = input;
        loop {
            let Some((name, _, _)) = rest.clone().next() else {
                return Ok(report);
            };
            let group = rest.clone().take_while(move |(n, _, _)| *n == name);
            let len = group.clone().count();
            if self
                .check_room(group.clone().map(|(n, i, _)| (n, i)))
                .is_ok()
            {
                report.changed |= self.put_all(group);
            } else {
                report.refused += 1;
            }
            for _ in 0..len {
                rest.next();
            }
        }
    }

    /// Joins every (valid, room-checked) cell of `input` under one new clock stamp.
    fn put_all<'i>(&mut self, input: impl Iterator<Item = (&'i str, &'i str, Totals)>) -> bool {
        let stamp = self.clock.wrapping_add(1);
        let mut changed = false;
        for (name, id, totals) in input {
            if totals == Totals::default() {
                continue; // nothing to hold: no cell
            }
            let (Ok(name), Ok(id)) = (CounterName::new(name), NodeId::<L>::new(id)) else {
                continue;
            };
            changed |= self.put(name, id, totals, stamp).unwrap_or(false);
        }
        if changed {
            self.clock = stamp;
        }
        changed
    }

    // ----- tables -----

    fn name_index(&self, name: &str) -> Result<u16, usize> {
        sorted_index(self.names.as_slice(), name, CounterName::as_bytes)
    }

    fn id_index(&self, id: &str) -> Result<u16, usize> {
        sorted_index(self.ids.as_slice(), id, NodeId::<L>::as_bytes)
    }

    fn cell_search(&self, name: u16, id: u16) -> Result<usize, usize> {
        self.cells
            .as_slice()
            .binary_search_by(|c| (c.name, c.id).cmp(&(name, id)))
    }

    fn find(&self, name: &str, id: &str) -> Option<usize> {
        let (n, i) = (self.name_index(name).ok()?, self.id_index(id).ok()?);
        self.cell_search(n, i).ok()
    }

    fn cells_of(&self, name: u16) -> &[Cell] {
        let cells = self.cells.as_slice();
        let start = cells.partition_point(|c| c.name < name);
        let end = cells.partition_point(|c| c.name <= name);
        cells.get(start..end).unwrap_or_default()
    }

    /// Refuses, changing nothing, when the (name, id) pairs (sorted by name) need more room
    /// than the tables have.
    fn check_room<'i>(
        &self,
        pairs: impl Iterator<Item = (&'i str, &'i str)> + Clone,
    ) -> Result<(), MapError> {
        let (mut names, mut cells, mut ids_bound) = (0usize, 0usize, 0usize);
        let mut last_new_name: Option<&str> = None;
        for (name, id) in pairs.clone() {
            let known_name = self.name_index(name).is_ok();
            if !known_name && last_new_name != Some(name) {
                names += 1;
                last_new_name = Some(name);
            }
            let known_id = self.id_index(id).is_ok();
            ids_bound += usize::from(!known_id);
            if self.find(name, id).is_none() {
                cells += 1;
            }
        }
        if self.names.len() + names > self.names.max_len().min(usize::from(u16::MAX)) {
            return Err(MapError::TooManyCounters);
        }
        if self.cells.len() + cells > self.cells.max_len() {
            return Err(MapError::CapacityExceeded);
        }
        let id_room = self
            .ids
            .max_len()
            .min(usize::from(u16::MAX))
            .saturating_sub(self.ids.len());
        if ids_bound > id_room {
            // The bound counts an id once per counter; count distinct new ids exactly.
            let mut distinct = 0usize;
            for (k, (_, id)) in pairs.clone().enumerate() {
                if self.id_index(id).is_ok() {
                    continue;
                }
                let seen = pairs.clone().take(k).any(|(_, earlier)| earlier == id);
                distinct += usize::from(!seen);
            }
            if distinct > id_room {
                return Err(MapError::CapacityExceeded);
            }
        }
        Ok(())
    }

    /// A table entry was inserted at `at`: the cells' indices into that table (`field`) at or
    /// after it move up by one (their order, and so the cells' order, is unchanged).
    fn shift_cells(&mut self, field: impl Fn(&mut Cell) -> &mut u16, at: u16) {
        for c in self.cells.as_mut_slice() {
            let i = field(c);
            if *i >= at {
                *i += 1;
            }
        }
    }

    /// Joins `totals` into the cell (name, id), adding the name, id and cell as needed (room was
    /// checked). Returns true when something changed.
    fn put(
        &mut self,
        name: CounterName,
        id: NodeId<L>,
        totals: Totals,
        stamp: u32,
    ) -> Result<bool, MapError> {
        let n = match self.name_index(name.as_str()) {
            Ok(n) => n,
            Err(at) => {
                self.names.try_insert(at, name)?;
                let at = u16::try_from(at).map_err(|_| MapError::TooManyCounters)?;
                self.shift_cells(|c| &mut c.name, at);
                at
            }
        };
        let i = match self.id_index(id.as_str()) {
            Ok(i) => i,
            Err(at) => {
                self.ids.try_insert(at, id)?;
                let at = u16::try_from(at).map_err(|_| MapError::CapacityExceeded)?;
                self.shift_cells(|c| &mut c.id, at);
                at
            }
        };
        match self.cell_search(n, i) {
            Ok(k) => Ok(self.cells.as_mut_slice().get_mut(k).is_some_and(|c| {
                let changed = c.totals.join(&totals);
                if changed {
                    c.changed = stamp;
                }
                changed
            })),
            Err(k) => {
                let cell = Cell {
                    name: n,
                    id: i,
                    changed: stamp,
                    totals,
                };
                self.cells.try_insert(k, cell)?;
                Ok(true)
            }
        }
    }
}

/// Two runs of cells, each sorted by (name, id) and with no key in both, as one sorted run.
pub fn merge_sorted_cells<'a, A, B>(
    a: A,
    b: B,
) -> impl Iterator<Item = (&'a str, &'a str, Totals)> + Clone
where
    A: Iterator<Item = (&'a str, &'a str, Totals)> + Clone,
    B: Iterator<Item = (&'a str, &'a str, Totals)> + Clone,
{
    let (mut a, mut b) = (a.peekable(), b.peekable());
    core::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some(x), Some(y)) => {
            let first = (x.0.as_bytes(), x.1.as_bytes()) <= (y.0.as_bytes(), y.1.as_bytes());
            if first {
                a.next()
            } else {
                b.next()
            }
        }
        (Some(_), None) => a.next(),
        (None, _) => b.next(),
    })
}

/// Checks merge input: valid names and ids, strictly sorted by (name, id).
fn check_input<'i, const L: usize, I>(input: I) -> Result<(), MapError>
where
    I: Iterator<Item = (&'i str, &'i str, Totals)>,
{
    let mut last: Option<(&str, &str)> = None;
    for (name, id, _) in input {
        CounterName::new(name).map_err(MapError::BadName)?;
        NodeId::<L>::new(id).map_err(|_| MapError::BadId)?;
        if let Some(prev) = last {
            let order = prev
                .0
                .as_bytes()
                .cmp(name.as_bytes())
                .then_with(|| prev.1.as_bytes().cmp(id.as_bytes()));
            if order != Ordering::Less {
                return Err(MapError::Unsorted);
            }
        }
        last = Some((name, id));
    }
    Ok(())
}

/// Position of `key` in `table` (sorted by bytes): `Ok` with its index, or `Err` with where it
/// would go.
fn sorted_index<T>(table: &[T], key: &str, bytes: impl Fn(&T) -> &[u8]) -> Result<u16, usize> {
    match table.binary_search_by(|t| bytes(t).cmp(key.as_bytes())) {
        Ok(i) => u16::try_from(i).map_err(|_| i),
        Err(i) => Err(i),
    }
}
