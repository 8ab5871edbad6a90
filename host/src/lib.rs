//! # tally (host library)
//!
//! The host side of Tally. Grows with the node daemon, discovery, gateway and simulator.
