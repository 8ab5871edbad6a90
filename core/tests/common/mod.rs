//! Helpers shared by the core's integration tests.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use tally_core::{Config, FixedEngine, Instant, NodeId, PeerSource, Transmit};

use rand::rngs::SmallRng;

/// Decodes a fixture's hex (whitespace ignored).
pub fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// A fixture file from `core/fixtures`, decoded.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    hex(&std::fs::read_to_string(path).unwrap())
}

pub type TestEngine = FixedEngine<32, 16, 64>;

pub fn id(s: &str) -> NodeId<64> {
    NodeId::new(s).unwrap()
}

/// An engine at address = id `addr`.
pub fn engine(addr: &str) -> TestEngine {
    TestEngine::new(id(addr), id(addr), Config::mcu(), Instant::ZERO).unwrap()
}

/// One step of a hand-driven wire whose queued frames were all delivered at `now`: the next
/// timeout of any engine, if it comes by `until`, fired on every engine it is due for. Returns
/// the time it fired at (the new "now"), or `None` when nothing is due by `until`.
pub fn step(
    nodes: &mut [TestEngine],
    now: Instant,
    until: Instant,
    rng: &mut SmallRng,
) -> Option<Instant> {
    let next = nodes
        .iter()
        .filter_map(|e| e.poll_timeout())
        .min()
        .unwrap()
        .max(now);
    if next > until {
        return None;
    }
    for e in nodes.iter_mut() {
        if e.poll_timeout().is_some_and(|t| t <= next) {
            e.handle_timeout(next, rng);
        }
    }
    Some(next)
}

/// Engines at `addrs` (address = id) with `config`, each a static peer of every other.
pub fn mesh(addrs: &[String], config: Config) -> Vec<TestEngine> {
    addrs
        .iter()
        .map(|a| {
            let mut e = TestEngine::new(id(a), id(a), config, Instant::ZERO).unwrap();
            for b in addrs.iter().filter(|b| *b != a) {
                e.add_peer(b, PeerSource::Static, Instant::ZERO).unwrap();
            }
            e
        })
        .collect()
}

/// The next frame any engine wants sent at `now` (the lowest index first): its sender, the
/// transmit and its payload.
pub fn next_transmit(
    nodes: &mut [TestEngine],
    now: Instant,
) -> Option<(usize, Transmit<64>, Vec<u8>)> {
    let mut buf = vec![0u8; 8192];
    nodes.iter_mut().enumerate().find_map(|(i, e)| {
        let t = e.poll_transmit(now, &mut buf)?;
        Some((i, t, buf[..t.len].to_vec()))
    })
}
