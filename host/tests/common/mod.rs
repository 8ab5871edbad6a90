//! What the real-process tests share: a `tally node` child that is killed on drop and whose
//! output is read to the end, and a pool of HTTP writers that count, per counter (the default
//! one or named ones), what they sent and what was acknowledged.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod netns;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub const TALLY: &str = env!("CARGO_BIN_EXE_tally");

/// A node process; killed on drop (so a failing test leaves no process behind, nor one holding
/// a mount). `log` collects every line it printed, on either stream.
pub struct Running {
    pub child: Child,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Running {
    /// SIGKILL: no clean shutdown, no final snapshot.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `tally node` on loopback ports with `args` and `--data-dir dir`; returns it and the
/// HTTP URL it printed.
pub fn start_node(args: &[&str], dir: &Path) -> (Running, String) {
    let mut child = Command::new(TALLY)
        .args(["node", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Both streams are read to the end, so the node never writes into a closed pipe.
    let (url_tx, url_rx) = std::sync::mpsc::channel();
    let log = Arc::new(Mutex::new(Vec::new()));
    let stdout = child.stdout.take().unwrap();
    let sink = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.split_whitespace().find(|w| w.starts_with("http://")) {
                let _ = url_tx.send(url.to_string());
            }
            sink.lock().unwrap().push(line);
        }
    });
    let stderr = child.stderr.take().unwrap();
    let sink = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    let running = Running { child, log };
    let url = url_rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|e| {
            panic!(
                "the node printed no URL ({e}); it said: {:?}",
                running.log.lock().unwrap()
            )
        });
    (running, url)
}

/// `GET url` as JSON.
pub fn get_json(url: &str) -> serde_json::Value {
    reqwest::blocking::get(url).unwrap().json().unwrap()
}

/// The next number of a xorshift sequence (kill times that a seed replays).
pub fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// What a pool of writers posts to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The default counter: `POST /increment`, no body (1 each).
    Default,
    /// A named counter: `POST /counters/{name}/increment` with `{"by": N}`, N in 1..=3.
    Named(String),
}

impl Target {
    /// The route a writer posts to, below the node's URL.
    pub fn path(&self) -> String {
        match self {
            Target::Default => "/increment".to_string(),
            Target::Named(name) => format!("/counters/{name}/increment"),
        }
    }

    /// How the figures name it.
    pub fn label(&self) -> &str {
        match self {
            Target::Default => "(default)",
            Target::Named(name) => name,
        }
    }
}

/// Named counters for the loads: names of each kind of byte a name may hold, one of the
/// longest (64 bytes).
pub fn counter_names() -> Vec<String> {
    let long = format!("long-{}", "x".repeat(59));
    assert_eq!(long.len(), 64);
    vec!["doors".into(), "gate-2".into(), "v1.0_hits".into(), long]
}

/// What the writers of one target sent (counted before sending) and what was acknowledged
/// (2xx), in units of the counter's value (the sum of the `by`s).
#[derive(Clone, Debug, Default)]
pub struct Counts {
    pub sent: Arc<AtomicU64>,
    pub acked: Arc<AtomicU64>,
}

impl Counts {
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }

    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::SeqCst)
    }
}

/// The value of named counter `name` on the node at `url`: `GET /counters/{name}`, 0 when it
/// does not exist (404: never written, or lost).
pub fn named_value(url: &str, name: &str) -> u64 {
    let r = reqwest::blocking::get(format!("{url}/counters/{name}")).unwrap();
    if r.status() == reqwest::StatusCode::NOT_FOUND {
        return 0;
    }
    assert!(
        r.status().is_success(),
        "GET /counters/{name}: {}",
        r.status()
    );
    let v: serde_json::Value = r.json().unwrap();
    assert_eq!(v["name"].as_str(), Some(name), "{v}");
    v["value"]
        .as_u64()
        .unwrap_or_else(|| panic!("a non-negative value: {v}"))
}

/// The values of the named counters `names` (0 for one that does not exist), checked against
/// `GET /counters`, which must list exactly those of them that exist, with the same values
/// (nothing writes while it is read).
pub fn named_values(url: &str, names: &[String]) -> Vec<u64> {
    let values: Vec<u64> = names.iter().map(|n| named_value(url, n)).collect();
    let list = get_json(&format!("{url}/counters"));
    let listed = list["counters"].as_object().expect("a counters map");
    let expected: std::collections::BTreeMap<&str, u64> = names
        .iter()
        .zip(&values)
        .filter(|(_, v)| **v > 0)
        .map(|(n, v)| (n.as_str(), *v))
        .collect();
    let got: std::collections::BTreeMap<&str, u64> = listed
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_u64().unwrap()))
        .collect();
    assert_eq!(
        got, expected,
        "GET /counters agrees with GET /counters/{{name}}: {list}"
    );
    values
}

/// The targets written in round `round`: all in round 0, then all but one, which rests
/// (`targets[(round - 1) % len]`: each in turn). Under steady writes every counter gets a record after each snapshot, and since records
/// carry absolute totals the latest one alone recovers the counter; a counter left idle while
/// snapshots compact the log is held by the snapshot alone, so a snapshot that dropped it
/// shows as a loss.
pub fn round_targets(targets: &[(Target, Counts)], round: u64) -> Vec<(Target, Counts)> {
    let idle = round
        .checked_sub(1)
        .map(|r| (r % targets.len() as u64) as usize);
    targets
        .iter()
        .enumerate()
        .filter(|(k, _)| Some(*k) != idle)
        .map(|(_, t)| t.clone())
        .collect()
}

/// The writers: threads with a keep-alive client each, posting increments and counting what
/// they sent (before sending) and what was acknowledged (2xx). Dropping it stops and joins them.
pub struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    /// `writers` writers on the default counter.
    pub fn start(url: &str, writers: usize, sent: &Arc<AtomicU64>, acked: &Arc<AtomicU64>) -> Load {
        let counts = Counts {
            sent: Arc::clone(sent),
            acked: Arc::clone(acked),
        };
        Load::spread(url, writers, &[(Target::Default, counts)])
    }

    /// `writers` writers spread over `targets` in turn (writer `w` posts to target
    /// `w % targets.len()`), each counting into its target's `Counts`.
    pub fn spread(url: &str, writers: usize, targets: &[(Target, Counts)]) -> Load {
        assert!(!targets.is_empty());
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..writers)
            .map(|w| {
                let (target, counts) = targets[w % targets.len()].clone();
                let url = format!("{url}{}", target.path());
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    let client = reqwest::blocking::Client::builder()
                        .timeout(Duration::from_secs(10))
                        .build()
                        .unwrap();
                    let mut rng = 0x2545_f491_u64 + w as u64;
                    while !stop.load(Ordering::SeqCst) {
                        let (request, by) = match target {
                            Target::Default => (client.post(&url), 1),
                            Target::Named(_) => {
                                let by = 1 + xorshift(&mut rng) % 3;
                                (client.post(&url).body(format!("{{\"by\": {by}}}")), by)
                            }
                        };
                        counts.sent.fetch_add(by, Ordering::SeqCst);
                        match request.send() {
                            Ok(r) if r.status().is_success() => {
                                counts.acked.fetch_add(by, Ordering::SeqCst);
                            }
                            Ok(_) => {}
                            // The node is gone (killed): wait for the stop.
                            Err(_) => std::thread::sleep(Duration::from_millis(2)),
                        }
                    }
                })
            })
            .collect();
        Load { stop, threads }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// What the node at `url` holds of each target: `default` for the default counter (each test
/// reads it its own way) and each named counter's value (see [`named_values`]).
pub fn target_values(url: &str, targets: &[(Target, Counts)], default: u64) -> Vec<u64> {
    let names: Vec<String> = targets
        .iter()
        .filter_map(|(t, _)| match t {
            Target::Named(n) => Some(n.clone()),
            Target::Default => None,
        })
        .collect();
    let mut named = named_values(url, &names).into_iter();
    targets
        .iter()
        .map(|(t, _)| match t {
            Target::Default => default,
            Target::Named(_) => named.next().unwrap(),
        })
        .collect()
}
