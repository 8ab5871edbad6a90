//! Persistence on a simulated NOR flash, including power cuts at every point of a write.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use core::cell::RefCell;
use embassy_futures::block_on;
use embassy_time::Duration;
use embedded_storage_async::nor_flash::{
    ErrorType, MultiwriteNorFlash, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};
use tally_board::persist::{encode, Decoded, PersistError, Replica, Store};
use tally_core::{Config, Entry, FixedEngine, Instant, NodeId};

const PAGE: usize = 4096;
const PAGES: usize = 4;

/// RAM flash with NOR semantics (writes only clear bits, erase sets 0xFF) that loses power
/// after a budget of written/erased bytes: the byte in progress and everything after it is
/// not written.
struct Flash {
    data: Vec<u8>,
    budget: Option<usize>,
}

#[derive(Debug)]
struct PowerCut;

impl NorFlashError for PowerCut {
    fn kind(&self) -> NorFlashErrorKind {
        NorFlashErrorKind::Other
    }
}

impl Flash {
    fn new() -> Self {
        Self {
            data: vec![0xff; PAGE * PAGES],
            budget: None,
        }
    }
    fn spend(&mut self) -> Result<(), PowerCut> {
        match self.budget.as_mut() {
            Some(0) => Err(PowerCut),
            Some(b) => {
                *b -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }
}

impl ErrorType for Flash {
    type Error = PowerCut;
}

impl ReadNorFlash for Flash {
    const READ_SIZE: usize = 1;
    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), PowerCut> {
        let o = offset as usize;
        bytes.copy_from_slice(&self.data[o..o + bytes.len()]);
        Ok(())
    }
    fn capacity(&self) -> usize {
        self.data.len()
    }
}

impl NorFlash for Flash {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = PAGE;
    async fn erase(&mut self, from: u32, to: u32) -> Result<(), PowerCut> {
        for i in from as usize..to as usize {
            self.spend()?;
            self.data[i] = 0xff;
        }
        Ok(())
    }
    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), PowerCut> {
        for (i, b) in bytes.iter().enumerate() {
            self.spend()?;
            self.data[offset as usize + i] &= *b;
        }
        Ok(())
    }
}

impl MultiwriteNorFlash for Flash {}

type Engine = FixedEngine<8, 2, 32>;

/// A counter standing in for a running node.
struct Fake(RefCell<Engine>);

impl Fake {
    fn new(id: &str) -> Self {
        let id = NodeId::new(id).unwrap();
        Self(RefCell::new(
            Engine::new(id, id, Config::mcu(), Instant::ZERO).unwrap(),
        ))
    }
    fn entries(&self) -> Vec<(String, u64, u64)> {
        let e = self.0.borrow();
        e.counter()
            .entries()
            .iter()
            .filter(|e| !e.is_zero())
            .map(|e| (e.id.to_string(), e.inc, e.dec))
            .collect()
    }
}

impl Replica<32> for Fake {
    fn each_entry(&self, f: &mut dyn FnMut(&Entry<32>)) {
        self.0.borrow().counter().entries().iter().for_each(f);
    }
    fn own(&self) -> Option<Entry<32>> {
        Some(self.0.borrow().counter().local_entry())
    }
    fn merge(&self, entries: Decoded<'_>) -> Result<bool, PersistError> {
        self.0
            .borrow_mut()
            .merge_state(entries)
            .map_err(|_| PersistError::Refused)
    }
}

fn store(flash: Flash) -> Store<Flash> {
    Store::new(flash, 0..(PAGE * PAGES) as u32, Duration::from_secs(0)).unwrap()
}

#[test]
fn state_and_own_entry_round_trip() {
    let node = Fake::new("pico-1");
    node.0.borrow_mut().increment(7).unwrap();
    node.0.borrow_mut().decrement(2).unwrap();
    node.0
        .borrow_mut()
        .merge_state([("10.0.0.9:9000", 40, 1), ("zz", 3, 0)].into_iter())
        .unwrap();
    let mut s = store(Flash::new());
    assert!(block_on(s.on_change(&node)).unwrap());
    let flash = s.into_flash();

    let back = Fake::new("pico-1");
    let mut s = store(flash);
    let found = block_on(s.restore(&back)).unwrap();
    assert_eq!(found.entries, 3);
    assert!(found.own);
    assert_eq!(back.entries(), node.entries());
    assert_eq!(back.0.borrow().value(), 7 - 2 + 40 - 1 + 3);
}

#[test]
fn empty_flash_restores_nothing() {
    let node = Fake::new("pico-1");
    let mut s = store(Flash::new());
    assert_eq!(block_on(s.restore(&node)).unwrap().entries, 0);
    assert_eq!(node.0.borrow().value(), 0);
}

#[test]
fn a_power_cut_at_any_of_many_points_keeps_the_last_saved_own_entry() {
    // How many bytes a run of 30 saves writes and erases in all.
    let run = |budget: Option<usize>| -> (Flash, u64) {
        let node = Fake::new("pico-1");
        let mut flash = Flash::new();
        flash.budget = budget;
        let mut s = store(flash);
        let mut saved = 0;
        for i in 1..=30u64 {
            node.0.borrow_mut().increment(1).unwrap();
            if block_on(s.on_change(&node)).is_err() {
                break;
            }
            saved = i;
        }
        (s.into_flash(), saved)
    };
    let total = {
        let (f, saved) = run(Some(usize::MAX));
        assert_eq!(saved, 30);
        usize::MAX - f.budget.unwrap()
    };
    assert!(total > 100, "the run wrote only {total} bytes");
    let mut cuts = 0;
    for budget in (0..total).step_by(13) {
        let (mut flash, saved) = run(Some(budget));
        flash.budget = None; // power is back
        let back = Fake::new("pico-1");
        let mut s = store(flash);
        block_on(s.restore(&back)).unwrap_or_else(|e| panic!("cut at {budget}: {e:?}"));
        let own = back.0.borrow().counter().local_entry().inc;
        assert!(
            own == saved || own == saved + 1,
            "cut at byte {budget}: saved {saved}, restored {own}"
        );
        cuts += 1;
    }
    assert!(cuts > 10);
}

#[test]
fn corrupt_bytes_are_refused() {
    let node = Fake::new("a");
    node.0
        .borrow_mut()
        .merge_state([("b", 1, 2), ("c", 3, 4)].into_iter())
        .unwrap();
    let mut buf = [0u8; 256];
    let entries: Vec<Entry<32>> = node.0.borrow().counter().entries().to_vec();
    let n = encode(entries.iter(), &mut buf).unwrap();
    assert_eq!(Decoded::new(&buf[..n]).unwrap().count(), 2);
    assert_eq!(
        Decoded::new(&buf[..n - 1]).unwrap_err(),
        PersistError::Corrupt
    );
    let mut bad = buf;
    bad[0] = 9;
    assert_eq!(Decoded::new(&bad[..n]).unwrap_err(), PersistError::Corrupt);
    // Swap the order of the two entries: "c" before "b" is refused.
    let mut swapped = vec![1u8, 2];
    swapped.extend_from_slice(&buf[2 + 18..n]);
    swapped.extend_from_slice(&buf[2..2 + 18]);
    assert_eq!(Decoded::new(&swapped).unwrap_err(), PersistError::Corrupt);
    assert_eq!(Decoded::new(&[]).unwrap_err(), PersistError::Corrupt);
}
