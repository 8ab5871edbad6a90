//! Authenticated clusters (spec §8) and the reply rate limit, at the engine.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::{id, TestEngine};
use tally_core::frame::split_header;
use tally_core::{ClusterKey, Config, Instant, Message, PeerSource, WireError};

const KEY_A: &str = "00112233445566778899aabbccddeeff";
const KEY_B: &str = "ffeeddccbbaa99887766554433221100";

fn engine(addr: &str, key: Option<&str>) -> TestEngine {
    let mut config = Config::mcu();
    config.cluster_key = key.map(|k| ClusterKey::from_hex(k).unwrap());
    TestEngine::new(id(addr), id(addr), config, Instant::ZERO).unwrap()
}

/// Moves every queued frame from `src` to `dst`; returns the results of `handle`.
fn pump(src: &mut TestEngine, dst: &mut TestEngine, now: Instant) -> Vec<Result<(), WireError>> {
    let mut buf = [0u8; 8192];
    let mut out = Vec::new();
    while let Some(t) = src.poll_transmit(now, &mut buf) {
        let (from, frame) = split_header(&buf[..t.len]).unwrap();
        out.push(dst.handle(now, from, frame).map(|_| ()));
    }
    out
}

fn push_from(e: &mut TestEngine, to: &str, now: Instant) -> Vec<u8> {
    // A differing DigestPull from `to` makes `e` push its full state to `to`.
    let pull: Message<'_, std::iter::Empty<(&str, u64)>> =
        Message::DigestPull { id: to, digest: 1 };
    let mut frame = vec![0u8; 64];
    let n = pull.emit(&mut frame[1..]).unwrap();
    frame.truncate(n + 1);
    if let Some(k) = e.config().cluster_key {
        frame.resize(frame.len() + 16, 0);
        let len = k.seal(&mut frame, n + 1).unwrap();
        frame.truncate(len);
    }
    e.handle(now, to, &frame).unwrap();
    let mut buf = [0u8; 8192];
    let t = e.poll_transmit(now, &mut buf).unwrap();
    let (_, f) = split_header(&buf[..t.len]).unwrap();
    f.to_vec()
}

#[test]
fn keyed_nodes_converge() {
    let mut a = engine("a:1", Some(KEY_A));
    let mut b = engine("b:1", Some(KEY_A));
    a.add_peer("b:1", PeerSource::Static, Instant::ZERO)
        .unwrap();
    a.increment(5).unwrap();
    let now = Instant::from_millis(60_000);
    let mut rng = <rand::rngs::SmallRng as rand::SeedableRng>::seed_from_u64(3);
    a.handle_timeout(now, &mut rng);
    for _ in 0..4 {
        assert!(pump(&mut a, &mut b, now).iter().all(Result::is_ok));
        assert!(pump(&mut b, &mut a, now).iter().all(Result::is_ok));
    }
    assert_eq!(b.value(), 5);
}

#[test]
fn forged_and_foreign_frames_are_dropped() {
    let mut keyed = engine("k:1", Some(KEY_A));
    keyed.increment(1).unwrap();
    // A forged Push without a tag, from a keyless node.
    let mut keyless = engine("x:1", None);
    keyless.increment(1_000_000).unwrap();
    let forged = push_from(&mut keyless, "k:1", Instant::ZERO);
    assert_eq!(
        keyed.handle(Instant::ZERO, "x:1", &forged),
        Err(WireError::Unauthenticated)
    );
    // A tag made with another key.
    let mut other = engine("o:1", Some(KEY_B));
    other.increment(1_000_000).unwrap();
    let foreign = push_from(&mut other, "k:1", Instant::ZERO);
    assert_eq!(
        keyed.handle(Instant::ZERO, "o:1", &foreign),
        Err(WireError::Unauthenticated)
    );
    // A keyless node refuses tagged frames instead of silently mixing modes.
    let mut keyless2 = engine("y:1", None);
    let tagged = push_from(&mut other, "y:1", Instant::ZERO);
    assert_eq!(
        keyless2.handle(Instant::ZERO, "o:1", &tagged),
        Err(WireError::UnexpectedAuth)
    );
    assert_eq!(keyed.value(), 1);
    assert_eq!(keyed.stats().rejected(WireError::Unauthenticated), 2);
    assert!(
        keyed.peers().is_empty(),
        "unauthenticated senders are not peers"
    );
}

#[test]
fn a_replayed_push_changes_nothing() {
    let mut src = engine("s:1", Some(KEY_A));
    src.increment(7).unwrap();
    let push = push_from(&mut src, "d:1", Instant::ZERO);
    let mut dst = engine("d:1", Some(KEY_A));
    dst.handle(Instant::ZERO, "s:1", &push).unwrap();
    assert_eq!(dst.value(), 7);
    dst.increment(1).unwrap();
    for _ in 0..100 {
        let h = dst.handle(Instant::ZERO, "s:1", &push).unwrap();
        assert!(!h.changed);
    }
    assert_eq!(dst.value(), 8);
}

#[test]
fn a_pull_flood_naming_a_victim_gets_bounded_replies() {
    let mut n = engine("n:1", None);
    n.increment(3).unwrap();
    let pull: Message<'_, std::iter::Empty<(&str, u64)>> = Message::DigestPull {
        id: "v:1",
        digest: 9,
    };
    let mut frame = vec![0u8; 64];
    let len = pull.emit(&mut frame[1..]).unwrap();
    frame.truncate(len + 1);
    let mut buf = [0u8; 8192];
    let mut replies = 0;
    // 1000 pulls within one sync interval, all naming the victim "v:1" as sender.
    for k in 0..1000u64 {
        let now = Instant::from_millis(k);
        n.handle(now, "v:1", &frame).unwrap();
        while n.poll_transmit(now, &mut buf).is_some() {
            replies += 1;
        }
    }
    let limit = Config::mcu().max_replies_per_interval;
    assert!(replies <= usize::from(limit), "{replies} replies");
    assert!(n.stats().replies_limited >= 990);
    // The next interval gets a fresh budget.
    n.handle(Instant::from_millis(5_000), "v:1", &frame)
        .unwrap();
    assert!(n
        .poll_transmit(Instant::from_millis(5_000), &mut buf)
        .is_some());
}
