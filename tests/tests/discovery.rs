#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]
//! The discovery service (spec §9) over real HTTP on loopback, and real `tally_std` nodes that
//! find each other through it.

use std::collections::BTreeSet;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use tally::discovery::{
    serve, serve_registry, DiscoveryClient, DiscoveryConfig, Registry, ETAG, REGISTRY_HEADER,
    TTL_HEADER,
};
use tally_std::{Node, NodeConfig, PeerSource};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long any "eventually" may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(15);
/// How often "eventually" looks again.
const POLL: Duration = Duration::from_millis(50);

struct Server {
    addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(config: DiscoveryConfig) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Server::on(listener, config)
    }

    fn on(listener: tokio::net::TcpListener, config: DiscoveryConfig) -> Server {
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let task = tokio::spawn(serve(listener, config, stop.clone()));
        Server { addr, stop, task }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("discovery did not stop")
            .unwrap()
            .unwrap();
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// POSTs `body` verbatim as JSON; returns the status and the JSON answer (Null if none).
async fn post(url: &str, body: impl Into<String>) -> (u16, serde_json::Value) {
    let response = http()
        .post(url)
        .header("content-type", "application/json")
        .body(body.into())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_default())
}

async fn register(server: &Server, addr: &str) -> u16 {
    post(&server.url("/register"), format!(r#"{{"addr":"{addr}"}}"#))
        .await
        .0
}

async fn heartbeat(server: &Server, addr: &str) -> u16 {
    post(&server.url("/heartbeat"), format!(r#"{{"addr":"{addr}"}}"#))
        .await
        .0
}

/// The raw `GET /peers` answer.
async fn peer_list(server: &Server) -> serde_json::Value {
    let response = http().get(server.url("/peers")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    response.json().await.unwrap()
}

/// The addresses of `GET /peers`, in the order served.
async fn peer_addrs(server: &Server) -> Vec<String> {
    peer_list(server)
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["addr"].as_str().unwrap().to_string())
        .collect()
}

/// Polls `check` until it is true; fails with `what` after `DEADLINE`.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(POLL).await;
    }
}

fn node() -> Arc<Node> {
    let config =
        NodeConfig::new("127.0.0.1:0".parse().unwrap()).sync_interval(Duration::from_millis(100));
    Arc::new(Node::start(config).unwrap())
}

/// Starts a discovery client for `node` with short intervals.
fn discover(node: &Arc<Node>, url: String, stop: &CancellationToken) -> JoinHandle<()> {
    let client = DiscoveryClient::new(url, node.local_addr().to_string())
        .heartbeat_every(Duration::from_millis(100))
        .refresh_every(Duration::from_millis(200));
    tokio::spawn(client.run(Arc::clone(node), stop.clone()))
}

fn knows(node: &Node, peer: &Node) -> bool {
    let addr = peer.local_addr().to_string();
    node.peers()
        .iter()
        .any(|p| p.addr == addr && p.source == PeerSource::Discovered)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_and_peer_list() {
    let server = Server::start(DiscoveryConfig::default()).await;
    assert!(peer_addrs(&server).await.is_empty());

    let (status, body) = post(&server.url("/register"), r#"{"addr":"127.0.0.1:9001"}"#).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(register(&server, "127.0.0.1:9000").await, 200);
    // Registering again is fine and does not duplicate; unknown fields are ignored.
    let (status, _) = post(
        &server.url("/register"),
        r#"{"addr":"127.0.0.1:9000","LastSeen":"0001-01-01T00:00:00Z","x":[1]}"#,
    )
    .await;
    assert_eq!(status, 200);
    // A heartbeat of an unknown address registers it.
    assert_eq!(heartbeat(&server, "node-c.local:7000").await, 200);

    let list = peer_list(&server).await;
    let entries = list.as_array().unwrap();
    let addrs: Vec<_> = entries
        .iter()
        .map(|p| p["addr"].as_str().unwrap())
        .collect();
    assert_eq!(
        addrs,
        ["127.0.0.1:9000", "127.0.0.1:9001", "node-c.local:7000"]
    );
    for entry in entries {
        let last_seen = entry["LastSeen"].as_str().expect("LastSeen is a string");
        assert!(
            last_seen.ends_with('Z') && last_seen.contains('T'),
            "{last_seen}"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_json_errors() {
    let server = Server::start(DiscoveryConfig::default()).await;
    for route in ["/register", "/heartbeat"] {
        let url = server.url(route);
        for body in [
            "",
            "{",
            "not json",
            "null",
            "[]",
            r#"{"addr":5}"#,
            r#"{}"#,
            r#"{"addr":""}"#,
            r#"{"addr":"no-port"}"#,
            r#"{"addr":"host:"}"#,
            r#"{"addr":":9000"}"#,
            r#"{"addr":"host:0"}"#,
            r#"{"addr":"host:99999"}"#,
            r#"{"addr":"two words:9000"}"#,
        ] {
            let (status, answer) = post(&url, body).await;
            assert_eq!(status, 400, "{route} {body:?}: {answer}");
            assert!(answer["error"].is_string(), "{route} {body:?}: {answer}");
        }
    }
    // Nothing of that was registered.
    assert!(peer_addrs(&server).await.is_empty());

    // Unknown route: 404; known route, wrong method: 405 with Allow; both JSON.
    let client = http();
    let response = client.get(server.url("/nope")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 404);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert!(answer["error"].is_string());
    for (method, route) in [
        (reqwest::Method::GET, "/register"),
        (reqwest::Method::GET, "/heartbeat"),
        (reqwest::Method::POST, "/peers"),
        (reqwest::Method::DELETE, "/peers"),
    ] {
        let response = client
            .request(method.clone(), server.url(route))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 405, "{method} {route}");
        assert!(response.headers().contains_key("allow"), "{method} {route}");
        let answer: serde_json::Value = response.json().await.unwrap();
        assert!(answer["error"].is_string(), "{method} {route}");
    }

    // A body over 4 KiB is refused before it is parsed.
    let padding = "x".repeat(8 * 1024);
    let (status, answer) = post(
        &server.url("/register"),
        format!(r#"{{"addr":"127.0.0.1:9000","pad":"{padding}"}}"#),
    )
    .await;
    assert_eq!(status, 413, "{answer}");
    assert!(answer["error"].is_string());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_registry_refuses_new_addresses() {
    let server = Server::start(DiscoveryConfig {
        max_peers: 2,
        ..DiscoveryConfig::default()
    })
    .await;
    assert_eq!(register(&server, "127.0.0.1:1").await, 200);
    assert_eq!(register(&server, "127.0.0.1:2").await, 200);
    for route in ["/register", "/heartbeat"] {
        let (status, answer) = post(&server.url(route), r#"{"addr":"127.0.0.1:3"}"#).await;
        assert_eq!(status, 503, "{route}");
        assert_eq!(answer["error"], "registry full");
    }
    // Known addresses still heartbeat.
    assert_eq!(heartbeat(&server, "127.0.0.1:2").await, 200);
    assert_eq!(peer_addrs(&server).await, ["127.0.0.1:1", "127.0.0.1:2"]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_a_peer_while_an_unrefreshed_one_expires() {
    let server = Server::start(DiscoveryConfig {
        cleanup_after: Duration::from_millis(500),
        sweep_every: Duration::from_millis(100),
        ..DiscoveryConfig::default()
    })
    .await;
    let (kept, dropped) = ("127.0.0.1:7001", "127.0.0.1:7002");
    assert_eq!(register(&server, kept).await, 200);
    assert_eq!(register(&server, dropped).await, 200);
    assert_eq!(peer_addrs(&server).await, [kept, dropped]);

    // Heartbeat `kept` (every POLL, far inside cleanup_after) until `dropped` is swept.
    eventually("the unrefreshed peer expires", || async {
        assert_eq!(heartbeat(&server, kept).await, 200);
        !peer_addrs(&server).await.iter().any(|a| a == dropped)
    })
    .await;
    assert_eq!(peer_addrs(&server).await, [kept]);

    // Without heartbeats it goes too.
    eventually("the peer expires once heartbeats stop", || async {
        peer_addrs(&server).await.is_empty()
    })
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_find_each_other_through_discovery_and_converge() {
    let server = Server::start(DiscoveryConfig::default()).await;
    let (a, b) = (node(), node());
    assert!(a.peers().is_empty() && b.peers().is_empty());
    let stop = CancellationToken::new();
    let clients = [
        discover(&a, server.url(""), &stop),
        discover(&b, server.url(""), &stop),
    ];

    eventually("both nodes registered", || async {
        let mut want = vec![a.local_addr().to_string(), b.local_addr().to_string()];
        want.sort();
        peer_addrs(&server).await == want
    })
    .await;
    eventually("each node discovered the other", || async {
        knows(&a, &b) && knows(&b, &a)
    })
    .await;
    // A node never lists itself as a peer.
    let own = a.local_addr().to_string();
    assert!(a.peers().iter().all(|p| p.addr != own));

    a.increment(3).unwrap();
    b.increment(5).unwrap();
    b.decrement(2).unwrap();
    eventually("both nodes converge on 6", || async {
        a.value() == 6 && b.value() == 6
    })
    .await;

    stop.cancel();
    for client in clients {
        tokio::time::timeout(DEADLINE, client)
            .await
            .expect("discovery client did not stop")
            .unwrap();
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_outlives_a_missing_discovery_service_and_registers_when_it_appears() {
    // A free port with nothing listening on it: connections are refused.
    let addr = {
        let probe = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        probe.local_addr().unwrap()
    };
    let url = format!("http://{addr}");
    let a = node();
    let stop = CancellationToken::new();
    let client_a = discover(&a, url.clone(), &stop);

    // The node keeps counting while its registrations fail (give them time to fail a few
    // times; what is asserted is only that the node works and the client is still running).
    a.increment(4).unwrap();
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(a.increment(1).unwrap(), 5);
    assert!(!client_a.is_finished());

    // The service appears on that port.
    // A 3 s expiry: heartbeats (which bring news of the newcomer) every second, not every 10 s.
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let server = Server::on(
        listener,
        DiscoveryConfig {
            cleanup_after: Duration::from_secs(3),
            ..DiscoveryConfig::default()
        },
    );
    let a_addr = a.local_addr().to_string();
    eventually("the node registers once discovery is up", || async {
        peer_addrs(&server).await == [a_addr.clone()]
    })
    .await;

    // And it is fully in service: a newcomer finds it, and both converge.
    let b = node();
    let client_b = discover(&b, url, &stop);
    b.decrement(2).unwrap();
    eventually("the newcomer and the node find each other", || async {
        knows(&a, &b) && knows(&b, &a)
    })
    .await;
    eventually("both converge on 3", || async {
        a.value() == 3 && b.value() == 3
    })
    .await;

    stop.cancel();
    for client in [client_a, client_b] {
        tokio::time::timeout(DEADLINE, client)
            .await
            .expect("discovery client did not stop")
            .unwrap();
    }
    server.stop().await;
}

/// A header of `response` as text ("" when absent).
fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// `GET /peers` with `If-None-Match: tag`: the status, the `ETag` and the body text.
async fn peers_if_none_match(server: &Server, tag: &str) -> (u16, String, String) {
    let response = http()
        .get(server.url("/peers"))
        .header("if-none-match", tag)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let etag = header(&response, ETAG);
    (status, etag, response.text().await.unwrap())
}

/// POSTs `{"addr": addr}` to `route`: the status and the registry tag the answer announced.
async fn post_tagged(server: &Server, route: &str, addr: &str) -> (u16, String, String) {
    let response = http()
        .post(server.url(route))
        .json(&serde_json::json!({ "addr": addr }))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (
        status,
        header(&response, REGISTRY_HEADER),
        header(&response, TTL_HEADER),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_tag_moves_on_register_and_expiry_but_not_on_heartbeats() {
    let server = Server::start(DiscoveryConfig {
        cleanup_after: Duration::from_millis(500),
        sweep_every: Duration::from_millis(50),
        ..DiscoveryConfig::default()
    })
    .await;
    let response = http().get(server.url("/peers")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let empty = header(&response, ETAG);
    assert!(
        empty.starts_with('"') && empty.ends_with('"') && empty.len() > 2,
        "{empty}"
    );

    // Idle: 304 with the same tag and no body.
    let (status, etag, body) = peers_if_none_match(&server, &empty).await;
    assert_eq!(
        (status, etag.as_str(), body.as_str()),
        (304, empty.as_str(), "")
    );
    // Another tag, or none, gets the list.
    assert_eq!(peers_if_none_match(&server, "\"stale\"").await.0, 200);

    // A registration changes the tag, and says so with the expiry.
    let addr = "127.0.0.1:7001";
    let (status, one, ttl) = post_tagged(&server, "/register", addr).await;
    assert_eq!((status, ttl.as_str()), (200, "0.5"));
    assert_ne!(one, empty);
    let (status, etag, body) = peers_if_none_match(&server, &empty).await;
    assert_eq!((status, &etag), (200, &one));
    assert!(body.contains(addr), "{body}");

    // Heartbeats and re-registrations of a known address do not.
    for route in ["/heartbeat", "/register", "/heartbeat"] {
        let (status, tag, _) = post_tagged(&server, route, addr).await;
        assert_eq!((status, &tag), (200, &one), "{route}");
    }
    assert_eq!(peers_if_none_match(&server, &one).await.0, 304);

    // The drop does.
    eventually("the unrefreshed peer expires", || async {
        peer_addrs(&server).await.is_empty()
    })
    .await;
    let (status, dropped, body) = peers_if_none_match(&server, &one).await;
    assert_eq!((status, body.as_str()), (200, "[]"));
    assert!(dropped != one && dropped != empty, "{dropped}");
    assert_eq!(peers_if_none_match(&server, &dropped).await.0, 304);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_tally_client_does_not_poll_yet_learns_a_newcomer_promptly() {
    // A short expiry, so the announced TTL keeps heartbeats fast (max(100 ms, 600 ms / 3)).
    let config = DiscoveryConfig {
        cleanup_after: Duration::from_millis(600),
        sweep_every: Duration::from_millis(50),
        ..DiscoveryConfig::default()
    };
    let registry = Arc::new(Registry::new(&config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let server = tokio::spawn(serve_registry(
        listener,
        Arc::clone(&registry),
        config,
        stop.clone(),
    ));

    // `discover` asks for a 200 ms refresh: against a tagged service it must not be used.
    let (a, b) = (node(), node());
    let client_a = discover(&a, url.clone(), &stop);
    eventually("a registered and fetched the list", || async {
        registry.len() == 1 && registry.peer_list_requests() >= 1
    })
    .await;
    let generation = registry.generation();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        registry.peer_list_requests(),
        1,
        "an idle client polled /peers"
    );
    assert_eq!(registry.len(), 1, "a's heartbeats kept it registered");
    assert_eq!(registry.generation(), generation);

    // A newcomer: a learns of it on its next heartbeat (every 200 ms here).
    let joined = Instant::now();
    let client_b = discover(&b, url, &stop);
    eventually("a and b know each other", || async {
        knows(&a, &b) && knows(&b, &a)
    })
    .await;
    assert!(
        joined.elapsed() < Duration::from_secs(2),
        "a newcomer took {:?}",
        joined.elapsed()
    );
    // One more list for a, one for b (b may see a second change if a raced it).
    assert!(
        registry.peer_list_requests() <= 4,
        "{}",
        registry.peer_list_requests()
    );

    stop.cancel();
    for client in [client_a, client_b] {
        tokio::time::timeout(DEADLINE, client)
            .await
            .unwrap()
            .unwrap();
    }
    tokio::time::timeout(DEADLINE, server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// What the reference-like service saw and holds.
#[derive(Debug, Default)]
struct ReferenceState {
    peers: BTreeSet<String>,
    heartbeats: Vec<Instant>,
    peer_gets: u64,
}

/// A minimal stand-in for the Go reference service on raw TCP: one request per connection,
/// plain 200 answers without tags or expiry, `/peers` as `[{"addr":…,"LastSeen":…}]`.
async fn reference_service(
    listener: tokio::net::TcpListener,
    state: Arc<Mutex<ReferenceState>>,
    stop: CancellationToken,
) {
    loop {
        let (stream, _) = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(_) => continue,
            },
        };
        tokio::spawn(reference_answer(stream, Arc::clone(&state)));
    }
}

/// Reads one request from `stream` and answers it as the reference would.
async fn reference_answer(mut stream: tokio::net::TcpStream, state: Arc<Mutex<ReferenceState>>) {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    let (head, mut body) = loop {
        let Ok(n) = stream.read(&mut buf).await else {
            return;
        };
        if n == 0 {
            return;
        }
        request.extend_from_slice(&buf[..n]);
        if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&request[..end]).to_string();
            break (head, request[end + 4..].to_vec());
        }
    };
    let length = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse::<usize>().ok())
        .unwrap_or(0);
    while body.len() < length {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => body.extend_from_slice(&buf[..n]),
        }
    }
    let request_line = head.lines().next().unwrap_or_default().to_string();
    let answer = {
        let mut state = state.lock().unwrap();
        if request_line.starts_with("GET /peers ") {
            state.peer_gets += 1;
            let entries: Vec<_> = state
                .peers
                .iter()
                .map(|addr| serde_json::json!({"addr": addr, "LastSeen": "0001-01-01T00:00:00Z"}))
                .collect();
            serde_json::Value::from(entries).to_string()
        } else {
            let addr = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["addr"].as_str().map(str::to_string))
                .unwrap_or_default();
            if request_line.starts_with("POST /heartbeat ") {
                state.heartbeats.push(Instant::now());
            }
            state.peers.insert(addr);
            "{}".to_string()
        }
    };
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
        answer.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tally_client_polls_a_reference_service_and_heartbeats_within_its_expiry() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let state = Arc::new(Mutex::new(ReferenceState::default()));
    let stop = CancellationToken::new();
    let service = tokio::spawn(reference_service(
        listener,
        Arc::clone(&state),
        stop.clone(),
    ));

    // Default intervals: what a `tally node --discovery` of a reference service does.
    let (a, b) = (node(), node());
    let client = DiscoveryClient::new(url, a.local_addr().to_string());
    let client = tokio::spawn(client.run(Arc::clone(&a), stop.clone()));
    eventually("a registered and fetched the list once", || async {
        let state = state.lock().unwrap();
        state.peers.contains(&a.local_addr().to_string()) && state.peer_gets >= 1
    })
    .await;

    // A peer appears without any change signal: only the fallback refresh can find it.
    state
        .lock()
        .unwrap()
        .peers
        .insert(b.local_addr().to_string());
    eventually("a learns b from a later /peers", || async { knows(&a, &b) }).await;
    assert!(state.lock().unwrap().peer_gets >= 2);

    eventually("three heartbeats", || async {
        state.lock().unwrap().heartbeats.len() >= 3
    })
    .await;
    let heartbeats = state.lock().unwrap().heartbeats.clone();
    for gap in heartbeats.windows(2).map(|w| w[1] - w[0]) {
        // 2 s plus scheduling slack; far inside the reference's 5 s expiry.
        assert!(gap <= Duration::from_millis(2500), "heartbeat gap {gap:?}");
    }

    stop.cancel();
    tokio::time::timeout(DEADLINE, client)
        .await
        .unwrap()
        .unwrap();
    tokio::time::timeout(DEADLINE, service)
        .await
        .unwrap()
        .unwrap();
}
