//! A board that cannot hold the cluster's state (issue 17's measurement: 40 writer ids in a
//! host, a 32-entry board) knows it: from the first Push refused for lack of room its value
//! is not complete ([`Engine::is_complete`]), while it keeps counting its own entry and
//! serving it, so the host's value stays exact. A peer whose digest equals the board's makes
//! it complete again.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use common::TestEngine;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use tally_core::frame::split_header;
use tally_core::{Config, FixedEngine, Instant, Message, NodeId, PeerSource};

type HostEngine = FixedEngine<64, 16, 64>;

const HOST: &str = "10.0.0.1:9000";
const BOARD: &str = "10.0.0.2:9000";
const TWIN: &str = "10.0.0.3:9000";

fn id(s: &str) -> NodeId<64> {
    NodeId::new(s).unwrap()
}

/// The host learns 40 writers (one each) from a Push of a node that is not a peer here.
fn host_with_forty_writers() -> HostEngine {
    let mut host = HostEngine::new(id(HOST), id(HOST), Config::host(), Instant::ZERO).unwrap();
    let names: Vec<String> = (0..40).map(|i| format!("w{i:02}#00000000")).collect();
    let inc: Vec<(&str, u64)> = names.iter().map(|n| (n.as_str(), 1)).collect();
    let push = Message::Push {
        id: "10.0.0.9:9000",
        inc: inc.iter().copied(),
        dec: [].iter().copied(),
    };
    let mut frame = vec![0u8; 1 + push.buffer_len()];
    let n = push.emit(&mut frame[1..]).unwrap();
    host.handle(Instant::ZERO, "10.0.0.9:9000", &frame[..1 + n])
        .unwrap();
    assert_eq!(host.value(), 40);
    host
}

/// Delivers every frame either engine wants sent at `now`, until none is left.
fn pump(host: &mut HostEngine, board: &mut TestEngine, now: Instant) {
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let mut moved = false;
        while let Some(t) = host.poll_transmit(now, &mut buf) {
            moved = true;
            host.on_delivered(t.to.as_str(), now);
            let (from, frame) = split_header(&buf[..t.len]).unwrap();
            let _ = board.handle(now, from, frame);
        }
        while let Some(t) = board.poll_transmit(now, &mut buf) {
            moved = true;
            board.on_delivered(t.to.as_str(), now);
            let (from, frame) = split_header(&buf[..t.len]).unwrap();
            let _ = host.handle(now, from, frame);
        }
        if !moved {
            return;
        }
    }
}

/// Runs both engines' timers and deliveries until `until`.
fn run(host: &mut HostEngine, board: &mut TestEngine, from: Instant, until: Instant) -> Instant {
    let mut rng = SmallRng::seed_from_u64(5);
    let mut now = from;
    pump(host, board, now);
    loop {
        let next = [host.poll_timeout(), board.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(until)
            .max(now);
        if next > until {
            return until;
        }
        now = next;
        if host.poll_timeout().is_some_and(|t| t <= now) {
            host.handle_timeout(now, &mut rng);
        }
        if board.poll_timeout().is_some_and(|t| t <= now) {
            board.handle_timeout(now, &mut rng);
        }
        pump(host, board, now);
    }
}

#[test]
fn a_board_over_capacity_says_so_keeps_counting_and_recovers_on_an_equal_digest() {
    let mut host = host_with_forty_writers();
    let mut board = common::engine(BOARD);
    host.add_peer(BOARD, PeerSource::Static, Instant::ZERO)
        .unwrap();
    board
        .add_peer(HOST, PeerSource::Static, Instant::ZERO)
        .unwrap();
    assert!(board.is_complete(), "a new board is complete");

    let t = run(
        &mut host,
        &mut board,
        Instant::ZERO,
        Instant::from_millis(30_000),
    );
    assert!(
        !board.is_complete(),
        "the board took a partial sum for the cluster's value"
    );
    assert!(host.is_complete());

    // The board keeps counting, and its entry reaches the host: the host's value is exact.
    board.increment(3).unwrap();
    host.increment(5).unwrap();
    let t = run(
        &mut host,
        &mut board,
        t,
        t + tally_core::Duration::from_millis(30_000),
    );
    assert_eq!(host.value(), 48, "the host lost the board's writes");
    assert!(!board.is_complete(), "still over capacity");
    assert!(board.value() < 48, "the board cannot hold the whole state");

    // A twin holding exactly the board's state pulls with an equal digest: complete again.
    let mut twin = common::engine(TWIN);
    let mut buf = vec![0u8; 1 << 16];
    board.add_peer(TWIN, PeerSource::Static, t).unwrap();
    let entries: Vec<(String, u64, u64)> = board
        .counter()
        .entries()
        .iter()
        .map(|e| (e.id.as_str().to_string(), e.inc, e.dec))
        .collect();
    let inc: Vec<(&str, u64)> = entries.iter().map(|e| (e.0.as_str(), e.1)).collect();
    let dec: Vec<(&str, u64)> = entries.iter().map(|e| (e.0.as_str(), e.2)).collect();
    let push = Message::Push {
        id: BOARD,
        inc: inc.iter().copied(),
        dec: dec.iter().copied(),
    };
    let n = push.emit(&mut buf[1..]).unwrap();
    twin.handle(t, BOARD, &buf[..1 + n]).unwrap();
    assert_eq!(twin.value(), board.value());
    let pull: Message<'_> = Message::DigestPull {
        id: TWIN,
        digest: twin.digest(),
    };
    let n = pull.emit(&mut buf[1..]).unwrap();
    board.handle(t, TWIN, &buf[..1 + n]).unwrap();
    assert!(
        board.is_complete(),
        "an equal digest did not make the board complete"
    );
}
