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
use crate::id::NodeId;
use crate::slots::{CapacityExceeded, Slots};
use core::cmp::Ordering;

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

/// Named counters of one node (`local` is the id its own writes count under).
#[derive(Clone, Debug)]
pub struct CounterMap<const L: usize, NS, IS, CS> {
    local: NodeId<L>,
    names: NS,
    ids: IS,
    cells: CS,
}

impl<const L: usize, NS, IS, CS> CounterMap<L, NS, IS, CS>
where
    NS: Slots<CounterName>,
    IS: Slots<NodeId<L>>,
    CS: Slots<Cell>,
{
    /// An empty map whose own writes count under `local`.
    pub fn new(local: NodeId<L>) -> Self {
        Self::with_stores(local, NS::default(), IS::default(), CS::default())
    }

    /// An empty map on the given (empty) stores, e.g. growable stores with chosen bounds.
    pub fn with_stores(local: NodeId<L>, names: NS, ids: IS, cells: CS) -> Self {
        let mut m = Self {
            local,
            names,
            ids,
            cells,
        };
        m.names.truncate(0);
        m.ids.truncate(0);
        m.cells.truncate(0);
        m
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

    /// Adds `inc` to the local increments and `dec` to the local decrements of counter `name`,
    /// creating it if needed. Returns its value after. A write of nothing creates nothing (and
    /// answers the value, 0 for a counter that is not shown).
    pub fn apply(&mut self, name: &str, inc: u64, dec: u64) -> Result<i128, MapError> {
        let counter = CounterName::new(name).map_err(MapError::BadName)?;
        if inc == 0 && dec == 0 {
            return Ok(self.value(name).unwrap_or(0));
        }
        let local = self.local;
        let mut t = match self.find(counter.as_str(), local.as_str()) {
            Some(i) => self
                .cells
                .as_slice()
                .get(i)
                .map(|c| c.totals)
                .unwrap_or_default(),
            None => Totals::default(),
        };
        t.inc = t.inc.checked_add(inc).ok_or(MapError::Overflow)?;
        t.dec = t.dec.checked_add(dec).ok_or(MapError::Overflow)?;
        self.check_room(core::iter::once((counter.as_str(), local.as_str())))?;
        self.put(counter, local, t)?;
        // The local cell now lies above its floor: the counter is shown.
        Ok(self.value(name).unwrap_or(0))
    }

    /// Removes counter `name` as observed here: everything it holds now stops counting; what
    /// other nodes add concurrently still counts. Returns false when it was not shown.
    pub fn remove(&mut self, name: &str) -> bool {
        let Ok(n) = self.name_index(name) else {
            return false;
        };
        let mut shown = false;
        for c in self.cells.as_mut_slice() {
            if c.name == n {
                shown |= c.totals.is_live();
                c.totals.floor_inc = c.totals.inc;
                c.totals.floor_dec = c.totals.dec;
            }
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
        let mut last: Option<(&str, &str)> = None;
        for (name, id, _) in input.clone() {
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
        self.check_room(input.clone().into_iter().map(|(n, i, _)| (n, i)))?;
        let mut changed = false;
        for (name, id, totals) in input {
            let (Ok(name), Ok(id)) = (CounterName::new(name), NodeId::<L>::new(id)) else {
                continue;
            };
            changed |= self.put(name, id, totals)?;
        }
        Ok(changed)
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
    fn put(&mut self, name: CounterName, id: NodeId<L>, totals: Totals) -> Result<bool, MapError> {
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
            Ok(k) => Ok(self
                .cells
                .as_mut_slice()
                .get_mut(k)
                .is_some_and(|c| c.totals.join(&totals))),
            Err(k) => {
                let cell = Cell {
                    name: n,
                    id: i,
                    totals,
                };
                self.cells.try_insert(k, cell)?;
                Ok(true)
            }
        }
    }
}

/// Position of `key` in `table` (sorted by bytes): `Ok` with its index, or `Err` with where it
/// would go.
fn sorted_index<T>(table: &[T], key: &str, bytes: impl Fn(&T) -> &[u8]) -> Result<u16, usize> {
    match table.binary_search_by(|t| bytes(t).cmp(key.as_bytes())) {
        Ok(i) => u16::try_from(i).map_err(|_| i),
        Err(i) => Err(i),
    }
}
