//! Engines on a lossy in-memory network with virtual time: random updates, a partition that
//! heals, and every node must agree on the exact value. Four nodes; three on the Cortex-M0,
//! whose 16 KiB cannot also hold the stack copies that `Engine::new` makes while building one.

use crate::ensure;
use crate::suite::{Outcome, Rng};
use tally_core::frame::split_header;
use tally_core::{Config, Duration, FixedEngine, Instant, NodeId, PeerSource};

/// Small enough that four fit the Cortex-M0's 16 KiB with room for the stack (one entry per
/// node: four).
type Node = FixedEngine<4, 3, 16>;
const ADDRS: [&str; 4] = [
    "10.0.0.1:9000",
    "10.0.0.2:9000",
    "10.0.0.3:9000",
    "10.0.0.4:9000",
];
/// Updates happen in the first 20 s; agreement is required before 60 s.
const UPDATES_UNTIL: u64 = 20_000;
const DEADLINE: u64 = 60_000;
const STEP: u64 = 50;
/// Node 2 is cut off between these times.
const PARTITION: (u64, u64) = (5_000, 15_000);

fn node(i: usize) -> Result<Node, &'static str> {
    let me = NodeId::new(ADDRS.get(i).ok_or("index")?).map_err(|_| "id")?;
    let config = Config::mcu().with_sync_interval(Duration::from_millis(500));
    let mut n = Node::new(me, me, config, Instant::ZERO).map_err(|_| "room")?;
    for (j, a) in ADDRS.iter().enumerate() {
        if j != i {
            n.add_peer(a, PeerSource::Static, Instant::ZERO)
                .map_err(|_| "add_peer")?;
        }
    }
    Ok(n)
}

fn cut(i: usize, t: u64) -> bool {
    i == 2 && (PARTITION.0..PARTITION.1).contains(&t)
}

pub fn nodes_converge_through_loss_and_a_partition() -> Outcome {
    #[cfg(not(target_arch = "arm"))]
    let mut nodes = [node(0)?, node(1)?, node(2)?, node(3)?];
    #[cfg(all(target_arch = "arm", not(target_has_atomic = "ptr")))]
    let mut nodes = [node(0)?, node(1)?, node(2)?];
    #[cfg(all(target_arch = "arm", target_has_atomic = "ptr"))]
    let mut nodes = [node(0)?, node(1)?, node(2)?, node(3)?];
    let count = nodes.len();
    let mut rng = Rng::new(0x7a11_0005);
    let mut expected = 0i128;
    let mut buf = [0u8; 512];
    let mut agreed_at = None;
    let mut t = 0u64;
    while t <= DEADLINE {
        let now = Instant::from_millis(t);
        if t < UPDATES_UNTIL && rng.below(4) == 0 {
            let n = nodes
                .get_mut(rng.below(count as u64) as usize)
                .ok_or("index")?;
            let by = 1 + rng.below(9);
            if rng.below(3) == 0 {
                n.decrement(by).map_err(|_| "decrement")?;
                expected -= i128::from(by);
            } else {
                n.increment(by).map_err(|_| "increment")?;
                expected += i128::from(by);
            }
        }
        for i in 0..nodes.len() {
            let src = nodes.get_mut(i).ok_or("index")?;
            if src.poll_timeout().is_some_and(|due| due <= now) {
                src.handle_timeout(now, &mut rng);
            }
            loop {
                let src = nodes.get_mut(i).ok_or("index")?;
                let Some(tx) = src.poll_transmit(now, &mut buf) else {
                    break;
                };
                let to = ADDRS
                    .iter()
                    .position(|a| *a == tx.to.as_str())
                    .ok_or("unknown peer")?;
                let lost = rng.below(10) == 0 || cut(i, t) || cut(to, t) || to >= count;
                if lost {
                    src.on_send_failed(tx.to.as_str(), now);
                    continue;
                }
                src.on_delivered(tx.to.as_str(), now);
                let (from, frame) =
                    split_header(buf.get(..tx.len).unwrap_or_default()).map_err(|_| "header")?;
                let dst = nodes.get_mut(to).ok_or("index")?;
                dst.handle(now, from, frame).map_err(|_| "frame rejected")?;
            }
        }
        if t >= UPDATES_UNTIL && agreed_at.is_none() {
            let first = nodes.first_mut().ok_or("empty")?.digest();
            let all_agree = nodes
                .iter_mut()
                .all(|n| n.value() == expected && n.digest() == first);
            if all_agree {
                agreed_at = Some(t);
            }
        }
        t += STEP;
    }
    let at = agreed_at.ok_or("the nodes did not agree before the deadline")?;
    crate::println!(
        "  {} nodes converged {} ms after the last update; value {}; engine {} B",
        nodes.len(),
        at - UPDATES_UNTIL,
        expected,
        core::mem::size_of::<Node>()
    );
    for n in &nodes {
        ensure!(
            n.stats().rejects.iter().all(|&r| r == 0),
            "a node rejected a frame"
        );
    }
    Ok(())
}
