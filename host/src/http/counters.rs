//! The named counters' routes: `GET /counters`, `GET|DELETE /counters/{name}`,
//! `POST /counters/{name}/increment|decrement`. The unnamed routes keep meaning the default
//! counter.

use super::amount::parse_by;
use super::api::{body_error, write_error, NodeApi};
use super::error::ApiError;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use tally_core::named::{CounterName, MapError};
use tally_std::LocalOp;

/// `GET /counters`.
#[derive(Serialize)]
pub struct CountersAnswer {
    /// The default counter's value.
    pub default: i128,
    /// Every named counter that exists, by name.
    pub counters: BTreeMap<String, i128>,
}

/// `GET /counters/{name}` and the answers of its writes.
#[derive(Serialize)]
pub struct NamedAnswer {
    /// The counter.
    pub name: String,
    /// Its value as the answering node knows it.
    pub value: i128,
    /// The answering node's id.
    pub node: String,
}

/// `DELETE /counters/{name}`.
#[derive(Serialize)]
pub struct RemovedAnswer {
    /// The counter.
    pub name: String,
    /// It was removed (as this node observed it).
    pub removed: bool,
    /// The answering node's id.
    pub node: String,
}

fn checked(name: &str) -> Result<CounterName, ApiError> {
    CounterName::new(name)
        .map_err(|e| ApiError::bad_request(e.to_string()).with_code(MapError::BadName(e).name()))
}

fn unknown(name: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("no counter named {name:?}"))
        .with_code("not_found")
}

/// `GET /counters` → `{"default": V, "counters": {name: value, …}}`.
pub async fn list(State(app): State<Arc<NodeApi>>) -> Json<CountersAnswer> {
    Json(CountersAnswer {
        default: app.node.value(),
        counters: app.node.counters().into_iter().collect(),
    })
}

/// `GET /counters/{name}` → `{"name", "value", "node"}`; 404 for a counter that does not exist.
pub async fn get(
    State(app): State<Arc<NodeApi>>,
    Path(name): Path<String>,
) -> Result<Json<NamedAnswer>, ApiError> {
    let name = checked(&name)?;
    let value = app
        .node
        .counter_value(name.as_str())
        .ok_or_else(|| unknown(name.as_str()))?;
    Ok(Json(NamedAnswer {
        name: name.as_str().to_string(),
        value,
        node: app.node.id(),
    }))
}

/// `POST /counters/{name}/increment` with optional `{"by": N}` → as `GET`.
pub async fn increment(
    State(app): State<Arc<NodeApi>>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<NamedAnswer>, ApiError> {
    write(&app, &name, LocalOp::Increment, body).await
}

/// `POST /counters/{name}/decrement` with optional `{"by": N}` → as `GET`.
pub async fn decrement(
    State(app): State<Arc<NodeApi>>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<NamedAnswer>, ApiError> {
    write(&app, &name, LocalOp::Decrement, body).await
}

async fn write(
    app: &NodeApi,
    name: &str,
    op: fn(u64) -> LocalOp,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<NamedAnswer>, ApiError> {
    let name = checked(name)?;
    let by = parse_by(&body.map_err(body_error)?)?;
    let value = app
        .writes
        .apply_to(Some(name.as_str()), op(by))
        .await
        .map_err(write_error)?;
    Ok(Json(NamedAnswer {
        name: name.as_str().to_string(),
        value,
        node: app.node.id(),
    }))
}

/// `DELETE /counters/{name}`: observed-remove (increments other nodes make concurrently
/// survive); answered once durable. 404 for a counter that does not exist.
pub async fn remove(
    State(app): State<Arc<NodeApi>>,
    Path(name): Path<String>,
) -> Result<Json<RemovedAnswer>, ApiError> {
    let name = checked(&name)?;
    let node = Arc::clone(&app.node);
    let owned = name.as_str().to_string();
    let removed = tokio::task::spawn_blocking(move || node.remove_counter(&owned))
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?
        .map_err(write_error)?;
    if !removed {
        return Err(unknown(name.as_str()));
    }
    Ok(Json(RemovedAnswer {
        name: name.as_str().to_string(),
        removed,
        node: app.node.id(),
    }))
}
