//! [`Network`]: N engines, one event queue, one clock.

use super::rng::SimRng;
use crate::engine::{Config, GrowableEngine};
use crate::frame::split_header;
use crate::id::NodeId;
use crate::message::MessageType;
use crate::peers::PeerSource;
use crate::time::{Duration, Instant};
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

/// The engine type the simulator runs (growable stores, as hosts).
pub type SimEngine = GrowableEngine<SIM_ID_LEN>;

/// Id bound of simulated nodes: their ids (`n<i>:1`) are short, and a small bound keeps the
/// engine's inline ids (copied per frame) cheap. Same engine code as hosts, another `L`.
pub const SIM_ID_LEN: usize = 32;

/// How the simulated wire behaves.
#[derive(Clone, Copy, Debug)]
pub struct NetConfig {
    /// Shortest delivery latency.
    pub latency_min: Duration,
    /// Longest delivery latency (uniform between the two: frames reorder).
    pub latency_max: Duration,
    /// Probability that a delivered frame is silently lost.
    pub loss: f64,
    /// Probability that a frame is delivered twice.
    pub duplicate: f64,
    /// Largest TCP payload a node writes (frame limit + header room).
    pub max_payload: usize,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            latency_min: Duration::from_millis(1),
            latency_max: Duration::from_millis(20),
            loss: 0.0,
            duplicate: 0.0,
            max_payload: (1 << 20) + 256,
        }
    }
}

/// Who knows whom at the start.
#[derive(Clone, Copy, Debug)]
pub enum Topology {
    /// Every node has every other as a static peer.
    FullMesh,
    /// Every node has `k` distinct random static peers (others are learned from senders).
    Random(usize),
}

/// Totals over the run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Frames handed to the wire, by [`MessageType::index`].
    pub sent: [u64; 4],
    /// Bytes handed to the wire (TCP payloads), by type.
    pub bytes: [u64; 4],
    /// Frames delivered to a live node.
    pub delivered: u64,
    /// Frames lost.
    pub lost: u64,
    /// Frames duplicated.
    pub duplicated: u64,
    /// Sends refused (receiver down or partitioned).
    pub refused: u64,
    /// Largest frame sent (flag byte and body, §2 header excluded).
    pub largest_frame: usize,
}

impl NetStats {
    /// All frames sent.
    pub fn messages(&self) -> u64 {
        self.sent.iter().sum()
    }
    /// All bytes sent.
    pub fn total_bytes(&self) -> u64 {
        self.bytes.iter().sum()
    }
}

struct Node {
    engine: SimEngine,
    up: bool,
    timer_at: Instant,
}

enum What {
    Timer { node: u32 },
    Deliver { to: u32, payload: Vec<u8> },
}

/// N engines on a simulated network. See the module docs.
pub struct Network {
    nodes: Vec<Node>,
    /// A calendar queue: events by millisecond, each bucket in scheduling order (which makes
    /// runs deterministic without a sequence number).
    events: BTreeMap<Instant, Vec<What>>,
    /// Payload buffers of delivered frames, reused.
    spare: Vec<Vec<u8>>,
    now: Instant,
    rng: SimRng,
    net: NetConfig,
    groups: Option<Vec<u16>>,
    expected: i128,
    /// The value every named counter should reach, by name.
    expected_named: BTreeMap<alloc::string::String, i128>,
    stats: NetStats,
    buf: Vec<u8>,
}

/// The gossip address of node `i`: `n<i>:1`.
pub fn address(i: usize) -> NodeId<SIM_ID_LEN> {
    match NodeId::new(&format!("n{i}:1")) {
        Ok(id) => id,
        // At most 24 bytes, never empty.
        Err(_) => unreachable!("simulator address is always a valid id"),
    }
}

fn index_of(addr: &str) -> Option<usize> {
    addr.strip_prefix('n')?.strip_suffix(":1")?.parse().ok()
}

impl Network {
    /// `n` nodes with `config`, connected as `topology`, on a wire of `net`, seeded by `seed`.
    pub fn new(n: usize, config: Config, net: NetConfig, topology: Topology, seed: u64) -> Self {
        let mut rng = SimRng::new(seed);
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            let id = address(i);
            // Start each node at a random phase of its sync interval, as real nodes would.
            let phase = Duration::from_millis(rng.range(0, config.sync_interval.as_millis()));
            let start = Instant::ZERO + phase;
            let engine = match SimEngine::new(id, id, config, Instant::ZERO) {
                Ok(e) => e,
                // A growable store always has room for the local entry.
                Err(_) => unreachable!("a new growable engine cannot be full"),
            };
            nodes.push(Node {
                engine,
                up: true,
                timer_at: start,
            });
        }
        let mut net_ = Self {
            nodes,
            events: BTreeMap::new(),
            spare: Vec::new(),
            now: Instant::ZERO,
            rng,
            net,
            groups: None,
            expected: 0,
            expected_named: BTreeMap::new(),
            stats: NetStats::default(),
            buf: vec![0u8; net.max_payload],
        };
        net_.connect(topology);
        for i in 0..n {
            let at = net_.nodes.get(i).map_or(Instant::ZERO, |n| n.timer_at);
            net_.schedule(at, What::Timer { node: i as u32 });
        }
        net_
    }

    fn connect(&mut self, topology: Topology) {
        let n = self.nodes.len();
        for i in 0..n {
            match topology {
                Topology::FullMesh => {
                    for j in (0..n).filter(|&j| j != i) {
                        self.add_peer(i, j);
                    }
                }
                Topology::Random(k) => {
                    let k = k.min(n.saturating_sub(1));
                    let mut added = 0;
                    while added < k {
                        let j = self.rng.range(0, n as u64 - 1) as usize;
                        if j != i && self.add_peer(i, j) {
                            added += 1;
                        }
                    }
                }
            }
        }
    }

    fn add_peer(&mut self, i: usize, j: usize) -> bool {
        let addr = address(j);
        self.nodes.get_mut(i).is_some_and(|node| {
            node.engine
                .add_peer(addr.as_str(), PeerSource::Static, Instant::ZERO)
                .unwrap_or(false)
        })
    }

    fn schedule(&mut self, at: Instant, what: What) {
        self.events.entry(at).or_default().push(what);
    }

    // ----- inputs -----

    /// Node `i` increments by `by`. Returns false if it is down or the total would overflow.
    pub fn increment(&mut self, i: usize, by: u64) -> bool {
        let ok = self
            .nodes
            .get_mut(i)
            .filter(|n| n.up)
            .is_some_and(|n| n.engine.increment(by).is_ok());
        if ok {
            self.expected += i128::from(by);
            self.rearm(i);
        }
        ok
    }

    /// Node `i` decrements by `by`.
    pub fn decrement(&mut self, i: usize, by: u64) -> bool {
        let ok = self
            .nodes
            .get_mut(i)
            .filter(|n| n.up)
            .is_some_and(|n| n.engine.decrement(by).is_ok());
        if ok {
            self.expected -= i128::from(by);
            self.rearm(i);
        }
        ok
    }

    /// Node `i` adds `by` to named counter `name`. Returns false if it is down or the write was
    /// refused (a bad name, no room, overflow).
    pub fn increment_named(&mut self, i: usize, name: &str, by: u64) -> bool {
        let ok = self
            .nodes
            .get_mut(i)
            .filter(|n| n.up)
            .is_some_and(|n| n.engine.apply_named(name, by, 0).is_ok());
        if ok && by > 0 {
            *self.expected_named.entry(name.into()).or_insert(0) += i128::from(by);
            self.rearm(i);
        }
        ok
    }

    /// Whether `engine` holds exactly the expected named counters.
    fn named_agrees(&self, engine: &SimEngine) -> bool {
        engine
            .named()
            .counters()
            .eq(self.expected_named.iter().map(|(k, v)| (k.as_str(), *v)))
    }

    /// Splits the nodes: frames between different groups are refused. `group(i)` names
    /// node `i`'s side.
    pub fn partition(&mut self, group: impl Fn(usize) -> u16) {
        self.groups = Some((0..self.nodes.len()).map(group).collect());
    }

    /// Ends any partition.
    pub fn heal(&mut self) {
        self.groups = None;
    }

    /// Crashes node `i`: it stops handling frames and timers; frames to it are refused.
    /// Its state is kept, as if it were durable, for [`Network::restart`].
    pub fn crash(&mut self, i: usize) {
        if let Some(n) = self.nodes.get_mut(i) {
            n.up = false;
        }
    }

    /// Brings node `i` back with NO state (its disk was lost), at the same address, knowing
    /// `peers` of the others. Its own earlier entry now lives only at its peers.
    pub fn restart_empty(&mut self, i: usize, config: Config, peers: &[usize]) {
        let now = self.now;
        let id = address(i);
        let Ok(mut engine) = SimEngine::new(id, id, config, now) else {
            return;
        };
        for &j in peers {
            let _ = engine.add_peer(address(j).as_str(), PeerSource::Static, now);
        }
        if let Some(n) = self.nodes.get_mut(i) {
            // What it had made is still counted in `expected`: the cluster holds it.
            n.engine = engine;
            n.up = true;
            n.timer_at = now;
            self.schedule(now, What::Timer { node: i as u32 });
        }
    }

    /// Brings node `i` back with the state it had.
    pub fn restart(&mut self, i: usize) {
        let now = self.now;
        if let Some(n) = self.nodes.get_mut(i) {
            if !n.up {
                n.up = true;
                n.timer_at = now;
                self.schedule(now, What::Timer { node: i as u32 });
            }
        }
    }

    // ----- running -----

    /// Processes events up to and including time `until`.
    pub fn run_until(&mut self, until: Instant) {
        while let Some(entry) = self.events.first_entry() {
            let at = *entry.key();
            if at > until {
                break;
            }
            let bucket = entry.remove();
            self.now = at;
            for what in bucket {
                match what {
                    What::Timer { node } => self.on_timer(node as usize, at),
                    What::Deliver { to, payload } => {
                        self.on_deliver(to as usize, &payload);
                        self.spare.push(payload);
                    }
                }
            }
        }
        self.now = self.now.max(until);
    }

    /// Runs in steps of `step` until every live node holds the expected value and the same
    /// state, or `deadline` passes. Returns the time of convergence.
    pub fn run_until_converged(&mut self, step: Duration, deadline: Instant) -> Option<Instant> {
        loop {
            if self.converged() {
                return Some(self.now);
            }
            if self.now >= deadline {
                return None;
            }
            let next = (self.now + step).min(deadline);
            self.run_until(next);
        }
    }

    fn on_timer(&mut self, i: usize, at: Instant) {
        let Some(node) = self.nodes.get_mut(i) else {
            return;
        };
        if !node.up || node.timer_at != at {
            return;
        }
        node.engine.handle_timeout(at, &mut self.rng);
        let next = node
            .engine
            .poll_timeout()
            .unwrap_or(at + Duration::from_secs(1));
        node.timer_at = next;
        self.schedule(next, What::Timer { node: i as u32 });
        self.drain(i);
    }

    fn on_deliver(&mut self, to: usize, payload: &[u8]) {
        let now = self.now;
        let Some(node) = self.nodes.get_mut(to) else {
            return;
        };
        if !node.up {
            return;
        }
        let Ok((from, frame)) = split_header(payload) else {
            return;
        };
        self.stats.delivered += 1;
        let _ = node.engine.handle(now, from, frame);
        self.drain(to);
    }

    fn reachable(&self, from: usize, to: usize) -> bool {
        let up = self.nodes.get(to).is_some_and(|n| n.up);
        let same_side = match &self.groups {
            Some(g) => g.get(from) == g.get(to),
            None => true,
        };
        up && same_side
    }

    fn drain(&mut self, i: usize) {
        let now = self.now;
        let mut buf = core::mem::take(&mut self.buf);
        while let Some(t) = self
            .nodes
            .get_mut(i)
            .and_then(|node| node.engine.poll_transmit(now, &mut buf))
        {
            let k = t.message.index();
            if let (Some(s), Some(b)) = (self.stats.sent.get_mut(k), self.stats.bytes.get_mut(k)) {
                *s += 1;
                *b += t.len as u64;
            }
            let header = 1 + buf.first().map_or(0, |&n| usize::from(n));
            self.stats.largest_frame = self.stats.largest_frame.max(t.len.saturating_sub(header));
            let Some(to) = index_of(t.to.as_str()) else {
                continue;
            };
            if !self.reachable(i, to) {
                self.stats.refused += 1;
                if let Some(node) = self.nodes.get_mut(i) {
                    node.engine.on_send_failed(t.to.as_str(), now);
                }
                continue;
            }
            if let Some(node) = self.nodes.get_mut(i) {
                node.engine.on_delivered(t.to.as_str(), now);
            }
            if self.rng.chance(self.net.loss) {
                self.stats.lost += 1;
                continue;
            }
            let copies = if self.rng.chance(self.net.duplicate) {
                self.stats.duplicated += 1;
                2
            } else {
                1
            };
            for _ in 0..copies {
                let latency = self.rng.range(
                    self.net.latency_min.as_millis(),
                    self.net.latency_max.as_millis(),
                );
                let mut payload = self.spare.pop().unwrap_or_default();
                payload.clear();
                payload.extend_from_slice(buf.get(..t.len).unwrap_or_default());
                self.schedule(
                    now + Duration::from_millis(latency),
                    What::Deliver {
                        to: to as u32,
                        payload,
                    },
                );
            }
        }
        self.buf = buf;
        self.rearm(i);
    }

    /// Brings node `i`'s timer forward when its engine now wants to run sooner (a write, a
    /// frame, a failed send).
    fn rearm(&mut self, i: usize) {
        let now = self.now;
        let Some(node) = self.nodes.get_mut(i).filter(|n| n.up) else {
            return;
        };
        let Some(next) = node.engine.poll_timeout() else {
            return;
        };
        let next = next.max(now);
        if next < node.timer_at {
            node.timer_at = next;
            self.schedule(next, What::Timer { node: i as u32 });
        }
    }

    // ----- observation -----

    /// Current virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The value every node should reach: the sum of all successful operations.
    pub fn expected(&self) -> i128 {
        self.expected
    }

    /// Node `i`'s engine.
    pub fn engine(&self, i: usize) -> Option<&SimEngine> {
        self.nodes.get(i).map(|n| &n.engine)
    }

    /// Node `i`'s engine, mutably (e.g. to add peers).
    pub fn engine_mut(&mut self, i: usize) -> Option<&mut SimEngine> {
        self.nodes.get_mut(i).map(|n| &mut n.engine)
    }

    /// Every node's value.
    pub fn values(&self) -> Vec<i128> {
        self.nodes.iter().map(|n| n.engine.value()).collect()
    }

    /// Number of live nodes holding the expected value.
    pub fn converged_count(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| n.up && n.engine.value() == self.expected && self.named_agrees(&n.engine))
            .count()
    }

    /// Every live node holds the expected value, with identical states.
    pub fn converged(&self) -> bool {
        let mut live = self.nodes.iter().filter(|n| n.up);
        let Some(first) = live.next() else {
            return true;
        };
        first.engine.value() == self.expected
            && self.named_agrees(&first.engine)
            && live.all(|n| {
                n.engine.counter() == first.engine.counter() && self.named_agrees(&n.engine)
            })
    }

    /// Sum of every engine's stats of one kind, e.g. `|s| s.full_push_bytes`.
    pub fn engine_total(&self, f: impl Fn(&crate::Stats) -> u64) -> u64 {
        self.nodes.iter().map(|n| f(n.engine.stats())).sum()
    }

    /// The largest [`memory_bytes`](crate::Engine::memory_bytes) of any node.
    pub fn max_memory(&self) -> usize {
        self.nodes
            .iter()
            .map(|n| n.engine.memory_bytes())
            .max()
            .unwrap_or(0)
    }

    /// Wire totals so far.
    pub fn stats(&self) -> &NetStats {
        &self.stats
    }

    /// The type of each index of [`NetStats::sent`].
    pub fn message_types() -> [MessageType; 4] {
        MessageType::ALL
    }
}
