//! The discovery HTTP service of spec §9: a bounded, expiring registry of gossip addresses.
//!
//! | route | body | answer |
//! |---|---|---|
//! | `POST /register` | `{"addr":"host:port", "http"?: "http://host:port"}` | 200 `{}`; 400 on bad JSON, missing/empty addr, not `host:port` or a bad `http`; 503 when full |
//! | `POST /heartbeat` | same | 200 `{}` (refreshes last-seen; an unknown addr is registered) |
//! | `GET /peers` | — | 200 `[{"addr":"host:port","LastSeen":"<RFC 3339>", "http"?: "…"}, …]`, sorted by addr, with `ETag`; 304 (empty) when `If-None-Match` holds the current tag |
//!
//! ## Change signal (Tally extension)
//!
//! The registry has a generation ([`Registry::generation`]) that changes whenever the set of
//! registered addresses or their `http` URLs changes — a new address, a changed URL, an expiry
//! — and never on a plain heartbeat. Its tag is `"<generation>"` (a quoted decimal):
//!
//! - `GET /peers` sends it as [`ETAG`] and answers `If-None-Match` holding it (or `*`) with
//!   `304 Not Modified` and an empty body;
//! - `POST /register` and `POST /heartbeat` answers carry it as [`REGISTRY_HEADER`]
//!   (`X-Tally-Registry`), with the service's expiry [`TTL_HEADER`] (`X-Tally-Ttl`, seconds,
//!   possibly fractional), so a node learns from its heartbeat whether to fetch `/peers` at all,
//!   and how often it must heartbeat.
//!
//! The first generation is taken from the wall clock at [`Registry::new`], so a restarted
//! service does not reuse the tags of the previous one. Reference clients ignore all three
//! headers and never send `If-None-Match`, so they see the reference's answers.
//!
//! `http` is Tally's extension: the node's HTTP API base URL, which the gateway
//! ([`crate::gateway`]) balances over. It is optional both ways: reference nodes do not send it
//! (a heartbeat without it keeps the URL registered before), and it is left out of `/peers`
//! entries that have none, so reference clients see exactly the reference's answer (they
//! ignore unknown fields in any case).
//!
//! Every error is JSON `{"error":"…"}`: 404 for an unknown route, 405 (with `Allow`) for a
//! known route with the wrong method, 413 for a body over [`MAX_BODY`], 408 for a request whose
//! body and answer take longer than the deadline after its headers. The headers themselves
//! must arrive within that deadline, and connections are capped in all and per client
//! ([`DiscoveryConfig::limits`], served by [`crate::http::serve_router`]). Request bodies are read
//! whatever their `Content-Type` and, like the reference's Go decoder, unknown fields and bytes
//! after the first JSON value are ignored.

use crate::http::ServeLimits;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::IF_NONE_MATCH;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The largest request body accepted (4 KiB): an address is at most 255 bytes.
pub const MAX_BODY: usize = 4096;

/// The header of `GET /peers` answers carrying the registry's tag, `"<generation>"`.
pub const ETAG: &str = "etag";
/// The header of `POST /register` and `POST /heartbeat` answers carrying the registry's tag,
/// `"<generation>"` (the same tag `GET /peers` sends as [`ETAG`]).
pub const REGISTRY_HEADER: &str = "x-tally-registry";
/// The header of `POST /register` and `POST /heartbeat` answers carrying
/// [`DiscoveryConfig::cleanup_after`] in seconds (e.g. `30`, `0.5`).
pub const TTL_HEADER: &str = "x-tally-ttl";

/// The tag of registry generation `generation`, as [`ETAG`] and [`REGISTRY_HEADER`] send it.
pub fn tag(generation: u64) -> String {
    format!("\"{generation}\"")
}

/// Settings of the discovery service. `DiscoveryConfig::default()` gives the defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoveryConfig {
    /// A peer not seen (registered or heartbeated) for this long is dropped (default 30 s).
    ///
    /// The service announces it ([`TTL_HEADER`]) and Tally nodes heartbeat every third of it
    /// (at least every 2 s, at most every 10 s), so a longer expiry means fewer heartbeats. The
    /// price: a node that died stays listed that long, and newcomers try it until their own
    /// failure detectors skip it. Reference nodes heartbeat every second whatever this is;
    /// the reference service's own default is 5 s.
    pub cleanup_after: Duration,
    /// How often the sweep looks for expired peers (default 1 s).
    pub sweep_every: Duration,
    /// At most this many peers are registered; further new ones get 503 (default 10,000).
    pub max_peers: usize,
    /// The HTTP server's header deadline and connection caps (default
    /// [`ServeLimits::default`]); the header deadline bounds each request's body and answer
    /// too (408).
    pub limits: ServeLimits,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        Self {
            cleanup_after: Duration::from_secs(30),
            sweep_every: Duration::from_secs(1),
            max_peers: 10_000,
            limits: ServeLimits::default(),
        }
    }
}

/// Why an address was not registered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The address is empty or not `host:port`.
    #[error("addr must be host:port")]
    BadAddress,
    /// The registry already holds `max_peers` addresses.
    #[error("registry full")]
    Full,
    /// The `http` URL is not `http://…` or `https://…` of at most 255 printable bytes.
    #[error("http must be an http:// or https:// URL of at most 255 bytes")]
    BadHttpUrl,
}

/// True when `url` is acceptable as a node's registered HTTP base URL: `http://` or `https://`
/// followed by at least one byte, at most 255 bytes, printable ASCII without spaces.
pub fn is_http_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    url.len() <= 255
        && rest.is_some_and(|r| !r.is_empty())
        && url.bytes().all(|b| b.is_ascii_graphic())
}

/// One registered peer as `GET /peers` lists it (field names as the reference writes them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerRecord {
    /// Gossip address, `host:port`.
    pub addr: String,
    /// When it was last registered or heartbeated, RFC 3339 in UTC (whole seconds).
    #[serde(rename = "LastSeen")]
    pub last_seen: String,
    /// The node's HTTP API base URL, when it registered one (Tally extension; omitted when
    /// absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
}

#[derive(Clone, Debug)]
struct Seen {
    /// Monotonic, for expiry (tokio's clock, so paused-time tests can drive it).
    at: Instant,
    /// Wall clock, for display only.
    wall: SystemTime,
    /// The HTTP API base URL last registered for this address.
    http: Option<String>,
}

/// The registry behind the service: addresses and when each was last seen.
///
/// Time is tokio's ([`tokio::time::Instant`]); the wall clock is only used to print `LastSeen`
/// and to pick the first [`generation`](Registry::generation).
#[derive(Debug)]
pub struct Registry {
    cleanup_after: Duration,
    max_peers: usize,
    peers: Mutex<BTreeMap<String, Seen>>,
    /// Bumped, with `peers` locked, whenever the addresses or their URLs change.
    generation: AtomicU64,
    /// `GET /peers` requests answered (200 or 304).
    peer_list_requests: AtomicU64,
}

impl Registry {
    /// An empty registry with `config`'s expiry and bound.
    pub fn new(config: &DiscoveryConfig) -> Self {
        Self {
            cleanup_after: config.cleanup_after,
            max_peers: config.max_peers,
            peers: Mutex::new(BTreeMap::new()),
            generation: AtomicU64::new(first_generation()),
            peer_list_requests: AtomicU64::new(0),
        }
    }

    /// The registry's generation: it changes whenever an address is added or dropped or its
    /// `http` URL changes, and only then (heartbeats leave it alone).
    pub fn generation(&self) -> u64 {
        let _peers = self.lock();
        self.generation.load(Ordering::Relaxed)
    }

    /// How many `GET /peers` requests the service answered (200 or 304), e.g. to check that
    /// clients fetch the list only when it changed.
    pub fn peer_list_requests(&self) -> u64 {
        self.peer_list_requests.load(Ordering::Relaxed)
    }

    /// The timeout after which unseen peers are dropped.
    pub fn cleanup_after(&self) -> Duration {
        self.cleanup_after
    }

    /// Marks a change; call with `peers` locked.
    fn bump(&self) {
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Seen>> {
        // The map is valid after any panic of a holder: every update is a single insert/remove.
        self.peers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers `addr` or refreshes its last-seen time. Returns true when it was new.
    pub fn register(&self, addr: &str) -> Result<bool, RegistryError> {
        self.register_at(addr, None, Instant::now())
    }

    /// Registers `addr` (or refreshes it) with its node's HTTP API base URL, if given. A
    /// refresh without `http` keeps the URL registered before. Returns true when it was new.
    pub fn register_with_http(
        &self,
        addr: &str,
        http: Option<&str>,
    ) -> Result<bool, RegistryError> {
        self.register_at(addr, http, Instant::now())
    }

    fn register_at(
        &self,
        addr: &str,
        http: Option<&str>,
        at: Instant,
    ) -> Result<bool, RegistryError> {
        if !tally_core::frame::is_gossip_address(addr) {
            return Err(RegistryError::BadAddress);
        }
        if http.is_some_and(|url| !is_http_url(url)) {
            return Err(RegistryError::BadHttpUrl);
        }
        let mut seen = Seen {
            at,
            wall: SystemTime::now(),
            http: http.map(str::to_string),
        };
        let mut peers = self.lock();
        if let Some(entry) = peers.get_mut(addr) {
            if seen.http.is_none() {
                seen.http = entry.http.take();
            } else if seen.http != entry.http {
                self.bump();
            }
            *entry = seen;
            return Ok(false);
        }
        if peers.len() >= self.max_peers {
            return Err(RegistryError::Full);
        }
        peers.insert(addr.to_string(), seen);
        self.bump();
        drop(peers);
        tracing::info!(addr, "discovery: peer registered");
        Ok(true)
    }

    /// Refreshes `addr`'s last-seen time. Returns true when it was new.
    ///
    /// An unknown address is registered, as the reference effectively does (its heartbeat
    /// handler writes the entry whether or not it existed), so a node survives a restart of
    /// the discovery service without re-registering.
    pub fn heartbeat(&self, addr: &str) -> Result<bool, RegistryError> {
        self.register(addr)
    }

    /// Every registered peer, sorted by address.
    pub fn peers(&self) -> Vec<PeerRecord> {
        self.tagged_peers().1
    }

    /// The generation and every registered peer of that generation, sorted by address.
    pub fn tagged_peers(&self) -> (u64, Vec<PeerRecord>) {
        let peers = self.lock();
        let records = peers
            .iter()
            .map(|(addr, seen)| PeerRecord {
                addr: addr.clone(),
                last_seen: humantime::format_rfc3339_seconds(seen.wall).to_string(),
                http: seen.http.clone(),
            })
            .collect();
        (self.generation.load(Ordering::Relaxed), records)
    }

    /// How many peers are registered.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no peer is registered.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Drops the peers not seen for `cleanup_after`; returns their addresses.
    pub fn sweep(&self) -> Vec<String> {
        self.sweep_at(Instant::now())
    }

    fn sweep_at(&self, now: Instant) -> Vec<String> {
        let mut expired = Vec::new();
        let mut peers = self.lock();
        peers.retain(|addr, seen| {
            let keep = now.saturating_duration_since(seen.at) < self.cleanup_after;
            if !keep {
                expired.push(addr.clone());
            }
            keep
        });
        if !expired.is_empty() {
            self.bump();
        }
        drop(peers);
        for addr in &expired {
            tracing::info!(addr = %addr, "discovery: peer expired");
        }
        expired
    }
}

/// The first generation of a new registry: microseconds since the Unix epoch, so that a
/// restarted service is unlikely to hand out a tag its clients saw from the previous one.
fn first_generation() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX / 2))
}

/// True when an `If-None-Match` value (`"a", W/"b"` or `*`) holds `tag`.
fn matches_tag(if_none_match: &str, tag: &str) -> bool {
    if_none_match.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == tag
    })
}

/// `cleanup_after` as [`TTL_HEADER`] writes it: seconds, fractional when need be.
fn ttl_value(cleanup_after: Duration) -> String {
    cleanup_after.as_secs_f64().to_string()
}

/// The body of `POST /register` and `POST /heartbeat`. Unknown fields are ignored.
#[derive(Debug, Deserialize)]
struct AddrBody {
    #[serde(default)]
    addr: String,
    /// Tally extension: the node's HTTP API base URL.
    #[serde(default)]
    http: Option<String>,
}

/// A refused request: its status and the message of its JSON `{"error": "..."}` body.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    message: String,
}

impl Refusal {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}

/// Reads the address (and the optional HTTP URL) from a request body.
fn parse_addr(body: Result<Bytes, BytesRejection>) -> Result<AddrBody, Refusal> {
    let body = body.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            Refusal::new(status, format!("body larger than {MAX_BODY} bytes"))
        } else {
            Refusal::new(status, rejection.body_text())
        }
    })?;
    // The first JSON value; trailing bytes are ignored, as Go's json.Decoder does.
    let parsed = serde_json::Deserializer::from_slice(&body)
        .into_iter::<AddrBody>()
        .next();
    match parsed {
        Some(Ok(AddrBody { addr, .. })) if addr.is_empty() => {
            Err(Refusal::new(StatusCode::BAD_REQUEST, "addr is required"))
        }
        Some(Ok(body)) => Ok(body),
        Some(Err(e)) => Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            format!("invalid JSON: {e}"),
        )),
        None => Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "invalid JSON: empty body",
        )),
    }
}

/// The answer to a registration or heartbeat of `addr`.
fn record(registry: &Registry, body: Result<Bytes, BytesRejection>) -> Response {
    let AddrBody { addr, http } = match parse_addr(body) {
        Ok(body) => body,
        Err(refusal) => return refusal.into_response(),
    };
    // A heartbeat is a registration (see `Registry::heartbeat`), with or without `http`.
    let result = registry.register_with_http(&addr, http.as_deref());
    match result {
        Ok(_) => (
            StatusCode::OK,
            [
                (REGISTRY_HEADER, tag(registry.generation())),
                (TTL_HEADER, ttl_value(registry.cleanup_after)),
            ],
            Json(serde_json::json!({})),
        )
            .into_response(),
        Err(e @ (RegistryError::BadAddress | RegistryError::BadHttpUrl)) => {
            Refusal::new(StatusCode::BAD_REQUEST, e.to_string()).into_response()
        }
        Err(e @ RegistryError::Full) => {
            Refusal::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response()
        }
    }
}

async fn register(
    State(registry): State<Arc<Registry>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    record(&registry, body)
}

async fn heartbeat(
    State(registry): State<Arc<Registry>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    record(&registry, body)
}

/// `GET /peers`: the list with its [`ETAG`], or 304 when `If-None-Match` holds that tag.
async fn peers(State(registry): State<Arc<Registry>>, headers: HeaderMap) -> Response {
    registry.peer_list_requests.fetch_add(1, Ordering::Relaxed);
    let (generation, records) = registry.tagged_peers();
    let current = tag(generation);
    let unchanged = headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| matches_tag(value, &current));
    if unchanged {
        (StatusCode::NOT_MODIFIED, [(ETAG, current)]).into_response()
    } else {
        (StatusCode::OK, [(ETAG, current)], Json(records)).into_response()
    }
}

async fn not_found() -> Refusal {
    Refusal::new(StatusCode::NOT_FOUND, "not found")
}

async fn method_not_allowed() -> Refusal {
    Refusal::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
}

/// The service's routes over `state` (no sweep: see [`sweep_loop`], or use [`serve`]).
pub fn router(state: Arc<Registry>) -> Router {
    Router::new()
        .route("/register", post(register))
        .route("/heartbeat", post(heartbeat))
        .route("/peers", get(peers))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// Sweeps `registry` every `every` (at least 1 ms) until `shutdown` is cancelled.
pub async fn sweep_loop(registry: Arc<Registry>, every: Duration, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(every.max(Duration::from_millis(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {
                registry.sweep();
            }
        }
    }
}

/// 408 (JSON, like every error here) for a request whose body and answer are not complete
/// within `deadline` after its headers.
async fn request_deadline(
    State(deadline): State<Duration>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match tokio::time::timeout(deadline, next.run(request)).await {
        Ok(response) => response,
        Err(_) => Refusal::new(StatusCode::REQUEST_TIMEOUT, "request not complete in time")
            .into_response(),
    }
}

/// Serves discovery on `listener` until `shutdown` is cancelled, sweeping expired peers every
/// `config.sweep_every`. Returns once in-flight requests have finished.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: DiscoveryConfig,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let registry = Arc::new(Registry::new(&config));
    serve_registry(listener, registry, config, shutdown).await
}

/// [`serve`] over a registry the caller keeps (e.g. to read [`Registry::peer_list_requests`]
/// or [`Registry::generation`]); `registry` should have been made from `config`, whose expiry
/// it uses, while the sweep interval and limits are `config`'s.
pub async fn serve_registry(
    listener: tokio::net::TcpListener,
    registry: Arc<Registry>,
    config: DiscoveryConfig,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, cleanup_after = ?registry.cleanup_after, "discovery service listening");
    }
    let sweep_stop = shutdown.child_token();
    let sweeper = tokio::spawn(sweep_loop(
        Arc::clone(&registry),
        config.sweep_every,
        sweep_stop.clone(),
    ));
    let deadline = config.limits.header_timeout;
    let routes = router(registry).layer(axum::middleware::from_fn_with_state(
        deadline,
        request_deadline,
    ));
    let counters = Arc::default();
    let result =
        crate::http::serve_router(listener, routes, config.limits, counters, shutdown).await;
    sweep_stop.cancel();
    if let Err(e) = sweeper.await {
        tracing::warn!(error = %e, "discovery sweep task failed");
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max_peers: usize) -> DiscoveryConfig {
        DiscoveryConfig {
            cleanup_after: Duration::from_millis(500),
            sweep_every: Duration::from_millis(100),
            max_peers,
            limits: ServeLimits::default(),
        }
    }

    #[test]
    fn register_validates_bounds_and_sorts() {
        let r = Registry::new(&config(2));
        assert_eq!(r.register(""), Err(RegistryError::BadAddress));
        assert_eq!(r.register("no-port"), Err(RegistryError::BadAddress));
        assert_eq!(r.register("h:0"), Err(RegistryError::BadAddress));
        assert_eq!(r.register("b:2"), Ok(true));
        assert_eq!(r.register("a:1"), Ok(true));
        assert_eq!(r.register("a:1"), Ok(false));
        assert_eq!(r.register("c:3"), Err(RegistryError::Full));
        // A known address still refreshes when full.
        assert_eq!(r.heartbeat("b:2"), Ok(false));
        let addrs: Vec<_> = r.peers().into_iter().map(|p| p.addr).collect();
        assert_eq!(addrs, ["a:1", "b:2"]);
    }

    #[test]
    fn sweep_drops_only_unseen_peers() {
        let r = Registry::new(&config(10));
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        r.register_at("a:1", None, t0).unwrap();
        r.register_at("b:2", None, t0).unwrap();
        r.register_at("a:1", None, ms(300)).unwrap();
        assert!(r.sweep_at(ms(300)).is_empty());
        assert_eq!(r.sweep_at(ms(600)), ["b:2"]);
        assert_eq!(r.len(), 1);
        assert!(r.sweep_at(ms(799)).is_empty());
        assert_eq!(r.sweep_at(ms(800)), ["a:1"]);
        assert!(r.is_empty());
    }

    #[test]
    fn generation_moves_on_membership_and_url_changes_only() {
        let r = Registry::new(&config(10));
        let t0 = Instant::now();
        let g0 = r.generation();
        r.register_at("a:1", None, t0).unwrap();
        let g1 = r.generation();
        assert_ne!(g1, g0);
        r.register_at("a:1", None, t0).unwrap();
        r.heartbeat("a:1").unwrap();
        assert_eq!(r.generation(), g1, "a heartbeat is no change");
        r.register_at("a:1", Some("http://h:1"), t0).unwrap();
        let g2 = r.generation();
        assert_ne!(g2, g1, "a new URL is a change");
        r.register_at("a:1", Some("http://h:1"), t0).unwrap();
        assert_eq!(r.generation(), g2);
        assert!(r.sweep_at(t0).is_empty());
        assert_eq!(
            r.generation(),
            g2,
            "a sweep that drops nothing is no change"
        );
        r.sweep_at(t0 + Duration::from_secs(1));
        assert_ne!(r.generation(), g2);
        assert_eq!(r.tagged_peers(), (r.generation(), Vec::new()));
    }

    #[test]
    fn if_none_match_lists_and_wildcards() {
        let t = tag(7);
        assert_eq!(t, "\"7\"");
        assert!(matches_tag("\"7\"", &t));
        assert!(matches_tag("\"1\", W/\"7\"", &t));
        assert!(matches_tag("*", &t));
        assert!(!matches_tag("\"70\"", &t) && !matches_tag("7", &t) && !matches_tag("", &t));
        assert_eq!(ttl_value(Duration::from_secs(30)), "30");
        assert_eq!(ttl_value(Duration::from_millis(500)), "0.5");
    }

    #[test]
    fn peers_write_reference_field_names() {
        let r = Registry::new(&config(10));
        r.register("127.0.0.1:9000").unwrap();
        let json = serde_json::to_value(r.peers()).unwrap();
        let entry = &json[0];
        assert_eq!(entry["addr"], "127.0.0.1:9000");
        let last_seen = entry["LastSeen"].as_str().unwrap();
        assert!(humantime::parse_rfc3339(last_seen).is_ok(), "{last_seen}");
    }

    #[test]
    fn body_parsing_is_lenient_like_go_but_requires_addr() {
        let parse = |s: &str| parse_addr(Ok(Bytes::from(s.to_string())));
        assert_eq!(parse(r#"{"addr":"a:1","x":2}"#).unwrap().addr, "a:1");
        assert_eq!(parse(r#"{"addr":"a:1"} trailing"#).unwrap().addr, "a:1");
        let with_http = parse(r#"{"addr":"a:1","http":"http://h:8"}"#).unwrap();
        assert_eq!(with_http.http.as_deref(), Some("http://h:8"));
        for bad in [
            "",
            "{",
            "null",
            "[]",
            r#"{"addr":""}"#,
            r#"{"x":1}"#,
            r#"{"addr":5}"#,
            r#"{"addr":"a:1","http":5}"#,
        ] {
            let refusal = parse(bad).unwrap_err();
            assert_eq!(refusal.status, StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    #[test]
    fn http_urls_are_stored_kept_on_plain_refresh_and_listed_only_when_known() {
        let r = Registry::new(&config(10));
        assert_eq!(
            r.register_with_http("a:1", Some("ftp://x")),
            Err(RegistryError::BadHttpUrl)
        );
        assert_eq!(
            r.register_with_http("a:1", Some("http://")),
            Err(RegistryError::BadHttpUrl)
        );
        assert_eq!(
            r.register_with_http("a:1", Some("http://127.0.0.1:8000")),
            Ok(true)
        );
        assert_eq!(r.register("b:2"), Ok(true));
        // A reference-style heartbeat (no http) keeps the URL.
        assert_eq!(r.heartbeat("a:1"), Ok(false));
        let json = serde_json::to_value(r.peers()).unwrap();
        assert_eq!(json[0]["http"], "http://127.0.0.1:8000");
        assert!(json[1].get("http").is_none(), "{json}");
        assert_eq!(
            r.register_with_http("a:1", Some("https://n.example:443")),
            Ok(false)
        );
        assert_eq!(r.peers()[0].http.as_deref(), Some("https://n.example:443"));
        assert!(is_http_url("http://h:1") && !is_http_url("http://a b"));
    }
}
