//! A deterministic network of real [`Engine`](crate::Engine)s on virtual time.
//!
//! Every node is the real engine code; only the wire is simulated: each transmit becomes a
//! delivery event after a random latency (so frames reorder), may be lost or duplicated, and
//! fails at once (as a refused TCP connect) when the receiver is crashed or on the other side
//! of a partition. Everything random comes from one [`SimRng`] seeded by the caller, so a run
//! is a pure function of its seed and inputs. It is the harness of the core's multi-engine
//! tests and the engine of `tally sim`.

mod network;
mod rng;
#[cfg(feature = "membership")]
mod swim;

pub use network::{NetConfig, NetStats, Network, Topology};
pub use rng::SimRng;
#[cfg(feature = "membership")]
pub use swim::{Seen, SwimNet, ADDR_LEN};
