//! [`Wal`]: opening (with recovery), appending, waiting, snapshots, statistics, closing.

use super::error::WalError;
use super::format::{check_entries, check_id, encode_body, encode_local, encode_snapshot, Record};
use super::policy::FsyncPolicy;
use super::recovery::recover;
use super::stats::WalStats;
use super::storage::{FsStorage, LockGuard, Storage, LOCK_FILE};
use super::writer::{Chunk, Pipeline, State, Writer};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Default segment size: 16 MiB.
pub const DEFAULT_SEGMENT_BYTES: u64 = 16 << 20;

/// Where and how the log is kept.
#[derive(Clone, Debug)]
pub struct WalConfig {
    /// Told of every fsync and batch (for metrics), if set.
    pub observer: Option<std::sync::Arc<dyn WalObserver>>,
    /// The data directory (created if missing).
    pub dir: PathBuf,
    /// Size at which a segment is closed and the next one started.
    pub segment_bytes: u64,
    /// When records are fsynced.
    pub fsync: FsyncPolicy,
}

/// Receives each fsync's duration and each batch's size, from the writer thread.
pub trait WalObserver: Send + Sync {
    /// One fsync took `took`.
    fn fsync(&self, took: std::time::Duration);
    /// One batch of `records` records was written.
    fn batch(&self, records: u64);
}

impl std::fmt::Debug for dyn WalObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WalObserver")
    }
}

impl WalConfig {
    /// Defaults (16 MiB segments, [`FsyncPolicy::Always`]) for `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            observer: None,
            dir: dir.into(),
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            fsync: FsyncPolicy::Always,
        }
    }

    /// Reports fsyncs and batches to `observer`.
    pub fn observer(mut self, observer: std::sync::Arc<dyn WalObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// With another segment size.
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes;
        self
    }

    /// With another fsync policy.
    pub fn fsync(mut self, policy: FsyncPolicy) -> Self {
        self.fsync = policy;
        self
    }
}

/// A named cell recovered from the log: counter name, entry id, totals.
pub type OwnedCell = (String, String, tally_core::named::Totals);

/// What [`Wal::open`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// The merged state, sorted by id: per id, the maximum of the snapshot's entry and every
    /// `Local` record after it.
    pub entries: Vec<(String, u64, u64)>,
    /// The named counters' cells `(name, id, totals)`, sorted by name then id: per cell, the
    /// maximum of the snapshot's and every `NamedLocal` record's after it.
    pub named: Vec<OwnedCell>,
    /// Valid records replayed (the snapshot counts as one).
    pub records: u64,
    /// Bytes cut off at the first torn or corrupt record (0 after a clean shutdown).
    pub dropped_bytes: u64,
    /// How long recovery took.
    pub elapsed: Duration,
}

/// The position of an appended record; [`Wal::wait`] on it returns once the record is durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticket(u64);

impl Ticket {
    /// The ticket of the record at position `seq` (as [`Ticket::seq`] gives it back).
    pub fn at(seq: u64) -> Ticket {
        Ticket(seq)
    }

    /// The record's position among all records appended since open (0-based).
    pub fn seq(self) -> u64 {
        self.0
    }
}

/// An open write-ahead log (see the [module docs](super)). `Send + Sync`: share it by
/// reference or `Arc`. Dropping it writes and fsyncs what is queued, then stops the writer.
#[derive(Debug)]
pub struct Wal {
    shared: Arc<Pipeline>,
    dir: PathBuf,
    policy: FsyncPolicy,
    writer: Mutex<Option<JoinHandle<()>>>,
    lock: Mutex<Option<LockGuard>>,
}

impl Wal {
    /// Opens (creating if needed) the log in `config.dir` on the real file system, recovers
    /// it, and starts the writer thread.
    pub fn open(config: WalConfig) -> Result<(Wal, Recovered), WalError> {
        Self::open_with(config, Arc::new(FsStorage))
    }

    /// [`Wal::open`] on another [`Storage`] (tests use [`SimStorage`](super::SimStorage)).
    pub fn open_with(
        config: WalConfig,
        storage: Arc<dyn Storage>,
    ) -> Result<(Wal, Recovered), WalError> {
        let dir = config.dir;
        let not_a_dir = |e: &io::Error| e.kind() == io::ErrorKind::NotADirectory;
        storage.create_dir_all(&dir).map_err(|e| {
            if not_a_dir(&e) {
                WalError::NotADirectory { dir: dir.clone() }
            } else {
                WalError::io("create data directory", &dir, e)
            }
        })?;
        let lock = storage.lock(&dir).map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock => WalError::Locked { dir: dir.clone() },
            _ if not_a_dir(&e) => WalError::NotADirectory { dir: dir.clone() },
            _ => WalError::io("lock data directory", &dir.join(LOCK_FILE), e),
        })?;
        let segment_bytes = config.segment_bytes.max(1);
        let opened = recover(&*storage, &dir, segment_bytes)?;
        let shared = Arc::new(Pipeline::default());
        let writer = Writer {
            shared: Arc::clone(&shared),
            storage,
            dir: dir.clone(),
            policy: config.fsync,
            segment_bytes,
            active: opened.active,
            live: opened.live,
            stats: WalStats::default(),
            dir_dirty: false,
            last_sync: Instant::now(),
            observer: config.observer.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("tally-wal".into())
            .spawn(move || writer.run())
            .map_err(|e| WalError::io("start the writer thread for", &dir, e))?;
        let wal = Wal {
            shared,
            dir,
            policy: config.fsync,
            writer: Mutex::new(Some(thread)),
            lock: Mutex::new(Some(lock)),
        };
        Ok((wal, opened.recovered))
    }

    /// Queues `record`, returning its ticket. Cheap: it does no I/O.
    pub fn append(&self, record: &Record) -> Result<Ticket, WalError> {
        match record {
            Record::Local { id, inc, dec } => self.append_local(id, *inc, *dec),
            Record::Snapshot { entries } => self.append_snapshot(entries),
        }
    }

    /// Queues a [`Record::Local`] (the node's own totals after a local change) without
    /// building a `Record`.
    pub fn append_local(&self, id: &str, inc: u64, dec: u64) -> Result<Ticket, WalError> {
        check_id(id)?;
        self.enqueue(|chunks| {
            if !matches!(chunks.last(), Some(Chunk::Records(_))) {
                chunks.push(Chunk::Records(Vec::with_capacity(1024)));
            }
            if let Some(Chunk::Records(buf)) = chunks.last_mut() {
                encode_local(buf, id, inc, dec)?;
            }
            Ok(())
        })
    }

    /// Queues a snapshot of the whole merged state; see [`Wal::snapshot`].
    pub fn append_snapshot(&self, entries: &[(String, u64, u64)]) -> Result<Ticket, WalError> {
        check_entries(entries)?;
        let mut buf = Vec::new();
        encode_snapshot(&mut buf, entries)?;
        self.enqueue(|chunks| {
            chunks.push(Chunk::Snapshot(buf));
            Ok(())
        })
    }

    /// Queues a record body from the core's codec ([`tally_core::Replica::poll_persist`]):
    /// a snapshot starts a new segment and compacts the log once durable, as
    /// [`Wal::append_snapshot`]; anything else is appended as [`Wal::append_local`] is.
    pub fn append_body(&self, snapshot: bool, body: &[u8]) -> Result<Ticket, WalError> {
        if snapshot {
            let mut buf = Vec::with_capacity(body.len() + 8);
            encode_body(&mut buf, body)?;
            return self.enqueue(|chunks| {
                chunks.push(Chunk::Snapshot(buf));
                Ok(())
            });
        }
        self.enqueue(|chunks| {
            if !matches!(chunks.last(), Some(Chunk::Records(_))) {
                chunks.push(Chunk::Records(Vec::with_capacity(1024)));
            }
            if let Some(Chunk::Records(buf)) = chunks.last_mut() {
                encode_body(buf, body)?;
            }
            Ok(())
        })
    }

    fn enqueue(
        &self,
        push: impl FnOnce(&mut Vec<Chunk>) -> Result<(), WalError>,
    ) -> Result<Ticket, WalError> {
        let (ticket, wake) = {
            let mut st = self.shared.lock();
            usable(&st)?;
            push(&mut st.chunks)?;
            let ticket = Ticket(st.next);
            st.next += 1;
            (ticket, st.writer_waiting)
        };
        if wake {
            self.shared.work.notify_one();
        }
        Ok(ticket)
    }

    /// Blocks until the ticket's record is acknowledged: fsynced under
    /// [`FsyncPolicy::Always`], written under the other policies. Once the log has failed,
    /// returns [`WalError::Failed`] — for every ticket, as the log's state is unknown.
    pub fn wait(&self, ticket: Ticket) -> Result<(), WalError> {
        let mut st = self.shared.lock();
        loop {
            if let Some(e) = &st.failed {
                return Err(WalError::Failed(Arc::clone(e)));
            }
            if st.durable > ticket.0 {
                return Ok(());
            }
            if st.stopped {
                return Err(WalError::Closed);
            }
            st = self
                .shared
                .done
                .wait(st)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    /// Writes a snapshot of the whole merged state (`(id, inc, dec)` per node) at the start of
    /// a new segment, makes it durable, then deletes every older segment. Returns once done.
    ///
    /// The snapshot must cover every record appended before it (take the entries and call
    /// this under the same lock as [`Wal::append_local`]): the older segments are deleted.
    pub fn snapshot(&self, entries: &[(String, u64, u64)]) -> Result<(), WalError> {
        let ticket = self.append_snapshot(entries)?;
        self.wait(ticket)
    }

    /// The writer's counters so far (updated after each batch).
    pub fn stats(&self) -> WalStats {
        self.shared.lock().stats.clone()
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The fsync policy.
    pub fn policy(&self) -> FsyncPolicy {
        self.policy
    }

    /// Writes and fsyncs everything queued, stops the writer and releases the directory;
    /// returns the error that failed the log, if any.
    pub fn close(self) -> Result<(), WalError> {
        self.shutdown()
    }

    /// [`Wal::close`] through a shared reference: later appends fail with
    /// [`WalError::Closed`]; a second call only reports the failure, if any.
    pub fn shutdown(&self) -> Result<(), WalError> {
        self.shared.lock().closing = true;
        self.shared.work.notify_all();
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = writer {
            if thread.join().is_err() {
                let mut st = self.shared.lock();
                st.stopped = true;
                st.failed.get_or_insert_with(|| {
                    Arc::new(WalError::io(
                        "run the writer thread for",
                        &self.dir,
                        io::Error::other("it panicked"),
                    ))
                });
            }
        }
        // The writer has stopped: nothing touches the directory any more.
        drop(self.lock.lock().unwrap_or_else(|p| p.into_inner()).take());
        match &self.shared.lock().failed {
            Some(e) => Err(WalError::Failed(Arc::clone(e))),
            None => Ok(()),
        }
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::debug!("WAL closed after a failure: {e}");
        }
    }
}

fn usable(st: &State) -> Result<(), WalError> {
    match &st.failed {
        Some(e) => Err(WalError::Failed(Arc::clone(e))),
        None if st.closing => Err(WalError::Closed),
        None => Ok(()),
    }
}
