//! Zero-config on a LAN: five `tally node --mdns`, each in a network namespace of its own on
//! one bridge (the chaos harness's [`Lab`]), started with no peers and no discovery service,
//! find each other by mDNS/DNS-SD and count as one cluster; a node that stops is removed as an
//! mDNS peer once its goodbye arrives. Multicast stays on the bridge the test creates; the
//! namespaces go, with every process in them, when the test ends (also on a panic).
//!
//! Needs root and `ip` (`scripts/setup`); without them it fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tally::chaos::netns::Lab;

const TALLY: &str = env!("CARGO_BIN_EXE_tally");
const NODES: usize = 5;
const DEADLINE: Duration = Duration::from_secs(40);

struct Nodes(Vec<Option<Child>>);

impl Drop for Nodes {
    fn drop(&mut self) {
        for c in self.0.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn in_ns(lab: &Lab, i: usize, argv: &[&str]) -> std::process::Output {
    Command::new("ip")
        .args(["netns", "exec", &lab.namespace(i)])
        .args(argv)
        .output()
        .unwrap()
}

fn http(lab: &Lab, i: usize) -> String {
    format!("http://{}:8000", lab.address(i))
}

fn value(lab: &Lab, i: usize) -> Option<i64> {
    let out = in_ns(lab, i, &[TALLY, "get", "--node", &http(lab, i)]);
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// Node `i`'s peers of source `mdns`.
fn mdns_peers(lab: &Lab, i: usize) -> Vec<String> {
    let url = format!("{}/peers", http(lab, i));
    let out = in_ns(lab, i, &["curl", "-s", "--max-time", "2", &url]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v.as_array()
        .map(|peers| {
            peers
                .iter()
                .filter(|p| p["source"] == "mdns")
                .map(|p| p["addr"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !f() {
        assert!(started.elapsed() < DEADLINE, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
    started.elapsed()
}

#[test]
fn five_nodes_with_no_peers_find_each_other_by_mdns() {
    let lab = Lab::create(NODES, None)
        .unwrap_or_else(|e| panic!("the mDNS test needs root and ip(8): {e:#}"));
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = Nodes(Vec::new());
    for i in 0..NODES {
        let ip = lab.address(i).to_string();
        let log = std::fs::File::create(dir.path().join(format!("n{i}.log"))).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &lab.namespace(i), TALLY, "node"])
            .args([
                "--listen",
                &format!("{ip}:9000"),
                "--http",
                &format!("{ip}:8000"),
            ])
            .args(["--mdns", "--sync-interval", "200ms", "--log", "warn"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        nodes.0.push(Some(child));
    }
    for i in 0..NODES {
        wait_until(&format!("node {i} answers"), || value(&lab, i).is_some());
    }
    let took = wait_until("every node has an mDNS peer", || {
        (0..NODES).all(|i| !mdns_peers(&lab, i).is_empty())
    });
    println!("every node found an mDNS peer within {took:?}");
    // One cluster: each node adds i + 1, all reach 1 + 2 + 3 + 4 + 5.
    for i in 0..NODES {
        let by = (i + 1).to_string();
        let out = in_ns(
            &lab,
            i,
            &[TALLY, "inc", "--by", &by, "--node", &http(&lab, i)],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let took = wait_until("all five agree on 15", || {
        (0..NODES).all(|i| value(&lab, i) == Some(15))
    });
    println!("all five agreed on 15 within {took:?}");
    // Node 4 stops (SIGTERM: it withdraws its announcement); the others drop it as an mDNS
    // peer.
    let gone = format!("{}:9000", lab.address(4));
    let mut last = nodes.0.get_mut(4).and_then(Option::take).unwrap();
    let _ = Command::new("kill").arg(last.id().to_string()).status();
    let _ = last.wait();
    let took = wait_until("the others drop node 4 as an mDNS peer", || {
        (0..4).all(|i| !mdns_peers(&lab, i).contains(&gone))
    });
    println!("node 4's goodbye removed it within {took:?}");
}
