//! `tally swim-sim`: the dead-node detection benchmark of SWIM membership on the simulator
//! ([`tally_core::sim::SwimNet`]): N nodes on a lossy datagram network for a stretch of
//! virtual time; every `kill_every` one random node (never node 0, the seed) is killed and
//! restarted `down_for` later. It reports how long each surviving node took to declare each
//! killed node down (median, p90, max, and the median of the last observer per kill), how many
//! nodes missed a detection, and false positives: `Down` events about a node that was running (counted apart during
//! the 30 s warm-up, in which all nodes join through node 0 at once).

use serde::Serialize;
use tally_core::membership::{lan_config, OVERHEAD};
use tally_core::sim::{SimRng, SwimNet};
use tally_core::{Duration, Instant};

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SwimBenchOptions {
    /// Nodes.
    pub nodes: usize,
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Virtual time to run.
    pub duration: Duration,
    /// A kill every this often.
    pub kill_every: Duration,
    /// A killed node restarts after this long.
    pub down_for: Duration,
    /// Seed.
    pub seed: u64,
    /// Overrides of [`lan_config`]: suspicion before down, indirect probes, probe period.
    pub suspect: Option<Duration>,
    /// Indirect probes per failed direct probe.
    pub indirect: Option<usize>,
    /// Probe period.
    pub probe_period: Option<Duration>,
    /// Transmissions of each membership update by each node.
    pub max_transmissions: Option<u8>,
}

/// What it measured (all times in virtual milliseconds).
#[derive(Clone, Debug, Serialize)]
pub struct SwimBenchReport {
    /// Nodes.
    pub nodes: usize,
    /// Loss probability.
    pub loss: f64,
    /// Virtual seconds run.
    pub seconds: u64,
    /// Nodes killed (and restarted).
    pub kills: usize,
    /// (observer, kill) pairs in which the observer declared the killed node down.
    pub detections: usize,
    /// (observer, kill) pairs without a detection before the restart.
    pub missed: usize,
    /// Median time from a kill to an observer's `Down`, over all detections.
    pub median_ms: u64,
    /// 90th percentile of the same.
    pub p90_ms: u64,
    /// Slowest detection.
    pub max_ms: u64,
    /// Median over kills of the time until the last observer declared it down.
    pub median_last_ms: u64,
    /// `Down` events about nodes that were running, after the warm-up.
    pub false_positives: usize,
    /// The same during the 30 s warm-up, while every node joins through node 0 at once.
    pub warmup_false_positives: usize,
    /// Datagrams sent per node per second, and their bytes.
    pub datagrams_per_node_s: f64,
    /// Bytes (payload) per node per second.
    pub bytes_per_node_s: f64,
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted.get(i).copied().unwrap_or(0)
}

/// Runs the benchmark.
pub fn run(o: &SwimBenchOptions) -> SwimBenchReport {
    let mut config = lan_config(1200 - OVERHEAD);
    let std = |d: Duration| core::time::Duration::from_millis(d.as_millis());
    if let Some(d) = o.suspect {
        config.suspect_to_down_after = std(d);
    }
    if let Some(n) = o.indirect.and_then(std::num::NonZeroUsize::new) {
        config.num_indirect_probes = n;
    }
    if let Some(n) = o.max_transmissions.and_then(std::num::NonZeroU8::new) {
        config.max_transmissions = n;
    }
    if let Some(d) = o.probe_period {
        config.probe_period = std(d);
    }
    let mut net = SwimNet::new(o.nodes, config, o.loss, o.seed);
    let mut rng = SimRng::new(o.seed ^ 0x5157);
    // Settle: everybody joins before the first kill.
    let warmup = Duration::from_secs(30);
    let start = Instant::ZERO + warmup;
    let end = start + o.duration;
    // (subject, killed at, restarted at)
    let mut kills: Vec<(usize, Instant, Instant)> = Vec::new();
    let mut t = start;
    while t + o.kill_every <= end && o.nodes > 2 {
        net.run_until(t);
        let victim = rng.range(1, (o.nodes - 1) as u64) as usize;
        net.kill(victim);
        let back = t + o.down_for;
        net.run_until(back);
        net.restart(victim, 0);
        kills.push((victim, t, back));
        t += o.kill_every;
    }
    net.run_until(end);

    let running = |subject: usize, at: Instant| {
        !kills
            .iter()
            .any(|&(s, from, to)| s == subject && at >= from && at <= to + Duration::from_secs(1))
    };
    let mut times = Vec::new();
    let mut lasts = Vec::new();
    let mut missed = 0;
    for &(subject, from, to) in &kills {
        let mut last = 0;
        for observer in (0..o.nodes).filter(|&x| x != subject) {
            // An observer that was itself down at the kill is not counted.
            if !running(observer, from) {
                continue;
            }
            let first = net
                .downs
                .iter()
                .filter(|d| d.observer == observer && d.subject == subject)
                .find(|d| d.at >= from && d.at <= to);
            match first {
                Some(d) => {
                    let ms = (d.at - from).as_millis();
                    last = last.max(ms);
                    times.push(ms);
                }
                None => missed += 1,
            }
        }
        lasts.push(last);
    }
    let false_at = |d: &&tally_core::sim::Seen| running(d.subject, d.at);
    let false_positives = net
        .downs
        .iter()
        .filter(false_at)
        .filter(|d| d.at >= start)
        .count();
    let warmup_false_positives = net
        .downs
        .iter()
        .filter(false_at)
        .filter(|d| d.at < start)
        .count();
    times.sort_unstable();
    lasts.sort_unstable();
    let secs = (warmup.as_millis() + o.duration.as_millis()) as f64 / 1000.0;
    let per_node = |x: u64| x as f64 / o.nodes as f64 / secs;
    SwimBenchReport {
        nodes: o.nodes,
        loss: o.loss,
        seconds: o.duration.as_millis() / 1000,
        kills: kills.len(),
        detections: times.len(),
        missed,
        median_ms: percentile(&times, 0.5),
        p90_ms: percentile(&times, 0.9),
        max_ms: times.last().copied().unwrap_or(0),
        median_last_ms: percentile(&lasts, 0.5),
        false_positives,
        warmup_false_positives,
        datagrams_per_node_s: per_node(net.sent.0),
        bytes_per_node_s: per_node(net.sent.1),
    }
}
