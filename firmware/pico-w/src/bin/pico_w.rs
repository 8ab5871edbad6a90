//! Tally on the Raspberry Pi Pico W: CYW43439 Wi-Fi (SSID and password from the build), DHCP,
//! gossip on port 9000, buttons on GP14 (+1) and GP15 (−1) counting from boot (before the
//! network is up), the on-board LED (on the radio's GPIO 0) blinks on every change, state in
//! the last 64 KiB of flash, defmt logs over RTT.
#![no_std]
#![no_main]

use core::mem::MaybeUninit;
use cyw43::{Aligned, JoinOptions, A4};
use cyw43_pio::{PioSpi, DEFAULT_CLOCK_DIVIDER};
use defmt::{info, warn};
use embassy_executor::Spawner;
use embassy_net::StackResources;
use embassy_rp::clocks::RoscRng;
use embassy_rp::gpio::{Input, Level, Output, Pull};
use embassy_rp::peripherals::{DMA_CH0, DMA_CH1, PIO0};
use embassy_rp::pio::{InterruptHandler, Pio};
use embassy_rp::{bind_interrupts, dma};
use static_cell::{ConstStaticCell, StaticCell};
use tally_pico_w as app;
use {defmt_rtt as _, panic_probe as _};

bind_interrupts!(struct Irqs {
    PIO0_IRQ_0 => InterruptHandler<PIO0>;
    DMA_IRQ_0 => dma::InterruptHandler<DMA_CH0>, dma::InterruptHandler<DMA_CH1>;
});

const SSID: &str = match option_env!("TALLY_WIFI_SSID") {
    Some(s) => s,
    None => "tally",
};
/// Empty: an open network.
const PASSWORD: &str = match option_env!("TALLY_WIFI_PASSWORD") {
    Some(s) => s,
    None => "",
};

/// The radio's firmware and country matrix (from the `cyw43-firmware` crate) and its NVRAM
/// (board data, made into a blob by build.rs). The driver wants 4-byte alignment.
static FIRMWARE: &Aligned<A4, [u8]> = &Aligned(*cyw43_firmware::CYW43_43439A0);
static CLM: &[u8] = cyw43_firmware::CYW43_43439A0_CLM;
static NVRAM: &Aligned<A4, [u8]> =
    &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/nvram.bin")));

type RadioRunner = cyw43::Runner<'static, cyw43::SpiBus<Output<'static>, PioSpi<'static, PIO0, 0>>>;

#[embassy_executor::task]
async fn radio_task(runner: RadioRunner) -> ! {
    runner.run().await
}

#[embassy_executor::task]
async fn net_task(mut runner: embassy_net::Runner<'static, cyw43::NetDriver<'static>>) -> ! {
    runner.run().await
}

/// The radio carries the link and the on-board LED (which hangs off the radio chip).
struct Radio {
    control: cyw43::Control<'static>,
    stack: embassy_net::Stack<'static>,
}

impl tally_board::show::Led for Radio {
    async fn set(&mut self, on: bool) {
        self.control.gpio_set(0, on).await;
    }
}

impl tally_board::supervise::Link for Radio {
    /// One join (cyw43 does not rejoin by itself after the access point goes away).
    async fn connect(&mut self) -> bool {
        let options = if PASSWORD.is_empty() {
            JoinOptions::new_open()
        } else {
            JoinOptions::new(PASSWORD.as_bytes())
        };
        match self.control.join(SSID, options).await {
            Ok(()) => {
                info!("joined {}; DHCP follows", SSID);
                true
            }
            Err(e) => {
                warn!("joining {} failed ({})", SSID, e);
                false
            }
        }
    }

    async fn wait_down(&mut self) {
        self.stack.wait_link_down().await;
    }
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    static HEAP: ConstStaticCell<[MaybeUninit<u8>; app::PICO_W_HEAP]> =
        ConstStaticCell::new([MaybeUninit::uninit(); app::PICO_W_HEAP]);
    app::init_heap(HEAP.take());
    let p = embassy_rp::init(Default::default());
    let watchdog = app::BoardWatchdog::start(p.WATCHDOG);
    let mut flash = app::BoardFlash::new(p.FLASH, p.DMA_CH1, Irqs);
    let name = app::node_name(&app::unique_id(&mut flash));
    info!("tally pico-w {}", name.as_str());

    let pwr = Output::new(p.PIN_23, Level::Low);
    let cs = Output::new(p.PIN_25, Level::High);
    let mut pio = Pio::new(p.PIO0, Irqs);
    let spi = PioSpi::new(
        &mut pio.common,
        pio.sm0,
        DEFAULT_CLOCK_DIVIDER,
        pio.irq0,
        cs,
        p.PIN_24,
        p.PIN_29,
        dma::Channel::new(p.DMA_CH0, Irqs),
    );
    static RADIO: StaticCell<cyw43::State> = StaticCell::new();
    let (device, mut control, runner) =
        cyw43::new(RADIO.init(cyw43::State::new()), pwr, spi, FIRMWARE, NVRAM).await;
    match radio_task(runner) {
        Ok(t) => spawner.spawn(t),
        Err(_) => warn!("cannot spawn the radio task"),
    }
    control.init(CLM).await;
    control
        .set_power_management(cyw43::PowerManagementMode::PowerSave)
        .await;

    // mDNS: the radio passes the group's frames (01:00:5e:00:00:fb) only once told to.
    #[cfg(feature = "mdns")]
    if control
        .add_multicast_address([0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb])
        .await
        .is_err()
    {
        warn!("cannot receive mDNS multicast; LAN discovery only answers");
    }

    // Sockets: two accepting, one sending, the datagram socket, DHCP (and mDNS).
    static RESOURCES: StaticCell<StackResources<{ app::SOCKETS }>> = StaticCell::new();
    let (stack, net_runner) = embassy_net::new(
        device,
        embassy_net::Config::dhcpv4(Default::default()),
        RESOURCES.init(StackResources::new()),
        RoscRng.next_u64(),
    );
    match net_task(net_runner) {
        Ok(t) => spawner.spawn(t),
        Err(_) => warn!("cannot spawn the network task"),
    }

    // The board program: the node counts from here on, gossips once DHCP gives an address,
    // joins (and rejoins whenever the link drops), blinks on changes, feeds the watchdog.
    let buttons = (
        Input::new(p.PIN_14, Pull::Up),
        Input::new(p.PIN_15, Pull::Up),
    );
    let radio = Radio { control, stack };
    #[cfg(feature = "mdns")]
    let discover = app::mdns;
    #[cfg(not(feature = "mdns"))]
    let discover = tally_board::program::no_discovery;
    app::run(
        stack,
        flash,
        &name,
        app::pico_w_engine(),
        buttons,
        radio,
        watchdog,
        discover,
    )
    .await
}
