//! The board's main loop: keeps the link up (rejoins after it drops), shows every change on
//! the LED with each LED command bounded in time, and feeds the hardware watchdog — so a stuck
//! main loop, radio or panic resets the board, which then resumes from its store.
//!
//! Persistence never waits for any of this: the store's task commits presses on its own
//! (see [`crate::node`]). The chip-specific parts come in through three small traits.

use crate::buttons::Buttons;
use crate::show::{Led, BLINK};
use embassy_futures::select::{select, select3, Either, Either3};
use embassy_sync::blocking_mutex::raw::RawMutex;
use embassy_time::{with_timeout, Duration, Timer};
use tally_core::named::{CounterName, MapStores};
use tally_embassy::Node;

/// The watchdog's timeout: the longest the main loop may go without feeding it (the RP2040's
/// watchdog goes up to 8.3 s).
pub const WATCHDOG_TIMEOUT: Duration = Duration::from_secs(8);
/// How often the main loop feeds the watchdog when nothing else happens.
pub const FEED_EVERY: Duration = Duration::from_secs(1);
/// The longest one attempt to bring the link up may take (kept below the watchdog's timeout).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(6);
/// The pause between two attempts that failed.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);
/// The longest one LED command may take (on the Pico W it is a command to the radio chip).
pub const LED_TIMEOUT: Duration = Duration::from_millis(250);

/// A hardware watchdog: it resets the chip unless fed within [`WATCHDOG_TIMEOUT`].
pub trait Watchdog {
    /// Restarts its countdown.
    fn feed(&mut self);
}

/// How a board gets onto its network.
#[allow(async_fn_in_trait)]
pub trait Link {
    /// One attempt to bring the link up (join the access point, or wait for the cable); says
    /// whether it is up. Cancelled after [`CONNECT_TIMEOUT`].
    async fn connect(&mut self) -> bool;
    /// Returns once the link is down.
    async fn wait_down(&mut self);
}

/// Where the loop learns of changes of the value.
#[allow(async_fn_in_trait)]
pub trait Changes {
    /// Waits for the next change; returns the value. Cancel-safe.
    async fn changed(&mut self) -> i128;
}

impl<M: RawMutex, const N: usize, const P: usize, const L: usize, Named: MapStores<L>> Changes
    for Node<'_, M, N, P, L, Named>
{
    async fn changed(&mut self) -> i128 {
        self.wait_changed().await
    }
}

/// The changes the LED shows: those of the counters the buttons count on
/// ([`crate::buttons`]) — the default counter's, a named counter's, or both.
pub struct Watched<'a, M: RawMutex, const N: usize, const P: usize, const L: usize, Named>
where
    Named: MapStores<L>,
{
    node: Node<'a, M, N, P, L, Named>,
    default: bool,
    /// Each bound named counter and the value last shown (`None`: not shown).
    named: heapless::Vec<(CounterName, Option<i128>), 2>,
}

impl<'a, M: RawMutex, const N: usize, const P: usize, const L: usize, Named: MapStores<L>>
    Watched<'a, M, N, P, L, Named>
{
    /// Watches the counters `buttons` binds on `node`.
    pub fn new(node: Node<'a, M, N, P, L, Named>, buttons: &Buttons) -> Self {
        let mut named = heapless::Vec::new();
        for name in buttons.named() {
            if named.iter().all(|(n, _)| n != name) {
                let _ = named.push((*name, node.named_value(name.as_str())));
            }
        }
        Self {
            node,
            default: buttons.binds_default(),
            named,
        }
    }
}

impl<M: RawMutex, const N: usize, const P: usize, const L: usize, Named: MapStores<L>> Changes
    for Watched<'_, M, N, P, L, Named>
{
    /// The next change of a bound counter: its value.
    async fn changed(&mut self) -> i128 {
        if self.named.is_empty() {
            return self.node.wait_changed().await;
        }
        loop {
            if self.default {
                let got = select(self.node.wait_changed(), self.node.wait_named_changed()).await;
                if let Either::First(v) = got {
                    return v;
                }
            } else {
                self.node.wait_named_changed().await;
            }
            // Some named counter changed: a bound one, if its value moved.
            for (name, last) in self.named.iter_mut() {
                let now = self.node.named_value(name.as_str());
                if now != *last {
                    *last = now;
                    return now.unwrap_or(0);
                }
            }
        }
    }
}

/// Runs forever: link up (retrying, and showing changes between attempts), then blink on
/// changes until the link drops, then again; the watchdog is fed at least every
/// [`FEED_EVERY`] plus one bounded step.
pub async fn run(
    changes: &mut impl Changes,
    board: &mut (impl Link + Led),
    watchdog: &mut impl Watchdog,
) -> ! {
    let mut up = false;
    loop {
        watchdog.feed();
        if !up {
            up = matches!(
                with_timeout(CONNECT_TIMEOUT, board.connect()).await,
                Ok(true)
            );
            if up {
                info!("link up");
                continue;
            }
            // Offline the board still counts, and shows it: a change made meanwhile (latched
            // by `changed`) blinks before the next attempt.
            warn!("link not up; trying again");
            if let Either::First(v) = select(changes.changed(), Timer::after(RETRY_AFTER)).await {
                info!("value {} (offline)", v as i64);
                blink(board).await;
            }
            continue;
        }
        match select3(
            changes.changed(),
            board.wait_down(),
            Timer::after(FEED_EVERY),
        )
        .await
        {
            Either3::First(v) => {
                info!("value {}", v as i64);
                blink(board).await;
            }
            Either3::Second(()) => {
                warn!("link down; reconnecting");
                up = false;
            }
            Either3::Third(()) => {}
        }
    }
}

/// One blink, each command bounded by [`LED_TIMEOUT`] (a command that does not finish is
/// dropped: the LED may stay as it was, the loop goes on).
async fn blink(led: &mut impl Led) {
    if with_timeout(LED_TIMEOUT, led.set(true)).await.is_err() {
        warn!("LED command timed out");
    }
    Timer::after(BLINK).await;
    if with_timeout(LED_TIMEOUT, led.set(false)).await.is_err() {
        warn!("LED command timed out");
    }
}

/// A board whose link is kept by its driver (Ethernet, or a Wi-Fi task that reconnects by
/// itself): connecting is waiting for the stack's link, and `led` shows changes.
pub struct StackLink<D: Led> {
    /// The LED.
    pub led: D,
    /// The network stack.
    pub stack: embassy_net::Stack<'static>,
}

impl<D: Led> Led for StackLink<D> {
    async fn set(&mut self, on: bool) {
        self.led.set(on).await;
    }
}

impl<D: Led> Link for StackLink<D> {
    /// Waits for the link at most [`RETRY_AFTER`] (cancel-safe), so that changes made
    /// offline are shown within about two seconds.
    async fn connect(&mut self) -> bool {
        with_timeout(RETRY_AFTER, self.stack.wait_link_up())
            .await
            .is_ok()
    }

    async fn wait_down(&mut self) {
        self.stack.wait_link_down().await;
    }
}
