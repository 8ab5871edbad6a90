//! Named counters in the board's flash store: each counter's own totals under a key of its
//! own, the snapshot's named cells, power cuts in the middle of named presses, a store of the
//! unnamed firmware opened by a firmware with named counters, and a store out of keys.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::{Flash, Lcg, PAGE, PAGES};
use embassy_futures::block_on;
use tally_board::persist::{work_size, PersistError, Store, NAMED_KEYS, SNAPSHOTS};
use tally_core::named::{FixedStores, Totals};
use tally_core::{Config, Duration, FixedReplica, Incarnation, Instant, LocalOp};

/// A board with room for 4 counters (8 ids, 16 cells): what a small firmware builds.
type Named = FixedStores<4, 8, 16, 4>;
type Rep = FixedReplica<8, 4, 32, Named>;
const W: usize = work_size(16);
type S = Store<Flash, W>;

fn store(flash: Flash) -> S {
    Store::sized(flash, 0..(PAGE * PAGES) as u32).unwrap()
}

fn boot(flash: Flash, seed: u64) -> (Rep, S, tally_board::persist::Opened) {
    let mut s = store(flash);
    let (r, o) = block_on(s.open(
        "pico-1",
        Config::mcu(),
        SNAPSHOTS,
        Instant::ZERO,
        &mut Lcg(seed),
    ))
    .unwrap();
    (r, s, o)
}

fn press(r: &mut Rep, s: &mut S, name: &str, op: LocalOp) -> Result<(), PersistError> {
    let p = r.prepare_named(name, op).unwrap();
    block_on(s.save(r))?;
    r.commit(p).unwrap();
    Ok(())
}

#[test]
fn named_presses_and_merged_cells_survive_a_reboot() {
    let (mut r, mut s, _) = boot(Flash::new(), 1);
    block_on(s.save(&mut r)).unwrap(); // the identity
    for _ in 0..5 {
        press(&mut r, &mut s, "doors", LocalOp::Increment(1)).unwrap();
    }
    press(&mut r, &mut s, "parts", LocalOp::Increment(7)).unwrap();
    press(&mut r, &mut s, "doors", LocalOp::Decrement(2)).unwrap();
    r.prepare(LocalOp::Increment(4))
        .map(|p| {
            block_on(s.save(&mut r)).unwrap();
            r.commit(p).unwrap();
        })
        .unwrap();
    // A peer's cells, merged and snapshotted.
    let peer = Totals {
        inc: 10,
        dec: 1,
        floor_inc: 0,
        floor_dec: 0,
    };
    r.restore_named([("doors", "host-a#00000001", peer)].into_iter())
        .unwrap();
    r.request_snapshot().unwrap();
    block_on(s.save(&mut r)).unwrap();
    // One press after the snapshot: only its NamedLocal item holds it.
    press(&mut r, &mut s, "parts", LocalOp::Increment(1)).unwrap();
    let id = r.id().to_string();

    let (back, _, opened) = boot(s.into_flash(), 2);
    assert_eq!(opened.incarnation, Incarnation::Resumed);
    assert!(!opened.unreadable);
    assert_eq!(back.id().as_str(), id);
    assert_eq!(back.named_value("doors"), Some(5 - 2 + 10 - 1));
    assert_eq!(back.named_value("parts"), Some(8));
    assert_eq!(back.value(), 4);
}

#[test]
fn a_power_cut_in_named_presses_keeps_every_committed_one() {
    // 24 presses over three counters with snapshots between them; the power goes after
    // `budget` bytes written or erased.
    let names = ["doors", "parts", "rooms.1"];
    let run = |budget: Option<usize>| -> (Flash, [u64; 3], String) {
        let mut flash = Flash::new();
        flash.budget = budget;
        let mut s = store(flash);
        let mut rng = Lcg(5);
        let opened: Result<(Rep, _), _> =
            block_on(s.open("pico-1", Config::mcu(), SNAPSHOTS, Instant::ZERO, &mut rng));
        let Ok((mut r, _)) = opened else {
            return (s.into_flash(), [0; 3], String::new());
        };
        let id = r.id().to_string();
        let mut t = Instant::ZERO;
        let mut committed = [0u64; 3];
        for i in 0..24 {
            let k = i % 3;
            if press(&mut r, &mut s, names[k], LocalOp::Increment(1)).is_err() {
                break;
            }
            committed[k] += 1;
            t += Duration::from_secs(4);
            r.handle_timeout(t, &mut rng);
            if block_on(s.save(&mut r)).is_err() {
                break;
            }
        }
        (s.into_flash(), committed, id)
    };
    let total = {
        let (f, committed, _) = run(Some(usize::MAX));
        assert_eq!(committed, [8, 8, 8]);
        usize::MAX - f.budget.unwrap()
    };
    let mut cuts = 0;
    for budget in (0..total).step_by(41) {
        let (mut flash, committed, id) = run(Some(budget));
        flash.budget = None;
        let (back, _, opened) = boot(flash, 6);
        for (k, name) in names.iter().enumerate() {
            let own = back.named().totals(name, &id).inc;
            // The press in flight when the power went may or may not have reached the flash.
            assert!(
                own == committed[k] || own == committed[k] + 1,
                "cut at byte {budget}: {name}: {} committed, {own} restored",
                committed[k]
            );
        }
        if committed.iter().any(|&c| c > 0) {
            assert_eq!(opened.incarnation, Incarnation::Resumed, "cut at {budget}");
        }
        cuts += 1;
    }
    assert!(cuts > 30, "{cuts} cuts");
}

#[test]
fn a_store_of_the_unnamed_firmware_opens_with_named_counters_and_keeps_its_value() {
    // The store as the firmware without named counters left it (format 3, no cells).
    let (mut old, mut s, _) = common::boot(Flash::new(), "pico-1", 1, Instant::ZERO);
    for _ in 0..6 {
        common::press(&mut old, &mut s, LocalOp::Increment(1)).unwrap();
    }
    let id = old.id().to_string();
    let (mut r, mut s, opened) = boot(s.into_flash(), 2);
    assert_eq!(opened.incarnation, Incarnation::Resumed);
    assert_eq!(r.id().as_str(), id);
    assert_eq!(r.value(), 6);
    press(&mut r, &mut s, "doors", LocalOp::Increment(2)).unwrap();
    let (back, _, _) = boot(s.into_flash(), 3);
    assert_eq!((back.value(), back.named_value("doors")), (6, Some(2)));
}

#[test]
fn a_store_out_of_named_keys_refuses_the_write_clearly() {
    // A map larger than the store's keys: the write past them fails, and is not counted.
    type Big = FixedStores<{ NAMED_KEYS + 1 }, 4, { NAMED_KEYS + 1 }, 4>;
    let mut s: Store<Flash, { work_size(NAMED_KEYS + 1) }> =
        Store::sized(Flash::holding(vec![0xff; PAGE * 8]), 0..(PAGE * 8) as u32).unwrap();
    let (mut r, _): (FixedReplica<8, 4, 32, Big>, _) = block_on(s.open(
        "pico-1",
        Config::mcu(),
        SNAPSHOTS,
        Instant::ZERO,
        &mut Lcg(1),
    ))
    .unwrap();
    block_on(s.save(&mut r)).unwrap();
    for k in 0..NAMED_KEYS {
        let p = r
            .prepare_named(&format!("c{k}"), LocalOp::Increment(1))
            .unwrap();
        block_on(s.save(&mut r)).unwrap();
        r.commit(p).unwrap();
    }
    // Its record fails, so the write is never committed (a board's persister commits only
    // what was written) and nothing shows it.
    let _never = r
        .prepare_named("one-too-many", LocalOp::Increment(1))
        .unwrap();
    assert_eq!(block_on(s.save(&mut r)), Err(PersistError::NoNamedKey));
    assert_eq!(r.named_value("one-too-many"), None);
    // A counter that has a key still counts.
    let p = r.prepare_named("c3", LocalOp::Increment(1)).unwrap();
    let mut tries = 0;
    while block_on(s.save(&mut r)).is_err() {
        tries += 1;
        assert!(tries < 10, "the store keeps failing");
    }
    r.commit(p).unwrap();
    assert_eq!(r.named_value("c3"), Some(2));
}
