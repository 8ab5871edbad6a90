//! Process crash test: a real `tally node` with a data directory, under concurrent HTTP
//! increments, is killed with SIGKILL at a random moment and restarted on the same directory.
//! Its own total must be at least every acknowledged increment and at most every one sent.
//!
//! Snapshots every 50 ms, so kills land before, during and after snapshots and compaction;
//! 16 writers. CI runs 20 rounds; the soak runs more: `TALLY_CRASH_ROUNDS=100 cargo test
//! --release -p tally --test crash -- --nocapture`.
//!
//! A second test kills a node that only merged (it never took a write) and checks that it
//! recovers what it merged, from its snapshots alone.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::{get_json, start_node, xorshift, Load, Running};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Starts a node on `dir` (snapshots every 50 ms); returns it and its HTTP URL.
fn start(dir: &std::path::Path) -> (Running, String) {
    start_with(dir, &[])
}

fn start_with(dir: &std::path::Path, extra: &[&str]) -> (Running, String) {
    let mut args = vec!["--log", "warn", "--snapshot-every", "50ms"];
    args.extend_from_slice(extra);
    start_node(&args, dir)
}

fn local_inc(url: &str) -> u64 {
    get_json(&format!("{url}/local-counter"))["inc"]
        .as_u64()
        .unwrap()
}

#[test]
fn acknowledged_increments_survive_sigkill() {
    let rounds: u64 = std::env::var("TALLY_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let dir = std::env::temp_dir().join(format!("tally-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let sent = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(AtomicU64::new(0));
    let mut seed = 0x9e37_79b9_u64 ^ u64::from(std::process::id());
    for round in 0..rounds {
        let (mut node, url) = start(&dir);
        let recovered = local_inc(&url);
        let (s, a) = (sent.load(Ordering::SeqCst), acked.load(Ordering::SeqCst));
        assert!(
            a <= recovered && recovered <= s,
            "round {round}: recovered {recovered}, acknowledged {a}, sent {s}"
        );
        let load = Load::start(&url, 16, &sent, &acked);
        std::thread::sleep(Duration::from_millis(100 + xorshift(&mut seed) % 500));
        node.kill();
        drop(load);
    }
    let (node, url) = start(&dir);
    let recovered = local_inc(&url);
    let (s, a) = (sent.load(Ordering::SeqCst), acked.load(Ordering::SeqCst));
    println!("{rounds} kills: {a} acknowledged, {s} sent, {recovered} recovered, 0 lost");
    assert!(a > 0, "the load produced acknowledged writes");
    assert!(
        a <= recovered && recovered <= s,
        "recovered {recovered}, acknowledged {a}, sent {s}"
    );
    drop(node);
    let _ = std::fs::remove_dir_all(&dir);
}

fn value(url: &str) -> i64 {
    get_json(&format!("{url}/counter"))["value"]
        .as_i64()
        .unwrap()
}

#[test]
fn a_merge_only_node_recovers_what_it_merged() {
    let dir = std::env::temp_dir().join(format!("tally-merge-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // The writer: an in-process volatile node that counts 37.
    let writer = tally_std::Node::start(
        tally_std::NodeConfig::new("127.0.0.1:0".parse().unwrap())
            .sync_interval(Duration::from_millis(50)),
    )
    .unwrap();
    writer.increment(37).unwrap();
    let peer = writer.local_addr().to_string();
    let (mut node, url) = start_with(&dir, &["--peers", &peer, "--sync-interval", "50ms"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while value(&url) != 37 {
        assert!(std::time::Instant::now() < deadline, "never merged");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Past a snapshot interval (50 ms), then SIGKILL: what it merged is only in a snapshot.
    std::thread::sleep(Duration::from_millis(300));
    node.kill();
    drop(writer);
    let (_node, url) = start(&dir);
    assert_eq!(
        value(&url),
        37,
        "the merged state was recovered from the log"
    );
    assert_eq!(local_inc(&url), 0, "it never counted itself");
    let _ = std::fs::remove_dir_all(&dir);
}
