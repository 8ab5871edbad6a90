//! Process crash test: a real `tally node` with a data directory, under concurrent HTTP
//! increments, is killed with SIGKILL at a random moment and restarted on the same directory.
//! Per counter — the default one and four named ones — what it holds after every restart must
//! be at least every acknowledged increment and at most every one sent.
//!
//! Snapshots every 50 ms, so kills land before, during and after snapshots and compaction;
//! 16 writers, spread over four of the five counters (4 each); the fifth rests that round (in
//! turn), so it is held by snapshots alone once they compacted its records away. CI runs 20
//! rounds; the soak runs more: `TALLY_CRASH_ROUNDS=100 cargo test --release -p tally --test
//! crash -- --nocapture`.
//!
//! A second test kills a node that only merged (it never took a write) and checks that it
//! recovers what it merged, from its snapshots alone; a third, that a removed named counter
//! stays removed across a kill and counts from zero afterwards.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::{
    counter_names, get_json, named_value, named_values, round_targets, start_node, target_values,
    xorshift, Counts, Load, Running, Target,
};
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

/// What the node holds of each target: its own entry of the default counter (one incarnation:
/// a crash keeps the log, so the node resumes its entry), and each named counter's value
/// (`GET /counters/{name}`, 0 before it was first written; a single node with no peers holds
/// only its own cells, so that is what it recovered of its own writes).
fn recovered(url: &str, targets: &[(Target, Counts)]) -> Vec<u64> {
    target_values(url, targets, local_inc(url))
}

/// Fails unless every target's recovered value lies within [acknowledged, sent].
///
/// A build that acknowledged a named write before its NamedLocal record was fsynced, or whose
/// snapshots (and so compaction) dropped named cells, fails here with `recovered < acknowledged`
/// for that name (the latter for the name that rested in the round: see `round_targets`); one that replayed a record twice, or counted a write under two names, with
/// `recovered > sent`.
fn check(when: &str, url: &str, targets: &[(Target, Counts)]) -> Vec<u64> {
    let values = recovered(url, targets);
    for ((target, counts), &r) in targets.iter().zip(&values) {
        let (s, a) = (counts.sent(), counts.acked());
        assert!(
            a <= r && r <= s,
            "{when}, counter {}: recovered {r}, acknowledged {a}, sent {s}",
            target.label()
        );
    }
    values
}

#[test]
fn acknowledged_increments_survive_sigkill() {
    let rounds: u64 = std::env::var("TALLY_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let dir = std::env::temp_dir().join(format!("tally-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let targets: Vec<(Target, Counts)> = std::iter::once(Target::Default)
        .chain(counter_names().into_iter().map(Target::Named))
        .map(|t| (t, Counts::default()))
        .collect();
    let mut seed = 0x9e37_79b9_u64 ^ u64::from(std::process::id());
    for round in 0..rounds {
        let (mut node, url) = start(&dir);
        check(&format!("round {round}"), &url, &targets);
        let load = Load::spread(&url, 16, &round_targets(&targets, round));
        std::thread::sleep(Duration::from_millis(100 + xorshift(&mut seed) % 500));
        node.kill();
        drop(load);
    }
    let (node, url) = start(&dir);
    let values = check("after the last kill", &url, &targets);
    for ((target, counts), r) in targets.iter().zip(&values) {
        let (s, a) = (counts.sent(), counts.acked());
        println!(
            "{rounds} kills, {:>16.16}: {a} acknowledged, {s} sent, {r} recovered, 0 lost",
            target.label()
        );
        assert!(
            a > 0,
            "the load produced acknowledged writes to {}",
            target.label()
        );
    }
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

fn post(url: &str, path: &str, body: &str) -> reqwest::blocking::Response {
    reqwest::blocking::Client::new()
        .post(format!("{url}{path}"))
        .body(body.to_string())
        .send()
        .unwrap()
}

fn status(url: &str, name: &str) -> u16 {
    reqwest::blocking::get(format!("{url}/counters/{name}"))
        .unwrap()
        .status()
        .as_u16()
}

/// Observed-remove across a crash: a counter removed (`DELETE` answered) and then killed stays
/// removed, and counting it again starts from zero. Snapshots are hourly, so the only record
/// of the removal is the snapshot it asks for itself before it is answered.
///
/// A build that answered the removal before that snapshot was durable (or did not persist it),
/// or whose snapshots dropped the floors (the totals the removal observed), shows the counter
/// again with its old value 7 after the restart (200, not 404); one whose values counted the
/// floors shows 7 + 4 = 11 for the later increment instead of 4; one whose snapshots dropped
/// the named cells loses `kept` (0, not 3). (Each seen with the core changed so.)
#[test]
fn a_removal_survives_sigkill() {
    let dir = std::env::temp_dir().join(format!("tally-remove-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let hourly = ["--log", "warn", "--snapshot-every", "1h"];
    let (mut node, url) = start_node(&hourly, &dir);
    let inc = |url: &str, name: &str, by: u64| -> u64 {
        let r = post(
            url,
            &format!("/counters/{name}/increment"),
            &format!("{{\"by\": {by}}}"),
        );
        assert!(r.status().is_success(), "{}", r.status());
        let v: serde_json::Value = r.json().unwrap();
        v["value"].as_u64().unwrap()
    };
    assert_eq!(inc(&url, "doors", 5), 5);
    assert_eq!(inc(&url, "doors", 2), 7);
    assert_eq!(inc(&url, "kept", 3), 3);
    let r = reqwest::blocking::Client::new()
        .delete(format!("{url}/counters/doors"))
        .send()
        .unwrap();
    assert!(r.status().is_success(), "DELETE: {}", r.status());
    let v: serde_json::Value = r.json().unwrap();
    assert_eq!(v["removed"], true, "{v}");
    assert_eq!(status(&url, "doors"), 404, "removed before the kill");
    node.kill();

    let (mut node, url) = start_node(&hourly, &dir);
    assert_eq!(
        status(&url, "doors"),
        404,
        "the removal survived the kill; GET /counters: {}",
        get_json(&format!("{url}/counters"))
    );
    let names = ["doors".to_string(), "kept".to_string()];
    assert_eq!(named_values(&url, &names), [0, 3], "only `kept` is listed");
    assert_eq!(
        inc(&url, "doors", 4),
        4,
        "counting after the removal starts from zero"
    );
    node.kill();

    let (_node, url) = start_node(&hourly, &dir);
    assert_eq!(
        named_values(&url, &names),
        [4, 3],
        "the floors and the increment above them survived a second kill"
    );
    assert_eq!(named_value(&url, "doors"), 4);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A named counter's value sums the cells of every id that wrote to it, so a node that starts
/// a new incarnation keeps counting what its old one held (what the power-loss test relies on
/// when a cut costs a node its log). Restarted under another `--id` on the same directory, the
/// node counts under a new entry (README, "Durability") and its old cells stay.
///
/// A build whose named value counted only the node's own entry shows 0 instead of 5 once the
/// second incarnation starts (seen with `counter_value` changed so); one that dropped the old
/// incarnation's cells at recovery, a 404.
#[test]
fn a_new_incarnation_keeps_the_old_named_cells() {
    let dir = std::env::temp_dir().join(format!("tally-incarnation-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let inc = |url: &str, by: u64| -> u64 {
        let r = post(
            url,
            "/counters/doors/increment",
            &format!("{{\"by\": {by}}}"),
        );
        assert!(r.status().is_success(), "{}", r.status());
        let v: serde_json::Value = r.json().unwrap();
        v["value"].as_u64().unwrap()
    };
    let node_id = |url: &str| get_json(&format!("{url}/counter"))["node"].to_string();
    let (mut node, url) = start_with(&dir, &["--id", "first"]);
    let first = node_id(&url);
    assert_eq!(inc(&url, 5), 5);
    node.kill();

    let (mut node, url) = start_with(&dir, &["--id", "second"]);
    let second = node_id(&url);
    assert_ne!(first, second, "a new entry under another --id");
    assert_eq!(named_value(&url, "doors"), 5, "the old incarnation's cell");
    assert_eq!(inc(&url, 4), 9, "both incarnations' cells count");
    node.kill();

    let (_node, url) = start_with(&dir, &["--id", "second"]);
    assert_eq!(node_id(&url), second, "the same --id resumes its entry");
    assert_eq!(named_values(&url, &["doors".to_string()]), [9]);
    let _ = std::fs::remove_dir_all(&dir);
}
