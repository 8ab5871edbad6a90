//! The `tally` binary end to end: `tally cluster` starts a working local cluster, and an
//! increment made with `tally inc` on one node is read by `tally get` on every other.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{Running, TALLY};

fn tally(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(TALLY).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

#[test]
fn every_subcommand_has_help() {
    for sub in [
        "node",
        "discovery",
        "cluster",
        "gateway",
        "get",
        "inc",
        "dec",
        "list",
        "bench",
    ]
    .iter()
    .chain(if cfg!(feature = "dev-tools") {
        &["demo", "sim", "scaling"][..]
    } else {
        &[]
    }) {
        let (code, out, _) = tally(&[sub, "--help"]);
        assert_eq!(code, 0, "{sub}");
        assert!(out.contains("Usage"), "{sub}: {out}");
    }
}

#[test]
fn cluster_inc_and_get_agree() {
    let sync_ms = 200u64;
    let mut child = Command::new(TALLY)
        .args([
            "cluster",
            "--nodes",
            "3",
            "--sync-interval",
            "200ms",
            "--duration",
            "60s",
            "--log",
            "warn",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _guard = Running {
        child,
        log: Default::default(),
    };
    let mut urls = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if line.starts_with("node ") {
            urls.push(line.split_whitespace().nth(2).unwrap().to_string());
        }
        if line.contains("Ctrl-C") {
            break;
        }
    }
    assert_eq!(urls.len(), 3, "{urls:?}");
    // Wait until the nodes have found each other through discovery.
    let deadline = Instant::now() + Duration::from_secs(20);
    for url in &urls {
        loop {
            let body = reqwest::blocking::get(format!("{url}/peers"))
                .unwrap()
                .text()
                .unwrap();
            if body.matches("\"alive\"").count() >= 2 {
                break;
            }
            assert!(Instant::now() < deadline, "peers never found: {body}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let (code, out, err) = tally(&["inc", "--by", "5", "--node", &urls[0]]);
    assert_eq!((code, out.as_str()), (0, "5"), "{err}");
    let written = Instant::now();
    for url in &urls[1..] {
        loop {
            let (code, out, err) = tally(&["get", "--node", url]);
            assert_eq!(code, 0, "{err}");
            if out == "5" {
                break;
            }
            assert!(
                written.elapsed() < Duration::from_secs(20),
                "{url} never saw the increment"
            );
        }
    }
    let took = written.elapsed();
    println!(
        "agreement {} ms after the write ({} sync intervals)",
        took.as_millis(),
        took.as_millis() as f64 / sync_ms as f64
    );
    let (code, out, _) = tally(&["get", "--json", "--node", &urls[2]]);
    assert_eq!(code, 0);
    assert!(out.contains("\"value\":5"), "{out}");

    // Named counters: written on two nodes, read and listed on a third.
    let (code, out, err) = tally(&["inc", "doors", "--by", "3", "--node", &urls[0]]);
    assert_eq!((code, out.as_str()), (0, "3"), "{err}");
    let (code, out, err) = tally(&["dec", "doors", "--node", &urls[1]]);
    assert_eq!(code, 0, "{err}");
    assert!(out == "2" || out == "-1", "{out}");
    let (code, _, err) = tally(&["inc", "parts.A", "--by", "7", "--node", &urls[1]]);
    assert_eq!(code, 0, "{err}");
    let written = Instant::now();
    loop {
        let (code, out, err) = tally(&["list", "--node", &urls[2]]);
        assert_eq!(code, 0, "{err}");
        if out == "default 5\ndoors 2\nparts.A 7" {
            break;
        }
        assert!(
            written.elapsed() < Duration::from_secs(20),
            "{} never listed both counters: {out}",
            urls[2]
        );
    }
    let (code, out, _) = tally(&["get", "doors", "--node", &urls[2]]);
    assert_eq!((code, out.as_str()), (0, "2"));
    let (code, _, err) = tally(&["get", "never-written", "--node", &urls[2]]);
    assert_eq!(code, 1, "an unknown counter is the server's 404: {err}");
    assert!(err.contains("404"), "{err}");
    let (code, _, err) = tally(&["inc", "no/slash", "--node", &urls[2]]);
    assert_eq!(code, 2, "a bad name is bad usage: {err}");
    assert!(err.contains("not a counter name"), "{err}");
    // `..` would be resolved away by the URL (`/counters/../increment` is the default
    // counter's route): it is no name, and the default counter stays as it was.
    let before = tally(&["get", "--node", &urls[2]]).1;
    let (code, _, err) = tally(&["inc", "..", "--node", &urls[2]]);
    assert_eq!(code, 2, "`..` is bad usage: {err}");
    assert_eq!(tally(&["get", "--node", &urls[2]]).1, before);
}

#[test]
fn client_exit_codes() {
    // Nothing listens on port 1: unreachable.
    let (code, _, err) = tally(&["get", "--node", "http://127.0.0.1:1"]);
    assert_eq!(code, 3, "{err}");
    let (code, _, _) = tally(&["inc", "--by", "-2", "--node", "http://127.0.0.1:1"]);
    assert_eq!(code, 2, "clap rejects a negative amount");
}
