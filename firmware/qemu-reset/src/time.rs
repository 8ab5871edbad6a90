//! embassy-time on the machine's SysTick: a 1 kHz tick counted in its interrupt. The program
//! polls its futures in a loop (`embassy_futures::block_on`), so a timer's wake is at once:
//! the next poll looks at the clock again.

use core::cell::Cell;
use core::task::Waker;
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::SYST;
use cortex_m_rt::exception;
use critical_section::Mutex;

/// The CPU clock of mps2-an385, SysTick's source.
const CPU_HZ: u32 = 25_000_000;

static TICKS: Mutex<Cell<u64>> = Mutex::new(Cell::new(0));

/// Starts the tick (1 ms).
pub fn start(mut syst: SYST) {
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(CPU_HZ / 1000 - 1);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
}

#[exception]
fn SysTick() {
    critical_section::with(|cs| {
        let t = TICKS.borrow(cs);
        t.set(t.get() + 1);
    });
}

struct SysTickDriver;

impl embassy_time_driver::Driver for SysTickDriver {
    fn now(&self) -> u64 {
        critical_section::with(|cs| TICKS.borrow(cs).get())
    }
    fn schedule_wake(&self, _at: u64, waker: &Waker) {
        waker.wake_by_ref();
    }
}

embassy_time_driver::time_driver_impl!(static DRIVER: SysTickDriver = SysTickDriver);
