//! The `tally` command line: argument definitions and dispatch. `main` only calls [`run`].

mod client;
mod local_cluster;
mod node;
mod secrets;
#[cfg(feature = "dev-tools")]
mod simulate;

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Tally: a replicated counter that keeps counting through partitions and crashes.
#[derive(Debug, Parser)]
#[command(name = "tally", version, about, propagate_version = true)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one node: gossip on --listen, HTTP API on --http.
    Node(NodeArgs),
    /// Run the discovery service (reference-compatible).
    Discovery(DiscoveryArgs),
    /// Run a local cluster on loopback: discovery + N nodes + gateway and dashboard; Ctrl-C
    /// stops it.
    Cluster(ClusterArgs),
    /// Run the API gateway in front of nodes (from --nodes or --discovery).
    Gateway(GatewayArgs),
    /// Print a counter's value (the default counter, or the named counter NAME) from a node or
    /// gateway URL.
    Get(GetArgs),
    /// Increment a counter (the default one, or NAME) and print the new value.
    Inc(WriteArgs),
    /// Decrement a counter (the default one, or NAME) and print the new value.
    Dec(WriteArgs),
    /// List every counter: the default one and each named one, with its value.
    List(ClientArgs),
    /// Run five engines on the simulated network and watch them converge.
    #[cfg(feature = "dev-tools")]
    Demo,
    /// Measure HTTP write throughput and cluster agreement time.
    Bench(BenchArgs),
    /// Fault injection: local nodes in network namespaces under a seeded nemesis (root), or
    /// clients and checker alone against `--urls`; checks the final value against the
    /// history.
    Chaos(ChaosArgs),
    /// Simulate N real engines on virtual time over a lossy network (deterministic per seed).
    #[cfg(feature = "dev-tools")]
    Sim(SimArgs),
    /// Rounds to agreement at several sizes over many seeds, as a Markdown table and a curve.
    #[cfg(feature = "dev-tools")]
    Scaling(ScalingArgs),
    /// Dead-node detection of SWIM membership on the simulator: kills and restarts under loss.
    #[cfg(feature = "dev-tools")]
    SwimSim(SwimSimArgs),
}

/// `tally swim-sim`.
#[cfg(feature = "dev-tools")]
#[derive(Debug, clap::Args)]
pub struct SwimSimArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 100)]
    pub nodes: usize,
    /// Probability that a datagram is lost.
    #[arg(long, default_value_t = 0.3)]
    pub loss: f64,
    /// Virtual time to run (after a 30 s warm-up).
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub duration: Duration,
    /// Kill one random node this often.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub kill_every: Duration,
    /// Restart a killed node after this long.
    #[arg(long, default_value = "25s", value_parser = parse_duration)]
    pub down_for: Duration,
    /// Override the suspicion time before a member is declared down.
    #[arg(long, value_parser = parse_duration)]
    pub suspect: Option<Duration>,
    /// Override the indirect probes per failed direct probe.
    #[arg(long)]
    pub indirect: Option<usize>,
    /// Override the probe period.
    #[arg(long, value_parser = parse_duration)]
    pub probe_period: Option<Duration>,
    /// Override the transmissions of each update by each node.
    #[arg(long)]
    pub max_tx: Option<u8>,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print the report as one JSON object on the last line.
    #[arg(long)]
    pub json: bool,
}

/// `tally scaling`.
#[cfg(feature = "dev-tools")]
#[derive(Debug, clap::Args)]
pub struct ScalingArgs {
    /// Cluster sizes.
    #[arg(long, value_delimiter = ',', default_value = "10,100,1000,10000")]
    pub sizes: Vec<usize>,
    /// Seeds per size (1..=N).
    #[arg(long, default_value_t = 20)]
    pub seeds: u64,
    /// Draw the median run of each size into this SVG.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

/// `tally sim`.
#[cfg(feature = "dev-tools")]
#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 100)]
    pub nodes: usize,
    /// Peers contacted per round.
    #[arg(long, default_value_t = 2)]
    pub fanout: u8,
    /// Sync interval (virtual time).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub sync_interval: Duration,
    /// Probability that a frame is lost.
    #[arg(long, default_value_t = 0.0)]
    pub loss: f64,
    /// Writer nodes (0: one random node increments once at time 0).
    #[arg(long, default_value_t = 0)]
    pub writers: usize,
    /// Total increments, one per writer per round.
    #[arg(long, default_value_t = 0)]
    pub ops: usize,
    /// Split the nodes in two halves from round FROM until round TO: `FROM..TO`.
    #[arg(long, value_parser = simulate::parse_partition)]
    pub partition: Option<(u64, u64)>,
    /// Seed: a run is a pure function of its seed and flags.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Static peers per node at start; others are learned from senders.
    #[arg(long, default_value_t = 8)]
    pub initial_peers: usize,
    /// Push the full state every time (the reference's behaviour) instead of deltas.
    #[arg(long)]
    pub full_state: bool,
    /// Largest frame a node sends, bytes.
    #[arg(long, default_value_t = 16 * 1024 - 256)]
    pub max_frame: usize,
    /// Give up after this many rounds.
    #[arg(long, default_value_t = 1000)]
    pub max_rounds: u64,
    /// Spread the writes over K named counters (c0 … c{K-1}); 0: the default counter.
    #[arg(long, default_value_t = 0)]
    pub counters: usize,
    /// Print the report as one JSON object on the last line.
    #[arg(long)]
    pub json: bool,
    /// Draw the fraction of converged nodes per round into this SVG file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

/// `tally chaos`.
#[derive(Debug, clap::Args)]
pub struct ChaosArgs {
    /// Local nodes, each in a network namespace of its own (needs root, ip(8), iptables).
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Existing nodes instead (`http://host:port`, comma-separated): clients and checker
    /// only, no nemesis, no root.
    #[arg(long, value_delimiter = ',')]
    pub urls: Vec<String>,
    /// How long the clients write.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Length of each fault.
    #[arg(long, default_value = "4s", value_parser = parse_duration)]
    pub fault: Duration,
    /// Healthy time between faults.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub heal: Duration,
    /// The nemesis' seed (default: from the clock; printed either way).
    #[arg(long)]
    pub seed: Option<u64>,
    /// The faults to draw from.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "partition,isolate,bridge,kill,isolate-kill,loss"
    )]
    pub faults: Vec<crate::chaos::nemesis::Kind>,
    /// Clients per node.
    #[arg(long, default_value_t = 2)]
    pub clients: usize,
    /// Client request timeout.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Pause between two writes of one client.
    #[arg(long, default_value = "20ms", value_parser = parse_duration)]
    pub pause: Duration,
    /// The local nodes' gossip interval.
    #[arg(long, default_value = "200ms", value_parser = parse_duration)]
    pub sync_interval: Duration,
    /// How long the nodes may take to agree after the last phase.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub agree_within: Duration,
    /// Restart killed nodes on an emptied data directory: a broken operator, to show that
    /// the checker sees the writes it loses.
    #[arg(long)]
    pub wipe_on_restart: bool,
    /// Add the TAP board node (this `tally-tap-node` binary, from firmware/linux-tap) as one
    /// more participant, written to through its buttons (needs dnsmasq).
    #[arg(long)]
    pub board: Option<PathBuf>,
    /// Print the report as one JSON object on the last line.
    #[arg(long)]
    pub json: bool,
}

/// `tally bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Concurrency levels, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,10,50")]
    pub concurrency: Vec<usize>,
    /// Duration of each level.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Load an existing node instead of starting one.
    #[arg(long)]
    pub node: Option<String>,
    /// Start the node with a data directory (durable writes, fsync always).
    #[arg(long)]
    pub durable: bool,
    /// Instead: idle traffic of a local cluster with discovery, in a network namespace of its
    /// own (root), after `--warmup`, over `--window`.
    #[arg(long)]
    pub idle: bool,
    /// Instead: how fast single increments reach every node, agreement after 1000 writes, and
    /// write throughput with and without eager pushes.
    #[arg(long)]
    pub latency: bool,
    /// Nodes of the `--idle` / `--latency` cluster.
    #[arg(long, default_value_t = 5)]
    pub nodes: usize,
    /// Their round interval.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub sync_interval: Duration,
    /// Idle time before the idle window.
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// The idle window.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub window: Duration,
    /// Single increments timed by `--latency`.
    #[arg(long, default_value_t = 12)]
    pub samples: usize,
    /// Largest frame the `--idle` / `--latency` nodes send as a datagram (0: TCP only).
    #[arg(long, default_value_t = tally_core::Config::DATAGRAM)]
    pub max_datagram: u16,
}

/// `tally node`.
#[derive(Debug, clap::Args)]
pub struct NodeArgs {
    /// Gossip listen address (host:port).
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub listen: SocketAddr,
    /// HTTP API listen address (loopback unless you say otherwise).
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub http: SocketAddr,
    /// Node id (default: the listen address, as in the reference).
    #[arg(long)]
    pub id: Option<String>,
    /// Static peers, comma-separated host:port.
    #[arg(long, value_delimiter = ',')]
    pub peers: Vec<String>,
    /// Discovery service URL, e.g. http://127.0.0.1:7000.
    #[arg(long)]
    pub discovery: Option<String>,
    /// DNS seeds, comma-separated: NAME:PORT (its A/AAAA records at PORT) or an SRV name
    /// (_tally._tcp.example.org), resolved every --dns-interval into peers.
    #[arg(long, value_delimiter = ',', value_parser = parse_dns_seed)]
    pub peers_dns: Vec<crate::discovery::dns::DnsSeed>,
    /// The DNS server the seeds are asked (IP or IP:PORT; default: the system's resolv.conf).
    #[arg(long, value_parser = parse_dns_server)]
    pub dns_server: Option<SocketAddr>,
    /// Find peers on the LAN by mDNS/DNS-SD (`_tally._tcp`) and announce this node there.
    /// Off by default: a bare start never multicasts.
    #[arg(long)]
    pub mdns: bool,
    /// How often DNS seeds are resolved again.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub dns_interval: Duration,
    /// Heartbeat to the discovery service at least this often. The default is safe for the
    /// reference service (it drops a node after 5 s); a Tally service that announces a longer
    /// expiry gets heartbeats every third of it, at most every 8 s.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub discovery_heartbeat: Duration,
    /// Data directory for durable state.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Gossip round interval, e.g. 200ms or 2s.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub sync_interval: Duration,
    /// Peers contacted per round.
    #[arg(long, default_value_t = 2)]
    pub fanout: u8,
    /// Frames of at most this many bytes go as one UDP datagram (on the gossip port) to Tally
    /// peers that announced datagrams; 0: TCP only, and datagrams are not announced.
    #[arg(long, default_value_t = tally_core::Config::DATAGRAM)]
    pub max_datagram: u16,
    /// Run without SWIM membership (on by default whenever datagrams are on): peers are then
    /// marked down only by failed sends and unanswered pulls.
    #[arg(long)]
    pub no_membership: bool,
    /// Log level or filter (error, warn, info, debug, trace, or a tracing filter).
    #[arg(long, default_value = "info")]
    pub log: String,
    /// File holding the cluster key as hex (at least 32 hex digits): authenticated frames.
    /// The key can also come from the TALLY_CLUSTER_KEY environment variable; never from the
    /// command line.
    #[arg(long)]
    pub cluster_key_file: Option<PathBuf>,
    /// File holding a bearer token required on the API's write routes.
    #[arg(long)]
    pub api_token_file: Option<PathBuf>,
    /// Require the token on read routes too.
    #[arg(long, requires = "api_token_file")]
    pub api_token_reads: bool,
    /// Requests per second allowed per client address on the API (default: no limit).
    #[arg(long)]
    pub http_rate_limit: Option<u32>,
    /// When writes reach the disk: `always` (answer only after fsync: the durability
    /// promise), `interval=DUR` (fsync every DUR; a crash loses up to DUR of acknowledged
    /// writes), `never` (UNSAFE: the OS decides).
    #[arg(long, default_value = "always")]
    pub fsync: crate::wal::FsyncPolicy,
    /// How often the state is snapshotted into the log, compacting it.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub snapshot_every: Duration,
}

/// `tally discovery`.
#[derive(Debug, clap::Args)]
pub struct DiscoveryArgs {
    /// HTTP listen address.
    #[arg(long, default_value = "127.0.0.1:7000")]
    pub listen: SocketAddr,
    /// Drop peers not heard from for this long (announced to Tally nodes, which heartbeat
    /// every third of it, at most every 8 s; reference nodes heartbeat every second).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub cleanup_after: Duration,
    /// Log level or filter.
    #[arg(long, default_value = "info")]
    pub log: String,
}

/// `tally gateway`.
#[derive(Debug, clap::Args)]
pub struct GatewayArgs {
    /// HTTP listen address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Node API URLs, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        conflicts_with = "discovery",
        required_unless_present = "discovery"
    )]
    pub nodes: Vec<String>,
    /// Discovery service URL (nodes are the HTTP URLs it lists).
    #[arg(long)]
    pub discovery: Option<String>,
    /// File holding the nodes' API token (sent to every node).
    #[arg(long)]
    pub node_token_file: Option<PathBuf>,
    /// Log level or filter.
    #[arg(long, default_value = "info")]
    pub log: String,
}

/// `tally cluster`.
#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Gossip round interval.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub sync_interval: Duration,
    /// Stop by itself after this long (default: run until Ctrl-C).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Keep the nodes' data here (default: a temporary directory removed at exit).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Log level or filter.
    #[arg(long, default_value = "info")]
    pub log: String,
}

/// `tally get`.
#[derive(Debug, clap::Args)]
pub struct ClientArgs {
    /// Node (or gateway) base URL, e.g. http://127.0.0.1:8000.
    #[arg(long, alias = "gateway")]
    pub node: String,
    /// Print the JSON answer instead of the bare value.
    #[arg(long)]
    pub json: bool,
}

/// `tally get`.
#[derive(Debug, clap::Args)]
pub struct GetArgs {
    /// A named counter (1–64 bytes of A-Z a-z 0-9 . _ -); without it, the default counter.
    pub name: Option<String>,
    /// Where to ask.
    #[command(flatten)]
    pub target: ClientArgs,
}

/// `tally inc` / `tally dec`.
#[derive(Debug, clap::Args)]
pub struct WriteArgs {
    /// A named counter (1–64 bytes of A-Z a-z 0-9 . _ -); without it, the default counter.
    pub name: Option<String>,
    /// Amount (a positive integer).
    #[arg(long, default_value_t = 1)]
    pub by: u64,
    /// Where to send it.
    #[command(flatten)]
    pub target: ClientArgs,
}

fn parse_dns_seed(s: &str) -> Result<crate::discovery::dns::DnsSeed, String> {
    crate::discovery::dns::DnsSeed::parse(s)
}

/// A DNS server: `IP` (port 53) or `IP:PORT`.
fn parse_dns_server(s: &str) -> Result<SocketAddr, String> {
    if let Ok(ip) = s.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    s.parse().map_err(|_| format!("{s:?} is not IP or IP:PORT"))
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (durations read like 200ms, 2s, 1m)"))
}

/// Sets up logging at `level` (a level name or a tracing filter).
pub fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs the command line; the exit code is the process's.
pub fn run(cli: Cli) -> ExitCode {
    let command = match cli.command {
        #[cfg(feature = "dev-tools")]
        Command::Demo => {
            let (ok, report) = crate::demo::run(crate::demo::DemoConfig::default());
            print!("{report}");
            return if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
        }
        Command::Chaos(args) => return chaos(args),
        Command::Bench(args) if args.idle || args.latency => return quiet_bench(&args),
        #[cfg(feature = "dev-tools")]
        Command::Sim(args) => return report(simulate::run(args)),
        #[cfg(feature = "dev-tools")]
        Command::Scaling(args) => return report(simulate::scaling(args)),
        #[cfg(feature = "dev-tools")]
        Command::SwimSim(args) => return report(simulate::swim(args)),
        other => other,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match command {
            Command::Node(args) => report(node::run(args).await),
            Command::Discovery(args) => report(node::run_discovery(args).await),
            Command::Cluster(args) => report(local_cluster::run(args).await),
            Command::Gateway(args) => report(node::run_gateway(args).await),
            Command::Get(args) => client::get(args).await,
            Command::Inc(args) => client::write(args, client::CounterOp::Increment).await,
            Command::Dec(args) => client::write(args, client::CounterOp::Decrement).await,
            Command::List(args) => client::list(args).await,
            #[cfg(feature = "dev-tools")]
            Command::Demo | Command::Sim(_) | Command::Scaling(_) | Command::SwimSim(_) => {
                ExitCode::SUCCESS
            }
            Command::Chaos(_) => ExitCode::SUCCESS,
            Command::Bench(args) => {
                init_logging("warn");
                match crate::bench::run(&args.concurrency, args.duration, args.node, args.durable)
                    .await
                {
                    Ok(report) => {
                        print!("{report}");
                        ExitCode::SUCCESS
                    }
                    Err(e) => report(Err(e)),
                }
            }
        }
    })
}

fn report(r: anyhow::Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `tally bench --idle --latency`: in a network namespace of its own, entered before the
/// runtime starts any thread.
fn quiet_bench(args: &BenchArgs) -> ExitCode {
    init_logging("warn");
    if let Err(e) = crate::quiet_bench::enter_private_network() {
        return report(Err(e));
    }
    let opts = crate::quiet_bench::QuietOptions {
        nodes: args.nodes,
        sync_interval: args.sync_interval,
        warmup: args.warmup,
        window: args.window,
        idle: args.idle,
        latency: args.latency,
        samples: args.samples,
        max_datagram: args.max_datagram,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return report(Err(e.into())),
    };
    report(runtime.block_on(async {
        let table = crate::quiet_bench::run(&opts).await?;
        print!("{table}");
        Ok(())
    }))
}

/// `tally chaos`: runs the harness, prints the report; fails when the checker does.
fn chaos(args: ChaosArgs) -> ExitCode {
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: cannot find this binary: {e}");
            return ExitCode::FAILURE;
        }
    };
    let opts = crate::chaos::Options {
        nodes: args.nodes,
        urls: args.urls,
        duration: args.duration,
        fault: args.fault,
        heal: args.heal,
        seed,
        kinds: args.faults,
        clients: args.clients,
        client: crate::chaos::client::ClientConfig {
            timeout: args.timeout,
            pause: args.pause,
        },
        sync_interval: args.sync_interval,
        agree_within: args.agree_within,
        wipe_on_restart: args.wipe_on_restart,
        exe,
        dir: std::env::temp_dir().join(format!("tally-chaos-{}", std::process::id())),
        board: args.board,
    };
    eprintln!("chaos: seed {seed}");
    match crate::chaos::run(&opts) {
        Ok(r) => {
            println!("{r}");
            if args.json {
                match serde_json::to_string(&r) {
                    Ok(j) => println!("{j}"),
                    Err(e) => eprintln!("error: {e}"),
                }
            }
            if r.valid {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e:#} (seed {seed})");
            ExitCode::FAILURE
        }
    }
}
