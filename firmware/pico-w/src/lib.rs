//! What the two RP2040 boards share: build-time settings, the heap for zstd, the flash store,
//! and the tasks that run the node, read the buttons and show changes.
//!
//! The binaries differ only in how they reach the network (`tally-pico-w`: CYW43439 Wi-Fi;
//! `tally-w5500-evb-pico`: W5500 Ethernet) and how they light the LED.
#![no_std]

use core::fmt::Write as _;
use defmt::{info, warn};
use embassy_futures::select::{select, Either};
use embassy_rp::clocks::RoscRng;
use embassy_rp::flash::{Async, Flash};
use embassy_rp::gpio::Input;
use embassy_rp::peripherals::FLASH;
use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use embassy_time::{Duration, Timer};
use tally_board::button;
use tally_board::persist::Store;

/// The gossip port (spec default).
pub const PORT: u16 = 9000;
/// Flash size of both boards (W25Q16: 2 MiB).
pub const FLASH_SIZE: usize = 2 * 1024 * 1024;
/// The last 64 KiB of flash hold the node's state (`memory.x` keeps the program out of it).
pub const STORE_RANGE: core::ops::Range<u32> = (FLASH_SIZE as u32 - 64 * 1024)..FLASH_SIZE as u32;
/// Heap of the Pico W for decoding zstd frames from hosts. Decoding the largest message an
/// MCU accepts (8 KiB) peaked at 47 KB in the emulated suite (firmware/qemu, which passes with
/// this heap on the same allocator).
pub const PICO_W_HEAP: usize = 60 * 1024;
/// Heap of the W5500-EVB-Pico, whose RAM budget is smaller: it accepts messages up to 4 KiB
/// ([`w5500_engine`]), whose decoding peaked at 29 KB.
pub const W5500_HEAP: usize = 36 * 1024;
/// The whole known state is written at most this often; the own entry at every change.
pub const STATE_EVERY: Duration = Duration::from_secs(10);

/// Static peers, `a.b.c.d:port,...` (build-time `TALLY_PEERS`).
pub const PEERS: &str = match option_env!("TALLY_PEERS") {
    Some(p) => p,
    None => "",
};
/// Node id (build-time `TALLY_ID`); empty: `rp2040-` and the flash chip's unique id.
pub const ID: &str = match option_env!("TALLY_ID") {
    Some(p) => p,
    None => "",
};

/// The node's memory: engine for 32 entries, 16 peers, 64-byte ids, two accepting sockets.
pub type Tally = tally_embassy::State<NoopRawMutex>;
/// A handle to the running node.
pub type TallyNode = tally_embassy::Node<'static, NoopRawMutex>;
/// The node's runner.
pub type TallyRunner = tally_embassy::Runner<'static, NoopRawMutex>;
/// The on-chip flash, async (DMA).
pub type BoardFlash = Flash<'static, FLASH, Async, FLASH_SIZE>;

#[global_allocator]
static HEAP: embedded_alloc::LlffHeap = embedded_alloc::LlffHeap::empty();

/// Gives the heap its memory (a `static_cell::ConstStaticCell` of the board's size). Call
/// once, first.
pub fn init_heap(memory: &'static mut [core::mem::MaybeUninit<u8>]) {
    // SAFETY: the memory is 'static and exclusively ours; called once, before any allocation.
    unsafe { HEAP.init(memory.as_mut_ptr() as usize, memory.len()) }
}

/// Engine settings of the Pico W: the MCU profile (4 KiB frames, 8 KiB messages).
pub fn pico_w_engine() -> tally_core::Config {
    tally_core::Config::mcu()
}

/// Engine settings of the W5500-EVB-Pico: the MCU profile with messages of at most 4 KiB after
/// decompression (a 32-entry Push of 20-byte ids is about 2.2 KB), so its heap stays small.
pub fn w5500_engine() -> tally_core::Config {
    let mut c = tally_core::Config::mcu();
    c.frame_limits.max_decompressed = 4 * 1024;
    c
}

/// The node id: `TALLY_ID`, else `rp2040-` and the 8-byte unique id of the flash chip (stable
/// across DHCP leases, so the node's entry survives a new address).
pub fn node_id(flash: &mut BoardFlash) -> heapless::String<64> {
    let mut id = heapless::String::new();
    if !ID.is_empty() {
        let _ = id.push_str(ID);
        return id;
    }
    let mut uid = [0u8; 8];
    if flash.blocking_unique_id(&mut uid).is_err() {
        warn!("cannot read the flash unique id");
    }
    let _ = id.push_str("rp2040-");
    for b in uid {
        let _ = write!(id, "{:02x}", b);
    }
    id
}

/// `a.b.c.d:PORT` of the stack's IPv4 address.
pub fn advertise(stack: embassy_net::Stack<'_>) -> heapless::String<24> {
    let mut s = heapless::String::new();
    if let Some(c) = stack.config_v4() {
        let _ = write!(s, "{}:{}", c.address.address(), PORT);
    }
    s
}

/// Runs the node (never returns). The RP2040's ring-oscillator RNG picks gossip partners.
#[embassy_executor::task]
pub async fn tally_task(runner: TallyRunner) -> ! {
    runner.run(&mut RoscRng).await
}

/// The increment and decrement buttons (to ground, pull-ups on).
#[embassy_executor::task]
pub async fn buttons_task(node: TallyNode, mut inc: Input<'static>, mut dec: Input<'static>) -> ! {
    loop {
        let op = select(button::press(&mut inc), button::press(&mut dec)).await;
        let r = match op {
            Either::First(()) => node.increment(1),
            Either::Second(()) => node.decrement(1),
        };
        match r {
            Ok(v) => info!("button: value {}", v as i64),
            Err(e) => warn!("button: {}", e),
        }
    }
}

/// The LED, however a board drives it (used by this package's binaries only).
#[allow(async_fn_in_trait)]
pub trait Led {
    /// Turns it on or off.
    async fn set(&mut self, on: bool);
}

/// Opens the store and merges the saved state into `node`. Call before anything can change
/// the own entry (the buttons), so no local update is made from a stale total.
pub async fn restore(node: &TallyNode, flash: BoardFlash) -> Option<Store<BoardFlash>> {
    let mut store = match Store::new(flash, STORE_RANGE, STATE_EVERY) {
        Ok(s) => s,
        Err(e) => {
            warn!("flash store unusable: {}", e);
            return None;
        }
    };
    match store.restore(node).await {
        Ok(r) => info!(
            "restored {} entries (own entry: {}), value {}",
            r.entries,
            r.own,
            node.value() as i64
        ),
        Err(e) => warn!("nothing restored: {}", e),
    }
    Some(store)
}

/// On every change of value: blinks the LED and persists (own entry at once, the whole state
/// at most every [`STATE_EVERY`]).
pub async fn show_and_persist(
    node: TallyNode,
    led: &mut impl Led,
    mut store: Option<Store<BoardFlash>>,
) -> ! {
    loop {
        match select(node.wait_changed(), Timer::after(STATE_EVERY)).await {
            Either::First(v) => {
                info!("value {}", v as i64);
                led.set(true).await;
                if let Some(store) = store.as_mut() {
                    if let Err(e) = store.on_change(&node).await {
                        warn!("persist: {}", e);
                    }
                }
                Timer::after_millis(80).await;
                led.set(false).await;
            }
            Either::Second(()) => {
                if let Some(store) = store.as_mut().filter(|s| s.state_pending()) {
                    if let Err(e) = store.flush(&node).await {
                        warn!("persist: {}", e);
                    }
                }
            }
        }
    }
}

/// Starts the node on `stack` once it has an address: id, peers from the build, restore,
/// runner. Returns the handle.
pub async fn start_node(
    spawner: embassy_executor::Spawner,
    stack: embassy_net::Stack<'static>,
    id: &str,
    engine: tally_core::Config,
) -> Option<TallyNode> {
    stack.wait_config_up().await;
    let addr = advertise(stack);
    let peers = tally_board::settings::peers(PEERS);
    let mut config = tally_embassy::NodeConfig::new(&addr, PORT)
        .id(id)
        .peers(&peers);
    config.engine = engine;
    static STATE: static_cell::StaticCell<Tally> = static_cell::StaticCell::new();
    match tally_embassy::new(stack, STATE.init(Tally::new()), &config) {
        Ok((node, runner)) => {
            info!(
                "tally node {} at {} ({} peers)",
                id,
                addr.as_str(),
                peers.len()
            );
            match tally_task(runner) {
                Ok(t) => spawner.spawn(t),
                Err(_) => warn!("cannot spawn the node task"),
            }
            Some(node)
        }
        Err(e) => {
            warn!("cannot start the node: {}", e);
            None
        }
    }
}
