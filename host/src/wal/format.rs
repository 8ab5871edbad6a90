//! Encoding and decoding of segment headers and record framing (the byte layout is documented
//! in the [module docs](super#on-disk-format)). A record's body — type byte and payload — is
//! the core's [`store`](tally_core::store) codec, the same bytes a board keeps in flash.
//!
//! Decoding never panics and never trusts a length read from disk: every length is checked
//! against its limit ([`MAX_PAYLOAD`], [`MAX_ENTRIES`], [`MAX_ID`]) and against the bytes that
//! are actually there before it is used.

use thiserror::Error;

/// The first 8 bytes of every segment.
pub const MAGIC: [u8; 8] = *b"TALLYWAL";
/// The format version this build writes: the one version of every Tally store
/// ([`tally_core::store::FORMAT_VERSION`]).
pub const VERSION: u16 = tally_core::store::FORMAT_VERSION as u16;
/// The oldest version this build reads.
pub const OLDEST_VERSION: u16 = tally_core::store::OLDEST_VERSION as u16;
/// Size of the segment header: magic, version, reserved, sequence number.
pub const HEADER_LEN: usize = 20;
/// Size of a record's header: payload length, CRC-32C, type byte.
pub const RECORD_HEADER_LEN: usize = 9;
/// Largest payload a record may carry (64 MiB).
pub const MAX_PAYLOAD: usize = 64 << 20;
/// Most entries a snapshot may carry (the core's counter holds at most 65,536).
pub const MAX_ENTRIES: usize = 65_536;
/// Longest node id, in bytes (ids are non-empty UTF-8).
pub const MAX_ID: usize = 255;
/// Type byte of a [`Record::Local`].
pub const TYPE_LOCAL: u8 = tally_core::store::TYPE_LOCAL;
/// Type byte of a [`Record::Snapshot`].
pub const TYPE_SNAPSHOT: u8 = tally_core::store::TYPE_SNAPSHOT;

/// One log record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// The node's own absolute totals after a local increment or decrement.
    Local {
        /// The node's id.
        id: String,
        /// Total of increments made on this node.
        inc: u64,
        /// Total of decrements made on this node.
        dec: u64,
    },
    /// The whole merged counter state: `(id, inc, dec)` per node.
    Snapshot {
        /// The entries, any order, ids unique.
        entries: Vec<(String, u64, u64)>,
    },
}

/// A decoded record borrowing its ids from the buffer it was read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordRef<'a> {
    /// See [`Record::Local`].
    Local {
        /// The node's id.
        id: &'a str,
        /// Total of increments.
        inc: u64,
        /// Total of decrements.
        dec: u64,
    },
    /// See [`Record::Snapshot`]; from version 3 with the named counters' cells
    /// `(name, id, totals)`, sorted by name then id.
    Snapshot(Vec<(&'a str, u64, u64)>, Vec<NamedCell<'a>>),
    /// The node's own totals in a named counter (version 3 on).
    NamedLocal {
        /// The counter.
        name: &'a str,
        /// The node's id.
        id: &'a str,
        /// Total of increments in it.
        inc: u64,
        /// Total of decrements in it.
        dec: u64,
    },
    /// A node's entry id (version 2 on; hosts keep theirs in the `IDENTITY` file, and
    /// recovery skips this record).
    Identity(&'a str),
}

/// A named cell of a snapshot: counter name, entry id, totals.
pub type NamedCell<'a> = (&'a str, &'a str, tally_core::named::Totals);

impl RecordRef<'_> {
    /// An owned copy of what [`Record`] holds: the default counter (named cells and
    /// NamedLocal records, which the log takes as core-codec bodies, are left out).
    pub fn to_owned(&self) -> Record {
        match self {
            Self::Local { id, inc, dec } => Record::Local {
                id: (*id).to_owned(),
                inc: *inc,
                dec: *dec,
            },
            Self::Snapshot(entries, _) => Record::Snapshot {
                entries: entries
                    .iter()
                    .map(|(id, inc, dec)| ((*id).to_owned(), *inc, *dec))
                    .collect(),
            },
            Self::Identity(_) | Self::NamedLocal { .. } => Record::Snapshot {
                entries: Vec::new(),
            },
        }
    }
}

/// A record that cannot be written.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RecordError {
    /// An id was empty.
    #[error("node id is empty")]
    EmptyId,
    /// An id was longer than [`MAX_ID`] bytes.
    #[error("node id is {0} bytes long, the limit is {MAX_ID}")]
    IdTooLong(usize),
    /// A snapshot had more than [`MAX_ENTRIES`] entries.
    #[error("snapshot has {0} entries, the limit is {MAX_ENTRIES}")]
    TooManyEntries(usize),
    /// A snapshot named an id twice.
    #[error("snapshot names node id {0:?} twice")]
    DuplicateId(String),
    /// A record body from the core codec was not a record.
    #[error("not a record: {0}")]
    NotARecord(&'static str),
}

/// Why bytes on disk are not a valid segment header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum HeaderError {
    /// Fewer than [`HEADER_LEN`] bytes.
    #[error("segment header is short ({0} of {HEADER_LEN} bytes)")]
    Short(usize),
    /// The first 8 bytes are not [`MAGIC`].
    #[error("bad magic")]
    BadMagic,
    /// A version this build does not read.
    #[error(
        "unsupported format version {0} (this build reads versions {OLDEST_VERSION} to {VERSION})"
    )]
    UnsupportedVersion(u16),
    /// The reserved field is not zero.
    #[error("reserved header field is {0:#06x}, not zero")]
    Reserved(u16),
}

/// Why bytes on disk are not a valid record: the log is torn or corrupt from here on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The buffer ends inside the record (a torn write).
    #[error("short record: {needed} bytes needed, {available} present")]
    Truncated {
        /// Bytes the record needs.
        needed: usize,
        /// Bytes that are there.
        available: usize,
    },
    /// The length field exceeds [`MAX_PAYLOAD`].
    #[error("record length {0} exceeds the limit of {MAX_PAYLOAD}")]
    TooLong(u32),
    /// The checksum does not match.
    #[error("CRC-32C mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    BadCrc {
        /// CRC in the record.
        stored: u32,
        /// CRC of the bytes read.
        computed: u32,
    },
    /// An unknown type byte (with a valid CRC).
    #[error("unknown record type {0}")]
    UnknownType(u8),
    /// A payload that does not follow its type's layout (with a valid CRC).
    #[error("malformed payload: {0}")]
    BadPayload(&'static str),
}

/// The header of segment `seq`.
pub fn encode_header(seq: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    let parts: [&[u8]; 4] = [&MAGIC, &VERSION.to_le_bytes(), &[0, 0], &seq.to_le_bytes()];
    let mut at = 0;
    for part in parts {
        if let Some(dst) = h.get_mut(at..at + part.len()) {
            dst.copy_from_slice(part);
        }
        at += part.len();
    }
    h
}

/// The sequence number in a segment header.
pub fn decode_header(buf: &[u8]) -> Result<u64, HeaderError> {
    decode_header_version(buf).map(|(_, seq)| seq)
}

/// The format version and sequence number in a segment header.
pub fn decode_header_version(buf: &[u8]) -> Result<(u16, u64), HeaderError> {
    let short = HeaderError::Short(buf.len().min(HEADER_LEN));
    if buf.get(..8).ok_or(short)? != MAGIC {
        return Err(HeaderError::BadMagic);
    }
    let version = le_u16(buf, 8).ok_or(short)?;
    if !(OLDEST_VERSION..=VERSION).contains(&version) {
        return Err(HeaderError::UnsupportedVersion(version));
    }
    let reserved = le_u16(buf, 10).ok_or(short)?;
    if reserved != 0 {
        return Err(HeaderError::Reserved(reserved));
    }
    Ok((version, le_u64(buf, 12).ok_or(short)?))
}

/// Checks a node id: non-empty and at most [`MAX_ID`] bytes.
pub fn check_id(id: &str) -> Result<(), RecordError> {
    match id.len() {
        0 => Err(RecordError::EmptyId),
        n if n > MAX_ID => Err(RecordError::IdTooLong(n)),
        _ => Ok(()),
    }
}

/// Checks snapshot entries: at most [`MAX_ENTRIES`], every id valid.
pub fn check_entries(entries: &[(String, u64, u64)]) -> Result<(), RecordError> {
    if entries.len() > MAX_ENTRIES {
        return Err(RecordError::TooManyEntries(entries.len()));
    }
    entries.iter().try_for_each(|(id, _, _)| check_id(id))
}

/// Appends `record`, framed (length, CRC-32C, type, payload), to `out`.
pub fn encode(out: &mut Vec<u8>, record: &Record) -> Result<(), RecordError> {
    match record {
        Record::Local { id, inc, dec } => encode_local(out, id, *inc, *dec),
        Record::Snapshot { entries } => encode_snapshot(out, entries),
    }
}

/// Appends a framed [`Record::Snapshot`] of `entries` (any order, ids unique) without
/// building a `Record`. Version 2 stores them ascending.
pub fn encode_snapshot(
    out: &mut Vec<u8>,
    entries: &[(String, u64, u64)],
) -> Result<(), RecordError> {
    check_entries(entries)?;
    let mut sorted: Vec<&(String, u64, u64)> = entries.iter().collect();
    sorted.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    if let Some(w) = sorted
        .windows(2)
        .find(|w| w.first().map(|a| &a.0) == w.get(1).map(|b| &b.0))
    {
        let id = w.first().map(|e| e.0.clone()).unwrap_or_default();
        return Err(RecordError::DuplicateId(id));
    }
    let iter = sorted
        .iter()
        .map(|(id, inc, dec)| (id.as_str(), *inc, *dec));
    frame(out, |o| {
        tally_core::store::encode_snapshot(o, iter, core::iter::empty())
    })
}

/// Appends a framed [`Record::Local`] without building a `Record` (the hot path).
pub fn encode_local(out: &mut Vec<u8>, id: &str, inc: u64, dec: u64) -> Result<(), RecordError> {
    check_id(id)?;
    frame(out, |o| tally_core::store::encode_local(o, id, inc, dec))
}

/// Appends a record body the core's codec produced (type byte and payload), framed.
pub fn encode_body(out: &mut Vec<u8>, body: &[u8]) -> Result<(), RecordError> {
    if body.is_empty() {
        return Err(RecordError::NotARecord("empty"));
    }
    if body.len() > MAX_PAYLOAD {
        return Err(RecordError::NotARecord("larger than the record limit"));
    }
    frame(out, |o| {
        o.extend_from_slice(body);
        Ok(())
    })
}

/// Frames what `body` appends (type byte and payload): length and CRC-32C in front. On error
/// `out` is left as it was.
fn frame(
    out: &mut Vec<u8>,
    body: impl FnOnce(&mut Vec<u8>) -> Result<(), tally_core::store::EncodeError>,
) -> Result<(), RecordError> {
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    if let Err(e) = body(out) {
        out.truncate(start);
        return Err(match e {
            tally_core::store::EncodeError::TooManyEntries => {
                RecordError::TooManyEntries(MAX_ENTRIES + 1)
            }
            _ => RecordError::NotARecord("bad id"),
        });
    }
    let body = out.get(start + 8..).unwrap_or_default();
    let crc = crc32c::crc32c(body);
    // Payloads are bounded by the limits checked before (< 18 MiB < MAX_PAYLOAD).
    let len = u32::try_from(body.len().saturating_sub(1)).unwrap_or(u32::MAX);
    if let Some(h) = out.get_mut(start..start + 8) {
        let (len_field, crc_field) = h.split_at_mut(4);
        len_field.copy_from_slice(&len.to_le_bytes());
        crc_field.copy_from_slice(&crc.to_le_bytes());
    }
    Ok(())
}

/// The total size (header included) of the record at the start of `buf`, from its length field
/// alone, or `None` if `buf` is shorter than a length field.
pub fn framed_len(buf: &[u8]) -> Option<usize> {
    Some(RECORD_HEADER_LEN + usize::try_from(le_u32(buf, 0)?).ok()?)
}

/// Decodes the record at the start of `buf` in the current format version; returns it and
/// its total size.
pub fn decode(buf: &[u8]) -> Result<(RecordRef<'_>, usize), DecodeError> {
    decode_in(VERSION, buf)
}

/// Decodes the record at the start of `buf`, read from a segment of format `version`.
pub fn decode_in(version: u16, buf: &[u8]) -> Result<(RecordRef<'_>, usize), DecodeError> {
    use tally_core::store::{self, DecodeError as Core, Record as CoreRecord};
    let truncated = |needed| DecodeError::Truncated {
        needed,
        available: buf.len(),
    };
    let (Some(len), Some(stored)) = (le_u32(buf, 0), le_u32(buf, 4)) else {
        return Err(truncated(RECORD_HEADER_LEN));
    };
    let payload_len = usize::try_from(len).map_err(|_| DecodeError::TooLong(len))?;
    if payload_len > MAX_PAYLOAD {
        return Err(DecodeError::TooLong(len));
    }
    let total = RECORD_HEADER_LEN + payload_len;
    let body = buf.get(8..total).ok_or(truncated(total))?;
    let computed = crc32c::crc32c(body);
    if computed != stored {
        return Err(DecodeError::BadCrc { stored, computed });
    }
    let version = u8::try_from(version).unwrap_or(u8::MAX);
    let record = store::decode(version, body).map_err(|e| match e {
        Core::UnknownType(t) => DecodeError::UnknownType(t),
        Core::EmptyId => DecodeError::BadPayload("empty node id"),
        Core::TrailingBytes => DecodeError::BadPayload("trailing bytes"),
        Core::InvalidUtf8 => DecodeError::BadPayload("node id is not UTF-8"),
        Core::TooManyEntries => DecodeError::BadPayload("more than 65,536 entries"),
        Core::Unordered => DecodeError::BadPayload("snapshot ids out of order or repeated"),
        Core::BadName => DecodeError::BadPayload("not a counter name"),
        Core::BadFloor => DecodeError::BadPayload("a named cell's floor is above its total"),
        Core::UnsupportedVersion(_) => DecodeError::BadPayload("unsupported version"),
        _ => DecodeError::BadPayload("payload ends early"),
    })?;
    let record = match record {
        CoreRecord::Local { id, inc, dec } => RecordRef::Local { id, inc, dec },
        CoreRecord::Snapshot(entries, cells) => {
            RecordRef::Snapshot(entries.collect(), cells.collect())
        }
        CoreRecord::NamedLocal { name, id, inc, dec } => {
            RecordRef::NamedLocal { name, id, inc, dec }
        }
        CoreRecord::Identity(id) => RecordRef::Identity(id),
    };
    Ok((record, total))
}

fn le_u16(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(buf.get(at..at + 2)?.try_into().ok()?))
}

fn le_u32(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(buf.get(at..at + 4)?.try_into().ok()?))
}

fn le_u64(buf: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(buf.get(at..at + 8)?.try_into().ok()?))
}
