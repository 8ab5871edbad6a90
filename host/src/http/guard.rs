//! Protection of the HTTP API: an optional bearer token (constant-time comparison), a
//! per-client request rate limit, and a deadline per request.

use super::error::ApiError;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// Most distinct clients the rate limiter tracks; beyond, the oldest are forgotten.
const MAX_CLIENTS: usize = 10_000;

/// How the API is protected.
#[derive(Clone, Debug)]
pub struct ApiOptions {
    /// Bearer token required on write routes (and on reads when `protect_reads`).
    pub token: Option<String>,
    /// Require the token on read routes too.
    pub protect_reads: bool,
    /// Requests per second allowed per client address (burst: one second's worth); `None`:
    /// no limit.
    pub rate_per_client: Option<u32>,
    /// The request deadline (default [`super::REQUEST_DEADLINE`]): a request's headers must
    /// be complete within it, or the connection is closed; then its body and answer within it
    /// again, or it gets 408.
    pub request_timeout: Duration,
}

impl Default for ApiOptions {
    fn default() -> Self {
        Self {
            token: None,
            protect_reads: false,
            rate_per_client: None,
            request_timeout: super::REQUEST_DEADLINE,
        }
    }
}

/// Counters of refused requests and connections.
#[derive(Debug, Default)]
pub struct GuardCounters {
    /// Requests refused for a missing or wrong token.
    pub unauthorized: AtomicU64,
    /// Requests refused by the rate limit.
    pub rate_limited: AtomicU64,
    /// Connections refused over a cap, or cut for slow headers (see [`super::serve`]).
    pub connections: Arc<super::ConnectionCounters>,
}

/// The middleware's state.
#[derive(Debug)]
pub struct Guard {
    options: ApiOptions,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
    /// What it refused.
    pub counters: GuardCounters,
}

impl Guard {
    /// A guard with `options`.
    pub fn new(options: ApiOptions) -> Arc<Self> {
        Arc::new(Self {
            options,
            buckets: Mutex::new(HashMap::new()),
            counters: GuardCounters::default(),
        })
    }

    /// The per-request deadline.
    pub fn request_timeout(&self) -> Duration {
        self.options.request_timeout
    }

    fn token_ok(&self, req: &Request) -> bool {
        let Some(expected) = &self.options.token else {
            return true;
        };
        let given = req
            .headers()
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        // Constant time in the token's content (lengths are compared first).
        given.len() == expected.len() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
    }

    fn allow(&self, client: IpAddr) -> bool {
        let Some(rate) = self.options.rate_per_client else {
            return true;
        };
        let rate = f64::from(rate.max(1));
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_CLIENTS && !buckets.contains_key(&client) {
            if let Some(oldest) = buckets.iter().min_by_key(|(_, v)| v.1).map(|(k, _)| *k) {
                buckets.remove(&oldest);
            }
        }
        let (tokens, last) = buckets.entry(client).or_insert((rate, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate).min(rate);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The middleware: rate limit, then token.
pub async fn check(
    State(guard): State<Arc<Guard>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    if !guard.allow(peer.ip()) {
        guard.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too many requests from this client",
        )
        .into_response();
    }
    let needs_token = req.method() != Method::GET || guard.options.protect_reads;
    if needs_token && !guard.token_ok(&req) {
        guard.counters.unauthorized.fetch_add(1, Ordering::Relaxed);
        let mut r = ApiError::new(StatusCode::UNAUTHORIZED, "missing or wrong bearer token")
            .into_response();
        r.headers_mut().insert(
            axum::http::header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Bearer"),
        );
        return r;
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_refills() {
        let g = Guard::new(ApiOptions {
            rate_per_client: Some(5),
            ..ApiOptions::default()
        });
        let ip: IpAddr = [127, 0, 0, 1].into();
        let allowed = (0..20).filter(|_| g.allow(ip)).count();
        assert_eq!(allowed, 5);
        let other: IpAddr = [127, 0, 0, 2].into();
        assert!(g.allow(other));
    }
}
