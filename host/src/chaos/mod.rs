//! `tally chaos`: a fault-injection harness in the manner of Jepsen and Maelstrom's pn-counter
//! workload. Real `tally node` processes, each in a network namespace of its own
//! ([`netns`], [`cluster`]); a seeded nemesis of partitions, bridges, kill -9 and packet loss
//! ([`nemesis`]); clients that add random deltas through their own node and record what they
//! were told ([`client`]); after healing, a checker that knows what the final value may be
//! ([`checker`]). With `--urls` only the clients and the checker run, against any nodes, in
//! this process's namespace (no root, no nemesis: the user brings the faults).
//!
//! Time here is wall-clock time: phases are slept through; the seed fixes the schedule of
//! faults, not how requests interleave with them.

pub mod board;
pub mod checker;
pub mod client;
pub mod cluster;
pub mod nemesis;
pub mod netns;
mod report;

pub use report::{PhaseFigures, Report};

use anyhow::{bail, Context, Result};
use checker::Outcome;
use client::{ClientConfig, Target};
use nemesis::{Fault, Kind, Phase};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Local nodes to start, each in its own namespace (ignored with `urls`).
    pub nodes: usize,
    /// Existing nodes' HTTP addresses (`http://host:port`): clients and checker only.
    pub urls: Vec<String>,
    /// How long the clients run.
    pub duration: Duration,
    /// Length of each fault phase.
    pub fault: Duration,
    /// Length of each healthy phase between faults.
    pub heal: Duration,
    /// The nemesis' seed.
    pub seed: u64,
    /// The faults it draws from.
    pub kinds: Vec<Kind>,
    /// Clients per node.
    pub clients: usize,
    /// Client settings.
    pub client: ClientConfig,
    /// The nodes' gossip interval.
    pub sync_interval: Duration,
    /// How long the nodes may take to agree once healed.
    pub agree_within: Duration,
    /// Restart killed nodes on an emptied data directory (a broken operator, for showing that
    /// the checker sees a loss).
    pub wipe_on_restart: bool,
    /// The `tally` binary the nodes run.
    pub exe: PathBuf,
    /// Where the nodes keep their data and logs (emptied and removed afterwards).
    pub dir: PathBuf,
    /// The TAP board node's binary (`tally-tap-node`): it joins as one more participant.
    pub board: Option<PathBuf>,
}

/// Set by SIGINT / SIGTERM: the run stops, and everything it made is removed.
fn interrupted() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let set = Arc::clone(&flag);
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            let Ok(mut term) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            else {
                return;
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            set.store(true, Ordering::Relaxed);
        });
    });
    flag
}

/// Sleeps `length` unless interrupted.
fn pause(length: Duration, stop: &AtomicBool) -> Result<()> {
    let until = Instant::now() + length;
    while Instant::now() < until {
        if stop.load(Ordering::Relaxed) {
            bail!("interrupted");
        }
        std::thread::sleep(Duration::from_millis(20).min(until - Instant::now()));
    }
    Ok(())
}

/// Runs the harness; the report says whether the checker passed.
pub fn run(opts: &Options) -> Result<Report> {
    let stop = interrupted();
    if !opts.urls.is_empty() {
        let targets = opts
            .urls
            .iter()
            .map(|u| parse_url(u))
            .collect::<Result<Vec<_>>>()?;
        let phases = vec![Phase {
            fault: None,
            length: opts.duration,
        }];
        return drive(opts, &targets, None, &phases, &stop, |_, _| Ok(()));
    }
    std::fs::create_dir_all(&opts.dir)
        .with_context(|| format!("cannot create {}", opts.dir.display()))?;
    let board_dir = opts.board.as_ref().map(|_| opts.dir.as_path());
    let lab =
        netns::Lab::create(opts.nodes, board_dir).context("cannot make the network (root?)")?;
    let participants = lab.participants();
    let mut cluster = cluster::Cluster::start(
        lab,
        opts.exe.clone(),
        opts.dir.clone(),
        opts.sync_interval,
        opts.wipe_on_restart,
        opts.board.clone(),
    )?;
    cluster.wait_up(Duration::from_secs(20))?;
    let phases = nemesis::schedule(
        opts.seed,
        participants,
        &opts.kinds,
        opts.duration,
        opts.fault,
        opts.heal,
    )?;
    let targets = cluster.targets();
    let board = cluster.board();
    drive(
        opts,
        &targets,
        board,
        &phases,
        &stop,
        |fault, start| match start {
            true => nemesis::inflict(&mut cluster, fault),
            false => nemesis::heal(&mut cluster, fault),
        },
    )
}

/// `http://host:port` (or `host:port`) → a target in this namespace.
fn parse_url(url: &str) -> Result<Target> {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let hostport = rest.split('/').next().unwrap_or(rest);
    let addr = std::net::ToSocketAddrs::to_socket_addrs(hostport)
        .with_context(|| format!("{url}: not host:port"))?
        .next()
        .with_context(|| format!("{url}: no address"))?;
    Ok(Target { netns: None, addr })
}

/// Runs the clients through `phases`, calling `nemesis(fault, true)` when a fault phase
/// starts and `(fault, false)` when it ends; then waits for agreement and checks.
fn drive(
    opts: &Options,
    targets: &[Target],
    board: Option<Arc<Mutex<board::Board>>>,
    phases: &[Phase],
    stop: &AtomicBool,
    mut nemesis: impl FnMut(&Fault, bool) -> Result<()>,
) -> Result<Report> {
    let started = Instant::now();
    let clients_stop = Arc::new(AtomicBool::new(false));
    let mut handles = client::start(
        targets,
        opts.clients,
        opts.client,
        opts.seed,
        started,
        &clients_stop,
    );
    if let Some(b) = &board {
        let (b, stop) = (Arc::clone(b), Arc::clone(&clients_stop));
        let (node, seed, pause) = (targets.len(), opts.seed, opts.client.pause);
        handles.push(std::thread::spawn(move || {
            Ok(press_board(&b, node, seed, pause, started, &stop))
        }));
    }
    let mut spans = Vec::new();
    let mut outcome = Ok(());
    for phase in phases {
        let from = started.elapsed();
        if let Some(f) = &phase.fault {
            eprintln!("chaos: {:>6.1} s  {f}", from.as_secs_f64());
            outcome = nemesis(f, true).and_then(|()| pause(phase.length, stop));
            let healed = nemesis(f, false);
            outcome = outcome.and(healed);
            eprintln!("chaos: {:>6.1} s  healed", started.elapsed().as_secs_f64());
        } else {
            outcome = pause(phase.length, stop);
        }
        spans.push((phase.fault.clone(), from, started.elapsed()));
        if outcome.is_err() {
            break;
        }
    }
    clients_stop.store(true, Ordering::Relaxed);
    let mut writes = Vec::new();
    for h in handles {
        match h.join() {
            Ok(Ok(w)) => writes.extend(w),
            Ok(Err(e)) => outcome = outcome.and(Err(e)),
            Err(_) => outcome = outcome.and(Err(anyhow::anyhow!("a client thread panicked"))),
        }
    }
    outcome?;
    let healed_at = Instant::now();
    let (reads, agreed) = agree(targets, board.as_deref(), opts.agree_within, stop)?;
    let history: Vec<(i64, Outcome)> = writes.iter().map(|w| (w.delta, w.outcome)).collect();
    let verdict = checker::check(&history, &reads);
    Ok(Report::new(
        opts.seed,
        &writes,
        &spans,
        agreed.map(|t| t.duration_since(healed_at)),
        reads,
        verdict,
    ))
}

/// Polls every node until all read the same value three times running (or `within` passes):
/// the reads, and when they agreed.
fn agree(
    targets: &[Target],
    board: Option<&Mutex<board::Board>>,
    within: Duration,
    stop: &AtomicBool,
) -> Result<(Vec<Option<i64>>, Option<Instant>)> {
    let deadline = Instant::now() + within;
    let mut same = 0;
    let mut since = None;
    let mut last: Vec<Option<i64>> = Vec::new();
    loop {
        let mut reads = client::read_all(targets, Duration::from_secs(1));
        if let Some(b) = board {
            reads.push(cluster::lock(b).value());
        }
        let agreed = reads.first().copied().flatten().is_some()
            && reads.iter().all(|r| *r == reads.first().copied().flatten());
        if agreed && reads == last {
            same += 1;
        } else if agreed {
            same = 1;
            since = Some(Instant::now());
        } else {
            same = 0;
        }
        last = reads;
        if same >= 3 {
            return Ok((last, since));
        }
        if Instant::now() > deadline {
            return Ok((last, None));
        }
        pause(Duration::from_millis(200), stop)?;
    }
}

/// The board's client: presses its buttons (±1, seeded) until `stop`.
fn press_board(
    board: &Mutex<board::Board>,
    node: usize,
    seed: u64,
    pause: Duration,
    started: Instant,
    stop: &AtomicBool,
) -> Vec<client::Write> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed ^ 0xb0a2d);
    let mut writes = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let up = rng.random_bool(0.5);
        let at = started.elapsed();
        let outcome = cluster::lock(board).press(up);
        writes.push(client::Write {
            node,
            delta: if up { 1 } else { -1 },
            outcome,
            at,
        });
        std::thread::sleep(pause);
    }
    writes
}
