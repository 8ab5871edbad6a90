//! [`Journal`]: where a durable node's records go, and the commit pipeline that answers a
//! write only once its record is durable.
//!
//! The replica hands out records in stream order ([`tally_core::Replica::poll_persist`]); the
//! node appends them to the journal under its lock, so the journal sees them in that order.
//! A write waits outside the lock: one committer thread waits for the newest ticket of every
//! write pending, commits them all under one lock, and answers each.

use crate::state::{HostReplica, NodeState};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use tally_core::replica::{PersistKind, Prepared};

/// Why the journal could not take or keep a record. Once it fails, its state is unknown.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct JournalError(pub String);

/// A durable store for a node's records (the host's write-ahead log).
///
/// `record` is the core [`store`](tally_core::store) codec's bytes (type byte and payload).
pub trait Journal: Send + Sync {
    /// Queues `record` and returns its ticket (tickets grow with every append). Called under
    /// the node's lock, in stream order: queue, do not wait.
    fn append(&self, kind: PersistKind, record: &[u8]) -> Result<u64, JournalError>;
    /// Blocks until `ticket`'s record, and every one before it, is durable.
    fn wait(&self, ticket: u64) -> Result<(), JournalError>;
    /// Makes everything appended durable and releases the store (a WAL's directory lock), so
    /// another node may open it; later appends fail. The node calls it last in
    /// [`Node::shutdown`](crate::Node::shutdown). The default does nothing.
    fn close(&self) -> Result<(), JournalError> {
        Ok(())
    }
}

impl std::fmt::Debug for dyn Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Journal")
    }
}

/// The last record appended by [`drain`]: its ticket and stream position.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Appended {
    pub ticket: u64,
    pub seq: u64,
}

/// Appends every record the replica has queued, in order. Call under the replica's lock.
pub(crate) fn drain(
    replica: &mut HostReplica,
    journal: &dyn Journal,
    buf: &mut Vec<u8>,
) -> Result<Option<Appended>, JournalError> {
    let mut last = None;
    loop {
        buf.clear();
        let next = replica
            .poll_persist(buf)
            .map_err(|e| JournalError(e.to_string()))?;
        let Some(p) = next else { return Ok(last) };
        match journal.append(p.kind, buf) {
            Ok(ticket) => last = Some(Appended { ticket, seq: p.seq }),
            Err(e) => {
                replica.persist_failed(p.seq, p.kind);
                return Err(e);
            }
        }
    }
}

/// Answers a write: the value after it, or why it is not known to be durable.
pub(crate) type Done = Box<dyn FnOnce(Result<i128, JournalError>) + Send>;

pub(crate) struct Pending {
    pub ticket: u64,
    pub prepared: Prepared,
    pub done: Done,
}

/// The committer: the sending side of its queue.
pub(crate) struct Committer {
    tx: Sender<Pending>,
}

impl Committer {
    pub(crate) fn spawn(
        state: &Arc<NodeState>,
        journal: Arc<dyn Journal>,
    ) -> std::io::Result<(Self, std::thread::JoinHandle<()>)> {
        let (tx, rx) = channel();
        let state = Arc::clone(state);
        let thread = std::thread::Builder::new()
            .name("tally-commit".into())
            .spawn(move || run(&state, &*journal, &rx))?;
        Ok((Self { tx }, thread))
    }

    /// Queues a write for commit once durable; if the committer has stopped, answers it.
    pub(crate) fn submit(&self, pending: Pending) {
        if let Err(std::sync::mpsc::SendError(p)) = self.tx.send(pending) {
            (p.done)(Err(JournalError("node is shut down".into())));
        }
    }
}

/// Waits for the newest ticket pending (records become durable in order), commits every write
/// up to it under one lock, then answers them. Ends when the node drops its committer.
fn run(state: &NodeState, journal: &dyn Journal, rx: &Receiver<Pending>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        let newest = batch.iter().map(|p| p.ticket).max().unwrap_or(0);
        let result = match journal.wait(newest) {
            Ok(()) => {
                let mut replica = state.replica();
                let mut value = Ok(replica.value());
                for p in &batch {
                    value = replica
                        .commit(p.prepared)
                        .map_err(|e| JournalError(e.to_string()));
                }
                value
            }
            Err(e) => Err(e),
        };
        state.local_committed();
        for p in batch {
            (p.done)(result.clone());
        }
    }
}
