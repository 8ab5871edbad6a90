//! The LED: one blink on every change of the value (a committed press or a merge).

use embassy_sync::blocking_mutex::raw::RawMutex;
use embassy_time::{Duration, Timer};
use tally_embassy::Node;

/// How long the LED stays on for one change.
pub const BLINK: Duration = Duration::from_millis(80);

/// An LED, however a board drives it.
#[allow(async_fn_in_trait)]
pub trait Led {
    /// Turns it on or off.
    async fn set(&mut self, on: bool);
}

/// Blinks `led` on every change of `node`'s value, forever.
pub async fn blink_on_change<M: RawMutex, const N: usize, const P: usize, const L: usize>(
    node: Node<'_, M, N, P, L>,
    led: &mut impl Led,
) -> ! {
    loop {
        let v = node.wait_changed().await;
        info!("value {}", v as i64);
        led.set(true).await;
        Timer::after(BLINK).await;
        led.set(false).await;
    }
}
