//! The board program ([`tally_board::program::run`]) as a firmware runs it, in real time
//! (embassy-time's std driver), on a board whose link never comes up: it boots from flash and
//! counts button presses offline (a button held while the other is pressed counts once, a
//! bounce shorter than the debounce time not at all), shows them on the LED, keeps feeding the
//! watchdog, and a reboot finds every press. With a flash that refuses writes nothing is shown
//! until the press is stored.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{boot, Flash, Lcg, NoLink, PowerCut};
use core::cell::{Cell, RefCell};
use core::convert::Infallible;
use embassy_futures::block_on;
use embassy_futures::select::{select, Either};
use embassy_net::StackResources;
use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use embassy_time::{Duration, Instant, Timer};
use embedded_storage_async::nor_flash::{ErrorType, NorFlash, ReadNorFlash};
use static_cell::StaticCell;
use std::rc::Rc;
use tally_board::node::Settings;
use tally_board::persist::Store;
use tally_board::program::{self, Board};
use tally_board::show::Led;
use tally_board::supervise::{Link, Watchdog, WATCHDOG_TIMEOUT};
use tally_core::Config;
use tally_embassy::State;

type S = State<NoopRawMutex, 8, 4, 32, 1>;

/// A flash the test keeps a hand on while the program owns it.
#[derive(Clone)]
struct Held(Rc<RefCell<Flash>>);

impl ErrorType for Held {
    type Error = PowerCut;
}

impl ReadNorFlash for Held {
    const READ_SIZE: usize = 1;
    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), PowerCut> {
        block_on(self.0.borrow_mut().read(offset, bytes))
    }
    fn capacity(&self) -> usize {
        self.0.borrow().capacity()
    }
}

impl NorFlash for Held {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = common::PAGE;
    async fn erase(&mut self, from: u32, to: u32) -> Result<(), PowerCut> {
        block_on(self.0.borrow_mut().erase(from, to))
    }
    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), PowerCut> {
        block_on(self.0.borrow_mut().write(offset, bytes))
    }
}

/// A button to ground: `true` while pressed (the pin reads low).
struct Button(Rc<Cell<bool>>);

impl embedded_hal::digital::ErrorType for Button {
    type Error = Infallible;
}

impl embedded_hal::digital::InputPin for Button {
    fn is_high(&mut self) -> Result<bool, Infallible> {
        Ok(!self.0.get())
    }
    fn is_low(&mut self) -> Result<bool, Infallible> {
        Ok(self.0.get())
    }
}

impl Button {
    async fn until(&self, low: bool) -> Result<(), Infallible> {
        while self.0.get() != low {
            Timer::after_millis(1).await;
        }
        Ok(())
    }
}

impl embedded_hal_async::digital::Wait for Button {
    async fn wait_for_high(&mut self) -> Result<(), Infallible> {
        self.until(false).await
    }
    async fn wait_for_low(&mut self) -> Result<(), Infallible> {
        self.until(true).await
    }
    async fn wait_for_rising_edge(&mut self) -> Result<(), Infallible> {
        self.until(true).await?;
        self.until(false).await
    }
    async fn wait_for_falling_edge(&mut self) -> Result<(), Infallible> {
        self.until(false).await?;
        self.until(true).await
    }
    async fn wait_for_any_edge(&mut self) -> Result<(), Infallible> {
        let now = self.0.get();
        self.until(!now).await
    }
}

/// No access point answers; the LED counts the times it was lit.
struct Offline<'a> {
    lit: &'a Cell<u32>,
}

impl Link for Offline<'_> {
    async fn connect(&mut self) -> bool {
        Timer::after_millis(200).await;
        false
    }
    async fn wait_down(&mut self) {}
}

impl Led for Offline<'_> {
    async fn set(&mut self, on: bool) {
        if on {
            self.lit.set(self.lit.get() + 1);
        }
    }
}

struct Dog<'a>(&'a RefCell<Vec<Instant>>);

impl Watchdog for Dog<'_> {
    fn feed(&mut self) {
        self.0.borrow_mut().push(Instant::now());
    }
}

/// One press of `button`: `held` long, then released for as long.
async fn tap(button: &Cell<bool>, held: u64) {
    button.set(true);
    Timer::after_millis(held).await;
    button.set(false);
    Timer::after_millis(held).await;
}

async fn within(mut done: impl FnMut() -> bool, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        Timer::after_millis(10).await;
    }
    true
}

/// Runs the program on `flash` with the buttons, LED and watchdog given, beside `script`;
/// returns when the script does.
fn run_board(
    flash: &Held,
    buttons: (&Rc<Cell<bool>>, &Rc<Cell<bool>>),
    lit: &Cell<u32>,
    feeds: &RefCell<Vec<Instant>>,
    script: impl core::future::Future<Output = ()>,
) {
    let cells: (&'static StaticCell<Store<Held>>, &'static StaticCell<S>) = (
        Box::leak(Box::new(StaticCell::new())),
        Box::leak(Box::new(StaticCell::new())),
    );
    let resources: &'static mut StackResources<3> = Box::leak(Box::new(StackResources::new()));
    let (stack, _net) = embassy_net::new(NoLink, embassy_net::Config::default(), resources, 1);
    let settings = Settings {
        name: "pico",
        engine: Config::mcu(),
        port: 9000,
        peers: "",
        buttons: "",
    };
    let capacity = flash.0.borrow().data.len() as u32;
    let board = Board {
        flash: flash.clone(),
        store_range: 0..capacity,
        inc: Button(buttons.0.clone()),
        dec: Button(buttons.1.clone()),
        link: Offline { lit },
        watchdog: Dog(feeds),
        rng: Lcg(5),
    };
    let program = program::run(stack, cells, &settings, board, |_| (), program::no_discovery);
    match block_on(select(program, script)) {
        Either::First(never) => match never {},
        Either::Second(()) => {}
    }
}

/// The value a board booting from `flash` restores.
fn restored(flash: &Held) -> i128 {
    let data = flash.0.borrow().data.clone();
    let (replica, _, _) = boot(Flash::holding(data), "pico", 9, tally_embassy::now());
    replica.value()
}

#[test]
fn the_board_counts_offline_from_boot_and_a_reboot_finds_every_press() {
    let flash = Held(Rc::new(RefCell::new(Flash::new())));
    let (inc, dec) = (Rc::new(Cell::new(false)), Rc::new(Cell::new(false)));
    let (lit, feeds) = (Cell::new(0), RefCell::new(Vec::new()));
    let started = Instant::now();
    run_board(&flash, (&inc, &dec), &lit, &feeds, async {
        Timer::after_millis(100).await;
        for _ in 0..3 {
            tap(&inc, 40).await;
        }
        // +1 held down while −1 is pressed twice: +1 once, −1 twice.
        inc.set(true);
        Timer::after_millis(60).await;
        tap(&dec, 40).await;
        tap(&dec, 40).await;
        inc.set(false);
        Timer::after_millis(60).await;
        // Contact bounce (5 ms, under the 20 ms debounce): no press.
        tap(&dec, 5).await;
        Timer::after_millis(60).await;
        assert!(
            within(|| lit.get() >= 1, Duration::from_secs(3)).await,
            "presses made offline are shown"
        );
        // The watchdog goes on being fed while nothing happens.
        Timer::after_secs(2).await;
    });
    assert_eq!(restored(&flash), 3 + 1 - 2, "every press, once, in flash");
    let mut last = started;
    for f in feeds.borrow().iter() {
        assert!(*f - last < WATCHDOG_TIMEOUT, "the watchdog went unfed");
        last = *f;
    }
    assert!(Instant::now() - last < Duration::from_secs(2));
    assert!(feeds.borrow().len() >= 4, "{} feeds", feeds.borrow().len());

    // A reboot: the same board resumes from its flash and goes on counting.
    let lit_before = lit.get();
    run_board(&flash, (&inc, &dec), &lit, &feeds, async {
        Timer::after_millis(100).await;
        tap(&inc, 40).await;
        assert!(within(|| lit.get() > lit_before, Duration::from_secs(3)).await);
        Timer::after_millis(200).await;
    });
    assert_eq!(restored(&flash), 3, "resumed, then one more");
}

#[test]
fn a_press_is_not_shown_before_it_is_in_flash() {
    let flash = Held(Rc::new(RefCell::new(Flash::new())));
    let (inc, dec) = (Rc::new(Cell::new(false)), Rc::new(Cell::new(false)));
    let (lit, feeds) = (Cell::new(0), RefCell::new(Vec::new()));
    run_board(&flash, (&inc, &dec), &lit, &feeds, async {
        // Booted (identity written); from now on every flash write fails.
        Timer::after_millis(300).await;
        flash.0.borrow_mut().budget = Some(0);
        tap(&inc, 40).await;
        tap(&inc, 40).await;
        assert!(
            !within(|| lit.get() > 0, Duration::from_secs(3)).await,
            "shown, though not stored"
        );
        // The flash works again: the store's retry writes them, and then they show.
        flash.0.borrow_mut().budget = None;
        assert!(
            within(|| lit.get() > 0, Duration::from_secs(4)).await,
            "stored, so shown"
        );
    });
    assert_eq!(restored(&flash), 2);
}
