//! # tally-std
//!
//! Runs a `tally-core` [`Replica`](tally_core::Replica) on std TCP, with plain threads — no async
//! runtime is imposed on the program that links it:
//!
//! ```no_run
//! # fn main() -> Result<(), tally_std::NodeError> {
//! let node = tally_std::Node::start(tally_std::NodeConfig::new("127.0.0.1:0".parse().unwrap()))?;
//! node.increment(1)?;
//! assert_eq!(node.value(), 1);
//! node.counter("doors")?.increment(2)?;
//! assert_eq!(node.counter("doors")?.value(), Some(2));
//! # Ok(()) }
//! ```
//!
//! ## Who owns I/O and time
//!
//! This crate moves bytes and waits for the disk; everything else — identity, the
//! persistence protocol, header splitting, reject and transport counting, events — is the
//! core's [`Replica`](tally_core::Replica), which sits behind a mutex shared by:
//! - the **driver** thread: runs due timers (`handle_timeout`), hands queued records to the
//!   journal, drains `poll_transmit` and `poll_event`, and sleeps until the next
//!   `poll_timeout` or until kicked by a thread that fed the replica;
//! - the **listener**: an accept thread and a fixed pool of readers; each connection carries one
//!   frame (spec §2), read to end of stream within `read_timeout` and the frame limit, then
//!   `ingest`ed. Connections beyond the workers and the bounded backlog are shed and counted;
//! - the **senders**: a small pool that connects (with `connect_timeout`), writes the whole
//!   payload in one `write`, closes, and reports `on_delivered` / `on_send_failed` — or, for a
//!   frame the core marks as a datagram, sends it from the gossip port's UDP socket;
//! - the **datagram reader** (unless [`NodeConfig::max_datagram`] is 0): one thread reading the
//!   UDP socket bound beside the TCP listener, each datagram one payload, `ingest_datagram`ed
//!   (`docs/EXTENSIONS.md` §5);
//! - with a [`Journal`], the **committer**: waits until the newest pending write's record is
//!   durable, commits every write up to it under one lock and answers them.
//!
//! The core's clock is milliseconds since the node started. Messages over 1024 bytes are zstd
//! compressed (level 3, window 2^13 = 8 KiB so microcontrollers can decode them; see
//! [`compress`]).

pub mod compress;
mod config;
mod datagram;
mod journal;
mod listener;
mod named;
mod node;
mod sender;
mod state;

pub use config::NodeConfig;
pub use journal::{Journal, JournalError};
pub use named::NamedCounter;
pub use node::{EntryInfo, MemberInfo, Node, NodeError, PeerInfo};
pub use state::HostReplica;
pub use tally_core::replica::{LocalOp, PersistKind};
pub use tally_core::{PeerSource, PeerState, Stats, TransportStats};
