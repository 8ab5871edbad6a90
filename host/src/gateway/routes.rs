//! The gateway's HTTP routes; every answer is JSON but `/metrics` (Prometheus text) and the
//! dashboard's assets.

use super::proxy::{Answer, GatewayHandle};
use crate::http::{parse_by, ApiError, MAX_BODY};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::time::Instant;

/// The header naming the node that answered a forwarded request.
pub const NODE_HEADER: &str = "x-tally-node";

/// Routes, as the `route` label of the request metrics shows them.
const ROUTES: [&str; 11] = [
    "/counter",
    "/counters",
    "/increment",
    "/decrement",
    "/nodes",
    "/cluster",
    "/health",
    "/metrics",
    "/",
    "/dashboard.js",
    "/dashboard.css",
];

fn route_label(path: &str) -> &'static str {
    // One label for every named counter: names never become label values here.
    if path.starts_with("/counters/") {
        return "/counters/{name}";
    }
    ROUTES
        .iter()
        .find(|r| **r == path)
        .copied()
        .unwrap_or("other")
}

/// The gateway's router over `gateway`.
pub fn router(gateway: GatewayHandle) -> Router {
    Router::new()
        .route("/counter", get(counter))
        .route("/increment", post(increment))
        .route("/decrement", post(decrement))
        .route("/counters", get(counters))
        .route("/counters/{name}", get(named))
        .route("/counters/{name}/increment", post(named_increment))
        .route("/counters/{name}/decrement", post(named_decrement))
        .route("/nodes", get(nodes))
        .route("/cluster", get(cluster))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .merge(crate::dashboard::router())
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(from_fn_with_state(gateway.clone(), track))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(gateway)
}

/// Counts every answer by route and status, and times it.
async fn track(State(gateway): State<GatewayHandle>, request: Request, next: Next) -> Response {
    let route = route_label(request.uri().path());
    let started = Instant::now();
    let response = next.run(request).await;
    gateway
        .metrics
        .request(route, response.status().as_u16(), started.elapsed());
    response
}

fn forward(result: Result<Answer, ApiError>) -> Response {
    match result {
        Ok(answer) => {
            let mut response = (
                answer.status,
                [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
                answer.body,
            )
                .into_response();
            if let Ok(node) = HeaderValue::try_from(answer.node) {
                response
                    .headers_mut()
                    .insert(HeaderName::from_static(NODE_HEADER), node);
            }
            response
        }
        Err(e) => e.into_response(),
    }
}

fn amount(body: Result<Bytes, BytesRejection>) -> Result<u64, ApiError> {
    let body = body.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
    parse_by(&body)
}

/// `GET /counter`: a node's `{"value","node"}`, retried on the other nodes.
async fn counter(State(gateway): State<GatewayHandle>, headers: HeaderMap) -> Response {
    let auth = headers.get(AUTHORIZATION);
    forward(gateway.read("/counter", "/counter", auth).await)
}

/// `POST /increment` with the node's `{"by": N}` rules.
async fn increment(
    State(gateway): State<GatewayHandle>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let auth = headers.get(AUTHORIZATION);
    match amount(body) {
        Ok(by) => forward(gateway.write("/increment", "/increment", by, auth).await),
        Err(e) => e.into_response(),
    }
}

/// `POST /decrement` with the node's `{"by": N}` rules.
async fn decrement(
    State(gateway): State<GatewayHandle>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let auth = headers.get(AUTHORIZATION);
    match amount(body) {
        Ok(by) => forward(gateway.write("/decrement", "/decrement", by, auth).await),
        Err(e) => e.into_response(),
    }
}

/// `GET /counters`: a node's `{"default", "counters"}`, retried on the other nodes.
async fn counters(State(gateway): State<GatewayHandle>, headers: HeaderMap) -> Response {
    let auth = headers.get(AUTHORIZATION);
    forward(gateway.read("/counters", "/counters", auth).await)
}

/// A checked counter name (so that a forwarded path is always one route of the node; `.` and
/// `..`, which a URL path would resolve away, are not names).
fn counter_name(name: &str) -> Result<&str, ApiError> {
    tally_core::named::CounterName::new(name)
        .map_err(|e| ApiError::bad_request(e.to_string()).with_code("bad_name"))?;
    Ok(name)
}

/// `GET /counters/{name}`, retried on the other nodes.
async fn named(
    State(gateway): State<GatewayHandle>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let auth = headers.get(AUTHORIZATION);
    match counter_name(&name) {
        Ok(n) => forward(
            gateway
                .read("/counters/{name}", &format!("/counters/{n}"), auth)
                .await,
        ),
        Err(e) => e.into_response(),
    }
}

/// `POST /counters/{name}/increment` with the node's `{"by": N}` rules.
async fn named_increment(
    State(gateway): State<GatewayHandle>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    named_write(gateway, &name, "increment", headers, body).await
}

/// `POST /counters/{name}/decrement` with the node's `{"by": N}` rules.
async fn named_decrement(
    State(gateway): State<GatewayHandle>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    named_write(gateway, &name, "decrement", headers, body).await
}

async fn named_write(
    gateway: GatewayHandle,
    name: &str,
    op: &str,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let auth = headers.get(AUTHORIZATION);
    let checked = counter_name(name).and_then(|n| Ok((n, amount(body)?)));
    match checked {
        Ok((n, by)) => {
            let path = format!("/counters/{n}/{op}");
            forward(gateway.write("/counters/{name}", &path, by, auth).await)
        }
        Err(e) => e.into_response(),
    }
}

/// `GET /nodes`: every node with its health, last error, latency and last value.
async fn nodes(State(gateway): State<GatewayHandle>) -> Response {
    let views: Vec<_> = gateway.nodes.all().iter().map(|n| n.view()).collect();
    Json(views).into_response()
}

/// `GET /cluster`: see [`super::cluster`].
async fn cluster(State(gateway): State<GatewayHandle>) -> Response {
    let snapshot = gateway.cluster.get(&gateway).await;
    Json(&*snapshot).into_response()
}

/// `GET /health`: 200 while at least one node is healthy, else 503.
async fn health(State(gateway): State<GatewayHandle>) -> Response {
    let (healthy, total) = gateway.nodes.counts();
    let (status, word) = match healthy {
        0 => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        h if h < total => (StatusCode::OK, "degraded"),
        _ => (StatusCode::OK, "ok"),
    };
    let body = serde_json::json!({
        "status": word,
        "role": "gateway",
        "nodes": total,
        "healthy": healthy,
    });
    (status, Json(body)).into_response()
}

/// `GET /metrics`: the gateway's own series, Prometheus text.
async fn metrics(State(gateway): State<GatewayHandle>) -> Response {
    gateway.publish_rotation();
    gateway.metrics.telemetry().response()
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this route",
    )
}
