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

#[test]
fn an_idle_cluster_sends_only_digests() {
    let n = 50;
    let config = Config::host().with_sync_interval(Duration::from_millis(200));
    let mut net = Network::new(n, config, NetConfig::default(), Topology::Random(6), 4);
    net.increment(7, 3);
    let deadline = Instant::from_millis(60_000);
    let at = net
        .run_until_converged(Duration::from_millis(200), deadline)
        .unwrap();
    // Let every pair confirm what the other holds, then measure 50 idle rounds.
    net.run_until(at + Duration::from_secs(10));
    let before = net.stats().clone();
    let rounds = 50u64;
    net.run_until(net.now() + Duration::from_millis(200 * rounds));
    let after = net.stats();
    let d = |t: MessageType| after.sent[t.index()] - before.sent[t.index()];
    let b = |t: MessageType| after.bytes[t.index()] - before.bytes[t.index()];
    assert_eq!(d(MessageType::Push), 0, "no Push in an idle cluster");
    let per_node_round = |x: u64| x as f64 / (n as f64 * rounds as f64);
    let pulls = per_node_round(d(MessageType::DigestPull));
    let acks = per_node_round(d(MessageType::DigestAck));
    assert!(
        pulls <= 2.0 + 1e-9 && acks <= 2.05,
        "pulls {pulls}, acks {acks}"
    );
    let pull_size = b(MessageType::DigestPull) / d(MessageType::DigestPull);
    let ack_size = b(MessageType::DigestAck) / d(MessageType::DigestAck);
    let bytes = per_node_round(b(MessageType::DigestPull) + b(MessageType::DigestAck));
    assert!(
        bytes <= (2 * pull_size + 2 * ack_size) as f64 * 1.03,
        "{bytes} bytes/node/round"
    );
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
