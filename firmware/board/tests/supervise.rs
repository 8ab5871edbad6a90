//! The board's main loop against scripted parts, in real time (embassy-time's std driver): the
//! watchdog is fed while the access point does not answer and while the LED hangs, a dropped
//! link is joined again, and changes keep being shown after an LED command timed out.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use core::cell::{Cell, RefCell};
use embassy_futures::block_on;
use embassy_futures::select::{select, Either};
use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use embassy_sync::signal::Signal;
use embassy_time::{Duration, Instant, Timer};
use tally_board::show::Led;
use tally_board::supervise::{self, Changes, Link, Watchdog, CONNECT_TIMEOUT, WATCHDOG_TIMEOUT};

struct Dog<'a>(&'a RefCell<Vec<Instant>>);

impl Watchdog for Dog<'_> {
    fn feed(&mut self) {
        self.0.borrow_mut().push(Instant::now());
    }
}

/// The first `hanging` connect attempts never finish (an access point that does not answer);
/// later ones succeed. `down` drops the link. The LED's commands hang while `led_hangs`.
struct Board<'a> {
    connects: &'a Cell<u32>,
    hanging: u32,
    down: &'a Signal<NoopRawMutex, ()>,
    led_hangs: &'a Cell<bool>,
    led_sets: &'a Cell<u32>,
}

impl Link for Board<'_> {
    async fn connect(&mut self) -> bool {
        self.connects.set(self.connects.get() + 1);
        if self.connects.get() <= self.hanging {
            core::future::pending::<()>().await;
        }
        true
    }
    async fn wait_down(&mut self) {
        self.down.wait().await
    }
}

impl Led for Board<'_> {
    async fn set(&mut self, _on: bool) {
        if self.led_hangs.get() {
            core::future::pending::<()>().await;
        }
        self.led_sets.set(self.led_sets.get() + 1);
    }
}

struct Values<'a>(&'a Signal<NoopRawMutex, i128>, &'a Cell<u32>);

impl Changes for Values<'_> {
    async fn changed(&mut self) -> i128 {
        let v = self.0.wait().await;
        self.1.set(self.1.get() + 1);
        v
    }
}

async fn until(mut done: impl FnMut() -> bool, within: Duration) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "not within {within:?}");
        Timer::after_millis(10).await;
    }
}

#[test]
fn the_loop_rejoins_bounds_the_led_and_keeps_feeding_the_watchdog() {
    let feeds = RefCell::new(Vec::new());
    let (connects, led_sets, shown) = (Cell::new(0), Cell::new(0), Cell::new(0));
    let led_hangs = Cell::new(true);
    let down = Signal::new();
    let values = Signal::new();
    let mut board = Board {
        connects: &connects,
        hanging: 1,
        down: &down,
        led_hangs: &led_hangs,
        led_sets: &led_sets,
    };
    let script = async {
        // The first join hangs and is given up; the second succeeds.
        until(|| connects.get() == 2, CONNECT_TIMEOUT * 2).await;
        // A change while the LED hangs: shown, the LED commands time out, the loop goes on.
        values.signal(1);
        until(|| shown.get() == 1, Duration::from_secs(2)).await;
        Timer::after_millis(800).await;
        led_hangs.set(false);
        values.signal(2);
        until(
            || shown.get() == 2 && led_sets.get() == 2,
            Duration::from_secs(2),
        )
        .await;
        // The link drops: the loop joins again.
        down.signal(());
        until(|| connects.get() == 3, Duration::from_secs(2)).await;
        values.signal(3);
        until(
            || shown.get() == 3 && led_sets.get() == 4,
            Duration::from_secs(2),
        )
        .await;
        Timer::after_millis(1500).await;
    };
    let (mut changes, mut dog) = (Values(&values, &shown), Dog(&feeds));
    let run = supervise::run(&mut changes, &mut board, &mut dog);
    let started = Instant::now();
    match block_on(select(run, script)) {
        Either::First(never) => match never {},
        Either::Second(()) => {}
    }
    let feeds = feeds.into_inner();
    let mut last = started;
    let mut longest = Duration::from_ticks(0);
    for f in &feeds {
        longest = longest.max(*f - last);
        last = *f;
    }
    longest = longest.max(Instant::now() - last);
    assert!(
        longest < WATCHDOG_TIMEOUT,
        "the watchdog went {longest:?} unfed ({} feeds)",
        feeds.len()
    );
    assert!(
        longest >= CONNECT_TIMEOUT,
        "the hanging join was waited for: {longest:?}"
    );
    assert!(feeds.len() >= 5, "fed while idle: {} feeds", feeds.len());
}
