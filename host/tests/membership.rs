//! SWIM membership on real nodes: five `tally node --mdns`, each in a network namespace of
//! its own on one bridge (the chaos harness's [`Lab`]), started with no peers and no discovery
//! service, become SWIM members of one another and count as one cluster. One is killed with
//! SIGKILL (no goodbye: its mDNS record outlives it) and every other marks it down — in SWIM's
//! view (`GET /members`) and in the gossip peer table (`GET /peers`); the test prints how long
//! that took (the bound is generous: it is no benchmark — see `tally swim-sim`). Restarted, it
//! is readmitted in a new generation and its writes reach everybody again.
//!
//! Needs root and `ip` (`scripts/setup`); without them it fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::netns::{inc_in, lab_api, lab_value, members_in, peer_status_in, wait_until, Children};
use std::path::Path;
use std::time::Duration;
use tally::chaos::netns::Lab;

const TALLY: &str = env!("CARGO_BIN_EXE_tally");
const NODES: usize = 5;
const DEADLINE: Duration = Duration::from_secs(60);
const VICTIM: usize = 2;

fn gossip(lab: &Lab, i: usize) -> String {
    format!("{}:9000", lab.address(i))
}

/// `(generation, state)` of member `subject` as node `observer` sees it.
fn member(lab: &Lab, observer: usize, subject: usize) -> Option<(u64, String)> {
    let addr = gossip(lab, subject);
    members_in(&lab.namespace(observer), &lab_api(lab, observer))
        .into_iter()
        .find(|m| m.0 == addr)
        .map(|m| (m.1, m.2))
}

/// The gossip peer table's status of `subject` at `observer`.
fn peer_status(lab: &Lab, observer: usize, subject: usize) -> Option<String> {
    let addr = gossip(lab, subject);
    peer_status_in(&lab.namespace(observer), &lab_api(lab, observer))
        .into_iter()
        .find(|p| p.0 == addr)
        .map(|p| p.1)
}

fn start(lab: &Lab, nodes: &mut Children, i: usize, logs: &Path, run: usize) -> usize {
    let ip = lab.address(i).to_string();
    let (listen, api) = (format!("{ip}:9000"), format!("{ip}:8000"));
    let argv = [
        TALLY, "node", "--listen", &listen, "--http", &api, "--mdns", "--log", "info",
    ];
    nodes.spawn_in(
        &lab.namespace(i),
        &argv,
        &logs.join(format!("n{i}-{run}.log")),
    )
}

#[test]
fn a_killed_member_is_marked_down_everywhere_and_readmitted() {
    let lab = Lab::create(NODES, None)
        .unwrap_or_else(|e| panic!("the membership test needs root and ip(8): {e:#}"));
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = Children::default();
    let mut slot = 0;
    for i in 0..NODES {
        let s = start(&lab, &mut nodes, i, dir.path(), 0);
        if i == VICTIM {
            slot = s;
        }
    }
    let others: Vec<usize> = (0..NODES).filter(|&i| i != VICTIM).collect();
    let took = wait_until(
        "every node counts the four others as live members",
        DEADLINE,
        || {
            (0..NODES).all(|o| {
                (0..NODES)
                    .filter(|&s| s != o)
                    .all(|s| member(&lab, o, s).is_some_and(|(_, st)| st == "alive"))
            })
        },
    );
    println!("full SWIM membership within {took:?}");
    for i in 0..NODES {
        inc_in(&lab.namespace(i), &lab_api(&lab, i), "1");
    }
    wait_until("all five agree on 5", DEADLINE, || {
        (0..NODES).all(|i| lab_value(&lab, i) == Some(5))
    });

    // SIGKILL: no mDNS goodbye, no SWIM leave. The others must detect it.
    let mut victim = nodes.0.get_mut(slot).and_then(Option::take).unwrap();
    victim.kill().unwrap();
    let _ = victim.wait();
    let took = wait_until(
        "every other node marks the killed one down",
        DEADLINE,
        || {
            others.iter().all(|&o| {
                member(&lab, o, VICTIM).is_some_and(|(_, st)| st == "down")
                    && peer_status(&lab, o, VICTIM).as_deref() == Some("down")
            })
        },
    );
    println!("every other node marked node {VICTIM} down within {took:?} of its SIGKILL");
    // Meanwhile the cluster counts on without it.
    inc_in(&lab.namespace(0), &lab_api(&lab, 0), "10");
    wait_until("the four agree on 15", DEADLINE, || {
        others.iter().all(|&i| lab_value(&lab, i) == Some(15))
    });

    // Restarted with no data: a new process at the same address is readmitted in a new
    // generation, and everybody counts its writes.
    start(&lab, &mut nodes, VICTIM, dir.path(), 1);
    wait_until("the restarted node answers", DEADLINE, || {
        lab_value(&lab, VICTIM).is_some()
    });
    let took = wait_until("every other node readmits it", DEADLINE, || {
        others.iter().all(|&o| {
            member(&lab, o, VICTIM).is_some_and(|(g, st)| g >= 1 && st == "alive")
                && peer_status(&lab, o, VICTIM).as_deref() == Some("alive")
        })
    });
    println!("node {VICTIM} readmitted everywhere within {took:?} of its restart");
    inc_in(&lab.namespace(VICTIM), &lab_api(&lab, VICTIM), "100");
    wait_until("all five agree on 115", DEADLINE, || {
        (0..NODES).all(|i| lab_value(&lab, i) == Some(115))
    });
}
