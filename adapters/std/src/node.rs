//! [`Node`]: a running Tally node on std TCP — the core's replica, and the threads that move
//! its bytes (listener, senders, driver) and, when durable, wait for its journal (committer).

use crate::config::NodeConfig;
use crate::datagram;
use crate::journal::{self, Committer, Done, JournalError, Pending};
use crate::listener;
use crate::sender::{Delivery, Senders};
use crate::state::{HostReplica, NodeState};
use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant as StdInstant};
use tally_core::membership::{lan_config, OVERHEAD};
use tally_core::replica::{Event, LocalOp, PrepareError};
use tally_core::{
    Identity, Incarnation, PeerSource, PeerState, ReplicaConfig, Stats, TransportStats,
};

/// Why a node could not start or an operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// Binding or spawning failed.
    #[error("cannot start node: {0}")]
    Io(#[from] std::io::Error),
    /// The name, entry id or advertised address is not valid.
    #[error("invalid node id or address {0:?}: {1}")]
    BadId(String, String),
    /// A static peer address is not `host:port`.
    #[error("invalid peer address {0:?}")]
    BadPeer(String),
    /// Restored state does not fit the counter.
    #[error("restored state refused: {0}")]
    BadState(String),
    /// A named-counter write or name refused (`bad_name`, `too_many_counters`, …: see
    /// [`MapError::name`](tally_core::named::MapError::name)); nothing changed.
    #[error("{0}")]
    Counter(tally_core::named::MapError),
    /// The local total would overflow `u64`.
    #[error("the counter would overflow")]
    Overflow,
    /// The write could not be made durable: its outcome is unknown (as with a timeout).
    #[error("not durable: {0}")]
    NotDurable(String),
    /// The node is shutting down.
    #[error("node is shut down")]
    Shutdown,
}

/// One peer as seen by a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    /// Gossip address.
    pub addr: String,
    /// Alive or down.
    pub state: PeerState,
    /// Static, discovered, or a sender of valid frames.
    pub source: PeerSource,
    /// Consecutive send failures.
    pub fails: u8,
    /// Milliseconds since a valid frame came from it, if one ever did.
    pub last_heard_ms_ago: Option<u64>,
}

/// One SWIM member as seen by a node (`docs/EXTENSIONS.md` §7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberInfo {
    /// Gossip address.
    pub addr: String,
    /// Generation: bumped each time it rejoined after the cluster declared it down.
    pub generation: u16,
    /// `alive`, `suspect` or `down`.
    pub state: &'static str,
}

/// One counter entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryInfo {
    /// Entry id.
    pub id: String,
    /// Its increments.
    pub inc: u64,
    /// Its decrements.
    pub dec: u64,
}

/// A running node. Dropping it shuts it down.
///
/// ```no_run
/// # fn main() -> Result<(), tally_std::NodeError> {
/// let config = tally_std::NodeConfig::new("127.0.0.1:9000".parse().unwrap())
///     .peers(["127.0.0.1:9001"]);
/// let node = tally_std::Node::start(config)?;
/// node.increment(1)?;
/// println!("{}", node.value());
/// # Ok(()) }
/// ```
pub struct Node {
    pub(crate) state: Arc<NodeState>,
    committer: Option<Committer>,
    local_addr: SocketAddr,
    threads: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl Node {
    /// Binds the gossip port, restores the configured state, persists a fresh identity (when
    /// durable), adds the static peers and starts the threads.
    pub fn start(config: NodeConfig) -> Result<Node, NodeError> {
        let listener = TcpListener::bind(config.listen)?;
        let local_addr = listener.local_addr()?;
        let advertise = config
            .advertise
            .clone()
            .unwrap_or_else(|| local_addr.to_string());
        let name = config.name.as_deref().unwrap_or(&advertise).to_owned();
        let bad = |s: &str, e: &dyn std::fmt::Display| NodeError::BadId(s.into(), e.to_string());
        let mut rng = SmallRng::from_os_rng();
        let (identity, incarnation) = Identity::resume_or_fresh(
            config.name.as_deref(),
            &advertise,
            config.resume.as_deref(),
            true,
            &mut rng,
        )
        .map_err(|e| bad(&name, &e))?;
        let replica_config = match config.journal {
            Some(_) => ReplicaConfig::durable(config.engine, config.snapshots),
            None => ReplicaConfig::volatile(config.engine),
        };
        let now = tally_core::Instant::ZERO;
        let mut replica = HostReplica::new(identity, incarnation, replica_config, now)
            .map_err(|_| bad(&name, &"no room"))?;
        // Datagrams beside the TCP port, when wanted and the port is free for UDP too.
        let udp = match config.max_datagram {
            0 => None,
            max => match datagram::bind(local_addr) {
                Ok(socket) => {
                    replica.set_max_datagram(max);
                    Some(socket)
                }
                Err(e) => {
                    tracing::warn!(addr = %local_addr, error = %e, "no datagram socket: TCP only");
                    None
                }
            },
        };
        replica
            .set_address(Some(&advertise))
            .map_err(|e| bad(&advertise, &e))?;
        if udp.is_some() && config.membership {
            let packet = usize::from(config.max_datagram).saturating_sub(OVERHEAD);
            if let Err(e) = replica.enable_membership(lan_config(packet), rng.next_u64(), now) {
                tracing::warn!(error = %e, "no membership");
            }
        }
        restore(&mut replica, &config.restore)?;
        replica
            .restore_named(
                config
                    .restore_named
                    .iter()
                    .map(|(n, id, t)| (n.as_str(), id.as_str(), *t)),
            )
            .map_err(|e| NodeError::BadState(e.to_string()))?;
        for p in &config.peers {
            replica
                .add_peer(p, PeerSource::Static, now)
                .map_err(|_| NodeError::BadPeer(p.clone()))?;
        }
        let state = Arc::new(NodeState::new(
            replica,
            StdInstant::now(),
            config.journal.clone(),
        ));
        if incarnation == Incarnation::Fresh {
            persist_identity(&state)?;
        }
        let mut threads = listener::spawn(
            listener,
            Arc::clone(&state),
            config.workers,
            config.backlog,
            config.read_timeout,
        )?;
        if let Some(socket) = &udp {
            threads.push(datagram::spawn(Arc::clone(socket), Arc::clone(&state))?);
        }
        let (senders, send_threads) = Senders::spawn(
            &state,
            config.senders,
            config.send_queue,
            config.connect_timeout,
            udp,
        )?;
        threads.extend(send_threads);
        let committer = match &config.journal {
            Some(j) => {
                let (c, t) = Committer::spawn(&state, Arc::clone(j))?;
                threads.push(t);
                Some(c)
            }
            None => None,
        };
        let s = Arc::clone(&state);
        threads.push(
            std::thread::Builder::new()
                .name("tally-driver".into())
                .spawn(move || drive(&s, &senders))?,
        );
        tracing::info!(
            id = %identity.entry_id(),
            addr = %advertise,
            peers = config.peers.len(),
            durable = committer.is_some(),
            "node started"
        );
        Ok(Node {
            state,
            committer,
            local_addr,
            threads: std::sync::Mutex::new(threads),
        })
    }

    /// The bound gossip address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The entry id this node counts under (`name#incarnation`).
    pub fn id(&self) -> String {
        self.state.replica().id().to_string()
    }

    /// Adds `by` to this node's increments; returns the new value once the write is committed
    /// (durable first, with a journal). Blocks for the journal's fsync.
    pub fn increment(&self, by: u64) -> Result<i128, NodeError> {
        self.write_blocking(LocalOp::Increment(by))
    }

    /// Adds `by` to this node's decrements; see [`Node::increment`].
    pub fn decrement(&self, by: u64) -> Result<i128, NodeError> {
        self.write_blocking(LocalOp::Decrement(by))
    }

    fn write_blocking(&self, op: LocalOp) -> Result<i128, NodeError> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.submit(
            op,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        rx.recv().unwrap_or(Err(NodeError::Shutdown))
    }

    /// Starts a local write and returns at once; `done` gets the value once the write is
    /// committed (after its record is durable, with a journal) or the reason it was not. This
    /// is the non-blocking path for async callers: `done` runs on the node's committer thread.
    pub fn submit(&self, op: LocalOp, done: Box<dyn FnOnce(Result<i128, NodeError>) + Send>) {
        self.submit_to(None, op, done)
    }

    /// As [`Node::submit`], to the named counter `counter` (`None`: the default counter).
    pub(crate) fn submit_to(
        &self,
        counter: Option<&str>,
        op: LocalOp,
        done: Box<dyn FnOnce(Result<i128, NodeError>) + Send>,
    ) {
        if self.state.is_shutting_down() {
            return done(Err(NodeError::Shutdown));
        }
        let prepared = {
            let mut replica = self.state.replica();
            let Some(journal) = &self.state.journal else {
                let r = match counter {
                    Some(name) => replica.apply_named(name, op),
                    None => replica.apply(op),
                };
                let r = r.map_err(prepare_error);
                drop(replica);
                if r.is_ok() {
                    self.state.local_committed();
                }
                return done(r);
            };
            let prepared = match counter {
                Some(name) => replica.prepare_named(name, op),
                None => replica.prepare(op),
            };
            let prepared = match prepared {
                Ok(p) => p,
                Err(e) => return done(Err(prepare_error(e))),
            };
            // The record goes to the journal under the same lock as the prepare: the journal
            // sees records in stream order.
            let mut buf = Vec::with_capacity(64);
            match journal::drain(&mut replica, &**journal, &mut buf) {
                Ok(Some(a)) => (prepared, a.ticket),
                Ok(None) => return done(Err(NodeError::NotDurable("no record".into()))),
                Err(e) => return done(Err(NodeError::NotDurable(e.0))),
            }
        };
        let Some(committer) = &self.committer else {
            return done(Err(NodeError::NotDurable("no committer".into())));
        };
        let done: Done = Box::new(move |r: Result<i128, JournalError>| {
            done(r.map_err(|e| NodeError::NotDurable(e.0)));
        });
        committer.submit(Pending {
            ticket: prepared.1,
            prepared: prepared.0,
            done,
        });
    }

    /// The cluster value as this node knows it (committed writes only).
    pub fn value(&self) -> i128 {
        self.state.replica().value()
    }

    /// This node's own committed (inc, dec) totals.
    pub fn local(&self) -> (u64, u64) {
        self.state.replica().local()
    }

    /// Every non-zero entry, sorted by id.
    pub fn state(&self) -> Vec<EntryInfo> {
        self.state
            .replica()
            .counter()
            .entries()
            .iter()
            .filter(|e| !e.is_zero())
            .map(|e| EntryInfo {
                id: e.id.to_string(),
                inc: e.inc,
                dec: e.dec,
            })
            .collect()
    }

    /// Memory the replica uses, in bytes.
    pub fn memory_bytes(&self) -> usize {
        self.state.replica().memory_bytes()
    }

    /// SWIM members (empty when membership is off), this node not included.
    pub fn members(&self) -> Vec<MemberInfo> {
        self.state
            .replica()
            .membership()
            .map(|m| {
                m.members()
                    .map(|v| MemberInfo {
                        addr: v.addr.to_string(),
                        generation: v.generation,
                        state: v.state,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether the value is complete: false while the cluster holds more entries than this
    /// node has room for (see `tally_core::Engine::is_complete`).
    pub fn is_complete(&self) -> bool {
        self.state.replica().is_complete()
    }

    /// Whether SWIM membership runs on this node.
    pub fn has_membership(&self) -> bool {
        self.state.replica().membership().is_some()
    }

    /// The peer table.
    pub fn peers(&self) -> Vec<PeerInfo> {
        let now = self.state.now();
        self.state
            .replica()
            .peers()
            .iter()
            .map(|p| PeerInfo {
                addr: p.addr.to_string(),
                state: p.state(),
                source: p.source,
                fails: p.fails,
                last_heard_ms_ago: p.last_heard.get().map(|t| (now - t).as_millis()),
            })
            .collect()
    }

    /// Adds a peer (e.g. from discovery). Returns true when it was new.
    pub fn add_peer(&self, addr: &str, source: PeerSource) -> Result<bool, NodeError> {
        let now = self.state.now();
        let added = self
            .state
            .replica()
            .add_peer(addr, source, now)
            .map_err(|_| NodeError::BadPeer(addr.to_string()))?;
        if added {
            tracing::info!(peer = addr, ?source, "peer added");
        }
        Ok(added)
    }

    /// Removes a peer.
    pub fn remove_peer(&self, addr: &str) -> bool {
        self.state.replica().remove_peer(addr)
    }

    /// What the gossip engine has done.
    pub fn stats(&self) -> Stats {
        self.state.replica().stats().clone()
    }

    /// What the transport has done.
    pub fn transport(&self) -> TransportStats {
        *self.state.replica().transport()
    }

    /// Waits until the value changes, or `timeout` passes; returns the value then.
    pub fn wait_changed(&self, timeout: Duration) -> i128 {
        let deadline = StdInstant::now() + timeout;
        self.state.change_waiters.fetch_add(1, Ordering::AcqRel);
        let mut n = self.state.changes.lock().unwrap_or_else(|p| p.into_inner());
        let start = *n;
        while *n == start && !self.state.is_shutting_down() {
            let left = deadline.saturating_duration_since(StdInstant::now());
            if left.is_zero() {
                break;
            }
            let (g, _) = self
                .state
                .changes_cv
                .wait_timeout(n, left)
                .unwrap_or_else(|p| p.into_inner());
            n = g;
        }
        drop(n);
        self.state.change_waiters.fetch_sub(1, Ordering::AcqRel);
        self.value()
    }

    /// Fault injection for tests: an isolated node drops every incoming connection and fails
    /// every send, as if its network were cut.
    pub fn set_isolated(&self, isolated: bool) {
        self.state.isolated.store(isolated, Ordering::Relaxed);
    }

    /// Stops every thread and closes the port; later operations fail with `Shutdown`. A
    /// durable node snapshots its state into the journal first. Blocks until the threads have
    /// finished (at most about one read timeout).
    pub fn shutdown(&self) {
        if self.state.shutdown.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(journal) = &self.state.journal {
            let last = {
                let mut replica = self.state.replica();
                let _ = replica.request_snapshot();
                journal::drain(&mut replica, &**journal, &mut Vec::new())
            };
            match last {
                Ok(Some(a)) => {
                    if let Err(e) = journal.wait(a.ticket) {
                        tracing::error!(error = %e, "final snapshot failed");
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "final snapshot failed"),
            }
        }
        self.state.kick();
        // Unblock the accept loop.
        let _ = TcpStream::connect_timeout(&self.local_addr, Duration::from_millis(200));
        let threads: Vec<_> = self
            .threads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .collect();
        for t in threads {
            if t.thread().name() == Some("tally-commit") {
                // The committer ends when its queue closes, with the node.
                continue;
            }
            let _ = t.join();
        }
        // Handles to the node may outlive it (an HTTP handler, a clone in a test): the
        // journal's store is released now, not when the last of them goes.
        if let Some(journal) = &self.state.journal {
            if let Err(e) = journal.close() {
                tracing::error!(error = %e, "closing the journal failed");
            }
        }
        tracing::info!(addr = %self.local_addr, "node stopped");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn prepare_error(e: PrepareError) -> NodeError {
    match e {
        PrepareError::Overflow => NodeError::Overflow,
        PrepareError::Named(e) => NodeError::Counter(e),
        other => NodeError::NotDurable(other.to_string()),
    }
}

/// Merges restored entries (any order) into the replica before it starts.
fn restore(replica: &mut HostReplica, entries: &[(String, u64, u64)]) -> Result<(), NodeError> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut sorted: Vec<&(String, u64, u64)> = entries.iter().collect();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    sorted.dedup_by(|a, b| a.0 == b.0);
    replica
        .restore(sorted.iter().map(|(id, i, d)| (id.as_str(), *i, *d)))
        .map_err(|e| NodeError::BadState(e.to_string()))?;
    Ok(())
}

/// Persists a fresh identity before the node takes any write.
fn persist_identity(state: &NodeState) -> Result<(), NodeError> {
    let Some(journal) = &state.journal else {
        return Ok(());
    };
    let mut replica = state.replica();
    let appended = journal::drain(&mut replica, &**journal, &mut Vec::new())
        .map_err(|e| NodeError::NotDurable(e.0))?;
    if let Some(a) = appended {
        journal
            .wait(a.ticket)
            .map_err(|e| NodeError::NotDurable(e.0))?;
        replica.persisted(a.seq);
    }
    Ok(())
}

/// The driver: runs due timers, hands queued records to the journal, drains transmits to the
/// senders and events to their listeners, then sleeps until the next timer or a kick.
fn drive(state: &NodeState, senders: &Senders) {
    let mut rng = SmallRng::from_os_rng();
    let mut buf = vec![0u8; (1 << 20) + 256];
    let mut record = Vec::new();
    while !state.is_shutting_down() {
        let mut out = Vec::new();
        let mut changed = false;
        let next = {
            let mut replica = state.replica();
            let now = state.now();
            if replica.poll_timeout().is_some_and(|t| t <= now) {
                replica.handle_timeout(now, &mut rng);
            }
            if let Some(journal) = &state.journal {
                if let Err(e) = journal::drain(&mut replica, &**journal, &mut record) {
                    tracing::error!(error = %e, "the journal refused a record");
                }
            }
            while let Some(t) = replica.poll_transmit(now, &mut buf) {
                out.push(Delivery {
                    to: t.to.to_string(),
                    payload: buf.get(..t.len).unwrap_or_default().to_vec(),
                    datagram: t.datagram,
                });
            }
            while let Some(event) = replica.poll_event() {
                match event {
                    Event::Changed { .. } | Event::NamedChanged { .. } => changed = true,
                    Event::PeerUp(p) => tracing::info!(peer = %p, "peer up"),
                    Event::PeerDown(p) => tracing::info!(peer = %p, "peer down"),
                    Event::PeersSilent(n) => tracing::info!(peers = n, "peers silent"),
                    Event::CapacityExceeded(what) => {
                        tracing::warn!(?what, "capacity exceeded")
                    }
                }
            }
            replica.poll_timeout()
        };
        if changed {
            state.note_change();
        }
        for o in out {
            senders.send(o, state);
        }
        let deadline = next
            .map(|t| state.to_std(t))
            .unwrap_or_else(|| StdInstant::now() + Duration::from_secs(1));
        state.wait(deadline);
    }
}
