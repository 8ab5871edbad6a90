//! # tally (host library)
//!
//! Everything the `tally` binary runs, as a library: the node service (gossip node from
//! `tally-std` + HTTP API + discovery client), the discovery service, the local cluster, the
//! command line. The binary's `main` only parses arguments and calls
//! [`cli::run`].
//!
//! ## Who owns I/O and time
//!
//! The gossip node runs on `tally-std`'s threads. HTTP (API, discovery, client) runs on a tokio
//! runtime created by [`cli::run`]; library users bring their own runtime.

//!
//! ## What an embedding program uses
//!
//! | module | what |
//! |---|---|
//! | [`service`] | [`service::NodeService`]: one complete node (gossip, HTTP API, discovery client, durability) |
//! | [`durable`], [`wal`] | the write-ahead log and the node's journal on it |
//! | [`http`] | the node's HTTP API as an axum router |
//! | [`discovery`] | the discovery service and its client |
//! | [`gateway`] | the API gateway and its dashboard |
//! | [`telemetry`] | per-server Prometheus registries |
//! | [`cli`] | the command line (what the binary runs) |
//!
//! The developers' tools (`tally demo`, `tally sim`, `tally scaling`) and their dependencies
//! are behind the `dev-tools` feature.

mod bench;
pub mod chaos;
pub mod cli;
mod dashboard;
#[cfg(feature = "dev-tools")]
mod demo;
pub mod discovery;
pub mod durable;
pub mod gateway;
pub mod http;
mod local_cluster;
pub mod quiet_bench;
pub mod service;
#[cfg(feature = "dev-tools")]
pub mod simulation;
#[cfg(feature = "dev-tools")]
pub mod swim_bench;
pub mod telemetry;
pub mod wal;
