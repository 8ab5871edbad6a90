//! # tally-embassy
//!
//! Runs a `tally-core` [`Replica`](tally_core::Replica) on embassy-net TCP, `no_std`, with no
//! heap (unless the `zstd` feature is on: decoding compressed frames needs a
//! `#[global_allocator]`, about 40 KiB for the MCU's 8 KiB limits).
//!
//! ```ignore
//! // The caller builds the replica: its identity (`name#incarnation`), engine settings and
//! // whether it is durable — and restores it from its store (see `tally-board`).
//! let (identity, how) = Identity::resume_or_fresh(Some("door"), "door", None, false, &mut rng)?;
//! let replica = FixedReplica::new(identity, how, ReplicaConfig::volatile(Config::mcu()), now())?;
//! static STATE: StaticCell<tally_embassy::State<NoopRawMutex>> = StaticCell::new();
//!
//! let config = tally_embassy::NodeConfig::new(9000).peers(&["192.168.1.10:9000"]);
//! let (node, runner, persister) = tally_embassy::new(stack, STATE.init(State::new(replica)), &config)?;
//! spawner.spawn(tally_task(runner, rng))?;   // calls runner.run(&mut rng).await
//! node.increment(1)?;                        // counts now, network or not
//! let value = node.wait_changed().await;
//! ```
//!
//! ## Who owns I/O and time
//!
//! This crate moves bytes and arms timers; everything else — header split, handling, reject
//! counting, identity, what to persist, events — is the core replica's. The replica sits
//! behind a blocking mutex (never held across an `.await`) in a [`State`] the caller places in
//! a `static`, and every use of it ends by draining its events into signals:
//! - the **driver** runs due timers (`handle_timeout`), drains `poll_transmit` and sends each
//!   frame over one connection (connect within `connect_timeout`, write it all, close, wait
//!   for the peer's acknowledgement), reporting `on_delivered` / `on_send_failed`; then it
//!   sleeps until the next `poll_timeout` or until something queued a frame;
//! - `A` **accepting sockets** (default 2) take one frame per connection, read to end of stream
//!   within `read_timeout` and the MCU frame limit (4 KiB + header), and hand what the read
//!   produced to `ingest`. While all of them are busy, new connections are refused and the
//!   sender retries later;
//! - the **datagram reader**: one UDP socket bound to the gossip port takes each datagram (one
//!   whole frame of at most 1,200 bytes, `docs/EXTENSIONS.md` §5) to `ingest_datagram`; the
//!   driver sends the frames the core marks as datagrams through it, with no delivery report.
//!   Between Tally nodes most frames go this way, so the accepting sockets stay free;
//! - the **address follower** sets the advertised address from the stack's IPv4 address when
//!   DHCP gives a lease and again when it changes (unless [`NodeConfig::advertise`] fixes it).
//!   Until then the node counts and persists offline and sends nothing.
//!
//! All three run inside [`Runner::run`], a single future. The core's clock is embassy-time's
//! milliseconds since boot.
//!
//! ## Local writes and persistence
//!
//! [`Node::increment`] prepares the write. A **volatile** replica commits it at once. A
//! **durable** one ([`tally_core::ReplicaConfig::durable`]) holds it until the task owning the
//! store — the [`Persister`] — has drained `poll_persist`, written the record (a flash item)
//! and reported it with [`Persister::persisted`], which commits it: only then is it counted,
//! gossiped and shown. Snapshots of merged state, due by the replica's policy, and a fresh
//! identity come through the same stream.
//!
//! ## Memory
//!
//! [`State`]`<M, 32, 16, 64, 2>`: the replica (about 9.1 KB), two accepting sockets
//! (2 × 5.4 KiB), the sender (6.4 KiB) and the datagram socket (4 KiB) — about 30.6 KB on a
//! 32-bit MCU. The embassy-net stack needs `A + 1` TCP sockets and one UDP socket in its
//! `StackResources` (plus DHCP's and DNS's if used).
//!
//! ## Limits
//!
//! Peers are IPv4 literals (`a.b.c.d:port`); there is no name lookup. Frames the node sends are
//! never compressed (the core has no compressor on MCUs); frames it receives compressed need the
//! `zstd` feature, else they are rejected as `compression_unsupported`.
#![cfg_attr(not(test), no_std)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod config;
mod datagram;
mod fmt;
#[cfg(feature = "mdns")]
pub mod mdns;
mod node;
mod persist;
mod runner;
mod state;

pub use config::NodeConfig;
pub use node::{Node, NodeError, Write};
pub use persist::Persister;
pub use runner::Runner;
pub use state::{
    now, to_embassy, AcceptBuffers, Buffers, DatagramBuffers, NodeState, SendBuffers, State,
    ACCEPT_RX, ACCEPT_TX, DATAGRAM_QUEUE, DATAGRAM_RX, DATAGRAM_TX, FRAME_BUFFER, PENDING, SEND_RX,
    SEND_TX,
};
pub use tally_core::replica::{TransportStats, MAX_HEADER};
pub use tally_core::{PeerSource, PeerState, Stats};

use embassy_net::Stack;
use embassy_sync::blocking_mutex::raw::RawMutex;
use fmt::info;
use tally_core::named::MapStores;

/// The three handles of a node: the program's [`Node`], the [`Runner`] to run in a task of its
/// own, and the [`Persister`] for the task that owns the store (a volatile node drops it).
pub type Parts<'a, M, const N: usize, const P: usize, const L: usize, const A: usize, Named> = (
    Node<'a, M, N, P, L, Named>,
    Runner<'a, M, N, P, L, A, Named>,
    Persister<'a, M, N, P, L, Named>,
);

/// Starts the node of `state` with `config` (fixed address if any, static peers) and returns
/// its handles. It counts at once; nothing moves on the network until [`Runner::run`] is
/// polled and the node has an address.
pub fn new<
    'a,
    M: RawMutex,
    const N: usize,
    const P: usize,
    const L: usize,
    const A: usize,
    Named: MapStores<L>,
>(
    stack: Stack<'a>,
    state: &'a mut State<M, N, P, L, A, Named>,
    config: &NodeConfig<'_>,
) -> Result<Parts<'a, M, N, P, L, A, Named>, NodeError> {
    let State {
        node_state,
        buffers,
    } = state;
    let node_state: &'a NodeState<M, N, P, L, Named> = node_state;
    let node = Node { node_state };
    if let Some(addr) = config.advertise {
        node.set_address(Some(addr))?;
    }
    let t = now();
    for p in config.peers {
        node_state
            .replica(|r| r.add_peer(p, PeerSource::Static, t))
            .map_err(|_| NodeError::BadPeer)?;
    }
    info!(
        "tally node {} with {} peers",
        node.id().as_str(),
        config.peers.len()
    );
    let runner = Runner::new(
        stack,
        node_state,
        &mut buffers.accept,
        &mut buffers.send,
        &mut buffers.datagram,
        config,
    );
    Ok((node, runner, Persister { node_state }))
}

#[cfg(test)]
mod tests;
