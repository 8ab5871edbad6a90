//! # tally (host library)
//!
//! Everything the `tally` binary runs, as a library: the node service (gossip node from
//! `tally-std` + HTTP API + discovery client), the discovery service, the local cluster, the
//! command line and a simulated demo. The binary's `main` only parses arguments and calls
//! [`cli::run`].
//!
//! ## Who owns I/O and time
//!
//! The gossip node runs on `tally-std`'s threads. HTTP (API, discovery, client) runs on a tokio
//! runtime created by [`cli::run`]; library users bring their own runtime.

pub mod bench;
pub mod cli;
pub mod cluster;
pub mod dashboard;
pub mod demo;
pub mod discovery;
pub mod durable;
pub mod gateway;
pub mod http;
pub mod service;
pub mod sim;
pub mod telemetry;
pub mod wal;
