//! A board whose store is wiped mid-life rejoins a cluster that still holds its old entry:
//! under a new incarnation not one press is swallowed; under the old fixed id they would be.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::{boot, peer, press, Flash, Net, Rep};
use tally_board::persist::SNAPSHOTS;
use tally_core::{Config, Identity, Incarnation, LocalOp, PeerSource, ReplicaConfig};

const BOARD: &str = "10.0.0.1:9000";
const B: &str = "10.0.0.2:9000";
const C: &str = "10.0.0.3:9000";

fn join(board: &mut Rep, net: &Net) {
    board.set_address(Some(BOARD)).unwrap();
    for p in [B, C] {
        board.add_peer(p, PeerSource::Static, net.now).unwrap();
    }
}

#[test]
fn a_wiped_board_rejoins_under_a_new_incarnation_and_no_press_is_swallowed() {
    let mut net = Net::new();
    let mut b = peer("b", 2, B, &[BOARD, C]);
    let mut c = peer("c", 3, C, &[BOARD, B]);

    // First life: a new store, 5 presses, 3 counted on B; everyone agrees on 8.
    let (mut board, mut store, opened) = boot(Flash::new(), "pico", 1, net.now);
    assert_eq!(opened.incarnation, Incarnation::Fresh);
    let first = *board.id();
    join(&mut board, &net);
    for _ in 0..5 {
        press(&mut board, &mut store, LocalOp::Increment(1)).unwrap();
    }
    b.apply(LocalOp::Increment(3)).unwrap();
    assert!(net.converge(&mut [&mut board, &mut b, &mut c], Some(&mut store), 8, 60));
    assert_eq!(c.counter().entry(first.as_str()).map(|e| e.inc), Some(5));

    // The store is wiped (a new flash chip, an erase): the board boots with nothing.
    drop(store);
    let (mut board, mut store, opened) = boot(Flash::new(), "pico", 2, net.now);
    assert_eq!(opened.incarnation, Incarnation::Fresh);
    assert_eq!(opened.entries, 0);
    let second = *board.id();
    assert_ne!(second, first, "a new incarnation");
    assert_eq!(second.as_str().split_once('#').unwrap().0, "pico");

    // Two presses offline (no address yet), then the board rejoins.
    for _ in 0..2 {
        press(&mut board, &mut store, LocalOp::Increment(1)).unwrap();
    }
    assert_eq!(board.value(), 2);
    join(&mut board, &net);
    assert!(
        net.converge(&mut [&mut board, &mut b, &mut c], Some(&mut store), 10, 60),
        "values {} {} {}: every press counts (3 + 5 + 2)",
        board.value(),
        b.value(),
        c.value()
    );
    assert_eq!(board.local(), (2, 0));
    assert_eq!(
        board.counter().entry(first.as_str()).map(|e| e.inc),
        Some(5)
    );

    // Another press after the rejoin, and a reboot (no wipe): the incarnation resumes and
    // the merged state came back from flash.
    press(&mut board, &mut store, LocalOp::Increment(1)).unwrap();
    assert!(net.converge(&mut [&mut board, &mut b, &mut c], Some(&mut store), 11, 60));
    // Let a snapshot of the merged state become due (the boards' interval) and be written.
    let steps = SNAPSHOTS.interval.as_millis() / 100 + 20;
    for _ in 0..steps {
        net.step(&mut [&mut board, &mut b, &mut c]);
        embassy_futures::block_on(store.save(&mut board)).unwrap();
    }
    let flash = store.into_flash();
    let (board, _store, opened) = boot(flash, "pico", 3, net.now);
    assert_eq!(opened.incarnation, Incarnation::Resumed);
    assert_eq!(*board.id(), second);
    assert_eq!(
        board.value(),
        11,
        "own 3, old entry 5, B's 3, all from flash"
    );
}

#[test]
fn under_the_old_fixed_id_the_same_presses_are_swallowed() {
    // The hazard the incarnation closes: a board whose state is lost counting again under
    // the entry its peers hold higher. The test above would see it.
    let mut net = Net::new();
    let mut b = peer("b", 2, B, &[BOARD, C]);
    let mut c = peer("c", 3, C, &[BOARD, B]);
    let fixed = Identity::new("pico", 1).unwrap();
    let volatile = ReplicaConfig::volatile(Config::mcu());
    let mut board = Rep::new(fixed, Incarnation::Resumed, volatile, net.now).unwrap();
    join(&mut board, &net);
    board.apply(LocalOp::Increment(5)).unwrap();
    b.apply(LocalOp::Increment(3)).unwrap();
    assert!(net.converge(&mut [&mut board, &mut b, &mut c], None, 8, 60));

    // State lost, same id: two presses under an entry the cluster holds at 5.
    let mut board = Rep::new(fixed, Incarnation::Resumed, volatile, net.now).unwrap();
    board.apply(LocalOp::Increment(2)).unwrap();
    join(&mut board, &net);
    assert!(net.converge(&mut [&mut board, &mut b, &mut c], None, 8, 60));
    for _ in 0..100 {
        net.step(&mut [&mut board, &mut b, &mut c]);
    }
    assert_eq!(
        (board.value(), b.value(), c.value()),
        (8, 8, 8),
        "the two presses were swallowed: 8, not 10"
    );
}
