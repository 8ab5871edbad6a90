//! SWIM membership and LAN discovery on real nodes: five `tally node --mdns`, each in a
//! network namespace of its own on one bridge (the chaos harness's [`Lab`]), and the TAP board
//! node (`tally-tap-node`: the boards' program, with its mDNS) on a TAP device on the same
//! bridge, all started with no peers and no discovery service. The hosts become SWIM members
//! of one another; hosts and board find each other by mDNS and count as one cluster. One
//! host is killed with SIGKILL (no goodbye: its mDNS record outlives it) and every other
//! marks it down — the hosts in SWIM's view (`GET /members`) and in their gossip peer tables
//! (`GET /peers`), the board in its peer table (it runs no SWIM: its failed sends do it); the
//! test prints how long that took (the bound is generous: it is no benchmark — see
//! `tally swim-sim`). Restarted, it is readmitted in a new generation and its writes reach
//! everybody, the board included.
//!
//! Needs root, `ip`, `dnsmasq` (the board's DHCP; `scripts/setup`) and the TAP node's binary
//! in `TAP_NODE_BIN`: `scripts/embedded` builds it and runs this test (`--ignored` keeps it
//! out of the workspace run, which comes before that build). Without them it fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::netns::{inc_in, lab_api, lab_value, members_in, peer_status_in, wait_until, Children};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;
use tally::chaos::board::{Board, BoardSpec};
use tally::chaos::netns::{Lab, BOARD_TAP};

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
    peer_status_of(lab, observer, &gossip(lab, subject))
}

/// The gossip peer table's status of the peer at `addr` at host `observer`.
fn peer_status_of(lab: &Lab, observer: usize, addr: &str) -> Option<String> {
    peer_status_in(&lab.namespace(observer), &lab_api(lab, observer))
        .into_iter()
        .find(|p| p.0 == addr)
        .map(|p| p.1)
}

/// The board's view of host `subject`: `(source, state)` in its peer table.
fn board_view(board: &Mutex<Board>, lab: &Lab, subject: usize) -> Option<(String, String)> {
    let addr = gossip(lab, subject);
    let peers = board.lock().ok()?.peers()?;
    peers.into_iter().find(|p| p.0 == addr).map(|p| (p.1, p.2))
}

fn board_value(board: &Mutex<Board>) -> Option<i64> {
    board.lock().ok()?.value()
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
#[ignore = "needs the TAP node's binary: scripts/embedded builds it and runs this test"]
fn a_killed_member_is_marked_down_everywhere_and_readmitted() {
    let tap_node = std::env::var_os("TAP_NODE_BIN")
        .expect("TAP_NODE_BIN: the tally-tap-node binary (firmware/linux-tap)");
    let dir = tempfile::tempdir().unwrap();
    let lab = Lab::create(NODES, Some(dir.path()))
        .unwrap_or_else(|e| panic!("the membership test needs root, ip(8), dnsmasq: {e:#}"));
    let board = Board::start(BoardSpec {
        bin: tap_node.into(),
        netns: lab.board_namespace().unwrap(),
        tap: BOARD_TAP.to_string(),
        flash: dir.path().join("board.flash"),
        log: dir.path().join("board.log"),
        peers: Vec::new(),
        sync_interval: Duration::from_millis(500),
        mdns: true,
    })
    .unwrap();
    let board = Mutex::new(board);
    let board_addr = format!("{}:9000", lab.board_address());
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
    let took = wait_until(
        "the board and every host find each other by mDNS",
        DEADLINE,
        || {
            (0..NODES).all(|i| {
                peer_status_of(&lab, i, &board_addr).as_deref() == Some("alive")
                    && board_view(&board, &lab, i)
                        .is_some_and(|(src, st)| src == "mdns" && st == "alive")
            })
        },
    );
    println!("board and hosts found each other by mDNS within {took:?}");
    for i in 0..NODES {
        inc_in(&lab.namespace(i), &lab_api(&lab, i), "1");
    }
    let pressed = board.lock().unwrap().press(true);
    assert!(
        matches!(pressed, tally::chaos::checker::Outcome::Ok),
        "{pressed:?}"
    );
    wait_until("all five and the board agree on 6", DEADLINE, || {
        (0..NODES).all(|i| lab_value(&lab, i) == Some(6)) && board_value(&board) == Some(6)
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
            }) && board_view(&board, &lab, VICTIM).is_some_and(|(_, st)| st == "down")
        },
    );
    println!(
        "every other node and the board marked node {VICTIM} down within {took:?} of its SIGKILL"
    );
    // Meanwhile the cluster counts on without it.
    inc_in(&lab.namespace(0), &lab_api(&lab, 0), "10");
    wait_until("the four and the board agree on 16", DEADLINE, || {
        others.iter().all(|&i| lab_value(&lab, i) == Some(16)) && board_value(&board) == Some(16)
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
        }) && board_view(&board, &lab, VICTIM).is_some_and(|(_, st)| st == "alive")
    });
    println!("node {VICTIM} readmitted everywhere (the board too) within {took:?} of its restart");
    inc_in(&lab.namespace(VICTIM), &lab_api(&lab, VICTIM), "100");
    wait_until("all five and the board agree on 116", DEADLINE, || {
        (0..NODES).all(|i| lab_value(&lab, i) == Some(116)) && board_value(&board) == Some(116)
    });
}
