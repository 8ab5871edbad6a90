//! `Lever`: a software GPIO input standing in for the board's button.
//!
//! It models a push button wired to ground with a pull-up: the level is high while the button
//! is released (idle) and low while it is pressed. The board program owns the [`Lever`] and
//! reads or awaits it (`embedded-hal`'s `InputPin`, `embedded-hal-async`'s `Wait`) on the
//! executor's thread; another OS thread — the stdin reader — owns a [`LeverHandle`] and sets
//! the level. This module owns no time and no I/O: levels change only when the handle says so,
//! and a waiting task is woken by the thread that changes them.
//!
//! Edges are counted, so an edge wait sees an edge that happens after the wait was created
//! even if the level is back before the task runs again (a quick press and release).

use core::convert::Infallible;
use core::future::{poll_fn, Future};
use core::task::{Poll, Waker};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The shared level, its edge counts and the waiting task.
#[derive(Debug, Default)]
struct State {
    /// Pressed (low).
    low: bool,
    /// Rising edges (releases) so far.
    rises: u64,
    /// Falling edges (presses) so far.
    falls: u64,
    /// The task waiting on the lever, woken on every edge.
    waker: Option<Waker>,
}

/// What a wait waits for; edge waits hold the count seen when the wait was created.
#[derive(Debug, Clone, Copy)]
enum Until {
    High,
    Low,
    Rising(u64),
    Falling(u64),
    AnyEdge(u64),
}

impl State {
    fn reached(&self, until: Until) -> bool {
        match until {
            Until::High => !self.low,
            Until::Low => self.low,
            Until::Rising(n) => self.rises != n,
            Until::Falling(n) => self.falls != n,
            Until::AnyEdge(n) => self.rises.wrapping_add(self.falls) != n,
        }
    }
}

type Shared = Arc<Mutex<State>>;

/// Locks the state; a panic elsewhere while holding the lock does not stop the lever.
fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The input pin the board program reads: high when released, low when pressed.
#[derive(Debug)]
pub struct Lever {
    shared: Shared,
}

/// Sets the level of its [`Lever`] from any thread; cloneable.
#[derive(Debug, Clone)]
pub struct LeverHandle {
    shared: Shared,
}

/// A new lever, released (high), and the handle that moves it.
pub fn lever() -> (Lever, LeverHandle) {
    let shared = Shared::default();
    (
        Lever {
            shared: shared.clone(),
        },
        LeverHandle { shared },
    )
}

impl LeverHandle {
    /// Sets the level: `true` pulls it low (pressed), `false` lets it go high (released).
    /// A change is an edge and wakes the waiting task; setting the current level does nothing.
    pub fn set_low(&self, low: bool) {
        let waker = {
            let mut state = lock(&self.shared);
            if state.low == low {
                return;
            }
            state.low = low;
            if low {
                state.falls = state.falls.wrapping_add(1);
            } else {
                state.rises = state.rises.wrapping_add(1);
            }
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Presses the button (level low).
    pub fn press(&self) {
        self.set_low(true);
    }

    /// Releases the button (level high).
    pub fn release(&self) {
        self.set_low(false);
    }

    #[cfg(test)]
    /// Whether the button is pressed (level low).
    pub fn is_low(&self) -> bool {
        lock(&self.shared).low
    }
}

impl Lever {
    /// A future that completes once `until` is reached; the condition is checked and the
    /// waker stored under the same lock, so no edge is missed between them.
    fn wait(&mut self, until: Until) -> impl Future<Output = Result<(), Infallible>> + '_ {
        poll_fn(move |cx| {
            let mut state = lock(&self.shared);
            if state.reached(until) {
                return Poll::Ready(Ok(()));
            }
            match &mut state.waker {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                slot => *slot = Some(cx.waker().clone()),
            }
            Poll::Pending
        })
    }

    fn counts(&self) -> (u64, u64) {
        let state = lock(&self.shared);
        (state.rises, state.falls)
    }
}

impl embedded_hal::digital::ErrorType for Lever {
    type Error = Infallible;
}

impl embedded_hal::digital::InputPin for Lever {
    fn is_high(&mut self) -> Result<bool, Self::Error> {
        Ok(!lock(&self.shared).low)
    }

    fn is_low(&mut self) -> Result<bool, Self::Error> {
        Ok(lock(&self.shared).low)
    }
}

/// Edge waits count from the moment the future is created, not from its first poll.
impl embedded_hal_async::digital::Wait for Lever {
    fn wait_for_high(&mut self) -> impl Future<Output = Result<(), Self::Error>> {
        self.wait(Until::High)
    }

    fn wait_for_low(&mut self) -> impl Future<Output = Result<(), Self::Error>> {
        self.wait(Until::Low)
    }

    fn wait_for_rising_edge(&mut self) -> impl Future<Output = Result<(), Self::Error>> {
        let (rises, _) = self.counts();
        self.wait(Until::Rising(rises))
    }

    fn wait_for_falling_edge(&mut self) -> impl Future<Output = Result<(), Self::Error>> {
        let (_, falls) = self.counts();
        self.wait(Until::Falling(falls))
    }

    fn wait_for_any_edge(&mut self) -> impl Future<Output = Result<(), Self::Error>> {
        let (rises, falls) = self.counts();
        self.wait(Until::AnyEdge(rises.wrapping_add(falls)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embassy_futures::block_on;
    use embedded_hal::digital::InputPin;
    use embedded_hal_async::digital::Wait;
    use std::pin::pin;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::task::{Context, Wake};
    use std::time::Duration;

    /// A waker that records whether it was woken.
    #[derive(Default)]
    struct Flag(AtomicBool);

    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn levels() {
        let (mut lever, handle) = lever();
        assert_eq!(lever.is_high(), Ok(true));
        assert_eq!(lever.is_low(), Ok(false));
        handle.press();
        assert_eq!(lever.is_low(), Ok(true));
        assert!(handle.is_low());
        let other = handle.clone();
        other.set_low(false);
        assert_eq!(lever.is_high(), Ok(true));
        assert!(!handle.is_low());
    }

    #[test]
    fn wait_for_high_is_immediate_when_high() {
        let (mut lever, _handle) = lever();
        assert_eq!(block_on(lever.wait_for_high()), Ok(()));
    }

    #[test]
    fn wait_for_low_completes_after_a_set_from_another_thread() {
        let (mut lever, handle) = lever();
        let presser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            handle.set_low(true);
            handle
        });
        assert_eq!(block_on(lever.wait_for_low()), Ok(()));
        assert_eq!(lever.is_low(), Ok(true));
        let handle = presser.join().expect("presser thread");
        handle.release();
        assert_eq!(block_on(lever.wait_for_high()), Ok(()));
    }

    #[test]
    fn falling_edge_seen_after_quick_press_and_release_between_polls() {
        let (mut lever, handle) = lever();
        let flag = Arc::new(Flag::default());
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        let mut edge = pin!(lever.wait_for_falling_edge());
        assert!(edge.as_mut().poll(&mut cx).is_pending());
        std::thread::spawn(move || {
            handle.press();
            handle.release();
        })
        .join()
        .expect("presser thread");
        assert!(flag.0.load(Ordering::SeqCst), "not woken");
        assert_eq!(edge.as_mut().poll(&mut cx), Poll::Ready(Ok(())));
    }

    #[test]
    fn edges_count_from_the_call_not_the_first_poll() {
        let (mut lever, handle) = lever();
        // An edge before the call does not count.
        handle.press();
        handle.release();
        let flag = Arc::new(Flag::default());
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        {
            let mut edge = pin!(lever.wait_for_any_edge());
            assert!(edge.as_mut().poll(&mut cx).is_pending());
        }
        // A press and release after the call but before the first poll counts.
        let rising = lever.wait_for_rising_edge();
        handle.press();
        handle.release();
        assert_eq!(block_on(rising), Ok(()));
        // Setting the current level is no edge.
        let mut edge = pin!(lever.wait_for_any_edge());
        handle.release();
        assert!(edge.as_mut().poll(&mut cx).is_pending());
        handle.press();
        assert_eq!(edge.as_mut().poll(&mut cx), Poll::Ready(Ok(())));
    }

    #[test]
    fn poisoned_lock_is_recovered() {
        let (mut lever, handle) = lever();
        let shared = handle.shared.clone();
        let _ = std::thread::spawn(move || {
            let _guard = shared.lock();
            panic!("poison the lock");
        })
        .join();
        handle.press();
        assert_eq!(lever.is_low(), Ok(true));
    }
}
