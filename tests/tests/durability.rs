//! Durability through the node service: restarts keep the value and the entry id; a lost data
//! directory comes back under a new incarnation whose writes count; bad directories fail at
//! start with a clear error.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::PathBuf;
use std::time::Duration;
use tally::service::{NodeOptions, NodeService};
use tally_tests::wait_until;

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tally-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

async fn start(dir: Option<PathBuf>, peers: Vec<String>) -> anyhow::Result<NodeService> {
    NodeService::start(NodeOptions {
        data_dir: dir,
        peers,
        sync_interval: Duration::from_millis(100),
        ..NodeOptions::loopback()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_the_value_and_the_entry() {
    let dir = temp_dir("restart");
    let s = start(Some(dir.clone()), vec![]).await.unwrap();
    let id = s.node.id();
    assert!(id.contains('#'), "counts under ID#INCARNATION: {id}");
    let c = reqwest::Client::new();
    for _ in 0..10 {
        let r = c
            .post(format!("{}/increment", s.url()))
            .body(r#"{"by": 3}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
    s.stop().await;
    let s = start(Some(dir.clone()), vec![]).await.unwrap();
    assert_eq!(s.node.id(), id, "same data directory, same entry");
    assert_eq!(s.node.value(), 30);
    assert_eq!(s.node.local(), (30, 0));
    s.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A handle that outlives the node (here a clone; in CI it was a keep-alive HTTP connection
/// still holding the router) must not keep the data directory locked: a restart right after
/// `stop` opens it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_node_releases_its_directory_while_handles_remain() {
    let dir = temp_dir("release");
    let s = start(Some(dir.clone()), vec![]).await.unwrap();
    let lingering = s.node.clone();
    s.node.increment(7).unwrap();
    s.stop().await;
    let s = start(Some(dir.clone()), vec![]).await.unwrap();
    assert_eq!(s.node.value(), 7);
    assert!(
        lingering.increment(1).is_err(),
        "the old handle is shut down"
    );
    s.stop().await;
    drop(lingering);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A node restarted under another `--id` on the same directory counts under a new entry; what
/// it counted before stays, as another node's entry. Restarted with no `--id`, it keeps its
/// entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_node_counts_under_a_new_entry_and_keeps_the_old() {
    let dir = temp_dir("rename");
    let named = |id: Option<&str>| NodeOptions {
        data_dir: Some(dir.clone()),
        id: id.map(str::to_owned),
        ..NodeOptions::loopback()
    };
    let s = NodeService::start(named(Some("door"))).await.unwrap();
    let door = s.node.id();
    assert!(door.starts_with("door#"), "{door}");
    s.node.increment(4).unwrap();
    s.stop().await;
    let s = NodeService::start(named(None)).await.unwrap();
    assert_eq!(s.node.id(), door, "no --id: the stored entry");
    s.stop().await;
    let s = NodeService::start(named(Some("gate"))).await.unwrap();
    let gate = s.node.id();
    assert!(gate.starts_with("gate#"), "{gate}");
    s.node.increment(1).unwrap();
    assert_eq!((s.node.value(), s.node.local()), (5, (1, 0)));
    s.stop().await;
    let s = NodeService::start(named(Some("gate"))).await.unwrap();
    assert_eq!(s.node.id(), gate);
    assert_eq!(s.node.value(), 5);
    s.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_lost_its_data_counts_under_a_new_incarnation() {
    let dir = temp_dir("lost");
    let peer = start(None, vec![]).await.unwrap();
    let peer_addr = peer.node.local_addr().to_string();
    let a = start(Some(dir.clone()), vec![peer_addr.clone()])
        .await
        .unwrap();
    let old_id = a.node.id();
    let c = reqwest::Client::new();
    c.post(format!("{}/increment", a.url()))
        .body(r#"{"by": 10}"#)
        .send()
        .await
        .unwrap();
    let p = peer.node.clone();
    assert!(wait_until(Duration::from_secs(10), || p.value() == 10));
    a.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
    // The disk is gone. The node comes back empty and writes at once, before relearning.
    let a = start(Some(dir.clone()), vec![peer_addr]).await.unwrap();
    assert_ne!(a.node.id(), old_id, "a new incarnation");
    c.post(format!("{}/increment", a.url()))
        .body(r#"{"by": 5}"#)
        .send()
        .await
        .unwrap();
    let (an, pn) = (a.node.clone(), peer.node.clone());
    assert!(wait_until(Duration::from_secs(10), || an.value() == 15
        && pn.value() == 15));
    a.stop().await;
    peer.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_data_directory_fails_at_start() {
    let file = temp_dir("file");
    std::fs::write(&file, b"not a directory").unwrap();
    let err = start(Some(file.clone()), vec![]).await.err().unwrap();
    let msg = format!("{err:#}");
    assert!(msg.contains(&file.display().to_string()), "{msg}");
    let _ = std::fs::remove_file(&file);
}

/// Named counters survive a restart: their records (and the final snapshot, with a removal's
/// floors) are in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_named_counters_and_removals() {
    let dir = temp_dir("restart-named");
    let s = start(Some(dir.clone()), vec![]).await.unwrap();
    for (name, by) in [("doors", 3), ("parts.A", 5), ("doors", 4), ("gone", 9)] {
        s.node.counter(name).unwrap().increment(by).unwrap();
    }
    s.node.counter("parts.A").unwrap().decrement(1).unwrap();
    assert!(s.node.remove_counter("gone").unwrap());
    s.node.increment(2).unwrap();
    let before = s.node.counters();
    assert_eq!(
        before,
        vec![("doors".to_string(), 7), ("parts.A".to_string(), 4)]
    );
    s.stop().await;
    let s = start(Some(dir.clone()), vec![]).await.unwrap();
    assert_eq!(
        s.node.counters(),
        before,
        "named counters after the restart"
    );
    assert_eq!(s.node.value(), 2);
    // The removed counter stays removed; counting it again starts from zero.
    assert_eq!(s.node.counter_value("gone"), None);
    assert_eq!(s.node.counter("gone").unwrap().increment(1).unwrap(), 1);
    s.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
