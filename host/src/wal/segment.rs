//! Segment files: their names, listing them, and the segment being appended to.

use super::error::WalError;
use super::format::{encode_header, HEADER_LEN};
use super::stats::WalStats;
use super::storage::{Storage, StorageFile};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The highest segment number recovery accepts (2^63). A log starts at 1 and counts up by one
/// per segment, so it would need 2^63 segments to pass this: a higher number means a corrupt
/// or foreign directory. Far below `u64::MAX`, the next segment can always be named.
pub const MAX_SEQUENCE: u64 = 1 << 63;

/// The file name of segment `seq`: `wal-` + 16 lowercase hex digits + `.log`.
pub fn segment_name(seq: u64) -> String {
    format!("wal-{seq:016x}.log")
}

/// The sequence number in a segment file name, or `None` for any other name.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("wal-")?.strip_suffix(".log")?;
    let lower_hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
    if hex.len() != 16 || !hex.chars().all(lower_hex) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// Sequence numbers of the segments in `dir`, ascending.
pub fn list_segments(storage: &dyn Storage, dir: &Path) -> Result<Vec<u64>, WalError> {
    let names = storage
        .list(dir)
        .map_err(|e| WalError::io("list data directory", dir, e))?;
    let mut seqs: Vec<u64> = names.iter().filter_map(|n| parse_segment_name(n)).collect();
    seqs.sort_unstable();
    Ok(seqs)
}

/// The segment the writer appends to.
#[derive(Debug)]
pub(crate) struct ActiveSegment {
    /// Its sequence number.
    pub seq: u64,
    /// Its path.
    pub path: PathBuf,
    /// Its length in bytes, header included.
    pub len: u64,
    /// Whether it holds bytes not yet fsynced.
    pub dirty: bool,
    file: Box<dyn StorageFile>,
}

impl ActiveSegment {
    /// Creates segment `seq` in `dir` and writes its header (neither the file nor its directory
    /// entry is synced yet).
    pub fn create(storage: &dyn Storage, dir: &Path, seq: u64) -> Result<Self, WalError> {
        let path = dir.join(segment_name(seq));
        let file = storage
            .create(&path)
            .map_err(|e| WalError::io("create segment", &path, e))?;
        let mut seg = Self {
            seq,
            path,
            len: 0,
            dirty: false,
            file,
        };
        seg.append(&encode_header(seq))?;
        Ok(seg)
    }

    /// Opens the existing segment `seq`, `len` bytes long, to append after it.
    pub fn reopen(storage: &dyn Storage, dir: &Path, seq: u64, len: u64) -> Result<Self, WalError> {
        let path = dir.join(segment_name(seq));
        let file = storage
            .open_append(&path)
            .map_err(|e| WalError::io("open segment", &path, e))?;
        Ok(Self {
            seq,
            path,
            len,
            dirty: false,
            file,
        })
    }

    /// Whether it holds any record (or only its header).
    pub fn has_records(&self) -> bool {
        self.len > HEADER_LEN as u64
    }

    /// Appends `bytes` in one write.
    pub fn append(&mut self, bytes: &[u8]) -> Result<(), WalError> {
        self.dirty = true;
        self.file
            .append(bytes)
            .map_err(|e| WalError::io("write segment", &self.path, e))?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Fsyncs it if it holds unsynced bytes, timing the fsync into `stats`.
    pub fn sync(&mut self, stats: &mut WalStats) -> Result<(), WalError> {
        if !self.dirty {
            return Ok(());
        }
        let start = Instant::now();
        self.file
            .sync()
            .map_err(|e| WalError::io("fsync segment", &self.path, e))?;
        stats.record_fsync(start.elapsed());
        self.dirty = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )]
    use super::*;

    #[test]
    fn wal_segment_names_round_trip() {
        for seq in [0, 1, 0xabc, u64::MAX] {
            let name = segment_name(seq);
            assert_eq!(name.len(), 24);
            assert_eq!(parse_segment_name(&name), Some(seq));
        }
        assert_eq!(segment_name(26), "wal-000000000000001a.log");
        for other in [
            "LOCK",
            "wal-1.log",
            "wal-000000000000001A.log",
            "wal-000000000000001a.tmp",
        ] {
            assert_eq!(parse_segment_name(other), None, "{other}");
        }
    }
}
