//! [`Node`]: the handle a program keeps to count, read and watch a running node.

use crate::state::{now, NodeState, PENDING};
use embassy_sync::blocking_mutex::raw::RawMutex;
use tally_core::named::{CounterMap, CounterName, MapError, MapStores, Unnamed};
use tally_core::replica::{PrepareError, TransportStats};
use tally_core::{Identity, LocalOp, NodeId, PeerSource, PeerState, Prepared, Stats};

/// Why a node could not start or an operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum NodeError {
    /// The advertised address is not `host:port`.
    BadAddress,
    /// A peer address is not `host:port`, or the peer table is full.
    BadPeer,
    /// The local total would overflow `u64`.
    Overflow,
    /// The persist stream is full: the persister is not draining it.
    Backlog,
    /// A named counter's write was refused: a bad name, or the map is full
    /// (`too_many_counters`, `capacity_exceeded`). Nothing changed.
    Counter(MapError),
}

impl core::fmt::Display for NodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            NodeError::BadAddress => "advertised address is not host:port",
            NodeError::BadPeer => "invalid peer address or peer table full",
            NodeError::Overflow => "the counter would overflow",
            NodeError::Backlog => "the persist stream is full",
            NodeError::Counter(e) => e.name(),
        })
    }
}

impl core::error::Error for NodeError {}

impl From<PrepareError> for NodeError {
    fn from(e: PrepareError) -> Self {
        match e {
            PrepareError::Overflow => NodeError::Overflow,
            PrepareError::Named(e) => NodeError::Counter(e),
            _ => NodeError::Backlog,
        }
    }
}

/// What became of a local write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Write {
    /// Counted, gossiped and shown (a volatile node): the value after it.
    Committed(i128),
    /// Prepared and handed to the persister (a durable node): it is counted, gossiped and
    /// shown once its record is durable ([`Persister::persisted`](crate::Persister::persisted)).
    Persisting,
}

/// A handle to a running node: cheap to copy, usable from any task of the executor that runs
/// the node (or from any task, with a `CriticalSectionRawMutex`).
pub struct Node<
    'a,
    M: RawMutex,
    const N: usize = 32,
    const P: usize = 16,
    const L: usize = 64,
    Named: MapStores<L> = Unnamed,
> {
    pub(crate) node_state: &'a NodeState<M, N, P, L, Named>,
}

impl<M: RawMutex, const N: usize, const P: usize, const L: usize, Named: MapStores<L>> Clone
    for Node<'_, M, N, P, L, Named>
{
    fn clone(&self) -> Self {
        *self
    }
}

impl<M: RawMutex, const N: usize, const P: usize, const L: usize, Named: MapStores<L>> Copy
    for Node<'_, M, N, P, L, Named>
{
}

impl<M: RawMutex, const N: usize, const P: usize, const L: usize, Named: MapStores<L>>
    Node<'_, M, N, P, L, Named>
{
    /// The entry id this node counts under (`name#incarnation`).
    pub fn id(&self) -> NodeId<L> {
        self.node_state.replica(|r| *r.id())
    }

    /// The identity (name and incarnation).
    pub fn identity(&self) -> Identity<L> {
        self.node_state.replica(|r| *r.identity())
    }

    /// The advertised gossip address, once the network is up.
    pub fn address(&self) -> Option<NodeId<L>> {
        self.node_state.replica(|r| r.address().copied())
    }

    /// Sets the address written in every later frame (`None`: offline, nothing is sent). The
    /// runner does this itself from the stack's IPv4 configuration unless
    /// [`NodeConfig::advertise`](crate::NodeConfig::advertise) fixes it.
    pub fn set_address(&self, addr: Option<&str>) -> Result<(), NodeError> {
        self.node_state
            .replica(|r| r.set_address(addr))
            .map_err(|_| NodeError::BadAddress)?;
        self.node_state.wake.signal(());
        Ok(())
    }

    /// Adds `by` to this node's increments. See [`Write`] for when it counts.
    pub fn increment(&self, by: u64) -> Result<Write, NodeError> {
        self.write(LocalOp::Increment(by))
    }

    /// Adds `by` to this node's decrements. See [`Write`] for when it counts.
    pub fn decrement(&self, by: u64) -> Result<Write, NodeError> {
        self.write(LocalOp::Decrement(by))
    }

    /// Prepares `op`. A volatile node commits it at once; a durable one keeps it until the
    /// persister reports its record durable, and commits it then.
    pub fn write(&self, op: LocalOp) -> Result<Write, NodeError> {
        self.write_to(None, op)
    }

    /// Adds `by` to this node's increments in named counter `name` (created by its first
    /// write, if the map has room). See [`Write`] for when it counts.
    pub fn increment_named(&self, name: &str, by: u64) -> Result<Write, NodeError> {
        self.write_named(name, LocalOp::Increment(by))
    }

    /// Adds `by` to this node's decrements in named counter `name`.
    pub fn decrement_named(&self, name: &str, by: u64) -> Result<Write, NodeError> {
        self.write_named(name, LocalOp::Decrement(by))
    }

    /// Prepares `op` on named counter `name`, as [`Node::write`] does on the default counter.
    /// A bad name or a full map is refused ([`NodeError::Counter`]) and changes nothing.
    pub fn write_named(&self, name: &str, op: LocalOp) -> Result<Write, NodeError> {
        let counter =
            CounterName::new(name).map_err(|e| NodeError::Counter(MapError::BadName(e)))?;
        self.write_to(Some(counter), op)
    }

    /// One local write, to the default counter (`None`) or a named one.
    fn write_to(&self, counter: Option<CounterName>, op: LocalOp) -> Result<Write, NodeError> {
        let written = self.node_state.with(|i| {
            if !i.replica.is_durable() {
                return match &counter {
                    None => i.replica.apply(op),
                    Some(name) => i.replica.apply_named(name.as_str(), op),
                }
                .map(Write::Committed);
            }
            // A full list of waiting writes makes room by dropping writes that a later one to
            // the same counter covers: its record carries their totals too. Writes to other
            // counters are never dropped (their records carry only their own counter).
            if i.pending.is_full() {
                drop_covered(&mut i.pending, counter.as_ref());
            }
            if i.pending.is_full() {
                return Err(PrepareError::Backlog);
            }
            let p = match &counter {
                None => i.replica.prepare(op)?,
                Some(name) => i.replica.prepare_named(name.as_str(), op)?,
            };
            let _ = i.pending.push_back(p);
            Ok(Write::Persisting)
        })?;
        if let Write::Committed(_) = written {
            self.node_state.wake.signal(());
        }
        Ok(written)
    }

    /// Reserves a place for named counter `name` before its first write, so that counters
    /// merged from peers cannot take every place (a board does this for the counters its
    /// buttons count on). Refused when the name is bad or the map holds no more counters.
    pub fn reserve_named(&self, name: &str) -> Result<(), NodeError> {
        self.node_state
            .replica(|r| r.reserve_named(name))
            .map_err(NodeError::Counter)
    }

    /// The value of named counter `name` as this node knows it (committed writes only);
    /// `None` when the node shows no such counter.
    pub fn named_value(&self, name: &str) -> Option<i128> {
        self.node_state.replica(|r| r.named_value(name))
    }

    /// Runs `f` on the named counters (committed writes only), e.g. to list them.
    pub fn named<R>(&self, f: impl FnOnce(&CounterMap<L, Named>) -> R) -> R {
        self.node_state.replica(|r| f(r.named()))
    }

    /// Waits until some named counter changes (a committed local write, a merge or a
    /// removal). Changes while nobody waits are coalesced. Meant for one waiter.
    pub async fn wait_named_changed(&self) {
        self.node_state.named_changed.wait().await;
    }

    /// The cluster value as this node knows it (committed writes only).
    pub fn value(&self) -> i128 {
        self.node_state.replica(|r| r.value())
    }

    /// The cluster value, or `None` while this board holds less than the cluster's state (a
    /// Push did not fit: the value would be a partial sum). Show this one as the cluster's.
    pub fn cluster_value(&self) -> Option<i128> {
        self.node_state.replica(|r| r.cluster_value())
    }

    /// Whether the board's value is complete (see [`Node::cluster_value`]).
    pub fn is_complete(&self) -> bool {
        self.node_state.replica(|r| r.is_complete())
    }

    /// This node's own committed (inc, dec) totals.
    pub fn local(&self) -> (u64, u64) {
        self.node_state.replica(|r| r.local())
    }

    /// Waits until the value changes (a committed local write or a merge that raised a
    /// total) and returns the new value. Changes that happen while nobody waits are coalesced
    /// into the latest. Meant for one waiter (e.g. the task that blinks the LED).
    pub async fn wait_changed(&self) -> i128 {
        self.node_state.changed.wait().await
    }

    /// Adds a peer (e.g. from discovery). Returns true when it was new.
    pub fn add_peer(&self, addr: &str, source: PeerSource) -> Result<bool, NodeError> {
        let now = now();
        let added = self
            .node_state
            .replica(|r| r.add_peer(addr, source, now))
            .map_err(|_| NodeError::BadPeer)?;
        self.node_state.wake.signal(());
        Ok(added)
    }

    /// Removes a peer.
    pub fn remove_peer(&self, addr: &str) -> bool {
        self.node_state.replica(|r| r.remove_peer(addr))
    }

    /// Removes a peer if `source` added it (a discovery withdrawing what it found, and
    /// nothing configured). Returns true when it was removed.
    pub fn remove_peer_from(&self, addr: &str, source: PeerSource) -> bool {
        self.node_state.replica(|r| {
            r.peers().get(addr).is_some_and(|p| p.source == source) && r.remove_peer(addr)
        })
    }

    /// Calls `f` with each peer: address, how it was found, and whether it is live.
    pub fn for_each_peer(&self, mut f: impl FnMut(&str, PeerSource, PeerState)) {
        self.node_state.replica(|r| {
            for p in r.peers().iter() {
                f(p.addr.as_str(), p.source, p.state());
            }
        })
    }

    /// What the gossip engine has done.
    pub fn stats(&self) -> Stats {
        self.node_state.replica(|r| r.stats().clone())
    }

    /// What the transport has done (the same type and names as every adapter's).
    pub fn transport(&self) -> TransportStats {
        self.node_state.replica(|r| *r.transport())
    }
}

/// Keeps, of the waiting writes of each counter, only the newest — and none of `next`'s
/// counter, whose write comes next and covers them — keeping the order of the others.
fn drop_covered(queue: &mut heapless::Deque<Prepared, PENDING>, next: Option<&CounterName>) {
    let n = queue.len();
    for i in 0..n {
        let Some(p) = queue.pop_front() else { break };
        // The writes after it in the original order are the first `later` in the queue now.
        let later = n - 1 - i;
        let covered =
            p.counter.as_ref() == next || queue.iter().take(later).any(|q| q.counter == p.counter);
        if !covered {
            let _ = queue.push_back(p);
        }
    }
}
