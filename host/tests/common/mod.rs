//! What the real-process tests share: a `tally node` child that is killed on drop and whose
//! output is read to the end, and a pool of HTTP writers that count what they sent and what
//! was acknowledged.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

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

/// The writers: threads with a keep-alive client each, posting increments and counting what
/// they sent (before sending) and what was acknowledged (2xx). Dropping it stops and joins them.
pub struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    pub fn start(url: &str, writers: usize, sent: &Arc<AtomicU64>, acked: &Arc<AtomicU64>) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..writers)
            .map(|_| {
                let (url, stop) = (format!("{url}/increment"), Arc::clone(&stop));
                let (sent, acked) = (Arc::clone(sent), Arc::clone(acked));
                std::thread::spawn(move || {
                    let client = reqwest::blocking::Client::builder()
                        .timeout(Duration::from_secs(10))
                        .build()
                        .unwrap();
                    while !stop.load(Ordering::SeqCst) {
                        sent.fetch_add(1, Ordering::SeqCst);
                        match client.post(&url).send() {
                            Ok(r) if r.status().is_success() => {
                                acked.fetch_add(1, Ordering::SeqCst);
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
