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

mod common;

use common::netns::{inc_in, lab_api, lab_value, peers_in, wait_until, Children};
use std::process::Command;
use std::time::Duration;
use tally::chaos::netns::Lab;

const TALLY: &str = env!("CARGO_BIN_EXE_tally");
const NODES: usize = 5;
const DEADLINE: Duration = Duration::from_secs(40);

/// Node `i`'s peers of source `mdns`.
fn mdns_peers(lab: &Lab, i: usize) -> Vec<String> {
    peers_in(&lab.namespace(i), &lab_api(lab, i))
        .into_iter()
        .filter(|(_, source)| source == "mdns")
        .map(|(addr, _)| addr)
        .collect()
}

#[test]
fn five_nodes_with_no_peers_find_each_other_by_mdns() {
    let lab = Lab::create(NODES, None)
        .unwrap_or_else(|e| panic!("the mDNS test needs root and ip(8): {e:#}"));
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = Children::default();
    for i in 0..NODES {
        let ip = lab.address(i).to_string();
        let (listen, api) = (format!("{ip}:9000"), format!("{ip}:8000"));
        let argv = [
            TALLY,
            "node",
            "--listen",
            &listen,
            "--http",
            &api,
            "--mdns",
            "--sync-interval",
            "200ms",
            "--log",
            "warn",
        ];
        nodes.spawn_in(
            &lab.namespace(i),
            &argv,
            &dir.path().join(format!("n{i}.log")),
        );
    }
    for i in 0..NODES {
        wait_until(&format!("node {i} answers"), DEADLINE, || {
            lab_value(&lab, i).is_some()
        });
    }
    let took = wait_until("every node has an mDNS peer", DEADLINE, || {
        (0..NODES).all(|i| !mdns_peers(&lab, i).is_empty())
    });
    println!("every node found an mDNS peer within {took:?}");
    // One cluster: each node adds i + 1, all reach 1 + 2 + 3 + 4 + 5.
    for i in 0..NODES {
        let by = (i + 1).to_string();
        inc_in(&lab.namespace(i), &lab_api(&lab, i), &by);
    }
    let took = wait_until("all five agree on 15", DEADLINE, || {
        (0..NODES).all(|i| lab_value(&lab, i) == Some(15))
    });
    println!("all five agreed on 15 within {took:?}");
    // Node 4 stops (SIGTERM: it withdraws its announcement); the others drop it as an mDNS
    // peer.
    let gone = format!("{}:9000", lab.address(4));
    let mut last = nodes.0.get_mut(4).and_then(Option::take).unwrap();
    let _ = Command::new("kill").arg(last.id().to_string()).status();
    let _ = last.wait();
    let took = wait_until("the others drop node 4 as an mDNS peer", DEADLINE, || {
        (0..4).all(|i| !mdns_peers(&lab, i).contains(&gone))
    });
    println!("node 4's goodbye removed it within {took:?}");
}
