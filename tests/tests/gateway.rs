#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]
//! The gateway over real HTTP on loopback, in front of real nodes: balancing, a node killed
//! under write load (no write lost or duplicated), no node → 503, readmission, bad input,
//! discovery of node URLs, `/cluster`, `/metrics`, node tokens; and an ignored throughput
//! measurement. Writes whose outcome is unknown: `gateway_outcomes.rs`.
//!
//! No assertion depends on the machine's speed: waits are on events (with a generous
//! deadline), and the gateways' deadlines are far above what a loaded machine needs.

mod gateway_common;

use gateway_common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tally::discovery::{self, DiscoveryClient, DiscoveryConfig};
use tally::gateway::{GatewayConfig, NodeSource};
use tally::service::{NodeOptions, NodeService};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_counters_go_through_the_gateway() {
    let services = nodes(3).await;
    let gw = Gateway::start(static_nodes(&services)).await;
    for _ in 0..6 {
        let (status, body, _) =
            post(&gw.url("/counters/doors/increment"), Some(r#"{"by": 2}"#)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["name"], "doors", "{body}");
    }
    let (status, body, _) = post(&gw.url("/counters/bad%20name/increment"), None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("bad_name")),
        "{body}"
    );
    // `.` and `..` are names, but a forwarded URL would resolve them (`/counters/../increment`
    // is `/increment`): refused, and nothing is written (the default counter stays 0 below).
    for dots in [".", ".."] {
        let (status, body) = raw_post(&gw.url(""), &format!("/counters/{dots}/increment")).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("bad_name")),
            "{dots}: {body}"
        );
    }
    // Writes were spread over the nodes; every node agrees on the sum.
    let deadline = Instant::now() + PATIENT;
    loop {
        let (status, body, _) = get(&gw.url("/counters")).await;
        assert_eq!(status, 200, "{body}");
        let all = services
            .iter()
            .all(|s| s.node.counter_value("doors") == Some(12));
        if all && body["counters"]["doors"] == 12 && body["default"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "never agreed: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body, _) = get(&gw.url("/counters/doors")).await;
    assert_eq!((status, body["value"].as_i64()), (200, Some(12)), "{body}");
    let (status, body, _) = get(&gw.url("/counters/never")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    gw.stop().await;
    for s in services {
        s.stop().await;
    }
}

/// `GET /cluster` carries the named counters: every node's values and, per counter, whether
/// the healthy nodes agree; at most the first 100 names in byte order, with the total.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_shows_named_counters_and_their_convergence() {
    // `a` and `b` gossip; `c` has no peers, so it never learns their writes (nor they its).
    let mut services = nodes(2).await;
    services.push(node_on("127.0.0.1:0".parse().unwrap(), Vec::new()).await);
    let (a, b, c) = (services[0].url(), services[1].url(), services[2].url());
    let gw = Gateway::start(static_nodes(&services)).await;
    let cluster = || async {
        let (status, body, _) = get(&gw.url("/cluster")).await;
        assert_eq!(status, 200, "{body}");
        body
    };
    // A node's named counters in a `/cluster` answer, by its URL (the order is the gateway's).
    let named = |cluster: &Value, url: &str| {
        cluster["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["url"] == url)
            .map(|n| n["counters"].clone())
    };
    eventually(
        "/cluster shows three nodes and no named counter",
        || async {
            let c = cluster().await;
            c["healthy"] == 3
                && c["counters"] == serde_json::json!({})
                && c["counters_total"] == 0
                && c["counters_converged"] == true
                && c["nodes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|n| n["counters"] == serde_json::json!({}) && n["counters_total"] == 0)
        },
    )
    .await;

    let write = |url: String, name: &'static str, by: u32| async move {
        let body = format!(r#"{{"by": {by}}}"#);
        let (status, answer, _) =
            post(&format!("{url}/counters/{name}/increment"), Some(&body)).await;
        assert_eq!(status, 200, "{answer}");
    };
    write(a.clone(), "doors", 2).await;
    write(c.clone(), "lights", 1).await;
    // `doors` reached `b` but not `c`, `lights` is only on `c`: neither has converged.
    eventually("/cluster shows two unconverged counters", || async {
        let v = cluster().await;
        v["counters"]
            == serde_json::json!({
                "doors": {"converged": false, "value": null},
                "lights": {"converged": false, "value": null},
            })
            && v["counters_total"] == 2
            && v["counters_converged"] == false
            && named(&v, &a) == Some(serde_json::json!({"doors": 2}))
            && named(&v, &b) == Some(serde_json::json!({"doors": 2}))
            && named(&v, &c) == Some(serde_json::json!({"lights": 1}))
            // The default counter is not affected.
            && v["converged"] == true
    })
    .await;
    // The same values everywhere (written separately on each side): converged, per counter.
    write(c.clone(), "doors", 2).await;
    write(a.clone(), "lights", 1).await;
    eventually("/cluster shows both counters converged", || async {
        let v = cluster().await;
        v["counters"]
            == serde_json::json!({
                "doors": {"converged": true, "value": 2},
                "lights": {"converged": true, "value": 1},
            })
            && v["counters_converged"] == true
            && v["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .all(|n| n["counters"] == serde_json::json!({"doors": 2, "lights": 1}))
    })
    .await;

    // 105 more names on both sides: 107 in all, the first 100 by name shown.
    for i in 0..105 {
        for url in [&a, &c] {
            let (status, answer, _) =
                post(&format!("{url}/counters/n{i:03}/increment"), None).await;
            assert_eq!(status, 200, "{answer}");
        }
    }
    eventually("/cluster shows the first 100 of 107 counters", || async {
        let v = cluster().await;
        let shown = v["counters"].as_object().unwrap();
        let nodes = v["nodes"].as_array().unwrap();
        v["counters_total"] == 107
            && v["counters_converged"] == true
            && shown.len() == 100
            && shown.keys().next().map(String::as_str) == Some("doors")
            && shown.keys().next_back().map(String::as_str) == Some("n097")
            && shown.values().all(|c| c["converged"] == true)
            && nodes.iter().all(|n| {
                n["counters_total"] == 107
                    && n["counters"].as_object().unwrap().len() == 100
                    && n["counters"].get("n098").is_none()
            })
    })
    .await;
    gw.stop().await;
    for s in services {
        s.stop().await;
    }
}

/// `POST PATH` with the path sent as it is (an HTTP client would resolve `.` and `..`).
async fn raw_post(base: &str, path: &str) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = base.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}
