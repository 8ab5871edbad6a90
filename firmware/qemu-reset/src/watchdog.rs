//! The machine's watchdog: the CMSDK APB watchdog of the MPS2 (QEMU `cmsdk-apb-watchdog` at
//! 0x4000_8000, clocked at 25 MHz). Its counter counts down from LOAD; at zero it raises its
//! interrupt and starts again, and at zero again with the interrupt still raised it resets the
//! machine. Feeding clears the interrupt and reloads the counter. So it resets after two
//! periods without a feed: LOAD is half the timeout.

use embassy_time::Duration;

const BASE: usize = 0x4000_8000;
const LOAD: usize = 0x000;
const CONTROL: usize = 0x008;
const INTCLR: usize = 0x00c;
const LOCK: usize = 0xc00;
const UNLOCK_KEY: u32 = 0x1acc_e551;
/// Interrupt and reset enabled.
const INTEN_RESEN: u32 = 0b11;
const CLOCK_HZ: u64 = 25_000_000;

/// The watchdog, running.
pub struct CmsdkWatchdog(());

fn write(offset: usize, value: u32) {
    // SAFETY: BASE + offset is one of the watchdog's registers (its MMIO page on the MPS2),
    // written as a 32-bit word as the CMSDK requires; nothing else in the program drives it.
    unsafe { core::ptr::write_volatile((BASE + offset) as *mut u32, value) }
}

impl CmsdkWatchdog {
    /// Starts it: the machine resets unless fed within `timeout`.
    pub fn start(timeout: Duration) -> Self {
        let load = (timeout.as_millis() * CLOCK_HZ / 1000 / 2).min(u64::from(u32::MAX));
        write(LOCK, UNLOCK_KEY);
        write(LOAD, load as u32);
        write(CONTROL, INTEN_RESEN);
        write(LOCK, 0);
        Self(())
    }
}

impl tally_board::supervise::Watchdog for CmsdkWatchdog {
    fn feed(&mut self) {
        write(LOCK, UNLOCK_KEY);
        write(INTCLR, 1);
        write(LOCK, 0);
    }
}
