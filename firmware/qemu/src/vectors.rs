//! The spec's vectors (§10), byte for byte, from `core/fixtures` (embedded at build time).

use crate::ensure;
use crate::suite::{hex, Outcome};
use core::hash::Hasher;
use tally_core::digest::digest;
use tally_core::frame::{self, split_header};
use tally_core::{Config, FixedEngine, FrameLimits, Instant, Message, MessageLimits, NodeId};
use tally_core::{MessageType, PeerSource};

const A_PUSH: &str = include_str!("../../../core/fixtures/a_push.hex");
const A_DOC: &str = include_str!("../../../core/fixtures/a_digest_document.hex");
const B_PULL: &str = include_str!("../../../core/fixtures/b_digest_pull.hex");
const C_ACK: &str = include_str!("../../../core/fixtures/c_digest_ack.hex");
const E_COMPACT: &str = include_str!("../../../core/fixtures/e_compact_push.hex");
const E_UNKNOWN: &str = include_str!("../../../core/fixtures/e_pull_unknown_key.hex");

/// The engines of these checks: 8 entries, 4 peers, 32-byte ids.
pub type Small = FixedEngine<8, 4, 32>;
/// The digest of state (a).
const DIGEST_A: u64 = 0x8cf9_63b0_efdc_56a4;

/// A fixed buffer holding one decoded fixture.
pub struct Fixture {
    buf: [u8; 256],
    len: usize,
}

impl Fixture {
    /// Decodes `text`.
    pub fn new(text: &str) -> Result<Self, &'static str> {
        let mut buf = [0u8; 256];
        let len = hex(text, &mut buf)?;
        Ok(Self { buf, len })
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}

/// An engine whose id and address are `addr`.
pub fn engine(addr: &str) -> Result<Small, &'static str> {
    let id = NodeId::new(addr).map_err(|_| "bad id")?;
    Small::new(id, id, Config::mcu(), Instant::ZERO).map_err(|_| "no room")
}

/// State (a): node 9000 with inc {9000: 3, 9001: 1}, dec {9000: 1}.
fn state_a() -> Result<Small, &'static str> {
    let mut e = engine("127.0.0.1:9000")?;
    e.increment(3).map_err(|_| "increment")?;
    e.decrement(1).map_err(|_| "decrement")?;
    e.merge_state([("127.0.0.1:9001", 1u64, 0u64)].into_iter())
        .map_err(|_| "merge")?;
    Ok(e)
}

pub fn push_a_emits_byte_for_byte() -> Outcome {
    let want = Fixture::new(A_PUSH)?;
    ensure!(want.bytes().len() == 106, "fixture (a) is not 106 bytes");
    let mut e = state_a()?;
    e.add_peer("127.0.0.1:9001", PeerSource::Static, Instant::ZERO)
        .map_err(|_| "add_peer")?;
    // A DigestPull with another digest makes the engine answer with a full Push.
    let pull = Fixture::new(B_PULL)?;
    let mut other = [0u8; 64];
    let n = pull.bytes().len();
    let other = other.get_mut(..n).ok_or("pull too long")?;
    other.copy_from_slice(pull.bytes());
    if let Some(last) = other.last_mut() {
        *last ^= 1;
    }
    e.handle(Instant::ZERO, "127.0.0.1:9001", other)
        .map_err(|_| "pull rejected")?;
    let mut buf = [0u8; 512];
    let t = e.poll_transmit(Instant::ZERO, &mut buf).ok_or("no push")?;
    let (from, frame) = split_header(buf.get(..t.len).unwrap_or_default()).map_err(|_| "header")?;
    ensure!(from == "127.0.0.1:9000", "wrong sender in header");
    ensure!(t.to.as_str() == "127.0.0.1:9001", "wrong destination");
    ensure!(frame == want.bytes(), "push differs from vector (a)");
    Ok(())
}

pub fn vectors_parse_then_emit_identically() -> Outcome {
    for text in [A_PUSH, B_PULL, C_ACK] {
        let f = Fixture::new(text)?;
        let body = frame::decode(f.bytes(), &FrameLimits::MCU).map_err(|_| "decode")?;
        let msg = Message::parse(body.bytes(), &MessageLimits::MCU).map_err(|_| "parse")?;
        let mut out = [0u8; 256];
        ensure!(msg.buffer_len() <= out.len(), "buffer_len too large");
        let n = msg.emit(&mut out).map_err(|_| "emit")?;
        ensure!(
            Some(out.get(..n).unwrap_or_default()) == f.bytes().get(1..),
            "re-emitted bytes differ"
        );
    }
    Ok(())
}

pub fn digest_matches_vector() -> Outcome {
    let doc = Fixture::new(A_DOC)?;
    ensure!(doc.bytes().len() == 155, "digest document is not 155 bytes");
    let mut h = twox_hash::XxHash64::with_seed(0);
    h.write(doc.bytes());
    ensure!(h.finish() == DIGEST_A, "XXH64 of the document");
    let e = state_a()?;
    ensure!(
        digest(e.counter().entries()) == DIGEST_A,
        "streamed digest of (a)"
    );
    Ok(())
}

pub fn engine_writes_pull_b_and_ack_c() -> Outcome {
    // One engine at a time (each in a function of its own, so their stack is reused): the
    // Cortex-M0 has 16 KiB of RAM in all.
    let mut pull = [0u8; 256];
    let len = pull_b(&mut pull)?;
    ack_c(pull.get(..len).unwrap_or_default())
}

/// Node 9001's first frames: its hello, then the DigestPull of vector (b), copied into `out`.
#[inline(never)]
fn pull_b(out: &mut [u8; 256]) -> Result<usize, &'static str> {
    let mut b = engine("127.0.0.1:9001")?;
    b.merge_state([("127.0.0.1:9000", 3u64, 1u64), ("127.0.0.1:9001", 1, 0)].into_iter())
        .map_err(|_| "merge")?;
    b.add_peer("127.0.0.1:9000", PeerSource::Static, Instant::ZERO)
        .map_err(|_| "add_peer")?;
    let mut rng = crate::suite::Rng::new(1);
    b.handle_timeout(Instant::from_millis(2_000), &mut rng);
    let mut buf = [0u8; 256];
    // Its hello (a DigestAck, `docs/EXTENSIONS.md` §2) comes first, then the round's pull.
    let hello = b.poll_transmit(Instant::ZERO, &mut buf).ok_or("no hello")?;
    ensure!(hello.message == MessageType::DigestAck, "not a hello");
    let t = b.poll_transmit(Instant::ZERO, &mut buf).ok_or("no pull")?;
    ensure!(t.message == MessageType::DigestPull, "not a DigestPull");
    let (_, frame) = split_header(buf.get(..t.len).unwrap_or_default()).map_err(|_| "header")?;
    ensure!(
        frame == Fixture::new(B_PULL)?.bytes(),
        "pull differs from vector (b)"
    );
    out.get_mut(..frame.len())
        .ok_or("pull too long")?
        .copy_from_slice(frame);
    Ok(frame.len())
}

/// Node 9000 with state (a) answers the pull with the DigestAck of vector (c).
#[inline(never)]
fn ack_c(pull: &[u8]) -> Outcome {
    let mut a = state_a()?;
    let h = a
        .handle(Instant::ZERO, "127.0.0.1:9001", pull)
        .map_err(|_| "pull rejected")?;
    ensure!(!h.changed, "a pull changed the state");
    let mut out = [0u8; 256];
    let t = a.poll_transmit(Instant::ZERO, &mut out).ok_or("no ack")?;
    let (_, frame) = split_header(out.get(..t.len).unwrap_or_default()).map_err(|_| "header")?;
    ensure!(
        frame == Fixture::new(C_ACK)?.bytes(),
        "ack differs from vector (c)"
    );
    Ok(())
}

pub fn decodes_the_compact_forms_of_e() -> Outcome {
    let compact = Fixture::new(E_COMPACT)?;
    match Message::parse(compact.bytes(), &MessageLimits::MCU).map_err(|_| "parse (e) push")? {
        Message::Push { id, mut inc, dec } => {
            ensure!(id == "x", "id");
            ensure!(inc.next() == Some(("a", 5)), "inc entry");
            ensure!(inc.next().is_none(), "extra inc entry");
            ensure!(dec.is_empty(), "dec not empty");
        }
        _ => return Err("not a Push"),
    }
    let pull = Fixture::new(E_UNKNOWN)?;
    let m = Message::parse(pull.bytes(), &MessageLimits::MCU).map_err(|_| "parse (e) pull")?;
    ensure!(
        matches!(m, Message::DigestPull { id: "x", digest: 7 }),
        "pull with unknown key"
    );
    Ok(())
}
