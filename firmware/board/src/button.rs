//! A debounced button: a press is a low level that is still low after the debounce time, and
//! it ends when the level has been high for the debounce time. Wire buttons between the GPIO
//! and ground, with the pull-up on.

use embassy_time::{Duration, Timer};
use embedded_hal::digital::InputPin;
use embedded_hal_async::digital::Wait;

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
