#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]
//! Gateway writes whose outcome is unknown, in front of real nodes: an answer lost on the way
//! back, a node that answers 503 `not durable` or 408 (outcome unknown, never sent again), a
//! refused connection (retried, applied once; 503 only when nothing was written).
//!
//! No assertion depends on the machine's speed: waits are on events (with a generous
//! deadline), and the gateways' deadlines are far above what a loaded machine needs.

mod gateway_common;

use gateway_common::*;
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::sync::{Condvar, Mutex};
use std::time::Duration;
use tally::gateway::{GatewayConfig, NodeSource};
use tally_std::{Journal, JournalError, Node, NodeConfig, PersistKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

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
