//! Durable writes: a node's increments go through the write-ahead log and are answered only
//! once their record is durable; snapshots compact the log; recovery restores the state before
//! the node serves; the node's entry id never goes backwards.
//!
//! ## Identity: a fresh incarnation, never a reused entry
//!
//! If a node's data were lost while its peers still held a higher entry for its id, its new
//! increments would be swallowed by the merge (per-entry max) until it caught up — and lost
//! forever if it never did. Tally makes that impossible: the entry a node counts under is
//! `ID#INCARNATION`, where the incarnation is 8 random hex digits created with the data
//! directory (the whole entry id is kept in the file `IDENTITY`, written and fsynced before the
//! first write, and reused by every later start, whatever its listen address) — and, without a
//! data directory, created anew at every start. A node that lost its data therefore counts under a
//! new entry; its old one stays in the cluster with everything it had (the value is exact).
//! The cost: one more entry per incarnation (each ≈ 30 bytes of state).

use crate::wal::{FsyncPolicy, Recovered, Ticket, Wal, WalConfig};
use anyhow::Context;
use rand::RngCore;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tally_std::{Node, NodeError};

/// The identity file in a data directory.
pub const IDENTITY_FILE: &str = "IDENTITY";

/// Why a write was not acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The total would overflow u64.
    #[error("the counter would overflow")]
    Overflow,
    /// The write could not be made durable: its outcome is unknown (as with a timeout).
    #[error("not durable: {0}")]
    NotDurable(String),
    /// The node is shutting down.
    #[error("node is shut down")]
    Shutdown,
}

fn new_incarnation() -> String {
    use rand::SeedableRng;
    let mut b = [0u8; 4];
    rand::rngs::SmallRng::from_os_rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A fresh incarnation for a node without a data directory (or with an empty one).
pub fn fresh_incarnation() -> String {
    new_incarnation()
}

/// The entry id stored in `dir` by an earlier start, if any.
pub fn stored_identity(dir: &Path) -> anyhow::Result<Option<String>> {
    let path = dir.join(IDENTITY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim().to_string();
            anyhow::ensure!(
                !id.is_empty() && id.len() <= 255 && id.contains('#'),
                "{} is corrupt: expected the node's entry id (ID#INCARNATION)",
                path.display()
            );
            Ok(Some(id))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Stores the entry id in `dir` durably (write, fsync, rename, fsync the directory), before
/// the node accepts its first write.
pub fn save_identity(dir: &Path, id: &str) -> anyhow::Result<()> {
    let path = dir.join(IDENTITY_FILE);
    let tmp = dir.join(format!("{IDENTITY_FILE}.tmp"));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(id.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().with_context(|| format!("writing {}", path.display()))?;
    tracing::info!(entry = %id, "new incarnation for an empty data directory");
    Ok(())
}

/// Saves the entry id unless `dir` already holds one.
pub fn save_identity_once(dir: &Path, id: &str) -> anyhow::Result<()> {
    match stored_identity(dir)? {
        Some(_) => Ok(()),
        None => save_identity(dir, id),
    }
}

/// Opens the log in `dir` and returns it with what it recovered.
pub fn open(
    dir: &Path,
    fsync: FsyncPolicy,
    observer: Arc<dyn crate::wal::WalObserver>,
) -> anyhow::Result<(Arc<Wal>, Recovered)> {
    let (wal, recovered) = Wal::open(WalConfig::new(dir).fsync(fsync).observer(observer))
        .with_context(|| format!("opening the write-ahead log in {}", dir.display()))?;
    tracing::info!(
        records = recovered.records,
        entries = recovered.entries.len(),
        dropped_bytes = recovered.dropped_bytes,
        ms = recovered.elapsed.as_secs_f64() * 1000.0,
        "recovered durable state"
    );
    Ok((Arc::new(wal), recovered))
}

/// Merges recovered entries into the node.
pub fn restore(node: &Node, recovered: &Recovered) {
    let mut entries: Vec<&(String, u64, u64)> = recovered.entries.iter().collect();
    entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    entries.dedup_by(|a, b| a.0 == b.0);
    node.with_engine(|e| {
        if let Err(err) = e.merge_state(entries.iter().map(|(id, i, d)| (id.as_str(), *i, *d))) {
            tracing::error!(error = %err, "recovered state could not be merged");
        }
    });
}

/// The write path: engine update and log record under the engine's lock, then wait for
/// durability outside it — without holding a thread per request: one waiter thread waits for
/// the newest ticket of everything pending and answers every request it covers.
#[derive(Clone)]
pub struct Writes {
    node: Arc<Node>,
    wal: Option<Arc<Wal>>,
    waiter: Option<std::sync::mpsc::Sender<Pending>>,
}

type Pending = (Ticket, tokio::sync::oneshot::Sender<Result<(), String>>);

/// Waits for the newest pending ticket (records become durable in order), then answers all
/// requests up to it. Ends when every `Writes` is dropped.
fn waiter(wal: Arc<Wal>, rx: std::sync::mpsc::Receiver<Pending>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        let newest = batch.iter().map(|(t, _)| *t).max();
        let result = match newest {
            Some(t) => wal.wait(t).map_err(|e| e.to_string()),
            None => Ok(()),
        };
        for (_, tx) in batch {
            let _ = tx.send(result.clone());
        }
    }
}

/// Which local operation.
#[derive(Clone, Copy, Debug)]
pub enum Op {
    /// Increment.
    Increment,
    /// Decrement.
    Decrement,
}

impl Writes {
    /// Writes to `node`, logged in `wal` when there is one.
    pub fn new(node: Arc<Node>, wal: Option<Arc<Wal>>) -> Self {
        let waiter = wal.as_ref().map(|wal| {
            let (tx, rx) = std::sync::mpsc::channel();
            let wal = Arc::clone(wal);
            std::thread::Builder::new()
                .name("tally-durable-wait".into())
                .spawn(move || waiter(wal, rx))
                .map(|_| tx)
        });
        let waiter = match waiter {
            Some(Ok(tx)) => Some(tx),
            Some(Err(e)) => {
                tracing::error!(error = %e, "cannot start the durability waiter: writes will fail");
                None
            }
            None => None,
        };
        Self { node, wal, waiter }
    }

    /// Applies `op` by `by`; returns the new value once the write is durable.
    pub async fn apply(&self, op: Op, by: u64) -> Result<i128, WriteError> {
        let Some(wal) = self.wal.clone() else {
            let r = match op {
                Op::Increment => self.node.increment(by),
                Op::Decrement => self.node.decrement(by),
            };
            return r.map_err(|e| match e {
                NodeError::Overflow => WriteError::Overflow,
                _ => WriteError::Shutdown,
            });
        };
        let (value, ticket) = self
            .node
            .with_engine(|e| -> Result<(i128, Ticket), WriteError> {
                let local = e.counter().local_entry();
                let (inc, dec) = match op {
                    Op::Increment => (
                        local.inc.checked_add(by).ok_or(WriteError::Overflow)?,
                        local.dec,
                    ),
                    Op::Decrement => (
                        local.inc,
                        local.dec.checked_add(by).ok_or(WriteError::Overflow)?,
                    ),
                };
                // The record first: if the log has failed, nothing changes.
                let ticket = wal
                    .append_local(local.id.as_str(), inc, dec)
                    .map_err(|err| WriteError::NotDurable(err.to_string()))?;
                let applied = match op {
                    Op::Increment => e.increment(by),
                    Op::Decrement => e.decrement(by),
                };
                applied.map_err(|_| WriteError::Overflow)?;
                Ok((e.value(), ticket))
            })?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let waiter = self
            .waiter
            .as_ref()
            .ok_or_else(|| WriteError::NotDurable("no durability waiter".into()))?;
        waiter
            .send((ticket, tx))
            .map_err(|_| WriteError::NotDurable("durability waiter stopped".into()))?;
        match rx.await {
            Ok(Ok(())) => Ok(value),
            Ok(Err(e)) => Err(WriteError::NotDurable(e)),
            Err(_) => Err(WriteError::NotDurable("durability waiter stopped".into())),
        }
    }
}

/// Snapshots the node's state into the log every `every` until `stop`, and once more at the end.
pub fn snapshot_loop(
    node: Arc<Node>,
    wal: Arc<Wal>,
    every: Duration,
    stop: tokio_util::sync::CancellationToken,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let snapshot = || {
            let entries: Vec<(String, u64, u64)> = node
                .state()
                .into_iter()
                .map(|e| (e.id, e.inc, e.dec))
                .collect();
            if let Err(e) = wal.snapshot(&entries) {
                tracing::error!(error = %e, "snapshot failed");
            }
        };
        let mut last = wal.stats().records;
        loop {
            let deadline = std::time::Instant::now() + every;
            while std::time::Instant::now() < deadline {
                if stop.is_cancelled() {
                    snapshot();
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let records = wal.stats().records;
            if records != last {
                snapshot();
                last = wal.stats().records;
            }
        }
    })
}
