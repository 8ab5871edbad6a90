//! # tally-core
//!
//! The part of Tally that is the same on a microcontroller and on a server: a PN-Counter CRDT,
//! the wire format of the Go "distributed counter" (spec `PROTOCOL.md`), framing, validation,
//! and a gossip [`Engine`] that does digest-based anti-entropy.
//!
//! ## Layers
//!
//! | module | what |
//! |---|---|
//! | [`id`], [`slots`], [`counter`] | [`NodeId`], where entries live, the [`PnCounter`] |
//! | [`message`], [`union`] | msgpack messages (Push / DigestPull / DigestAck), parse and emit |
//! | [`frame`] | flag byte, zstd (feature `zstd`), the TCP header of spec §2 |
//! | [`digest`] | the XXH64 state digest of spec §5, streamed |
//! | [`auth`] | cluster keys and the HMAC-SHA256 frame tags of spec §8 |
//! | [`peers`], [`engine`] | failure detection and the sans-IO gossip engine |
//! | [`mdns`] | the mDNS/DNS-SD records of LAN discovery, written and read without allocation |
//! | [`replica`] | the node: engine + identity + persistence protocol + events + transport counters |
//! | [`store`] | the one codec (and format version) of what a node persists, on disk or in flash |
//! | `sim` (feature `sim`) | N engines on virtual time over a simulated network |
//!
//! ## Who owns I/O and time
//!
//! Nobody here. The crate is `#![no_std]` and sans-IO: it never opens a socket, reads a clock,
//! spawns a thread or (in the default build) allocates. Callers pass the current [`Instant`]
//! and the bytes that arrived, take out bytes to send, and pass a `rand_core::RngCore` for the
//! random choice of peers. `tally-std` and `tally-embassy` are such callers.
//!
//! ## Memory
//!
//! Every container is a [`Slots`] store: a fixed `heapless::Vec` (no heap; a 32-entry counter
//! with 64-byte ids is under 3 KiB) or, with `alloc`, a [`slots::Growable`] that grows on
//! demand to 65,536 entries. Zstd decoding (`zstd`) is the one feature that needs a heap.
//!
//! ## Example
//!
//! ```
//! use tally_core::{FixedEngine, Config, Instant, NodeId, PeerSource};
//! use tally_core::frame::split_header;
//!
//! type Node = FixedEngine<32, 16, 64>;
//! let now = Instant::ZERO;
//! let a_id = NodeId::new("10.0.0.1:9000").unwrap();
//! let b_id = NodeId::new("10.0.0.2:9000").unwrap();
//! let mut a = Node::new(a_id, a_id, Config::mcu(), now).unwrap();
//! let mut b = Node::new(b_id, b_id, Config::mcu(), now).unwrap();
//! a.add_peer("10.0.0.2:9000", PeerSource::Static, now).unwrap();
//! a.increment(3).unwrap();
//!
//! // Move frames by hand (an adapter does this over TCP) until both are quiet.
//! fn pump(src: &mut Node, dst: &mut Node, now: Instant) -> bool {
//!     let mut buf = [0u8; 4096 + 256];
//!     let mut moved = false;
//!     while let Some(t) = src.poll_transmit(now, &mut buf) {
//!         let (from, frame) = split_header(&buf[..t.len]).unwrap();
//!         let _ = dst.handle(now, from, frame);
//!         moved = true;
//!     }
//!     moved
//! }
//! use rand::SeedableRng;
//! let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
//! let later = now + a.config().full_sync_interval;
//! a.handle_timeout(later, &mut rng);
//! while pump(&mut a, &mut b, later) | pump(&mut b, &mut a, later) {}
//! assert_eq!(b.value(), 3);
//! ```
#![cfg_attr(not(test), no_std)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(any(feature = "alloc", test))]
extern crate alloc;

mod fmt;

pub mod auth;
pub mod counter;
pub mod digest;
pub mod engine;
pub mod error;
pub mod ext;
pub mod frame;
pub mod id;
pub mod mdns;
#[cfg(feature = "membership")]
pub mod membership;
pub mod message;
mod msgpack;
pub mod named;
pub mod peers;
pub mod replica;
#[cfg(feature = "sim")]
pub mod sim;
pub mod slots;
pub mod store;
pub mod time;
pub mod union;
#[cfg(feature = "zstd")]
pub mod zstd;

pub use auth::{ClusterKey, KeyError};
pub use counter::{CounterError, Entry, FixedCounter, MergeOutcome, PnCounter};
pub use engine::{
    Config, Engine, FixedEngine, Handled, PeerError, Stats, Transmit, ANSWER_WAIT,
    DATAGRAMS_OFF_TICKS,
};
pub use error::WireError;
pub use frame::{FrameLimits, FLAG_AUTH, FLAG_ZSTD};
pub use id::{IdError, NodeId};
pub use message::{Entries, Message, MessageLimits, MessageType};
pub use msgpack::BufferTooSmall;
pub use peers::{Detector, Peer, PeerSource, PeerState, PeerTable};
pub use replica::{
    Event, FixedReplica, Identity, Incarnation, Ingress, LocalOp, PersistKind, Persisting,
    Prepared, Replica, ReplicaConfig, SnapshotPolicy, TransportStats,
};
pub use slots::{CapacityExceeded, Slots};
pub use time::{Duration, Instant, Stamp};

#[cfg(feature = "alloc")]
pub use counter::GrowableCounter;
#[cfg(feature = "alloc")]
pub use engine::GrowableEngine;
#[cfg(feature = "alloc")]
pub use replica::GrowableReplica;
#[cfg(feature = "alloc")]
pub use slots::Growable;

/// Host profile: ids up to 255 bytes (spec §7).
pub const HOST_ID_LEN: usize = 255;
/// Microcontroller profile: ids up to 64 bytes (spec §7).
pub const MCU_ID_LEN: usize = 64;
