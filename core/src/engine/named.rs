//! Named counters in the engine (`docs/EXTENSIONS.md` §6).
//!
//! - **State**: the engine holds a [`CounterMap`] beside the default counter, on one clock: a
//!   named change moves the counter's version too, so a peer's knowledge (the version it is
//!   known to hold) covers both.
//! - **Digest**: towards a peer that announced [`Caps::NAMED`] (and when this node has named
//!   counters), the state digest covers both: XXH64 of the default digest and the map's
//!   digest, or just the default digest while the map is empty. Every other peer gets the
//!   reference digest of the default counter alone.
//! - **Push**: a Push to such a peer is the default counter's Push followed by a named Push of
//!   the cells changed since its knowledge, in windows that fit the frame budget.

use super::{Engine, Planned};
use crate::counter::Entry;
use crate::error::WireError;
use crate::ext::Caps;
use crate::id::NodeId;
use crate::named::wire::{self, NamedPush};
use crate::named::{CounterMap, MapError, MapStores, Totals};
use crate::peers::Peer;
use crate::slots::Slots;
use core::hash::Hasher;
use twox_hash::XxHash64;

impl<const L: usize, S: Slots<Entry<L>>, P: Slots<Peer<L>>, M: MapStores<L>> Engine<L, S, P, M> {
    /// The named counters.
    pub fn named(&self) -> &CounterMap<L, M> {
        &self.named
    }

    /// Adds to this node's totals of counter `name` (a volatile write); returns its value.
    pub fn apply_named(&mut self, name: &str, inc: u64, dec: u64) -> Result<i128, MapError> {
        let id = *self.counter.local_id();
        let r = self.named_op(|m| m.apply(name, id.as_str(), inc, dec));
        self.after_local_named();
        r
    }

    /// Raises this node's totals of counter `name` to at least `(inc, dec)`: commits a durable
    /// write whose record carried its totals after it. Returns the counter's value.
    pub fn raise_named_local(&mut self, name: &str, inc: u64, dec: u64) -> Result<i128, MapError> {
        let id = *self.counter.local_id();
        let r = self.named_op(|m| m.raise(name, id.as_str(), inc, dec));
        self.after_local_named();
        r
    }

    /// Reserves a place for counter `name` (see [`CounterMap::reserve`]).
    pub fn reserve_named(&mut self, name: &str) -> Result<(), MapError> {
        self.named.reserve(name)
    }

    /// Removes counter `name` as observed here (see [`CounterMap::remove`]).
    pub fn remove_named(&mut self, name: &str) -> bool {
        let removed = self.named_op(|m| m.remove(name));
        self.after_local_named();
        removed
    }

    /// Merges named state read back from a store (cells sorted by name then id).
    pub fn merge_named_state<'i, I>(&mut self, cells: I) -> Result<bool, MapError>
    where
        I: Iterator<Item = (&'i str, &'i str, Totals)> + Clone,
    {
        self.named_op(|m| m.merge(cells))
    }

    /// Runs one change of the map on the engine's clock.
    fn named_op<R>(&mut self, f: impl FnOnce(&mut CounterMap<L, M>) -> R) -> R {
        self.named.set_clock(self.counter.version());
        let before = self.named.clock();
        let r = f(&mut self.named);
        if self.named.clock() != before {
            self.counter.advance_version(self.named.clock());
            self.named_digest_ok = false;
            self.named_changed = true;
        }
        r
    }

    fn after_local_named(&mut self) {
        if core::mem::take(&mut self.named_changed) {
            self.changed();
        }
    }

    /// Whether this node and the peer in `slot` both speak named counters.
    pub(super) fn speaks_named(&self, slot: Option<usize>) -> bool {
        self.named.max_counters() > 0
            && slot
                .and_then(|i| self.peers.at(i))
                .is_some_and(|p| p.speaks(Caps::NAMED))
    }

    /// The named counters' digest (cached between changes).
    fn named_digest(&mut self) -> u64 {
        if !self.named_digest_ok {
            self.named_digest = self.named.digest();
            self.named_digest_ok = true;
        }
        self.named_digest
    }

    /// The state digest towards the peer in `slot` (see the module docs).
    pub(super) fn digest_for(&mut self, slot: Option<usize>) -> u64 {
        let default = self.digest();
        if !self.speaks_named(slot) || self.named.cells_len() == 0 {
            return default;
        }
        let mut h = XxHash64::with_seed(0);
        h.write(&default.to_be_bytes());
        h.write(&self.named_digest().to_be_bytes());
        h.finish()
    }

    /// Whether the peer in `slot`, known to hold our state as of `since`, lacks something.
    pub(super) fn lacks_since(&self, slot: Option<usize>, since: u32) -> bool {
        self.counter.changed_since(since).next().is_some()
            || (self.speaks_named(slot) && self.named.changed_since(since).next().is_some())
    }

    /// Whether we hold any state worth a full Push to the peer in `slot`.
    pub(super) fn holds_state_for(&self, slot: Option<usize>) -> bool {
        self.counter.nonzero_len() > 0 || (self.speaks_named(slot) && self.named.cells_len() > 0)
    }

    /// Merges a named Push from the peer in `slot`. A counter that does not fit is refused whole
    /// (counted in `named_refused`); the others are merged. Returns (changed, refused).
    pub(super) fn merge_named_push(
        &mut self,
        push: &NamedPush<'_>,
    ) -> Result<(bool, u32), WireError> {
        if self.named.max_counters() == 0 {
            // We never announced named counters: to us this is a type we do not know.
            return Err(WireError::UnknownType);
        }
        let cells = push.cells.clone();
        let report = self
            .named_op(|m| m.merge_each(cells))
            .map_err(|e| match e {
                MapError::BadId => WireError::IdTooLong,
                MapError::Overflow => WireError::Overflow,
                _ => WireError::BadName,
            })?;
        self.named_changed = false;
        self.stats.named_refused += u64::from(report.refused);
        Ok((report.changed, report.refused))
    }

    /// Whether we hold a named cell that `push` lacks or carries lower (after merging it).
    pub(super) fn named_push_behind(&self, push: &NamedPush<'_>) -> bool {
        let mut theirs = push.cells.clone().peekable();
        for (name, id, ours) in self.named.cells() {
            let key = (name.as_bytes(), id.as_bytes());
            // Skip their cells that sort before ours.
            while theirs
                .peek()
                .is_some_and(|(n, i, _)| (n.as_bytes(), i.as_bytes()) < key)
            {
                theirs.next();
            }
            match theirs.peek() {
                Some((n, i, t)) if (n.as_bytes(), i.as_bytes()) == key => {
                    if t != &ours {
                        return true;
                    }
                }
                _ => return true,
            }
        }
        false
    }

    /// Queues the named part of a Push to `to` after its default part, when it speaks named
    /// counters and lacks some of ours since `since`.
    pub(super) fn follow_with_named(&mut self, to: NodeId<L>, since: u32) -> bool {
        let slot = self.peers.slot_of(to.as_str());
        if !self.speaks_named(slot) || self.named.changed_since(since).next().is_none() {
            return false;
        }
        // At the front: the two parts go out back to back.
        if self
            .queue
            .push_front(super::Pending {
                to,
                what: Planned::NamedPush { since },
            })
            .is_err()
        {
            self.stats.shed += 1;
            return false;
        }
        true
    }

    /// Writes a window of the named Push of the cells changed since `since` into `out`, within
    /// `budget` bytes. Returns the length and whether the window covered every cell.
    ///
    /// As the default counter's windows (`push.rs`): the cursor is an index into all cells,
    /// shared by every peer; a window runs from it over the cells in order, wrapping, and is
    /// written in (name, id) order, the wrapped low part first.
    pub(super) fn write_named_window(
        &mut self,
        since: u32,
        budget: usize,
        out: &mut [u8],
    ) -> Option<(usize, bool)> {
        let id = *self.counter.local_id();
        let map = &self.named;
        let n = map.cells_len();
        if n == 0 {
            return None;
        }
        let start = usize::try_from(self.named_cursor).unwrap_or(0) % n;
        let picked = |t: u32| since == 0 || t > since;
        // Emission may join two runs of one name that traversal split at the wrap: keep room
        // for one more name header than traversal counts.
        let slack = crate::msgpack::str_len(crate::named::MAX_NAME) + 5;
        let mut used = wire::push_overhead(id.as_str()) + slack;
        let (mut taken, mut selected) = (0usize, 0usize);
        let mut last: Option<&str> = None;
        while taken < n {
            let Some((name, entry, _, changed)) = map.cell_at((start + taken) % n) else {
                break;
            };
            if picked(changed) {
                let cost = wire::cell_cost((last != Some(name)).then_some(name), entry);
                if used + cost > budget {
                    break;
                }
                used += cost;
                selected += 1;
                last = Some(name);
            }
            taken += 1;
        }
        if selected == 0 {
            if taken < n {
                self.stats.emit_failures += 1;
            }
            return None;
        }
        let end = start + taken;
        let (low, high) = if end <= n {
            (start..end, 0..0)
        } else {
            (0..end - n, start..n)
        };
        let window = low
            .chain(high)
            .filter_map(|k| map.cell_at(k))
            .filter(|c| picked(c.3))
            .map(|(name, entry, t, _)| (name, entry, t));
        let len = wire::emit(id.as_str(), window, out).ok()?;
        let complete = taken >= n;
        self.named_cursor = if complete {
            0
        } else {
            u32::try_from(end % n).unwrap_or(0)
        };
        Some((len, complete))
    }
}
