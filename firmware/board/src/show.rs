//! The LED: one blink on every change of the value (a committed press or a merge), driven by
//! the main loop ([`crate::supervise`]).

use embassy_time::Duration;

/// How long the LED stays on for one change.
pub const BLINK: Duration = Duration::from_millis(80);

/// An LED, however a board drives it.
#[allow(async_fn_in_trait)]
pub trait Led {
    /// Turns it on or off.
    async fn set(&mut self, on: bool);
}
