//! [`PnCounter`]: the PN-Counter CRDT on a sorted, bounded store.
//!
//! Entries are kept sorted by id (bytewise), so merging two states is one linear sorted merge
//! and the digest (spec §5) needs no sort. The local entry exists from birth (at 0/0), so
//! `increment` never needs room; `merge` is all-or-nothing.
//!
//! `value()` is exact: the sum of up to 65,536 `u64` totals can exceed `i64`, so it is
//! returned as `i128` (which cannot overflow: 2^16 · 2^64 < 2^127).

use crate::id::NodeId;
use crate::slots::{CapacityExceeded, Slots};
use core::cmp::Ordering;
use core::fmt;

/// One node's totals: increments and decrements it has made.
///
/// `changed` is local bookkeeping, not state: the counter's [`PnCounter::version`] when this
/// entry last rose here. Equality ignores it.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Entry<const L: usize> {
    /// Whose totals these are.
    pub id: NodeId<L>,
    /// Total increments made by `id`.
    pub inc: u64,
    /// Total decrements made by `id`.
    pub dec: u64,
    /// Version of the local counter when this entry last rose (0: never).
    pub changed: u32,
    /// Who gave us the current totals: a hash of the pushing peer's address ([`origin_of`]),
    /// 0 when they were made here or recovered. Such a peer is not sent them back.
    pub origin: u32,
}

/// The origin tag of a peer address: 32-bit FNV-1a, never 0.
pub fn origin_of(addr: &str) -> u32 {
    let h = addr.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    h.max(1)
}

impl<const L: usize> PartialEq for Entry<L> {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id && self.inc == other.inc && self.dec == other.dec
    }
}
impl<const L: usize> Eq for Entry<L> {}

impl<const L: usize> Entry<L> {
    /// An entry with the given totals (never changed locally).
    pub const fn new(id: NodeId<L>, inc: u64, dec: u64) -> Self {
        Self {
            id,
            inc,
            dec,
            changed: 0,
            origin: 0,
        }
    }

    /// A zeroed entry for `id`.
    pub const fn zero(id: NodeId<L>) -> Self {
        Self::new(id, 0, 0)
    }

    /// True when both totals are zero (such entries are not sent and not digested).
    pub const fn is_zero(&self) -> bool {
        self.inc == 0 && self.dec == 0
    }
}

/// Why a counter operation failed. The counter is unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum CounterError {
    /// The local total would pass `u64::MAX`.
    Overflow,
    /// The merged state needs more entries than the store can hold.
    CapacityExceeded,
    /// An incoming id is longer than this counter's bound.
    IdTooLong,
    /// Incoming entries were not strictly sorted by id (a caller bug).
    Unsorted,
}

impl fmt::Display for CounterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CounterError::Overflow => "counter total would overflow u64",
            CounterError::CapacityExceeded => "counter capacity exceeded",
            CounterError::IdTooLong => "id exceeds the counter's length bound",
            CounterError::Unsorted => "merge input not sorted by id",
        })
    }
}

impl core::error::Error for CounterError {}

impl From<CapacityExceeded> for CounterError {
    fn from(_: CapacityExceeded) -> Self {
        CounterError::CapacityExceeded
    }
}

/// What a merge did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MergeOutcome {
    /// Some total rose (so the state changed).
    pub changed: bool,
    /// The local state holds something the input did not (a higher total, or an id the input
    /// lacks): the sender of a full state is behind us.
    pub input_behind: bool,
    /// Entries added.
    pub added: usize,
}

/// A PN-Counter: per-node increment and decrement totals, sorted by id.
///
/// `L` bounds id length; `S` holds the entries: `heapless::Vec<Entry<L>, N>` (fixed, no heap)
/// or `Growable<Entry<L>>` (feature `alloc`). A fixed counter costs about
/// `N · (L + 17)` bytes rounded up for alignment.
#[derive(Clone)]
pub struct PnCounter<const L: usize, S> {
    local: NodeId<L>,
    entries: S,
    total_inc: u128,
    total_dec: u128,
    version: u32,
}

/// A counter on a fixed-capacity, heap-free store of `N` entries.
pub type FixedCounter<const N: usize, const L: usize> = PnCounter<L, heapless::Vec<Entry<L>, N>>;

/// A counter on a growable heap store (hosts).
#[cfg(feature = "alloc")]
pub type GrowableCounter<const L: usize> = PnCounter<L, crate::slots::Growable<Entry<L>>>;

impl<const L: usize, S: Slots<Entry<L>>> PnCounter<L, S> {
    /// A zero counter owned by `local`, in a default store.
    pub fn new(local: NodeId<L>) -> Result<Self, CapacityExceeded> {
        Self::with_store(local, S::default())
    }

    /// A zero counter owned by `local`, in `store` (which must be empty).
    pub fn with_store(local: NodeId<L>, mut store: S) -> Result<Self, CapacityExceeded> {
        store.truncate(0);
        store.try_push(Entry::zero(local))?;
        Ok(Self {
            local,
            entries: store,
            total_inc: 0,
            total_dec: 0,
            version: 0,
        })
    }

    /// Bumped by every change (local operation or merge that raised something). Entries carry
    /// the version of their last change, so "what changed since version v" is a filter.
    /// Saturates at `u32::MAX` (then every entry looks changed: correct, just not minimal).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Moves the version forward to `at` (never back): the engine keeps one version for the
    /// counter and its named counters, so knowledge of a peer covers both.
    pub(crate) fn advance_version(&mut self, at: u32) {
        self.version = self.version.max(at);
    }

    /// Entries that rose after version `since`, in id order (`since` = 0: every non-zero one).
    pub fn changed_since(&self, since: u32) -> impl Iterator<Item = &Entry<L>> + Clone {
        self.entries()
            .iter()
            .filter(move |e| !e.is_zero() && (e.changed > since || since == u32::MAX))
    }

    /// This node's id.
    pub fn local_id(&self) -> &NodeId<L> {
        &self.local
    }

    /// All entries, sorted by id; zero entries (the local one at birth) included.
    pub fn entries(&self) -> &[Entry<L>] {
        self.entries.as_slice()
    }

    /// The entry for `id`, if any.
    pub fn entry(&self, id: &str) -> Option<&Entry<L>> {
        let slice = self.entries.as_slice();
        slice
            .binary_search_by(|e| e.id.as_bytes().cmp(id.as_bytes()))
            .ok()
            .and_then(|i| slice.get(i))
    }

    /// The local entry.
    pub fn local_entry(&self) -> Entry<L> {
        self.entry(self.local.as_str())
            .copied()
            .unwrap_or(Entry::zero(self.local))
    }

    /// Heap bytes held by the store (0 for fixed stores).
    pub fn heap_bytes(&self) -> usize {
        self.entries.heap_bytes()
    }

    /// Number of entries with a non-zero total.
    pub fn nonzero_len(&self) -> usize {
        self.entries().iter().filter(|e| !e.is_zero()).count()
    }

    /// The most entries the store can hold.
    pub fn capacity(&self) -> usize {
        self.entries.max_len()
    }

    /// Σinc − Σdec, exactly.
    pub fn value(&self) -> i128 {
        // Both totals are < 2^81, so the casts and the subtraction are exact.
        self.total_inc as i128 - self.total_dec as i128
    }

    /// Σinc.
    pub fn total_inc(&self) -> u128 {
        self.total_inc
    }

    /// Σdec.
    pub fn total_dec(&self) -> u128 {
        self.total_dec
    }

    /// Adds `by` to the local increment total; returns the new local total.
    pub fn increment(&mut self, by: u64) -> Result<u64, CounterError> {
        let version = self.version.saturating_add(1);
        let e = self.local_mut()?;
        e.inc = e.inc.checked_add(by).ok_or(CounterError::Overflow)?;
        e.changed = version;
        e.origin = 0;
        let now = e.inc;
        self.version = version;
        self.total_inc += u128::from(by);
        Ok(now)
    }

    /// Adds `by` to the local decrement total; returns the new local total.
    pub fn decrement(&mut self, by: u64) -> Result<u64, CounterError> {
        let version = self.version.saturating_add(1);
        let e = self.local_mut()?;
        e.dec = e.dec.checked_add(by).ok_or(CounterError::Overflow)?;
        e.changed = version;
        e.origin = 0;
        let now = e.dec;
        self.version = version;
        self.total_dec += u128::from(by);
        Ok(now)
    }

    /// Raises the local totals to at least `(inc, dec)` (per-field max): how a durable write
    /// is committed, its record carrying the totals after it. Returns whether anything rose.
    pub fn raise_local(&mut self, inc: u64, dec: u64) -> Result<bool, CounterError> {
        let version = self.version.saturating_add(1);
        let e = self.local_mut()?;
        let (up_inc, up_dec) = (inc.saturating_sub(e.inc), dec.saturating_sub(e.dec));
        if up_inc == 0 && up_dec == 0 {
            return Ok(false);
        }
        e.inc += up_inc;
        e.dec += up_dec;
        e.changed = version;
        e.origin = 0;
        self.version = version;
        self.total_inc += u128::from(up_inc);
        self.total_dec += u128::from(up_dec);
        Ok(true)
    }

    fn local_mut(&mut self) -> Result<&mut Entry<L>, CounterError> {
        let local = self.local;
        let slice = self.entries.as_mut_slice();
        match slice.binary_search_by(|e| e.id.cmp(&local)) {
            Ok(i) => slice.get_mut(i).ok_or(CounterError::CapacityExceeded),
            // The local entry is created at birth and never removed.
            Err(_) => Err(CounterError::CapacityExceeded),
        }
    }

    /// Merges another counter (per-entry max). All or nothing.
    pub fn merge<S2: Slots<Entry<L>>>(
        &mut self,
        other: &PnCounter<L, S2>,
    ) -> Result<MergeOutcome, CounterError> {
        self.merge_sorted(
            other
                .entries()
                .iter()
                .map(|e| (e.id.as_str(), e.inc, e.dec)),
        )
    }

    /// Merges `(id, inc, dec)` triples given in strictly ascending id order (per-entry max).
    ///
    /// All or nothing: on `Err` the counter is unchanged. Zero triples are ignored (never
    /// inserted). The iterator is walked twice (check, then apply), hence `Clone`.
    pub fn merge_sorted<'i, I>(&mut self, input: I) -> Result<MergeOutcome, CounterError>
    where
        I: Iterator<Item = (&'i str, u64, u64)> + Clone,
    {
        self.merge_from(input, 0)
    }

    /// As [`PnCounter::merge_sorted`], tagging raised entries with `origin` (see
    /// [`Entry::origin`]).
    pub fn merge_from<'i, I>(&mut self, input: I, origin: u32) -> Result<MergeOutcome, CounterError>
    where
        I: Iterator<Item = (&'i str, u64, u64)> + Clone,
    {
        let plan = self.plan(input.clone())?;
        let mut outcome = MergeOutcome {
            changed: plan.changed,
            input_behind: plan.input_behind,
            added: plan.added,
        };
        if !plan.changed {
            return Ok(outcome);
        }
        let needed = self.entries.len().saturating_add(plan.added);
        if needed > self.entries.max_len() {
            return Err(CounterError::CapacityExceeded);
        }
        self.apply(input, plan.added, origin)?;
        outcome.changed = true;
        Ok(outcome)
    }

    /// Pass 1: validates the input and counts what merging it would do, changing nothing.
    fn plan<'i, I>(&self, input: I) -> Result<Plan, CounterError>
    where
        I: Iterator<Item = (&'i str, u64, u64)>,
    {
        let mut plan = Plan::default();
        let mine = self.entries.as_slice();
        let mut m = 0usize;
        let mut prev: Option<&str> = None;
        for (id, inc, dec) in input {
            if id.is_empty() || id.len() > L {
                return Err(CounterError::IdTooLong);
            }
            if let Some(p) = prev {
                if p.as_bytes() >= id.as_bytes() {
                    return Err(CounterError::Unsorted);
                }
            }
            prev = Some(id);
            // Entries of ours below this id are absent from the input.
            while let Some(e) = mine.get(m) {
                if e.id.as_bytes() < id.as_bytes() {
                    plan.input_behind |= !e.is_zero();
                    m += 1;
                } else {
                    break;
                }
            }
            match mine.get(m) {
                Some(e) if e.id.as_bytes() == id.as_bytes() => {
                    plan.changed |= inc > e.inc || dec > e.dec;
                    plan.input_behind |= e.inc > inc || e.dec > dec;
                    m += 1;
                }
                _ => {
                    if inc != 0 || dec != 0 {
                        plan.changed = true;
                        plan.added += 1;
                    }
                }
            }
        }
        plan.input_behind |= mine
            .get(m..)
            .unwrap_or_default()
            .iter()
            .any(|e| !e.is_zero());
        Ok(plan)
    }

    /// Pass 2: the linear merge, on input that `plan` accepted and for which room exists.
    fn apply<'i, I>(&mut self, input: I, added: usize, origin: u32) -> Result<(), CounterError>
    where
        I: Iterator<Item = (&'i str, u64, u64)>,
    {
        let old_len = self.entries.len();
        if added > 0 {
            // Make room at the front: move the old entries to the tail, then merge forward.
            self.entries
                .try_extend_fill(added, Entry::zero(self.local))?;
            self.entries.as_mut_slice().copy_within(0..old_len, added);
        }
        let version = self.version.saturating_add(1);
        self.version = version;
        let slots = self.entries.as_mut_slice();
        let (mut r, end, mut w) = (added, added + old_len, 0usize);
        let (mut inc_gain, mut dec_gain) = (0u128, 0u128);
        let mut input = input.peekable();
        loop {
            let next_old = if r < end { slots.get(r).copied() } else { None };
            let take_input = match (next_old.as_ref(), input.peek()) {
                (None, None) => break,
                (Some(_), None) => false,
                (None, Some(_)) => true,
                (Some(old), Some((id, _, _))) => match id.as_bytes().cmp(old.id.as_bytes()) {
                    Ordering::Less => true,
                    Ordering::Equal => {
                        let (_, inc, dec) = input.next().unwrap_or_default();
                        let mut merged = *old;
                        inc_gain += u128::from(inc.saturating_sub(merged.inc));
                        dec_gain += u128::from(dec.saturating_sub(merged.dec));
                        if inc > merged.inc || dec > merged.dec {
                            merged.changed = version;
                            merged.origin = origin;
                        }
                        merged.inc = merged.inc.max(inc);
                        merged.dec = merged.dec.max(dec);
                        if let Some(slot) = slots.get_mut(w) {
                            *slot = merged;
                        }
                        w += 1;
                        r += 1;
                        continue;
                    }
                    Ordering::Greater => false,
                },
            };
            if take_input {
                let Some((id, inc, dec)) = input.next() else {
                    break;
                };
                if inc == 0 && dec == 0 {
                    continue;
                }
                let Ok(id) = NodeId::new(id) else { continue };
                // w < r here whenever old entries remain, so nothing unread is overwritten.
                if let Some(slot) = slots.get_mut(w) {
                    *slot = Entry {
                        id,
                        inc,
                        dec,
                        changed: version,
                        origin,
                    };
                    inc_gain += u128::from(inc);
                    dec_gain += u128::from(dec);
                    w += 1;
                }
            } else {
                if let (Some(old), Some(slot)) = (next_old, slots.get_mut(w)) {
                    *slot = old;
                }
                w += 1;
                r += 1;
            }
        }
        self.entries.truncate(w);
        self.total_inc += inc_gain;
        self.total_dec += dec_gain;
        Ok(())
    }
}

#[derive(Default)]
struct Plan {
    changed: bool,
    input_behind: bool,
    added: usize,
}

impl<const L: usize, S: Slots<Entry<L>>> fmt::Debug for PnCounter<L, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PnCounter")
            .field("local", &self.local)
            .field("value", &self.value())
            .field("entries", &self.entries())
            .finish()
    }
}

impl<const L: usize, S: Slots<Entry<L>>> PartialEq for PnCounter<L, S> {
    /// Equal states: the same non-zero entries (the owner is not compared).
    fn eq(&self, other: &Self) -> bool {
        self.entries()
            .iter()
            .filter(|e| !e.is_zero())
            .eq(other.entries().iter().filter(|e| !e.is_zero()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type C = FixedCounter<8, 16>;

    fn id(s: &str) -> NodeId<16> {
        NodeId::new(s).unwrap()
    }

    #[test]
    fn local_operations_are_checked() {
        let mut c = C::new(id("a")).unwrap();
        assert_eq!(c.increment(3), Ok(3));
        assert_eq!(c.decrement(1), Ok(1));
        assert_eq!(c.value(), 2);
        assert_eq!(c.increment(u64::MAX), Err(CounterError::Overflow));
        assert_eq!(c.value(), 2);
    }

    #[test]
    fn value_exceeds_i64() {
        let mut a = C::new(id("a")).unwrap();
        let mut b = C::new(id("b")).unwrap();
        a.increment(u64::MAX).unwrap();
        b.increment(u64::MAX).unwrap();
        a.merge(&b).unwrap();
        assert_eq!(a.value(), 2 * i128::from(u64::MAX));
    }

    #[test]
    fn merge_is_max_and_reports() {
        let mut a = C::new(id("b")).unwrap();
        let mut b = C::new(id("a")).unwrap();
        a.increment(5).unwrap();
        b.increment(2).unwrap();
        b.decrement(1).unwrap();
        let out = a.merge(&b).unwrap();
        assert!(out.changed && out.input_behind);
        assert_eq!(out.added, 1);
        assert_eq!(a.value(), 6);
        let ids: Vec<&str> = a.entries().iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        let again = a.merge(&b).unwrap();
        assert!(!again.changed);
        assert_eq!(a.value(), 6);
    }

    #[test]
    fn capacity_exceeded_changes_nothing() {
        let mut small = FixedCounter::<2, 16>::new(id("m")).unwrap();
        let mut big = C::new(id("z")).unwrap();
        big.increment(1).unwrap();
        let mut other = C::new(id("a")).unwrap();
        other.increment(1).unwrap();
        big.merge(&other).unwrap();
        small.increment(7).unwrap();
        let before = small.clone();
        assert_eq!(small.merge(&big), Err(CounterError::CapacityExceeded));
        assert_eq!(small, before);
        assert_eq!(small.value(), 7);
    }

    #[test]
    fn rejects_unsorted_and_long_ids() {
        let mut c = C::new(id("a")).unwrap();
        let input = [("c", 1, 0), ("b", 1, 0)];
        assert_eq!(
            c.merge_sorted(input.iter().copied()),
            Err(CounterError::Unsorted)
        );
        let long = "x".repeat(17);
        assert_eq!(
            c.merge_sorted([(long.as_str(), 1, 0)].into_iter()),
            Err(CounterError::IdTooLong)
        );
        assert_eq!(c.entries().len(), 1);
    }

    #[test]
    fn zero_input_entries_are_not_inserted() {
        let mut c = C::new(id("a")).unwrap();
        let out = c.merge_sorted([("b", 0, 0)].into_iter()).unwrap();
        assert!(!out.changed);
        assert_eq!(c.entries().len(), 1);
    }

    #[test]
    fn interleaved_inserts_stay_sorted() {
        let mut c = C::new(id("d")).unwrap();
        c.increment(1).unwrap();
        c.merge_sorted([("a", 1, 0), ("c", 2, 0), ("e", 0, 3), ("f", 4, 4)].into_iter())
            .unwrap();
        let ids: Vec<&str> = c.entries().iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["a", "c", "d", "e", "f"]);
        assert_eq!(c.value(), 1 + 1 + 2 - 3);
        assert_eq!(c.total_inc(), 8);
    }
}
