//! # Discovery (spec §9)
//!
//! How nodes that know nothing of each other find each other: a small HTTP service keeps the
//! gossip addresses of the nodes that registered with it, and each node periodically adds the
//! addresses it lists to its peer table. Gossip itself never goes through the service, so a
//! node whose discovery service is down keeps working with the peers it already knows.
//!
//! - [`server`]: the service — `POST /register`, `POST /heartbeat`, `GET /peers` — over a
//!   bounded [`Registry`] whose entries expire when unseen for
//!   [`DiscoveryConfig::cleanup_after`]. Start it with [`serve`] on a bound listener.
//! - [`client`]: the node side — [`DiscoveryClient::run`] registers, heartbeats every second,
//!   and refreshes the peers of a [`tally_std::Node`] from `/peers`.
//!
//! ## Tally's extension: HTTP URLs
//!
//! A node may register `{"addr": gossip, "http": "http://host:port"}`
//! ([`DiscoveryClient::http_url()`]); the service keeps the URL and lists it as `"http"` in that
//! node's `/peers` entry, and the gateway ([`crate::gateway`]) reads those URLs
//! ([`http_urls`]) to find the nodes' APIs. Entries without one are exactly the reference's.
//!
//! ## Reference compatibility
//!
//! Both sides speak the Go reference's JSON: request bodies `{"addr":"host:port"}`, and
//! `GET /peers` answers `[{"addr":"host:port","LastSeen":"…"}, …]`. A reference node can
//! register with this service, and [`DiscoveryClient`] can use a reference service (it ignores
//! fields it does not know, such as the reference's zero `LastSeen`). This service is stricter
//! than the reference where the reference is unbounded or unchecked: addresses must be
//! `host:port` ([`tally_core::frame::is_gossip_address`]), bodies are at most
//! [`server::MAX_BODY`] bytes and the registry at most [`DiscoveryConfig::max_peers`] entries;
//! every error is JSON `{"error":"…"}`.
//!
//! ## Who owns time
//!
//! Tokio: expiry uses [`tokio::time::Instant`] and the sweep, heartbeat and refresh loops are
//! tokio intervals; the wall clock only prints `LastSeen`. Both [`serve`] and
//! [`DiscoveryClient::run`] must run inside a tokio runtime and stop when their
//! [`CancellationToken`](tokio_util::sync::CancellationToken) is cancelled.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use tally::discovery::{serve, DiscoveryConfig};
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8500").await?;
//! serve(listener, DiscoveryConfig::default(), shutdown).await
//! # }
//! ```

pub mod client;
pub mod server;

pub use client::{http_urls, DiscoveryClient};
pub use server::{
    is_http_url, router, serve, sweep_loop, DiscoveryConfig, PeerRecord, Registry, RegistryError,
};
