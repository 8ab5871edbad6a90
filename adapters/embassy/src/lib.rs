//! # tally-embassy
//!
//! Runs a `tally-core` [`Engine`](tally_core::Engine) on embassy-net TCP, `no_std`, with no
//! heap (unless the `zstd` feature is on: decoding compressed frames needs a
//! `#[global_allocator]`, about 40 KiB for the MCU's 8 KiB limits).
//!
//! ```ignore
//! static STATE: StaticCell<tally_embassy::State<NoopRawMutex>> = StaticCell::new();
//!
//! let config = tally_embassy::NodeConfig::new("192.168.1.20:9000", 9000)
//!     .id("pico-28cdc1")
//!     .peers(&["192.168.1.10:9000"]);
//! let (node, runner) = tally_embassy::new(stack, STATE.init(State::new()), &config)?;
//! spawner.spawn(tally_task(runner, rng))?;   // calls runner.run(&mut rng).await
//! node.increment(1)?;
//! let value = node.wait_changed().await;
//! ```
//!
//! ## Who owns I/O and time
//!
//! This crate does, the way `tally-std` does on hosts. The engine sits behind a blocking mutex
//! (never held across an `.await`) in a [`State`] the caller places in a `static`:
//! - the **driver** runs due timers (`handle_timeout`), drains `poll_transmit` and sends each
//!   frame over one connection (connect within `connect_timeout`, write it all, close, wait
//!   for the peer's acknowledgement), reporting `on_delivered` / `on_send_failed`; then it
//!   sleeps until the next `poll_timeout` or until an accepted frame queued a reply;
//! - `A` **accepting sockets** (default 2) take one frame per connection, read to end of stream
//!   within `read_timeout` and the MCU frame limit (4 KiB + header), and `handle` it. While
//!   all of them are busy, new connections are refused and the sender retries later.
//!
//! Both run inside [`Runner::run`], a single future. The core's clock is embassy-time's
//! milliseconds since boot.
//!
//! ## Memory
//!
//! [`State`]`<M, 32, 16, 64, 2>`: the engine (6,752 B), two accepting sockets (2 × 5.4 KiB) and
//! the sender (6.4 KiB) — about 24 KiB. The embassy-net stack needs `A + 1` TCP sockets in its
//! `StackResources` (plus DHCP's and DNS's if used).
//!
//! ## Limits
//!
//! Peers are IPv4 literals (`a.b.c.d:port`); there is no name lookup. Frames the node sends are
//! never compressed (the core has no compressor on MCUs); frames it receives compressed need the
//! `zstd` feature, else they are rejected as `compression_unsupported`.
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod config;
mod fmt;
mod node;
mod runner;
mod state;

pub use config::NodeConfig;
pub use node::{Node, NodeError};
pub use runner::Runner;
pub use state::{
    now, to_embassy, AcceptBuffers, AdapterStats, Buffers, SendBuffers, Shared, State, ACCEPT_RX,
    ACCEPT_TX, FRAME_BUFFER, MAX_HEADER, SEND_RX, SEND_TX,
};
pub use tally_core::{PeerSource, PeerState, Stats};

use embassy_net::Stack;
use embassy_sync::blocking_mutex::raw::RawMutex;
use fmt::info;
use tally_core::{FixedEngine, NodeId};

/// Builds the engine in `state` from `config` (id, advertised address, static peers) and
/// returns the handle and the runner. Nothing moves on the network until [`Runner::run`] is
/// polled.
#[allow(clippy::type_complexity)]
pub fn new<'a, M: RawMutex, const N: usize, const P: usize, const L: usize, const A: usize>(
    stack: Stack<'a>,
    state: &'a mut State<M, N, P, L, A>,
    config: &NodeConfig<'_>,
) -> Result<(Node<'a, M, N, P, L>, Runner<'a, M, N, P, L, A>), NodeError> {
    let advertise = config.advertise;
    if !tally_core::frame::is_gossip_address(advertise) {
        return Err(NodeError::BadId);
    }
    let listen = NodeId::<L>::new(advertise).map_err(|_| NodeError::BadId)?;
    let id = NodeId::<L>::new(config.id.unwrap_or(advertise)).map_err(|_| NodeError::BadId)?;
    let t = now();
    let mut engine =
        FixedEngine::<N, P, L>::new(id, listen, config.engine, t).map_err(|_| NodeError::BadId)?;
    for p in config.peers {
        engine
            .add_peer(p, PeerSource::Static, t)
            .map_err(|_| NodeError::BadPeer)?;
    }
    let State { shared, buffers } = state;
    shared.engine.lock(|cell| *cell.borrow_mut() = Some(engine));
    info!(
        "tally node {} at {} with {} peers",
        id.as_str(),
        advertise,
        config.peers.len()
    );
    let shared: &'a Shared<M, N, P, L> = shared;
    let runner = Runner::new(
        stack,
        shared,
        &mut buffers.accept,
        &mut buffers.send,
        config,
    );
    Ok((Node { shared }, runner))
}
