//! The store on a simulated NOR flash: identity and records round trip, power cuts at every
//! point of a write (the first boot's claim of the range included), unreadable items, the
//! version 1 items of earlier firmware, foreign bytes in the range.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::{boot, press, Flash, Lcg, Rep, PAGE, PAGES};
use embassy_futures::block_on;
use sequential_storage::cache::Cache;
use sequential_storage::map::{MapConfig, MapStorage};
use tally_board::persist::{KEY_IDENTITY, KEY_LOCAL, KEY_STATE, SNAPSHOTS};
use tally_core::store::{decode_item, Record};
use tally_core::{Duration, Incarnation, Instant, LocalOp};

fn entries(r: &Rep) -> Vec<(String, u64, u64)> {
    r.counter()
        .entries()
        .iter()
        .filter(|e| !e.is_zero())
        .map(|e| (e.id.to_string(), e.inc, e.dec))
        .collect()
}

/// Writes raw `items` under their keys, as earlier firmware or a damaged flash left them.
fn raw(flash: Flash, items: &[(u8, &[u8])]) -> Flash {
    let config = MapConfig::try_new(0..(PAGE * PAGES) as u32).unwrap();
    let mut map = MapStorage::<u8, _, _>::new(flash, config, Cache::new_uncached());
    let mut work = [0u8; 512];
    for (key, bytes) in items {
        block_on(map.store_item(&mut work, key, bytes)).unwrap();
    }
    map.destroy().0
}

/// Reads the item under `key` back.
fn item(flash: Flash, key: u8) -> (Flash, Option<Vec<u8>>) {
    let config = MapConfig::try_new(0..(PAGE * PAGES) as u32).unwrap();
    let mut map = MapStorage::<u8, _, _>::new(flash, config, Cache::new_uncached());
    let mut work = [0u8; 4096];
    let got = block_on(map.fetch_item::<&[u8]>(&mut work, &key))
        .unwrap()
        .map(<[u8]>::to_vec);
    (map.destroy().0, got)
}

#[test]
fn identity_presses_and_state_round_trip() {
    let (mut r, mut s, opened) = boot(Flash::new(), "pico-1", 7, Instant::ZERO);
    assert_eq!(opened.incarnation, Incarnation::Fresh);
    assert!(!opened.unreadable);
    let id = r.id().to_string();
    assert!(
        id.starts_with("pico-1#") && id.len() == "pico-1#".len() + 8,
        "{id}"
    );
    for _ in 0..7 {
        press(&mut r, &mut s, LocalOp::Increment(1)).unwrap();
    }
    press(&mut r, &mut s, LocalOp::Decrement(2)).unwrap();
    // State merged from peers (restored here), snapshotted.
    r.restore([("10.0.0.9:9000", 40, 1), ("zz#00000001", 3, 0)].into_iter())
        .unwrap();
    r.request_snapshot().unwrap();
    assert_eq!(block_on(s.save(&mut r)).unwrap(), 1);
    let before = entries(&r);

    let (flash, identity) = item(s.into_flash(), KEY_IDENTITY);
    assert_eq!(
        decode_item(&identity.unwrap()),
        Ok(Record::Identity(id.as_str()))
    );
    let (back, _, opened) = boot(flash, "pico-1", 8, Instant::ZERO);
    assert_eq!(opened.incarnation, Incarnation::Resumed);
    assert_eq!(back.id().as_str(), id);
    assert_eq!(opened.entries, 3 + 1, "snapshot of 3, own totals");
    assert_eq!(entries(&back), before);
    assert_eq!(back.value(), 7 - 2 + 40 - 1 + 3);
    assert_eq!(back.local(), (7, 2));
}

#[test]
fn a_press_counts_only_once_its_record_is_in_flash() {
    let (mut r, mut s, _) = boot(Flash::new(), "pico-1", 1, Instant::ZERO);
    block_on(s.save(&mut r)).unwrap(); // the identity
    let p = r.prepare(LocalOp::Increment(1)).unwrap();
    assert_eq!(r.value(), 0);
    let (flash, local) = item(s.into_flash(), KEY_LOCAL);
    assert_eq!(local, None, "nothing written yet");
    let mut s = common::store(flash);
    block_on(s.save(&mut r)).unwrap();
    r.commit(p).unwrap();
    let (_, local) = item(s.into_flash(), KEY_LOCAL);
    assert!(matches!(
        decode_item(&local.unwrap()),
        Ok(Record::Local { inc: 1, dec: 0, .. })
    ));
}

#[test]
fn a_power_cut_at_any_of_many_points_keeps_every_committed_press() {
    // 30 presses with snapshots between them; a cut after `budget` bytes written or erased.
    let run = |budget: Option<usize>| -> (Flash, u64, String) {
        let mut flash = Flash::new();
        flash.budget = budget;
        let mut s = common::store(flash);
        let mut rng = Lcg(5);
        let opened: Result<(Rep, _), _> = block_on(s.open(
            "pico-1",
            tally_core::Config::mcu(),
            SNAPSHOTS,
            Instant::ZERO,
            &mut rng,
        ));
        // A cut while the first boot claims the range (erase, format marker): nothing counted.
        let Ok((mut r, _)) = opened else {
            return (s.into_flash(), 0, String::new());
        };
        let id = r.id().to_string();
        let mut t = Instant::ZERO;
        let mut committed = 0;
        for i in 1..=30u64 {
            if press(&mut r, &mut s, LocalOp::Increment(1)).is_err() {
                break;
            }
            committed = i;
            t += Duration::from_secs(4);
            r.handle_timeout(t, &mut rng); // a snapshot every few presses
            if block_on(s.save(&mut r)).is_err() {
                break;
            }
        }
        (s.into_flash(), committed, id)
    };
    let total = {
        let (f, committed, _) = run(Some(usize::MAX));
        assert_eq!(committed, 30);
        usize::MAX - f.budget.unwrap()
    };
    assert!(total > 1000, "the run wrote only {total} bytes");
    let mut cuts = 0;
    for budget in (0..total).step_by(37) {
        let (mut flash, committed, id) = run(Some(budget));
        flash.budget = None; // power is back
        let (back, _, opened) = boot(flash, "pico-1", 6, Instant::ZERO);
        let own = back.counter().entry(&id).map_or(0, |e| e.inc);
        assert!(
            own == committed || own == committed + 1,
            "cut at byte {budget}: {committed} committed, {own} restored"
        );
        if committed > 0 {
            assert_eq!(opened.incarnation, Incarnation::Resumed, "cut at {budget}");
            assert_eq!(back.id().as_str(), id);
        }
        cuts += 1;
    }
    assert!(cuts > 30, "{cuts} cuts");
}

#[test]
fn an_unreadable_item_starts_a_fresh_incarnation_and_keeps_what_is_readable() {
    let (mut r, mut s, _) = boot(Flash::new(), "pico-1", 1, Instant::ZERO);
    for _ in 0..4 {
        press(&mut r, &mut s, LocalOp::Increment(1)).unwrap();
    }
    let old = r.id().to_string();
    // The state item is damaged: a version this build does not read.
    let flash = raw(s.into_flash(), &[(KEY_STATE, &[9, 2, 0, 0, 0, 0])]);
    let (mut r, mut s, opened) = boot(flash, "pico-1", 2, Instant::ZERO);
    assert!(opened.unreadable);
    assert_eq!(opened.incarnation, Incarnation::Fresh);
    assert_ne!(r.id().as_str(), old);
    assert_eq!(
        r.counter().entry(&old).map(|e| e.inc),
        Some(4),
        "the old entry is kept as another's"
    );
    assert_eq!(r.value(), 4);
    // New identity and a snapshot of what was read go out first; a press after them.
    press(&mut r, &mut s, LocalOp::Increment(1)).unwrap();
    let (back, _, opened) = boot(s.into_flash(), "pico-1", 3, Instant::ZERO);
    assert_eq!(opened.incarnation, Incarnation::Resumed);
    assert_eq!(back.id(), r.id());
    assert_eq!(back.value(), 5, "old 4 kept through the snapshot, new 1");
}

#[test]
fn a_version_1_store_of_earlier_firmware_keeps_its_value() {
    // Earlier firmware: `[1][count]` then `[k][id][inc LE][dec LE]` per entry, under keys 0
    // (own entry, at every change) and 1 (the state, every 10 s), no identity item.
    fn v1(entries: &[(&str, u64, u64)]) -> Vec<u8> {
        let mut v = vec![1, entries.len() as u8];
        for (id, inc, dec) in entries {
            v.push(id.len() as u8);
            v.extend_from_slice(id.as_bytes());
            v.extend_from_slice(&inc.to_le_bytes());
            v.extend_from_slice(&dec.to_le_bytes());
        }
        v
    }
    let state = v1(&[("10.0.0.9:9000", 40, 1), ("rp2040-aa", 5, 2)]);
    let own = v1(&[("rp2040-aa", 7, 2)]);
    let flash = raw(Flash::new(), &[(KEY_STATE, &state), (KEY_LOCAL, &own)]);
    let (mut r, mut s, opened) = boot(flash, "rp2040-aa", 4, Instant::ZERO);
    assert_eq!(opened.incarnation, Incarnation::Fresh, "no identity stored");
    assert!(!opened.unreadable);
    assert!(r.id().as_str().starts_with("rp2040-aa#"));
    assert_eq!(r.value(), 7 - 2 + 40 - 1, "the old value");
    press(&mut r, &mut s, LocalOp::Increment(1)).unwrap();
    let (back, _, opened) = boot(s.into_flash(), "rp2040-aa", 5, Instant::ZERO);
    assert_eq!(opened.incarnation, Incarnation::Resumed);
    assert_eq!(
        back.value(),
        7 - 2 + 40 - 1 + 1,
        "kept after the own item is rewritten"
    );
}

#[test]
fn a_new_name_counts_under_a_new_entry() {
    let (mut r, mut s, _) = boot(Flash::new(), "door", 1, Instant::ZERO);
    press(&mut r, &mut s, LocalOp::Increment(3)).unwrap();
    let (r2, _, opened) = boot(s.into_flash(), "gate", 2, Instant::ZERO);
    assert_eq!(opened.incarnation, Incarnation::Fresh);
    assert!(r2.id().as_str().starts_with("gate#"));
    assert_eq!(r2.value(), 3);
    assert_eq!(r2.local(), (0, 0));
}

/// Bytes another firmware left in the store's range (a filesystem, IDF's NVS, a half-written
/// page): the store is erased once and used; presses after it count and survive reboots.
#[test]
fn a_store_holding_foreign_bytes_is_erased_once_and_used() {
    let mut rng = Lcg(7);
    let random: Vec<u8> = (0..PAGE * PAGES)
        .map(|_| rand_core::RngCore::next_u32(&mut rng) as u8)
        .collect();
    let zeros = vec![0u8; PAGE * PAGES];
    let mut half_written = vec![0xffu8; PAGE * PAGES];
    for (i, b) in half_written.iter_mut().take(PAGE + 300).enumerate() {
        *b = (i * 7 + 3) as u8;
    }
    for (what, bytes) in [("random", random), ("zeros", zeros), ("half", half_written)] {
        let flash = Flash::holding(bytes);
        let (mut r, mut s, opened) = boot(flash, "pico-1", 1, Instant::ZERO);
        assert!(opened.erased, "{what}: erased");
        for _ in 0..3 {
            press(&mut r, &mut s, LocalOp::Increment(1)).unwrap_or_else(|e| {
                panic!("{what}: a press on a store that held foreign bytes failed: {e}")
            });
        }
        let (mut r2, mut s, opened) = boot(s.into_flash(), "pico-1", 2, Instant::ZERO);
        assert_eq!(opened.incarnation, Incarnation::Resumed, "{what}");
        assert_eq!((r2.id(), r2.value()), (r.id(), 3), "{what}");
        press(&mut r2, &mut s, LocalOp::Decrement(1)).unwrap();
        r = r2;
        let (back, _, opened) = boot(s.into_flash(), "pico-1", 3, Instant::ZERO);
        assert_eq!(opened.incarnation, Incarnation::Resumed, "{what}");
        assert!(!opened.erased, "{what}: erased only once");
        assert_eq!((back.id(), back.value()), (r.id(), 2), "{what}");
    }
}
