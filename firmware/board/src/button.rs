//! A debounced button: a press is a low level that is still low after the debounce time, and
//! it ends when the level has been high for the debounce time. Wire buttons between the GPIO
//! and ground, with the pull-up on.

use crate::buttons::{Binding, Buttons};
use embassy_futures::select::{select, Either};
use embassy_sync::blocking_mutex::raw::RawMutex;
use embassy_time::{Duration, Timer};
use embedded_hal::digital::InputPin;
use embedded_hal_async::digital::Wait;
use tally_core::named::MapStores;
use tally_core::LocalOp;
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

/// Counts presses on the first (`inc`) and second (`dec`) button into `node` as `buttons`
/// binds them (by default +1 and −1 on the default counter), forever. On a durable node a
/// press counts once its record is in flash (the persistence task commits it).
///
/// Each button has its own loop: a press on one never restarts the other's, so a button held
/// down while the other is pressed still counts once.
pub async fn count<M: RawMutex, const N: usize, const P: usize, const L: usize, Named>(
    node: Node<'_, M, N, P, L, Named>,
    inc: &mut (impl Wait + InputPin),
    dec: &mut (impl Wait + InputPin),
    buttons: &Buttons,
) -> !
where
    Named: MapStores<L>,
{
    match select(
        counting(node, inc, &buttons.first),
        counting(node, dec, &buttons.second),
    )
    .await
    {
        Either::First(never) | Either::Second(never) => never,
    }
}

/// One button's loop: every press adds its binding's step to its counter.
async fn counting<M: RawMutex, const N: usize, const P: usize, const L: usize, Named>(
    node: Node<'_, M, N, P, L, Named>,
    pin: &mut (impl Wait + InputPin),
    binding: &Binding,
) -> !
where
    Named: MapStores<L>,
{
    let op = if binding.step > 0 {
        LocalOp::Increment(1)
    } else {
        LocalOp::Decrement(1)
    };
    loop {
        press(pin).await;
        let r = match &binding.counter {
            None => node.write(op),
            Some(name) => node.write_named(name.as_str(), op),
        };
        match r {
            Ok(Write::Committed(v)) => info!("button: value {}", v as i64),
            Ok(Write::Persisting) => info!("button: persisting"),
            Err(e) => warn!("button: {}", e),
        }
    }
}
