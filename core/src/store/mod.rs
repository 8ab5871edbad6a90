//! The one codec for what a node keeps across restarts — on a host inside the write-ahead
//! log's CRC framing, on a board as items of its flash store.
//!
//! ## Records
//!
//! A record is a type byte and a payload. All integers are little-endian.
//!
//! | type | record | payload |
//! |---:|---|---|
//! | 1 | Local | one *entry*: the node's own totals after a local change |
//! | 2 | Snapshot | u32 count (at most [`MAX_ENTRIES`]), then that many *entries*, ids strictly ascending; from version 3 then u32 count (at most [`MAX_CELLS`]) and that many *cells*, strictly ascending by (name, id) |
//! | 3 | Identity | u8 *k* (1 ..= 255), then *k* bytes: the entry id `name#incarnation`, UTF-8 |
//! | 4 | NamedLocal (version 3) | a *name*, then one *entry*: the node's own totals in that named counter after a local change |
//!
//! An *entry* is 17 + *k* bytes: u8 *k* (1 ..= [`MAX_ID`]), *k* bytes of id (UTF-8), u64 inc,
//! u64 dec. A *name* is u8 *n* (1 ..= 64) and *n* bytes of `[A-Za-z0-9._-]`. A *cell* is a
//! *name*, u8 *k* and *k* bytes of id, then u64 inc, dec, floor_inc, floor_dec (floors never
//! above their totals). A payload must be consumed exactly.
//!
//! ## Versions
//!
//! One number, [`FORMAT_VERSION`], versions every on-disk format of Tally: the write-ahead
//! log's segment header carries it, and so does the first byte of every board item. A reader
//! opens every earlier version and keeps its value.
//!
//! | version | what changed |
//! |---:|---|
//! | 1 | WAL: types 1 and 2, snapshot ids in any order. Board: `[1][u8 count][entries]`, one layout for both items |
//! | 2 | one record codec for both; snapshot ids strictly ascending; the Identity record (type 3) |
//! | 3 | named counters: snapshots end with their cells; the NamedLocal record (type 4) |
//!
//! A bump adds a row here and a branch in [`decode`]; a version 2 snapshot reads back with no
//! named cells.
//!
//! Decoding never panics and never trusts a length: every count and length is checked
//! against its limit and against the bytes that are there before it is used.

mod sink;

pub use sink::{Sink, SinkFull, SliceSink};

use crate::named::{CounterName, Totals};
use core::fmt;

/// The format version this build writes (see the module docs for what each means).
pub const FORMAT_VERSION: u8 = 3;
/// The oldest version this build reads.
pub const OLDEST_VERSION: u8 = 1;
/// Type byte of a Local record.
pub const TYPE_LOCAL: u8 = 1;
/// Type byte of a Snapshot record.
pub const TYPE_SNAPSHOT: u8 = 2;
/// Type byte of an Identity record.
pub const TYPE_IDENTITY: u8 = 3;
/// Type byte of a NamedLocal record (version 3 on).
pub const TYPE_NAMED_LOCAL: u8 = 4;
/// Most named cells a snapshot may carry (the host limit of a map).
pub const MAX_CELLS: usize = crate::named::host::MAX_CELLS;
/// Bytes of a cell besides its name and id: two length bytes and four u64.
pub const CELL_OVERHEAD: usize = 34;
/// Longest id in a record (the host profile's bound; boards refuse longer ones at merge).
pub const MAX_ID: usize = 255;
/// Most entries a snapshot may carry (the core's counter holds at most 65,536).
pub const MAX_ENTRIES: usize = 65_536;
/// Bytes of an entry besides its id: the length byte and two u64.
pub const ENTRY_OVERHEAD: usize = 17;

/// Why a record could not be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum EncodeError {
    /// An id was empty or longer than [`MAX_ID`].
    BadId,
    /// Not a counter name.
    BadName,
    /// More than [`MAX_ENTRIES`] entries.
    TooManyEntries,
    /// The sink is full.
    SinkFull,
}

impl From<SinkFull> for EncodeError {
    fn from(_: SinkFull) -> Self {
        EncodeError::SinkFull
    }
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EncodeError::BadId => "node id is empty or longer than 255 bytes",
            EncodeError::BadName => "not a counter name",
            EncodeError::TooManyEntries => "snapshot has more than 65,536 entries",
            EncodeError::SinkFull => "record does not fit its buffer",
        })
    }
}

impl core::error::Error for EncodeError {}

/// Why stored bytes are not a record of a version this build reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum DecodeError {
    /// A version newer than [`FORMAT_VERSION`] or older than [`OLDEST_VERSION`].
    UnsupportedVersion(u8),
    /// No bytes at all.
    Empty,
    /// A type byte the version does not have.
    UnknownType(u8),
    /// The payload ends before its layout does.
    Truncated,
    /// Bytes after the payload's layout.
    TrailingBytes,
    /// A count over [`MAX_ENTRIES`].
    TooManyEntries,
    /// An id of length 0.
    EmptyId,
    /// An id that is not UTF-8.
    InvalidUtf8,
    /// Snapshot ids not strictly ascending (version 2) or repeated (version 1); named cells
    /// not strictly ascending by (name, id).
    Unordered,
    /// A counter name that is not 1–64 bytes of `[A-Za-z0-9._-]`.
    BadName,
    /// A cell's floor above its total.
    BadFloor,
}

impl DecodeError {
    /// A short, stable name (for logs and metrics).
    pub fn name(&self) -> &'static str {
        match self {
            DecodeError::UnsupportedVersion(_) => "unsupported_version",
            DecodeError::Empty => "empty",
            DecodeError::UnknownType(_) => "unknown_type",
            DecodeError::Truncated => "truncated",
            DecodeError::TrailingBytes => "trailing_bytes",
            DecodeError::TooManyEntries => "too_many_entries",
            DecodeError::EmptyId => "empty_id",
            DecodeError::InvalidUtf8 => "invalid_utf8",
            DecodeError::Unordered => "unordered",
            DecodeError::BadName => "bad_name",
            DecodeError::BadFloor => "bad_floor",
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::UnsupportedVersion(v) => write!(
                f,
                "format version {v} is not read by this build (it reads {OLDEST_VERSION} to {FORMAT_VERSION})"
            ),
            DecodeError::Empty => f.write_str("empty record"),
            DecodeError::UnknownType(t) => write!(f, "unknown record type {t}"),
            DecodeError::Truncated => f.write_str("payload ends early"),
            DecodeError::TrailingBytes => f.write_str("trailing bytes after the payload"),
            DecodeError::TooManyEntries => f.write_str("more than 65,536 entries"),
            DecodeError::EmptyId => f.write_str("empty node id"),
            DecodeError::InvalidUtf8 => f.write_str("node id is not UTF-8"),
            DecodeError::Unordered => f.write_str("snapshot ids are not strictly ascending"),
            DecodeError::BadName => f.write_str("not a counter name"),
            DecodeError::BadFloor => f.write_str("a named cell's floor is above its total"),
        }
    }
}

impl core::error::Error for DecodeError {}

/// A decoded record, borrowing from the bytes it was read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record<'a> {
    /// The node's own totals after a local change.
    Local {
        /// The entry id.
        id: &'a str,
        /// Total increments.
        inc: u64,
        /// Total decrements.
        dec: u64,
    },
    /// A whole merged state: the default counter's entries and the named counters' cells.
    Snapshot(Entries<'a>, Cells<'a>),
    /// The entry id this node counts under.
    Identity(&'a str),
    /// The node's own totals in a named counter after a local change.
    NamedLocal {
        /// The counter.
        name: &'a str,
        /// The entry id.
        id: &'a str,
        /// Total increments in it.
        inc: u64,
        /// Total decrements in it.
        dec: u64,
    },
}

/// The validated named cells of a snapshot: iterates `(name, id, totals)`, sorted by name then
/// id (empty before version 3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cells<'a> {
    rest: &'a [u8],
    left: usize,
}

impl<'a> Cells<'a> {
    /// No cells: what a snapshot of an earlier version holds.
    pub const EMPTY: Cells<'static> = Cells { rest: &[], left: 0 };

    /// How many cells are left.
    pub fn len(&self) -> usize {
        self.left
    }

    /// No cells left.
    pub fn is_empty(&self) -> bool {
        self.left == 0
    }
}

impl<'a> Iterator for Cells<'a> {
    type Item = (&'a str, &'a str, Totals);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let mut r = Reader(self.rest);
        // Validated when decoded: a failure here cannot happen; it ends the iteration.
        let c = r.cell().ok()?;
        self.rest = r.0;
        self.left -= 1;
        Some(c)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

/// The validated entries of a snapshot: iterates `(id, inc, dec)`. For version 2 (and the
/// board's version 1) ids come strictly ascending, ready for `PnCounter::merge_sorted`; see
/// [`Entries::ascending`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entries<'a> {
    rest: &'a [u8],
    left: usize,
    sorted: bool,
}

impl<'a> Entries<'a> {
    /// How many entries are left.
    pub fn len(&self) -> usize {
        self.left
    }

    /// No entries left.
    pub fn is_empty(&self) -> bool {
        self.left == 0
    }

    /// Ids are strictly ascending (always for version 2; a version 1 WAL snapshot may be in any
    /// order, its ids unique).
    pub fn ascending(&self) -> bool {
        self.sorted
    }
}

impl<'a> Iterator for Entries<'a> {
    type Item = (&'a str, u64, u64);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let mut r = Reader(self.rest);
        // Validated when decoded: a failure here cannot happen; it ends the iteration.
        let e = r.entry().ok()?;
        self.rest = r.0;
        self.left -= 1;
        Some(e)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

/// Appends a Local record (type byte and payload) to `sink`.
pub fn encode_local(sink: &mut impl Sink, id: &str, inc: u64, dec: u64) -> Result<(), EncodeError> {
    check_id(id)?;
    sink.put(&[TYPE_LOCAL])?;
    put_entry(sink, id, inc, dec)
}

/// Appends a NamedLocal record to `sink`: the totals of entry `id` in counter `name`.
pub fn encode_named_local(
    sink: &mut impl Sink,
    name: &str,
    id: &str,
    inc: u64,
    dec: u64,
) -> Result<(), EncodeError> {
    check_id(id)?;
    sink.put(&[TYPE_NAMED_LOCAL])?;
    put_name(sink, name)?;
    put_entry(sink, id, inc, dec)
}

/// Appends a Snapshot record of `entries` (ids strictly ascending, as a counter holds them)
/// and named `cells` (sorted by name then id, as a map holds them) to `sink`; each is walked
/// twice, once to count.
pub fn encode_snapshot<'e, I, C>(
    sink: &mut impl Sink,
    entries: I,
    cells: C,
) -> Result<(), EncodeError>
where
    I: Iterator<Item = (&'e str, u64, u64)> + Clone,
    C: Iterator<Item = (&'e str, &'e str, Totals)> + Clone,
{
    let count = entries.clone().count();
    if count > MAX_ENTRIES {
        return Err(EncodeError::TooManyEntries);
    }
    let count = u32::try_from(count).map_err(|_| EncodeError::TooManyEntries)?;
    sink.put(&[TYPE_SNAPSHOT])?;
    sink.put(&count.to_le_bytes())?;
    for (id, inc, dec) in entries {
        check_id(id)?;
        put_entry(sink, id, inc, dec)?;
    }
    let count = cells.clone().count();
    if count > MAX_CELLS {
        return Err(EncodeError::TooManyEntries);
    }
    let count = u32::try_from(count).map_err(|_| EncodeError::TooManyEntries)?;
    sink.put(&count.to_le_bytes())?;
    for (name, id, t) in cells {
        check_id(id)?;
        put_name(sink, name)?;
        let k = u8::try_from(id.len()).map_err(|_| EncodeError::BadId)?;
        sink.put(&[k])?;
        sink.put(id.as_bytes())?;
        for v in [t.inc, t.dec, t.floor_inc, t.floor_dec] {
            sink.put(&v.to_le_bytes())?;
        }
    }
    Ok(())
}

fn put_name(sink: &mut (impl Sink + ?Sized), name: &str) -> Result<(), EncodeError> {
    CounterName::new(name).map_err(|_| EncodeError::BadName)?;
    sink.put(&[name.len() as u8])?;
    sink.put(name.as_bytes())?;
    Ok(())
}

/// Appends an Identity record to `sink`.
pub fn encode_identity(sink: &mut impl Sink, entry_id: &str) -> Result<(), EncodeError> {
    check_id(entry_id)?;
    let k = u8::try_from(entry_id.len()).map_err(|_| EncodeError::BadId)?;
    sink.put(&[TYPE_IDENTITY, k])?;
    sink.put(entry_id.as_bytes())?;
    Ok(())
}

/// Decodes the record `body` (type byte and payload) written in format `version`.
///
/// Version 1 is the write-ahead log's (types 1 and 2, snapshot ids unique in any order);
/// the board's version 1 item has its own layout, read by [`decode_item`].
pub fn decode(version: u8, body: &[u8]) -> Result<Record<'_>, DecodeError> {
    if !(OLDEST_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    let (&kind, payload) = body.split_first().ok_or(DecodeError::Empty)?;
    let mut r = Reader(payload);
    let record = match kind {
        TYPE_LOCAL => {
            let (id, inc, dec) = r.entry()?;
            Record::Local { id, inc, dec }
        }
        TYPE_SNAPSHOT => {
            let count = usize::try_from(r.u32()?).map_err(|_| DecodeError::TooManyEntries)?;
            let order = if version >= 2 {
                Order::Ascending
            } else {
                Order::Unique
            };
            let entries = r.entries(count, order)?;
            let cells = if version >= 3 {
                let count = usize::try_from(r.u32()?).map_err(|_| DecodeError::TooManyEntries)?;
                r.cells(count)?
            } else {
                Cells::EMPTY
            };
            Record::Snapshot(entries, cells)
        }
        TYPE_NAMED_LOCAL if version >= 3 => {
            let name = r.name()?;
            let (id, inc, dec) = r.entry()?;
            Record::NamedLocal { name, id, inc, dec }
        }
        TYPE_IDENTITY if version >= 2 => {
            let k = usize::from(r.u8()?);
            Record::Identity(r.id(k)?)
        }
        other => return Err(DecodeError::UnknownType(other)),
    };
    if !r.0.is_empty() {
        return Err(DecodeError::TrailingBytes);
    }
    Ok(record)
}

/// Starts a board item: its version byte. The record follows (`encode_local` and so on).
pub fn begin_item(sink: &mut impl Sink) -> Result<(), EncodeError> {
    sink.put(&[FORMAT_VERSION])?;
    Ok(())
}

/// Decodes a board item: a version byte, then (version 2 on) a record.
///
/// Version 1 items were `[1][u8 count][entries, ascending]` for both the own entry and the
/// state; they read back as a Snapshot.
pub fn decode_item(item: &[u8]) -> Result<Record<'_>, DecodeError> {
    let (&version, rest) = item.split_first().ok_or(DecodeError::Empty)?;
    match version {
        1 => {
            let mut r = Reader(rest);
            let count = usize::from(r.u8()?);
            let entries = r.entries(count, Order::Ascending)?;
            if !r.0.is_empty() {
                return Err(DecodeError::TrailingBytes);
            }
            Ok(Record::Snapshot(entries, Cells::EMPTY))
        }
        v => decode(v, rest),
    }
}

/// Bytes a Local record of an id of `id_len` bytes takes.
pub const fn local_len(id_len: usize) -> usize {
    1 + ENTRY_OVERHEAD + id_len
}

/// Bytes a NamedLocal record of a name of `name_len` and an id of `id_len` bytes takes.
pub const fn named_local_len(name_len: usize, id_len: usize) -> usize {
    1 + 1 + name_len + ENTRY_OVERHEAD + id_len
}

/// Bytes a Snapshot record takes at most for `entries` entries of ids up to `id_len` bytes and
/// `cells` named cells of names up to `name_len` bytes.
pub const fn snapshot_len(entries: usize, id_len: usize, cells: usize, name_len: usize) -> usize {
    1 + 4 + entries * (ENTRY_OVERHEAD + id_len) + 4 + cells * (CELL_OVERHEAD + name_len + id_len)
}

fn check_id(id: &str) -> Result<(), EncodeError> {
    if id.is_empty() || id.len() > MAX_ID {
        return Err(EncodeError::BadId);
    }
    Ok(())
}

fn put_entry(
    sink: &mut (impl Sink + ?Sized),
    id: &str,
    inc: u64,
    dec: u64,
) -> Result<(), EncodeError> {
    let k = u8::try_from(id.len()).map_err(|_| EncodeError::BadId)?;
    sink.put(&[k])?;
    sink.put(id.as_bytes())?;
    sink.put(&inc.to_le_bytes())?;
    sink.put(&dec.to_le_bytes())?;
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Order {
    Ascending,
    Unique,
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.0.len() {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        self.take(1)?.first().copied().ok_or(DecodeError::Truncated)
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b: [u8; 4] = self
            .take(4)?
            .try_into()
            .map_err(|_| DecodeError::Truncated)?;
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        let b: [u8; 8] = self
            .take(8)?
            .try_into()
            .map_err(|_| DecodeError::Truncated)?;
        Ok(u64::from_le_bytes(b))
    }

    fn id(&mut self, k: usize) -> Result<&'a str, DecodeError> {
        if k == 0 {
            return Err(DecodeError::EmptyId);
        }
        core::str::from_utf8(self.take(k)?).map_err(|_| DecodeError::InvalidUtf8)
    }

    fn name(&mut self) -> Result<&'a str, DecodeError> {
        let n = usize::from(self.u8()?);
        let bytes = self.take(n)?;
        let name = core::str::from_utf8(bytes).map_err(|_| DecodeError::BadName)?;
        CounterName::new(name).map_err(|_| DecodeError::BadName)?;
        Ok(name)
    }

    fn cell(&mut self) -> Result<(&'a str, &'a str, Totals), DecodeError> {
        let name = self.name()?;
        let k = usize::from(self.u8()?);
        let id = self.id(k)?;
        let t = Totals {
            inc: self.u64()?,
            dec: self.u64()?,
            floor_inc: self.u64()?,
            floor_dec: self.u64()?,
        };
        if t.floor_inc > t.inc || t.floor_dec > t.dec {
            return Err(DecodeError::BadFloor);
        }
        Ok((name, id, t))
    }

    /// Validates `count` cells and returns them as an iterator over the same bytes.
    fn cells(&mut self, count: usize) -> Result<Cells<'a>, DecodeError> {
        if count > MAX_CELLS {
            return Err(DecodeError::TooManyEntries);
        }
        // Every cell takes at least 36 bytes: a count the bytes cannot hold is refused first.
        if count.saturating_mul(CELL_OVERHEAD + 2) > self.0.len() {
            return Err(DecodeError::Truncated);
        }
        let start = self.0;
        let mut prev: Option<(&str, &str)> = None;
        for _ in 0..count {
            let (name, id, _) = self.cell()?;
            if let Some((pn, pi)) = prev {
                if (pn.as_bytes(), pi.as_bytes()) >= (name.as_bytes(), id.as_bytes()) {
                    return Err(DecodeError::Unordered);
                }
            }
            prev = Some((name, id));
        }
        Ok(Cells {
            rest: start,
            left: count,
        })
    }

    fn entry(&mut self) -> Result<(&'a str, u64, u64), DecodeError> {
        let k = usize::from(self.u8()?);
        let id = self.id(k)?;
        Ok((id, self.u64()?, self.u64()?))
    }

    /// Validates `count` entries and returns them as an iterator over the same bytes.
    fn entries(&mut self, count: usize, order: Order) -> Result<Entries<'a>, DecodeError> {
        if count > MAX_ENTRIES {
            return Err(DecodeError::TooManyEntries);
        }
        // Every entry takes at least 18 bytes: a count the bytes cannot hold is refused first.
        if count.saturating_mul(ENTRY_OVERHEAD + 1) > self.0.len() {
            return Err(DecodeError::Truncated);
        }
        let start = self.0;
        let mut prev: Option<&str> = None;
        let mut sorted = true;
        for _ in 0..count {
            let (id, _, _) = self.entry()?;
            if let Some(p) = prev {
                if p.as_bytes() >= id.as_bytes() {
                    sorted = false;
                }
            }
            prev = Some(id);
        }
        if !sorted {
            match order {
                Order::Ascending => return Err(DecodeError::Unordered),
                Order::Unique => check_unique(Entries {
                    rest: start,
                    left: count,
                    sorted: false,
                })?,
            }
        }
        Ok(Entries {
            rest: start,
            left: count,
            sorted,
        })
    }
}

/// Version 1 WAL snapshots hold unique ids in any order. Quadratic, but only ever run on a
/// version 1 snapshot that is out of order (version 1 writers wrote the counter's sorted
/// entries, so in practice never).
fn check_unique(entries: Entries<'_>) -> Result<(), DecodeError> {
    let mut outer = entries.clone();
    while let Some((id, _, _)) = outer.next() {
        if outer.clone().any(|(other, _, _)| other == id) {
            return Err(DecodeError::Unordered);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
