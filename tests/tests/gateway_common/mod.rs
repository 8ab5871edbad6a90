//! What the gateway tests share: nodes and gateways on loopback, HTTP calls, waits on events.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use serde_json::Value;
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tally::gateway::{serve, GatewayConfig, NodeSource};
use tally::service::{NodeOptions, NodeService};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long a wait for an event may take before the test fails (a bound, not an expectation).
pub const DEADLINE: Duration = Duration::from_secs(60);

/// The gateway's deadlines in tests: far above any loaded machine's loopback round trip, so a
/// node leaves rotation only when its port refuses connections.
pub const PATIENT: Duration = Duration::from_secs(30);

/// Gateway settings with quick health checks and patient deadlines.
pub fn config(nodes: NodeSource) -> GatewayConfig {
    GatewayConfig {
        health_every: Duration::from_millis(100),
        discovery_every: Duration::from_millis(100),
        health_timeout: PATIENT,
        request_timeout: PATIENT,
        ..GatewayConfig::new(nodes)
    }
}

pub struct Gateway {
    addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

impl Gateway {
    pub async fn start(nodes: NodeSource) -> Gateway {
        Gateway::with(config(nodes)).await
    }

    pub async fn with(config: GatewayConfig) -> Gateway {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let task = tokio::spawn(serve(listener, config, stop.clone()));
        Gateway { addr, stop, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("gateway did not stop")
            .unwrap()
            .unwrap();
    }
}

pub async fn nodes(n: usize) -> Vec<NodeService> {
    let mut out: Vec<NodeService> = Vec::new();
    for _ in 0..n {
        let peers = out
            .iter()
            .map(|s| s.node.local_addr().to_string())
            .collect();
        out.push(node_on("127.0.0.1:0".parse().unwrap(), peers).await);
    }
    out
}

pub async fn node_on(http: SocketAddr, peers: Vec<String>) -> NodeService {
    NodeService::start(NodeOptions {
        sync_interval: Duration::from_millis(100),
        http,
        peers,
        ..NodeOptions::loopback()
    })
    .await
    .unwrap()
}

pub fn static_nodes(services: &[NodeService]) -> NodeSource {
    NodeSource::Static(services.iter().map(NodeService::url).collect())
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .unwrap()
}

/// Status, JSON body (Null if none) and the `x-tally-node` header.
pub async fn call(method: reqwest::Method, url: &str, body: Option<&str>) -> (u16, Value, String) {
    let mut req = client().request(method, url);
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let node = r
        .headers()
        .get("x-tally-node")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        node,
    )
}

pub async fn get(url: &str) -> (u16, Value, String) {
    call(reqwest::Method::GET, url, None).await
}

pub async fn post(url: &str, body: Option<&str>) -> (u16, Value, String) {
    call(reqwest::Method::POST, url, body).await
}

pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn node_health(gw: &Gateway) -> BTreeMap<String, bool> {
    let (_, nodes, _) = get(&gw.url("/nodes")).await;
    nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["url"].as_str().unwrap().to_string(), n["healthy"] == true))
        .collect()
}

/// Exactly even: the rotation holds all three nodes throughout (only a refused connection
/// removes a node here), so round-robin order is the only thing deciding, at any speed.
/// A URL whose port refuses connections, and the socket that holds the port (bound, never
/// listening) so no other test can take it while the returned socket lives.
pub fn refusing() -> (tokio::net::TcpSocket, String) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let url = format!("http://{}", socket.local_addr().unwrap());
    (socket, url)
}

/// Waits until the gateway has health-checked `url` at least once, then asserts the node is in
/// rotation with no failure counted.
pub async fn assert_checked_and_healthy(gw: &Gateway, url: &str) {
    let start = Instant::now();
    let view = loop {
        let (_, nodes, _) = get(&gw.url("/nodes")).await;
        let view = nodes
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["url"] == url)
            .cloned()
            .unwrap_or(Value::Null);
        if view["last_check_ms_ago"].is_number() {
            break view;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "no health check of {url}: {view}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        (view["healthy"].clone(), view["fails"].clone()),
        (Value::from(true), Value::from(0)),
        "{view}"
    );
}
