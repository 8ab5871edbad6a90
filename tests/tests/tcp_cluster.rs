//! Real nodes on loopback TCP (`tally-std`): clusters converge to the exact value under
//! concurrent writes, late joiners catch up, restarts rejoin, partitions heal.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::sync::Arc;
use std::time::Duration;
use tally_std::{Node, NodeConfig};
use tally_tests::wait_until;

const SYNC: Duration = Duration::from_millis(100);
const PATIENCE: Duration = Duration::from_secs(20);

fn start(peers: &[String]) -> Node {
    Node::start(
        NodeConfig::new("127.0.0.1:0".parse().unwrap())
            .sync_interval(SYNC)
            .peers(peers.iter().cloned()),
    )
    .unwrap()
}

/// `n` nodes, each knowing the first (the rest is learned from senders).
fn cluster(n: usize) -> Vec<Arc<Node>> {
    let first = start(&[]);
    let seed = vec![first.local_addr().to_string()];
    let mut nodes = vec![Arc::new(first)];
    for _ in 1..n {
        nodes.push(Arc::new(start(&seed)));
    }
    nodes
}

fn all_equal(nodes: &[Arc<Node>], v: i128) -> bool {
    nodes.iter().all(|n| n.value() == v)
}

fn concurrent_writes(nodes: &[Arc<Node>], per_node: u64) -> i128 {
    let handles: Vec<_> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let n = Arc::clone(n);
            std::thread::spawn(move || {
                let mut sum = 0i128;
                for k in 0..per_node {
                    let by = (k % 5) + 1;
                    if (k + i as u64).is_multiple_of(3) {
                        n.decrement(by).unwrap();
                        sum -= i128::from(by);
                    } else {
                        n.increment(by).unwrap();
                        sum += i128::from(by);
                    }
                    if k.is_multiple_of(50) {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
                sum
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).sum()
}

#[test]
fn three_and_five_node_clusters_reach_the_exact_value() {
    for n in [3, 5] {
        let nodes = cluster(n);
        let expected = concurrent_writes(&nodes, 300);
        assert!(
            wait_until(PATIENCE, || all_equal(&nodes, expected)),
            "n={n}: expected {expected}, got {:?}",
            nodes.iter().map(|x| x.value()).collect::<Vec<_>>()
        );
        for node in &nodes {
            assert_eq!(node.stats().rejected_total(), 0);
        }
    }
}

#[test]
fn a_late_joiner_catches_up() {
    let nodes = cluster(3);
    let expected = concurrent_writes(&nodes, 100);
    assert!(wait_until(PATIENCE, || all_equal(&nodes, expected)));
    let late = Arc::new(start(&[nodes[1].local_addr().to_string()]));
    assert!(wait_until(PATIENCE, || late.value() == expected));
    late.increment(7).unwrap();
    let mut all = nodes.clone();
    all.push(late);
    assert!(wait_until(PATIENCE, || all_equal(&all, expected + 7)));
}

#[test]
fn a_restarted_node_rejoins() {
    let nodes = cluster(3);
    nodes[2].increment(10).unwrap();
    nodes[0].increment(1).unwrap();
    assert!(wait_until(PATIENCE, || all_equal(&nodes, 11)));
    let addr = nodes[2].local_addr();
    nodes[2].shutdown();
    // Without persistence the node comes back empty on the same address, under a new
    // incarnation: its old entry stays in the cluster (the value is exact) and it counts anew.
    let back = Node::start(
        NodeConfig::new(addr)
            .sync_interval(SYNC)
            .peers([nodes[0].local_addr().to_string()]),
    )
    .unwrap();
    assert!(wait_until(PATIENCE, || back.value() == 11));
    assert_eq!(back.local(), (0, 0));
    assert_ne!(back.id(), nodes[2].id(), "a fresh incarnation");
    back.increment(1).unwrap();
    assert!(wait_until(PATIENCE, || nodes[0].value() == 12
        && nodes[1].value() == 12));
}

#[test]
fn a_partition_heals_and_converges() {
    let nodes = cluster(4);
    nodes[3].set_isolated(true);
    nodes[0].increment(5).unwrap();
    nodes[3].increment(2).unwrap();
    assert!(wait_until(PATIENCE, || all_equal(&nodes[..3], 5)));
    std::thread::sleep(SYNC * 5);
    assert_eq!(nodes[3].value(), 2, "an isolated node hears nothing");
    nodes[3].set_isolated(false);
    assert!(wait_until(PATIENCE, || all_equal(&nodes, 7)));
}
