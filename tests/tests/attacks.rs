//! Attacks on a running node over real sockets: forged, foreign and replayed frames, a
//! DigestPull flood aimed at a victim, 10,000 garbage connections, oversized and slow HTTP.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tally::http::ApiOptions;
use tally::service::{NodeOptions, NodeService};
use tally_core::{ClusterKey, Message, WireError};
use tally_tests::wait_until;

const KEY: &str = "0123456789abcdef0123456789abcdef";
const OTHER: &str = "fedcba9876543210fedcba9876543210";

async fn node(key: Option<&str>, api: ApiOptions) -> NodeService {
    node_with_sync(key, api, Duration::from_millis(100)).await
}

async fn node_with_sync(key: Option<&str>, api: ApiOptions, sync: Duration) -> NodeService {
    NodeService::start(NodeOptions {
        sync_interval: sync,
        cluster_key: key.map(|k| ClusterKey::from_hex(k).unwrap()),
        api,
        ..NodeOptions::loopback()
    })
    .await
    .unwrap()
}

/// A Push frame from `from` carrying `inc` for id "mallory", tagged with `key` if any.
fn push_frame(from: &str, inc: u64, key: Option<&str>) -> Vec<u8> {
    let entries = [("mallory", inc)];
    let m = Message::Push {
        id: "mallory",
        inc: entries.iter().copied(),
        dec: entries.iter().copied(),
    };
    let mut frame = vec![0u8; 1 + m.buffer_len() + 16];
    let n = m.emit(&mut frame[1..]).unwrap();
    let mut len = n + 1;
    if let Some(k) = key {
        len = ClusterKey::from_hex(k)
            .unwrap()
            .seal(&mut frame, len)
            .unwrap();
    }
    frame.truncate(len);
    let mut payload = vec![from.len() as u8];
    payload.extend_from_slice(from.as_bytes());
    payload.extend_from_slice(&frame);
    payload
}

fn send(to: std::net::SocketAddr, payload: &[u8]) {
    // A node under load may shed the connection: that is allowed, so errors are ignored.
    if let Ok(mut s) = TcpStream::connect(to) {
        let _ = s.write_all(payload);
        let _ = s.shutdown(Shutdown::Write);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_foreign_and_replayed_frames_change_nothing() {
    let s = node(Some(KEY), ApiOptions::default()).await;
    s.node.increment(2).unwrap();
    let addr = s.node.local_addr();
    // Forged: no tag (a reference-style frame).
    send(addr, &push_frame("127.0.0.1:1", 1_000_000, None));
    // Foreign: tagged with another key.
    send(addr, &push_frame("127.0.0.1:1", 1_000_000, Some(OTHER)));
    let n = Arc::clone(&s.node);
    assert!(wait_until(Duration::from_secs(5), || n
        .stats()
        .rejected(WireError::Unauthenticated)
        == 2));
    assert_eq!(s.node.value(), 2);
    // Genuine, then replayed 50 times: counted once.
    let genuine = push_frame("127.0.0.1:1", 5, Some(KEY));
    send(addr, &genuine);
    assert!(wait_until(Duration::from_secs(5), || n.value() == 2 + 5 - 5));
    assert!(wait_until(Duration::from_secs(5), || n.stats().merges == 1));
    for _ in 0..50 {
        send(addr, &genuine);
    }
    assert!(wait_until(Duration::from_secs(5), || n.stats().merges == 51));
    assert_eq!(s.node.value(), 2, "inc 5 and dec 5 of mallory, once");
    assert_eq!(s.node.stats().merges_changed, 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_flood_naming_a_victim_gets_bounded_replies() {
    // A 2 s sync interval: the budget is 4 replies per address per 2 s.
    let s = node_with_sync(None, ApiOptions::default(), Duration::from_secs(2)).await;
    s.node.increment(1).unwrap();
    let victim = TcpListener::bind("127.0.0.1:0").unwrap();
    victim.set_nonblocking(true).unwrap();
    let victim_addr = victim.local_addr().unwrap().to_string();
    let pull: Message<'_, std::iter::Empty<(&str, u64)>> = Message::DigestPull {
        id: "x",
        digest: 42,
    };
    let mut frame = vec![0u8; 64];
    let n = pull.emit(&mut frame[1..]).unwrap();
    frame.truncate(n + 1);
    let mut payload = vec![victim_addr.len() as u8];
    payload.extend_from_slice(victim_addr.as_bytes());
    payload.extend_from_slice(&frame);
    // 300 pulls as fast as one client can send them.
    let started = std::time::Instant::now();
    for _ in 0..300 {
        send(s.node.local_addr(), &payload);
    }
    let node = Arc::clone(&s.node);
    let received = || node.stats().received(tally_core::MessageType::DigestPull);
    // Wait until the node has handled everything it accepted (some may have been shed).
    let mut last = u64::MAX;
    while received() != last {
        last = received();
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(received() >= 20, "only {} pulls arrived", received());
    let intervals = started.elapsed().as_millis() / 2000 + 1;
    let mut replies = 0;
    while let Ok((mut c, _)) = victim.accept() {
        let mut b = Vec::new();
        c.set_nonblocking(false).unwrap();
        let _ = c.read_to_end(&mut b);
        replies += 1;
    }
    // Four replies per sync interval at most, over the intervals the flood lasted.
    assert!(
        replies as u128 <= 4 * intervals,
        "{replies} replies in {intervals} intervals"
    );
    assert!(
        (replies as u64) < received() / 2,
        "{replies} replies to {} pulls",
        received()
    );
    assert!(s.node.stats().replies_limited > 0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_garbage_connections_leave_the_node_serving() {
    let s = node(None, ApiOptions::default()).await;
    let peer = node(None, ApiOptions::default()).await;
    peer.node
        .add_peer(
            &s.node.local_addr().to_string(),
            tally_core::PeerSource::Static,
        )
        .unwrap();
    let target = s.node.local_addr();
    let sent = Arc::new(AtomicUsize::new(0));
    let flood: Vec<_> = (0..4)
        .map(|t| {
            let sent = Arc::clone(&sent);
            std::thread::spawn(move || {
                for i in 0..2500u32 {
                    if let Ok(mut c) = TcpStream::connect(target) {
                        let junk = [(i ^ t) as u8, 0xc1, 0xff, 0x00, 0x13];
                        let _ = c.write_all(&junk);
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    // While the flood runs, HTTP answers.
    let client = reqwest::Client::new();
    let r = client
        .get(format!("{}/health", s.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    for f in flood {
        f.join().unwrap();
    }
    assert_eq!(sent.load(Ordering::Relaxed), 10_000);
    // And it still gossips: a write on the peer reaches it.
    peer.node.increment(3).unwrap();
    let n = Arc::clone(&s.node);
    assert!(wait_until(Duration::from_secs(20), || n.value() == 3));
    let r = client
        .get(format!("{}/counter", s.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(s.node.stats().rejected_total() + s.node.transport().shed > 0);
    peer.stop().await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_slow_http_requests_are_refused() {
    let api = ApiOptions {
        request_timeout: Duration::from_millis(500),
        ..ApiOptions::default()
    };
    let s = node(None, api).await;
    let http = s.http_addr;
    // Oversized body: 413 with a JSON error.
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{}/increment", s.url()))
        .body(vec![b' '; 100_000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    // Slow body: the request never completes; 408.
    let status = tokio::task::spawn_blocking(move || {
        let mut c = TcpStream::connect(http).unwrap();
        c.write_all(b"POST /increment HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n{\"by\"")
            .unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 256];
        let n = c.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).to_string()
    })
    .await
    .unwrap();
    assert!(status.starts_with("HTTP/1.1 408"), "{status}");
    // Alive and unchanged.
    let r = client
        .get(format!("{}/counter", s.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(s.node.value(), 0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_rate_limits_protect_the_api() {
    let api = ApiOptions {
        token: Some("s3cret-token-0123456789".into()),
        rate_per_client: Some(50),
        ..ApiOptions::default()
    };
    let s = node(None, api).await;
    let client = reqwest::Client::new();
    let url = format!("{}/increment", s.url());
    let r = client.post(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = client
        .post(&url)
        .bearer_auth("wrong-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = client
        .post(&url)
        .bearer_auth("s3cret-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = client
        .get(format!("{}/counter", s.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        200,
        "reads are open unless --api-token-reads"
    );
    let mut limited = 0;
    for _ in 0..200 {
        let r = client
            .get(format!("{}/counter", s.url()))
            .send()
            .await
            .unwrap();
        if r.status().as_u16() == 429 {
            limited += 1;
        }
    }
    assert!(limited > 100, "{limited} of 200 limited");
    assert_eq!(s.node.value(), 1);
    s.stop().await;
}
