//! The boards' reset path on an emulated Cortex-M: QEMU's mps2-an385 (a Cortex-M3, running
//! the RP2040's ARMv6-M code) has a watchdog that resets the machine, which neither the RP2040
//! nor the ESP32-C3 has in QEMU. Three boots, each told apart by what its store holds:
//!
//! 1. The store holds foreign bytes (RAM zeros at power-on): erased once, a fresh
//!    incarnation; three presses are stored. The board's main loop
//!    ([`tally_board::supervise::run`]) feeds the watchdog for ten seconds (longer than its
//!    timeout), then a task hangs the executor (a stall): the watchdog resets the machine.
//! 2. Resumed from the store, same incarnation, value 3; one more press. Then a panic: the
//!    panic handler ends in a HardFault, whose handler resets the chip (as the RP2040
//!    firmware's does).
//! 3. Resumed again with value 4: the run passes.
//!
//! Anything else fails the run (semihosting exit 1). The program owns time (SysTick) and its
//! I/O (the store's RAM region, the watchdog's registers, semihosting).
#![no_std]
#![no_main]

mod flash;
mod time;
mod watchdog;

use core::convert::Infallible;
use cortex_m_rt::{entry, exception, ExceptionFrame};
use cortex_m_semihosting::{debug, hprintln};
use embassy_futures::block_on;
use embassy_futures::select::{select, Either};
use embassy_time::{Duration, Timer};
use tally_board::persist::{Store, SNAPSHOTS};
use tally_board::show::Led;
use tally_board::supervise::{self, Changes, Link, WATCHDOG_TIMEOUT};
use tally_core::{Config, FixedReplica, Incarnation, Instant, LocalOp};

type Replica = FixedReplica<8, 4, 32>;

/// How long the first boot's main loop runs before it stalls: longer than the watchdog's
/// timeout, so a reset before the stall would show that the loop does not feed it.
const FED: Duration = Duration::from_secs(10);

/// Nothing changes; the link is up; the LED is dark: only the watchdog matters here.
struct Quiet;

impl Changes for Quiet {
    async fn changed(&mut self) -> i128 {
        core::future::pending().await
    }
}

impl Link for Quiet {
    async fn connect(&mut self) -> bool {
        true
    }
    async fn wait_down(&mut self) {
        core::future::pending().await
    }
}

impl Led for Quiet {
    async fn set(&mut self, _on: bool) {}
}

/// A seeded generator for the fresh incarnation.
struct Lcg(u64);

impl rand_core::RngCore for Lcg {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        for b in dst {
            *b = self.next_u32() as u8;
        }
    }
}

fn finish(ok: bool) -> ! {
    hprintln!(
        "{}",
        if ok {
            "reset path: ok"
        } else {
            "reset path: FAILED"
        }
    );
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {
        cortex_m::asm::nop();
    }
}

/// Presses as the board makes them: prepared, stored, committed.
fn press(replica: &mut Replica, store: &mut Store<flash::RamFlash>, n: u64) -> bool {
    for _ in 0..n {
        let Ok(p) = replica.prepare(LocalOp::Increment(1)) else {
            return false;
        };
        if block_on(store.save(replica)).is_err() || replica.commit(p).is_err() {
            return false;
        }
    }
    true
}

/// The board's main loop with its watchdog, beside `fault`, which ends it.
fn main_loop(
    dog: &mut watchdog::CmsdkWatchdog,
    fault: impl core::future::Future<Output = Infallible>,
) -> ! {
    let mut quiet = (Quiet, Quiet);
    match block_on(select(
        supervise::run(&mut quiet.0, &mut quiet.1, dog),
        fault,
    )) {
        Either::First(never) => never,
        Either::Second(never) => match never {},
    }
}

#[entry]
fn main() -> ! {
    // First thing, as on the boards.
    let mut dog = watchdog::CmsdkWatchdog::start(WATCHDOG_TIMEOUT);
    let Some(cp) = cortex_m::Peripherals::take() else {
        finish(false)
    };
    time::start(cp.SYST);
    let Ok(mut store) = Store::new(flash::RamFlash::take(), 0..flash::SIZE as u32) else {
        finish(false)
    };
    let opened = block_on(store.open::<8, 4, 32, tally_core::named::Unnamed>(
        "mps2",
        Config::mcu(),
        SNAPSHOTS,
        Instant::ZERO,
        &mut Lcg(7),
    ));
    let Ok((mut replica, opened)) = opened else {
        hprintln!("the store cannot be opened");
        finish(false)
    };
    let id = replica.id();
    let value = replica.value();
    match (opened.incarnation, value) {
        (Incarnation::Fresh, 0) if opened.erased => {
            hprintln!("boot 1: foreign bytes erased; fresh {}", id.as_str());
            if !press(&mut replica, &mut store, 3) {
                finish(false)
            }
            hprintln!(
                "boot 1: 3 presses stored; the main loop runs {} s, then stalls",
                FED.as_secs()
            );
            main_loop(&mut dog, async {
                Timer::after(FED).await;
                hprintln!(
                    "boot 1: fed for {} s, longer than the watchdog's {} s; stalled",
                    FED.as_secs(),
                    WATCHDOG_TIMEOUT.as_secs()
                );
                loop {
                    cortex_m::asm::nop();
                }
            })
        }
        (Incarnation::Resumed, 3) => {
            hprintln!(
                "boot 2: reset by the watchdog; resumed {} with 3",
                id.as_str()
            );
            if !press(&mut replica, &mut store, 1) {
                finish(false)
            }
            hprintln!("boot 2: 1 press stored; the main loop panics in 1.5 s");
            main_loop(&mut dog, async {
                Timer::after(Duration::from_millis(1500)).await;
                panic!("a panic in a task")
            })
        }
        (Incarnation::Resumed, 4) => {
            hprintln!(
                "boot 3: reset after the panic; resumed {} with 4",
                id.as_str()
            );
            finish(true)
        }
        (how, v) => {
            hprintln!(
                "unexpected boot: {:?}, value {}, erased {}",
                how,
                v as i64,
                opened.erased
            );
            finish(false)
        }
    }
}

/// As on the boards (`panic-probe`): a panic ends in a HardFault.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    hprintln!("panic: {}", info);
    cortex_m::asm::udf()
}

/// As the RP2040 firmware's: a HardFault resets the chip at once.
#[exception]
unsafe fn HardFault(_frame: &ExceptionFrame) -> ! {
    cortex_m::peripheral::SCB::sys_reset()
}
