//! # Write-ahead log: a node's durable state
//!
//! The promise: **a record whose [`Wal::wait`] returned `Ok` under [`FsyncPolicy::Always`]
//! survives `kill -9` and power loss**, and recovery never yields less than what was
//! acknowledged (nor more than what was appended).
//!
//! ```text
//! append(record) ──► queue ──► writer thread: one write + one fsync per batch ──► wake waiters
//!   (cheap, under the       (group commit)                                       wait(ticket) → Ok
//!    caller's own lock)
//! ```
//!
//! - [`Wal::append`] / [`Wal::append_local`] only encode the record into the queue and return a
//!   [`Ticket`]; they may be called while holding the lock that orders the caller's updates,
//!   and the log keeps that order.
//! - The writer thread takes everything queued, writes it (one `write` per segment touched),
//!   fsyncs once ([`FsyncPolicy`]) and acknowledges the whole batch; [`Wal::wait`] blocks until
//!   the ticket's record is acknowledged. Under load, batches grow with the number of waiting
//!   writers, so one fsync serves many increments.
//! - [`Wal::snapshot`] writes the whole merged state at the start of a new segment, makes it
//!   durable, then deletes every older segment: recovery reads one snapshot and what follows.
//!
//! ## Why `Local` records carry absolute totals
//!
//! The issue speaks of a log of increments ("deltas"). Each [`Record::Local`] carries the node's
//! own *totals after* the change instead (`inc`, `dec` as in the PN-Counter), and replay takes
//! the per-id maximum — the CRDT's own merge. This is the safer encoding of the same history:
//! replay is idempotent (a record replayed twice, or on top of a snapshot that already contains
//! it, counts once); no record depends on the ones before it, so the state after any prefix of
//! the log is exact; and snapshot, compaction and record order need no bookkeeping of "which
//! deltas are already in the snapshot". The increment itself is the difference between two
//! consecutive records.
//!
//! ## On-disk format (version 1)
//!
//! A data directory holds a `LOCK` file and segment files `wal-<seq>.log`, `<seq>` being 16
//! lowercase hex digits (`wal-000000000000001a.log`); sequence numbers are consecutive. All
//! integers are little-endian. A segment is a header followed by records.
//!
//! **Segment header** (20 bytes)
//!
//! | offset | size | field | value |
//! |---:|---:|---|---|
//! | 0 | 8 | magic | `TALLYWAL` (`54 41 4c 4c 59 57 41 4c`) |
//! | 8 | 2 | version | u16, `1` |
//! | 10 | 2 | reserved | u16, `0` (non-zero is corruption in version 1) |
//! | 12 | 8 | sequence | u64, the same number as in the file name |
//!
//! **Record** (9 + *n* bytes)
//!
//! | offset | size | field | value |
//! |---:|---:|---|---|
//! | 0 | 4 | length *n* | u32, payload bytes (type byte excluded), at most 64 MiB |
//! | 4 | 4 | crc | u32, CRC-32C (Castagnoli) of bytes 8 .. 9+*n*: type byte and payload |
//! | 8 | 1 | type | `1` = Local, `2` = Snapshot; anything else is corruption |
//! | 9 | *n* | payload | per type, below; it must be consumed exactly |
//!
//! **Entry** (17 + *k* bytes), the building block of both payloads
//!
//! | offset | size | field | value |
//! |---:|---:|---|---|
//! | 0 | 1 | *k* | id length, 1 ..= 255 |
//! | 1 | *k* | id | node id, UTF-8 |
//! | 1+*k* | 8 | inc | u64, total of increments |
//! | 9+*k* | 8 | dec | u64, total of decrements |
//!
//! - **Local** (type 1) payload: one entry, the node's own totals after a local change.
//! - **Snapshot** (type 2) payload: u32 entry count (at most 65,536), then that many entries:
//!   the whole merged counter. A snapshot is always the first record of its segment.
//!
//! Example: `Local { id: "a", inc: 3, dec: 0 }` is these 27 bytes (pinned by the test
//! `wal_format_example_bytes`, the CRC computed independently):
//!
//! ```text
//! 12 00 00 00  41 02 64 2c  01  01 61  03 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00
//! length 18    CRC-32C      type k "a" inc = 3                  dec = 0
//! ```
//!
//! **Versioning promise.** The version 1 layout above is frozen: any change of a field's
//! layout or meaning, and any new record type, comes with a new version number. A build reads
//! every version up to its own and writes new segments in its own; meeting a segment of a
//! newer version, it refuses to open the directory ([`WalError::UnsupportedVersion`]) and
//! never truncates or deletes that segment.
//!
//! ## Rotation, snapshots and compaction
//!
//! When the next record would take the active segment past `segment_bytes` (default 16 MiB;
//! a larger record gets a segment of its own), the writer fsyncs it and starts the next one.
//! A snapshot always starts a new segment; once it and the directory are fsynced, every older
//! segment is deleted and the directory fsynced again. The directory is fsynced after every
//! creation and deletion of a segment. Because a segment is fsynced before the next one is
//! created, only the newest segment can lose a tail in a crash: a segment that ends on a record
//! boundary is complete (segments carry no footer, so an older segment cut exactly at a
//! record boundary — by something other than a crash — would not be noticed).
//!
//! ## Recovery
//!
//! [`Wal::open`] loads the newest segment that starts with a valid snapshot (or the oldest
//! segment if none does), replays every valid record from there in sequence order, and stops
//! at the first torn or corrupt one: short record, length beyond the limit, CRC mismatch,
//! malformed payload, bad header, or a missing sequence number. It truncates the file there,
//! deletes every later segment (written after the tear, they cannot be trusted), fsyncs, logs
//! one `warn` line naming the file, the offset and the bytes dropped, and appends after it.
//! Segments older than the snapshot (an interrupted compaction) are deleted. The recovery time
//! is logged at `info`.
//!
//! Two things are refused before any file is touched: a segment of a newer format version
//! ([`WalError::UnsupportedVersion`]) and a segment numbered above
//! [`segment::MAX_SEQUENCE`] (2^63, [`WalError::SequenceOutOfRange`]): a log starts at 1 and
//! counts up by one, so only a corrupt or foreign directory holds one.
//!
//! ## Errors and the poisoned state
//!
//! A data directory that cannot be created, is not a directory, is read-only, is full, or is
//! not permitted fails [`Wal::open`] with a [`WalError`] naming the path and the cause (the
//! `LOCK` file is written and fsynced at open, which proves the directory takes writes). At
//! run time a failed write or fsync **poisons** the log: every later `append` and `wait`
//! returns [`WalError::Failed`]. It does not retry, because after a failed fsync the kernel may
//! have dropped the dirty pages and marked them clean: a retry can "succeed" without the data
//! ever reaching the disk, and what the file holds is unknown. Only recovery, which reads back
//! what is really there, can tell — so the node must stop taking writes and restart.
//!
//! A process holds the directory's `LOCK` file (`flock`) while it has the log open: a second
//! process (or a second `Wal` in the same one) gets [`WalError::Locked`].

mod error;
pub mod format;
mod handle;
mod policy;
mod recovery;
pub mod segment;
mod sim_storage;
mod stats;
mod storage;
mod writer;

pub use error::WalError;
pub use format::Record;
pub use handle::{
    OwnedCell, Recovered, Ticket, Wal, WalConfig, WalObserver, DEFAULT_SEGMENT_BYTES,
};
pub use policy::{FsyncPolicy, ParsePolicyError};
pub use sim_storage::SimStorage;
pub use stats::{WalStats, FSYNC_BUCKET_BOUNDS_MICROS};
pub use storage::{FsStorage, LockGuard, Storage, StorageFile, LOCK_FILE};
