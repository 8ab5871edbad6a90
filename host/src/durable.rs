//! Durable writes on hosts: the node's replica hands its records to the write-ahead log
//! ([`WalJournal`]), a write is answered only once its record is durable, merged state is
//! snapshotted through the same stream, and recovery restores the state before the node serves.
//!
//! ## Identity: a fresh incarnation, never a reused entry
//!
//! A node counts under `name#incarnation` ([`tally_core::Identity`]). The entry id is kept in
//! the file `IDENTITY` of the data directory, written and fsynced (with its directory) before
//! the first write is acknowledged: the replica hands a fresh identity out as the first record
//! of its persist stream. A later start resumes it only if the log held records — a data
//! directory whose log is empty (lost, or never written) gets a new incarnation, so a node
//! that lost its data can never count under an entry its peers hold higher. The old entry stays
//! in the cluster with everything it had (the value is exact); the cost is one more entry per
//! incarnation (each ≈ 30 bytes of state).

use crate::wal::{FsyncPolicy, Recovered, Ticket, Wal, WalConfig};
use anyhow::Context;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tally_std::{Journal, JournalError, LocalOp, Node, NodeError, PersistKind};

/// The identity file in a data directory.
pub const IDENTITY_FILE: &str = "IDENTITY";

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
    tracing::info!(entry = %id, "new incarnation stored");
    Ok(())
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

/// The entry id a node on `dir` resumes: the stored one, if the log held anything.
pub fn resumable_identity(dir: &Path, recovered: &Recovered) -> anyhow::Result<Option<String>> {
    let stored = stored_identity(dir)?;
    if stored.is_some() && recovered.records == 0 {
        tracing::warn!("the log is empty: counting under a new incarnation");
        return Ok(None);
    }
    Ok(stored)
}

/// The node's journal on a data directory: records go to the write-ahead log, a fresh
/// identity to the `IDENTITY` file.
pub struct WalJournal {
    wal: Arc<Wal>,
    dir: PathBuf,
}

/// The ticket of an identity record: written before `append` returns, so already durable.
const IDENTITY_TICKET: u64 = u64::MAX;

impl WalJournal {
    /// A journal over `wal`, keeping the identity in `dir`.
    pub fn new(wal: Arc<Wal>, dir: &Path) -> Self {
        Self {
            wal,
            dir: dir.to_path_buf(),
        }
    }
}

impl Journal for WalJournal {
    fn append(&self, kind: PersistKind, record: &[u8]) -> Result<u64, JournalError> {
        let fail = |e: &dyn std::fmt::Display| JournalError(e.to_string());
        match kind {
            PersistKind::Identity => {
                let version = tally_core::store::FORMAT_VERSION;
                match tally_core::store::decode(version, record) {
                    Ok(tally_core::store::Record::Identity(id)) => {
                        save_identity(&self.dir, id).map_err(|e| fail(&e))?;
                        Ok(IDENTITY_TICKET)
                    }
                    _ => Err(JournalError("not an identity record".into())),
                }
            }
            PersistKind::Snapshot => self
                .wal
                .append_body(true, record)
                .map(Ticket::seq)
                .map_err(|e| fail(&e)),
            _ => self
                .wal
                .append_body(false, record)
                .map(Ticket::seq)
                .map_err(|e| fail(&e)),
        }
    }

    fn wait(&self, ticket: u64) -> Result<(), JournalError> {
        if ticket == IDENTITY_TICKET {
            return Ok(());
        }
        self.wal
            .wait(Ticket::at(ticket))
            .map_err(|e| JournalError(e.to_string()))
    }

    fn close(&self) -> Result<(), JournalError> {
        self.wal.shutdown().map_err(|e| JournalError(e.to_string()))
    }
}

/// The write path for async callers: a local write, answered once committed (durable first,
/// when the node has a journal).
#[derive(Clone)]
pub struct Writes {
    node: Arc<Node>,
}

impl Writes {
    /// Writes to `node`.
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }

    /// Applies `op`; returns the new value once the write is committed, or why it was not
    /// acknowledged (the node's own errors: overflow, not durable, shut down).
    pub async fn apply(&self, op: LocalOp) -> Result<i128, NodeError> {
        self.apply_to(None, op).await
    }

    /// As [`Writes::apply`], to the named counter `counter` (`None`: the default counter).
    pub async fn apply_to(&self, counter: Option<&str>, op: LocalOp) -> Result<i128, NodeError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let done = Box::new(move |r| {
            let _ = tx.send(r);
        });
        match counter {
            Some(name) => self.node.submit_named(name, op, done),
            None => self.node.submit(op, done),
        }
        // A dropped answer comes from a node stopping with the write in hand, perhaps already
        // prepared and journaled: its outcome is unknown, not "nothing was written".
        rx.await.unwrap_or_else(|_| {
            Err(NodeError::NotDurable(
                "the node stopped before answering; the write may have been applied".into(),
            ))
        })
    }
}
