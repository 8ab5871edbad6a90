//! `tally-tap-node`: the board program on Linux. It runs what every board runs,
//! [`tally_board::program`] — the node restored from flash, the persistence task, the debounced
//! buttons, the main loop with its link, LED and watchdog — on embassy's std executor, over a
//! TAP device (embassy-net-tuntap) with DHCP. Only the drivers differ from a board's:
//!
//! - the Ethernet is the TAP device, its link set over stdin (`link down` pulls the cable);
//! - the address comes from DHCP (a `dnsmasq` in the test's namespace); a new lease moves it;
//! - the flash is a file (`--flash`), which can lose power at any byte (`cut N`);
//! - the buttons are levers set over stdin; the LED is `led on` / `led off` on stdout;
//! - the watchdog is a thread, and a watchdog expiry or a panic ends the process with its own
//!   exit code (87, 88; a power cut: 86): the runner starts it again on the same flash file.
//!
//! ```text
//! tally-tap-node --tap NAME --flash FILE [--flash-size BYTES] [--id NAME] [--port 9000]
//!                [--peers A,B] [--sync-interval-ms 200] [--link up|down] [--buttons SPEC]
//!                [--mdns]
//! ```
//!
//! The node counts under `NAME#incarnation` (NAME defaults to `tap-` and the TAP device's
//! name); the incarnation is kept in the flash file. Its MAC is made from a hash of the name
//! as the W5500's is from the flash chip's unique id. `TALLY_CLUSTER_KEY` in the environment
//! (32–64 hex digits, as for `tally node`; empty: none) is its cluster key (the boards take the
//! same variable at build time). It decodes zstd frames, with the Pico W's frame limits.
//! It holds named counters as a small board does: at most [`COUNTERS`] counters, [`IDS`] ids
//! and [`CELLS`] cells (the rest is refused and counted); `--buttons` binds the buttons as a
//! firmware's `TALLY_BUTTONS` does (`tally_board::buttons`).
//!
//! Commands on stdin, one per line:
//! - `press inc|dec [N]`: N presses (40 ms down, 40 ms up); `hold inc|dec`, `release inc|dec`;
//! - `link up|down`; `cut N`: the power goes after N more bytes written or erased (`cut
//!   off`: it stays);
//! - `named NAME` (answers `named NAME V`, or `named NAME none` when it holds no such
//!   counter), `counters` (`counters N` and `NAME=V` pairs: every named counter it shows);
//! - `value` (answers `value V`), `local` (`local INC DEC`: its own entry), `addr` (`address A` or `address none`: what the node
//!   advertises), `peers` (`peers` and `ADDR=SOURCE:alive|down` pairs: `SOURCE` is `mdns`,
//!   `static` or `other`), `stats` (`stats` and `name=N` pairs: gossip frames seen arriving and how
//!   many compressed, Pushes received and merged, rejects by reason);
//! - `stall` (the executor's thread blocks, as a hung main loop: the watchdog resets),
//!   `panic`, `quit`.
//!
//! Output on stdout: `mac M` at boot, `ready ID` once the node exists, `led on|off`, the
//! answers above, `reset …` before a reset. Logs go to stderr (`RUST_LOG`).

use embassy_executor::Spawner;
use embassy_net::StackResources;
use embassy_net_tuntap::TunTapDevice;
use embassy_sync::blocking_mutex::raw::{CriticalSectionRawMutex, NoopRawMutex};
use embassy_sync::channel::Channel;
use static_cell::StaticCell;
use std::io::{BufRead, Write};
use std::time::Duration;
use tally_board::node::Settings;
use tally_board::persist::{work_size, Store};
use tally_board::program::{self, Board};
use tally_board::show::Led;
use tally_board::supervise::StackLink;
use tally_core::named::FixedStores;
use tally_core::{ClusterKey, Config, FrameLimits, MessageType, WireError};
use tally_embassy::{Node, State};

mod flash;
mod pins;
mod watch;
mod watchdog;

/// Named counters the node holds, as a small board's build would set them.
pub const COUNTERS: usize = 4;
/// Entry ids across all named counters.
pub const IDS: usize = 8;
/// Cells (one per counter and id that wrote it).
pub const CELLS: usize = 16;
type TapCounters = FixedStores<COUNTERS, IDS, CELLS, 2>;
type TapState = State<NoopRawMutex, 32, 16, 64, 2, TapCounters>;
type TapNode = Node<'static, NoopRawMutex, 32, 16, 64, TapCounters>;

/// LAN discovery by mDNS/DNS-SD (`--mdns`), as on a Pico W or ESP32-C3 built with it.
async fn mdns(stack: embassy_net::Stack<'static>, node: TapNode, on: bool) {
    if !on {
        return core::future::pending().await;
    }
    static BUFFERS: StaticCell<tally_embassy::mdns::MdnsBuffers> = StaticCell::new();
    tally_embassy::mdns::run(stack, node, BUFFERS.init(Default::default())).await
}

/// How long a press holds the button down, and then up (over the 20 ms debounce).
const PRESS: Duration = Duration::from_millis(40);

/// A command for the executor's thread.
enum Command {
    Value,
    Named(String),
    Counters,
    Local,
    Addr,
    Stats,
    Peers,
    Stall,
    Panic,
    Quit,
}

static COMMANDS: Channel<CriticalSectionRawMutex, Command, 8> = Channel::new();

struct Args {
    tap: String,
    flash: std::path::PathBuf,
    flash_size: usize,
    port: u16,
    id: Option<String>,
    peers: Vec<String>,
    sync_interval_ms: u64,
    link_up: bool,
    buttons: String,
    mdns: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut tap = None;
    let mut flash = None;
    let mut flash_size = 64 * 1024;
    let mut port = 9000u16;
    let mut id = None;
    let mut peers = Vec::new();
    let mut sync_interval_ms = 2000u64;
    let mut link_up = true;
    let mut buttons = String::new();
    let mut mdns = false;
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--tap" => tap = Some(value()?),
            "--flash" => flash = Some(value()?.into()),
            "--flash-size" => {
                flash_size = value()?.parse().map_err(|e| format!("--flash-size: {e}"))?
            }
            "--port" => port = value()?.parse().map_err(|e| format!("--port: {e}"))?,
            "--id" => id = Some(value()?),
            "--peers" => {
                peers = value()?
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(str::to_string)
                    .collect()
            }
            "--sync-interval-ms" => {
                sync_interval_ms = value()?
                    .parse()
                    .map_err(|e| format!("--sync-interval-ms: {e}"))?
            }
            "--link" => {
                link_up = match value()?.as_str() {
                    "up" => true,
                    "down" => false,
                    other => return Err(format!("--link is up or down, not {other}")),
                }
            }
            "--mdns" => mdns = true,
            "--buttons" => {
                buttons = value()?;
                tally_board::buttons::Buttons::parse(&buttons)
                    .map_err(|e| format!("--buttons: {e}"))?;
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Args {
        tap: tap.ok_or("--tap is required")?,
        flash: flash.ok_or("--flash is required")?,
        flash_size,
        port,
        id,
        peers,
        sync_interval_ms,
        link_up,
        buttons,
        mdns,
    })
}

/// xorshift64* seeded from the clock: incarnations and gossip partners need no more.
struct Rng(u64);

impl rand_core::RngCore for Rng {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

fn seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    (t ^ u64::from(std::process::id())) | 1
}

/// The "unique id" of this emulated board: FNV-1a of its name (the MAC is made from it).
fn unique_id(name: &str) -> [u8; 8] {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h.to_le_bytes()
}

#[embassy_executor::task]
async fn net_task(mut runner: embassy_net::Runner<'static, watch::Watched<TunTapDevice>>) -> ! {
    runner.run().await
}

/// The cluster key from `TALLY_CLUSTER_KEY` (unset or blank: none). The error names the
/// variable and the reason, never the key.
fn cluster_key() -> Result<Option<ClusterKey>, String> {
    match std::env::var("TALLY_CLUSTER_KEY") {
        Ok(text) if !text.trim().is_empty() => ClusterKey::from_hex(&text)
            .map(Some)
            .map_err(|e| format!("TALLY_CLUSTER_KEY: {e}")),
        Ok(_) | Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err("TALLY_CLUSTER_KEY: not UTF-8".into()),
    }
}

/// The `stats` line: what arrived (compressed or not) and what the engine made of it.
fn stats_line(node: &TapNode) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    let s = node.stats();
    let zstd_rejects: u64 = [
        WireError::CompressionUnsupported,
        WireError::ZstdMalformed,
        WireError::ZstdWindowTooLarge,
        WireError::ZstdContentTooLarge,
        WireError::ZstdChecksum,
    ]
    .into_iter()
    .map(|e| s.rejected(e))
    .sum();
    let pushes = s
        .frames_in
        .get(MessageType::Push.index())
        .copied()
        .unwrap_or(0);
    format!(
        "stats frames_seen={} compressed_seen={} compressed_in={} pushes_in={pushes} merges={} \
         zstd_rejects={zstd_rejects} frame_too_large={} unauthenticated={} unexpected_auth={} \
         rejects={} named_refused={} complete={}",
        watch::FRAMES.load(Relaxed),
        watch::COMPRESSED.load(Relaxed),
        s.compressed_in,
        s.merges,
        s.rejected(WireError::FrameTooLarge),
        s.rejected(WireError::Unauthenticated),
        s.rejected(WireError::UnexpectedAuth),
        s.rejected_total(),
        s.named_refused,
        u8::from(node.is_complete()),
    )
}

/// One line on stdout, flushed.
pub fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The LED: its changes as lines on stdout.
struct StdoutLed;

impl Led for StdoutLed {
    async fn set(&mut self, on: bool) {
        say(if on { "led on" } else { "led off" });
    }
}

/// The two buttons, as the stdin thread holds them.
struct Buttons {
    inc: pins::LeverHandle,
    dec: pins::LeverHandle,
}

impl Buttons {
    fn pick(&self, which: Option<&str>) -> Option<&pins::LeverHandle> {
        match which {
            Some("inc") => Some(&self.inc),
            Some("dec") => Some(&self.dec),
            _ => None,
        }
    }
}

/// Reads stdin on a plain thread: buttons, link and power act at once (they are the board's
/// outside world); questions go to the executor.
fn spawn_stdin_reader(buttons: Buttons) {
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if let Err(e) = obey(&line, &buttons) {
                eprintln!("tally-tap-node: {e}: {line:?}");
            }
        }
        block_on(COMMANDS.send(Command::Quit));
    });
}

fn obey(line: &str, buttons: &Buttons) -> Result<(), &'static str> {
    let mut words = line.split_whitespace();
    let (verb, arg, count) = (words.next(), words.next(), words.next());
    let cmd = match verb {
        Some("press") => {
            let button = buttons.pick(arg).ok_or("press inc|dec [N]")?;
            let n: u32 = count
                .map_or(Ok(1), str::parse)
                .map_err(|_| "N is a number")?;
            for _ in 0..n {
                button.press();
                std::thread::sleep(PRESS);
                button.release();
                std::thread::sleep(PRESS);
            }
            return Ok(());
        }
        Some("hold") => {
            buttons.pick(arg).ok_or("hold inc|dec")?.press();
            return Ok(());
        }
        Some("release") => {
            buttons.pick(arg).ok_or("release inc|dec")?.release();
            return Ok(());
        }
        Some("link") => {
            watch::set_link(match arg {
                Some("up") => true,
                Some("down") => false,
                _ => return Err("link up|down"),
            });
            return Ok(());
        }
        Some("cut") => {
            match arg {
                Some("off") => flash::CUT.disarm(),
                _ => flash::CUT.arm(arg.and_then(|a| a.parse().ok()).ok_or("cut N|off")?),
            }
            return Ok(());
        }
        Some("value") => Command::Value,
        Some("named") => Command::Named(arg.ok_or("named NAME")?.to_string()),
        Some("counters") => Command::Counters,
        Some("local") => Command::Local,
        Some("addr") => Command::Addr,
        Some("stats") => Command::Stats,
        Some("peers") => Command::Peers,
        Some("stall") => Command::Stall,
        Some("panic") => Command::Panic,
        Some("quit") => Command::Quit,
        _ => return Err("unknown command"),
    };
    block_on(COMMANDS.send(cmd));
    Ok(())
}

/// Polls a future to completion on this thread (the channel send wakes the executor).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Answers the questions from stdin, on the executor's thread.
#[embassy_executor::task]
async fn commands_task(node: TapNode) -> ! {
    loop {
        match COMMANDS.receive().await {
            Command::Value => say(&format!("value {}", node.value())),
            Command::Named(name) => match node.named_value(&name) {
                Some(v) => say(&format!("named {name} {v}")),
                None => say(&format!("named {name} none")),
            },
            Command::Counters => {
                let line = node.named(|m| {
                    let shown: Vec<String> =
                        m.counters().map(|(n, v)| format!("{n}={v}")).collect();
                    format!("counters {} {}", shown.len(), shown.join(" "))
                });
                say(line.trim_end());
            }
            Command::Local => {
                let (inc, dec) = node.local();
                say(&format!("local {inc} {dec}"));
            }
            Command::Addr => {
                let a = node.address();
                say(&format!(
                    "address {}",
                    a.as_ref().map_or("none", |a| a.as_str())
                ));
            }
            Command::Stats => say(&stats_line(&node)),
            Command::Peers => {
                let mut line = String::from("peers");
                node.for_each_peer(|addr, source, state| {
                    let source = match source {
                        tally_core::PeerSource::Mdns => "mdns",
                        tally_core::PeerSource::Static => "static",
                        _ => "other",
                    };
                    let state = match state {
                        tally_embassy::PeerState::Down => "down",
                        _ => "alive",
                    };
                    line.push_str(&format!(" {addr}={source}:{state}"));
                });
                say(&line);
            }
            Command::Stall => {
                log::warn!("stalling the executor");
                std::thread::sleep(Duration::from_secs(3600));
            }
            Command::Panic => panic!("panic asked for on stdin"),
            Command::Quit => {
                log::info!("quit: {:?} {:?}", node.stats(), node.transport());
                std::process::exit(0);
            }
        }
    }
}

fn fail(what: impl std::fmt::Display, code: i32) -> ! {
    eprintln!("tally-tap-node: {what}");
    std::process::exit(code)
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    env_logger::builder()
        .filter_level(log::LevelFilter::Info)
        .parse_default_env()
        .target(env_logger::Target::Stderr)
        .init();
    // First thing, as on the boards: a hang or a panic from here on resets.
    let watchdog = watchdog::SoftWatchdog::start(tally_board::supervise::WATCHDOG_TIMEOUT.into());
    watchdog::reset_on_panic();
    let args = parse_args().unwrap_or_else(|e| fail(e, 2));
    let key = cluster_key().unwrap_or_else(|e| fail(e, 2));
    let flash = flash::FileFlash::open(&args.flash, args.flash_size)
        .unwrap_or_else(|e| fail(format_args!("flash {}: {e}", args.flash.display()), 1));
    let mut device = TunTapDevice::new(&args.tap)
        .unwrap_or_else(|e| fail(format_args!("TAP device {}: {e}", args.tap), 1));
    let name = args
        .id
        .clone()
        .unwrap_or_else(|| format!("tap-{}", args.tap));
    let mac = tally_board::settings::mac_from_uid(&unique_id(&name));
    device.set_hardware_address(mac);
    let m = mac.map(|b| format!("{b:02x}")).join(":");
    say(&format!("mac {m}"));
    watch::set_link(args.link_up);

    // Sockets as on the boards: two accepting, one sending, the datagram socket, mDNS, DHCP.
    static RESOURCES: StaticCell<StackResources<6>> = StaticCell::new();
    let (stack, net_runner) = embassy_net::new(
        watch::Watched::new(device, args.port),
        embassy_net::Config::dhcpv4(Default::default()),
        RESOURCES.init(StackResources::new()),
        seed(),
    );
    spawner.spawn(net_task(net_runner).unwrap_or_else(|e| fail(format_args!("{e:?}"), 1)));

    let (inc, inc_handle) = pins::lever();
    let (dec, dec_handle) = pins::lever();
    spawn_stdin_reader(Buttons {
        inc: inc_handle,
        dec: dec_handle,
    });

    let peers = args.peers.join(",");
    let every = tally_core::Duration::from_millis(args.sync_interval_ms);
    let mut engine = Config::mcu()
        .with_frame_limits(FrameLimits::PICO_W)
        .with_sync_interval(every);
    engine.cluster_key = key;
    match key {
        Some(_) => log::info!("cluster key set: every frame is authenticated"),
        None => log::info!("no cluster key: frames are unauthenticated"),
    }
    let settings = Settings {
        name: &name,
        engine,
        port: args.port,
        peers: &peers,
        buttons: &args.buttons,
    };
    static STORE: StaticCell<Store<flash::FileFlash, { work_size(CELLS) }>> = StaticCell::new();
    static STATE: StaticCell<TapState> = StaticCell::new();
    let board = Board {
        store_range: 0..u32::try_from(args.flash_size).unwrap_or(0),
        flash,
        inc,
        dec,
        link: StackLink {
            led: StdoutLed,
            stack,
        },
        watchdog,
        rng: Rng(seed()),
    };
    program::run(
        stack,
        (&STORE, &STATE),
        &settings,
        board,
        |node| {
            say(&format!("ready {}", node.id().as_str()));
            if let Ok(t) = commands_task(node) {
                spawner.spawn(t);
            }
        },
        |stack, node| mdns(stack, node, args.mdns),
    )
    .await
}
