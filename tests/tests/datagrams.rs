//! Datagrams between real nodes on loopback (`docs/EXTENSIONS.md` §5): Tally nodes that both
//! bound their UDP socket exchange small frames as datagrams after the hello; a node without
//! one gets TCP only and converges all the same.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::time::Duration;
use tally_std::{Node, NodeConfig, PeerSource};
use tally_tests::wait_until;

const SYNC: Duration = Duration::from_millis(200);
const PATIENCE: Duration = Duration::from_secs(20);

fn start(max_datagram: u16) -> Node {
    let mut config = NodeConfig::new("127.0.0.1:0".parse().unwrap()).sync_interval(SYNC);
    config.max_datagram = max_datagram;
    Node::start(config).unwrap()
}

fn mesh(nodes: &[&Node]) {
    for a in nodes {
        for b in nodes {
            if a.local_addr() != b.local_addr() {
                a.add_peer(&b.local_addr().to_string(), PeerSource::Static)
                    .unwrap();
            }
        }
    }
}

#[test]
fn writes_travel_as_datagrams_between_tally_nodes() {
    let (a, b, c) = (start(1200), start(1200), start(1200));
    mesh(&[&a, &b, &c]);
    // The hellos go first, over TCP; then a digest exchange over datagrams.
    assert!(wait_until(PATIENCE, || [&a, &b, &c]
        .iter()
        .all(|n| n.transport().datagrams_in > 0)));
    let before: Vec<(u64, u64)> = [&a, &b, &c]
        .iter()
        .map(|n| (n.transport().datagrams_in, n.transport().accepted))
        .collect();
    for i in 0..30 {
        [&a, &b, &c][i % 3].increment(1).unwrap();
        std::thread::sleep(Duration::from_millis(7));
    }
    assert!(wait_until(PATIENCE, || [&a, &b, &c]
        .iter()
        .all(|n| n.value() == 30)));
    for (n, (dgrams, conns)) in [&a, &b, &c].iter().zip(before) {
        let t = n.transport();
        let (dgrams, conns) = (t.datagrams_in - dgrams, t.accepted - conns);
        // Eager pushes of single increments are tiny: they came as datagrams, not connections.
        assert!(dgrams >= 10, "{} got {dgrams} datagrams", n.local_addr());
        assert!(
            conns < dgrams,
            "{} accepted {conns} connections for {dgrams} datagrams",
            n.local_addr()
        );
        assert_eq!(n.stats().rejected_total(), 0);
    }
}

#[test]
fn a_node_without_datagrams_gets_only_tcp_and_converges() {
    let (a, b, tcp_only) = (start(1200), start(1200), start(0));
    mesh(&[&a, &b, &tcp_only]);
    a.increment(2).unwrap();
    b.increment(3).unwrap();
    tcp_only.increment(4).unwrap();
    assert!(wait_until(PATIENCE, || [&a, &b, &tcp_only]
        .iter()
        .all(|n| n.value() == 9)));
    // Let a few rounds pass, then check: a and b spoke datagrams, nobody sent any to the node
    // that did not announce them (it has no socket, so the kernel would have counted them as
    // refused on a's and b's side, not delivered: its own counter shows the absence).
    std::thread::sleep(SYNC * 10);
    assert!(a.transport().datagrams_in > 0 && b.transport().datagrams_in > 0);
    assert_eq!(tcp_only.transport().datagrams_in, 0);
    assert_eq!(tcp_only.transport().datagrams_out, 0);
    let to_it = tcp_only.local_addr().to_string();
    // Its UDP port is free: bind it and watch that nothing arrives there for a while.
    let watch = std::net::UdpSocket::bind(&to_it).unwrap();
    watch
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let before = (a.stats().datagrams_out, b.stats().datagrams_out);
    tcp_only.increment(1).unwrap();
    a.increment(1).unwrap();
    assert!(wait_until(PATIENCE, || tcp_only.value() == 11 && b.value() == 11));
    let mut buf = [0u8; 2048];
    let deadline = std::time::Instant::now() + SYNC * 10;
    while std::time::Instant::now() < deadline {
        if let Ok((n, from)) = watch.recv_from(&mut buf) {
            panic!("{n} bytes of datagram from {from} reached the TCP-only node");
        }
    }
    assert!(a.stats().datagrams_out + b.stats().datagrams_out > before.0 + before.1);
}
