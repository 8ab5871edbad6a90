//! `tally sim`: N real core engines on the core's simulated network, driven round by round,
//! measured, and reported (text, JSON, SVG plot).
//!
//! Rounds are sync intervals. With no workload flags, one random node increments once at time 0
//! and `rounds` counts sync intervals until every node holds the value.

use serde::Serialize;
use std::time::Instant as WallClock;
use tally_core::sim::{NetConfig, Network, SimRng, Topology};
use tally_core::{Config, Duration, Instant, MessageType};

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// Number of nodes.
    pub nodes: usize,
    /// Peers per round.
    pub fanout: u8,
    /// Sync interval (virtual).
    pub sync_interval: Duration,
    /// Frame loss probability.
    pub loss: f64,
    /// Number of writer nodes (0: one write by one random node).
    pub writers: usize,
    /// Total operations spread over the writers (one per writer per round).
    pub ops: usize,
    /// A partition into two halves from round `.0` until round `.1`.
    pub partition: Option<(u64, u64)>,
    /// Seed.
    pub seed: u64,
    /// Static peers per node at start (others are learned from senders).
    pub initial_peers: usize,
    /// Push only what peers lack (false: full state, as the reference).
    pub delta: bool,
    /// Largest frame a node sends.
    pub max_frame: usize,
    /// Give up after this many rounds.
    pub max_rounds: u64,
    /// Spread the writes over this many named counters (`c0` … `c{K-1}`, one per operation in
    /// turn); 0: the default counter.
    pub counters: usize,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            nodes: 100,
            fanout: 2,
            sync_interval: Duration::from_secs(2),
            loss: 0.0,
            writers: 0,
            ops: 0,
            partition: None,
            seed: 1,
            initial_peers: 8,
            delta: true,
            max_frame: 16 * 1024 - 256,
            max_rounds: 1000,
            counters: 0,
        }
    }
}

/// Bytes and frames of one message type.
#[derive(Clone, Debug, Serialize)]
pub struct TypeTotals {
    /// Frames sent.
    pub messages: u64,
    /// Bytes sent (TCP payloads).
    pub bytes: u64,
    /// Bytes per node per round.
    pub bytes_per_node_per_round: f64,
}

/// What a run measured. Serialised as the `--json` line.
#[derive(Clone, Debug, Serialize)]
pub struct SimReport {
    /// Nodes.
    pub nodes: usize,
    /// Seed.
    pub seed: u64,
    /// Every node holds the exact value.
    pub converged: bool,
    /// Sync intervals until convergence (or until giving up).
    pub rounds: u64,
    /// Virtual time until convergence, ms.
    pub virtual_ms: u64,
    /// Rounds from the heal of the partition until convergence (if there was one).
    pub rounds_after_heal: Option<u64>,
    /// Frames sent in all.
    pub messages: u64,
    /// Bytes sent in all.
    pub bytes: u64,
    /// Frames per node per round.
    pub messages_per_node_per_round: f64,
    /// Bytes per node per round.
    pub bytes_per_node_per_round: f64,
    /// Split by type.
    pub push: TypeTotals,
    /// Split by type.
    pub digest_pull: TypeTotals,
    /// Split by type.
    pub digest_ack: TypeTotals,
    /// Split by type (named counters' Pushes).
    pub named_push: TypeTotals,
    /// Named counters written (0: the default counter).
    pub counters: usize,
    /// Largest per-node memory (engine plus its heap), bytes.
    pub peak_node_memory_bytes: usize,
    /// Largest frame any node sent, bytes (flag byte included, TCP header not).
    pub largest_frame: usize,
    /// Frames delivered.
    pub delivered: u64,
    /// Delivered frames per wall-clock second.
    pub delivered_per_second: f64,
    /// Wall-clock run time, ms.
    pub wall_ms: u64,
    /// The expected final value.
    pub expected_value: i128,
    /// Fraction of nodes holding the value after each round.
    pub converged_fraction: Vec<f64>,
    /// Delta sync was on.
    pub delta: bool,
    /// Message bytes of full-state Pushes.
    pub full_push_bytes: u64,
    /// Message bytes of delta Pushes.
    pub delta_push_bytes: u64,
}

/// Runs a simulation; `progress(round)` is called after every round.
pub fn run(opts: &SimOptions, mut progress: impl FnMut(u64, f64)) -> SimReport {
    let mut config = Config::host().with_sync_interval(opts.sync_interval);
    config.fanout = opts.fanout;
    config.delta_sync = opts.delta;
    config.max_frame_out = opts.max_frame;
    let wire = NetConfig {
        loss: opts.loss,
        latency_min: Duration::from_millis(1),
        latency_max: Duration::from_millis((opts.sync_interval.as_millis() / 20).max(2)),
        ..NetConfig::default()
    };
    let n = opts.nodes.max(1);
    let topology = Topology::Random(opts.initial_peers.min(n.saturating_sub(1)));
    let mut net = Network::new(n, config, wire, topology, opts.seed);
    let mut rng = SimRng::new(opts.seed ^ 0x5eed);
    let writers: Vec<usize> = if opts.writers == 0 {
        vec![rng.range(0, n as u64 - 1) as usize]
    } else {
        // Distinct writers: a seeded partial shuffle.
        let mut all: Vec<usize> = (0..n).collect();
        for i in 0..opts.writers.min(n) {
            let j = rng.range(i as u64, n as u64 - 1) as usize;
            all.swap(i, j);
        }
        all.truncate(opts.writers.min(n));
        all
    };
    let total_ops = if opts.writers == 0 {
        1
    } else {
        opts.ops.max(writers.len())
    };
    let wall = WallClock::now();
    let round = opts.sync_interval;
    let mut done_ops = 0usize;
    let mut fractions = Vec::new();
    let mut converged_at: Option<u64> = None;
    let mut peak_memory = 0usize;
    let mut r = 0u64;
    let heal_round = opts.partition.map(|p| p.1);
    while r < opts.max_rounds {
        if let Some((from, to)) = opts.partition {
            if r == from {
                net.partition(|i| u16::from(i >= n / 2));
            }
            if r == to {
                net.heal();
            }
        }
        // One operation per writer per round until the budget is spent.
        for &w in &writers {
            if done_ops < total_ops {
                if opts.counters == 0 {
                    net.increment(w, 1);
                } else {
                    net.increment_named(w, &format!("c{}", done_ops % opts.counters), 1);
                }
                done_ops += 1;
            }
        }
        r += 1;
        net.run_until(Instant::ZERO + round.saturating_mul(r));
        let fraction = net.converged_count() as f64 / n as f64;
        fractions.push(fraction);
        peak_memory = peak_memory.max(net.max_memory());
        progress(r, fraction);
        let healed = heal_round.is_none_or(|h| r >= h);
        if done_ops >= total_ops && healed && net.converged() {
            converged_at = Some(r);
            break;
        }
    }
    let wall_ms = u64::try_from(wall.elapsed().as_millis()).unwrap_or(u64::MAX);
    let stats = net.stats().clone();
    let rounds = converged_at.unwrap_or(r);
    let per = |x: u64| x as f64 / (n as f64 * rounds.max(1) as f64);
    let by_type = |t: MessageType| {
        let k = t.index();
        let messages = stats.sent.get(k).copied().unwrap_or(0);
        let bytes = stats.bytes.get(k).copied().unwrap_or(0);
        TypeTotals {
            messages,
            bytes,
            bytes_per_node_per_round: per(bytes),
        }
    };
    SimReport {
        nodes: n,
        seed: opts.seed,
        converged: converged_at.is_some(),
        rounds,
        virtual_ms: round.saturating_mul(rounds).as_millis(),
        rounds_after_heal: converged_at
            .zip(heal_round)
            .map(|(c, h)| c.saturating_sub(h)),
        messages: stats.messages(),
        bytes: stats.total_bytes(),
        messages_per_node_per_round: per(stats.messages()),
        bytes_per_node_per_round: per(stats.total_bytes()),
        push: by_type(MessageType::Push),
        digest_pull: by_type(MessageType::DigestPull),
        digest_ack: by_type(MessageType::DigestAck),
        named_push: by_type(MessageType::NamedPush),
        counters: opts.counters,
        peak_node_memory_bytes: peak_memory,
        largest_frame: stats.largest_frame,
        delivered: stats.delivered,
        delivered_per_second: stats.delivered as f64 / (wall_ms.max(1) as f64 / 1000.0),
        wall_ms,
        expected_value: net.expected(),
        converged_fraction: fractions,
        delta: opts.delta,
        full_push_bytes: net.engine_total(|s| s.full_push_bytes),
        delta_push_bytes: net.engine_total(|s| s.delta_push_bytes),
    }
}

/// Draws the fraction of converged nodes per round as an SVG.
pub fn plot(reports: &[(String, &SimReport)], path: &std::path::Path) -> anyhow::Result<()> {
    use plotters::prelude::*;
    let rounds = reports
        .iter()
        .map(|(_, r)| r.converged_fraction.len())
        .max()
        .unwrap_or(1)
        .max(1);
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut chart = ChartBuilder::on(&root)
        .margin(20)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .caption(
            "Fraction of nodes holding the value, per sync round",
            ("sans-serif", 20),
        )
        .build_cartesian_2d(0f64..rounds as f64, 0f64..1.05f64)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_desc("round")
        .y_desc("converged")
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let colors = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
    for (i, (label, r)) in reports.iter().enumerate() {
        let color = colors.get(i % colors.len()).copied().unwrap_or(BLACK);
        let points = std::iter::once((0.0, 0.0)).chain(
            r.converged_fraction
                .iter()
                .enumerate()
                .map(|(k, f)| ((k + 1) as f64, *f)),
        );
        chart
            .draw_series(LineSeries::new(points, &color))
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .label(label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}
