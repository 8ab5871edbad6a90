//! Many real engines on the simulated network converge to the exact sum: under loss,
//! duplication and reordering, and after a partition heals.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use tally_core::sim::{NetConfig, Network, SimRng, Topology};
use tally_core::{Config, Duration, Instant};

fn config() -> Config {
    Config::host().with_sync_interval(Duration::from_millis(200))
}

fn lossy() -> NetConfig {
    NetConfig {
        latency_min: Duration::from_millis(1),
        latency_max: Duration::from_millis(80),
        loss: 0.1,
        duplicate: 0.05,
        ..NetConfig::default()
    }
}

/// Random concurrent operations spread over the first `ops` ms, on random nodes.
fn random_workload(net: &mut Network, seed: u64, ops: usize) {
    let mut rng = SimRng::new(seed ^ 0xabcdef);
    let n = net.len() as u64;
    for k in 0..ops {
        let at = Instant::from_millis(10 * k as u64);
        net.run_until(at);
        let node = rng.range(0, n - 1) as usize;
        let by = rng.range(1, 100);
        // Operations on a crashed node fail and are not counted in `expected`.
        if rng.chance(0.3) {
            net.decrement(node, by);
        } else {
            net.increment(node, by);
        }
    }
}

/// Runs one cluster to convergence; returns the frames the network lost on the way.
fn converges(n: usize, topology: Topology, seed: u64) -> u64 {
    let mut net = Network::new(n, config(), lossy(), topology, seed);
    random_workload(&mut net, seed, 4 * n);
    let deadline = net.now() + Duration::from_secs(120);
    let at = net.run_until_converged(Duration::from_millis(100), deadline);
    assert!(
        at.is_some(),
        "n={n} seed={seed}: not converged; expected {} values {:?}",
        net.expected(),
        &net.values()[..n.min(10)]
    );
    assert!(net.values().iter().all(|&v| v == net.expected()));
    let stats = net.stats();
    assert!(
        stats.lost > 0 || stats.messages() < 100,
        "n={n} seed={seed}: {} frames and no loss simulated",
        stats.messages()
    );
    stats.lost
}

#[test]
fn three_engines_converge_over_many_seeds() {
    let lost: u64 = (0..20)
        .map(|seed| converges(3, Topology::FullMesh, seed))
        .sum();
    assert!(lost > 0, "loss was simulated");
}

#[test]
fn ten_engines_converge() {
    for seed in 0..5 {
        converges(10, Topology::FullMesh, seed);
    }
}

#[test]
fn hundred_engines_converge() {
    converges(100, Topology::Random(4), 7);
}

#[test]
fn a_partitioned_half_converges_after_healing() {
    let n = 10;
    let mut net = Network::new(n, config(), lossy(), Topology::FullMesh, 3);
    net.partition(|i| u16::from(i >= n / 2));
    random_workload(&mut net, 3, 40);
    net.run_until(net.now() + Duration::from_secs(10));
    // Each side agrees within itself but not with the other.
    let values = net.values();
    assert!(values[..n / 2].iter().all(|&v| v == values[0]));
    assert!(values[n / 2..].iter().all(|&v| v == values[n / 2]));
    assert_ne!(values[0], values[n / 2]);
    assert!(!net.converged(), "a partition keeps the halves apart");
    net.heal();
    let deadline = net.now() + Duration::from_secs(120);
    assert!(net
        .run_until_converged(Duration::from_millis(100), deadline)
        .is_some());
    assert!(net.values().iter().all(|&v| v == net.expected()));
}

#[test]
fn crashed_node_catches_up_after_restart() {
    let mut net = Network::new(5, config(), lossy(), Topology::FullMesh, 11);
    net.crash(4);
    random_workload(&mut net, 11, 30);
    net.run_until(net.now() + Duration::from_secs(40));
    assert_ne!(net.engine(4).unwrap().value(), net.expected());
    net.restart(4);
    let deadline = net.now() + Duration::from_secs(120);
    assert!(net
        .run_until_converged(Duration::from_millis(100), deadline)
        .is_some());
}

#[test]
fn runs_are_deterministic_for_a_seed() {
    let run = |seed| {
        let mut net = Network::new(20, config(), lossy(), Topology::Random(3), seed);
        random_workload(&mut net, seed, 50);
        net.run_until(net.now() + Duration::from_secs(5));
        (net.values(), net.stats().clone())
    };
    assert_eq!(run(5), run(5));
    assert_ne!(run(5).1, run(6).1);
}

#[test]
fn a_node_that_lost_its_state_relearns_it() {
    let mut net = Network::new(4, config(), NetConfig::default(), Topology::FullMesh, 2);
    net.increment(3, 10);
    net.increment(0, 1);
    let deadline = net.now() + Duration::from_secs(60);
    assert!(net
        .run_until_converged(Duration::from_millis(100), deadline)
        .is_some());
    net.crash(3);
    net.run_until(net.now() + Duration::from_millis(50));
    net.restart_empty(3, config(), &[0]);
    let deadline = net.now() + Duration::from_secs(60);
    let at = net.run_until_converged(Duration::from_millis(100), deadline);
    assert!(at.is_some(), "values {:?}", net.values());
    assert_eq!(net.engine(3).unwrap().counter().local_entry().inc, 10);
}

/// Named counters on the lossy network: 10 engines write 20 counters concurrently; every
/// engine ends with every counter exact.
#[test]
fn named_counters_converge_under_loss() {
    for seed in 0..3 {
        let mut net = Network::new(10, config(), lossy(), Topology::FullMesh, seed);
        let mut rng = SimRng::new(seed ^ 0x5eed);
        let mut expected = std::collections::BTreeMap::<String, i128>::new();
        for k in 0..200u64 {
            net.run_until(Instant::from_millis(5 * k));
            let node = rng.range(0, 9) as usize;
            let name = format!("c{}", rng.range(0, 19));
            let by = rng.range(1, 50);
            let e = net.engine_mut(node).unwrap();
            if rng.chance(0.3) {
                e.apply_named(&name, 0, by).unwrap();
                *expected.entry(name).or_default() -= i128::from(by);
            } else {
                e.apply_named(&name, by, 0).unwrap();
                *expected.entry(name).or_default() += i128::from(by);
            }
        }
        let agreed = |net: &Network| {
            (0..net.len()).all(|i| {
                let m = net.engine(i).unwrap().named();
                m.counters()
                    .map(|(n, v)| (n.to_string(), v))
                    .collect::<std::collections::BTreeMap<_, _>>()
                    == expected
            })
        };
        let deadline = net.now() + Duration::from_secs(120);
        while !agreed(&net) && net.now() < deadline {
            let next = net.now() + Duration::from_millis(100);
            net.run_until(next);
        }
        assert!(agreed(&net), "seed {seed}: named counters did not converge");
        assert!(net.stats().lost > 0, "loss was simulated");
    }
}
