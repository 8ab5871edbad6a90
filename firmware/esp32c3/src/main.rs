//! Tally on the ESP32-C3: Wi-Fi station (SSID and password from the build), DHCP, gossip on
//! port 9000, BOOT (GPIO9) increments and GPIO4 decrements (buttons to ground), an LED on
//! GPIO8 blinks on every change, state in the NVS partition's flash (0x9000..0xF000), defmt
//! logs through espflash.
#![no_std]
#![no_main]

use core::fmt::Write as _;
use defmt::{info, warn};
use embassy_embedded_hal::adapter::BlockingAsync;
use embassy_executor::Spawner;
use embassy_futures::select::{select, Either};
use embassy_net::StackResources;
use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use embassy_time::{Duration, Timer};
use esp_hal::gpio::{Input, InputConfig, Level, Output, OutputConfig, Pull};
use esp_hal::rng::Rng;
use esp_hal::timer::timg::TimerGroup;
use esp_radio::wifi::sta::StationConfig;
use esp_radio::wifi::{
    AuthenticationMethodConfig, Config as WifiConfig, Interface, WifiController,
};
use esp_storage::FlashStorage;
use static_cell::StaticCell;
use tally_board::{button, persist::Store, settings};
use {esp_backtrace as _, esp_println as _};

esp_bootloader_esp_idf::esp_app_desc!();

const PORT: u16 = 9000;
const SSID: &str = match option_env!("TALLY_WIFI_SSID") {
    Some(s) => s,
    None => "tally",
};
/// Empty: an open network.
const PASSWORD: &str = match option_env!("TALLY_WIFI_PASSWORD") {
    Some(s) => s,
    None => "",
};
const PEERS: &str = match option_env!("TALLY_PEERS") {
    Some(s) => s,
    None => "",
};
const ID: &str = match option_env!("TALLY_ID") {
    Some(s) => s,
    None => "",
};
/// The node's state lives in the NVS partition of the default partition table (esp-radio
/// does not use NVS): 6 pages of 4 KiB.
const STORE_RANGE: core::ops::Range<u32> = 0x9000..0xF000;
const STATE_EVERY: Duration = Duration::from_secs(10);

type Tally = tally_embassy::State<NoopRawMutex>;
type TallyNode = tally_embassy::Node<'static, NoopRawMutex>;
type TallyRunner = tally_embassy::Runner<'static, NoopRawMutex>;
type BoardFlash = BlockingAsync<FlashStorage<'static>>;

#[embassy_executor::task]
async fn net_task(mut runner: embassy_net::Runner<'static, Interface>) -> ! {
    runner.run().await
}

#[embassy_executor::task]
async fn tally_task(runner: TallyRunner, mut rng: Rng) -> ! {
    runner.run(&mut rng).await
}

/// Keeps the station connected: reconnects whenever the access point drops it.
#[embassy_executor::task]
async fn wifi_task(mut controller: WifiController<'static>) -> ! {
    loop {
        match controller.connect_async().await {
            Ok(_) => {
                info!("joined {}", SSID);
                let _ = controller.wait_for_disconnect_async().await;
                warn!("Wi-Fi disconnected");
            }
            Err(e) => warn!("joining {} failed: {}", SSID, e),
        }
        Timer::after_secs(2).await;
    }
}

#[embassy_executor::task]
async fn buttons_task(node: TallyNode, mut inc: Input<'static>, mut dec: Input<'static>) -> ! {
    loop {
        let r = match select(button::press(&mut inc), button::press(&mut dec)).await {
            Either::First(()) => node.increment(1),
            Either::Second(()) => node.decrement(1),
        };
        match r {
            Ok(v) => info!("button: value {}", v as i64),
            Err(e) => warn!("button: {}", e),
        }
    }
}

#[esp_rtos::main]
async fn main(spawner: Spawner) {
    let peripherals = esp_hal::init(esp_hal::Config::default());
    // Wi-Fi needs 47-57 KiB; decoding the largest zstd frame a host may send (8 KiB message)
    // peaked at 47 KB in the emulated suite: 120 KiB in all.
    esp_alloc::heap_allocator!(#[esp_hal::ram(reclaimed)] size: 64 * 1024);
    esp_alloc::heap_allocator!(size: 56 * 1024);
    let timg0 = TimerGroup::new(peripherals.TIMG0);
    esp_rtos::start(timg0.timer0, peripherals.FROM_CPU_INTR0);

    let rng = Rng::new();
    let mut led = Output::new(peripherals.GPIO8, Level::High, OutputConfig::default());
    let up = InputConfig::default().with_pull(Pull::Up);
    let inc = Input::new(peripherals.GPIO9, up);
    let dec = Input::new(peripherals.GPIO4, up);

    let mut controller = match WifiController::new(peripherals.WIFI, Default::default()) {
        Ok(c) => c,
        Err(e) => halt("Wi-Fi init", e).await,
    };
    let station = Interface::station();
    let mac = station.mac_address();
    let auth = if PASSWORD.is_empty() {
        Ok(AuthenticationMethodConfig::Open)
    } else {
        PASSWORD
            .try_into()
            .map(AuthenticationMethodConfig::Wpa2Personal)
    };
    let config = match (SSID.try_into(), auth) {
        (Ok(ssid), Ok(auth)) => WifiConfig::Station(
            StationConfig::default()
                .with_ssid(ssid)
                .with_authentication(auth),
        ),
        _ => halt("Wi-Fi settings", "SSID or password too long").await,
    };
    if let Err(e) = controller.set_config(&config) {
        halt("Wi-Fi config", e).await;
    }
    spawn(&spawner, wifi_task(controller));

    static RESOURCES: StaticCell<StackResources<5>> = StaticCell::new();
    let seed = (u64::from(rng.random()) << 32) | u64::from(rng.random());
    let (stack, net_runner) = embassy_net::new(
        station,
        embassy_net::Config::dhcpv4(Default::default()),
        RESOURCES.init(StackResources::new()),
        seed,
    );
    spawn(&spawner, net_task(net_runner));

    let mut id: heapless::String<64> = heapless::String::new();
    if ID.is_empty() {
        let _ = id.push_str("esp32c3-");
        for b in mac {
            let _ = write!(id, "{:02x}", b);
        }
    } else {
        let _ = id.push_str(ID);
    }
    info!("tally esp32c3 {}; waiting for DHCP", id.as_str());
    stack.wait_config_up().await;
    let mut addr: heapless::String<24> = heapless::String::new();
    if let Some(c) = stack.config_v4() {
        let _ = write!(addr, "{}:{}", c.address.address(), PORT);
    }
    let peers = settings::peers(PEERS);
    let config = tally_embassy::NodeConfig::new(&addr, PORT)
        .id(&id)
        .peers(&peers);
    static STATE: StaticCell<Tally> = StaticCell::new();
    let (node, runner) = match tally_embassy::new(stack, STATE.init(Tally::new()), &config) {
        Ok(x) => x,
        Err(e) => halt("tally node", e).await,
    };
    info!(
        "tally node {} at {} ({} peers)",
        id.as_str(),
        addr.as_str(),
        peers.len()
    );
    spawn(&spawner, tally_task(runner, rng));

    let flash: BoardFlash = BlockingAsync::new(FlashStorage::new(peripherals.FLASH));
    let mut store = match Store::new(flash, STORE_RANGE, STATE_EVERY) {
        Ok(s) => Some(s),
        Err(e) => {
            warn!("flash store unusable: {}", e);
            None
        }
    };
    if let Some(s) = store.as_mut() {
        match s.restore(&node).await {
            Ok(r) => info!(
                "restored {} entries (own: {}), value {}",
                r.entries,
                r.own,
                node.value() as i64
            ),
            Err(e) => warn!("nothing restored: {}", e),
        }
    }
    // Buttons only after the restore, so no update starts from a stale own total.
    spawn(&spawner, buttons_task(node, inc, dec));

    loop {
        match select(node.wait_changed(), Timer::after(STATE_EVERY)).await {
            Either::First(v) => {
                info!("value {}", v as i64);
                led.set_low();
                if let Some(s) = store.as_mut() {
                    if let Err(e) = s.on_change(&node).await {
                        warn!("persist: {}", e);
                    }
                }
                Timer::after_millis(80).await;
                led.set_high();
            }
            Either::Second(()) => {
                if let Some(s) = store.as_mut().filter(|s| s.state_pending()) {
                    if let Err(e) = s.flush(&node).await {
                        warn!("persist: {}", e);
                    }
                }
            }
        }
    }
}

fn spawn<S>(
    spawner: &Spawner,
    task: Result<embassy_executor::SpawnToken<S>, embassy_executor::SpawnError>,
) {
    match task {
        Ok(t) => spawner.spawn(t),
        Err(_) => warn!("cannot spawn a task"),
    }
}

async fn halt(what: &str, why: impl defmt::Format) -> ! {
    warn!("{} failed: {}; halted", what, why);
    loop {
        Timer::after_secs(3600).await;
    }
}
