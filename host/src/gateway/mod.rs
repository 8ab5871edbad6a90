//! # The gateway: one HTTP entry point balancing over the nodes
//!
//! | route | answer |
//! |---|---|
//! | `GET /counter` | a node's `{"value", "node"}` (retried on the next node on failure) |
//! | `POST /increment`, `POST /decrement` | optional `{"by": N}`, validated as the node does ([`crate::http::parse_by`]) → the node's answer |
//! | `GET /nodes` | `[{"url", "healthy", "id", "fails", "last_error", "latency_ms", "last_value", "last_ok_ms_ago", "last_check_ms_ago", "requests", "errors"}]` |
//! | `GET /counters`, `GET /counters/{NAME}` | a node's answer (retried on the next node on failure) |
//! | `POST /counters/{NAME}/increment`, `.../decrement` | as `POST /increment`, for a named counter (the name checked first: 400 `bad_name`) |
//! | `GET /cluster` | every node's value, peers, frame counters and named counters; `converged`, and per named counter `{"converged", "value"}` for the first 100 names (`counters_total`, `counters_converged`): see `overview.rs` |
//! | `GET /health` | `{"status": "ok"/"degraded"/"unavailable", "role": "gateway", "nodes", "healthy"}`; 503 when no node is healthy |
//! | `GET /metrics` | Prometheus text (gateway and per-node series) |
//! | `GET /` | the dashboard (one offline page, no external assets) |
//!
//! Forwarded answers carry the node's status and body and an `x-tally-node` header naming
//! the node. Every error is JSON `{"error": "…"}`: 400/413 for bad bodies, 404, 405, 503
//! `no healthy node` (safe to retry: no node was reached, nothing was written — the only 503 a
//! write gets; a node's own 503 is never passed on for a write), 502/504 when a write's outcome
//! is unknown (the message says the write may or may not have been applied; see below).
//!
//! A request whose headers are not complete within [`GatewayConfig::limits`]' deadline has its
//! connection closed, and connections are capped in all and per client (served by
//! [`crate::http::serve_router`]).
//!
//! ## Balancing, health, retries
//!
//! Requests go round-robin over the healthy nodes, through one pooled [`reqwest::Client`].
//! Every [`GatewayConfig::health_every`] each node gets `GET /health` (and `GET /counter`, for
//! `/nodes`); a node is removed from rotation when its port refuses a connection, or after
//! [`GatewayConfig::unhealthy_after`] failures in a row (requests or checks), and readmitted
//! by the first health check it passes.
//!
//! A read is retried on the other healthy nodes (after a transport error or a node's 5xx). A
//! **write is retried only when the connection could not be established**
//! ([`reqwest::Error::is_connect`]: refused, connect timeout): then the node certainly never
//! saw it. Once the request may have been sent it is never sent again, and the answer is one of:
//!
//! - the node's own 2xx or 4xx answer but 408, passed on as it is: applied, or refused before
//!   anything was written (bad amount, token, rate limit, overflow);
//! - 502 when the node answered with a 5xx, or the connection failed (reset, closed): a node's
//!   503 `not durable: …` is mostly a log failure after the write was prepared and its record
//!   handed to the log (it may be on disk, and the node's next committed write counts it), and
//!   no node 5xx guarantees that nothing was written;
//! - 504 when the node answered 408 (its deadline expired while the write waited for its
//!   commit, which may still happen) or gave no answer within [`GatewayConfig::request_timeout`].
//!
//! 502 and 504 say the write may or may not have been applied: read the counter before
//! sending it again. So the gateway can lose an *answer*, never add or drop a write.
//!
//! ## Where the nodes come from
//!
//! [`NodeSource::Static`] base URLs, or [`NodeSource::Discovery`]: the `http` URLs nodes
//! registered with a discovery service ([`crate::discovery::DiscoveryClient::http_url()`]),
//! read at start and every [`GatewayConfig::discovery_every`]; entries without one (reference
//! nodes) are skipped, and nodes no longer listed are dropped.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use tally::gateway::{serve, GatewayConfig, NodeSource};
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let config = GatewayConfig::new(NodeSource::Discovery("http://127.0.0.1:7000".into()));
//! serve(listener, config, tokio_util::sync::CancellationToken::new()).await
//! # }
//! ```

mod checks;
mod metrics;
mod nodes;
mod overview;
mod proxy;
mod routes;

pub use overview::parse_frames;

use crate::http::ServeLimits;
use crate::telemetry::Telemetry;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long an idle pooled connection to a node is kept (5 s): half the nodes' default
/// request deadline ([`crate::http::REQUEST_DEADLINE`]).
const POOL_IDLE: Duration = Duration::from_secs(crate::http::REQUEST_DEADLINE.as_secs() / 2);

/// Where the gateway finds its nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeSource {
    /// Node API base URLs (`http://host:port`; `http://` is added when missing).
    Static(Vec<String>),
    /// A discovery service's base URL; nodes are the `http` URLs it lists.
    Discovery(String),
}

/// Gateway settings. [`GatewayConfig::new`] gives the defaults. (`Debug` hides the token.)
#[derive(Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    /// The nodes.
    pub nodes: NodeSource,
    /// Health check period (default 1 s).
    pub health_every: Duration,
    /// Deadline of one health check, and of each request behind `GET /cluster` (default 800 ms).
    pub health_timeout: Duration,
    /// Deadline of a forwarded request, connect to last byte (default 5 s).
    pub request_timeout: Duration,
    /// Deadline for connecting to a node (default 1 s); a connect timeout is retried elsewhere.
    pub connect_timeout: Duration,
    /// Failures in a row that remove a node (default 2; a refused connection removes at once).
    pub unhealthy_after: u32,
    /// How often the node list is read from discovery (default 2 s).
    pub discovery_every: Duration,
    /// Idle pooled connections kept per node (default 256).
    pub max_idle_per_node: usize,
    /// The nodes' API token (`tally node --token`), sent as `Authorization: Bearer …` on every
    /// request to a node. Without it, a client's own `Authorization` header is passed on with
    /// its forwarded request, and health checks and `/cluster` go without one.
    pub node_token: Option<String>,
    /// The gateway's own HTTP server: header deadline and connection caps (default
    /// [`ServeLimits::default`]).
    pub limits: ServeLimits,
}

impl std::fmt::Debug for GatewayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayConfig")
            .field("nodes", &self.nodes)
            .field("health_every", &self.health_every)
            .field("health_timeout", &self.health_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("unhealthy_after", &self.unhealthy_after)
            .field("discovery_every", &self.discovery_every)
            .field("max_idle_per_node", &self.max_idle_per_node)
            .field(
                "node_token",
                &self.node_token.as_ref().map(|_| "<redacted>"),
            )
            .field("limits", &self.limits)
            .finish()
    }
}

impl GatewayConfig {
    /// The defaults, over `nodes`.
    pub fn new(nodes: NodeSource) -> Self {
        Self {
            nodes,
            health_every: Duration::from_secs(1),
            health_timeout: Duration::from_millis(800),
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(1),
            unhealthy_after: 2,
            discovery_every: Duration::from_secs(2),
            max_idle_per_node: 256,
            node_token: None,
            limits: ServeLimits::default(),
        }
    }
}

/// Builds the gateway state: the pooled client, the static nodes (if any), the metrics.
fn build(config: GatewayConfig, telemetry: Telemetry) -> std::io::Result<proxy::GatewayHandle> {
    let client = reqwest::Client::builder()
        .connect_timeout(config.connect_timeout)
        .pool_max_idle_per_host(config.max_idle_per_node)
        // Below the nodes' header deadline (10 s by default), which also closes a keep-alive
        // connection left idle that long: the gateway drops a pooled connection before a node
        // does, so a write is never sent into a connection the node is closing.
        .pool_idle_timeout(POOL_IDLE)
        .tcp_nodelay(true)
        .no_proxy()
        .build()
        .map_err(std::io::Error::other)?;
    let node_auth = match &config.node_token {
        Some(token) => {
            let mut value = axum::http::HeaderValue::try_from(format!("Bearer {token}"))
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            value.set_sensitive(true);
            Some(value)
        }
        None => None,
    };
    let nodes = match &config.nodes {
        NodeSource::Static(urls) => nodes::NodeSet::new(urls),
        NodeSource::Discovery(_) => nodes::NodeSet::default(),
    };
    let gateway = Arc::new(proxy::Gateway {
        config,
        client,
        nodes,
        metrics: metrics::GatewayMetrics::new(telemetry),
        cluster: overview::ClusterCache::default(),
        node_auth,
    });
    gateway.publish_rotation();
    Ok(gateway)
}

/// Serves the gateway on `listener` until `shutdown` is cancelled, with its own metrics
/// registry. See [`serve_with_telemetry`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: GatewayConfig,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    serve_with_telemetry(listener, config, Telemetry::new(), shutdown).await
}

/// Serves the gateway on `listener` until `shutdown` is cancelled, recording into
/// `telemetry` (its `GET /metrics`). With [`NodeSource::Discovery`] the node list is read
/// once before serving (a failure is logged and retried by the refresh loop). Runs the health
/// checks, the discovery refresh and the metrics upkeep; returns once in-flight requests have
/// finished and the loops have stopped. Errors: building the HTTP client, or serving.
pub async fn serve_with_telemetry(
    listener: tokio::net::TcpListener,
    config: GatewayConfig,
    telemetry: Telemetry,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let gateway = build(config, telemetry.clone())?;
    let loops = shutdown.child_token();
    let mut tasks = vec![telemetry.spawn_upkeep(loops.clone())];
    if let NodeSource::Discovery(url) = &gateway.config.nodes {
        if let Err(error) = checks::refresh_from_discovery(&gateway, url).await {
            tracing::warn!(%url, %error, "gateway: discovery not reachable yet; will retry");
        }
        tasks.push(tokio::spawn(checks::discovery_loop(
            Arc::clone(&gateway),
            url.clone(),
            loops.clone(),
        )));
    }
    tasks.push(tokio::spawn(checks::health_loop(
        Arc::clone(&gateway),
        loops.clone(),
    )));
    if let Ok(addr) = listener.local_addr() {
        let (healthy, total) = gateway.nodes.counts();
        tracing::info!(%addr, nodes = total, healthy, "gateway listening");
    }
    let routes = routes::router(Arc::clone(&gateway));
    let limits = gateway.config.limits;
    let result =
        crate::http::serve_router(listener, routes, limits, Arc::default(), shutdown).await;
    loops.cancel();
    for task in tasks {
        if let Err(e) = task.await {
            tracing::warn!(error = %e, "gateway task failed");
        }
    }
    result
}
