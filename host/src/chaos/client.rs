//! The harness's clients: each enters its node's network namespace (a thread-level `setns`),
//! so it always reaches its own node on that namespace's loopback whatever the partitions, and
//! adds random deltas (−5..=5, never 0) with timeouts, recording what it was told. Or, alone,
//! the same clients against any node URLs a user gives. The HTTP client is a few lines of
//! HTTP/1.1 over a blocking `TcpStream` with deadlines: it must tell "never sent" (failed)
//! from "sent, answer lost" (indeterminate), which a pooled client hides.

use super::checker::Outcome;
use anyhow::{Context, Result};
use rand::{Rng, SeedableRng};
use std::io::{Read, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where a client finds its node.
#[derive(Clone, Debug)]
pub struct Target {
    /// The network namespace to enter first (`None`: this process's).
    pub netns: Option<String>,
    /// The node's HTTP address there.
    pub addr: SocketAddr,
}

/// One write and what the client was told.
#[derive(Clone, Copy, Debug)]
pub struct Write {
    /// The node it went to.
    pub node: usize,
    /// The delta.
    pub delta: i64,
    /// What the client was told.
    pub outcome: Outcome,
    /// When it was sent, from the start of the run.
    pub at: Duration,
}

/// Client settings.
#[derive(Clone, Copy, Debug)]
pub struct ClientConfig {
    /// The longest a request may take (connect, send, answer).
    pub timeout: Duration,
    /// The pause between two writes of one client.
    pub pause: Duration,
}

/// Enters `target`'s namespace, for the rest of this thread's life.
pub fn enter(target: &Target) -> Result<()> {
    let Some(ns) = &target.netns else {
        return Ok(());
    };
    let path = format!("/run/netns/{ns}");
    let file = std::fs::File::open(&path).with_context(|| format!("cannot open {path}"))?;
    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
        .with_context(|| format!("cannot enter network namespace {ns}"))
}

/// How a request ended.
enum Sent {
    /// Never sent: no connection.
    No,
    /// Sent; no (whole) answer.
    Lost,
    /// Answered with this status and body.
    Answer(u16, String),
}

/// The most of an answer read.
const MAX_ANSWER: u64 = 64 * 1024;

fn request(addr: SocketAddr, method: &str, path: &str, body: &str, timeout: Duration) -> Sent {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, timeout) else {
        return Sent::No;
    };
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if stream.write_all(head.as_bytes()).is_err() {
        return Sent::Lost;
    }
    let mut answer = String::new();
    if stream.take(MAX_ANSWER).read_to_string(&mut answer).is_err() {
        return Sent::Lost;
    }
    let status = answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok());
    match (status, answer.split_once("\r\n\r\n")) {
        (Some(code), Some((_, body))) => Sent::Answer(code, body.to_string()),
        _ => Sent::Lost,
    }
}

/// Adds `delta` through the node at `addr`.
pub fn add(addr: SocketAddr, delta: i64, timeout: Duration) -> Outcome {
    let path = if delta >= 0 {
        "/increment"
    } else {
        "/decrement"
    };
    let body = format!("{{\"by\":{}}}", delta.unsigned_abs());
    match request(addr, "POST", path, &body, timeout) {
        Sent::No => Outcome::Failed,
        Sent::Lost => Outcome::Indeterminate,
        Sent::Answer(code, _) if (200..300).contains(&code) => Outcome::Ok,
        // A 408 comes after the write may have been handed to the journal: it can still
        // commit. Every other 4xx is a refusal before anything was prepared.
        Sent::Answer(408, _) => Outcome::Indeterminate,
        Sent::Answer(code, _) if (400..500).contains(&code) => Outcome::Failed,
        Sent::Answer(..) => Outcome::Indeterminate,
    }
}

/// The node's value (`None`: no answer).
pub fn value(addr: SocketAddr, timeout: Duration) -> Option<i64> {
    let Sent::Answer(200, body) = request(addr, "GET", "/counter", "", timeout) else {
        return None;
    };
    serde_json::from_str::<serde_json::Value>(&body)
        .ok()?
        .get("value")?
        .as_i64()
}

/// Reads every target's value, each from inside its namespace.
pub fn read_all(targets: &[Target], timeout: Duration) -> Vec<Option<i64>> {
    let threads: Vec<_> = targets
        .iter()
        .cloned()
        .map(|t| std::thread::spawn(move || enter(&t).ok().and_then(|()| value(t.addr, timeout))))
        .collect();
    threads
        .into_iter()
        .map(|h| h.join().ok().flatten())
        .collect()
}

/// Runs one client on `target` (node `node`) until `stop`; returns its writes.
pub fn run(
    node: usize,
    target: &Target,
    config: ClientConfig,
    seed: u64,
    started: Instant,
    stop: &AtomicBool,
) -> Result<Vec<Write>> {
    enter(target)?;
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let mut writes = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let magnitude: i64 = rng.random_range(1..=5);
        let delta = if rng.random_bool(0.5) {
            magnitude
        } else {
            -magnitude
        };
        let at = started.elapsed();
        let outcome = add(target.addr, delta, config.timeout);
        writes.push(Write {
            node,
            delta,
            outcome,
            at,
        });
        std::thread::sleep(config.pause);
    }
    Ok(writes)
}

/// Starts `per_node` clients on every target; they stop when `stop` is set.
pub fn start(
    targets: &[Target],
    per_node: usize,
    config: ClientConfig,
    seed: u64,
    started: Instant,
    stop: &Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<Result<Vec<Write>>>> {
    let mut handles = Vec::new();
    for (node, target) in targets.iter().enumerate() {
        for c in 0..per_node {
            let (target, stop) = (target.clone(), Arc::clone(stop));
            let seed = seed ^ ((node as u64) << 32) ^ c as u64;
            handles.push(std::thread::spawn(move || {
                run(node, &target, config, seed, started, &stop)
            }));
        }
    }
    handles
}
