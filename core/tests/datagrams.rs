//! Datagrams (`docs/EXTENSIONS.md` §5): after the hello, small frames between Tally nodes that
//! both announced datagrams travel as one datagram each; large frames, hellos and everything to
//! a peer that did not announce it go over TCP; unanswered datagram pulls fall back to TCP and
//! reset the rounds. Engines on a hand-driven wire that can lose datagrams.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::TestEngine;
use rand::SeedableRng;
use tally_core::ext::{Caps, Hello};
use tally_core::frame::split_header;
use tally_core::{
    Config, Duration, Instant, Message, MessageLimits, MessageType, ANSWER_WAIT,
    DATAGRAMS_OFF_TICKS,
};

/// One frame as it left an engine.
#[derive(Clone, Debug)]
struct Sent {
    from: usize,
    to: usize,
    message: MessageType,
    datagram: bool,
    hello: bool,
    len: usize,
}

struct Wire {
    nodes: Vec<TestEngine>,
    addrs: Vec<String>,
    sent: Vec<Sent>,
    drop_datagrams: bool,
    now: Instant,
    rng: rand::rngs::SmallRng,
}

impl Wire {
    /// Nodes with the given `max_datagram`, each a static peer of every other.
    fn new(max_datagram: &[u16]) -> Wire {
        let addrs: Vec<String> = (0..max_datagram.len())
            .map(|i| format!("10.0.1.{}:1", i + 1))
            .collect();
        let mut nodes = common::mesh(&addrs, Config::mcu());
        for (e, max) in nodes.iter_mut().zip(max_datagram) {
            e.set_max_datagram(*max);
        }
        Wire {
            nodes,
            addrs,
            sent: Vec::new(),
            drop_datagrams: false,
            now: Instant::ZERO,
            rng: rand::rngs::SmallRng::seed_from_u64(3),
        }
    }

    fn drain(&mut self) {
        while let Some((i, t, payload)) = common::next_transmit(&mut self.nodes, self.now) {
            let to = self.addrs.iter().position(|a| a == t.to.as_str()).unwrap();
            let (header, frame) = split_header(&payload).unwrap();
            let m = Message::parse(&frame[1..], &MessageLimits::HOST).unwrap();
            let hello = matches!(m, Message::DigestAck { digest, .. } if Hello::from_digest(digest).is_some());
            self.sent.push(Sent {
                from: i,
                to,
                message: t.message,
                datagram: t.datagram,
                hello,
                len: t.len,
            });
            if !t.datagram {
                self.nodes[i].on_delivered(t.to.as_str(), self.now);
            } else if self.drop_datagrams {
                continue;
            }
            let _ = self.nodes[to].handle(self.now, header, frame);
        }
    }

    fn run_until(&mut self, until: Instant) {
        loop {
            self.drain();
            match common::step(&mut self.nodes, self.now, until, &mut self.rng) {
                Some(t) => self.now = t,
                None => {
                    self.now = until;
                    return;
                }
            }
        }
    }

    fn run_for(&mut self, d: Duration) {
        let t = self.now + d;
        self.run_until(t);
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn tally_nodes_that_announce_datagrams_send_small_frames_as_datagrams() {
    let mut w = Wire::new(&[1200, 1200, 1200]);
    w.run_for(secs(30));
    for e in &w.nodes {
        assert_eq!(e.caps(), Caps::QUIET.with(Caps::DATAGRAM));
        for p in e.peers().iter() {
            assert!(p.speaks(Caps::DATAGRAM), "{} unknown", p.addr);
        }
    }
    let greeted = w.sent.len();
    w.nodes[1].increment(5).unwrap();
    w.run_for(secs(10));
    assert!(w.nodes.iter().all(|e| e.value() == 5));
    let after: Vec<&Sent> = w.sent[greeted..].iter().collect();
    assert!(after.iter().any(|s| s.message == MessageType::Push));
    for s in &after {
        assert!(s.datagram, "{s:?} went over TCP");
    }
    // Hellos, and whatever went before the hello answered, went over TCP.
    for s in &w.sent[..greeted] {
        if s.hello {
            assert!(!s.datagram, "a hello went as a datagram");
        }
    }
    assert!(w.sent[..greeted].iter().any(|s| !s.datagram));
    let out: u64 = w.nodes.iter().map(|e| e.stats().datagrams_out).sum();
    assert_eq!(out as usize, w.sent.iter().filter(|s| s.datagram).count());
}

#[test]
fn a_peer_that_did_not_announce_datagrams_gets_only_tcp() {
    // Node 1 has no datagram socket: it announces QUIET only, and nobody sends it datagrams,
    // nor does it send any.
    let mut w = Wire::new(&[1200, 0, 1200]);
    w.nodes[0].increment(1).unwrap();
    w.nodes[1].increment(2).unwrap();
    w.run_for(secs(120));
    assert!(w.nodes.iter().all(|e| e.value() == 3));
    assert_eq!(w.nodes[1].caps(), Caps::QUIET);
    assert!(w.nodes[0].peers().get("10.0.1.2:1").unwrap().caps == Some(Caps::QUIET));
    for s in &w.sent {
        if s.to == 1 || s.from == 1 {
            assert!(!s.datagram, "{s:?}");
        }
    }
    // Between 0 and 2 datagrams flow.
    assert!(w
        .sent
        .iter()
        .any(|s| s.datagram && s.from != 1 && s.to != 1));
}

#[test]
fn frames_larger_than_max_datagram_go_over_tcp() {
    let mut w = Wire::new(&[300, 300]);
    w.run_for(secs(30));
    let before = w.sent.len();
    // Ten entries with long ids: their Push is well over 300 bytes.
    let long: Vec<String> = (0..10).map(|i| format!("{:0>50}#{i}", "writer")).collect();
    let entries: Vec<(&str, u64, u64)> = long.iter().map(|s| (s.as_str(), 1, 0)).collect();
    assert!(w.nodes[0]
        .merge_state(entries.iter().map(|(i, a, b)| (*i, *a, *b)))
        .unwrap());
    w.run_for(secs(20));
    assert_eq!(w.nodes[1].value(), 10);
    let pushes: Vec<&Sent> = w.sent[before..]
        .iter()
        .filter(|s| s.message == MessageType::Push)
        .collect();
    assert!(!pushes.is_empty());
    for s in &w.sent[before..] {
        assert_eq!(s.datagram, s.len <= 300, "{s:?}");
    }
    assert!(pushes.iter().any(|s| !s.datagram && s.len > 300));
}

#[test]
fn unanswered_datagram_pulls_count_as_failures_and_fall_back_to_tcp() {
    let mut w = Wire::new(&[1200, 1200]);
    w.run_for(secs(600));
    assert_eq!(w.nodes[0].round_interval(), secs(128));
    // UDP is dropped from now on (a firewall, say); TCP still works.
    w.drop_datagrams = true;
    w.nodes[0].increment(7).unwrap();
    w.run_for(secs(10));
    // The eager push and the pulls that followed were lost; their silence counted as failed
    // sends, which set the rounds back to the minimum; frames now go over TCP and arrive.
    assert!(w.nodes[0].stats().datagrams_unanswered >= 1);
    assert_eq!(w.nodes[0].round_interval(), secs(2));
    assert_eq!(w.nodes[1].value(), 7, "the write did not arrive over TCP");
    let cut = w.sent.len();
    w.run_for(secs(30));
    assert!(w.sent[cut..]
        .iter()
        .filter(|s| s.from == 0)
        .all(|s| !s.datagram));
    // UDP comes back; after DATAGRAMS_OFF_TICKS ticks of a round each, datagrams are tried
    // again and stay.
    w.drop_datagrams = false;
    w.run_for(secs(2 * u64::from(DATAGRAMS_OFF_TICKS) + 10));
    let back = w.sent.len();
    w.nodes[0].increment(1).unwrap();
    w.run_for(secs(5));
    assert_eq!(w.nodes[1].value(), 8);
    assert!(w.sent[back..].iter().any(|s| s.from == 0 && s.datagram));
    let unanswered = w.nodes[0].stats().datagrams_unanswered;
    w.run_for(secs(300));
    assert_eq!(w.nodes[0].stats().datagrams_unanswered, unanswered);
    assert!(ANSWER_WAIT < secs(2));
}
