//! Recovery at [`Wal::open`](super::Wal::open): find the newest segment that starts with a valid
//! snapshot, replay it and every segment after it, cut the log at the first torn or corrupt
//! record, finish any interrupted compaction, and pick the segment to append to.

use super::error::WalError;
use super::format::{
    decode_header_version, decode_in, DecodeError, HeaderError, RecordRef, HEADER_LEN, VERSION,
};
use super::segment::{list_segments, segment_name, ActiveSegment, MAX_SEQUENCE};
use super::storage::Storage;
use super::{OwnedCell, Recovered};
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;
use tally_core::named::Totals;

/// What recovery hands to the writer.
#[derive(Debug)]
pub(crate) struct Opened {
    pub recovered: Recovered,
    /// Sequence numbers of the segments on disk, ascending (the active one last).
    pub live: Vec<u64>,
    pub active: ActiveSegment,
}

/// Where and why the valid log ends.
struct Tear {
    /// Index into the loaded segments.
    index: usize,
    /// Offset in that segment of the first byte dropped.
    offset: usize,
    reason: String,
}

/// The merged state: per id, the maximum of every total seen; per named cell, likewise.
#[derive(Default)]
struct Merged(
    HashMap<String, (u64, u64)>,
    HashMap<(String, String), Totals>,
);

impl Merged {
    fn apply_cell(&mut self, name: &str, id: &str, t: Totals) {
        let cell = self.1.entry((name.to_owned(), id.to_owned())).or_default();
        cell.inc = cell.inc.max(t.inc);
        cell.dec = cell.dec.max(t.dec);
        cell.floor_inc = cell.floor_inc.max(t.floor_inc);
        cell.floor_dec = cell.floor_dec.max(t.floor_dec);
    }

    fn apply(&mut self, id: &str, inc: u64, dec: u64) {
        match self.0.get_mut(id) {
            Some(e) => *e = (e.0.max(inc), e.1.max(dec)),
            None => {
                self.0.insert(id.to_owned(), (inc, dec));
            }
        }
    }

    fn into_sorted(self) -> (Vec<(String, u64, u64)>, Vec<OwnedCell>) {
        let mut v: Vec<_> = self.0.into_iter().map(|(id, (i, d))| (id, i, d)).collect();
        v.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut cells: Vec<_> = self.1.into_iter().map(|((n, id), t)| (n, id, t)).collect();
        cells.sort_unstable_by(|a, b| {
            (a.0.as_bytes(), a.1.as_bytes()).cmp(&(b.0.as_bytes(), b.1.as_bytes()))
        });
        (v, cells)
    }
}

fn starts_with_snapshot(version: u16, buf: &[u8]) -> bool {
    matches!(
        buf.get(HEADER_LEN..).map(|b| decode_in(version, b)),
        Some(Ok((RecordRef::Snapshot(..), _)))
    )
}

/// Recovers the log in `dir` and opens the segment to append to.
pub(crate) fn recover(
    storage: &dyn Storage,
    dir: &Path,
    segment_bytes: u64,
) -> Result<Opened, WalError> {
    let started = Instant::now();
    let seqs = list_segments(storage, dir)?;
    // Refused before anything is read or changed: no log of ours gets there, and near
    // u64::MAX the next segment could not be named.
    if let Some(&seq) = seqs.last().filter(|&&s| s > MAX_SEQUENCE) {
        let path = dir.join(segment_name(seq));
        return Err(WalError::SequenceOutOfRange { path, seq });
    }

    // Newest first, until a segment that starts with a valid snapshot: it and what follows it
    // are the log; anything older is garbage an interrupted compaction left behind.
    let mut loaded: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut older: &[u64] = &[];
    for (i, &seq) in seqs.iter().enumerate().rev() {
        let path = dir.join(segment_name(seq));
        let buf = storage
            .read(&path)
            .map_err(|e| WalError::io("read segment", &path, e))?;
        let header = decode_header_version(&buf);
        if let Err(HeaderError::UnsupportedVersion(version)) = header {
            return Err(WalError::UnsupportedVersion { path, version });
        }
        let snapshot = matches!(header, Ok((v, s)) if s == seq && starts_with_snapshot(v, &buf));
        loaded.push((seq, buf));
        if snapshot {
            older = seqs.get(..i).unwrap_or_default();
            break;
        }
    }
    loaded.reverse();

    let mut merged = Merged::default();
    let (records, tear) = replay(&loaded, &mut merged);

    let mut dropped_bytes = 0u64;
    // Surviving segments and the length of the last one.
    let mut survivors = loaded.len();
    let mut last_len = loaded.last().map_or(0, |(_, buf)| buf.len());
    if let Some(tear) = tear {
        dropped_bytes = cut(storage, dir, &loaded, &tear)?;
        if tear.offset < HEADER_LEN {
            survivors = tear.index;
            last_len = tear
                .index
                .checked_sub(1)
                .and_then(|i| loaded.get(i))
                .map_or(0, |(_, buf)| buf.len());
        } else {
            survivors = tear.index + 1;
            last_len = tear.offset;
        }
    }
    for &seq in older {
        let path = dir.join(segment_name(seq));
        storage
            .remove(&path)
            .map_err(|e| WalError::io("remove compacted segment", &path, e))?;
    }
    if !older.is_empty() {
        sync_dir(storage, dir)?;
        tracing::info!(dir = %dir.display(), segments = older.len(), "WAL: finished an interrupted compaction");
    }

    let mut live: Vec<u64> = loaded.iter().take(survivors).map(|(s, _)| *s).collect();
    // A segment of an earlier version is never appended to: its header says how to read all
    // of it, and records of this version (a NamedLocal) would not be read back under it.
    let current = loaded
        .get(survivors.wrapping_sub(1))
        .is_some_and(|(_, buf)| matches!(decode_header_version(buf), Ok((v, _)) if v == VERSION));
    let active = match live.last() {
        Some(&seq) if (last_len as u64) < segment_bytes && current => {
            ActiveSegment::reopen(storage, dir, seq, last_len as u64)?
        }
        Some(&seq) => new_segment(storage, dir, seq.saturating_add(1), &mut live)?,
        None => {
            let seq = loaded.first().map_or(1, |(s, _)| *s);
            new_segment(storage, dir, seq, &mut live)?
        }
    };

    let (entries, named) = merged.into_sorted();
    let recovered = Recovered {
        entries,
        named,
        records,
        dropped_bytes,
        elapsed: started.elapsed(),
    };
    tracing::info!(
        dir = %dir.display(),
        records,
        entries = recovered.entries.len(),
        segments = live.len(),
        dropped_bytes,
        elapsed = ?recovered.elapsed,
        "WAL: recovered",
    );
    Ok(Opened {
        recovered,
        live,
        active,
    })
}

/// Replays the loaded segments in order into `merged`, up to the first torn or corrupt spot.
/// Returns the records replayed and where the log ends, if before the end of the last segment.
fn replay(loaded: &[(u64, Vec<u8>)], merged: &mut Merged) -> (u64, Option<Tear>) {
    let mut records = 0u64;
    let mut expected = loaded.first().map(|(seq, _)| *seq);
    for (index, (seq, buf)) in loaded.iter().enumerate() {
        let end = if Some(*seq) == expected {
            replay_segment(*seq, buf, merged, &mut records)
        } else {
            let missing = expected.unwrap_or_default();
            Err((0, format!("gap in the log (segment {missing} is missing)")))
        };
        if let Err((offset, reason)) = end {
            let tear = Tear {
                index,
                offset,
                reason,
            };
            return (records, Some(tear));
        }
        expected = seq.checked_add(1);
    }
    (records, None)
}

/// Replays one segment; on a torn or corrupt spot returns its offset and a description.
fn replay_segment(
    seq: u64,
    buf: &[u8],
    merged: &mut Merged,
    records: &mut u64,
) -> Result<(), (usize, String)> {
    let version = match decode_header_version(buf) {
        Ok((v, s)) if s == seq => v,
        Ok((_, s)) => return Err((0, format!("bad segment header (it names segment {s})"))),
        Err(e) => return Err((0, format!("bad segment header ({e})"))),
    };
    let mut at = HEADER_LEN;
    while let Some(rest) = buf.get(at..).filter(|r| !r.is_empty()) {
        let (record, n) = decode_in(version, rest).map_err(|e| (at, describe(&e)))?;
        match record {
            RecordRef::Local { id, inc, dec } => merged.apply(id, inc, dec),
            RecordRef::Snapshot(entries, cells) => {
                for (id, inc, dec) in entries {
                    merged.apply(id, inc, dec);
                }
                for (name, id, t) in cells {
                    merged.apply_cell(name, id, t);
                }
            }
            RecordRef::NamedLocal { name, id, inc, dec } => {
                let t = Totals {
                    inc,
                    dec,
                    ..Totals::default()
                };
                merged.apply_cell(name, id, t);
            }
            RecordRef::Identity(_) => {}
        }
        at += n;
        *records += 1;
    }
    Ok(())
}

fn describe(e: &DecodeError) -> String {
    match e {
        DecodeError::Truncated { .. } => format!("torn write ({e})"),
        _ => format!("corrupt record ({e})"),
    }
}

fn sync_dir(storage: &dyn Storage, dir: &Path) -> Result<(), WalError> {
    storage
        .sync_dir(dir)
        .map_err(|e| WalError::io("fsync data directory", dir, e))
}

fn new_segment(
    storage: &dyn Storage,
    dir: &Path,
    seq: u64,
    live: &mut Vec<u64>,
) -> Result<ActiveSegment, WalError> {
    let mut seg = ActiveSegment::create(storage, dir, seq)?;
    seg.sync(&mut Default::default())?;
    sync_dir(storage, dir)?;
    live.push(seq);
    Ok(seg)
}

/// Truncates the torn segment at the tear (removing it if its header is bad), removes every
/// later segment, syncs, and logs one warning. Returns the bytes dropped.
fn cut(
    storage: &dyn Storage,
    dir: &Path,
    loaded: &[(u64, Vec<u8>)],
    tear: &Tear,
) -> Result<u64, WalError> {
    let mut dropped = 0u64;
    let mut later = 0usize;
    let mut action = "removed the file";
    for (i, (seq, buf)) in loaded.iter().enumerate().skip(tear.index) {
        let path = dir.join(segment_name(*seq));
        if i == tear.index && tear.offset >= HEADER_LEN {
            storage
                .truncate(&path, tear.offset as u64)
                .map_err(|e| WalError::io("truncate torn segment", &path, e))?;
            dropped += buf.len().saturating_sub(tear.offset) as u64;
            action = "truncated the file there";
        } else {
            storage
                .remove(&path)
                .map_err(|e| WalError::io("remove untrusted segment", &path, e))?;
            dropped += buf.len() as u64;
            later += usize::from(i > tear.index);
        }
    }
    sync_dir(storage, dir)?;
    let file = loaded
        .get(tear.index)
        .map(|(seq, _)| dir.join(segment_name(*seq)))
        .unwrap_or_default();
    tracing::warn!(
        "WAL: {} in {} at offset {}: {}{}; dropping {} bytes, keeping every record before it",
        tear.reason,
        file.display(),
        tear.offset,
        action,
        if later > 0 {
            format!(" and removed {later} later segment(s)")
        } else {
            String::new()
        },
        dropped,
    );
    Ok(dropped)
}
