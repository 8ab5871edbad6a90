//! [`SwimNet`]: real [`Membership`]s on a simulated datagram network, on virtual time.
//!
//! Each datagram is delivered after a random latency, or lost with the configured
//! probability; a killed node drops everything sent to it and sends nothing. A node can be
//! restarted (a new `Membership` at the same address, as a process restart makes) and
//! rejoins by announcing to a live node. Every `Down` event is recorded with its time, so a
//! benchmark can tell detections of killed nodes from false positives. Deterministic: a run
//! is a function of its seed.

use super::SimRng;
use crate::id::NodeId;
use crate::membership::{MemberEvent, Membership, SwimConfig};
use crate::time::{Duration, Instant};
use alloc::collections::BinaryHeap;
use alloc::format;
use alloc::vec::Vec;
use core::cmp::Reverse;

/// Addresses of simulated nodes (`10.0.x.y:9000`) fit in 32 bytes.
pub const ADDR_LEN: usize = 32;

/// A `Down` (or `Up`) event one node raised about another, at a virtual time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    /// When (virtual ms).
    pub at: Instant,
    /// Who raised it.
    pub observer: usize,
    /// About whom.
    pub subject: usize,
}

/// How often an isolated node announces to its seed again.
const REJOIN: Duration = Duration::from_secs(5);

/// A datagram on its way: (deliver at, sequence, to, bytes).
type InFlight = (Instant, u64, usize, Vec<u8>);

/// The network: nodes, in-flight datagrams, and what they reported.
pub struct SwimNet {
    nodes: Vec<Option<Membership<ADDR_LEN>>>,
    addrs: Vec<NodeId<ADDR_LEN>>,
    config: SwimConfig,
    max_datagram: usize,
    rng: SimRng,
    now: Instant,
    loss: f64,
    latency_ms: (u64, u64),
    flight: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    next_rejoin: Instant,
    /// Every `Down` event raised.
    pub downs: Vec<Seen>,
    /// Every `Up` event raised.
    pub ups: Vec<Seen>,
    /// Datagrams sent, and their bytes.
    pub sent: (u64, u64),
}

impl SwimNet {
    /// `n` nodes with `config`, losing each datagram with probability `loss`, latency
    /// uniform in 1–10 ms. Node 0 starts alone; every other node announces to node 0.
    pub fn new(n: usize, config: SwimConfig, loss: f64, seed: u64) -> Self {
        let max_datagram = 1200;
        let addrs: Vec<_> = (0..n)
            .map(|i| NodeId::new(&format!("10.0.{}.{}:9000", i / 250, i % 250 + 1)))
            .filter_map(Result::ok)
            .collect();
        let mut net = SwimNet {
            nodes: Vec::new(),
            addrs,
            config,
            max_datagram,
            rng: SimRng::new(seed),
            now: Instant::ZERO,
            loss,
            latency_ms: (1, 10),
            flight: BinaryHeap::new(),
            seq: 0,
            next_rejoin: Instant::ZERO + REJOIN,
            downs: Vec::new(),
            ups: Vec::new(),
            sent: (0, 0),
        };
        for addr in net.addrs.clone() {
            let m = net.fresh(addr);
            net.nodes.push(Some(m));
        }
        for i in 1..net.addrs.len() {
            net.announce(i, 0);
        }
        net
    }

    fn fresh(&mut self, addr: NodeId<ADDR_LEN>) -> Membership<ADDR_LEN> {
        let seed = rand_core::RngCore::next_u64(&mut self.rng);
        Membership::new(addr, self.config.clone(), self.max_datagram, seed, None)
    }

    /// The virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Node `i`'s membership (`None` while killed).
    pub fn node(&self, i: usize) -> Option<&Membership<ADDR_LEN>> {
        self.nodes.get(i).and_then(Option::as_ref)
    }

    /// Node `from` announces itself to node `to`.
    pub fn announce(&mut self, from: usize, to: usize) {
        let now = self.now;
        if let (Some(addr), Some(Some(m))) = (self.addrs.get(to).copied(), self.nodes.get_mut(from))
        {
            m.announce(now, addr);
        }
        self.flush(from);
    }

    /// Kills node `i` (it stops sending and receiving).
    pub fn kill(&mut self, i: usize) {
        if let Some(slot) = self.nodes.get_mut(i) {
            *slot = None;
        }
    }

    /// Restarts node `i` as a new process and has it announce to node `via`.
    pub fn restart(&mut self, i: usize, via: usize) {
        let Some(addr) = self.addrs.get(i).copied() else {
            return;
        };
        let m = self.fresh(addr);
        if let Some(slot) = self.nodes.get_mut(i) {
            *slot = Some(m);
        }
        self.announce(i, via);
    }

    /// Whether `observer` currently sees `subject` as alive or suspect.
    pub fn sees_live(&self, observer: usize, subject: usize) -> bool {
        let Some(addr) = self.addrs.get(subject) else {
            return false;
        };
        self.node(observer)
            .is_some_and(|m| m.members().any(|v| v.addr == *addr && v.state != "down"))
    }

    /// Runs the network until virtual time `until`. Every 5 s (`REJOIN`), a node that knows no
    /// live member announces to node 0 again, as an adapter re-announces to its seed peers.
    pub fn run_until(&mut self, until: Instant) {
        while self.next_rejoin <= until {
            let at = self.next_rejoin;
            self.step_until(at);
            for i in 1..self.nodes.len() {
                if self.node(i).is_some_and(|m| m.live_members() == 0) {
                    self.announce(i, 0);
                }
            }
            self.next_rejoin = at + REJOIN;
        }
        self.step_until(until);
    }

    fn step_until(&mut self, until: Instant) {
        loop {
            let next_timer = self
                .nodes
                .iter()
                .enumerate()
                .filter_map(|(i, m)| m.as_ref().and_then(|m| m.poll_timeout()).map(|t| (t, i)))
                .min();
            let next_datagram = self.flight.peek().map(|Reverse(d)| d.0);
            let at = match (next_timer, next_datagram) {
                (Some((t, _)), Some(d)) => t.min(d),
                (Some((t, _)), None) => t,
                (None, Some(d)) => d,
                (None, None) => break,
            };
            if at > until {
                break;
            }
            self.now = self.now.max(at);
            if next_datagram == Some(at) {
                if let Some(Reverse((_, _, to, bytes))) = self.flight.pop() {
                    let now = self.now;
                    if let Some(Some(m)) = self.nodes.get_mut(to) {
                        let _ = m.handle_datagram(now, &bytes);
                    }
                    self.flush(to);
                }
            } else if let Some((_, i)) = next_timer {
                let now = self.now;
                if let Some(Some(m)) = self.nodes.get_mut(i) {
                    m.handle_timeout(now);
                }
                self.flush(i);
            }
        }
        self.now = self.now.max(until);
    }

    /// Moves node `i`'s datagrams into flight and its events into the record.
    fn flush(&mut self, i: usize) {
        let mut buf = [0u8; 1500];
        let now = self.now;
        loop {
            let Some(Some(m)) = self.nodes.get_mut(i) else {
                return;
            };
            if let Some(ev) = m.poll_event() {
                let (list, addr) = match ev {
                    MemberEvent::Up(a) => (&mut self.ups, a),
                    MemberEvent::Down(a) => (&mut self.downs, a),
                };
                if let Some(subject) = self.addrs.iter().position(|x| *x == addr) {
                    list.push(Seen {
                        at: now,
                        observer: i,
                        subject,
                    });
                }
                continue;
            }
            let Some((to, len)) = m.poll_transmit(&mut buf) else {
                return;
            };
            self.sent.0 += 1;
            self.sent.1 += len as u64;
            if self.rng.chance(self.loss) {
                continue;
            }
            let Some(to) = self.addrs.iter().position(|x| *x == to) else {
                continue;
            };
            let delay = self.rng.range(self.latency_ms.0, self.latency_ms.1);
            self.seq += 1;
            let bytes = buf.get(..len).unwrap_or_default().to_vec();
            self.flight.push(Reverse((
                now + Duration::from_millis(delay),
                self.seq,
                to,
                bytes,
            )));
        }
    }
}
