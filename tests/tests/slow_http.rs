#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]
//! Slow and hoarding HTTP clients against all three HTTP servers (node API, gateway,
//! discovery) over real loopback sockets: a client trickling its request head is cut at the
//! header deadline, on a fresh connection and on a keep-alive one's second request, while
//! normal requests are answered; connections over the per-client and total caps are closed at
//! once, and admitted again once others close.
//!
//! Timing asserts are loose: "cut" means between half the deadline and the deadline + 5 s.
//! The cap tests give other clients their own loopback source addresses (127.0.0.2, …), which
//! Linux routes without configuration.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tally::discovery::DiscoveryConfig;
use tally::gateway::{GatewayConfig, NodeSource};
use tally::http::{ApiOptions, ServeLimits};
use tally::service::{NodeOptions, NodeService};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The header deadline the servers get in these tests.
const DEADLINE: Duration = Duration::from_secs(2);
/// A slow client must be cut by then.
const BOUND: Duration = Duration::from_secs(2 + 5);
/// A trickling client sends a header line this often.
const TRICKLE_EVERY: Duration = Duration::from_secs(1);
/// A connection over a cap must be closed within this.
const AT_ONCE: Duration = Duration::from_secs(2);
/// An admitted idle connection is still open after this.
const STILL_OPEN: Duration = Duration::from_millis(300);

/// One of the three servers, running on 127.0.0.1.
struct Running {
    addr: SocketAddr,
    /// A `GET` route that answers 200.
    path: &'static str,
    /// Set for the node.
    node: Option<NodeService>,
    /// Set for the gateway and discovery.
    served: Option<(CancellationToken, JoinHandle<std::io::Result<()>>)>,
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Node,
    Gateway,
    Discovery,
}

impl Running {
    /// Starts `kind` with `limits` (the node takes only the header deadline: its caps are the
    /// defaults).
    async fn start(kind: Kind, limits: ServeLimits) -> Running {
        if let Kind::Node = kind {
            let api = ApiOptions {
                request_timeout: limits.header_timeout,
                ..ApiOptions::default()
            };
            let node = NodeService::start(NodeOptions {
                api,
                ..NodeOptions::loopback()
            })
            .await
            .unwrap();
            return Running {
                addr: node.http_addr,
                path: "/counter",
                node: Some(node),
                served: None,
            };
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let (task, path) = match kind {
            Kind::Gateway => {
                let config = GatewayConfig {
                    limits,
                    ..GatewayConfig::new(NodeSource::Static(Vec::new()))
                };
                let task = tokio::spawn(tally::gateway::serve(listener, config, stop.clone()));
                (task, "/nodes")
            }
            _ => {
                let config = DiscoveryConfig {
                    limits,
                    ..DiscoveryConfig::default()
                };
                let task = tokio::spawn(tally::discovery::serve(listener, config, stop.clone()));
                (task, "/peers")
            }
        };
        Running {
            addr,
            path,
            node: None,
            served: Some((stop, task)),
        }
    }

    async fn stop(self) {
        if let Some(node) = self.node {
            tokio::time::timeout(Duration::from_secs(30), node.stop())
                .await
                .expect("node did not stop");
        }
        if let Some((stop, task)) = self.served {
            stop.cancel();
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("server did not stop")
                .unwrap()
                .unwrap();
        }
    }
}

fn limits(header_timeout: Duration, total: usize, per_client: usize) -> ServeLimits {
    ServeLimits {
        header_timeout,
        max_connections: total,
        max_connections_per_client: per_client,
    }
}

/// A normal client (no pooled connections, so no idle one the server may be closing).
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

async fn status(client: &reqwest::Client, addr: SocketAddr, path: &str) -> u16 {
    match client.get(format!("http://{addr}{path}")).send().await {
        Ok(r) => r.status().as_u16(),
        Err(e) => panic!("GET {path}: {e}"),
    }
}

/// Sends a request head one line every [`TRICKLE_EVERY`], never the blank line that ends it.
/// Returns how long after the first line the server closed the connection, or `None` if it
/// still had not by [`BOUND`].
async fn trickle(stream: &mut TcpStream, path: &str) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    let mut line = 0u32;
    while started.elapsed() < BOUND {
        let text = match line {
            0 => format!("GET {path} HTTP/1.1\r\n"),
            1 => "Host: slow\r\n".to_string(),
            n => format!("x-slow-{n}: still coming\r\n"),
        };
        line += 1;
        if stream.write_all(text.as_bytes()).await.is_err() {
            return Some(started.elapsed());
        }
        let wait = Instant::now() + TRICKLE_EVERY;
        while Instant::now() < wait {
            match tokio::time::timeout_at(wait, stream.read(&mut buf)).await {
                Err(_) => break,
                Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
                // Bytes from the server (an answer to a head never finished?): keep reading.
                Ok(Ok(_)) => {}
            }
        }
    }
    None
}

/// Reads one answer: status and body (by `Content-Length`), within 5 s.
async fn read_answer(stream: &mut TcpStream) -> Option<(u16, Vec<u8>)> {
    let read = async {
        let mut data = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
                let status = head.get(9..12)?.parse().ok()?;
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                let body_at = end + 4;
                while data.len() < body_at + length {
                    let n = stream.read(&mut buf).await.ok()?;
                    if n == 0 {
                        return None;
                    }
                    data.extend_from_slice(&buf[..n]);
                }
                return Some((status, data[body_at..body_at + length].to_vec()));
            }
            let n = stream.read(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            data.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .ok()
        .flatten()
}

fn assert_cut(what: &str, took: Option<Duration>) {
    let took = took.unwrap_or_else(|| panic!("{what}: not cut within {BOUND:?}"));
    eprintln!("{what}: cut after {took:?}");
    assert!(
        took >= DEADLINE / 2,
        "{what}: cut after {took:?}, before the deadline"
    );
    assert!(took <= BOUND, "{what}: cut after {took:?}");
}

/// A slow head on a fresh connection and one on a keep-alive connection's second request
/// are both cut at the deadline, while normal requests are answered.
async fn slow_headers_are_cut(kind: Kind) -> Running {
    let server = Running::start(kind, limits(DEADLINE, 1024, 64)).await;
    let (addr, path) = (server.addr, server.path);
    let fresh = tokio::spawn(async move {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        trickle(&mut stream, path).await
    });
    let kept = tokio::spawn(async move {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: kept\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let (status, _) = read_answer(&mut stream).await.expect("first answer");
        assert_eq!(
            status, 200,
            "{kind:?}: first request on the kept connection"
        );
        trickle(&mut stream, path).await
    });
    let client = client();
    let started = Instant::now();
    while started.elapsed() < DEADLINE + Duration::from_secs(1) {
        assert_eq!(status(&client, addr, path).await, 200, "{kind:?} {path}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_cut(&format!("{kind:?} fresh connection"), fresh.await.unwrap());
    assert_cut(
        &format!("{kind:?} keep-alive connection"),
        kept.await.unwrap(),
    );
    assert_eq!(status(&client, addr, path).await, 200, "{kind:?} after");
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_cuts_slow_headers() {
    let server = slow_headers_are_cut(Kind::Node).await;
    let node = server.node.as_ref().unwrap();
    let cut = &node.guard.counters.connections.header_timeouts;
    assert!(cut.load(Ordering::Relaxed) >= 2, "{cut:?}");
    let metrics = tally_tests::get_text(&client(), &format!("{}/metrics", node.url())).await;
    let line = metrics
        .lines()
        .find(|l| l.contains(r#"reason="header_timeout""#))
        .unwrap_or_else(|| panic!("no header_timeout in {metrics}"));
    assert!(!line.ends_with(" 0"), "{line}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_cuts_slow_headers() {
    slow_headers_are_cut(Kind::Gateway).await.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_cuts_slow_headers() {
    slow_headers_are_cut(Kind::Discovery).await.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_answers_408_to_a_slow_body() {
    let server = Running::start(Kind::Discovery, limits(DEADLINE, 1024, 64)).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let head = "POST /register HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\n{\"addr\"";
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let (status, body) = tokio::time::timeout(BOUND, read_answer(&mut stream))
        .await
        .expect("no answer to a slow body")
        .expect("connection closed without an answer");
    assert_eq!(status, 408);
    assert!(started.elapsed() >= DEADLINE / 2, "{:?}", started.elapsed());
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(body["error"].is_string(), "{body}");
    server.stop().await;
}

/// Connects from `from` (a loopback address) to `to`.
async fn connect_from(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((from, 0))).unwrap();
    socket.connect(to).await.unwrap()
}

/// Whether the server closes `stream` within `within` (EOF or reset).
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(within, stream.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// An idle connection from `from` the server admitted: tried for up to 5 s (a slot given
/// back by a closing connection may take a moment).
async fn admitted(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let started = Instant::now();
    loop {
        let mut stream = connect_from(from, to).await;
        if !closed_within(&mut stream, STILL_OPEN).await {
            return stream;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{from} never admitted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A connection from `from` the server closes at once.
async fn refused(from: Ipv4Addr, to: SocketAddr, what: &str) {
    let mut stream = connect_from(from, to).await;
    assert!(
        closed_within(&mut stream, AT_ONCE).await,
        "{what}: not closed"
    );
}

/// `GET path` from `from` on its own connection (`Connection: close`).
async fn get_from(from: Ipv4Addr, to: SocketAddr, path: &str) -> u16 {
    let mut stream = connect_from(from, to).await;
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    read_answer(&mut stream)
        .await
        .map_or(0, |(status, _)| status)
}

const A: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const C: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
const D: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 4);

/// Per-client cap 3, total 5: a client's 4th connection and the 6th in all are closed at once,
/// others are still served, and closing connections makes room again.
async fn caps_hold(kind: Kind) {
    // The default header deadline: idle connections must outlive the test's steps.
    let server = Running::start(kind, limits(Duration::from_secs(10), 5, 3)).await;
    let (addr, path) = (server.addr, server.path);
    let mut a = Vec::new();
    for _ in 0..3 {
        a.push(admitted(A, addr).await);
    }
    refused(A, addr, "a 4th connection from one client").await;
    assert_eq!(
        get_from(B, addr, path).await,
        200,
        "{kind:?}: another client"
    );
    let b = admitted(B, addr).await;
    let c = admitted(C, addr).await;
    refused(D, addr, "a 6th connection in all").await;
    // Room again: two of A's close.
    a.truncate(1);
    let a2 = admitted(A, addr).await;
    let d = admitted(D, addr).await;
    refused(A, addr, "over the total again").await;
    drop((a, a2, b, c, d));
    // The server sees the closes a moment later.
    let started = Instant::now();
    while get_from(A, addr, path).await != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{kind:?}: after all closed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop().await;
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_caps_connections() {
    caps_hold(Kind::Gateway).await;
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_caps_connections() {
    caps_hold(Kind::Discovery).await;
}

/// The node's default per-client cap: one client's connections beyond it are closed at once
/// and counted; other clients are still served.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_caps_one_clients_connections() {
    let server = Running::start(Kind::Node, ServeLimits::default()).await;
    let addr = server.addr;
    let mut held = Vec::new();
    for _ in 0..tally::http::MAX_CONNECTIONS_PER_CLIENT {
        held.push(connect_from(A, addr).await);
    }
    // Accepted in order: the first ones hold every slot of A.
    refused(A, addr, "one connection over the node's per-client cap").await;
    assert_eq!(get_from(B, addr, "/counter").await, 200);
    let node = server.node.as_ref().unwrap();
    let limited = &node.guard.counters.connections.client_connections_limited;
    assert_eq!(limited.load(Ordering::Relaxed), 1);
    drop(held);
    let from_b = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from(B))
        .build()
        .unwrap();
    let metrics = tally_tests::get_text(&from_b, &format!("{}/metrics", node.url())).await;
    assert!(
        metrics
            .lines()
            .any(|l| l.contains(r#"reason="client_connections_limited""#) && l.ends_with(" 1")),
        "{metrics}"
    );
    server.stop().await;
}
