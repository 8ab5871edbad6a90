//! The HTTP API of a node (JSON; spec of routes in README).
//!
//! | route | answer |
//! |---|---|
//! | `GET /counter` | `{"value": V, "node": ID}` |
//! | `POST /increment`, `POST /decrement` | body `{"by": N}` optional (default 1) → `{"value": V, "node": ID}` |
//! | `GET /local-counter` | this node's own `inc`, `dec`, `value` |
//! | `GET /state` | `{"inc": {id: n}, "dec": {id: n}}` |
//! | `GET /peers` | `[{"addr", "status", "source", "fails", "last_seen_ms_ago"}]` |
//! | `GET /health` | `{"status": "ok", …}` |
//!
//! Bad input (zero, negative, non-integer or oversized `by`, bad JSON, unknown route, wrong
//! method, a body over 4 KiB) gets a 4xx and `{"error": "..."}`, and changes nothing. With a
//! token, writes (and optionally reads) without `Authorization: Bearer TOKEN` get 401; a client
//! over its request rate gets 429; a request whose headers are not complete within the deadline
//! has its connection closed, and one whose body and answer are not complete within it again
//! gets 408. Connections are capped in all and per client ([`ServeLimits`]; [`serve_router`]
//! serves all three HTTP services: this API, the gateway and discovery).

mod amount;
mod api;
mod counters;
mod error;
mod guard;
mod metrics;
mod server;

pub use amount::{parse_by, MAX_BY};
pub use api::NodeApi;
pub use error::ApiError;
pub use guard::{ApiOptions, Guard, GuardCounters};
pub use metrics::WalMetrics;
pub use server::{
    serve as serve_router, ConnectionCounters, ServeLimits, MAX_CONNECTIONS,
    MAX_CONNECTIONS_PER_CLIENT, REQUEST_DEADLINE, SHUTDOWN_GRACE,
};

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Largest request body accepted.
pub const MAX_BODY: usize = 4 * 1024;

/// The node API's routes (and its dashboard and `/metrics`), protected by the state's guard
/// (token, rate limit, request deadline).
pub fn router(app: Arc<NodeApi>) -> Router {
    let guard = Arc::clone(&app.guard);
    let timeout = guard_timeout(&guard);
    Router::new()
        .route("/counter", get(api::counter))
        .route("/increment", post(api::increment))
        .route("/decrement", post(api::decrement))
        .route("/counters", get(counters::list))
        .route(
            "/counters/{name}",
            get(counters::get).delete(counters::remove),
        )
        .route("/counters/{name}/increment", post(counters::increment))
        .route("/counters/{name}/decrement", post(counters::decrement))
        .route("/local-counter", get(api::local_counter))
        .route("/state", get(api::state))
        .route("/peers", get(api::peers))
        .route("/members", get(api::members))
        .route("/health", get(api::health))
        .route("/metrics", get(metrics::handler))
        .merge(crate::dashboard::router())
        .method_not_allowed_fallback(error::method_not_allowed)
        .fallback(error::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(guard, guard::check))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&app),
            metrics::count_requests,
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .with_state(app)
}

fn guard_timeout(guard: &Guard) -> std::time::Duration {
    guard.request_timeout()
}

/// Serves the node API's `router` on `listener` until `shutdown` is cancelled: each request's
/// headers within `guard`'s request deadline, connections within the default caps
/// ([`ServeLimits::default`]), refusals counted in `guard.counters.connections`. Returns once
/// in-flight requests have finished (at most [`SHUTDOWN_GRACE`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    guard: Arc<Guard>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let limits = ServeLimits {
        header_timeout: guard.request_timeout(),
        ..ServeLimits::default()
    };
    let counters = Arc::clone(&guard.counters.connections);
    server::serve(listener, router, limits, counters, shutdown).await
}
