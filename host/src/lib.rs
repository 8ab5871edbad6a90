//! # tally (host library)
//!
//! The host side of Tally. Today it holds [`demo`], a local cluster of real engines on the
//! core's simulated network; the TCP node daemon, discovery, gateway and simulator CLI join it
//! as their issues land. I/O and time are owned here (the core owns neither).

pub mod demo;
