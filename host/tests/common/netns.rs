//! Processes in the network namespaces of a [`tally::chaos::netns::Lab`]: started there (and
//! killed on drop), asked there (`tally get`, `curl` of `/peers`), and waited for.
#![allow(dead_code, clippy::unwrap_used, clippy::panic)]

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use tally::chaos::netns::Lab;

/// The `tally` binary under test.
const TALLY: &str = env!("CARGO_BIN_EXE_tally");

/// Runs `argv` in namespace `ns` and returns what it printed.
pub fn run_in(ns: &str, argv: &[&str]) -> Output {
    Command::new("ip")
        .args(["netns", "exec", ns])
        .args(argv)
        .output()
        .unwrap()
}

/// Children started in namespaces; killed (and reaped) on drop.
#[derive(Default)]
pub struct Children(pub Vec<Option<Child>>);

impl Children {
    /// Starts `argv` in namespace `ns`, its output into `log`; returns its index.
    pub fn spawn_in(&mut self, ns: &str, argv: &[&str], log: &Path) -> usize {
        let out = std::fs::File::create(log).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(argv)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        self.0.push(Some(child));
        self.0.len() - 1
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for c in self.0.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The counter value of the node whose API is `url`, asked from namespace `ns`.
pub fn value_in(ns: &str, url: &str) -> Option<i64> {
    let out = run_in(ns, &[TALLY, "get", "--node", url]);
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// Adds `by` on the node whose API is `url`, from namespace `ns`; fails the test if refused.
pub fn inc_in(ns: &str, url: &str, by: &str) {
    let out = run_in(ns, &[TALLY, "inc", "--by", by, "--node", url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The peers of that node as `(addr, source)`.
pub fn peers_in(ns: &str, url: &str) -> Vec<(String, String)> {
    peer_field_in(ns, url, "source")
}

/// The peers of that node as `(addr, status)` (`alive` or `down`).
pub fn peer_status_in(ns: &str, url: &str) -> Vec<(String, String)> {
    peer_field_in(ns, url, "status")
}

/// The peers of that node (`GET /peers`) as `(addr, the string field named field)`.
fn peer_field_in(ns: &str, url: &str, field: &str) -> Vec<(String, String)> {
    let peers = format!("{url}/peers");
    let out = run_in(ns, &["curl", "-s", "--max-time", "2", &peers]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v.as_array()
        .map(|peers| {
            peers
                .iter()
                .map(|p| {
                    (
                        p["addr"].as_str().unwrap_or_default().to_string(),
                        p[field].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The HTTP API of the node on the lab's host `i` (these tests start it on port 8000).
pub fn lab_api(lab: &Lab, i: usize) -> String {
    format!("http://{}:8000", lab.address(i))
}

/// The value of the node on the lab's host `i`.
pub fn lab_value(lab: &Lab, i: usize) -> Option<i64> {
    value_in(&lab.namespace(i), &lab_api(lab, i))
}

/// Waits until `f` holds (polling every 100 ms); fails the test after `deadline`. Returns how
/// long it took.
pub fn wait_until(what: &str, deadline: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !f() {
        assert!(started.elapsed() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
    started.elapsed()
}

/// SWIM's members at that node as `(addr, generation, state)`.
pub fn members_in(ns: &str, url: &str) -> Vec<(String, u64, String)> {
    let members = format!("{url}/members");
    let out = run_in(ns, &["curl", "-s", "--max-time", "2", &members]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["members"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .map(|m| {
                    (
                        m["addr"].as_str().unwrap_or_default().to_string(),
                        m["generation"].as_u64().unwrap_or_default(),
                        m["state"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}
