//! `tally-tap-node`: the board code's node — `tally-embassy` on embassy-net — on Linux, over a
//! TAP device (embassy-net-tuntap) on embassy's std executor. Everything between the engine
//! and the Ethernet frames is the code the firmware runs; only the driver and the executor
//! differ.
//!
//! ```text
//! tally-tap-node --tap NAME --address 10.1.2.2/24 [--port 9000] [--id NAME]
//!                [--peers A,B] [--sync-interval-ms 200] [--offline]
//! ```
//!
//! The node is volatile and counts under `NAME#incarnation` (a fresh incarnation each run;
//! NAME defaults to `embassy-<address>`). `TALLY_CLUSTER_KEY` in the environment (32–64 hex
//! digits, as for `tally node`; empty: none) is its cluster key: every frame is then
//! authenticated (the boards take the same variable at build time). It decodes zstd frames
//! (the `zstd` feature, on std's allocator). The runner advertises whatever address the stack
//! has. With `--offline` the stack starts without one (the node counts offline, as a board
//! before its DHCP lease) until a `lease` command gives it one.
//!
//! Commands on stdin, one per line: `inc N`, `dec N`, `value`, `addr` (prints `address A` or
//! `address none`: what the node advertises), `lease A.B.C.D/LEN` (moves the stack to a new
//! address, as a new DHCP lease would), `stats` (prints `stats` and `name=N` pairs: gossip
//! frames seen arriving and how many of them compressed, Pushes received and merged, and the
//! rejects by reason), `quit`. Output on stdout: `ready ID` once the node
//! exists, `value V` after each command, `changed V` whenever a merge or committed local
//! update changes the value. Logs go to stderr (`RUST_LOG`).

use embassy_executor::Spawner;
use embassy_net::{ConfigV4, Ipv4Cidr, StackResources, StaticConfigV4};
use embassy_net_tuntap::TunTapDevice;
use embassy_sync::blocking_mutex::raw::{CriticalSectionRawMutex, NoopRawMutex};
use embassy_sync::channel::Channel;
use static_cell::StaticCell;
use std::io::{BufRead, Write};
use tally_core::{
    ClusterKey, Config, FixedReplica, Identity, Incarnation, MessageType, ReplicaConfig, WireError,
};
use tally_embassy::{Node, NodeConfig, Runner, State};

mod watch;

type TapNode = Node<'static, NoopRawMutex>;
type TapRunner = Runner<'static, NoopRawMutex>;

/// A command read from stdin.
enum Command {
    Inc(u64),
    Dec(u64),
    Value,
    Addr,
    Lease(Ipv4Cidr),
    Stats,
    Quit,
}

static COMMANDS: Channel<CriticalSectionRawMutex, Command, 8> = Channel::new();

struct Args {
    tap: String,
    address: Ipv4Cidr,
    port: u16,
    id: Option<String>,
    peers: Vec<String>,
    sync_interval_ms: u64,
    offline: bool,
}

fn cidr(v: &str) -> Result<Ipv4Cidr, String> {
    let (ip, len) = v.split_once('/').ok_or("an address is a.b.c.d/len")?;
    let ip: std::net::Ipv4Addr = ip.parse().map_err(|e| format!("{v}: {e}"))?;
    let len: u8 = len.parse().map_err(|e| format!("{v}: {e}"))?;
    Ok(Ipv4Cidr::new(ip, len))
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut tap = None;
    let mut address = None;
    let mut port = 9000u16;
    let mut id = None;
    let mut peers = Vec::new();
    let mut sync_interval_ms = 2000u64;
    let mut offline = false;
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--tap" => tap = Some(value()?),
            "--address" => address = Some(cidr(&value()?)?),
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
            "--offline" => offline = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Args {
        tap: tap.ok_or("--tap is required")?,
        address: address.ok_or("--address is required")?,
        port,
        id,
        peers,
        sync_interval_ms,
        offline,
    })
}

/// xorshift64* seeded from the clock: gossip partner choice needs no more.
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

#[embassy_executor::task]
async fn net_task(mut runner: embassy_net::Runner<'static, watch::Watched<TunTapDevice>>) -> ! {
    runner.run().await
}

#[embassy_executor::task]
async fn tally_task(runner: TapRunner) -> ! {
    let mut rng = Rng(seed());
    runner.run(&mut rng).await
}

#[embassy_executor::task]
async fn watch_task(node: TapNode) -> ! {
    loop {
        let v = node.wait_changed().await;
        say(&format!("changed {v}"));
    }
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
         rejects={}",
        watch::FRAMES.load(Relaxed),
        watch::COMPRESSED.load(Relaxed),
        s.compressed_in,
        s.merges,
        s.rejected(WireError::FrameTooLarge),
        s.rejected(WireError::Unauthenticated),
        s.rejected(WireError::UnexpectedAuth),
        s.rejected_total(),
    )
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Reads commands on a plain thread and hands them to the executor.
fn spawn_stdin_reader() {
    std::thread::spawn(|| {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            let mut words = line.split_whitespace();
            let cmd = match (words.next(), words.next().map(str::parse::<u64>)) {
                (Some("inc"), Some(Ok(n))) => Command::Inc(n),
                (Some("dec"), Some(Ok(n))) => Command::Dec(n),
                (Some("value"), _) => Command::Value,
                (Some("addr"), _) => Command::Addr,
                (Some("lease"), _) => match line.split_whitespace().nth(1).map(cidr) {
                    Some(Ok(c)) => Command::Lease(c),
                    _ => {
                        eprintln!("lease wants a.b.c.d/len: {line:?}");
                        continue;
                    }
                },
                (Some("stats"), _) => Command::Stats,
                (Some("quit"), _) => Command::Quit,
                _ => {
                    eprintln!("unknown command {line:?}");
                    continue;
                }
            };
            embassy_futures_block_on(COMMANDS.send(cmd));
        }
        embassy_futures_block_on(COMMANDS.send(Command::Quit));
    });
}

/// Polls a future to completion on this thread (the channel send wakes the executor).
fn embassy_futures_block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    env_logger::builder()
        .filter_level(log::LevelFilter::Info)
        .parse_default_env()
        .target(env_logger::Target::Stderr)
        .init();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("tally-tap-node: {e}");
            std::process::exit(2);
        }
    };
    let key = match cluster_key() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("tally-tap-node: {e}");
            std::process::exit(2);
        }
    };
    match key {
        Some(_) => log::info!("cluster key set: every frame is authenticated"),
        None => log::info!("no cluster key: frames are unauthenticated"),
    }
    let mut device = match TunTapDevice::new(&args.tap) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("tally-tap-node: cannot open TAP device {}: {e}", args.tap);
            std::process::exit(1);
        }
    };
    // A locally administered unicast MAC derived from the address.
    let o = args.address.address().octets();
    device.set_hardware_address([0x02, 0x7a, o[0], o[1], o[2], o[3]]);
    let static_config = |address| {
        ConfigV4::Static(StaticConfigV4 {
            address,
            gateway: None,
            dns_servers: Default::default(),
        })
    };
    // No address yet: the node counts offline until the stack is configured.
    let mut config = embassy_net::Config::default();
    if !args.offline {
        config.ipv4 = static_config(args.address);
    }
    static RESOURCES: StaticCell<StackResources<4>> = StaticCell::new();
    let (stack, net_runner) = embassy_net::new(
        watch::Watched::new(device, args.port),
        config,
        RESOURCES.init(StackResources::new()),
        seed(),
    );
    spawner.spawn(net_task(net_runner).unwrap_or_else(|e| panic!("spawn: {e:?}")));

    let peers: &'static [&'static str] = Box::leak(
        args.peers
            .iter()
            .map(|p| &*Box::leak(p.clone().into_boxed_str()))
            .collect::<Vec<&'static str>>()
            .into_boxed_slice(),
    );
    let name = args
        .id
        .clone()
        .unwrap_or_else(|| format!("embassy-{}", args.address.address()));
    let mut rng = Rng(seed());
    let replica = Identity::fresh(&name, &mut rng)
        .map_err(|e| e.to_string())
        .and_then(|id| {
            let every = tally_core::Duration::from_millis(args.sync_interval_ms);
            let mut engine = Config::mcu().with_sync_interval(every);
            engine.cluster_key = key;
            FixedReplica::new(
                id,
                Incarnation::Fresh,
                ReplicaConfig::volatile(engine),
                tally_embassy::now(),
            )
            .map_err(|e| e.to_string())
        });
    let replica = match replica {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tally-tap-node: {name}: {e}");
            std::process::exit(2);
        }
    };
    let node_config = NodeConfig::new(args.port).peers(peers);
    static STATE: StaticCell<State<NoopRawMutex>> = StaticCell::new();
    let (node, runner, _volatile) =
        match tally_embassy::new(stack, STATE.init(State::new(replica)), &node_config) {
            Ok(x) => x,
            Err(e) => {
                eprintln!("tally-tap-node: {e}");
                std::process::exit(2);
            }
        };
    spawner.spawn(tally_task(runner).unwrap_or_else(|e| panic!("spawn: {e:?}")));
    spawner.spawn(watch_task(node).unwrap_or_else(|e| panic!("spawn: {e:?}")));
    spawn_stdin_reader();
    say(&format!("ready {}", node.id().as_str()));
    loop {
        let outcome = match COMMANDS.receive().await {
            Command::Inc(n) => node.increment(n).map(|_| ()),
            Command::Dec(n) => node.decrement(n).map(|_| ()),
            Command::Value => Ok(()),
            Command::Addr => {
                let a = node.address();
                say(&format!(
                    "address {}",
                    a.as_ref().map_or("none", |a| a.as_str())
                ));
                continue;
            }
            Command::Lease(address) => {
                stack.set_config_v4(static_config(address));
                Ok(())
            }
            Command::Stats => {
                say(&stats_line(&node));
                continue;
            }
            Command::Quit => {
                log::info!("quit: {:?} {:?}", node.stats(), node.transport());
                std::process::exit(0);
            }
        };
        if let Err(e) = outcome {
            eprintln!("tally-tap-node: {e}");
        }
        say(&format!("value {}", node.value()));
    }
}
