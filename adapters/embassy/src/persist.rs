//! [`Persister`]: the side of a durable node that the task owning its store drives.
//!
//! The replica decides what to persist and in which order ([`tally_core::replica`]); the
//! persister hands those records out and, once the store reports one durable, commits the
//! local writes it carries. A volatile node never has anything to persist.

use crate::state::NodeState;
use embassy_sync::blocking_mutex::raw::RawMutex;
use tally_core::named::{MapStores, Unnamed};
use tally_core::replica::CommitError;
use tally_core::store::{EncodeError, Sink};
use tally_core::{PersistKind, Persisting};

/// The persistence side of a node: one per node, for the task that owns its store. Its loop:
///
/// ```ignore
/// loop {
///     persister.wait().await;
///     while let Some(p) = persister.poll(&mut sink)? {   // a record, in stream order
///         match flash.write(sink.written()).await {
///             Ok(()) => persister.persisted(p.seq),       // commits what it carries
///             Err(_) => persister.failed(p.seq, p.kind),
///         }
///     }
/// }
/// ```
pub struct Persister<
    'a,
    M: RawMutex,
    const N: usize = 32,
    const P: usize = 16,
    const L: usize = 64,
    Named: MapStores<L> = Unnamed,
> {
    pub(crate) node_state: &'a NodeState<M, N, P, L, Named>,
}

impl<M: RawMutex, const N: usize, const P: usize, const L: usize, Named: MapStores<L>>
    Persister<'_, M, N, P, L, Named>
{
    /// Waits until records wait in the persist stream (a prepared write, a snapshot due by
    /// the replica's policy, a fresh identity).
    pub async fn wait(&self) {
        while !self.node_state.replica(|r| r.wants_persist()) {
            self.node_state.persist.wait().await;
        }
    }

    /// Writes the next record into `sink` (the core's store codec) and says what it is;
    /// `None` when nothing waits. Persist records in the order they come. On `Err` nothing
    /// was taken (the sink is too small for it).
    pub fn poll(&mut self, sink: &mut impl Sink) -> Result<Option<Persisting>, EncodeError> {
        self.node_state.replica(|r| r.poll_persist(sink))
    }

    /// The record `seq`, and every record before it, is durable: the local writes it carries
    /// are committed (counted, gossiped and shown from now on).
    pub fn persisted(&mut self, seq: u64) {
        let committed = self.node_state.with(|i| {
            i.replica.persisted(seq);
            let mut committed = false;
            // Every write through `seq` is carried (records hold absolute totals, a later one
            // covers the writes before it). A write held back by an identity not yet durable
            // stays pending.
            while let Some(p) = i.pending.front().copied().filter(|p| p.seq <= seq) {
                match i.replica.commit(p) {
                    Ok(_) => committed = true,
                    Err(CommitError::IdentityNotPersisted) => break,
                    // Not a write of this replica: nothing to commit.
                    Err(_) => {}
                }
                i.pending.pop_front();
            }
            committed
        });
        if committed {
            self.node_state.wake.signal(());
        }
    }

    /// The record `seq` could not be persisted. The replica asks again for what it needs (a
    /// snapshot, the identity); writes waiting for a Local record stay prepared and are
    /// carried by a snapshot asked for now, so a later durable record commits them.
    pub fn failed(&mut self, seq: u64, kind: PersistKind) {
        self.node_state.with(|i| {
            i.replica.persist_failed(seq, kind);
            if !i.pending.is_empty() {
                let _ = i.replica.request_snapshot();
            }
        });
    }

    /// Prepared writes not yet durable.
    pub fn pending(&self) -> usize {
        self.node_state.with(|i| i.pending.len())
    }
}
