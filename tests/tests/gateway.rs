#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]
//! The gateway over real HTTP on loopback, in front of real nodes: balancing, a node killed
//! under write load (no write lost or duplicated), a write whose answer is lost on the way
//! back or that a node answers 503 `not durable` / 408 (outcome unknown, never sent again), a
//! refused connection (retried, applied once), no node → 503, readmission, bad input,
//! discovery of node URLs, `/cluster`, `/metrics`; and an ignored throughput measurement.
//!
//! No assertion depends on the machine's speed: waits are on events (with a generous
//! deadline), and the gateways' deadlines are far above what a loaded machine needs.

use serde_json::Value;
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::sync::{Condvar, Mutex};
use std::time::Duration;
use tally::discovery::{self, DiscoveryClient, DiscoveryConfig};
use tally::gateway::{serve, GatewayConfig, NodeSource};
use tally::service::{NodeOptions, NodeService};
use tally_std::{Journal, JournalError, Node, NodeConfig, PersistKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long a wait for an event may take before the test fails (a bound, not an expectation).
const DEADLINE: Duration = Duration::from_secs(60);

/// The gateway's deadlines in tests: far above any loaded machine's loopback round trip, so a
/// node leaves rotation only when its port refuses connections.
const PATIENT: Duration = Duration::from_secs(30);

/// Gateway settings with quick health checks and patient deadlines.
fn config(nodes: NodeSource) -> GatewayConfig {
    GatewayConfig {
        health_every: Duration::from_millis(100),
        discovery_every: Duration::from_millis(100),
        health_timeout: PATIENT,
        request_timeout: PATIENT,
        ..GatewayConfig::new(nodes)
    }
}

struct Gateway {
    addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

impl Gateway {
    async fn start(nodes: NodeSource) -> Gateway {
        Gateway::with(config(nodes)).await
    }

    async fn with(config: GatewayConfig) -> Gateway {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let task = tokio::spawn(serve(listener, config, stop.clone()));
        Gateway { addr, stop, task }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("gateway did not stop")
            .unwrap()
            .unwrap();
    }
}

async fn nodes(n: usize) -> Vec<NodeService> {
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

async fn node_on(http: SocketAddr, peers: Vec<String>) -> NodeService {
    NodeService::start(NodeOptions {
        sync_interval: Duration::from_millis(100),
        http,
        peers,
        ..NodeOptions::loopback()
    })
    .await
    .unwrap()
}

fn static_nodes(services: &[NodeService]) -> NodeSource {
    NodeSource::Static(services.iter().map(NodeService::url).collect())
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .unwrap()
}

/// Status, JSON body (Null if none) and the `x-tally-node` header.
async fn call(method: reqwest::Method, url: &str, body: Option<&str>) -> (u16, Value, String) {
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

async fn get(url: &str) -> (u16, Value, String) {
    call(reqwest::Method::GET, url, None).await
}

async fn post(url: &str, body: Option<&str>) -> (u16, Value, String) {
    call(reqwest::Method::POST, url, body).await
}

async fn eventually<F, Fut>(what: &str, mut check: F)
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

async fn node_health(gw: &Gateway) -> BTreeMap<String, bool> {
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
fn refusing() -> (tokio::net::TcpSocket, String) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let url = format!("http://{}", socket.local_addr().unwrap());
    (socket, url)
}

/// Waits until the gateway has health-checked `url` at least once, then asserts the node is in
/// rotation with no failure counted.
async fn assert_checked_and_healthy(gw: &Gateway, url: &str) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_balanced_round_robin() {
    let services = nodes(3).await;
    let gw = Gateway::with(GatewayConfig {
        unhealthy_after: u32::MAX,
        ..config(static_nodes(&services))
    })
    .await;
    let mut reads: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..30 {
        let (status, body, node) = get(&gw.url("/counter")).await;
        assert_eq!(status, 200, "{body}");
        assert!(
            body["value"].is_number() && body["node"].is_string(),
            "{body}"
        );
        *reads.entry(node).or_default() += 1;
    }
    assert_eq!(reads.len(), 3, "{reads:?}");
    assert!(reads.values().all(|&n| n == 10), "{reads:?}");
    for _ in 0..30 {
        assert_eq!(post(&gw.url("/increment"), None).await.0, 200);
    }
    for s in &services {
        assert_eq!(s.node.local(), (10, 0), "{}", s.url());
    }
    let (status, list, _) = get(&gw.url("/nodes")).await;
    assert_eq!(status, 200);
    for n in list.as_array().unwrap() {
        assert_eq!(n["healthy"], true, "{n}");
        assert!(
            n["latency_ms"].is_number() && n["last_value"].is_number(),
            "{n}"
        );
        assert!(n["requests"].as_u64().unwrap() >= 20, "{n}");
        assert_eq!(n["errors"], 0, "{n}");
    }
    gw.stop().await;
    for s in services {
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_under_load_loses_and_duplicates_no_write() {
    let mut services = nodes(3).await;
    let gw = Gateway::start(static_nodes(&services)).await;
    let url = gw.url("/increment");
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for _ in 0..8 {
        let (url, stop, ok) = (url.clone(), Arc::clone(&stop), Arc::clone(&ok));
        writers.push(tokio::spawn(async move {
            let c = client();
            let mut failures: BTreeMap<u16, u64> = BTreeMap::new();
            while !stop.load(Ordering::Relaxed) {
                let r = c.post(&url).send().await.unwrap();
                let status = r.status().as_u16();
                let body: Value = r.json().await.unwrap();
                if status == 200 {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    assert!(body["error"].is_string(), "{status} {body}");
                    eprintln!("{status} {body}");
                    *failures.entry(status).or_default() += 1;
                }
            }
            failures
        }));
    }
    // Load first (however long 50 writes take), then the kill, then load again.
    eventually("50 writes before the kill", || async {
        ok.load(Ordering::Relaxed) >= 50
    })
    .await;
    let killed = services.remove(1);
    let killed_url = killed.url();
    let killed_node = Arc::clone(&killed.node);
    killed.stop().await;
    let before_kill = ok.load(Ordering::Relaxed);
    eventually("50 more writes after the kill", || async {
        ok.load(Ordering::Relaxed) >= before_kill + 50
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let mut failures: BTreeMap<u16, u64> = BTreeMap::new();
    for w in writers {
        for (status, n) in w.await.unwrap() {
            *failures.entry(status).or_default() += n;
        }
    }
    let ok = ok.load(Ordering::Relaxed);
    eprintln!("2xx: {ok} ({before_kill} before the kill); other answers: {failures:?}");
    assert!(
        failures.keys().all(|s| *s == 502 || *s == 503 || *s == 504),
        "{failures:?}"
    );
    // The stopped node's last writes may not have been gossiped before it stopped (nodes keep
    // no durable state here): count them from its final in-memory state.
    let killed_id = killed_node.id();
    let (killed_inc, _) = killed_node.local();
    let value_with_killed = |s: &NodeService| {
        let seen = s
            .node
            .state()
            .into_iter()
            .find(|e| e.id == killed_id)
            .map_or(0, |e| e.inc);
        s.node.value() + i128::from(killed_inc) - i128::from(seen)
    };
    eventually("the survivors agree", || async {
        services
            .iter()
            .all(|s| s.node.value() == services[0].node.value())
            && services
                .iter()
                .all(|s| value_with_killed(s) == i128::from(ok))
    })
    .await;
    eventually("only the killed node is out of rotation", || async {
        let health = node_health(&gw).await;
        health.iter().all(|(url, up)| *up == (*url != killed_url))
    })
    .await;
    gw.stop().await;
    for s in services {
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_healthy_node_is_503_json() {
    let services = nodes(2).await;
    let gw = Gateway::start(static_nodes(&services)).await;
    assert_eq!(get(&gw.url("/counter")).await.0, 200);
    for s in services {
        s.stop().await;
    }
    for (method, path) in [
        (reqwest::Method::GET, "/counter"),
        (reqwest::Method::POST, "/increment"),
        (reqwest::Method::POST, "/decrement"),
        (reqwest::Method::GET, "/counter"),
    ] {
        let (status, body, _) = call(method, &gw.url(path), None).await;
        assert_eq!(status, 503, "{path}: {body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .starts_with("no healthy node"),
            "{body}"
        );
    }
    let (status, body, _) = get(&gw.url("/health")).await;
    assert_eq!((status, body["healthy"].clone()), (503, Value::from(0)));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_back_on_its_port_is_readmitted() {
    let a = node_on("127.0.0.1:0".parse().unwrap(), Vec::new()).await;
    let b = node_on("127.0.0.1:0".parse().unwrap(), Vec::new()).await;
    let b_addr = b.http_addr;
    let b_url = b.url();
    let gw = Gateway::start(NodeSource::Static(vec![a.url(), b.url()])).await;
    eventually("both healthy", || async {
        node_health(&gw).await.values().all(|h| *h)
    })
    .await;
    b.stop().await;
    eventually("b removed by the health checks", || async {
        node_health(&gw).await.get(&b_url) == Some(&false)
    })
    .await;
    for _ in 0..6 {
        let (status, _, node) = post(&gw.url("/increment"), None).await;
        assert_eq!((status, node.as_str()), (200, a.url().as_str()));
    }
    let b = node_on(b_addr, vec![a.node.local_addr().to_string()]).await;
    eventually("b readmitted", || async {
        node_health(&gw).await.get(&b_url) == Some(&true)
    })
    .await;
    eventually("b answers reads again", || async {
        let (status, _, node) = get(&gw.url("/counter")).await;
        assert_eq!(status, 200);
        node == b_url
    })
    .await;
    gw.stop().await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_json_and_changes_nothing() {
    let services = nodes(2).await;
    let gw = Gateway::start(static_nodes(&services)).await;
    let big = format!(r#"{{"by": 1, "pad": "{}"}}"#, "x".repeat(5000));
    for body in [
        r#"{"by": 0}"#,
        r#"{"by": -1}"#,
        r#"{"by": 1.5}"#,
        r#"{"by": "2"}"#,
        r#"{"by": 9007199254740992}"#,
        "[1]",
        "nope",
        big.as_str(),
    ] {
        for path in ["/increment", "/decrement"] {
            let (status, answer, _) = post(&gw.url(path), Some(body)).await;
            let want = if body.len() > 4096 { 413 } else { 400 };
            assert_eq!(status, want, "{path} {body}: {answer}");
            assert!(answer["error"].is_string(), "{answer}");
        }
    }
    let (status, answer, _) = get(&gw.url("/nope")).await;
    assert_eq!(status, 404);
    assert!(answer["error"].is_string());
    let (status, answer, _) = get(&gw.url("/increment")).await;
    assert_eq!(status, 405);
    assert!(answer["error"].is_string());
    let (status, answer, _) = post(&gw.url("/counter"), None).await;
    assert_eq!(status, 405);
    assert!(answer["error"].is_string());
    for s in &services {
        assert_eq!(s.node.local(), (0, 0));
    }
    let (status, answer, _) = post(&gw.url("/increment"), Some(r#"{"by": 5}"#)).await;
    assert_eq!((status, answer["value"].clone()), (200, Value::from(5)));
    let (status, answer, _) = post(&gw.url("/decrement"), Some(r#"{"by": 2}"#)).await;
    assert_eq!(status, 200, "{answer}");
    gw.stop().await;
    for s in services {
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_prometheus_text_with_the_gateway_series() {
    let services = nodes(2).await;
    // A third URL where nothing listens: connect errors for the error series.
    let (_dead, dead) = refusing();
    let mut urls: Vec<String> = services.iter().map(NodeService::url).collect();
    urls.push(dead.clone());
    let gw = Gateway::start(NodeSource::Static(urls)).await;
    for _ in 0..6 {
        assert_eq!(get(&gw.url("/counter")).await.0, 200);
        assert_eq!(post(&gw.url("/increment"), None).await.0, 200);
    }
    assert_eq!(post(&gw.url("/increment"), Some("{")).await.0, 400);
    let r = client().get(gw.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let content_type = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = r.text().await.unwrap();
    let node0 = services[0].url();
    for want in [
        "# TYPE tally_gateway_requests_total counter".to_string(),
        r#"tally_gateway_requests_total{route="/counter",status="200"} 6"#.to_string(),
        r#"tally_gateway_requests_total{route="/increment",status="400"} 1"#.to_string(),
        "# TYPE tally_gateway_upstream_duration_seconds histogram".to_string(),
        format!(r#"tally_gateway_upstream_duration_seconds_bucket{{node="{node0}",le="+Inf"}}"#),
        format!(r#"tally_gateway_upstream_errors_total{{node="{dead}",kind="connect"}}"#),
        format!(r#"tally_gateway_node_healthy{{node="{dead}"}} 0"#),
        format!(r#"tally_gateway_node_healthy{{node="{node0}"}} 1"#),
        "tally_gateway_nodes_healthy 2".to_string(),
        "# TYPE tally_gateway_request_duration_seconds histogram".to_string(),
    ] {
        assert!(text.contains(&want), "missing {want} in:\n{text}");
    }
    gw.stop().await;
    for s in services {
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_gives_the_nodes_http_urls() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let disc = format!("http://{}", listener.local_addr().unwrap());
    let disc_stop = CancellationToken::new();
    // No expiry within the test: the registry keeps both nodes however slow the heartbeats.
    let disc_task = tokio::spawn(discovery::serve(
        listener,
        DiscoveryConfig {
            cleanup_after: Duration::from_secs(3600),
            ..DiscoveryConfig::default()
        },
        disc_stop.clone(),
    ));
    let services = nodes(2).await;
    let mut clients = Vec::new();
    for s in &services {
        let client = DiscoveryClient::new(disc.clone(), s.node.local_addr().to_string())
            .http_url(s.url())
            .heartbeat_every(Duration::from_millis(100))
            .refresh_every(Duration::from_millis(100));
        clients.push(tokio::spawn(
            client.run(Arc::clone(&s.node), disc_stop.clone()),
        ));
    }
    // A reference-style registration (no http URL) is skipped by the gateway.
    let (status, _, _) = post(
        &format!("{disc}/register"),
        Some(r#"{"addr":"127.0.0.1:1"}"#),
    )
    .await;
    assert_eq!(status, 200);
    let (_, peers, _) = get(&format!("{disc}/peers")).await;
    assert!(peers
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p.get("http").is_none()));

    // Both nodes stay in rotation (only a refused connection removes one): 4 writes, 2 each.
    let gw = Gateway::with(GatewayConfig {
        unhealthy_after: u32::MAX,
        ..config(NodeSource::Discovery(disc.clone()))
    })
    .await;
    let want: BTreeMap<String, bool> = services.iter().map(|s| (s.url(), true)).collect();
    eventually("the gateway knows both nodes from discovery", || async {
        node_health(&gw).await == want
    })
    .await;
    for _ in 0..4 {
        assert_eq!(post(&gw.url("/increment"), None).await.0, 200);
    }
    for s in &services {
        assert_eq!(s.node.local(), (2, 0));
    }
    // The dashboard and its aggregate.
    let page = client().get(gw.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(page.text().await.unwrap().contains("dashboard.js"));
    for asset in ["/dashboard.js", "/dashboard.css"] {
        assert_eq!(
            client().get(gw.url(asset)).send().await.unwrap().status(),
            200
        );
    }
    eventually("/cluster shows both nodes converged", || async {
        let (status, c, _) = get(&gw.url("/cluster")).await;
        status == 200
            && c["converged"] == true
            && c["value"] == 4
            && c["nodes"].as_array().unwrap().len() == 2
            && c["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .all(|n| n["peers"].is_array() && n["value"] == 4)
    })
    .await;
    gw.stop().await;
    disc_stop.cancel();
    for c in clients {
        c.await.unwrap();
    }
    disc_task.await.unwrap().unwrap();
    for s in services {
        s.stop().await;
    }
}

/// `POST /increment` on `url` from `concurrency` keep-alive clients for `secs`; returns the
/// number of 2xx answers and requests/s.
async fn load(url: &str, concurrency: usize, secs: u64) -> (u64, f64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let url = url.to_string();
        tasks.push(tokio::spawn(async move {
            let c = client();
            let mut ok = 0u64;
            while Instant::now() < deadline {
                let r = c.post(&url).send().await.unwrap();
                assert_eq!(r.status(), 200);
                let _ = r.bytes().await.unwrap();
                ok += 1;
            }
            ok
        }));
    }
    let started = Instant::now();
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap();
    }
    (ok, ok as f64 / started.elapsed().as_secs_f64())
}

/// Requests/s through the gateway (3 nodes, `POST /increment`, keep-alive clients in the same
/// process) at concurrency 1, 10 and 50, 3 s each, beside one node loaded directly under the
/// same conditions; then checks no write was lost or duplicated.
/// `cargo test --release -p tally-tests --test gateway -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a test"]
async fn throughput_through_the_gateway() {
    let services = nodes(3).await;
    let gw = Gateway::start(static_nodes(&services)).await;
    let mut total_ok = 0u64;
    println!("| concurrency | node direct, req/s | through the gateway, req/s |");
    println!("|---|---|---|");
    for concurrency in [1usize, 10, 50] {
        let direct_url = format!("{}/increment", services[0].url());
        let (direct_ok, direct) = load(&direct_url, concurrency, 3).await;
        let (ok, through) = load(&gw.url("/increment"), concurrency, 3).await;
        total_ok += ok + direct_ok;
        println!("| {concurrency} | {direct:.0} | {through:.0} |");
    }
    let sum: u64 = services.iter().map(|s| s.node.local().0).sum();
    assert_eq!(sum, total_ok, "writes applied == 2xx answers");
    gw.stop().await;
    for s in services {
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_tokens_are_sent_or_passed_through() {
    let api = tally::http::ApiOptions {
        token: Some("s3cret".into()),
        protect_reads: true,
        ..tally::http::ApiOptions::default()
    };
    let s = NodeService::start(NodeOptions {
        sync_interval: Duration::from_millis(100),
        api,
        ..NodeOptions::loopback()
    })
    .await
    .unwrap();
    // With the token configured, the gateway's own health checks and forwarded writes pass.
    // One failed check would remove the node (`unhealthy_after: 1`): after a check has run, it
    // must still be in rotation with no failure.
    let gw = Gateway::with(GatewayConfig {
        node_token: Some("s3cret".into()),
        unhealthy_after: 1,
        ..config(NodeSource::Static(vec![s.url()]))
    })
    .await;
    assert_checked_and_healthy(&gw, &s.url()).await;
    assert_eq!(post(&gw.url("/increment"), None).await.0, 200);
    gw.stop().await;
    // Without it, the client's header is passed on: the node decides (and a node refusing
    // the health check's missing token is up all the same).
    let gw = Gateway::with(GatewayConfig {
        unhealthy_after: 1,
        ..config(NodeSource::Static(vec![s.url()]))
    })
    .await;
    assert_checked_and_healthy(&gw, &s.url()).await;
    let (status, body, _) = post(&gw.url("/increment"), None).await;
    assert_eq!(status, 401, "{body}");
    let r = client()
        .post(gw.url("/increment"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(s.node.local(), (2, 0));
    gw.stop().await;
    s.stop().await;
}

// ----- writes whose outcome is unknown -----

/// What a [`LossyProxy`] does with a `POST` (every other request is passed on both ways).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Loss {
    /// Forwards it, waits for the node's answer (so the node applied it), then closes the
    /// gateway's connection without passing the answer on: the node died after the write.
    AfterApply,
    /// Reads it, then closes the connection without forwarding it: the node died before.
    BeforeSend,
    /// Forwards it, waits for the node's answer, then holds the connection open and silent.
    Hold,
}

/// A TCP stand-in for the path between the gateway and one node.
struct LossyProxy {
    url: String,
    /// `POST`s received from the gateway.
    posts: Arc<AtomicU64>,
    /// Sum of the `by` of the `POST`s the node answered 200.
    applied: Arc<AtomicU64>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl LossyProxy {
    async fn start(node: String, loss: Loss) -> LossyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let posts = Arc::new(AtomicU64::new(0));
        let applied = Arc::new(AtomicU64::new(0));
        let stop = CancellationToken::new();
        let (p, a, st) = (Arc::clone(&posts), Arc::clone(&applied), stop.clone());
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let accepted = tokio::select! {
                    () = st.cancelled() => break,
                    accepted = listener.accept() => accepted,
                };
                let Ok((stream, _)) = accepted else { continue };
                let (node, p, a, st) = (node.clone(), Arc::clone(&p), Arc::clone(&a), st.clone());
                conns.spawn(proxy_connection(stream, node, loss, p, a, st));
            }
            conns.abort_all();
        });
        LossyProxy {
            url,
            posts,
            applied,
            stop,
            task,
        }
    }

    fn posts(&self) -> u64 {
        self.posts.load(Ordering::SeqCst)
    }

    fn applied(&self) -> u64 {
        self.applied.load(Ordering::SeqCst)
    }

    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap();
    }
}

/// One request from `stream`: method, path and body; `None` once the connection ends.
async fn read_request(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Option<(String, String, Vec<u8>)> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let length: usize = head
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + length {
                let mut chunk = [0u8; 4096];
                let n = stream.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = buf[end + 4..end + 4 + length].to_vec();
            buf.drain(..end + 4 + length);
            let mut line = head.lines().next()?.split(' ');
            let (method, path) = (line.next()?.to_string(), line.next()?.to_string());
            return Some((method, path, body));
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn proxy_connection(
    mut stream: TcpStream,
    node: String,
    loss: Loss,
    posts: Arc<AtomicU64>,
    applied: Arc<AtomicU64>,
    stop: CancellationToken,
) {
    let client = client();
    let mut buf = Vec::new();
    while let Some((method, path, body)) = read_request(&mut stream, &mut buf).await {
        let is_post = method == "POST";
        if is_post {
            posts.fetch_add(1, Ordering::SeqCst);
            if loss == Loss::BeforeSend {
                return; // closes the connection; the node never saw the write
            }
        }
        let Ok(response) = client
            .request(method.parse().unwrap(), format!("{node}{path}"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
        else {
            return;
        };
        let status = response.status();
        let answer = response.bytes().await.unwrap_or_default();
        if is_post {
            if status == 200 {
                let by = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|b| b["by"].as_u64())
                    .unwrap_or(1);
                applied.fetch_add(by, Ordering::SeqCst);
            }
            if loss == Loss::Hold {
                stop.cancelled().await;
            }
            return; // the node's answer is lost
        }
        let head = format!(
            "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            answer.len()
        );
        if stream.write_all(head.as_bytes()).await.is_err()
            || stream.write_all(&answer).await.is_err()
        {
            return;
        }
    }
}

/// One write through the gateway: its amount and the gateway's answer.
#[derive(Debug)]
struct Write {
    by: u64,
    status: u16,
    /// The `x-tally-node` header (empty on the gateway's own errors).
    node: String,
    /// The `error` field, if any.
    error: String,
}

impl Write {
    fn unknown(&self) -> bool {
        self.status == 502 || self.status == 504
    }
}

/// Sends `POST /increment` through `gw` with amounts 1, 2, 4, … (each a distinct bit, so a
/// node's total shows exactly which writes it applied) until `enough` says so, at most 40.
async fn writes_until(gw: &Gateway, mut enough: impl FnMut(&[Write]) -> bool) -> Vec<Write> {
    let mut writes = Vec::new();
    for bit in 0..40 {
        let by = 1u64 << bit;
        let (status, body, node) =
            post(&gw.url("/increment"), Some(&format!(r#"{{"by": {by}}}"#))).await;
        let error = body["error"].as_str().unwrap_or_default().to_string();
        let w = Write {
            by,
            status,
            node,
            error,
        };
        assert!(
            status == 200 || w.unknown(),
            "only applied or unknown outcomes here: {w:?}"
        );
        if w.unknown() {
            assert!(
                w.error.contains("may or may not have been applied") && w.node.is_empty(),
                "an unknown outcome says so: {w:?}"
            );
        }
        writes.push(w);
        if enough(&writes) {
            return writes;
        }
    }
    panic!("never enough: {writes:?}");
}

/// Asserts node `url`'s own total `local` is the writes it answered 200, plus some of those
/// whose outcome is unknown and whose error names it: no write applied twice, or elsewhere.
fn assert_applied_at_most_once(writes: &[Write], url: &str, local: u64) {
    let sure: u64 = writes
        .iter()
        .filter(|w| w.status == 200 && w.node == url)
        .map(|w| w.by)
        .sum();
    let maybe: u64 = writes
        .iter()
        .filter(|w| w.unknown() && w.error.contains(url))
        .map(|w| w.by)
        .sum();
    assert!(
        local >= sure && (local - sure) & !maybe == 0,
        "{url} counted {local:#b}: its 200s are {sure:#b}, its unknown outcomes {maybe:#b}: {writes:?}"
    );
}

/// The gateway's `tally_gateway_retries_total` series, if any.
async fn retries(gw: &Gateway) -> Vec<String> {
    let text = tally_tests::get_text(&client(), &gw.url("/metrics")).await;
    text.lines()
        .filter(|l| l.starts_with("tally_gateway_retries_total{"))
        .map(str::to_string)
        .collect()
}

/// A node (behind a proxy) dies after it received a write, before or after applying it, or
/// goes silent: the gateway answers 502/504 "may or may not have been applied" and does not
/// send the write to the other node. Each write is counted once (or, when the node never got
/// it, not at all): never twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_answer_is_lost_is_not_sent_again() {
    for loss in [Loss::AfterApply, Loss::BeforeSend, Loss::Hold] {
        let a = node_on("127.0.0.1:0".parse().unwrap(), Vec::new()).await;
        let b = node_on("127.0.0.1:0".parse().unwrap(), Vec::new()).await;
        let proxy = LossyProxy::start(a.url(), loss).await;
        let gw = Gateway::with(GatewayConfig {
            // A held write times out after 2 s; the proxied node stays in rotation.
            request_timeout: Duration::from_secs(2),
            unhealthy_after: u32::MAX,
            ..config(NodeSource::Static(vec![proxy.url.clone(), b.url()]))
        })
        .await;
        let lost = |ws: &[Write]| {
            ws.iter()
                .filter(|w| w.unknown() && w.error.contains(&proxy.url))
                .count() as u64
        };
        // Until two writes reached the proxied node (whatever the gateway answered).
        let writes = writes_until(&gw, |_| proxy.posts() >= 2).await;
        eprintln!("{loss:?}: {writes:?}");
        let (a_inc, b_inc) = (a.node.local().0, b.node.local().0);
        let sent: u64 = writes.iter().map(|w| w.by).sum();
        // No write counted twice: the amounts are distinct bits, so a write applied on both
        // nodes shows in both totals.
        assert!(
            a_inc & b_inc == 0 && a_inc + b_inc <= sent,
            "{loss:?}: a counted {a_inc:#b}, b {b_inc:#b}, of {sent:#b} sent: {writes:?}"
        );
        // Node a counted what the proxy saw it apply (nothing when the proxy dropped the
        // write), b only the writes it answered; each lost write is an unknown outcome.
        let expected = if loss == Loss::BeforeSend {
            0
        } else {
            proxy.applied()
        };
        assert_eq!(a_inc, expected, "{loss:?}: {writes:?}");
        assert_applied_at_most_once(&writes, &b.url(), b_inc);
        assert_applied_at_most_once(&writes, &proxy.url, a_inc);
        // Every write the proxy got was lost, once: neither the gateway nor its HTTP client
        // sent it again.
        assert_eq!(proxy.posts(), lost(&writes), "{loss:?}: {writes:?}");
        if loss != Loss::BeforeSend {
            assert!(a_inc > 0, "{loss:?}: the lost writes were applied");
        }
        let want = if loss == Loss::Hold { 504 } else { 502 };
        for w in writes.iter().filter(|w| w.error.contains(&proxy.url)) {
            assert!(
                w.status == want || w.error.contains("did not answer within"),
                "{loss:?}: {w:?}"
            );
        }
        assert_eq!(retries(&gw).await, Vec::<String>::new(), "{loss:?}");
        gw.stop().await;
        proxy.stop().await;
        a.stop().await;
        b.stop().await;
    }
}

/// What a [`FlakyJournal`] does with the next wait for durability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Disk {
    Ok,
    /// The next wait fails (the record was handed over; whether it is on disk is unknown).
    FailNext,
    /// Waits block until set back to `Ok`.
    Stall,
}

/// A journal in memory whose durability can fail or stall on demand.
struct FlakyJournal {
    next: AtomicU64,
    disk: Mutex<Disk>,
    changed: Condvar,
}

impl FlakyJournal {
    fn set(&self, disk: Disk) {
        *self.disk.lock().unwrap_or_else(|p| p.into_inner()) = disk;
        self.changed.notify_all();
    }
}

impl Journal for FlakyJournal {
    fn append(&self, _: PersistKind, _: &[u8]) -> Result<u64, JournalError> {
        Ok(self.next.fetch_add(1, Ordering::SeqCst))
    }

    fn wait(&self, _: u64) -> Result<(), JournalError> {
        // A stall ends by `set`, or fails after DEADLINE: a failing test must not leave the
        // node's committer (and so its shutdown) blocked for ever.
        let started = std::time::Instant::now();
        let mut disk = self.disk.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            match *disk {
                Disk::Ok => return Ok(()),
                Disk::FailNext => {
                    *disk = Disk::Ok;
                    return Err(JournalError("injected: fsync failed".into()));
                }
                Disk::Stall => {
                    let left = DEADLINE.saturating_sub(started.elapsed());
                    if left.is_zero() {
                        return Err(JournalError("injected: stalled too long".into()));
                    }
                    disk = self
                        .changed
                        .wait_timeout(disk, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            }
        }
    }
}

/// Sets its journal back to [`Disk::Ok`] when dropped: a test that fails while the log
/// stalls still shuts its node down.
struct Release(Arc<FlakyJournal>);

impl Drop for Release {
    fn drop(&mut self) {
        self.0.set(Disk::Ok);
    }
}

/// A real node (gossip node and HTTP API) on a [`FlakyJournal`].
struct FlakyNode {
    /// First field, so dropped first: the journal is released before the node goes.
    _release: Release,
    node: Arc<Node>,
    journal: Arc<FlakyJournal>,
    url: String,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl FlakyNode {
    async fn start(request_timeout: Duration) -> FlakyNode {
        let journal = Arc::new(FlakyJournal {
            next: AtomicU64::new(0),
            disk: Mutex::new(Disk::Ok),
            changed: Condvar::new(),
        });
        let mut config = NodeConfig::new("127.0.0.1:0".parse().unwrap());
        config.journal = Some(Arc::clone(&journal) as Arc<dyn Journal>);
        let node = Arc::new(Node::start(config).unwrap());
        let guard = tally::http::Guard::new(tally::http::ApiOptions {
            request_timeout,
            ..tally::http::ApiOptions::default()
        });
        let router = tally::http::router(Arc::new(tally::http::NodeApi {
            node: Arc::clone(&node),
            writes: tally::durable::Writes::new(Arc::clone(&node)),
            wal: None,
            guard: Arc::clone(&guard),
            telemetry: tally::telemetry::Telemetry::new(),
        }));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            tally::http::serve(listener, router, guard, token)
                .await
                .unwrap();
        });
        FlakyNode {
            _release: Release(Arc::clone(&journal)),
            node,
            journal,
            url,
            stop,
            task,
        }
    }

    async fn stop(self) {
        self.journal.set(Disk::Ok);
        self.stop.cancel();
        self.task.await.unwrap();
        let node = self.node;
        tokio::task::spawn_blocking(move || node.shutdown())
            .await
            .unwrap();
    }
}

/// A node whose log fails answers 503 `not durable` — after the write was prepared and handed
/// to the log, so the node may well count it: its next committed write does. The gateway
/// must call that an unknown outcome (502), not "nothing was written" (503), and must not send
/// the write to the other node. Same for a node's 408 while the write waits for its commit
/// (504): the write is applied when the log catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_answering_not_durable_or_408_is_an_unknown_outcome() {
    let flaky = FlakyNode::start(Duration::from_secs(1)).await;
    let b = node_on("127.0.0.1:0".parse().unwrap(), Vec::new()).await;
    let gw = Gateway::with(GatewayConfig {
        unhealthy_after: u32::MAX,
        ..config(NodeSource::Static(vec![flaky.url.clone(), b.url()]))
    })
    .await;
    let on_flaky = |ws: &[Write]| {
        ws.iter()
            .filter(|w| w.error.contains(&flaky.url))
            .map(|w| w.by)
            .sum::<u64>()
    };

    // The log fails once: the node answers 503 "not durable".
    flaky.journal.set(Disk::FailNext);
    let mut writes = writes_until(&gw, |ws| on_flaky(ws) > 0).await;
    let failed = writes.last().unwrap();
    assert_eq!(failed.status, 502, "{failed:?}");
    assert!(
        failed.error.contains("HTTP 503") && failed.error.contains("not durable"),
        "{failed:?}"
    );
    let failed_by = failed.by;
    assert_eq!(flaky.node.local().0, 0, "not counted yet");
    // The next write straight to the node commits it too: the 503 was not "nothing written".
    let (status, _, _) = post(
        &format!("{}/increment", flaky.url),
        Some(r#"{"by": 1099511627776}"#),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(flaky.node.local().0, (1 << 40) + failed_by);
    assert_applied_at_most_once(&writes, &b.url(), b.node.local().0);

    // The log stalls past the node's 1 s deadline: it answers 408, the gateway 504.
    flaky.journal.set(Disk::Stall);
    let before = on_flaky(&writes);
    let stalled = writes_until(&gw, |ws| on_flaky(ws) > 0).await;
    let late = stalled.last().unwrap();
    assert_eq!(late.status, 504, "{late:?}");
    assert!(late.error.contains("HTTP 408"), "{late:?}");
    let late_by = late.by;
    flaky.journal.set(Disk::Ok);
    let n = Arc::clone(&flaky.node);
    eventually("the stalled write commits once the log catches up", || {
        let n = Arc::clone(&n);
        async move { n.local().0 == (1 << 40) + failed_by + late_by }
    })
    .await;
    assert_eq!(before, failed_by);
    writes.extend(stalled);
    // b got only its own writes: neither unknown outcome was retried there.
    let b_writes: Vec<&Write> = writes.iter().filter(|w| w.node == b.url()).collect();
    assert_eq!(
        b.node.local().0,
        b_writes.iter().map(|w| w.by).sum::<u64>(),
        "{writes:?}"
    );
    assert_eq!(retries(&gw).await, Vec::<String>::new());
    gw.stop().await;
    b.stop().await;
    flaky.stop().await;
}

/// The one case a write is sent again: its connection was refused, so no node saw it. The
/// write lands once on the next node; with every node refusing, the answer is 503 and
/// nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_write_is_retried_once_and_503_only_when_nothing_was_written() {
    let (_dead, dead) = refusing();
    let b = node_on("127.0.0.1:0".parse().unwrap(), Vec::new()).await;
    let gw = Gateway::with(config(NodeSource::Static(vec![dead.clone(), b.url()]))).await;
    let writes = writes_until(&gw, |ws| ws.len() == 4).await;
    assert!(
        writes.iter().all(|w| w.status == 200 && w.node == b.url()),
        "{writes:?}"
    );
    assert_eq!(b.node.local().0, 0b1111, "each write applied once");
    gw.stop().await;
    b.stop().await;

    let (_other, other) = refusing();
    let gw = Gateway::with(config(NodeSource::Static(vec![dead, other]))).await;
    let (status, body, _) = post(&gw.url("/increment"), Some(r#"{"by": 3}"#)).await;
    // Either both refused this write, or the health checks had already removed them.
    assert_eq!(status, 503, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error == "no healthy node"
            || (error.starts_with("no healthy node") && error.contains("nothing was written")),
        "{body}"
    );
    gw.stop().await;
}
