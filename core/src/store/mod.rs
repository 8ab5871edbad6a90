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
//! | 2 | Snapshot | u32 count (at most [`MAX_ENTRIES`]), then that many *entries*, ids strictly ascending |
//! | 3 | Identity | u8 *k* (1 ..= 255), then *k* bytes: the entry id `name#incarnation`, UTF-8 |
//!
//! An *entry* is 17 + *k* bytes: u8 *k* (1 ..= [`MAX_ID`]), *k* bytes of id (UTF-8), u64 inc,
//! u64 dec. A payload must be consumed exactly.
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
//!
//! Later issues bump it (named counters will add names to entries); a bump adds a row here
//! and a branch in [`decode`].
//!
//! Decoding never panics and never trusts a length: every count and length is checked
//! against its limit and against the bytes that are there before it is used.

mod sink;

pub use sink::{Sink, SinkFull, SliceSink};

use core::fmt;

/// The format version this build writes (see the module docs for what each means).
pub const FORMAT_VERSION: u8 = 2;
/// The oldest version this build reads.
pub const OLDEST_VERSION: u8 = 1;
/// Type byte of a Local record.
pub const TYPE_LOCAL: u8 = 1;
/// Type byte of a Snapshot record.
pub const TYPE_SNAPSHOT: u8 = 2;
/// Type byte of an Identity record.
pub const TYPE_IDENTITY: u8 = 3;
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
    /// Snapshot ids not strictly ascending (version 2) or repeated (version 1).
    Unordered,
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
    /// A whole merged state.
    Snapshot(Entries<'a>),
    /// The entry id this node counts under.
    Identity(&'a str),
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

/// Appends a Snapshot record of `entries` (ids strictly ascending, as a counter holds them;
/// walked twice: once to count) to `sink`.
pub fn encode_snapshot<'e, I>(sink: &mut impl Sink, entries: I) -> Result<(), EncodeError>
where
    I: Iterator<Item = (&'e str, u64, u64)> + Clone,
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
            Record::Snapshot(r.entries(count, order)?)
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
            Ok(Record::Snapshot(entries))
        }
        v => decode(v, rest),
    }
}

/// Bytes a Local record of an id of `id_len` bytes takes.
pub const fn local_len(id_len: usize) -> usize {
    1 + ENTRY_OVERHEAD + id_len
}

/// Bytes a Snapshot record takes at most for `entries` entries of ids up to `id_len` bytes.
pub const fn snapshot_len(entries: usize, id_len: usize) -> usize {
    1 + 4 + entries * (ENTRY_OVERHEAD + id_len)
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
