//! The HTTP request path that is Tally's: the node API's router (routes, the guard with its
//! bearer token, the body limit, `parse_by`, the write path) and the discovery service's
//! router, driven in-process. hyper parses the bytes (its parser is hyper's own and fuzzed
//! there); everything after it is ours.
//!
//! One node (a real `tally_std::Node` on 127.0.0.1, no peers, no data directory) and one
//! discovery registry live for the whole fuzzing process. The first input byte picks a mode
//! (see `fuzz/README.md`):
//!
//! - **raw** (node or discovery): the rest of the input is written, as is, to a hyper HTTP/1
//!   connection serving the router. No answer may be a 5xx; without a `200` the counter did
//!   not move.
//! - **node request**: a request built from the input (method, route, `Authorization`
//!   header, body, an oversized body) goes to the node router, and a model says what must
//!   happen: 401 for a write (any non-GET) without the exact token, 404 for an unknown route,
//!   405 for a wrong method, 413 above 4 KiB, 400 where `parse_by` refuses, 409 on overflow,
//!   else 200 with the counter moved by exactly `by` (and nothing moved otherwise). Every error
//!   is `{"error": "..."}`.
//! - **discovery request**: `POST /register` or `/heartbeat` with the input as body, then
//!   `GET /peers`: 200 only for a body whose `addr` the registry accepts (and then it is
//!   listed), 400/413/503 otherwise, never 5xx but 503; the peer list stays valid JSON.
//!
//! Every input is also handed to the body parsers directly: `parse_by` (its answers within
//! 1..=2^53−1), the discovery client's `http_urls`, the gateway's `parse_frames`.
#![no_main]

use axum::body::{to_bytes, Body};
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use libfuzzer_sys::fuzz_target;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tally::discovery::{self, DiscoveryConfig, Registry};
use tally::http::{self, parse_by, ApiOptions, NodeApi, MAX_BODY, MAX_BY};
use tally_fuzz::Input;
use tally_std::{Node, NodeConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

const TOKEN: &str = "fuzz-token-7f3a9c1e";
/// Largest answer read back in raw mode.
const MAX_ANSWER: usize = 1 << 20;

struct World {
    rt: tokio::runtime::Runtime,
    node: Arc<Node>,
    api: Router,
    discovery: Router,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let loopback: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let mut config = NodeConfig::new(loopback);
        config.name = Some("fuzz:1".to_owned());
        let node = Arc::new(Node::start(config).expect("node on loopback"));
        let guard = http::Guard::new(ApiOptions {
            token: Some(TOKEN.to_owned()),
            protect_reads: false,
            rate_per_client: None,
            request_timeout: Duration::from_secs(2),
        });
        let app = Arc::new(NodeApi {
            node: Arc::clone(&node),
            writes: tally::durable::Writes::new(Arc::clone(&node)),
            wal: None,
            guard,
            telemetry: tally::telemetry::Telemetry::new(),
        });
        let client: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
        let api = http::router(app).layer(MockConnectInfo(client));
        let registry = Arc::new(Registry::new(&DiscoveryConfig {
            max_peers: 64,
            ..DiscoveryConfig::default()
        }));
        let discovery = discovery::router(registry);
        World {
            rt,
            node,
            api,
            discovery,
        }
    })
}

/// Raw bytes into a hyper HTTP/1 connection serving `router`; returns what it answered.
async fn raw(router: Router, bytes: Vec<u8>) -> Vec<u8> {
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    let service = hyper_util::service::TowerToHyperService::new(router);
    let conn = hyper::server::conn::http1::Builder::new()
        .half_close(true)
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(2))
        .serve_connection(hyper_util::rt::TokioIo::new(server), service);
    let talk = async move {
        // The connection may close before everything is written: that is its right.
        let _ = client.write_all(&bytes).await;
        let _ = client.shutdown().await;
        let mut answer = Vec::new();
        let _ = (&mut client)
            .take(MAX_ANSWER as u64)
            .read_to_end(&mut answer)
            .await;
        answer
    };
    let (_, answer) = tokio::join!(conn, talk);
    answer
}

/// The status codes of every response in a raw answer (`HTTP/1.0` or `HTTP/1.1` status lines:
/// hyper answers in the request's version).
fn statuses(answer: &[u8]) -> Vec<u16> {
    let mut out = Vec::new();
    let needle = b"HTTP/1.";
    let mut at = 0;
    while let Some(i) = answer
        .get(at..)
        .and_then(|a| a.windows(needle.len()).position(|w| w == needle))
    {
        let start = at + i + needle.len();
        // A minor version digit and a space, then the code.
        if let Some(code) = answer
            .get(start..start + 5)
            .filter(|v| v[0].is_ascii_digit() && v[1] == b' ')
            .and_then(|v| std::str::from_utf8(&v[2..5]).ok())
            .and_then(|c| c.parse().ok())
        {
            out.push(code);
        }
        at = start;
    }
    out
}

const METHODS: [Method; 7] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::HEAD,
    Method::PATCH,
    Method::OPTIONS,
];

/// Request targets and the route each reaches (`None`: no route).
const TARGETS: [(&str, Option<Route>); 16] = [
    ("/counter", Some(Route::Read)),
    ("/increment", Some(Route::Inc)),
    ("/decrement", Some(Route::Dec)),
    ("/local-counter", Some(Route::Read)),
    ("/state", Some(Route::Read)),
    ("/peers", Some(Route::Read)),
    ("/health", Some(Route::Read)),
    ("/metrics", Some(Route::Read)),
    ("/", Some(Route::Read)),
    ("/dashboard.js", Some(Route::Read)),
    ("/dashboard.css", Some(Route::Read)),
    ("/increment?by=5", Some(Route::Inc)),
    ("/nope", None),
    ("/increment/", None),
    ("/INCREMENT", None),
    ("//decrement", None),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Read,
    Inc,
    Dec,
}

/// `Authorization` values; only the first is right.
fn authorization(kind: u8, inp: &mut Input<'_>) -> Option<Vec<u8>> {
    match kind % 9 {
        0 => Some(format!("Bearer {TOKEN}").into_bytes()),
        1 => None,
        2 => Some(b"Bearer wrong-token".to_vec()),
        3 => Some(format!("bearer {TOKEN}").into_bytes()),
        4 => Some(format!("Bearer {TOKEN} ").into_bytes()),
        5 => Some(TOKEN.as_bytes().to_vec()),
        6 => Some(format!("Bearer {}", &TOKEN[..TOKEN.len() - 1]).into_bytes()),
        7 => Some(format!("Bearer {TOKEN}x").into_bytes()),
        _ => {
            let n = usize::from(inp.u8() % 64);
            Some(inp.bytes(n).to_vec())
        }
    }
}

/// The status the node API must answer, and `by` for a write that must succeed.
fn expected(
    method: &Method,
    route: Option<Route>,
    authorized: bool,
    body: &[u8],
    local: (u64, u64),
) -> (StatusCode, Option<u64>) {
    if method != Method::GET && !authorized {
        return (StatusCode::UNAUTHORIZED, None);
    }
    let Some(route) = route else {
        return (StatusCode::NOT_FOUND, None);
    };
    let allowed = match route {
        Route::Read => method == Method::GET || method == Method::HEAD,
        Route::Inc | Route::Dec => method == Method::POST,
    };
    if !allowed {
        return (StatusCode::METHOD_NOT_ALLOWED, None);
    }
    if route == Route::Read {
        return (StatusCode::OK, None);
    }
    if body.len() > MAX_BODY {
        return (StatusCode::PAYLOAD_TOO_LARGE, None);
    }
    let Ok(by) = parse_by(body) else {
        return (StatusCode::BAD_REQUEST, None);
    };
    let total = if route == Route::Inc {
        local.0
    } else {
        local.1
    };
    match total.checked_add(by) {
        Some(_) => (StatusCode::OK, Some(by)),
        None => (StatusCode::CONFLICT, None),
    }
}

/// The `value` of an answer, read exactly (it may lie outside `i64`).
#[derive(serde::Deserialize)]
struct ValueAnswer {
    value: i128,
}

async fn node_request(w: &World, inp: &mut Input<'_>) {
    let method = METHODS[usize::from(inp.u8()) % METHODS.len()].clone();
    let (target, route) = TARGETS[usize::from(inp.u8()) % TARGETS.len()];
    let auth_kind = inp.u8();
    let auth = authorization(auth_kind, inp);
    let shape = inp.u8();
    let mut body = inp.rest().to_vec();
    if shape & 1 != 0 {
        // Past the body limit, with what the input gave at its start.
        body.resize(MAX_BODY + 1 + usize::from(shape >> 1), b' ');
    }
    let mut req = Request::builder().method(method.clone()).uri(target);
    let mut authorized = false;
    if let Some(value) = auth {
        match header::HeaderValue::from_bytes(&value) {
            Ok(v) => {
                authorized = value == format!("Bearer {TOKEN}").as_bytes();
                req = req.header(header::AUTHORIZATION, v);
            }
            Err(_) => {}
        }
    }
    if shape & 2 != 0 {
        req = req.header(header::CONTENT_TYPE, "application/json");
    }
    let req = req.body(Body::from(body.clone())).expect("a valid request");

    let value_before = w.node.value();
    let local = w.node.local();
    let (want, by) = expected(&method, route, authorized, &body, local);
    let res = w.api.clone().oneshot(req).await.expect("infallible");
    let status = res.status();
    let bytes = to_bytes(res.into_body(), MAX_ANSWER)
        .await
        .expect("answer body");
    assert_eq!(
        status,
        want,
        "{method} {target} (authorized {authorized}, body {} bytes {:?})",
        body.len(),
        String::from_utf8_lossy(&body[..body.len().min(80)])
    );
    let value_after = w.node.value();
    match by {
        Some(by) => {
            let by = i128::from(by);
            let moved = if route == Some(Route::Inc) { by } else { -by };
            assert_eq!(
                value_after,
                value_before + moved,
                "a write moved the counter wrongly"
            );
            let answer: ValueAnswer = serde_json::from_slice(&bytes).expect("JSON answer");
            assert_eq!(answer.value, value_after, "a write answered another value");
        }
        None => {
            assert_eq!(
                value_after, value_before,
                "a refused or read request moved the counter"
            );
            if !status.is_success() && method != Method::HEAD {
                let json: serde_json::Value =
                    serde_json::from_slice(&bytes).expect("error answers are JSON");
                assert!(
                    json.get("error").is_some_and(|e| e.is_string()),
                    "error answer without a message: {json}"
                );
            }
        }
    }
}

/// The `addr` of a registration body.
#[derive(serde::Deserialize)]
struct AddrOnly {
    addr: String,
}

async fn discovery_request(w: &World, inp: &mut Input<'_>) {
    let path = if inp.u8() & 1 == 0 {
        "/register"
    } else {
        "/heartbeat"
    };
    let body = inp.rest().to_vec();
    let req = Request::builder()
        .method(Method::POST)
        .uri(path)
        .body(Body::from(body.clone()))
        .expect("a valid request");
    let res = w.discovery.clone().oneshot(req).await.expect("infallible");
    let status = res.status();
    assert!(
        [
            StatusCode::OK,
            StatusCode::BAD_REQUEST,
            StatusCode::PAYLOAD_TOO_LARGE,
            StatusCode::SERVICE_UNAVAILABLE
        ]
        .contains(&status),
        "discovery answered {status} to {path}"
    );
    let _ = to_bytes(res.into_body(), MAX_ANSWER).await;
    let peers = Request::builder()
        .uri("/peers")
        .body(Body::empty())
        .expect("a valid request");
    let res = w
        .discovery
        .clone()
        .oneshot(peers)
        .await
        .expect("infallible");
    assert_eq!(res.status(), StatusCode::OK, "GET /peers");
    let list = to_bytes(res.into_body(), MAX_ANSWER).await.expect("peers");
    let peers: Vec<serde_json::Value> = serde_json::from_slice(&list).expect("peer list is JSON");
    discovery::http_urls(&list).expect("the peer list parses");
    if status == StatusCode::OK {
        // The address it accepted is the first JSON value's `addr` (other fields are skipped
        // unread, as Go's decoder does).
        let addr = serde_json::Deserializer::from_slice(&body)
            .into_iter::<AddrOnly>()
            .next()
            .and_then(|v| v.ok())
            .map(|v| v.addr)
            .expect("a 200 for a body without a string addr");
        assert!(
            tally_core::frame::is_gossip_address(&addr),
            "registered a bad address {addr:?}"
        );
        assert!(
            peers
                .iter()
                .any(|p| p.get("addr").and_then(|a| a.as_str()) == Some(addr.as_str())),
            "registered {addr:?} but it is not listed"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    let mut inp = Input(data);
    let mode = inp.u8();
    // The body parsers, directly.
    if let Ok(by) = parse_by(inp.0) {
        assert!((1..=MAX_BY).contains(&by), "parse_by gave {by}");
    }
    let _ = discovery::http_urls(inp.0);
    if let Ok(text) = std::str::from_utf8(inp.0) {
        let _ = tally::gateway::parse_frames(text);
    }
    w.rt.block_on(async {
        match mode % 4 {
            0 | 1 => {
                let router = if mode % 4 == 0 {
                    w.api.clone()
                } else {
                    w.discovery.clone()
                };
                let value_before = w.node.value();
                let answer = raw(router, inp.rest().to_vec()).await;
                let codes = statuses(&answer);
                assert!(
                    // 505 is hyper's answer to an HTTP version it does not speak.
                    codes.iter().all(|&c| c < 500 || c == 503 || c == 505),
                    "a 5xx answer: {codes:?}"
                );
                if !codes.contains(&200) {
                    assert_eq!(w.node.value(), value_before, "moved without a 200");
                }
            }
            2 => node_request(w, &mut inp).await,
            _ => discovery_request(w, &mut inp).await,
        }
    });
});
