//! Named counters on a [`Node`]: `node.counter("doors")?.increment(1)`.
//!
//! The core's replica holds them (`tally_core::named`); this file only takes the node's lock,
//! hands records to the journal and waits, as the default counter's write path does.

use crate::journal;
use crate::node::{Node, NodeError};
use tally_core::named::{CounterName, MapError};
use tally_core::replica::LocalOp;

/// A named counter of a node: a checked name and the node that holds it.
#[derive(Clone, Copy)]
pub struct NamedCounter<'n> {
    node: &'n Node,
    name: CounterName,
}

impl NamedCounter<'_> {
    /// The counter's name.
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// Adds `by` to this node's increments of the counter; returns its value once the write is
    /// committed (durable first, with a journal). A write of 0 creates nothing.
    pub fn increment(&self, by: u64) -> Result<i128, NodeError> {
        self.node
            .write_named(self.name.as_str(), LocalOp::Increment(by))
    }

    /// Adds `by` to this node's decrements of the counter; see [`NamedCounter::increment`].
    pub fn decrement(&self, by: u64) -> Result<i128, NodeError> {
        self.node
            .write_named(self.name.as_str(), LocalOp::Decrement(by))
    }

    /// Its value as this node knows it; `None` while it does not exist (or was removed).
    pub fn value(&self) -> Option<i128> {
        self.node.counter_value(self.name.as_str())
    }
}

impl Node {
    /// The named counter `name` (1–64 bytes of `[A-Za-z0-9._-]`); it exists once written.
    pub fn counter(&self, name: &str) -> Result<NamedCounter<'_>, NodeError> {
        let name = CounterName::new(name).map_err(|e| NodeError::Counter(MapError::BadName(e)))?;
        Ok(NamedCounter { node: self, name })
    }

    /// Every named counter that exists, with its value, sorted by name.
    pub fn counters(&self) -> Vec<(String, i128)> {
        let replica = self.state.replica();
        replica
            .named()
            .counters()
            .map(|(n, v)| (n.to_string(), v))
            .collect()
    }

    /// The value of named counter `name`, if it exists.
    pub fn counter_value(&self, name: &str) -> Option<i128> {
        self.state.replica().named_value(name)
    }

    /// Starts a write to named counter `name`; `done` gets its value once committed (see
    /// [`Node::submit`]).
    pub fn submit_named(
        &self,
        name: &str,
        op: LocalOp,
        done: Box<dyn FnOnce(Result<i128, NodeError>) + Send>,
    ) {
        self.submit_to(Some(name), op, done)
    }

    fn write_named(&self, name: &str, op: LocalOp) -> Result<i128, NodeError> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.submit_named(
            name,
            op,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        rx.recv().unwrap_or(Err(NodeError::Shutdown))
    }

    /// Removes named counter `name` as this node observed it (observed-remove: increments
    /// other nodes make concurrently survive). Returns false when it did not exist. With a
    /// journal, returns once the snapshot that carries the removal is durable.
    pub fn remove_counter(&self, name: &str) -> Result<bool, NodeError> {
        CounterName::new(name).map_err(|e| NodeError::Counter(MapError::BadName(e)))?;
        if self.state.is_shutting_down() {
            return Err(NodeError::Shutdown);
        }
        let ticket = {
            let mut replica = self.state.replica();
            let removed = replica
                .remove_named(name)
                .map_err(|e| NodeError::NotDurable(e.to_string()))?;
            if !removed {
                return Ok(false);
            }
            match &self.state.journal {
                Some(j) => journal::drain(&mut replica, &**j, &mut Vec::new())
                    .map_err(|e| NodeError::NotDurable(e.0))?
                    .map(|a| a.ticket),
                None => None,
            }
        };
        if let (Some(j), Some(t)) = (&self.state.journal, ticket) {
            j.wait(t).map_err(|e| NodeError::NotDurable(e.0))?;
        }
        self.state.local_committed();
        self.state.note_change();
        Ok(true)
    }
}
