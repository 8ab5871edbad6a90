//! The board program: what every board runs once its drivers exist — the Pico W, the
//! W5500-EVB-Pico, the ESP32-C3 and the TAP node alike. A firmware brings up its chip (heap,
//! watchdog, radio or Ethernet driver, the network stack with DHCP) and hands the rest here:
//!
//! 1. the store is opened and the replica restored from it (see [`crate::node::start`]),
//!    before any network exists — the node counts from boot, offline;
//! 2. then, all at once and forever: the node's I/O loops (gossip once DHCP gives an address;
//!    the address it advertises follows every new lease), the persistence task (a press
//!    counts once its record is in flash, so nothing is sent or shown before it is stored),
//!    the buttons, and the main loop ([`crate::supervise::run`]: link kept up, LED, watchdog).
//!
//! All of it runs in the caller's task (no `spawn`: embassy tasks cannot be generic), so the
//! order is the same on every board. Time comes from `embassy-time`; all I/O goes through
//! the drivers the firmware passes in.

use crate::button;
use crate::buttons::Buttons;
use crate::node::{self, Settings};
use crate::persist::Store;
use crate::persist::WORK;
use crate::show::Led;
use crate::supervise::{self, Link, Watchdog, Watched};
use core::ops::Range;
use core::future::Future;
use embassy_futures::select::{select, select4, Either, Either4};
use embassy_net::Stack;
use embassy_sync::blocking_mutex::raw::RawMutex;
use embassy_time::Timer;
use embedded_hal::digital::InputPin;
use embedded_hal_async::digital::Wait;
use embedded_storage_async::nor_flash::NorFlash;
use static_cell::StaticCell;
use tally_core::named::{MapStores, Unnamed};
use tally_embassy::{Node, Persister, State};

/// What a firmware hands the board program: its chip's parts.
pub struct Board<F, I, K, W, R> {
    /// The flash the store lives in, and the store's range in it (empty: no store, the node
    /// is volatile).
    pub flash: F,
    /// The store's byte range in `flash`.
    pub store_range: Range<u32>,
    /// The +1 button (to ground, pull-up on).
    pub inc: I,
    /// The −1 button.
    pub dec: I,
    /// How the board gets onto its network, and its LED.
    pub link: K,
    /// The hardware watchdog, fed by the main loop.
    pub watchdog: W,
    /// Randomness: the node's incarnation, gossip partners.
    pub rng: R,
}

/// The node's memory, in statics the firmware declares (embassy's `StaticCell`s cannot be
/// generic).
pub type Cells<
    F,
    M,
    const N: usize,
    const P: usize,
    const L: usize,
    const A: usize,
    Named = Unnamed,
    const W: usize = WORK,
> = (
    &'static StaticCell<Store<F, W>>,
    &'static StaticCell<State<M, N, P, L, A, Named>>,
);

/// Runs the board program on `stack` (see the module docs); never returns. `started` is
/// handed the node's handle once it exists, before anything runs (the TAP node answers its
/// test's questions through it; a firmware passes `|_| ()`). `discover` makes the board's
/// discovery beside the node's loops — `tally_embassy::mdns::run` where the board has room
/// for it, [`no_discovery`] where it has not. When the node cannot be built at all (a bad
/// name or settings) it stops feeding the watchdog, which resets the board.
pub async fn run<
    F,
    M,
    I,
    K,
    D,
    R,
    Fut,
    const N: usize,
    const P: usize,
    const L: usize,
    const A: usize,
    Named,
    const W: usize,
>(
    stack: Stack<'static>,
    cells: Cells<F, M, N, P, L, A, Named, W>,
    settings: &Settings<'_>,
    mut board: Board<F, I, K, D, R>,
    started: impl FnOnce(Node<'static, M, N, P, L, Named>),
    discover: impl FnOnce(Stack<'static>, Node<'static, M, N, P, L, Named>) -> Fut,
) -> !
where
    Fut: Future,
    F: NorFlash + 'static,
    M: RawMutex + 'static,
    I: Wait + InputPin,
    K: Link + Led,
    D: Watchdog,
    R: rand_core::RngCore,
    Named: MapStores<L> + 'static,
{
    let node = node::start(
        stack,
        cells,
        board.flash,
        board.store_range,
        settings,
        &mut board.rng,
    );
    let Some(parts) = node else {
        warn!("the node did not start; the watchdog resets the board");
        loop {
            Timer::after_secs(3600).await;
        }
    };
    let node = parts.node;
    started(node);
    let buttons = match Buttons::parse(settings.buttons) {
        Ok(b) => b,
        Err(e) => {
            // The firmware checks its setting at compile time; the TAP node's comes from its
            // command line. Either way the buttons then count on the default counter.
            warn!("{}; the buttons count on the default counter", e);
            Buttons::DEFAULT
        }
    };
    // The buttons' counters keep their places: counters merged from peers take only the rest.
    for name in buttons.named() {
        if let Err(e) = node.reserve_named(name.as_str()) {
            warn!("cannot reserve counter {}: {}", name.as_str(), e);
        }
    }
    let discovery = async {
        discover(stack, node).await;
        // Discovery runs forever; should one end, the node goes on without it.
        core::future::pending::<()>().await;
    };
    let outcome = select(
        select4(
            parts.runner.run(&mut board.rng),
            persisting(parts.persist),
            button::count(node, &mut board.inc, &mut board.dec, &buttons),
            supervise::run(
                &mut Watched::new(node, &buttons),
                &mut board.link,
                &mut board.watchdog,
            ),
        ),
        discovery,
    )
    .await;
    match outcome {
        Either::First(
            Either4::First(never)
            | Either4::Second(never)
            | Either4::Third(never)
            | Either4::Fourth(never),
        ) => never,
        Either::Second(()) => loop {
            Timer::after_secs(3600).await;
        },
    }
}

/// The `discover` of a board without LAN discovery: it joins through its static peers
/// (`TALLY_PEERS`) and the peers that reach it.
pub async fn no_discovery<T, U>(_: T, _: U) {
    core::future::pending::<()>().await;
}

/// The persistence task, when the node has a store; a volatile node has none.
async fn persisting<F, M, const N: usize, const P: usize, const L: usize, Named, const W: usize>(
    persist: Option<(
        Persister<'static, M, N, P, L, Named>,
        &'static mut Store<F, W>,
    )>,
) -> !
where
    F: NorFlash,
    M: RawMutex,
    Named: MapStores<L> + 'static,
{
    match persist {
        Some((persister, store)) => store.run(persister).await,
        None => loop {
            core::future::pending::<()>().await;
        },
    }
}
