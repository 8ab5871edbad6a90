//! What the two RP2040 boards share: build-time settings, the heap for zstd, the flash store,
//! the watchdog, and the board program run on them.
//!
//! The binaries differ only in how they reach the network (`tally-pico-w`: CYW43439 Wi-Fi;
//! `tally-w5500-evb-pico`: W5500 Ethernet) and how they light the LED.
#![no_std]

use core::fmt::Write as _;
use defmt::warn;
use embassy_rp::clocks::RoscRng;
use embassy_rp::flash::{Async, Flash};
use embassy_rp::gpio::Input;
use embassy_rp::peripherals::{FLASH, WATCHDOG};
use embassy_rp::Peri;
use embassy_sync::blocking_mutex::raw::NoopRawMutex;
#[cfg(feature = "mdns")]
use static_cell::ConstStaticCell;
use static_cell::StaticCell;
use tally_board::node;
use tally_board::persist::{work_size, Store};
use tally_board::settings::{self, BuildKey};
use tally_core::named::FixedStores;

/// The gossip port (spec default).
pub const PORT: u16 = 9000;
/// Flash size of both boards (W25Q16: 2 MiB).
pub const FLASH_SIZE: usize = 2 * 1024 * 1024;
/// The last 64 KiB of flash hold the node's state (`memory.x` keeps the program out of it).
pub const STORE_RANGE: core::ops::Range<u32> = (FLASH_SIZE as u32 - 64 * 1024)..FLASH_SIZE as u32;
/// Heap of the Pico W for decoding zstd frames from hosts. Decoding the largest message it
/// accepts ([`tally_core::FrameLimits::PICO_W`], 8 KiB) peaked at 48.8 KB in the emulated
/// suite (firmware/qemu, which checks every board's limits against its heap on the same
/// allocator).
pub const PICO_W_HEAP: usize = 60 * 1024;
/// Heap of the W5500-EVB-Pico, whose RAM budget is smaller: it accepts messages and windows
/// up to 4 KiB ([`tally_core::FrameLimits::W5500`]), whose decoding peaked at 29.8 KB.
pub const W5500_HEAP: usize = 36 * 1024;
// The heaps the emulated suite and the zstd fuzz target check are these ones.
const _: () = assert!(tally_core::frame::BOARDS[0].zstd_heap == PICO_W_HEAP);
const _: () = assert!(tally_core::frame::BOARDS[1].zstd_heap == W5500_HEAP);

/// Static peers, `a.b.c.d:port,...` (build-time `TALLY_PEERS`).
pub const PEERS: &str = match option_env!("TALLY_PEERS") {
    Some(p) => p,
    None => "",
};
/// Node name (build-time `TALLY_ID`); empty: `rp2040-` and the flash chip's unique id.
pub const ID: &str = match option_env!("TALLY_ID") {
    Some(p) => p,
    None => "",
};

/// Cluster key (build-time `TALLY_CLUSTER_KEY`, 32–64 hex digits), parsed when this crate is
/// compiled: a bad key fails the build. Unset or empty: frames are not authenticated.
pub const CLUSTER_KEY: Option<BuildKey> = settings::build_key(option_env!("TALLY_CLUSTER_KEY"));

/// Named counters the node holds (build-time `TALLY_COUNTERS`). The default fits the Pico
/// W's RAM budget (README, "Boards"); more cost about 0.5 KB each with their cells.
pub const COUNTERS: usize = settings::build_number(option_env!("TALLY_COUNTERS"), 2);
/// Cells of the named counters, one per counter and node that wrote it (build-time
/// `TALLY_COUNTER_CELLS`; default: 3 per counter). Each costs 40 B in the map and 2 × 162 B in
/// the store's buffers.
pub const CELLS: usize = settings::build_number(option_env!("TALLY_COUNTER_CELLS"), 3 * COUNTERS);
/// Entry ids of the named counters' writers, shared by all of them.
pub const COUNTER_IDS: usize = 4;
const _: () = assert!(COUNTERS <= tally_board::persist::NAMED_KEYS);
/// The counters each button counts on (build-time `TALLY_BUTTONS`, see
/// [`tally_board::buttons`]); checked when this crate is compiled.
pub const BUTTONS: &str = tally_board::buttons::checked(option_env!("TALLY_BUTTONS"));

/// The named counters' stores.
pub type Counters = FixedStores<COUNTERS, COUNTER_IDS, CELLS, 2>;
/// The node's memory: replica for 32 entries, 16 peers, 64-byte ids and the named counters,
/// two accepting sockets.
pub type Tally = tally_embassy::State<NoopRawMutex, 32, 16, 64, 2, Counters>;
/// The handle of a running [`Tally`] node.
pub type TallyNode = tally_embassy::Node<'static, NoopRawMutex, 32, 16, 64, Counters>;
/// The on-chip flash, async (DMA).
pub type BoardFlash = Flash<'static, FLASH, Async, FLASH_SIZE>;

/// The RP2040's hardware watchdog, fed by the main loop ([`tally_board::supervise`]). Started
/// first thing at boot, so a boot that hangs (radio, Ethernet chip, flash) resets too; paused
/// while a debugger halts the core.
pub struct BoardWatchdog(embassy_rp::watchdog::Watchdog);

impl BoardWatchdog {
    /// Starts it with [`WATCHDOG_TIMEOUT`](tally_board::supervise::WATCHDOG_TIMEOUT).
    pub fn start(peripheral: Peri<'static, WATCHDOG>) -> Self {
        let mut w = embassy_rp::watchdog::Watchdog::new(peripheral);
        w.pause_on_debug(true);
        w.start(tally_board::supervise::WATCHDOG_TIMEOUT);
        Self(w)
    }
}

impl tally_board::supervise::Watchdog for BoardWatchdog {
    fn feed(&mut self) {
        self.0.feed(tally_board::supervise::WATCHDOG_TIMEOUT);
    }
}

/// A panic ends in a HardFault (`panic-probe` executes `udf`, after logging the message with
/// the `panic-messages` feature); instead of halting, the chip resets at once and resumes from
/// its store.
#[cortex_m_rt::exception]
unsafe fn HardFault(_frame: &cortex_m_rt::ExceptionFrame) -> ! {
    cortex_m::peripheral::SCB::sys_reset()
}

#[global_allocator]
static HEAP: embedded_alloc::LlffHeap = embedded_alloc::LlffHeap::empty();

/// Gives the heap its memory (a `static_cell::ConstStaticCell` of the board's size). Call
/// once, first.
pub fn init_heap(memory: &'static mut [core::mem::MaybeUninit<u8>]) {
    // SAFETY: the memory is 'static and exclusively ours; called once, before any allocation.
    unsafe { HEAP.init(memory.as_mut_ptr() as usize, memory.len()) }
}

/// Engine settings of the Pico W: the MCU profile with its frame limits (4 KiB frames, 8 KiB
/// messages and window).
pub fn pico_w_engine() -> tally_core::Config {
    tally_core::Config::mcu().with_frame_limits(tally_core::FrameLimits::PICO_W)
}

/// Engine settings of the W5500-EVB-Pico: the MCU profile with messages and windows of at
/// most 4 KiB (a 32-entry Push of 20-byte ids is about 2.2 KB), so its heap stays small.
pub fn w5500_engine() -> tally_core::Config {
    tally_core::Config::mcu().with_frame_limits(tally_core::FrameLimits::W5500)
}

/// The 8-byte unique id of the flash chip (zeros, with a warning, when it cannot be read).
pub fn unique_id(flash: &mut BoardFlash) -> [u8; 8] {
    let mut uid = [0u8; 8];
    if flash.blocking_unique_id(&mut uid).is_err() {
        warn!("cannot read the flash unique id");
    }
    uid
}

/// The node name: `TALLY_ID`, else `rp2040-` and the flash chip's unique id ([`unique_id`]).
/// The node counts under `name#incarnation`, the incarnation kept in flash.
pub fn node_name(uid: &[u8; 8]) -> heapless::String<64> {
    let mut name = heapless::String::new();
    if !ID.is_empty() {
        let _ = name.push_str(ID);
        return name;
    }
    let _ = name.push_str("rp2040-");
    for &b in uid {
        let _ = write!(name, "{:02x}", b);
    }
    name
}

/// Runs the board program ([`tally_board::program`]) on `stack` with the flash store and the
/// buttons: it counts from boot, before the network is up, and gossips once DHCP gives an
/// address; `link` keeps the network up and lights the LED; the watchdog is fed from its main
/// loop; `discover` is the board's discovery (`mdns` on a Pico W built with the feature
/// `mdns`, else none). Never returns. The RP2040's
/// ring-oscillator RNG makes the incarnation and picks gossip partners.
pub async fn run<Fut: core::future::Future>(
    stack: embassy_net::Stack<'static>,
    flash: BoardFlash,
    name: &str,
    engine: tally_core::Config,
    buttons: (Input<'static>, Input<'static>),
    link: impl tally_board::supervise::Link + tally_board::show::Led,
    watchdog: BoardWatchdog,
    discover: impl FnOnce(embassy_net::Stack<'static>, TallyNode) -> Fut,
) -> ! {
    static STORE: StaticCell<Store<BoardFlash, { work_size(CELLS) }>> = StaticCell::new();
    static STATE: StaticCell<Tally> = StaticCell::new();
    let Some(engine) = settings::keyed(engine, CLUSTER_KEY) else {
        // Not fed: the watchdog resets the board (a bad key fails the build, so this is not
        // reached in practice).
        loop {
            embassy_time::Timer::after_secs(3600).await;
        }
    };
    let settings = node::Settings {
        name,
        engine,
        port: PORT,
        peers: PEERS,
        buttons: BUTTONS,
    };
    let board = tally_board::program::Board {
        flash,
        store_range: STORE_RANGE,
        inc: buttons.0,
        dec: buttons.1,
        link,
        watchdog,
        rng: RoscRng,
    };
    tally_board::program::run(stack, (&STORE, &STATE), &settings, board, |_| (), discover).await
}

/// Sockets of the stack: two accepting, one sending, the datagram socket, DHCP, and mDNS
/// with the feature `mdns`.
pub const SOCKETS: usize = 5 + cfg!(feature = "mdns") as usize;

/// LAN discovery by mDNS/DNS-SD (`tally_embassy::mdns`): its socket's buffers live here.
#[cfg(feature = "mdns")]
pub async fn mdns(stack: embassy_net::Stack<'static>, node: TallyNode) {
    static BUFFERS: ConstStaticCell<tally_embassy::mdns::MdnsBuffers> =
        ConstStaticCell::new(tally_embassy::mdns::MdnsBuffers::new());
    tally_embassy::mdns::run(stack, node, BUFFERS.take()).await
}
