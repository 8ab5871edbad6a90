//! The simulator (`tally sim`'s engine) with real engines: exact values over many seeds,
//! quiet idle clusters, bounded frames, recovery from loss and partitions, and what delta sync
//! saves.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use tally::simulation::{run, SimOptions};
use tally_core::sim::{NetConfig, Network, Topology};
use tally_core::{Config, Duration, Instant, MessageType};

fn opts(nodes: usize, seed: u64) -> SimOptions {
    SimOptions {
        nodes,
        seed,
        ..SimOptions::default()
    }
}

#[test]
fn exact_final_values_for_small_clusters_over_many_seeds() {
    for nodes in [2, 3, 5, 10, 20] {
        for seed in 0..25 {
            let o = SimOptions {
                writers: nodes.min(4),
                ops: 3 * nodes,
                loss: 0.1,
                ..opts(nodes, seed)
            };
            let r = run(&o, |_, _| {});
            assert!(r.converged, "nodes={nodes} seed={seed}");
            assert_eq!(r.expected_value, (3 * nodes) as i128);
            assert_eq!(r.converged_fraction.last().copied(), Some(1.0));
        }
    }
}

#[test]
fn one_update_spreads_in_about_log_n_rounds() {
    for (nodes, bound) in [(10, 4), (100, 7), (1000, 10)] {
        let mut rounds: Vec<u64> = (0..9)
            .map(|seed| run(&opts(nodes, seed), |_, _| {}).rounds)
            .collect();
        rounds.sort_unstable();
        let median = rounds[rounds.len() / 2];
        assert!(
            median <= bound,
            "nodes={nodes}: median {median} rounds > log2 N = {bound}"
        );
    }
}

/// Digest frames per node per round over `rounds` idle rounds of a converged 50-node cluster.
fn idle_digests(config: Config, rounds: u64) -> (Network, f64) {
    let n = 50;
    let mut net = Network::new(n, config, NetConfig::default(), Topology::Random(6), 4);
    net.increment(7, 3);
    let deadline = Instant::from_millis(60_000);
    let at = net
        .run_until_converged(Duration::from_millis(200), deadline)
        .unwrap();
    // Let every pair confirm what the other holds (and the intervals grow), then measure.
    net.run_until(at + Duration::from_secs(60));
    let before = net.stats().clone();
    net.run_until(net.now() + Duration::from_millis(200 * rounds));
    let after = net.stats();
    let d = |t: MessageType| after.sent[t.index()] - before.sent[t.index()];
    assert_eq!(d(MessageType::Push), 0, "no Push in an idle cluster");
    let digests = d(MessageType::DigestPull) + d(MessageType::DigestAck);
    (net, digests as f64 / (n as f64 * rounds as f64))
}

#[test]
fn an_idle_cluster_backs_off_and_a_change_resets_it() {
    let round = Duration::from_millis(200);
    let fixed = Config::host().with_sync_interval(round).fixed_rounds();
    let (_, fixed_rate) = idle_digests(fixed, 200);
    // Fixed rounds (the reference): a Pull and its Ack to two peers, per node per round.
    assert!((3.5..=4.1).contains(&fixed_rate), "fixed {fixed_rate}");
    let adaptive = Config::host().with_sync_interval(round);
    let (mut net, rate) = idle_digests(adaptive, 200);
    // Intervals of up to 64 rounds: about 4 frames per 64 rounds.
    assert!(
        rate <= fixed_rate / 16.0,
        "adaptive {rate} vs fixed {fixed_rate}"
    );
    let writer = net.engine(3).unwrap();
    assert_eq!(writer.round_interval(), round.saturating_mul(64));
    // A change resets the writer's interval to one round, and spreads eagerly: every node
    // holds it within one round, long before any backed-off interval ends.
    let start = net.now();
    net.increment(3, 5);
    net.run_until(start + Duration::from_millis(1));
    assert_eq!(net.engine(3).unwrap().round_interval(), round);
    let at = net
        .run_until_converged(Duration::from_millis(10), start + round.saturating_mul(64))
        .unwrap();
    assert!(
        at - start <= round,
        "converged {:?} after the change",
        at - start
    );
    assert_eq!(net.values(), vec![8; 50]);
}

#[test]
fn frames_never_exceed_the_limit_and_convergence_completes() {
    for limit in [4096usize, 16 * 1024 - 256] {
        let o = SimOptions {
            writers: 400,
            ops: 400,
            max_frame: limit,
            ..opts(400, 3)
        };
        let r = run(&o, |_, _| {});
        assert!(r.converged, "limit {limit}");
        assert!(r.largest_frame <= limit, "{} > {limit}", r.largest_frame);
        assert_eq!(r.expected_value, 400);
    }
}

#[test]
fn loss_and_a_healed_partition_converge_within_two_log_n_rounds() {
    let o = SimOptions {
        loss: 0.1,
        partition: Some((0, 20)),
        writers: 10,
        ops: 10,
        ..opts(1000, 9)
    };
    let r = run(&o, |_, _| {});
    assert!(r.converged);
    let after = r.rounds_after_heal.unwrap();
    assert!(after <= 2 * 10, "{after} rounds after healing");
}

#[test]
fn delta_sync_sends_fewer_bytes_than_full_state() {
    let base = SimOptions {
        writers: 300,
        ops: 300,
        ..opts(300, 5)
    };
    let delta = run(&base, |_, _| {});
    let full = run(
        &SimOptions {
            delta: false,
            ..base
        },
        |_, _| {},
    );
    assert!(delta.converged && full.converged);
    assert!(
        delta.bytes < full.bytes,
        "delta {} vs full {}",
        delta.bytes,
        full.bytes
    );
    assert_eq!(full.delta_push_bytes, 0);
}

/// Named counters in the simulator (the CI-sized run of README's 1,000 × 100): 200 nodes,
/// every one writing, the writes spread over 50 counters; agreement on every counter within
/// log₂N + 2 rounds of the last write, and named Pushes counted apart from default ones.
#[test]
fn named_counters_agree_within_log_n_plus_two_rounds() {
    let nodes = 200;
    let o = SimOptions {
        writers: nodes,
        counters: 50,
        ..opts(nodes, 3)
    };
    let r = run(&o, |_, _| {});
    assert!(r.converged, "{r:?}");
    // One write per writer, all in the first round.
    let bound = (nodes as f64).log2().ceil() as u64 + 2 + 1;
    assert!(r.rounds <= bound, "{} rounds, bound {bound}", r.rounds);
    assert!(r.named_push.messages > 0 && r.push.messages == 0, "{r:?}");
    assert_eq!(r.expected_value, 0, "the default counter was not written");
}
