//! The spec's vectors (§10), byte for byte: emit, parse, digest, and the engine's own frames.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::{engine, fixture, hex};
use core::hash::Hasher;
use tally_core::digest::digest;
use tally_core::frame::{self, split_header};
use tally_core::{Instant, Message, MessageLimits, MessageType, PeerSource};

/// State (a): node 9000 with inc {9000: 3, 9001: 1}, dec {9000: 1}.
fn state_a() -> common::TestEngine {
    let mut e = engine("127.0.0.1:9000");
    e.increment(3).unwrap();
    e.decrement(1).unwrap();
    e.merge_state([("127.0.0.1:9001", 1u64, 0u64)].into_iter())
        .unwrap();
    e
}

#[test]
fn push_a_emits_byte_for_byte() {
    let want = fixture("a_push.hex");
    assert_eq!(want.len(), 106);
    let mut e = state_a();
    e.add_peer("127.0.0.1:9001", PeerSource::Static, Instant::ZERO)
        .unwrap();
    // A DigestPull with a different digest makes the engine answer with a full Push.
    let pull = fixture("b_digest_pull.hex");
    let mut other = pull.clone();
    *other.last_mut().unwrap() ^= 1;
    e.handle(Instant::ZERO, "127.0.0.1:9001", &other).unwrap();
    let mut buf = [0u8; 4096];
    let t = e.poll_transmit(Instant::ZERO, &mut buf).unwrap();
    let (from, frame) = split_header(&buf[..t.len]).unwrap();
    assert_eq!(from, "127.0.0.1:9000");
    assert_eq!(t.to.as_str(), "127.0.0.1:9001");
    assert_eq!(frame, &want[..]);
}

#[test]
fn vectors_parse_then_emit_identically() {
    for name in ["a_push.hex", "b_digest_pull.hex", "c_digest_ack.hex"] {
        let frame = fixture(name);
        let body = frame::decode(&frame, &tally_core::FrameLimits::MCU).unwrap();
        let msg = Message::parse(body.bytes(), &MessageLimits::MCU).unwrap();
        let mut out = vec![0u8; msg.buffer_len()];
        let n = msg.emit(&mut out).unwrap();
        assert_eq!(n, frame.len() - 1, "{name}");
        assert_eq!(&out[..n], &frame[1..], "{name}");
    }
}

#[test]
fn digest_matches_vector() {
    let doc = fixture("a_digest_document.hex");
    assert_eq!(doc.len(), 155);
    let mut h = twox_hash::XxHash64::with_seed(0);
    h.write(&doc);
    assert_eq!(h.finish(), 0x8cf9_63b0_efdc_56a4);
    let e = state_a();
    assert_eq!(digest(e.counter().entries()), 0x8cf9_63b0_efdc_56a4);
    assert_eq!(0x8cf9_63b0_efdc_56a4u64, 10158260046100453028);
}

#[test]
fn engine_writes_pull_b_and_ack_c() {
    // Node 9001 holding state (a) sends the DigestPull of vector (b).
    let mut b = engine("127.0.0.1:9001");
    b.merge_state([("127.0.0.1:9000", 3u64, 1u64), ("127.0.0.1:9001", 1, 0)].into_iter())
        .unwrap();
    b.add_peer("127.0.0.1:9000", PeerSource::Static, Instant::ZERO)
        .unwrap();
    let mut rng = <rand::rngs::SmallRng as rand::SeedableRng>::seed_from_u64(1);
    b.handle_timeout(Instant::from_millis(2_000), &mut rng);
    let mut buf = [0u8; 4096];
    // Its hello (a DigestAck, `EXTENSIONS.md` §2) comes first; then the round's DigestPull.
    let hello = b.poll_transmit(Instant::ZERO, &mut buf).unwrap();
    assert_eq!(hello.message, MessageType::DigestAck);
    let t = b.poll_transmit(Instant::ZERO, &mut buf).unwrap();
    assert_eq!(t.message, MessageType::DigestPull);
    let (_, frame) = split_header(&buf[..t.len]).unwrap();
    assert_eq!(frame, &fixture("b_digest_pull.hex")[..]);

    // Node 9000 with the same state answers with the DigestAck of vector (c).
    let mut a = state_a();
    let h = a.handle(Instant::ZERO, "127.0.0.1:9001", frame).unwrap();
    assert!(!h.changed);
    let t = a.poll_transmit(Instant::ZERO, &mut buf).unwrap();
    let (_, frame) = split_header(&buf[..t.len]).unwrap();
    assert_eq!(frame, &fixture("c_digest_ack.hex")[..]);
}

#[test]
fn decodes_the_compact_forms_of_e() {
    let compact = fixture("e_compact_push.hex");
    let m = Message::parse(&compact, &MessageLimits::MCU).unwrap();
    match m {
        Message::Push { id, inc, dec } => {
            assert_eq!(id, "x");
            assert_eq!(inc.collect::<Vec<_>>(), [("a", 5)]);
            assert!(dec.is_empty());
        }
        other => panic!("{other:?}"),
    }
    let pull = fixture("e_pull_unknown_key.hex");
    let m = Message::parse(&pull, &MessageLimits::MCU).unwrap();
    assert!(matches!(m, Message::DigestPull { id: "x", digest: 7 }));
    assert_eq!(hex("0a ff"), [0x0a, 0xff]);
}

/// `docs/EXTENSIONS.md` §2: the hello and its answer, byte for byte — each a reference
/// DigestAck (47 bytes, the layout of vector (c)).
#[test]
fn hello_and_its_answer_are_the_documented_bytes() {
    let hello = hex("0085a174cc03a26964ae3132372e302e302e313a39303030a3696e63c0a3646563c0a3646967cf54616c6c79010001");
    let answer = hex("0085a174cc03a26964ae3132372e302e302e313a39303031a3696e63c0a3646563c0a3646967cf54616c6c79018001");
    let mut a = engine("127.0.0.1:9000");
    let (t, payload) = first_transmit(&mut a, "127.0.0.1:9001");
    assert_eq!(t.message, MessageType::DigestAck);
    let (from, frame) = split_header(&payload).unwrap();
    assert_eq!((from, frame), ("127.0.0.1:9000", &hello[..]));
    let mut buf = [0u8; 4096];

    let mut b = engine("127.0.0.1:9001");
    b.handle(Instant::ZERO, "127.0.0.1:9000", &hello).unwrap();
    assert_eq!(
        b.peers().get("127.0.0.1:9000").unwrap().caps,
        Some(tally_core::ext::Caps::QUIET)
    );
    let t = b.poll_transmit(Instant::ZERO, &mut buf).unwrap();
    let (_, frame) = split_header(&buf[..t.len]).unwrap();
    assert_eq!(frame, &answer[..]);
    // The answer is not answered again.
    a.handle(Instant::ZERO, "127.0.0.1:9001", &answer).unwrap();
    assert!(a.poll_transmit(Instant::ZERO, &mut buf).is_none());
    assert!(a
        .peers()
        .get("127.0.0.1:9001")
        .unwrap()
        .speaks(tally_core::ext::Caps::QUIET));
}

/// `docs/EXTENSIONS.md` §2.2: the hello of a node with a datagram socket announces `QUIET` and
/// `DATAGRAM` (caps 3); the peer records both.
#[test]
fn hello_with_datagrams_is_the_documented_bytes() {
    let hello = hex("0085a174cc03a26964ae3132372e302e302e313a39303030a3696e63c0a3646563c0a3646967cf54616c6c79010003");
    let mut a = engine("127.0.0.1:9000");
    a.set_max_datagram(1200);
    let (t, payload) = first_transmit(&mut a, "127.0.0.1:9001");
    assert!(!t.datagram, "a hello always goes over TCP");
    let (_, frame) = split_header(&payload).unwrap();
    assert_eq!(frame, &hello[..]);
    let mut b = engine("127.0.0.1:9001");
    b.handle(Instant::ZERO, "127.0.0.1:9000", &hello).unwrap();
    let caps = b.peers().get("127.0.0.1:9000").unwrap().caps.unwrap();
    assert!(caps.contains(tally_core::ext::Caps::DATAGRAM));
}

/// What `a` sends first once `peer` is added and its timers run: the hello to it.
fn first_transmit(a: &mut common::TestEngine, peer: &str) -> (tally_core::Transmit<64>, Vec<u8>) {
    a.add_peer(peer, PeerSource::Static, Instant::ZERO).unwrap();
    let mut rng = <rand::rngs::SmallRng as rand::SeedableRng>::seed_from_u64(1);
    a.handle_timeout(Instant::ZERO, &mut rng);
    let mut buf = [0u8; 4096];
    let t = a.poll_transmit(Instant::ZERO, &mut buf).unwrap();
    (t, buf[..t.len].to_vec())
}
