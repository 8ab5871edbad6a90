//! [`Replica`]: one Tally node, the same on a board and on a host — the gossip [`Engine`] with
//! the node's identity, its persistence protocol, its events and its transport counters.
//!
//! Adapters move bytes, arm timers and persist what the replica hands them; everything else
//! happens here, once.
//!
//! ## Call order (sans-IO, as `Engine`)
//!
//! - **Input**: [`Replica::ingest`] with what a read produced ([`Ingress`]): the §2 header is
//!   split, the frame handled, rejects counted.
//! - **Output**: [`Replica::poll_transmit`] until `None`, each result reported with
//!   [`Replica::on_delivered`] / [`Replica::on_send_failed`]; [`Replica::poll_timeout`] and
//!   [`Replica::handle_timeout`] for timers; [`Replica::poll_event`] for what happened.
//! - **Local writes** (raft-rs's `ready`/`advance` in small):
//!   1. [`Replica::prepare`] makes the record (the totals after the write; overflow is checked
//!      here, once) and changes nothing visible;
//!   2. [`Replica::poll_persist`] writes every queued record, in order, into the caller's sink —
//!      persist them in that order (a WAL append, a flash write);
//!   3. once a record is durable, [`Replica::commit`] applies the write: only now is it
//!      counted, gossiped and shown. A volatile replica ([`ReplicaConfig::durable`] false)
//!      queues nothing and may commit at once ([`Replica::apply`]).
//! - **Snapshots** of the merged state come through the same stream, on the
//!   [`SnapshotPolicy`]. A snapshot is encoded when it is polled and includes every write
//!   *prepared* so far, so it covers every record before it in the stream: a store may drop
//!   older records once it is durable. Persisting in stream order is all it takes — the
//!   "state captured, then a write logged, then an older snapshot written" race cannot happen.
//!
//! ## Before the network is up
//!
//! A replica has no address until [`Replica::set_address`]: it restores, counts, persists and
//! commits offline, and sends nothing. Setting a new address later (a new DHCP lease) changes
//! the §2 header of every later frame.

mod event;
mod identity;
mod input;
#[cfg(feature = "membership")]
mod membership;
mod persist;
mod transport;

pub use event::{Capacity, Cause, Event, EVENT_CAPACITY};
pub use identity::{Identity, Incarnation, INCARNATION_LEN};
#[cfg(feature = "membership")]
pub use membership::{MembershipUnavailable, ANNOUNCE_EVERY};
pub use persist::{
    CommitError, LocalOp, PersistKind, Persisting, PrepareError, Prepared, SnapshotPolicy,
    PERSIST_CAPACITY,
};
pub use transport::{Ingress, TransportStats, MAX_HEADER};

use crate::counter::{CounterError, Entry, PnCounter};
use crate::engine::{Config, Engine, PeerError, Stats, Transmit};
use crate::frame::is_gossip_address;
use crate::id::NodeId;
use crate::named::{
    merge_sorted_cells, CounterMap, CounterName, MapError, MapStores, NamedWrite, Totals, Unnamed,
};
use crate::peers::{Peer, PeerSource, PeerTable};
use crate::slots::{CapacityExceeded, Slots};
use crate::store::{self, EncodeError, Sink};
use crate::time::Instant;
use persist::{Queue, Request};

/// Settings of a replica.
#[derive(Clone, Copy, Debug)]
pub struct ReplicaConfig {
    /// The gossip engine's settings.
    pub engine: Config,
    /// Whether local writes go through the persist stream (a store is attached). A volatile
    /// replica queues nothing and commits at once.
    pub durable: bool,
    /// When merged state is snapshotted (durable replicas only).
    pub snapshots: SnapshotPolicy,
}

impl ReplicaConfig {
    /// A volatile replica with `engine` settings.
    pub fn volatile(engine: Config) -> Self {
        Self {
            engine,
            durable: false,
            snapshots: SnapshotPolicy::HOST,
        }
    }

    /// A durable replica with `engine` settings and `snapshots`.
    pub fn durable(engine: Config, snapshots: SnapshotPolicy) -> Self {
        Self {
            engine,
            durable: true,
            snapshots,
        }
    }
}

/// A node: engine, identity, persistence protocol, events. See the module docs for the call
/// order. Aliases: [`FixedReplica`], [`GrowableReplica`].
pub struct Replica<const L: usize, S, P, M: MapStores<L> = Unnamed> {
    engine: Engine<L, S, P, M>,
    /// Named writes prepared and not yet committed: the totals each one's record carries.
    named_writes: M::Writes,
    identity: Identity<L>,
    address: Option<NodeId<L>>,
    durable: bool,
    policy: SnapshotPolicy,
    /// Local totals of the last prepared write (never below the committed ones).
    prepared: (u64, u64),
    queue: Queue,
    /// Sequence number of a fresh identity not yet reported persisted.
    identity_pending: Option<u64>,
    snapshot_version: u32,
    /// A snapshot failed to persist: the next one is due whatever changed.
    snapshot_failed: bool,
    next_snapshot: Instant,
    events: event::Events<L>,
    transport: TransportStats,
    /// Boxed: a replica without membership pays one pointer for it.
    #[cfg(feature = "membership")]
    swim: Option<alloc::boxed::Box<membership::Swim<L>>>,
}

/// A replica on fixed stores: `N` entries, `P` peers, ids of at most `L` bytes, named counters
/// on `M` (none by default). No heap.
pub type FixedReplica<const N: usize, const P: usize, const L: usize, M = Unnamed> =
    Replica<L, heapless::Vec<Entry<L>, N>, heapless::Vec<Peer<L>, P>, M>;

/// A replica on growable heap stores (hosts), named counters included.
#[cfg(feature = "alloc")]
pub type GrowableReplica<const L: usize> = Replica<
    L,
    crate::slots::Growable<Entry<L>>,
    crate::slots::Growable<Peer<L>>,
    crate::named::GrowableStores,
>;

impl<const L: usize, S: Slots<Entry<L>>, P: Slots<Peer<L>>, M: MapStores<L>> Replica<L, S, P, M> {
    /// A replica counting under `identity`, without an address yet. A `Fresh` incarnation of a
    /// durable replica is the first record of its persist stream, and no local write commits
    /// before it is reported persisted.
    pub fn new(
        identity: Identity<L>,
        incarnation: Incarnation,
        config: ReplicaConfig,
        now: Instant,
    ) -> Result<Self, CapacityExceeded> {
        Self::with_stores(
            identity,
            incarnation,
            config,
            now,
            S::default(),
            P::default(),
        )
    }

    /// As [`Replica::new`], with explicit stores.
    pub fn with_stores(
        identity: Identity<L>,
        incarnation: Incarnation,
        config: ReplicaConfig,
        now: Instant,
        entries: S,
        peers: P,
    ) -> Result<Self, CapacityExceeded> {
        let id = *identity.entry_id();
        // Until an address is set the header address is the entry id, and nothing is sent.
        let engine = Engine::with_stores(id, id, config.engine, now, entries, peers)?;
        let mut queue = Queue::default();
        let identity_pending = match (config.durable, incarnation) {
            (true, Incarnation::Fresh) => Some(
                queue
                    .push(Request::Identity)
                    .map_err(|_| CapacityExceeded)?,
            ),
            _ => None,
        };
        Ok(Self {
            engine,
            named_writes: M::stores().3,
            identity,
            address: None,
            durable: config.durable,
            policy: config.snapshots,
            prepared: (0, 0),
            queue,
            identity_pending,
            snapshot_version: 0,
            snapshot_failed: false,
            next_snapshot: now + config.snapshots.interval,
            events: event::Events::default(),
            transport: TransportStats::default(),
            #[cfg(feature = "membership")]
            swim: None,
        })
    }

    // ----- identity and address -----

    /// The identity this node counts under.
    pub fn identity(&self) -> &Identity<L> {
        &self.identity
    }

    /// The entry id (`name#incarnation`).
    pub fn id(&self) -> &NodeId<L> {
        self.identity.entry_id()
    }

    /// The advertised gossip address, once the network is up.
    pub fn address(&self) -> Option<&NodeId<L>> {
        self.address.as_ref()
    }

    /// Sets (or, with `None`, clears) the address written in every later frame's §2 header.
    pub fn set_address(&mut self, addr: Option<&str>) -> Result<(), PeerError> {
        match addr {
            Some(a) => {
                if !is_gossip_address(a) {
                    return Err(PeerError::BadAddress);
                }
                let id = NodeId::new(a).map_err(|_| PeerError::BadAddress)?;
                self.engine.set_listen_addr(id);
                self.address = Some(id);
                // Peers added before the address was known may name the node itself (a
                // build-time list shared by every board): a node is not its own peer.
                self.engine.remove_peer(a);
                #[cfg(feature = "membership")]
                self.readdress_membership();
            }
            None => self.address = None,
        }
        Ok(())
    }

    // ----- state -----

    /// The cluster value as this node knows it (committed writes only).
    pub fn value(&self) -> i128 {
        self.engine.value()
    }

    /// The cluster value, only while it is complete: `None` while the cluster holds more
    /// entries than this node has room for and [`Replica::value`] is a partial sum (see
    /// [`Engine::is_complete`]). Show this, not `value`, as the cluster's value.
    pub fn cluster_value(&self) -> Option<i128> {
        self.engine.is_complete().then(|| self.engine.value())
    }

    /// Whether the value is complete (see [`Engine::is_complete`]).
    pub fn is_complete(&self) -> bool {
        self.engine.is_complete()
    }

    /// This node's committed (inc, dec) totals.
    pub fn local(&self) -> (u64, u64) {
        let e = self.engine.counter().local_entry();
        (e.inc, e.dec)
    }

    /// The counter.
    pub fn counter(&self) -> &PnCounter<L, S> {
        self.engine.counter()
    }

    /// The peer table.
    pub fn peers(&self) -> &PeerTable<L, P> {
        self.engine.peers()
    }

    /// The engine's settings.
    pub fn config(&self) -> &Config {
        self.engine.config()
    }

    /// What the gossip engine did.
    pub fn stats(&self) -> &Stats {
        self.engine.stats()
    }

    /// What the transport did.
    pub fn transport(&self) -> &TransportStats {
        &self.transport
    }

    /// Events dropped because nobody polled them.
    pub fn events_dropped(&self) -> u64 {
        self.events.dropped
    }

    /// Memory in use: the engine's and this wrapper's.
    pub fn memory_bytes(&self) -> usize {
        self.engine.memory_bytes() + core::mem::size_of::<Self>()
            - core::mem::size_of::<Engine<L, S, P, M>>()
            + self.named_writes.heap_bytes()
    }

    /// Merges state read back from a store (entries strictly ascending; the own entry
    /// included). Nothing is queued to persist: it came from there.
    pub fn restore<'i, I>(&mut self, entries: I) -> Result<bool, CounterError>
    where
        I: Iterator<Item = (&'i str, u64, u64)> + Clone,
    {
        let changed = self.engine.merge_state(entries)?;
        let (inc, dec) = self.local();
        self.prepared = (self.prepared.0.max(inc), self.prepared.1.max(dec));
        self.snapshot_version = self.engine.counter().version();
        if changed {
            self.events.push(Event::Changed {
                value: self.value(),
                cause: Cause::Merge,
            });
        }
        Ok(changed)
    }

    // ----- local writes -----

    /// Prepares a local write: checks overflow, queues its record (durable replicas) and
    /// returns it. Nothing is counted, sent or shown until [`Replica::commit`].
    pub fn prepare(&mut self, op: LocalOp) -> Result<Prepared, PrepareError> {
        let (inc, dec) = self.prepared;
        let (inc, dec) = match op {
            LocalOp::Increment(by) => (inc.checked_add(by).ok_or(PrepareError::Overflow)?, dec),
            LocalOp::Decrement(by) => (inc, dec.checked_add(by).ok_or(PrepareError::Overflow)?),
        };
        let seq = if self.durable {
            self.queue.push(Request::Local { inc, dec })?
        } else {
            0
        };
        self.prepared = (inc, dec);
        Ok(Prepared {
            seq,
            inc,
            dec,
            counter: None,
        })
    }

    /// Prepares a local write to the named counter `name`, as [`Replica::prepare`] does for the
    /// default counter. Refused with `PrepareError::Named` (changing nothing) for a bad name,
    /// or when the counter could not be held once committed (`too_many_counters`).
    pub fn prepare_named(&mut self, name: &str, op: LocalOp) -> Result<Prepared, PrepareError> {
        let counter =
            CounterName::new(name).map_err(|e| PrepareError::Named(MapError::BadName(e)))?;
        let pending = self.pending_named(name);
        let base = match pending {
            Some(i) => self
                .named_writes
                .as_slice()
                .get(i)
                .map(|w| (w.inc, w.dec))
                .unwrap_or_default(),
            None => {
                let t = self
                    .engine
                    .named()
                    .totals(name, self.identity.entry_id().as_str());
                (t.inc, t.dec)
            }
        };
        let (inc, dec) = match op {
            LocalOp::Increment(by) => (
                base.0.checked_add(by).ok_or(PrepareError::Overflow)?,
                base.1,
            ),
            LocalOp::Decrement(by) => (
                base.0,
                base.1.checked_add(by).ok_or(PrepareError::Overflow)?,
            ),
        };
        let slot = match pending {
            Some(i) => i,
            None => {
                // Every counter written and not yet committed, and this one, must fit at commit.
                let names = self.named_writes.as_slice().iter().map(|w| w.name.as_str());
                let own = self.identity.entry_id().as_str();
                self.engine
                    .named()
                    .room_for(names.chain(core::iter::once(name)), own)
                    .map_err(PrepareError::Named)?;
                let write = NamedWrite {
                    name: counter,
                    inc: base.0,
                    dec: base.1,
                };
                self.named_writes
                    .try_push(write)
                    .map_err(|_| PrepareError::Backlog)?;
                self.named_writes.len() - 1
            }
        };
        let seq = if self.durable {
            // The record names the slot; it is encoded from it when polled (with the totals
            // prepared by then, which cover this write).
            let request = Request::NamedLocal {
                slot: u16::try_from(slot).map_err(|_| PrepareError::Backlog)?,
            };
            match self.queue.push(request) {
                Ok(seq) => seq,
                Err(e) => {
                    self.compact_named_writes();
                    return Err(e);
                }
            }
        } else {
            0
        };
        if let Some(w) = self.named_writes.as_mut_slice().get_mut(slot) {
            (w.inc, w.dec) = (inc, dec);
        }
        Ok(Prepared {
            seq,
            inc,
            dec,
            counter: Some(counter),
        })
    }

    /// Drops prepared named writes that are committed (the committed totals caught up with
    /// them) — only while no queued record names a slot, so slots stay put for the records.
    fn compact_named_writes(&mut self) {
        if self.queue.has_named() {
            return;
        }
        let own = *self.identity.entry_id();
        let mut i = 0;
        while let Some(w) = self.named_writes.as_slice().get(i).copied() {
            let t = self.engine.named().totals(w.name.as_str(), own.as_str());
            if w.inc <= t.inc && w.dec <= t.dec {
                self.named_writes.remove(i);
            } else {
                i += 1;
            }
        }
    }

    /// Where the uncommitted write to `name` is kept, if there is one.
    fn pending_named(&self, name: &str) -> Option<usize> {
        self.named_writes
            .as_slice()
            .iter()
            .position(|w| w.name.as_str() == name)
    }

    /// Prepare and commit a named write at once, for a volatile replica.
    pub fn apply_named(&mut self, name: &str, op: LocalOp) -> Result<i128, PrepareError> {
        if self.durable {
            return Err(PrepareError::Backlog);
        }
        let p = self.prepare_named(name, op)?;
        self.commit(p).map_err(|_| PrepareError::Backlog)
    }

    /// Removes the named counter `name` as observed here (observed-remove: what other nodes
    /// add concurrently still counts). A durable replica queues a snapshot, which carries the
    /// removal: the removal is durable once that record is. Returns false when the counter was
    /// not shown (nothing changed, nothing queued).
    pub fn remove_named(&mut self, name: &str) -> Result<bool, PrepareError> {
        if self.durable && self.queue.is_full() && !self.queue.has_snapshot() {
            return Err(PrepareError::Backlog);
        }
        if !self.engine.remove_named(name) {
            return Ok(false);
        }
        self.events.push(Event::NamedChanged {
            cause: Cause::Local,
        });
        self.request_snapshot()?;
        Ok(true)
    }

    /// Reserves a place for named counter `name` before its first write (see
    /// [`CounterMap::reserve`]); nothing is persisted (a board reserves again at boot).
    pub fn reserve_named(&mut self, name: &str) -> Result<(), MapError> {
        self.engine.reserve_named(name)
    }

    /// The named counters (committed writes only).
    pub fn named(&self) -> &CounterMap<L, M> {
        self.engine.named()
    }

    /// The value of named counter `name`, `None` when it is not shown.
    pub fn named_value(&self, name: &str) -> Option<i128> {
        self.engine.named().value(name)
    }

    /// Merges named cells read back from a store (sorted by name then id). Nothing is queued
    /// to persist.
    pub fn restore_named<'i, I>(&mut self, cells: I) -> Result<bool, MapError>
    where
        I: Iterator<Item = (&'i str, &'i str, Totals)> + Clone,
    {
        let changed = self.engine.merge_named_state(cells)?;
        self.snapshot_version = self.engine.counter().version();
        if changed {
            self.events.push(Event::NamedChanged {
                cause: Cause::Merge,
            });
        }
        Ok(changed)
    }

    /// Commits a prepared write whose record (or a later one) is durable: the write is
    /// counted, gossiped and shown from now on. Returns the value.
    pub fn commit(&mut self, prepared: Prepared) -> Result<i128, CommitError> {
        if self.identity_pending.is_some() {
            return Err(CommitError::IdentityNotPersisted);
        }
        if self.durable && !self.queue.issued(prepared.seq) {
            return Err(CommitError::Unknown);
        }
        if let Some(name) = prepared.counter {
            return self.commit_named(name, prepared);
        }
        let raised = self
            .engine
            .raise_local(prepared.inc, prepared.dec)
            .map_err(|_| CommitError::Unknown)?;
        if raised {
            self.events.push(Event::Changed {
                value: self.value(),
                cause: Cause::Local,
            });
        }
        Ok(self.value())
    }

    fn commit_named(&mut self, name: CounterName, p: Prepared) -> Result<i128, CommitError> {
        let before = self.engine.named().clock();
        let value = self
            .engine
            .raise_named_local(name.as_str(), p.inc, p.dec)
            .map_err(|_| CommitError::Unknown)?;
        if self.engine.named().clock() != before {
            self.events.push(Event::NamedChanged {
                cause: Cause::Local,
            });
        }
        self.compact_named_writes();
        Ok(value)
    }

    /// Prepare and commit at once, for a volatile replica (a durable one refuses with
    /// `Backlog`: it must persist between the two).
    pub fn apply(&mut self, op: LocalOp) -> Result<i128, PrepareError> {
        if self.durable {
            return Err(PrepareError::Backlog);
        }
        let p = self.prepare(op)?;
        self.commit(p).map_err(|_| PrepareError::Backlog)
    }

    /// Whether local writes go through the persist stream ([`ReplicaConfig::durable`]): a
    /// durable replica commits a write only after its record is persisted.
    pub fn is_durable(&self) -> bool {
        self.durable
    }

    /// Whether records wait in the persist stream.
    pub fn wants_persist(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Writes the next record to persist into `sink` (the [`store`] codec: type byte and
    /// payload) and says what it is; `None` when nothing waits. Persist records in the order
    /// they come. On `Err` nothing was taken from the stream (give a larger sink).
    pub fn poll_persist(
        &mut self,
        sink: &mut impl Sink,
    ) -> Result<Option<Persisting>, EncodeError> {
        let Some((seq, request)) = self.queue.front() else {
            return Ok(None);
        };
        let kind = match request {
            Request::Identity => {
                store::encode_identity(sink, self.identity.entry_id().as_str())?;
                PersistKind::Identity
            }
            Request::Local { inc, dec } => {
                store::encode_local(sink, self.identity.entry_id().as_str(), inc, dec)?;
                PersistKind::Local
            }
            Request::NamedLocal { slot } => {
                let id = self.identity.entry_id().as_str();
                let w = self.named_writes.as_slice().get(usize::from(slot));
                // Slots stay put while a record names them: always there.
                let w = w.ok_or(EncodeError::BadName)?;
                store::encode_named_local(sink, w.name.as_str(), id, w.inc, w.dec)?;
                PersistKind::NamedLocal
            }
            Request::Snapshot => {
                self.encode_snapshot(sink)?;
                self.snapshot_version = self.engine.counter().version();
                PersistKind::Snapshot
            }
        };
        self.queue.pop();
        self.compact_named_writes();
        Ok(Some(Persisting { seq, kind }))
    }

    /// Encodes the whole state as a Snapshot record, the own entry (and own cells) at their
    /// *prepared* totals.
    pub fn encode_snapshot(&self, sink: &mut impl Sink) -> Result<(), EncodeError> {
        let own = self.identity.entry_id();
        let (pinc, pdec) = self.prepared;
        let entries = self.engine.counter().entries().iter().filter_map(move |e| {
            let (inc, dec) = if e.id == *own {
                (e.inc.max(pinc), e.dec.max(pdec))
            } else {
                (e.inc, e.dec)
            };
            (inc != 0 || dec != 0).then_some((e.id.as_str(), inc, dec))
        });
        let writes = self.named_writes.as_slice();
        let cells = self.engine.named().cells().map(move |(name, id, mut t)| {
            if id == own.as_str() {
                if let Some(w) = writes.iter().find(|w| w.name.as_str() == name) {
                    t.inc = t.inc.max(w.inc);
                    t.dec = t.dec.max(w.dec);
                }
            }
            (name, id, t)
        });
        // Prepared writes to counters this node has no cell in yet: their own cells, in order.
        let fresh = self.fresh_cells();
        store::encode_snapshot(sink, entries, merge_sorted_cells(cells, fresh))
    }

    /// Own cells of prepared writes that the map does not hold yet, sorted by name.
    fn fresh_cells(&self) -> impl Iterator<Item = (&str, &str, Totals)> + Clone + '_ {
        let own = self.identity.entry_id().as_str();
        let map = self.engine.named();
        let writes = self.named_writes.as_slice();
        let missing = move |w: &&NamedWrite| map.totals(w.name.as_str(), own) == Totals::default();
        // Few writes are in flight: pick them in name order without sorting in place.
        let mut last: Option<&str> = None;
        core::iter::from_fn(move || {
            let next = writes
                .iter()
                .filter(missing)
                .filter(|w| last.is_none_or(|l| w.name.as_bytes() > l.as_bytes()))
                .min_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()))?;
            last = Some(next.name.as_str());
            let t = Totals {
                inc: next.inc,
                dec: next.dec,
                ..Totals::default()
            };
            Some((next.name.as_str(), own, t))
        })
    }

    /// The record `seq` (and so every record before it) is durable. Only the identity needs
    /// this report; local writes are reported by committing them.
    pub fn persisted(&mut self, seq: u64) {
        if self.identity_pending.is_some_and(|s| s <= seq) {
            self.identity_pending = None;
        }
    }

    /// The record `seq` could not be persisted. A snapshot is asked for again at the next
    /// timeout; a write's outcome is unknown to its client (a later durable record of the
    /// same totals may still carry it).
    pub fn persist_failed(&mut self, _seq: u64, kind: PersistKind) {
        match kind {
            PersistKind::Snapshot => self.snapshot_failed = true,
            PersistKind::Identity => {
                let _ = self.queue.push(Request::Identity);
            }
            PersistKind::Local | PersistKind::NamedLocal => {}
        }
    }

    /// Queues a snapshot now (e.g. at shutdown), if the replica is durable.
    pub fn request_snapshot(&mut self) -> Result<(), PrepareError> {
        if self.durable && !self.queue.has_snapshot() {
            self.queue.push(Request::Snapshot)?;
        }
        Ok(())
    }

    // ----- peers -----

    /// Adds a peer (static or discovered). Its own address is refused silently (`Ok(false)`).
    pub fn add_peer(
        &mut self,
        addr: &str,
        source: PeerSource,
        now: Instant,
    ) -> Result<bool, PeerError> {
        if self.address.as_ref().is_some_and(|a| a.as_str() == addr) {
            return Ok(false);
        }
        self.engine.add_peer(addr, source, now)
    }

    /// Removes a peer.
    pub fn remove_peer(&mut self, addr: &str) -> bool {
        self.engine.remove_peer(addr)
    }

    // ----- output and timers -----

    /// The next frame to send (see [`Engine::poll_transmit`]); `None` while there is no
    /// address.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit<L>> {
        self.address?;
        #[cfg(feature = "membership")]
        if let Some(t) = self.membership_transmit(buf) {
            return Some(t);
        }
        self.engine.poll_transmit(now, buf)
    }

    /// A datagram transmit to `addr` was handed to the socket (`sent`), or the socket refused
    /// it. A datagram has no delivery report: only a refusal is a failed send.
    pub fn on_datagram(&mut self, addr: &str, now: Instant, sent: bool) {
        if sent {
            self.transport.datagrams_out += 1;
        } else {
            self.on_send_failed(addr, now);
        }
    }

    /// Announces datagrams (`max` > 0: the adapter's datagram socket is bound) or withdraws
    /// them; see [`Engine::set_max_datagram`].
    pub fn set_max_datagram(&mut self, max: u16) {
        self.engine.set_max_datagram(max);
    }

    /// A transmit reached `addr`.
    pub fn on_delivered(&mut self, addr: &str, now: Instant) {
        self.transport.sent += 1;
        if self.engine.on_delivered(addr, now) {
            if let Ok(id) = NodeId::new(addr) {
                self.events.push(Event::PeerUp(id));
            }
        }
    }

    /// A transmit to `addr` failed.
    pub fn on_send_failed(&mut self, addr: &str, now: Instant) {
        self.transport.send_failed += 1;
        if self.engine.on_send_failed(addr, now) {
            if let Ok(id) = NodeId::new(addr) {
                self.events.push(Event::PeerDown(id));
            }
        }
    }

    /// When [`Replica::handle_timeout`] should next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let gossip = self.address.and(self.engine.poll_timeout());
        let snapshot = self.durable.then_some(self.next_snapshot);
        #[cfg(feature = "membership")]
        let gossip = earliest(gossip, self.membership_timeout());
        earliest(gossip, snapshot)
    }

    /// Runs what is due at `now`: gossip rounds (with an address) and the snapshot policy.
    pub fn handle_timeout(&mut self, now: Instant, rng: &mut impl rand_core::RngCore) {
        if self.address.is_some() {
            let before = self.engine.stats().peers_down;
            self.engine.handle_timeout(now, rng);
            let silent = self.engine.stats().peers_down - before;
            if silent > 0 {
                self.events.push(Event::PeersSilent(
                    u32::try_from(silent).unwrap_or(u32::MAX),
                ));
            }
            #[cfg(feature = "membership")]
            self.run_membership(now);
        }
        self.check_snapshot(now);
    }

    fn check_snapshot(&mut self, now: Instant) {
        if !self.durable {
            return;
        }
        let counter = self.engine.counter();
        let changes = if self.policy.merges_only {
            let own = self.identity.entry_id();
            let merged = counter.changed_since(self.snapshot_version);
            let cells = self.engine.named().changed_since(self.snapshot_version);
            let merged = merged.filter(|e| e.id != *own).count()
                + cells.filter(|(_, id, _)| *id != own.as_str()).count();
            u32::try_from(merged).unwrap_or(u32::MAX)
        } else {
            counter.version().wrapping_sub(self.snapshot_version)
        };
        let by_count = self.policy.after_changes != 0 && changes >= self.policy.after_changes;
        let by_time = now >= self.next_snapshot;
        if (changes != 0 || self.snapshot_failed)
            && (by_time || by_count)
            && self.request_snapshot().is_ok()
        {
            self.snapshot_failed = false;
        }
        if by_time || by_count {
            self.next_snapshot = now + self.policy.interval;
        }
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event<L>> {
        self.events.pop()
    }
}

/// The earlier of two optional instants.
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests;
