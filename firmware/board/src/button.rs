//! A debounced button: a press is a low level that is still low after the debounce time, and
//! it ends when the level has been high for the debounce time. Wire buttons between the GPIO
//! and ground, with the pull-up on.

use embassy_futures::select::{select, Either};
use embassy_sync::blocking_mutex::raw::RawMutex;
use embassy_time::{Duration, Timer};
use embedded_hal::digital::InputPin;
use embedded_hal_async::digital::Wait;
use tally_embassy::{Node, Write};

/// How long a level must hold to count (contact bounce lasts a few milliseconds).
pub const DEBOUNCE: Duration = Duration::from_millis(20);

/// Waits for one debounced press (and its release, so a held button counts once).
pub async fn press<P: Wait + InputPin>(pin: &mut P) {
    loop {
        if pin.wait_for_low().await.is_err() {
            Timer::after(DEBOUNCE).await;
            continue;
        }
        Timer::after(DEBOUNCE).await;
        if pin.is_low().unwrap_or(false) {
            break;
        }
    }
    loop {
        let _ = pin.wait_for_high().await;
        Timer::after(DEBOUNCE).await;
        if pin.is_high().unwrap_or(true) {
            return;
        }
    }
}

/// Counts presses on `inc` (+1) and `dec` (−1) into `node`, forever. On a durable node a
/// press counts once its record is in flash (the persistence task commits it).
pub async fn count<M: RawMutex, const N: usize, const P: usize, const L: usize>(
    node: Node<'_, M, N, P, L>,
    inc: &mut (impl Wait + InputPin),
    dec: &mut (impl Wait + InputPin),
) -> ! {
    loop {
        let r = match select(press(inc), press(dec)).await {
            Either::First(()) => node.increment(1),
            Either::Second(()) => node.decrement(1),
        };
        match r {
            Ok(Write::Committed(v)) => info!("button: value {}", v as i64),
            Ok(Write::Persisting) => info!("button: persisting"),
            Err(e) => warn!("button: {}", e),
        }
    }
}
