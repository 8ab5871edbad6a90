//! Named counters across real TCP nodes (issue 16): three Tally nodes and a reference stand-in
//! in one cluster. Twenty named counters written concurrently on every Tally node converge
//! exactly everywhere; the stand-in keeps the default counter right and never receives a frame
//! it could not read (no named Push, no extension digest); a removal concurrent with an
//! increment keeps the increment.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tally_std::{Node, NodeConfig, NodeError};
use tally_tests::reference::{is_reference_frame, ReferenceConfig, ReferencePeer};
use tally_tests::wait_until;

const EVERY: Duration = Duration::from_millis(200);

fn start(peers: Vec<String>) -> Arc<Node> {
    let config = NodeConfig::new("127.0.0.1:0".parse().unwrap())
        .sync_interval(EVERY)
        .peers(peers);
    Arc::new(Node::start(config).unwrap())
}

fn name(k: usize) -> String {
    format!("room-{k:02}.entries")
}

#[test]
fn three_nodes_and_a_stand_in_converge_on_twenty_named_counters() {
    let r = ReferencePeer::start(ReferenceConfig {
        sync_interval: EVERY,
        ..Default::default()
    })
    .unwrap();
    let a = start(vec![r.addr()]);
    let b = start(vec![r.addr(), a.local_addr().to_string()]);
    let c = start(vec![
        r.addr(),
        a.local_addr().to_string(),
        b.local_addr().to_string(),
    ]);
    let nodes = [a, b, c];
    for n in &nodes {
        r.add_peer(&n.local_addr().to_string());
        for m in &nodes {
            if m.local_addr() != n.local_addr() {
                n.add_peer(&m.local_addr().to_string(), tally_std::PeerSource::Static)
                    .unwrap();
            }
        }
    }

    // Every node writes every counter at once, with values the counters do not share.
    let writers: Vec<_> = nodes
        .iter()
        .enumerate()
        .map(|(i, node)| {
            let node = Arc::clone(node);
            std::thread::spawn(move || {
                for round in 0..3u64 {
                    for k in 0..20usize {
                        let by = (k as u64 + 1) * 10 + i as u64 + round;
                        node.counter(&name(k)).unwrap().increment(by).unwrap();
                    }
                    node.counter(&name(round as usize))
                        .unwrap()
                        .decrement(1)
                        .unwrap();
                    node.increment(1).unwrap();
                }
            })
        })
        .collect();
    r.increment(7);
    for w in writers {
        w.join().unwrap();
    }
    let expected: BTreeMap<String, i128> = (0..20usize)
        .map(|k| {
            let mut v = 0i128;
            for i in 0..3u64 {
                for round in 0..3u64 {
                    v += i128::from((k as u64 + 1) * 10 + i + round);
                }
            }
            // One decrement per node in the round that matches the counter.
            if k < 3 {
                v -= 3;
            }
            (name(k), v)
        })
        .collect();
    let default = 3 * 3 + 7;
    let agreed = || {
        nodes.iter().all(|n| {
            n.counters().into_iter().collect::<BTreeMap<_, _>>() == expected && n.value() == default
        }) && r.value() == default
    };
    let done = wait_until(Duration::from_secs(30), agreed);
    assert!(
        done,
        "not converged: expected {expected:?} / {default}; got {:?} / {:?}, stand-in {}",
        nodes.iter().map(|n| n.counters()).collect::<Vec<_>>(),
        nodes.iter().map(|n| n.value()).collect::<Vec<_>>(),
        r.value()
    );
    for n in &nodes {
        let s = n.stats();
        assert!(s.received(tally_core::MessageType::NamedPush) > 0);
        assert_eq!(s.rejected_total(), 0, "a Tally node rejected frames");
    }

    // What the stand-in got is reference protocol only.
    std::thread::sleep(EVERY * 3);
    let got = r.received();
    assert_eq!(r.rejected(), 0, "the stand-in rejected frames: {got:#?}");
    for x in &got {
        if let Err(e) = is_reference_frame(x) {
            panic!("a frame to the stand-in is not a reference frame: {e}\n{x:#?}");
        }
    }

    // Removal on a while c counts concurrently (c has not seen the removal yet: it is cut).
    let doors = name(5);
    let before = expected[&doors];
    nodes[2].set_isolated(true);
    assert!(nodes[0].remove_counter(&doors).unwrap());
    assert_eq!(nodes[0].counter_value(&doors), None);
    assert!(!nodes[0].remove_counter(&doors).unwrap(), "already removed");
    nodes[2].counter(&doors).unwrap().increment(4).unwrap();
    assert_eq!(nodes[2].counter_value(&doors), Some(before + 4));
    nodes[2].set_isolated(false);
    let kept = wait_until(Duration::from_secs(30), || {
        nodes.iter().all(|n| n.counter_value(&doors) == Some(4))
    });
    assert!(
        kept,
        "the concurrent increment must survive the removal: {:?}",
        nodes
            .iter()
            .map(|n| n.counter_value(&doors))
            .collect::<Vec<_>>()
    );
}

#[test]
fn bad_names_are_refused_and_change_nothing() {
    let n = start(Vec::new());
    for bad in ["", "has space", "slash/", &"x".repeat(65), "ümlaut"] {
        match n.counter(bad) {
            Err(NodeError::Counter(e)) => assert_eq!(e.name(), "bad_name", "{bad:?}"),
            Err(e) => panic!("{bad:?}: {e}"),
            Ok(_) => panic!("{bad:?} was accepted"),
        }
    }
    assert!(n.counters().is_empty());
    assert_eq!(n.counter("zero").unwrap().increment(0).unwrap(), 0);
    assert!(n.counters().is_empty(), "a write of 0 creates nothing");
    assert!(!n.remove_counter("never-written").unwrap());
}
