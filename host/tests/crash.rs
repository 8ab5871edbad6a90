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

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const TALLY: &str = env!("CARGO_BIN_EXE_tally");

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a node on `dir`; returns it and its HTTP URL.
fn start(dir: &std::path::Path) -> (Running, String) {
    start_with(dir, &[])
}

fn start_with(dir: &std::path::Path, extra: &[&str]) -> (Running, String) {
    let mut child = Command::new(TALLY)
        .args([
            "node",
            "--listen",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--log",
            "warn",
            "--snapshot-every",
            "50ms",
        ])
        .args(extra)
        .arg("--data-dir")
        .arg(dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let running = Running(child);
    let mut lines = BufReader::new(stdout).lines();
    let url = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| {
            line.split_whitespace()
                .find(|w| w.starts_with("http://"))
                .map(str::to_string)
        })
        .expect("the node printed its URL");
    // Keep reading, so that nothing the node prints later meets a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (running, url)
}

fn local_inc(url: &str) -> u64 {
    let v: serde_json::Value = reqwest::blocking::get(format!("{url}/local-counter"))
        .unwrap()
        .json()
        .unwrap();
    v["inc"].as_u64().unwrap()
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
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..16)
            .map(|_| {
                let (url, stop, sent, acked) =
                    (url.clone(), stop.clone(), sent.clone(), acked.clone());
                std::thread::spawn(move || {
                    let client = reqwest::blocking::Client::new();
                    while !stop.load(Ordering::SeqCst) {
                        sent.fetch_add(1, Ordering::SeqCst);
                        match client.post(format!("{url}/increment")).send() {
                            Ok(r) if r.status().is_success() => {
                                acked.fetch_add(1, Ordering::SeqCst);
                            }
                            Ok(_) => {}
                            Err(_) => break,
                        }
                    }
                })
            })
            .collect();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(100 + seed % 500));
        // SIGKILL: no clean shutdown, no final snapshot.
        node.0.kill().unwrap();
        node.0.wait().unwrap();
        stop.store(true, Ordering::SeqCst);
        for w in writers {
            w.join().unwrap();
        }
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
    let v: serde_json::Value = reqwest::blocking::get(format!("{url}/counter"))
        .unwrap()
        .json()
        .unwrap();
    v["value"].as_i64().unwrap()
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
    node.0.kill().unwrap();
    node.0.wait().unwrap();
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
