//! [`Engine`]: the sans-IO gossip node of spec §6.
//!
//! The engine owns the counter, the peer table and the transmit queue. It never touches a
//! socket or a clock: the caller feeds it what arrives and the current time, and takes out what
//! to send. Call order, as in quinn-proto's `Connection`:
//!
//! 1. [`Engine::handle`] for every frame that arrives (`from` is the sender's address of the
//!    §2 header — see [`crate::frame::split_header`]);
//! 2. [`Engine::poll_transmit`] until it returns `None`, sending each [`Transmit`] (one TCP
//!    connection each) and reporting the result with [`Engine::on_delivered`] or
//!    [`Engine::on_send_failed`];
//! 3. [`Engine::handle_timeout`] when the time of [`Engine::poll_timeout`] has come, then
//!    `poll_transmit` again.
//!
//! Randomness (which peers to gossip with) comes from the caller's `rand_core::RngCore`, so a
//! seeded run is deterministic.

mod config;
mod datagram;
mod named;
mod push;
mod rounds;
mod stats;
mod transmit;
mod trickle;

pub use config::{Compressor, Config};
pub use datagram::{ANSWER_WAIT, DATAGRAMS_OFF_TICKS};
pub use stats::Stats;

use crate::counter::{origin_of, CounterError, Entry, PnCounter};
use crate::digest::digest;
use crate::error::WireError;
use crate::ext::Hello;
use crate::frame::{self, is_gossip_address};
use crate::id::NodeId;
use crate::message::{Message, MessageType};
use crate::named::wire::{NamedLimits, NamedPush};
use crate::named::{CounterMap, MapStores, Unnamed};
use crate::peers::{Peer, PeerSource, PeerTable};
use crate::slots::{CapacityExceeded, Slots};
use crate::time::{Instant, Stamp};
use crate::union::Union;
use heapless::Deque;
use trickle::Trickle;

/// Replies and gossip waiting for `poll_transmit`. Beyond this, replies are shed (counted):
/// a flood of DigestPulls cannot make the engine queue unbounded work.
pub const QUEUE_CAPACITY: usize = 16;

/// A frame the engine wants sent: `buf[..len]` of the `poll_transmit` call is the whole
/// payload (§2 header included), to be written to `to` in one TCP connection — or, when
/// `datagram` is set, sent as one UDP datagram to the same address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Transmit<const L: usize> {
    /// Destination gossip address.
    pub to: NodeId<L>,
    /// Bytes written into the buffer.
    pub len: usize,
    /// What kind of message it carries.
    pub message: MessageType,
    /// The frame was compressed.
    pub compressed: bool,
    /// Send it as one datagram (`docs/EXTENSIONS.md` §5), without a delivery report: neither
    /// `on_delivered` nor `on_send_failed`, unless the local send itself fails.
    pub datagram: bool,
    /// A SWIM membership datagram (`docs/EXTENSIONS.md` §7), not a frame: always a datagram;
    /// `message` and `compressed` say nothing about it.
    pub membership: bool,
}

/// What [`Engine::handle`] did with a valid frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Handled {
    /// The message type received.
    pub message: MessageType,
    /// The state changed (a Push raised some total).
    pub changed: bool,
    /// Named counters of a named Push refused whole for lack of room.
    pub refused: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
enum Planned {
    Pull,
    /// A DigestAck of this digest (big-endian bytes: four-byte alignment keeps the queue's
    /// entries at 80 bytes on boards).
    Ack([u8; 8]),
    /// The entries changed after `since` (0: the full state); a `backstop` Push also carries
    /// what the peer itself gave us.
    Push {
        since: u32,
        backstop: bool,
    },
    /// Our hello (`crate::ext`), as a DigestAck.
    Hello {
        reply: bool,
    },
    /// The named cells changed after `since` (0: all), after the default part of a Push.
    NamedPush {
        since: u32,
    },
}

#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
struct Pending<const L: usize> {
    to: NodeId<L>,
    what: Planned,
}

/// A gossip node: counter + named counters + peers + queue. See the module docs for the call
/// order.
///
/// `L` bounds ids and addresses; `S` stores counter entries, `P` peers (fixed `heapless::Vec`
/// or `Growable`), `M` the named counters ([`Unnamed`]: none). Aliases: [`FixedEngine`],
/// [`GrowableEngine`].
pub struct Engine<const L: usize, S, P, M: MapStores<L> = Unnamed> {
    counter: PnCounter<L, S>,
    named: CounterMap<L, M>,
    /// The map's digest, valid while `named_digest_ok` (a flag, not an `Option`: boards
    /// count bytes).
    named_digest: u64,
    named_digest_ok: bool,
    /// A map operation changed something (set by `named_op`, taken by its caller).
    named_changed: bool,
    /// Where the next window of a named Push starts (see `named.rs`).
    named_cursor: u32,
    peers: PeerTable<L, P>,
    listen: NodeId<L>,
    config: Config,
    queue: Deque<Pending<L>, QUEUE_CAPACITY>,
    /// The latest time the caller gave us: what "now" means for calls that carry no time.
    now: Instant,
    rounds: Trickle,
    /// Something inconsistent happened where no time was given (a local write): reset the
    /// rounds at the next `handle_timeout`.
    reset_pending: bool,
    /// Housekeeping (sweep, probes, keepalives, hellos) is due now, not at `next_tick`.
    wake: bool,
    /// SWIM membership runs beside this engine (announced as `Caps::MEMBERSHIP`).
    membership: bool,
    /// A Push was refused for lack of room: the cluster holds entries this node cannot, so
    /// its value is a partial sum (see [`Engine::is_complete`]). A flag, not a time: the
    /// engine fits its 8 KiB budget with it.
    over_capacity: bool,
    next_tick: Instant,
    /// Changes wait for an eager push …
    eager_dirty: bool,
    /// … of what changed after this version …
    eager_base: u32,
    /// … no sooner than `eager_wait` milliseconds after the last one (`eager_delay`, doubled
    /// under sustained writes up to `eager_delay_max`).
    last_eager: Instant,
    eager_wait: u16,
    next_full_sync: Instant,
    digest: Option<u64>,
    push_cursor: usize,
    anon_replies: u8,
    anon_replies_since: Instant,
    stats: Stats,
}

/// An engine on fixed stores: `N` entries, `P` peers, ids of at most `L` bytes, named counters
/// on `M` (none by default). No heap.
pub type FixedEngine<const N: usize, const P: usize, const L: usize, M = Unnamed> =
    Engine<L, heapless::Vec<Entry<L>, N>, heapless::Vec<Peer<L>, P>, M>;

/// An engine on growable heap stores (hosts), named counters included.
#[cfg(feature = "alloc")]
pub type GrowableEngine<const L: usize> = Engine<
    L,
    crate::slots::Growable<Entry<L>>,
    crate::slots::Growable<Peer<L>>,
    crate::named::GrowableStores,
>;

impl<const L: usize, S: Slots<Entry<L>>, P: Slots<Peer<L>>, M: MapStores<L>> Engine<L, S, P, M> {
    /// A node with id `id` that receives gossip at `listen` (the address written in the §2
    /// header of every frame it sends; by convention the same as the id).
    pub fn new(
        id: NodeId<L>,
        listen: NodeId<L>,
        config: Config,
        now: Instant,
    ) -> Result<Self, CapacityExceeded> {
        Self::with_stores(id, listen, config, now, S::default(), P::default())
    }

    /// As [`Engine::new`], with explicit stores (e.g. a `Growable` with a custom bound).
    pub fn with_stores(
        id: NodeId<L>,
        listen: NodeId<L>,
        config: Config,
        now: Instant,
        entries: S,
        peers: P,
    ) -> Result<Self, CapacityExceeded> {
        Ok(Self {
            counter: PnCounter::with_store(id, entries)?,
            named: CounterMap::new(),
            named_digest: 0,
            named_digest_ok: false,
            named_changed: false,
            named_cursor: 0,
            peers: PeerTable::from_store(peers),
            listen,
            config,
            queue: Deque::new(),
            now,
            rounds: Trickle::new(config.sync_interval, config.max_doublings, now),
            reset_pending: false,
            wake: false,
            membership: false,
            over_capacity: false,
            next_tick: now,
            eager_dirty: false,
            eager_base: 0,
            last_eager: now,
            eager_wait: 0,
            next_full_sync: now + config.full_sync_interval,
            digest: None,
            push_cursor: 0,
            anon_replies: 0,
            anon_replies_since: now,
            stats: Stats::default(),
        })
    }

    // ----- state -----

    /// The counter.
    pub fn counter(&self) -> &PnCounter<L, S> {
        &self.counter
    }

    /// The cluster-wide value as this node knows it.
    pub fn value(&self) -> i128 {
        self.counter.value()
    }

    /// This node's id.
    pub fn id(&self) -> &NodeId<L> {
        self.counter.local_id()
    }

    /// The address written in outgoing headers.
    pub fn listen_addr(&self) -> &NodeId<L> {
        &self.listen
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Memory this engine uses: its own size plus what its stores hold on the heap.
    pub fn memory_bytes(&self) -> usize {
        core::mem::size_of::<Self>()
            + self.counter.heap_bytes()
            + self.peers.heap_bytes()
            + self.named.heap_bytes()
    }

    /// What the engine has done so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The digest of the current state (cached between changes).
    pub fn digest(&mut self) -> u64 {
        match self.digest {
            Some(d) => d,
            None => {
                let d = digest(self.counter.entries());
                self.digest = Some(d);
                d
            }
        }
    }

    /// Adds `by` to this node's increments.
    pub fn increment(&mut self, by: u64) -> Result<u64, CounterError> {
        let r = self.counter.increment(by);
        self.digest = None;
        if r.is_ok() {
            self.changed();
        }
        r
    }

    /// Adds `by` to this node's decrements.
    pub fn decrement(&mut self, by: u64) -> Result<u64, CounterError> {
        let r = self.counter.decrement(by);
        self.digest = None;
        if r.is_ok() {
            self.changed();
        }
        r
    }

    /// Raises the local totals to at least `(inc, dec)`: commits a durable write whose record
    /// carried the totals after it. Returns whether anything rose.
    pub fn raise_local(&mut self, inc: u64, dec: u64) -> Result<bool, CounterError> {
        let raised = self.counter.raise_local(inc, dec)?;
        if raised {
            self.digest = None;
            self.changed();
        }
        Ok(raised)
    }

    /// Sets the address written in the §2 header of every later frame (a new DHCP lease).
    pub fn set_listen_addr(&mut self, listen: NodeId<L>) {
        self.listen = listen;
    }

    /// Merges a state from elsewhere (e.g. recovered from disk).
    pub fn merge_state<'i, I>(&mut self, entries: I) -> Result<bool, CounterError>
    where
        I: Iterator<Item = (&'i str, u64, u64)> + Clone,
    {
        let out = self.counter.merge_sorted(entries)?;
        if out.changed {
            self.digest = None;
        }
        Ok(out.changed)
    }

    // ----- peers -----

    /// The peer table.
    pub fn peers(&self) -> &PeerTable<L, P> {
        &self.peers
    }

    /// Adds a peer (static or discovered). Its own address is refused silently (`Ok(false)`).
    pub fn add_peer(
        &mut self,
        addr: &str,
        source: PeerSource,
        now: Instant,
    ) -> Result<bool, PeerError> {
        if !is_gossip_address(addr) {
            return Err(PeerError::BadAddress);
        }
        let id = NodeId::new(addr).map_err(|_| PeerError::BadAddress)?;
        if id == self.listen {
            return Ok(false);
        }
        self.saw(now);
        let added = self
            .peers
            .add(id, source, now)
            .map_err(|_| PeerError::TableFull)?;
        self.stats.peers_added += u64::from(added);
        if added {
            self.peer_joined();
        }
        Ok(added)
    }

    /// Membership declared the peer at `addr` down: it is no longer chosen for rounds (it is
    /// still probed, and comes back on its first answer). Returns true when this made it down.
    pub fn mark_down(&mut self, addr: &str, now: Instant) -> bool {
        let downed = self.peers.mark_down(addr, now);
        if downed {
            self.stats.peers_down += 1;
            self.reset_pending = true;
        }
        downed
    }

    /// Removes a peer.
    pub fn remove_peer(&mut self, addr: &str) -> bool {
        self.peers.remove(addr)
    }

    /// A transmit to `addr` was written out.
    ///
    /// A complete Push that reached the peer counts as knowledge of what it now holds: TCP
    /// delivered it, and merge is idempotent. Should it have been lost after all, the peer's
    /// next differing DigestPull, or the expiry of knowledge, repairs it.
    ///
    /// Returns true when this revived a peer that was down.
    pub fn on_delivered(&mut self, addr: &str, now: Instant) -> bool {
        self.saw(now);
        let revived = self.peers.delivered(addr);
        if revived {
            self.peer_joined();
        }
        if let Some(p) = self.peers.get_mut(addr) {
            if p.sent_version != 0 && (p.sent_base == 0 || p.sent_base <= p.known) {
                if p.sent_version > p.known {
                    p.known = p.sent_version;
                }
                p.known_at = now;
            }
            p.sent_version = 0;
        }
        revived
    }

    /// A transmit to `addr` could not be delivered (connect or write failed). Returns true
    /// when this made the peer down.
    pub fn on_send_failed(&mut self, addr: &str, now: Instant) -> bool {
        self.saw(now);
        // A failed send to a live peer may be a partition: gossip at the minimum interval. A
        // failed probe of a peer already down is no news (a board switched off for a week
        // must not hold the cluster at the minimum); its return, when a probe gets through,
        // resets the rounds as a returning peer.
        let was_down = self
            .peers
            .get(addr)
            .is_some_and(|p| p.state() == crate::peers::PeerState::Down);
        if !was_down {
            self.reset_pending = true;
        }
        if let Some(p) = self.peers.get_mut(addr) {
            p.sent_version = 0;
            if p.caps.is_none() {
                // The hello may not have arrived either.
                p.hello_sent = Stamp::NONE;
            }
        }
        let downed = self.peers.send_failed(addr, now, &self.config.detector);
        if downed {
            crate::fmt::debug!("peer {} down after repeated send failures", addr);
            self.stats.peers_down += 1;
        }
        downed
    }

    // ----- input -----

    /// Handles one frame from `from` (the sender address of its §2 header).
    ///
    /// Invalid input is counted in [`Stats::rejects`] and changes nothing.
    pub fn handle(&mut self, now: Instant, from: &str, frame: &[u8]) -> Result<Handled, WireError> {
        self.saw(now);
        self.stats.bytes_in += frame.len() as u64;
        let r = self.handle_inner(now, from, frame);
        if let Err(e) = r {
            self.stats.reject(e);
        }
        r
    }

    /// Counts a rejection the adapter made before the engine saw the bytes (a malformed §2
    /// header, an oversized or unfinished read), so all rejects are counted in one place.
    pub fn record_reject(&mut self, e: WireError) {
        self.stats.reject(e);
    }

    fn handle_inner(
        &mut self,
        now: Instant,
        from: &str,
        frame: &[u8],
    ) -> Result<Handled, WireError> {
        if !is_gossip_address(from) {
            return Err(WireError::BadHeader);
        }
        let from = NodeId::<L>::new(from).map_err(|_| WireError::BadHeader)?;
        let body = frame::decode_keyed(
            frame,
            &self.config.frame_limits,
            self.config.cluster_key.as_ref(),
        )?;
        let msg = match Message::parse(body.bytes(), &self.config.message_limits) {
            Err(WireError::UnknownType) if self.named.max_counters() > 0 => {
                let limits = NamedLimits {
                    max_id_len: self.config.message_limits.max_id_len,
                    ..NamedLimits::HOST
                };
                let push = NamedPush::parse(body.bytes(), &limits)?;
                self.stats.compressed_in += u64::from(body.was_compressed());
                return self.handle_named(now, from, &push);
            }
            Err(WireError::TooManyEntries) => {
                // More writers than this node has room for: its value is partial from now.
                self.went_over_capacity();
                return Err(WireError::TooManyEntries);
            }
            r => r?,
        };
        self.stats.compressed_in += u64::from(body.was_compressed());
        let kind = msg.message_type();
        let mut changed = false;
        // A valid frame: the sender is alive (and readmitted if it was down).
        let slot = self.note_sender(from, now);
        match msg {
            Message::Push { inc, dec, .. } => {
                let out = self
                    .counter
                    .merge_from(Union::new(inc, dec), origin_of(from.as_str()))
                    .map_err(|e| match e {
                        CounterError::IdTooLong => WireError::IdTooLong,
                        CounterError::Overflow => WireError::Overflow,
                        _ => WireError::CapacityExceeded,
                    });
                if out == Err(WireError::CapacityExceeded) {
                    self.went_over_capacity();
                }
                let out = out?;
                self.stats.merges += 1;
                if out.changed {
                    self.stats.merges_changed += 1;
                    self.digest = None;
                    changed = true;
                    self.changed();
                }
                if out.input_behind {
                    self.reset_pending = true;
                    if self.may_push_back(slot, now) {
                        self.push_what_it_lacks(from, slot, now);
                    }
                } else if !self.speaks_named(slot) || self.named.cells_len() == 0 {
                    // The Push held everything we hold: so does its sender (of a peer that
                    // speaks named counters, only when we have none).
                    self.learn(slot, self.counter.version(), now);
                }
            }
            Message::DigestPull { digest, .. } => {
                if digest == self.digest_for(slot) {
                    self.same_state_as_peer();
                    self.learn(slot, self.counter.version(), now);
                    self.reply(slot, from, Planned::Ack(digest.to_be_bytes()), now);
                } else {
                    self.reset_pending = true;
                    self.answer_mismatch(from, slot, now);
                }
            }
            Message::DigestAck { digest, .. } => {
                let current = self.digest_for(slot);
                let version = self.counter.version();
                if slot.is_some() && digest == current {
                    self.same_state_as_peer();
                }
                let confirmed = match slot.and_then(|i| self.peers.at(i)) {
                    Some(_) if digest == current => Some(version),
                    Some(p) if p.pull_version != 0 && digest == p.pull_digest => {
                        Some(p.pull_version)
                    }
                    _ => None,
                };
                if let Some(v) = confirmed {
                    self.learn(slot, v, now);
                } else if let Some(hello) = Hello::from_digest(digest) {
                    self.on_hello(from, slot, hello, now);
                }
            }
        }
        if let Some(n) = self.stats.frames_in.get_mut(kind.index()) {
            *n += 1;
        }
        Ok(Handled {
            message: kind,
            changed,
            refused: 0,
        })
    }

    /// A valid named Push from `from`.
    fn handle_named(
        &mut self,
        now: Instant,
        from: NodeId<L>,
        push: &NamedPush<'_>,
    ) -> Result<Handled, WireError> {
        let slot = self.note_sender(from, now);
        let (changed, refused) = self.merge_named_push(push)?;
        self.stats.merges += 1;
        if changed {
            self.stats.merges_changed += 1;
            self.changed();
        }
        // As for a default Push: one that lacked some of ours is answered with what the
        // sender lacks (at most once per sync interval).
        if self.named_push_behind(push) {
            self.reset_pending = true;
            if self.may_push_back(slot, now) {
                self.push_what_it_lacks(from, slot, now);
            }
        }
        let kind = MessageType::NamedPush;
        if let Some(n) = self.stats.frames_in.get_mut(kind.index()) {
            *n += 1;
        }
        Ok(Handled {
            message: kind,
            changed,
            refused,
        })
    }

    fn went_over_capacity(&mut self) {
        self.over_capacity = true;
    }

    /// A peer's digest equals ours: we hold what it holds, so what was refused for lack of
    /// room is no longer missing (it was retired, or never mattered to that peer's state).
    fn same_state_as_peer(&mut self) {
        self.over_capacity = false;
    }

    /// Whether this node's value is the cluster's as far as it knows: false from the moment a
    /// Push was refused because its entries did not fit (the cluster holds more writers than
    /// this node has room for, so [`Engine::value`] is a partial sum) until a peer's digest
    /// equals ours again. The node keeps counting, persisting and serving its own entry
    /// meanwhile.
    pub fn is_complete(&self) -> bool {
        !self.over_capacity
    }

    /// Adds or refreshes the sender of a valid frame; returns its peer-table slot.
    fn note_sender(&mut self, from: NodeId<L>, now: Instant) -> Option<usize> {
        if from == self.listen {
            return None;
        }
        match self.peers.touch_sender(from, now) {
            Ok((slot, added, revived)) => {
                self.stats.peers_added += u64::from(added);
                if added || revived {
                    self.peer_joined();
                }
                Some(slot)
            }
            Err(CapacityExceeded) => {
                self.stats.peers_refused += 1;
                None
            }
        }
    }

    /// The version of our state `peer` is known to hold, if that knowledge is fresh (confirmed
    /// within a full-sync interval) and delta sync is on; 0 (send everything) otherwise.
    fn knowledge(&self, slot: Option<usize>, now: Instant) -> u32 {
        match slot.and_then(|i| self.peers.at(i)) {
            Some(p) if self.config.delta_sync => {
                p.known_version(now, self.config.full_sync_interval)
            }
            _ => 0,
        }
    }

    /// Push-backs are limited to one per sync interval per peer (see `Peer::last_push_back`).
    fn may_push_back(&mut self, slot: Option<usize>, now: Instant) -> bool {
        let interval = self.config.sync_interval;
        match slot.and_then(|i| self.peers.at_mut(i)) {
            Some(p) => {
                let ok = p.last_push_back.get().is_none_or(|t| now - t >= interval);
                if ok {
                    p.last_push_back = Stamp::at(now);
                }
                ok
            }
            None => true,
        }
    }

    /// `peer` holds our state as of `version`.
    fn learn(&mut self, slot: Option<usize>, version: u32, now: Instant) {
        if let Some(p) = slot.and_then(|i| self.peers.at_mut(i)) {
            if version >= p.known {
                p.known = version;
                p.known_at = now;
            }
        }
    }

    /// Queues a Push of what `from` is not known to hold (everything, without knowledge);
    /// returns false when there is nothing to send.
    fn push_what_it_lacks(&mut self, from: NodeId<L>, slot: Option<usize>, now: Instant) -> bool {
        let since = self.knowledge(slot, now);
        if !self.lacks_since(slot, since) {
            return false;
        }
        let what = Planned::Push {
            since,
            backstop: false,
        };
        self.reply(slot, from, what, now);
        true
    }

    /// A DigestPull whose digest differs from ours: push what the peer may lack; if it lacks
    /// nothing of ours, it has something we lack, so ask for it (at most once per sync interval,
    /// so two nodes can never bounce DigestPulls).
    fn answer_mismatch(&mut self, from: NodeId<L>, slot: Option<usize>, now: Instant) {
        if self.push_what_it_lacks(from, slot, now) {
            return;
        }
        // We already asked it recently and it still differs while lacking nothing of ours:
        // what we believed it holds is wrong (a lost frame, or a restart that lost state).
        // Forget it and send everything.
        let recent = self.config.sync_interval.saturating_mul(2);
        let stale = match slot.and_then(|i| self.peers.at_mut(i)) {
            Some(p) => {
                let stale = p.last_pull_reply.get().is_some_and(|t| now - t < recent);
                if stale {
                    p.known = 0;
                    p.last_pull_reply = Stamp::NONE;
                } else {
                    p.last_pull_reply = Stamp::at(now);
                }
                stale
            }
            None => false,
        };
        if stale && self.holds_state_for(slot) {
            self.reply(
                slot,
                from,
                Planned::Push {
                    since: 0,
                    backstop: false,
                },
                now,
            );
        } else {
            self.reply(slot, from, Planned::Pull, now);
        }
    }

    /// Queues a reply to the sender of a frame, within the per-address reply rate limit.
    fn reply(&mut self, slot: Option<usize>, to: NodeId<L>, what: Planned, now: Instant) {
        let interval = self.config.sync_interval;
        let limit = self.config.max_replies_per_interval;
        let (count, since) = match slot.and_then(|i| self.peers.at_mut(i)) {
            Some(p) => (&mut p.replies, &mut p.replies_since),
            // Senders the peer table could not hold share one budget.
            None => (&mut self.anon_replies, &mut self.anon_replies_since),
        };
        if now - *since >= interval {
            *count = 0;
            *since = now;
        }
        if *count >= limit {
            self.stats.replies_limited += 1;
            return;
        }
        *count += 1;
        self.enqueue(to, what);
    }

    fn enqueue(&mut self, to: NodeId<L>, what: Planned) {
        let duplicate = self.queue.iter().any(|p| p.to == to && p.what == what);
        if duplicate {
            return;
        }
        if self.queue.push_back(Pending { to, what }).is_err() {
            self.stats.shed += 1;
        }
    }
}

/// Why a peer could not be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum PeerError {
    /// Not `host:port` in printable ASCII, or longer than the id bound.
    BadAddress,
    /// The peer table is full.
    TableFull,
}

impl core::fmt::Display for PeerError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            PeerError::BadAddress => "peer address is not host:port",
            PeerError::TableFull => "peer table is full",
        })
    }
}

impl core::error::Error for PeerError {}
