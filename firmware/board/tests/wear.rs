//! Flash wear under the boards' write policy ([`SNAPSHOTS`] for the merged state, one item per
//! press for the own totals), measured on the simulated NOR flash over one virtual day of
//! continuous remote changes: the state of a full board (32 entries of 64-byte ids) changes
//! every second, and the board counts presses spread over the day. Erases are counted per
//! page; the figure is the most-erased page. README "Boards" quotes the printed table.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::{Flash, Lcg, PAGE};
use embassy_futures::block_on;
use tally_board::persist::{Store, SNAPSHOTS};
use tally_core::{
    Config, Duration, FixedReplica, Incarnation, Ingress, Instant, LocalOp, PeerSource,
    ReplicaConfig,
};

/// A board's replica: 32 entries, 16 peers, 64-byte ids.
type Board = FixedReplica<32, 16, 64>;

/// Rated erase cycles of the boards' NOR flash (W25Q16 and the ESP32-C3's: 100,000).
const CYCLES: f64 = 100_000.0;

/// Erases of the most-erased page in `hours` of virtual time, scaled to a day, with `pages`
/// pages and `presses` per day. A hub replica (the cluster) holds 31 other entries of 64-byte
/// ids and raises one of them every second; it gossips with the board at the boards' sync
/// interval, so the board merges changes all the time.
fn one_day(pages: usize, presses: u64, hours: u64) -> f64 {
    let range = 0..(pages * PAGE) as u32;
    let mut s = Store::new(Flash::holding(vec![0xff; pages * PAGE]), range.clone()).unwrap();
    let mut rng = Lcg(3);
    // The longest name a 64-byte id allows (name, '#', 8 hex digits).
    let name = "n".repeat(55);
    let (mut board, _): (Board, _) =
        block_on(s.open(&name, Config::mcu(), SNAPSHOTS, Instant::ZERO, &mut rng)).unwrap();
    board.set_address(Some("10.0.0.1:9000")).unwrap();
    let hub_id = tally_core::Identity::new(&"h".repeat(55), 1).unwrap();
    let hub_cfg = ReplicaConfig::volatile(Config::mcu());
    let mut hub = Board::new(hub_id, Incarnation::Resumed, hub_cfg, Instant::ZERO).unwrap();
    hub.set_address(Some("10.0.0.2:9000")).unwrap();
    hub.add_peer("10.0.0.1:9000", PeerSource::Static, Instant::ZERO)
        .unwrap();
    board
        .add_peer("10.0.0.2:9000", PeerSource::Static, Instant::ZERO)
        .unwrap();
    let others: Vec<String> = (0..30).map(|i| format!("{i:0>55}#00000001")).collect();
    let mut values = vec![0u64; others.len()];
    // The first boot's claim of the range (one erase of every page) is not a day's wear.
    let mut s = {
        let mut f = s.into_flash();
        f.erases.iter_mut().for_each(|e| *e = 0);
        Store::new(f, range).unwrap()
    };
    block_on(s.save(&mut board)).unwrap();
    let secs = hours * 3600;
    let press_every = 86_400 / presses.max(1);
    let mut buf = vec![0u8; 8192];
    let mut last = 0;
    for sec in 1..=secs {
        let t = Instant::ZERO + Duration::from_secs(sec);
        // The cluster changes: one other node's entry rises (its own writes, or the hub's).
        let k = (sec % (others.len() as u64 + 1)) as usize;
        if let Some(id) = others.get(k) {
            values[k] += 1;
            hub.restore([(id.as_str(), values[k], 0)].into_iter())
                .unwrap();
        } else {
            let p = hub.prepare(LocalOp::Increment(1)).unwrap();
            hub.commit(p).unwrap();
        }
        if presses > 0 && sec % press_every == 0 {
            let p = board.prepare(LocalOp::Increment(1)).unwrap();
            block_on(s.save(&mut board)).unwrap();
            board.commit(p).unwrap();
        }
        hub.handle_timeout(t, &mut rng);
        board.handle_timeout(t, &mut rng);
        for _ in 0..4 {
            while let Some(tx) = hub.poll_transmit(t, &mut buf) {
                let _ = board.ingest(t, Ingress::Payload(&buf[..tx.len]));
                hub.on_delivered(tx.to.as_str(), t);
            }
            while let Some(tx) = board.poll_transmit(t, &mut buf) {
                let _ = hub.ingest(t, Ingress::Payload(&buf[..tx.len]));
                board.on_delivered(tx.to.as_str(), t);
            }
        }
        block_on(s.save(&mut board)).unwrap();
        if sec == 600 {
            last = board.value();
        }
    }
    assert_eq!(board.counter().entries().len(), 32, "a full board");
    assert!(board.value() > last, "the board kept merging");
    let worst = s.into_flash().erases.into_iter().max().unwrap();
    f64::from(worst) * 24.0 / hours as f64
}

fn years(erases_per_day: f64) -> f64 {
    CYCLES / erases_per_day.max(1.0 / 365.0) / 365.0
}

/// Virtual hours simulated (then scaled to a day): `TALLY_WEAR_HOURS`, 6 by default (the
/// debug build CI runs takes about a minute for all six rows of 24).
fn hours() -> u64 {
    std::env::var("TALLY_WEAR_HOURS")
        .ok()
        .and_then(|h| h.parse().ok())
        .unwrap_or(6)
}

#[test]
fn the_write_policy_keeps_the_flash_for_ten_years() {
    println!("board        pages  presses/day  erases/page/day  years at 100k cycles");
    let mut worst = f64::MAX;
    for (board, pages) in [("esp32c3", 6), ("rp2040", 16)] {
        for presses in [0, 1_000, 10_000] {
            let e = one_day(pages, presses, hours());
            let y = years(e);
            println!("{board:<12} {pages:>5}  {presses:>11}  {e:>15.1}  {y:>20.1}");
            if presses <= 1_000 {
                worst = worst.min(y);
            }
        }
    }
    assert!(
        worst >= 10.0,
        "under 1,000 presses a day and continuous remote changes the flash lasts {worst:.1} years"
    );
}
