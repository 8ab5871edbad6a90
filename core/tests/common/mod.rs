//! Helpers shared by the core's integration tests.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use tally_core::{Config, FixedEngine, Instant, NodeId};

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
