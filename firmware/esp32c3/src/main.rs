//! Tally on the ESP32-C3: Wi-Fi station (SSID and password from the build), DHCP, gossip on
//! port 9000, BOOT (GPIO9) increments and GPIO4 decrements (buttons to ground) counting from
//! boot (before the network is up), an LED on GPIO8 blinks on every change, state in the NVS
//! partition (located from the partition table; 0x9000..0xF000 in the default one), defmt
//! logs through espflash.
#![no_std]
#![no_main]

use core::fmt::Write as _;
use defmt::{info, warn};
use embassy_embedded_hal::adapter::BlockingAsync;
use embassy_executor::Spawner;
use embassy_net::StackResources;
use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use embassy_time::Timer;
use esp_hal::gpio::{Input, InputConfig, Level, Output, OutputConfig, Pull};
use esp_hal::rng::Rng;
use esp_hal::timer::timg::{MwdtStage, TimerGroup, Wdt};
use esp_radio::wifi::sta::StationConfig;
use esp_radio::wifi::{
    AuthenticationMethodConfig, Config as WifiConfig, Interface, WifiController,
};
use esp_storage::FlashStorage;
#[cfg(feature = "mdns")]
use static_cell::ConstStaticCell;
use static_cell::StaticCell;
use tally_board::persist::{work_size, Store};
use tally_board::{node, program, settings, show, supervise};
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
/// Cluster key (`TALLY_CLUSTER_KEY`, 32–64 hex digits), parsed when this crate is compiled: a
/// bad key fails the build; cargo rebuilds when the variable changes (it tracks what
/// `option_env!` reads). Unset or empty: frames are not authenticated.
const CLUSTER_KEY: Option<settings::BuildKey> =
    settings::build_key(option_env!("TALLY_CLUSTER_KEY"));
/// The node's state lives in the NVS data partition (esp-radio does not use NVS), located
/// from the partition table in flash: 0x9000..0xF000 (6 pages of 4 KiB) in the default table.
/// With no usable NVS partition the node runs without a store (and says so).
fn store_range(flash: &mut FlashStorage<'_>) -> core::ops::Range<u32> {
    use esp_bootloader_esp_idf::partitions::{
        read_partition_table, DataPartitionSubType, PartitionType, PARTITION_TABLE_MAX_LEN,
    };
    let mut table = [0u8; PARTITION_TABLE_MAX_LEN];
    let nvs = read_partition_table(flash, &mut table).map(|t| {
        t.find_partition(PartitionType::Data(DataPartitionSubType::Nvs))
            .ok()
            .flatten()
            .map(|p| p.offset()..p.offset().saturating_add(p.len()))
    });
    match nvs {
        Ok(Some(range)) => {
            info!("store: NVS partition {:#x}..{:#x}", range.start, range.end);
            range
        }
        Ok(None) => {
            warn!("store: the partition table has no NVS partition");
            0..0
        }
        Err(e) => {
            warn!("store: cannot read the partition table: {}", e);
            0..0
        }
    }
}

/// Named counters the node holds (build-time `TALLY_COUNTERS`); the default fits the RAM
/// budget (README, "Boards").
const COUNTERS: usize = settings::build_number(option_env!("TALLY_COUNTERS"), 4);
/// Cells of the named counters (build-time `TALLY_COUNTER_CELLS`; default: 3 per counter).
const CELLS: usize = settings::build_number(option_env!("TALLY_COUNTER_CELLS"), 3 * COUNTERS);
/// Entry ids of the named counters' writers, shared by all of them.
const COUNTER_IDS: usize = 4;
const _: () = assert!(COUNTERS <= tally_board::persist::NAMED_KEYS);
/// The counters each button counts on (build-time `TALLY_BUTTONS`).
const BUTTONS: &str = tally_board::buttons::checked(option_env!("TALLY_BUTTONS"));
type Counters = tally_core::named::FixedStores<COUNTERS, COUNTER_IDS, CELLS, 2>;
type Tally = tally_embassy::State<NoopRawMutex, 32, 16, 64, 2, Counters>;
#[cfg(feature = "mdns")]
type TallyNode = tally_embassy::Node<'static, NoopRawMutex, 32, 16, 64, Counters>;
type BoardFlash = BlockingAsync<FlashStorage<'static>>;

#[embassy_executor::task]
async fn net_task(mut runner: embassy_net::Runner<'static, Interface>) -> ! {
    runner.run().await
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

/// The LED on GPIO8, active low.
struct LowLed(Output<'static>);

impl show::Led for LowLed {
    async fn set(&mut self, on: bool) {
        self.0.set_level(if on { Level::Low } else { Level::High });
    }
}

/// Timer group 0's watchdog (esp-hal's init leaves every watchdog off): it resets the whole
/// chip unless the main loop feeds it within `WATCHDOG_TIMEOUT`.
struct BoardWatchdog(Wdt<esp_hal::peripherals::TIMG0<'static>>);

impl supervise::Watchdog for BoardWatchdog {
    fn feed(&mut self) {
        self.0.feed();
    }
}

/// After a panic is printed (`esp-backtrace`), reset instead of halting; the board resumes
/// from its store.
#[no_mangle]
fn custom_halt() -> ! {
    esp_hal::system::software_reset()
}

#[esp_rtos::main]
async fn main(spawner: Spawner) {
    let peripherals = esp_hal::init(esp_hal::Config::default());
    // Wi-Fi needs 47-57 KiB; decoding the largest zstd frame a host may send (8 KiB message)
    // peaked at 47 KB in the emulated suite: 120 KiB in all.
    esp_alloc::heap_allocator!(#[esp_hal::ram(reclaimed)] size: 64 * 1024);
    esp_alloc::heap_allocator!(size: 56 * 1024);
    let timg0 = TimerGroup::new(peripherals.TIMG0);
    let mut wdt = timg0.wdt;
    let timeout = supervise::WATCHDOG_TIMEOUT.as_millis();
    wdt.set_timeout(
        MwdtStage::Stage0,
        esp_hal::time::Duration::from_millis(timeout),
    );
    wdt.enable();
    let watchdog = BoardWatchdog(wdt);
    esp_rtos::start(timg0.timer0, peripherals.FROM_CPU_INTR0);

    let rng = Rng::new();
    let led = Output::new(peripherals.GPIO8, Level::High, OutputConfig::default());
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

    // Sockets: two accepting, one sending, the datagram socket, DHCP (and mDNS).
    static RESOURCES: StaticCell<StackResources<{ 5 + cfg!(feature = "mdns") as usize }>> =
        StaticCell::new();
    let seed = (u64::from(rng.random()) << 32) | u64::from(rng.random());
    let (stack, net_runner) = embassy_net::new(
        station,
        embassy_net::Config::dhcpv4(Default::default()),
        RESOURCES.init(StackResources::new()),
        seed,
    );
    spawn(&spawner, net_task(net_runner));

    // The node name: TALLY_ID, else esp32c3- and the MAC; it counts under name#incarnation.
    let mut name: heapless::String<64> = heapless::String::new();
    if ID.is_empty() {
        let _ = name.push_str("esp32c3-");
        for b in mac {
            let _ = write!(name, "{:02x}", b);
        }
    } else {
        let _ = name.push_str(ID);
    }
    info!("tally esp32c3 {}", name.as_str());

    // The node, from flash, counting from here on; it gossips once DHCP gives an address.
    let mut storage = FlashStorage::new(peripherals.FLASH);
    let range = store_range(&mut storage);
    let flash: BoardFlash = BlockingAsync::new(storage);
    let engine = tally_core::Config::mcu().with_frame_limits(tally_core::FrameLimits::ESP32C3);
    let Some(engine) = settings::keyed(engine, CLUSTER_KEY) else {
        halt("tally node", "bad cluster key").await
    };
    let settings = node::Settings {
        name: &name,
        engine,
        port: PORT,
        peers: PEERS,
        buttons: BUTTONS,
    };
    // The board program: it counts from here on, gossips once DHCP gives an address, blinks
    // on changes, feeds the watchdog. `wifi_task` keeps the station connected: the main loop
    // watches the stack's link.
    static STORE: StaticCell<Store<BoardFlash, { work_size(CELLS) }>> = StaticCell::new();
    static STATE: StaticCell<Tally> = StaticCell::new();
    let board = program::Board {
        flash,
        store_range: range,
        inc,
        dec,
        link: supervise::StackLink {
            led: LowLed(led),
            stack,
        },
        watchdog,
        rng,
    };
    #[cfg(feature = "mdns")]
    let discover = mdns;
    #[cfg(not(feature = "mdns"))]
    let discover = program::no_discovery;
    program::run(stack, (&STORE, &STATE), &settings, board, |_| (), discover).await
}

/// LAN discovery by mDNS/DNS-SD (`tally_embassy::mdns`): its socket's buffers live here.
#[cfg(feature = "mdns")]
async fn mdns(stack: embassy_net::Stack<'static>, node: TallyNode) {
    static BUFFERS: ConstStaticCell<tally_embassy::mdns::MdnsBuffers> =
        ConstStaticCell::new(tally_embassy::mdns::MdnsBuffers::new());
    tally_embassy::mdns::run(stack, node, BUFFERS.take()).await
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

/// Stops here; the watchdog, no longer fed, resets the board, which tries again.
async fn halt(what: &str, why: impl defmt::Format) -> ! {
    warn!("{} failed: {}; resetting", what, why);
    loop {
        Timer::after_secs(3600).await;
    }
}
