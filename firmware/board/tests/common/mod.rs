//! What the board tests share: a NOR flash in RAM that can lose power, a seeded RNG, and an
//! in-process cluster of replicas that exchange the frames they ask to send.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use core::task::Context;
use embassy_futures::block_on;
use embassy_net_driver::{Capabilities, Driver, HardwareAddress, LinkState, RxToken, TxToken};
use embedded_storage_async::nor_flash::{
    ErrorType, MultiwriteNorFlash, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};
use tally_board::persist::{PersistError, Store, SNAPSHOTS};
use tally_core::{
    Config, Duration, FixedReplica, FrameLimits, Ingress, Instant, LocalOp, PeerSource,
};

pub const PAGE: usize = 4096;
pub const PAGES: usize = 4;

/// The replica the tests run: 8 entries, 4 peers, 32-byte ids.
pub type Rep = FixedReplica<8, 4, 32>;

/// RAM flash with NOR semantics (writes only clear bits, erase sets 0xFF) that loses power
/// after a budget of written/erased bytes: the byte in progress and everything after it is
/// not written.
pub struct Flash {
    pub data: Vec<u8>,
    pub budget: Option<usize>,
    /// Erases per page so far.
    pub erases: Vec<u32>,
}

#[derive(Debug)]
pub struct PowerCut;

impl NorFlashError for PowerCut {
    fn kind(&self) -> NorFlashErrorKind {
        NorFlashErrorKind::Other
    }
}

impl Flash {
    pub fn new() -> Self {
        Self::holding(vec![0xff; PAGE * PAGES])
    }
    /// A flash of `bytes.len()` (whole pages) holding `bytes`.
    pub fn holding(bytes: Vec<u8>) -> Self {
        let pages = bytes.len() / PAGE;
        Self {
            data: bytes,
            budget: None,
            erases: vec![0; pages],
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
        for page in (from as usize / PAGE)..(to as usize).div_ceil(PAGE) {
            self.erases[page] += 1;
        }
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

/// A seeded linear congruential generator: deterministic incarnations and gossip partners.
pub struct Lcg(pub u64);

impl rand_core::RngCore for Lcg {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        for b in dst {
            *b = self.next_u32() as u8;
        }
    }
}

pub fn store(flash: Flash) -> Store<Flash> {
    Store::new(flash, 0..(PAGE * PAGES) as u32).unwrap()
}

/// Opens `flash` as a board named `name` would at boot.
pub fn boot(
    flash: Flash,
    name: &str,
    seed: u64,
    now: Instant,
) -> (Rep, Store<Flash>, tally_board::persist::Opened) {
    let mut s = store(flash);
    let (r, opened) =
        block_on(s.open(name, Config::mcu(), SNAPSHOTS, now, &mut Lcg(seed))).unwrap();
    (r, s, opened)
}

/// One press as the board makes it: prepared, its record written, then committed. Returns
/// whether it counted (false: the write failed, e.g. the power was cut).
pub fn press(r: &mut Rep, s: &mut Store<Flash>, op: LocalOp) -> Result<(), PersistError> {
    let p = r.prepare(op).unwrap();
    block_on(s.save(r))?;
    r.commit(p).unwrap();
    Ok(())
}

/// Replicas on virtual time that deliver each other's frames at once.
pub struct Net {
    pub now: Instant,
    pub rng: Lcg,
}

impl Net {
    pub fn new() -> Self {
        Self {
            now: Instant::ZERO,
            rng: Lcg(99),
        }
    }

    /// One step of 100 ms: every node's timers, then every frame until none is left.
    pub fn step(&mut self, nodes: &mut [&mut Rep]) {
        self.now += Duration::from_millis(100);
        let t = self.now;
        for n in nodes.iter_mut() {
            n.handle_timeout(t, &mut self.rng);
        }
        let mut buf = vec![0u8; FrameLimits::MCU.max_frame + 256];
        loop {
            let mut moved = false;
            for i in 0..nodes.len() {
                while let Some(tx) = nodes[i].poll_transmit(t, &mut buf) {
                    moved = true;
                    let frame = buf[..tx.len].to_vec();
                    let to = nodes
                        .iter()
                        .position(|n| n.address().is_some_and(|a| *a == tx.to));
                    match to {
                        Some(j) => {
                            let _ = nodes[j].ingest(t, Ingress::Payload(&frame));
                            nodes[i].on_delivered(tx.to.as_str(), t);
                        }
                        None => nodes[i].on_send_failed(tx.to.as_str(), t),
                    }
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// Steps until every node shows `value` (at most `secs` of virtual time), saving the
    /// board's records (its snapshots) after each step.
    pub fn converge(
        &mut self,
        nodes: &mut [&mut Rep],
        board: Option<&mut Store<Flash>>,
        value: i128,
        secs: u64,
    ) -> bool {
        let mut board = board;
        for _ in 0..secs * 10 {
            self.step(nodes);
            if let Some(s) = board.as_deref_mut() {
                block_on(s.save(&mut *nodes[0])).unwrap();
            }
            if nodes.iter().all(|n| n.value() == value) {
                return true;
            }
        }
        false
    }
}

/// A volatile peer at `addr` that knows `peers`.
pub fn peer(name: &str, incarnation: u32, addr: &str, peers: &[&str]) -> Rep {
    let id = tally_core::Identity::new(name, incarnation).unwrap();
    let cfg = tally_core::ReplicaConfig::volatile(Config::mcu());
    let mut r = Rep::new(id, tally_core::Incarnation::Resumed, cfg, Instant::ZERO).unwrap();
    r.set_address(Some(addr)).unwrap();
    for p in peers {
        r.add_peer(p, PeerSource::Static, Instant::ZERO).unwrap();
    }
    r
}

/// A network interface that never has a link: the node runs offline.
pub struct NoLink;

pub enum Never {}

impl RxToken for Never {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, _: F) -> R {
        match self {}
    }
}

impl TxToken for Never {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, _: usize, _: F) -> R {
        match self {}
    }
}

impl Driver for NoLink {
    type RxToken<'a> = Never;
    type TxToken<'a> = Never;
    fn receive(&mut self, _: &mut Context) -> Option<(Never, Never)> {
        None
    }
    fn transmit(&mut self, _: &mut Context) -> Option<Never> {
        None
    }
    fn link_state(&mut self, _: &mut Context) -> LinkState {
        LinkState::Down
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }
    fn hardware_address(&self) -> HardwareAddress {
        HardwareAddress::Ethernet([2, 0, 0, 0, 0, 1])
    }
}
