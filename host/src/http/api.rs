//! The node's JSON API: counter, increments, state, peers, health.

use super::amount::parse_by;
use super::error::ApiError;
use crate::durable::Writes;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use tally_std::{LocalOp, Node, NodeError, PeerSource, PeerState};

/// What the API's handlers serve: the node, its write path, its log, guard and metrics.
#[derive(Clone)]
pub struct NodeApi {
    /// The gossip node.
    pub node: Arc<Node>,
    /// The (durable) write path.
    pub writes: Writes,
    /// The write-ahead log, with a data directory.
    pub wal: Option<Arc<crate::wal::Wal>>,
    /// The API's protection and its counters.
    pub guard: Arc<super::Guard>,
    /// This node's metrics registry.
    pub telemetry: crate::telemetry::Telemetry,
}

// The answers carrying a value are typed: serde_json writes an `i128` exactly, while its
// `Value` (and so `json!`) cannot hold one outside `i64`/`u64`, and a counter's value spans
// ±(2^64 − 1) per entry.

/// `{"value": V, "node": ID}`.
#[derive(Serialize)]
pub struct ValueAnswer {
    /// The counter's value (Σinc − Σdec).
    pub value: i128,
    /// The answering node's id.
    pub node: String,
}

/// `GET /local-counter`.
#[derive(Serialize)]
pub struct LocalAnswer {
    /// The answering node's id.
    pub node: String,
    /// Its own increments.
    pub inc: u64,
    /// Its own decrements.
    pub dec: u64,
    /// `inc − dec`.
    pub value: i128,
}

/// `GET /state`.
#[derive(Serialize)]
pub struct StateAnswer {
    /// The answering node's id.
    pub node: String,
    /// Non-zero increment totals by id.
    pub inc: BTreeMap<String, u64>,
    /// Non-zero decrement totals by id.
    pub dec: BTreeMap<String, u64>,
    /// The counter's value.
    pub value: i128,
}

/// `GET /counter` → `{"value": V, "node": ID}`.
pub async fn counter(State(app): State<Arc<NodeApi>>) -> Json<ValueAnswer> {
    let node = &app.node;
    Json(ValueAnswer {
        value: node.value(),
        node: node.id(),
    })
}

/// `POST /increment` with optional `{"by": N}` → `{"value": V, "node": ID}`.
pub async fn increment(
    State(app): State<Arc<NodeApi>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ValueAnswer>, ApiError> {
    write(&app, LocalOp::Increment, body).await
}

/// `POST /decrement` with optional `{"by": N}` → `{"value": V, "node": ID}`.
pub async fn decrement(
    State(app): State<Arc<NodeApi>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ValueAnswer>, ApiError> {
    write(&app, LocalOp::Decrement, body).await
}

pub(super) async fn write(
    app: &NodeApi,
    op: fn(u64) -> LocalOp,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ValueAnswer>, ApiError> {
    let by = parse_by(&body.map_err(body_error)?)?;
    let value = app.writes.apply(op(by)).await.map_err(write_error)?;
    Ok(Json(ValueAnswer {
        value,
        node: app.node.id(),
    }))
}

pub(super) fn body_error(e: BytesRejection) -> ApiError {
    ApiError::new(e.status(), e.body_text())
}

pub(super) fn write_error(e: NodeError) -> ApiError {
    match e {
        NodeError::Overflow => ApiError::new(StatusCode::CONFLICT, e.to_string()),
        NodeError::Counter(c) => {
            // A bad name is the request's fault; no room is the cluster's state.
            let status = match c {
                tally_core::named::MapError::BadName(_) => StatusCode::BAD_REQUEST,
                _ => StatusCode::CONFLICT,
            };
            ApiError::new(status, c.to_string()).with_code(c.name())
        }
        other => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, other.to_string()),
    }
}

/// `GET /local-counter` → this node's own totals.
pub async fn local_counter(State(app): State<Arc<NodeApi>>) -> Json<LocalAnswer> {
    let node = &app.node;
    let (inc, dec) = node.local();
    Json(LocalAnswer {
        node: node.id(),
        inc,
        dec,
        value: i128::from(inc) - i128::from(dec),
    })
}

/// `GET /state` → `{"inc": {id: n}, "dec": {id: n}}` (non-zero entries).
pub async fn state(State(app): State<Arc<NodeApi>>) -> Json<StateAnswer> {
    let node = &app.node;
    let mut inc = BTreeMap::new();
    let mut dec = BTreeMap::new();
    for e in node.state() {
        if e.inc > 0 {
            inc.insert(e.id.clone(), e.inc);
        }
        if e.dec > 0 {
            dec.insert(e.id, e.dec);
        }
    }
    Json(StateAnswer {
        node: node.id(),
        inc,
        dec,
        value: node.value(),
    })
}

/// One peer in `GET /peers`.
#[derive(Serialize)]
pub struct PeerView {
    /// Gossip address.
    pub addr: String,
    /// `alive` or `down`.
    pub status: &'static str,
    /// `static`, `discovered` or `sender`.
    pub source: &'static str,
    /// Consecutive send failures.
    pub fails: u8,
    /// Milliseconds since a valid frame came from it (`null` if never).
    pub last_seen_ms_ago: Option<u64>,
}

/// `GET /peers`.
pub async fn peers(State(app): State<Arc<NodeApi>>) -> Json<Vec<PeerView>> {
    let node = &app.node;
    Json(
        node.peers()
            .into_iter()
            .map(|p| PeerView {
                addr: p.addr,
                status: p.state.name(),
                source: match p.source {
                    PeerSource::Static => "static",
                    PeerSource::Discovered => "discovered",
                    PeerSource::Dns => "dns",
                    PeerSource::Mdns => "mdns",
                    PeerSource::Swim => "swim",
                    PeerSource::Sender => "sender",
                },
                fails: p.fails,
                last_seen_ms_ago: p.last_heard_ms_ago,
            })
            .collect(),
    )
}

/// One SWIM member in `GET /members`.
#[derive(Serialize)]
pub struct MemberView {
    /// Gossip address.
    pub addr: String,
    /// Generation (bumped each time it rejoined after being declared down).
    pub generation: u16,
    /// `alive`, `suspect` or `down`.
    pub state: &'static str,
}

/// `GET /members`: SWIM's view of the cluster (`enabled: false` when membership is off).
pub async fn members(State(app): State<Arc<NodeApi>>) -> Json<serde_json::Value> {
    let node = &app.node;
    let members: Vec<MemberView> = node
        .members()
        .into_iter()
        .map(|m| MemberView {
            addr: m.addr,
            generation: m.generation,
            state: m.state,
        })
        .collect();
    Json(serde_json::json!({ "enabled": node.has_membership(), "members": members }))
}

/// `GET /health`.
pub async fn health(State(app): State<Arc<NodeApi>>) -> Json<Value> {
    let node = &app.node;
    let peers = node.peers();
    let alive = peers.iter().filter(|p| p.state == PeerState::Alive).count();
    Json(json!({
        "status": "ok",
        "node": node.id(),
        "peers": peers.len(),
        "peers_alive": alive,
        // false while the cluster holds more entries than this node has room for.
        "complete": node.is_complete(),
    }))
}
