//! Tally on the WIZnet W5500-EVB-Pico: RP2040 + W5500 Ethernet on SPI0 (no radio blobs),
//! DHCP, gossip on port 9000, buttons on GP14 (+1) and GP15 (−1), the LED on GP25 blinks on
//! every change, state in the last 64 KiB of flash, defmt logs over RTT.
#![no_std]
#![no_main]

use core::mem::MaybeUninit;
use defmt::{info, warn};
use embassy_executor::Spawner;
use embassy_net::StackResources;
use embassy_net_wiznet::chip::W5500;
use embassy_rp::clocks::RoscRng;
use embassy_rp::gpio::{Input, Level, Output, Pull};
use embassy_rp::peripherals::{DMA_CH0, DMA_CH1, DMA_CH2, SPI0};
use embassy_rp::spi::{Async, Config as SpiConfig, Spi};
use embassy_rp::{bind_interrupts, dma};
use embassy_time::{Delay, Timer};
use embedded_hal_bus::spi::ExclusiveDevice;
use static_cell::{ConstStaticCell, StaticCell};
use tally_pico_w as app;
use {defmt_rtt as _, panic_probe as _};

bind_interrupts!(struct Irqs {
    DMA_IRQ_0 => dma::InterruptHandler<DMA_CH0>, dma::InterruptHandler<DMA_CH1>, dma::InterruptHandler<DMA_CH2>;
});

type Mac = embassy_net_wiznet::Runner<
    'static,
    W5500,
    ExclusiveDevice<Spi<'static, SPI0, Async>, Output<'static>, Delay>,
    Input<'static>,
    Output<'static>,
>;

#[embassy_executor::task]
async fn ethernet_task(runner: Mac) -> ! {
    runner.run().await
}

#[embassy_executor::task]
async fn net_task(
    mut runner: embassy_net::Runner<'static, embassy_net_wiznet::Device<'static>>,
) -> ! {
    runner.run().await
}

/// The LED on GP25.
struct PinLed(Output<'static>);

impl tally_board::show::Led for PinLed {
    async fn set(&mut self, on: bool) {
        self.0.set_level(if on { Level::High } else { Level::Low });
    }
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    static HEAP: ConstStaticCell<[MaybeUninit<u8>; app::W5500_HEAP]> =
        ConstStaticCell::new([MaybeUninit::uninit(); app::W5500_HEAP]);
    app::init_heap(HEAP.take());
    let p = embassy_rp::init(Default::default());
    let watchdog = app::BoardWatchdog::start(p.WATCHDOG);
    let mut flash = app::BoardFlash::new(p.FLASH, p.DMA_CH2, Irqs);
    let uid = app::unique_id(&mut flash);
    let name = app::node_name(&uid);
    info!("tally w5500-evb-pico {}", name.as_str());
    // A locally administered unicast MAC from a hash of the flash chip's unique id.
    let mac = tally_board::settings::mac_from_uid(&uid);

    let mut spi_config = SpiConfig::default();
    spi_config.frequency = 50_000_000;
    let spi = Spi::new(
        p.SPI0, p.PIN_18, p.PIN_19, p.PIN_16, p.DMA_CH0, p.DMA_CH1, Irqs, spi_config,
    );
    let cs = Output::new(p.PIN_17, Level::High);
    let Ok(spi) = ExclusiveDevice::new(spi, cs, Delay);
    let int = Input::new(p.PIN_21, Pull::Up);
    let reset = Output::new(p.PIN_20, Level::High);
    static MAC: StaticCell<embassy_net_wiznet::State<2, 2>> = StaticCell::new();
    let (device, runner) = match embassy_net_wiznet::new::<2, 2, W5500, _, _, _>(
        mac,
        MAC.init(embassy_net_wiznet::State::new()),
        spi,
        int,
        reset,
    )
    .await
    {
        Ok(x) => x,
        Err(_) => {
            // Not fed: the watchdog resets the board, which tries again.
            warn!("the W5500 did not answer");
            loop {
                Timer::after_secs(3600).await;
            }
        }
    };
    match ethernet_task(runner) {
        Ok(t) => spawner.spawn(t),
        Err(_) => warn!("cannot spawn the ethernet task"),
    }

    // Sockets: two accepting, one sending, the datagram socket, DHCP.
    static RESOURCES: StaticCell<StackResources<5>> = StaticCell::new();
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
    info!("waiting for the link and DHCP");

    // The board program: the node counts from here on, gossips once DHCP gives an address,
    // blinks on changes, feeds the watchdog. The W5500 keeps the link itself: the main loop
    // waits for the cable.
    let buttons = (
        Input::new(p.PIN_14, Pull::Up),
        Input::new(p.PIN_15, Pull::Up),
    );
    let led = PinLed(Output::new(p.PIN_25, Level::Low));
    let link = tally_board::supervise::StackLink { led, stack };
    app::run(
        stack,
        flash,
        &name,
        app::w5500_engine(),
        buttons,
        link,
        watchdog,
        tally_board::program::no_discovery,
    )
    .await
}
