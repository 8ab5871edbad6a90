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
//! - [`dns`]: DNS seeds (`--peers-dns`): A/AAAA or SRV records resolved periodically into
//!   peers, without any service of ours.
//! - [`mdns`]: zero-config on a LAN (`--mdns`): mDNS/DNS-SD announcement and browsing of
//!   `_tally._tcp`.
//! - [`client`]: the node side — [`DiscoveryClient::run`] registers, heartbeats (every 2 s by
//!   default), and refreshes the peers of a [`tally_std::Node`] from `/peers`.
//!
//! ## Lean discovery: change tags and announced expiry (Tally extension)
//!
//! Idle nodes should cost next to nothing. The service keeps a registry generation that
//! changes only when the registered addresses (or their `http` URLs) change, and sends its tag
//! `"<generation>"`:
//!
//! | answer | header | value |
//! |---|---|---|
//! | `GET /peers` | [`ETAG`] (`ETag`) | the tag; `If-None-Match` holding it gets `304 Not Modified`, empty |
//! | `POST /register`, `POST /heartbeat` | [`REGISTRY_HEADER`] (`X-Tally-Registry`) | the tag |
//! | `POST /register`, `POST /heartbeat` | [`TTL_HEADER`] (`X-Tally-Ttl`) | [`DiscoveryConfig::cleanup_after`] in seconds (`30`, `0.5`) |
//!
//! [`DiscoveryClient`] fetches `/peers` once after registering and then only when a heartbeat
//! answer's tag differs from the tag of the list it applied (with `If-None-Match`), and
//! heartbeats every `max(heartbeat_every, min(ttl / 3, 8 s))`: with the default 30 s expiry,
//! one small POST every 8 s per node and no `/peers` traffic while nothing changes. A newcomer
//! is therefore learnt within one heartbeat interval (≤ 8 s).
//!
//! The default expiry ([`DiscoveryConfig::cleanup_after`], 30 s) trades traffic for
//! staleness: a node that died stays listed up to 30 s, and nodes that fetch the list in that
//! time add it and leave it to their own failure detectors to skip.
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
//! register with this service (it heartbeats every second and polls `/peers` every 2 s,
//! ignoring the extra headers), and [`DiscoveryClient`] can use a reference service (it ignores
//! fields it does not know, such as the reference's zero `LastSeen`; without tags or an
//! expiry header it heartbeats every [`client::DEFAULT_HEARTBEAT`], 2 s, well inside the
//! reference's 5 s expiry, and polls `/peers` every [`client::DEFAULT_REFRESH`], 2 s). This service is stricter
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
pub mod dns;
pub mod mdns;
pub mod server;

pub use client::{http_urls, DiscoveryClient};
pub use server::{
    is_http_url, router, serve, serve_registry, sweep_loop, tag, DiscoveryConfig, PeerRecord,
    Registry, RegistryError, ETAG, REGISTRY_HEADER, TTL_HEADER,
};
