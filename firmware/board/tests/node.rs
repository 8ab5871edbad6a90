//! The board's store driving a real `tally-embassy` node (its `Persister`), on a stack with no
//! network: a press counts only once its record is in flash, a failed write keeps it pending
//! until a later record carries it, and a reboot finds it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::{boot, store, Flash, NoLink};
use embassy_futures::block_on;
use embassy_net::{Stack, StackResources};
use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use tally_board::persist::SNAPSHOTS;
use tally_core::{Config, Incarnation};
use tally_embassy::{Node, NodeConfig, Persister, State, Write};

type S = State<NoopRawMutex, 8, 4, 32, 1>;

/// A node as a board starts it, from `flash`, on a stack that never comes up.
fn start(
    flash: Flash,
    seed: u64,
) -> (
    Node<'static, NoopRawMutex, 8, 4, 32>,
    Persister<'static, NoopRawMutex, 8, 4, 32>,
    tally_board::persist::Store<Flash>,
    Incarnation,
) {
    let mut s = store(flash);
    let now = tally_embassy::now();
    let mut rng = common::Lcg(seed);
    let (replica, opened) =
        block_on(s.open("pico", Config::mcu(), SNAPSHOTS, now, &mut rng)).unwrap();
    let resources: &'static mut StackResources<3> = Box::leak(Box::new(StackResources::new()));
    let (stack, _net): (Stack<'static>, _) =
        embassy_net::new(NoLink, embassy_net::Config::default(), resources, seed);
    let state: &'static mut S = Box::leak(Box::new(State::new(replica)));
    let (node, _runner, persister) =
        tally_embassy::new(stack, state, &NodeConfig::new(9000)).unwrap();
    (node, persister, s, opened.incarnation)
}

#[test]
fn a_press_on_a_running_node_counts_once_the_store_has_it() {
    let (node, mut persister, mut s, how) = start(Flash::new(), 1);
    assert_eq!(how, Incarnation::Fresh);
    assert_eq!(node.address(), None, "no network");
    assert_eq!(node.increment(1), Ok(Write::Persisting));
    assert_eq!(node.value(), 0, "not counted before it is in flash");
    assert_eq!(
        block_on(s.save(&mut persister)).unwrap(),
        2,
        "identity, press"
    );
    assert_eq!(node.value(), 1);
    let id = node.id();

    let (node, _, _, how) = start(s.into_flash(), 2);
    assert_eq!(how, Incarnation::Resumed);
    assert_eq!((node.id(), node.value()), (id, 1));
}

#[test]
fn a_failed_write_keeps_the_press_pending_until_a_later_record_carries_it() {
    let (node, mut persister, mut s, _) = start(Flash::new(), 1);
    assert_eq!(block_on(s.save(&mut persister)).unwrap(), 1, "the identity");
    let mut flash = s.into_flash();
    flash.budget = Some(0); // every write fails from now on
    let mut s = store(flash);
    node.increment(1).unwrap();
    assert!(block_on(s.save(&mut persister)).is_err());
    assert_eq!(node.value(), 0, "not counted: its record failed");
    assert_eq!(persister.pending(), 1);
    let mut flash = s.into_flash();
    flash.budget = None; // the flash works again
    let mut s = store(flash);
    assert_eq!(
        block_on(s.save(&mut persister)).unwrap(),
        1,
        "a snapshot carries it"
    );
    assert_eq!(node.value(), 1);
    assert_eq!(persister.pending(), 0);
    let (back, _, _) = boot(s.into_flash(), "pico", 3, tally_embassy::now());
    assert_eq!(back.value(), 1);
}

/// A press's path on a running node: in RAM (`increment` answers `Persisting`), its record
/// being written to flash, written, committed — from then on the value is shown (LED, API)
/// and frames carry it. The power is cut after every few bytes of a run of presses; after the
/// reboot the node holds every press that was committed (so shown or sent), and never more
/// than were pressed.
#[test]
fn a_power_cut_at_any_step_of_a_press_loses_nothing_shown_or_sent() {
    const PRESSES: u64 = 8;
    // How many bytes the whole run writes and erases, with the power on.
    // The node boots with the power on (cuts during the first boot's claim of the range are
    // tests/persist.rs's); the cut then falls among its writes: identity, presses.
    let powered = |budget: usize| {
        let (node, persister, s, _) = start(Flash::new(), 1);
        let mut flash = s.into_flash();
        flash.budget = Some(budget);
        (node, persister, store(flash))
    };
    let total = {
        let (node, mut persister, mut s) = powered(usize::MAX);
        for _ in 0..PRESSES {
            node.increment(1).unwrap();
            block_on(s.save(&mut persister)).unwrap();
        }
        assert_eq!(node.local(), (PRESSES, 0));
        usize::MAX - s.into_flash().budget.unwrap()
    };
    let mut cuts = 0;
    for budget in (0..total).step_by(5) {
        let (node, mut persister, mut s) = powered(budget);
        let id = node.id();
        let (mut pressed, mut shown) = (0u64, 0u64);
        for _ in 0..PRESSES {
            // In RAM: pending, not counted, not shown, not sent.
            assert!(matches!(node.increment(1), Ok(Write::Persisting)));
            pressed += 1;
            assert_eq!(
                node.local().0,
                shown,
                "nothing shown before its record is in flash"
            );
            let written = block_on(s.save(&mut persister));
            // Committed or not: what is shown and what a frame would carry is `local`.
            shown = node.local().0;
            if written.is_err() {
                break; // the power is gone
            }
            assert_eq!(shown, pressed, "written, so committed");
        }
        let mut flash = s.into_flash();
        flash.budget = None;
        let (back, _, _) = boot(flash, "pico", 7, tally_embassy::now());
        let restored = back.counter().entry(id.as_str()).map_or(0, |e| e.inc);
        assert!(
            shown <= restored && restored <= pressed,
            "cut after {budget} bytes: {shown} shown, {restored} restored, {pressed} pressed"
        );
        cuts += 1;
    }
    assert!(cuts > 20, "{cuts} cuts");
}
