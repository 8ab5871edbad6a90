//! A local cluster of real `tally-core` engines on the core's deterministic simulated network:
//! a few nodes take writes, the wire loses and reorders frames, and every node converges.

use std::fmt::Write as _;
use tally_core::sim::{NetConfig, Network, SimRng, Topology};
use tally_core::{Config, Duration};

/// Settings of a demo run.
#[derive(Clone, Copy, Debug)]
pub struct DemoConfig {
    /// Number of nodes.
    pub nodes: usize,
    /// Operations spread over the nodes.
    pub ops: usize,
    /// Probability that a frame is lost.
    pub loss: f64,
    /// Seed of the run.
    pub seed: u64,
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self {
            nodes: 5,
            ops: 1000,
            loss: 0.05,
            seed: 1,
        }
    }
}

/// Runs the demo and returns a report, one line per sync interval until convergence.
pub fn run(cfg: DemoConfig) -> (bool, String) {
    let sync = Duration::from_secs(2);
    let config = Config::host().with_sync_interval(sync);
    let wire = NetConfig {
        loss: cfg.loss,
        duplicate: 0.01,
        ..NetConfig::default()
    };
    let mut net = Network::new(cfg.nodes, config, wire, Topology::FullMesh, cfg.seed);
    let mut rng = SimRng::new(cfg.seed);
    let mut out = String::new();
    let n = cfg.nodes.max(1) as u64;
    for _ in 0..cfg.ops {
        let node = rng.range(0, n - 1) as usize;
        if rng.chance(0.25) {
            net.decrement(node, 1);
        } else {
            net.increment(node, 1);
        }
    }
    let _ = writeln!(
        out,
        "{} nodes, {} operations, {:.0}% loss: expected value {}",
        cfg.nodes,
        cfg.ops,
        cfg.loss * 100.0,
        net.expected()
    );
    for round in 1..=30 {
        let until = net.now() + sync;
        net.run_until(until);
        let _ = writeln!(
            out,
            "t={:>6?}  values {:?}  ({} of {} agree)",
            net.now(),
            net.values(),
            net.converged_count(),
            net.len()
        );
        if net.converged() {
            let s = net.stats();
            let _ = writeln!(
                out,
                "converged after {round} sync intervals; {} frames, {} bytes, {} lost",
                s.messages(),
                s.total_bytes(),
                s.lost
            );
            return (true, out);
        }
    }
    let _ = writeln!(out, "did not converge");
    (false, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_converges() {
        let (ok, report) = run(DemoConfig::default());
        assert!(ok, "{report}");
        assert!(report.contains("converged after"));
    }
}
