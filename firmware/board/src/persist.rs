//! The node's state in flash, with `sequential-storage`'s map: power-fail safe (an item is
//! written whole, with a CRC, before the previous one stops counting; a cut mid-write leaves
//! the previous value) and wear-levelled over the pages it is given.
//!
//! Two keys:
//! - [`KEY_LOCAL`]: this node's own entry, written as soon as it changes (a button press must
//!   survive a power cut right after it: losing it would let the node re-use totals);
//! - [`KEY_STATE`]: every non-zero entry the node knows, written at most every
//!   `state_every` (others can re-send it; saving it only makes the value right at boot).
//!
//! Both use one format, version 1: `[1][count]` then per entry `[id len][id][inc u64 LE][dec
//! u64 LE]`, ids strictly ascending. Anything else read back is refused as corrupt and the node
//! starts from what peers tell it.

use core::ops::Range;
use embassy_sync::blocking_mutex::raw::RawMutex;
use embassy_time::{Duration, Instant};
use embedded_storage_async::nor_flash::NorFlash;
use sequential_storage::cache::{Cache, Uncached};
use sequential_storage::map::{MapConfig, MapStorage};
use tally_core::Entry;
use tally_embassy::Node;

/// Key of the own entry.
pub const KEY_LOCAL: u8 = 0;
/// Key of the whole known state.
pub const KEY_STATE: u8 = 1;
/// Format version byte.
pub const VERSION: u8 = 1;
/// Largest encoded state: 32 entries of 64-byte ids.
pub const MAX_STATE: usize = 2 + 32 * (1 + 64 + 16);
/// Work buffer of the map: the largest item plus its key, rounded up to flash words.
pub const WORK: usize = MAX_STATE + 64;

/// Why persisting or restoring failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum PersistError {
    /// The flash range is not usable by the map (alignment, fewer than two pages).
    BadRange,
    /// The flash or the map reported an error.
    Storage,
    /// Stored bytes are not a state of this format.
    Corrupt,
    /// The state does not fit [`MAX_STATE`].
    TooLarge,
    /// The node refused the restored state (capacity, order).
    Refused,
}

/// Something that holds a counter: a running [`Node`], or a test double.
pub trait Replica<const L: usize> {
    /// Calls `f` with every entry, sorted by id.
    fn each_entry(&self, f: &mut dyn FnMut(&Entry<L>));
    /// This node's own entry.
    fn own(&self) -> Option<Entry<L>>;
    /// Merges decoded entries (sorted by id). Ok(true) when something rose.
    fn merge(&self, entries: Decoded<'_>) -> Result<bool, PersistError>;
}

impl<M: RawMutex, const N: usize, const P: usize, const L: usize> Replica<L>
    for Node<'_, M, N, P, L>
{
    fn each_entry(&self, f: &mut dyn FnMut(&Entry<L>)) {
        self.for_each_entry(f);
    }
    fn own(&self) -> Option<Entry<L>> {
        self.with_engine(|e| e.counter().local_entry())
    }
    fn merge(&self, entries: Decoded<'_>) -> Result<bool, PersistError> {
        self.restore(entries).map_err(|_| PersistError::Refused)
    }
}

/// Encodes `entries` (non-zero ones only) into `out`; returns the length.
pub fn encode<'e, const L: usize>(
    entries: impl Iterator<Item = &'e Entry<L>>,
    out: &mut [u8],
) -> Result<usize, PersistError> {
    let mut w = Writer { out, len: 2 };
    let mut count = 0u8;
    for e in entries.filter(|e| !e.is_zero()) {
        let id = e.id.as_bytes();
        let n = u8::try_from(id.len()).map_err(|_| PersistError::TooLarge)?;
        w.put(&[n])?;
        w.put(id)?;
        w.put(&e.inc.to_le_bytes())?;
        w.put(&e.dec.to_le_bytes())?;
        count = count.checked_add(1).ok_or(PersistError::TooLarge)?;
    }
    let len = w.len;
    let head = w.out.get_mut(..2).ok_or(PersistError::TooLarge)?;
    head.copy_from_slice(&[VERSION, count]);
    Ok(len)
}

struct Writer<'o> {
    out: &'o mut [u8],
    len: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), PersistError> {
        let end = self.len + bytes.len();
        self.out
            .get_mut(self.len..end)
            .ok_or(PersistError::TooLarge)?
            .copy_from_slice(bytes);
        self.len = end;
        Ok(())
    }
}

/// A validated encoded state: iterates `(id, inc, dec)` in ascending id order.
#[derive(Clone, Debug)]
pub struct Decoded<'b> {
    rest: &'b [u8],
    left: u8,
}

impl<'b> Decoded<'b> {
    /// Checks every byte of `bytes` (version, count, lengths, UTF-8, strict order, nothing
    /// after the last entry) before anything is merged.
    pub fn new(bytes: &'b [u8]) -> Result<Self, PersistError> {
        let (&version, rest) = bytes.split_first().ok_or(PersistError::Corrupt)?;
        let (&count, rest) = rest.split_first().ok_or(PersistError::Corrupt)?;
        if version != VERSION {
            return Err(PersistError::Corrupt);
        }
        let all = Self { rest, left: count };
        let mut check = all.clone();
        let mut prev: Option<&str> = None;
        for _ in 0..count {
            let (id, _, _) = check.next_entry().ok_or(PersistError::Corrupt)?;
            if prev.is_some_and(|p| p.as_bytes() >= id.as_bytes()) {
                return Err(PersistError::Corrupt);
            }
            prev = Some(id);
        }
        if !check.rest.is_empty() {
            return Err(PersistError::Corrupt);
        }
        Ok(all)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        usize::from(self.left)
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.left == 0
    }

    fn next_entry(&mut self) -> Option<(&'b str, u64, u64)> {
        if self.left == 0 {
            return None;
        }
        let (&n, rest) = self.rest.split_first()?;
        let n = usize::from(n);
        if n == 0 {
            return None;
        }
        let id = core::str::from_utf8(rest.get(..n)?).ok()?;
        let inc = u64::from_le_bytes(rest.get(n..n + 8)?.try_into().ok()?);
        let dec = u64::from_le_bytes(rest.get(n + 8..n + 16)?.try_into().ok()?);
        self.rest = rest.get(n + 16..)?;
        self.left -= 1;
        Some((id, inc, dec))
    }
}

impl<'b> Iterator for Decoded<'b> {
    type Item = (&'b str, u64, u64);
    fn next(&mut self) -> Option<Self::Item> {
        self.next_entry()
    }
}

/// What [`Store::restore`] found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Restored {
    /// Entries read from the saved state.
    pub entries: usize,
    /// The own entry was found.
    pub own: bool,
}

/// The node's state in a flash range. Holds two buffers of [`WORK`] bytes.
pub struct Store<F: NorFlash> {
    map: MapStorage<u8, F, Cache<Uncached, Uncached, Uncached, u8>>,
    work: [u8; WORK],
    value: [u8; WORK],
    saved_own: Option<(u64, u64)>,
    state_dirty: bool,
    state_saved_at: Option<Instant>,
    state_every: Duration,
}

impl<F: NorFlash> Store<F> {
    /// A store on `range` of `flash` (page-aligned, at least two erase pages), saving the whole
    /// state at most every `state_every`.
    pub fn new(flash: F, range: Range<u32>, state_every: Duration) -> Result<Self, PersistError> {
        let config = MapConfig::try_new(range).map_err(|_| PersistError::BadRange)?;
        Ok(Self {
            map: MapStorage::new(flash, config, Cache::new_uncached()),
            work: [0; WORK],
            value: [0; WORK],
            saved_own: None,
            state_dirty: false,
            state_saved_at: None,
            state_every,
        })
    }

    /// Reads the saved state and then the own entry, and merges both into `node`.
    pub async fn restore<const L: usize>(
        &mut self,
        node: &impl Replica<L>,
    ) -> Result<Restored, PersistError> {
        let mut found = Restored::default();
        for key in [KEY_STATE, KEY_LOCAL] {
            let item = self
                .map
                .fetch_item::<&[u8]>(&mut self.work, &key)
                .await
                .map_err(|_| PersistError::Storage)?;
            let Some(bytes) = item else { continue };
            let decoded = Decoded::new(bytes)?;
            if key == KEY_STATE {
                found.entries = decoded.len();
            } else {
                found.own = !decoded.is_empty();
            }
            node.merge(decoded)?;
        }
        self.saved_own = node.own().map(|e| (e.inc, e.dec));
        Ok(found)
    }

    /// Call after every change of value: writes the own entry when it differs from the saved
    /// one, and the whole state when it is due. Returns whether anything was written.
    pub async fn on_change<const L: usize>(
        &mut self,
        node: &impl Replica<L>,
    ) -> Result<bool, PersistError> {
        self.state_dirty = true;
        let mut wrote = false;
        if let Some(own) = node.own() {
            if self.saved_own != Some((own.inc, own.dec)) {
                let n = encode(core::iter::once(&own), &mut self.value)?;
                self.store(KEY_LOCAL, n).await?;
                self.saved_own = Some((own.inc, own.dec));
                wrote = true;
            }
        }
        let due = self
            .state_saved_at
            .is_none_or(|at| at.elapsed() >= self.state_every);
        if due {
            self.save_state(node).await?;
            wrote = true;
        }
        Ok(wrote)
    }

    /// Writes the whole state if it changed since it was last written.
    pub async fn flush<const L: usize>(
        &mut self,
        node: &impl Replica<L>,
    ) -> Result<(), PersistError> {
        if self.state_dirty {
            self.save_state(node).await?;
        }
        Ok(())
    }

    /// True when a change is waiting for the next state write.
    pub fn state_pending(&self) -> bool {
        self.state_dirty
    }

    async fn save_state<const L: usize>(
        &mut self,
        node: &impl Replica<L>,
    ) -> Result<(), PersistError> {
        let mut w = Writer {
            out: &mut self.value,
            len: 2,
        };
        let mut count = 0u8;
        let mut failed = false;
        node.each_entry(&mut |e| {
            if e.is_zero() || failed {
                return;
            }
            let id = e.id.as_bytes();
            let put = u8::try_from(id.len()).ok().and_then(|n| {
                w.put(&[n]).ok()?;
                w.put(id).ok()?;
                w.put(&e.inc.to_le_bytes()).ok()?;
                w.put(&e.dec.to_le_bytes()).ok()?;
                count = count.checked_add(1)?;
                Some(())
            });
            failed = put.is_none();
        });
        if failed {
            return Err(PersistError::TooLarge);
        }
        let n = w.len;
        w.out
            .get_mut(..2)
            .ok_or(PersistError::TooLarge)?
            .copy_from_slice(&[VERSION, count]);
        self.store(KEY_STATE, n).await?;
        self.state_dirty = false;
        self.state_saved_at = Some(Instant::now());
        Ok(())
    }

    async fn store(&mut self, key: u8, len: usize) -> Result<(), PersistError> {
        let value: &[u8] = self.value.get(..len).ok_or(PersistError::TooLarge)?;
        self.map
            .store_item(&mut self.work, &key, &value)
            .await
            .map_err(|_| PersistError::Storage)
    }

    /// Gives the flash back.
    pub fn into_flash(self) -> F {
        self.map.destroy().0
    }
}
