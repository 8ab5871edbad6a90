//! CRDT laws and robustness on seeded random input: a fixed number of cases, the same on
//! every machine.

use crate::ensure;
use crate::suite::{Outcome, Rng};
use tally_core::frame::{self, split_header};
use tally_core::{FixedCounter, FrameLimits, Instant, Message, MessageLimits, NodeId, PeerSource};

/// Cases per property.
pub const CASES: u64 = 100;
const IDS: [&str; 6] = ["a", "b", "c", "dd", "e:1", "zz"];
type C = FixedCounter<8, 8>;

/// Six replicas after up to 40 random operations, and the exact expected value.
fn replicas(rng: &mut Rng) -> Result<([C; 6], i128), &'static str> {
    let mk = |id: &str| -> Result<C, &'static str> {
        C::new(NodeId::new(id).map_err(|_| "id")?).map_err(|_| "room")
    };
    let [a, b, c, d, e, f] = IDS;
    let mut cs = [mk(a)?, mk(b)?, mk(c)?, mk(d)?, mk(e)?, mk(f)?];
    let mut expected = 0i128;
    for _ in 0..rng.below(40) {
        let n = rng.below(6) as usize;
        let by = rng.below(1000);
        let c = cs.get_mut(n).ok_or("index")?;
        if rng.below(2) == 0 {
            c.increment(by).map_err(|_| "increment")?;
            expected += i128::from(by);
        } else {
            c.decrement(by).map_err(|_| "decrement")?;
            expected -= i128::from(by);
        }
    }
    Ok((cs, expected))
}

fn merged(a: &C, b: &C) -> Result<C, &'static str> {
    let mut m = a.clone();
    m.merge(b).map_err(|_| "merge")?;
    Ok(m)
}

/// The non-zero entries: the state as the wire and the digest see it (a replica's own zero
/// entry from birth is not part of it).
fn same_state(a: &C, b: &C) -> bool {
    let nz = |c: &C| {
        c.entries()
            .iter()
            .filter(|e| !e.is_zero())
            .map(|e| (e.id, e.inc, e.dec))
            .collect::<heapless::Vec<_, 8>>()
    };
    nz(a) == nz(b)
}

fn pick<'c>(cs: &'c [C; 6], rng: &mut Rng) -> Result<&'c C, &'static str> {
    cs.get(rng.below(6) as usize).ok_or("index")
}

pub fn merge_is_commutative_associative_idempotent() -> Outcome {
    let mut rng = Rng::new(0x7a11_0001);
    for _ in 0..CASES {
        let (cs, _) = replicas(&mut rng)?;
        let (x, y, z) = (
            pick(&cs, &mut rng)?,
            pick(&cs, &mut rng)?,
            pick(&cs, &mut rng)?,
        );
        ensure!(
            same_state(&merged(x, y)?, &merged(y, x)?),
            "merge not commutative"
        );
        let left = merged(&merged(x, y)?, z)?;
        let right = merged(x, &merged(y, z)?)?;
        ensure!(same_state(&left, &right), "merge not associative");
        let twice = merged(&merged(x, y)?, y)?;
        ensure!(same_state(&twice, &merged(x, y)?), "merge not idempotent");
    }
    Ok(())
}

pub fn value_is_the_sum_of_operations() -> Outcome {
    let mut rng = Rng::new(0x7a11_0002);
    for _ in 0..CASES {
        let (cs, expected) = replicas(&mut rng)?;
        let mut all = cs.first().ok_or("empty")?.clone();
        for c in &cs {
            all.merge(c).map_err(|_| "merge")?;
        }
        ensure!(
            all.value() == expected,
            "merged value differs from the operations' sum"
        );
        // Merging in the opposite order gives the same state.
        let mut back = cs.last().ok_or("empty")?.clone();
        for c in cs.iter().rev() {
            back.merge(c).map_err(|_| "merge")?;
        }
        ensure!(same_state(&back, &all), "merge order changed the state");
    }
    Ok(())
}

pub fn push_round_trips_through_the_wire() -> Outcome {
    let mut rng = Rng::new(0x7a11_0003);
    for _ in 0..CASES / 4 {
        let (cs, _) = replicas(&mut rng)?;
        let mut a = crate::vectors::engine("10.0.0.1:9000")?;
        for c in &cs {
            let entries = c.entries().iter().map(|e| (e.id.as_str(), e.inc, e.dec));
            a.merge_state(entries).map_err(|_| "merge_state")?;
        }
        a.increment(rng.below(50)).map_err(|_| "increment")?;
        let mut b = crate::vectors::engine("10.0.0.2:9000")?;
        b.add_peer("10.0.0.1:9000", PeerSource::Static, Instant::ZERO)
            .map_err(|_| "add_peer")?;
        // b (empty) pulls; a answers with a Push; b merges it.
        let pull: Message<'_, core::iter::Empty<(&str, u64)>> = Message::DigestPull {
            id: "10.0.0.2:9000",
            digest: b.digest(),
        };
        let mut buf = [0u8; 512];
        let n = pull
            .emit(buf.get_mut(1..).unwrap_or_default())
            .map_err(|_| "emit")?;
        a.handle(
            Instant::ZERO,
            "10.0.0.2:9000",
            buf.get(..=n).unwrap_or_default(),
        )
        .map_err(|_| "pull rejected")?;
        let t = a.poll_transmit(Instant::ZERO, &mut buf).ok_or("no push")?;
        let (from, frame) =
            split_header(buf.get(..t.len).unwrap_or_default()).map_err(|_| "header")?;
        b.handle(Instant::ZERO, from, frame)
            .map_err(|_| "push rejected")?;
        ensure!(b.value() == a.value(), "value after one push");
        ensure!(b.digest() == a.digest(), "digest after one push");
    }
    Ok(())
}

pub fn random_bytes_never_panic() -> Outcome {
    let mut rng = Rng::new(0x7a11_0004);
    let mut buf = [0u8; 96];
    let mut accepted = 0u32;
    let seed = crate::vectors::Fixture::new(include_str!("../../../core/fixtures/a_push.hex"))?;
    for case in 0..CASES * 10 {
        let n = rng.below(buf.len() as u64) as usize;
        if case % 2 == 0 {
            // Mutations of a valid frame reach deeper into the parser.
            for (d, s) in buf.iter_mut().zip(seed.bytes()) {
                *d = *s;
            }
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(buf.len() as u64) as usize;
                if let Some(b) = buf.get_mut(at) {
                    *b = rng.next() as u8;
                }
            }
        } else {
            for b in buf.iter_mut() {
                *b = rng.next() as u8;
            }
        }
        let input = buf.get(..n.max(1)).unwrap_or_default();
        if let Ok(body) = frame::decode(input, &FrameLimits::MCU) {
            if Message::parse(body.bytes(), &MessageLimits::MCU).is_ok() {
                accepted += 1;
            }
        }
    }
    // Mostly rejections; the point is that nothing panicked or hung.
    ensure!(
        accepted < (CASES * 10) as u32,
        "every random input was accepted"
    );
    Ok(())
}
