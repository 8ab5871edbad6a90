//! Group commit: appenders queue encoded records under a mutex; one writer thread takes the whole
//! queue, writes it (one write per segment it touches), fsyncs once per the policy, and then
//! acknowledges every record of the batch at once.

use super::error::WalError;
use super::format::framed_len;
use super::policy::FsyncPolicy;
use super::segment::{segment_name, ActiveSegment};
use super::stats::WalStats;
use super::storage::Storage;
use std::mem;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

/// Queued bytes: runs of records, and snapshots (each starts a new segment).
#[derive(Debug)]
pub(crate) enum Chunk {
    Records(Vec<u8>),
    Snapshot(Vec<u8>),
}

/// State shared by appenders, waiters and the writer.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub chunks: Vec<Chunk>,
    /// Ticket of the next record appended.
    pub next: u64,
    /// Every ticket below this is acknowledged (durable per the policy).
    pub durable: u64,
    /// The error that poisoned the log.
    pub failed: Option<Arc<WalError>>,
    /// Set by `close`: the writer drains the queue and stops.
    pub closing: bool,
    /// Set by the writer when it has stopped.
    pub stopped: bool,
    /// The writer sleeps on `work`: only then does an append need to signal it (a busy writer
    /// takes the queue when it comes back, so appends during a write cost no wake-up).
    pub writer_waiting: bool,
    pub stats: WalStats,
}

/// The mutex and the two condition variables.
#[derive(Debug, Default)]
pub(crate) struct Pipeline {
    pub state: Mutex<State>,
    /// Signalled when there is work for the writer.
    pub work: Condvar,
    /// Signalled when records are acknowledged or the log fails or stops.
    pub done: Condvar,
}

impl Pipeline {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; if something did, the state is still coherent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The writer thread's own state.
#[derive(Debug)]
pub(crate) struct Writer {
    pub shared: Arc<Pipeline>,
    pub storage: Arc<dyn Storage>,
    pub dir: PathBuf,
    pub policy: FsyncPolicy,
    pub segment_bytes: u64,
    pub active: ActiveSegment,
    /// Segments on disk, ascending.
    pub live: Vec<u64>,
    pub stats: WalStats,
    /// A segment was created and its directory entry is not yet synced.
    pub dir_dirty: bool,
    pub last_sync: Instant,
    /// Told of fsyncs and batches.
    pub observer: Option<Arc<dyn super::handle::WalObserver>>,
}

impl Writer {
    /// The thread's body: take batches until closed or failed.
    pub fn run(mut self) {
        while let Some((chunks, end, closing)) = self.next_batch() {
            match self.commit(chunks, closing) {
                Ok(()) => {
                    let mut st = self.shared.lock();
                    st.durable = end;
                    st.stats = self.stats.clone();
                }
                Err(e) => {
                    tracing::error!("WAL: {e}; the log is failed and refuses all writes");
                    let mut st = self.shared.lock();
                    st.failed = Some(Arc::new(e));
                    st.chunks.clear();
                    st.stats = self.stats.clone();
                    break;
                }
            }
            self.shared.done.notify_all();
            if closing {
                break;
            }
        }
        self.shared.lock().stopped = true;
        self.shared.done.notify_all();
    }

    /// Waits for work (or for an interval fsync to fall due) and takes the whole queue.
    /// Returns `None` when closed with nothing left to do.
    fn next_batch(&mut self) -> Option<(Vec<Chunk>, u64, bool)> {
        let mut st = self.shared.lock();
        loop {
            if st.failed.is_some() {
                return None;
            }
            if !st.chunks.is_empty() || st.closing {
                return Some((mem::take(&mut st.chunks), st.next, st.closing));
            }
            st.writer_waiting = true;
            st = match (self.policy, self.active.dirty) {
                (FsyncPolicy::Interval(every), true) => {
                    let due = self.last_sync + every;
                    let now = Instant::now();
                    if now >= due {
                        st.writer_waiting = false;
                        return Some((Vec::new(), st.next, false));
                    }
                    let (st, _) = self
                        .shared
                        .work
                        .wait_timeout(st, due - now)
                        .unwrap_or_else(PoisonError::into_inner);
                    st
                }
                _ => self
                    .shared
                    .work
                    .wait(st)
                    .unwrap_or_else(PoisonError::into_inner),
            };
            st.writer_waiting = false;
        }
    }

    /// Writes a batch and makes it as durable as the policy asks.
    fn commit(&mut self, chunks: Vec<Chunk>, closing: bool) -> Result<(), WalError> {
        let mut records = 0u64;
        let mut bytes = 0u64;
        let mut snapshot = None;
        for chunk in &chunks {
            match chunk {
                Chunk::Records(buf) => {
                    records += self.write_records(buf)?;
                    bytes += buf.len() as u64;
                }
                Chunk::Snapshot(buf) => {
                    self.rotate()?;
                    self.active.append(buf)?;
                    snapshot = Some(self.active.seq);
                    self.stats.snapshots += 1;
                    records += 1;
                    bytes += buf.len() as u64;
                }
            }
        }
        let sync_due = match self.policy {
            FsyncPolicy::Always => true,
            FsyncPolicy::Interval(every) => self.last_sync.elapsed() >= every,
            FsyncPolicy::Never => false,
        };
        if sync_due || closing || snapshot.is_some() {
            let before = (self.stats.fsyncs, self.stats.fsync_total);
            self.active.sync(&mut self.stats)?;
            self.last_sync = Instant::now();
            if let Some(o) = &self.observer {
                if self.stats.fsyncs > before.0 {
                    o.fsync(self.stats.fsync_total.saturating_sub(before.1));
                }
            }
        }
        if self.dir_dirty {
            self.sync_dir()?;
        }
        if let Some(seq) = snapshot {
            self.compact(seq)?;
        }
        if records > 0 {
            self.stats.record_batch(records, bytes);
            if let Some(o) = &self.observer {
                o.batch(records);
            }
        }
        Ok(())
    }

    /// Writes whole records, rotating when the next one would take the segment past
    /// `segment_bytes` (a record larger than that gets a segment of its own).
    fn write_records(&mut self, mut buf: &[u8]) -> Result<u64, WalError> {
        let mut count = 0u64;
        while !buf.is_empty() {
            let room = self.segment_bytes.saturating_sub(self.active.len);
            let mut take = 0usize;
            let mut n = 0u64;
            while let Some(rest) = buf.get(take..).filter(|r| !r.is_empty()) {
                let len = framed_len(rest).unwrap_or(rest.len()).min(rest.len());
                let fits = (take + len) as u64 <= room;
                if !fits && (take > 0 || self.active.has_records()) {
                    break;
                }
                take += len;
                n += 1;
            }
            if take == 0 {
                self.rotate()?;
                continue;
            }
            let (now, rest) = buf.split_at(take.min(buf.len()));
            self.active.append(now)?;
            count += n;
            buf = rest;
            if !buf.is_empty() {
                self.rotate()?;
            }
        }
        Ok(count)
    }

    /// Closes the active segment (fsyncing it) and starts the next one.
    fn rotate(&mut self) -> Result<(), WalError> {
        self.active.sync(&mut self.stats)?;
        let seq = self.active.seq.saturating_add(1);
        self.active = ActiveSegment::create(&*self.storage, &self.dir, seq)?;
        self.live.push(seq);
        self.dir_dirty = true;
        self.stats.segments_created += 1;
        Ok(())
    }

    /// Removes every segment older than the (durable) snapshot segment `seq`.
    fn compact(&mut self, seq: u64) -> Result<(), WalError> {
        let (old, keep): (Vec<u64>, Vec<u64>) = self.live.iter().partition(|&&s| s < seq);
        if old.is_empty() {
            return Ok(());
        }
        for s in &old {
            let path = self.dir.join(segment_name(*s));
            self.storage
                .remove(&path)
                .map_err(|e| WalError::io("remove compacted segment", &path, e))?;
            self.stats.segments_removed += 1;
        }
        self.live = keep;
        self.sync_dir()
    }

    fn sync_dir(&mut self) -> Result<(), WalError> {
        self.storage
            .sync_dir(&self.dir)
            .map_err(|e| WalError::io("fsync data directory", &self.dir, e))?;
        self.dir_dirty = false;
        Ok(())
    }
}
