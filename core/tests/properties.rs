//! Property tests: the CRDT laws, exact values, wire round-trips, and no panic on any bytes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use proptest::prelude::*;
use tally_core::union::Union;
use tally_core::{FixedCounter, FrameLimits, Message, MessageLimits, NodeId};

type C = FixedCounter<16, 16>;

const IDS: [&str; 6] = ["a", "b", "c", "dd", "e:1", "zz"];

/// One node's operations: (node index, increment?, amount).
fn ops() -> impl Strategy<Value = Vec<(usize, bool, u32)>> {
    proptest::collection::vec((0..IDS.len(), any::<bool>(), 0u32..1000), 0..40)
}

/// Applies `ops` to per-node counters and returns them and the exact expected value.
fn replicas(ops: &[(usize, bool, u32)]) -> (Vec<C>, i128) {
    let mut cs: Vec<C> = IDS
        .iter()
        .map(|i| C::new(NodeId::new(i).unwrap()).unwrap())
        .collect();
    let mut expected = 0i128;
    for &(n, inc, by) in ops {
        if inc {
            cs[n].increment(u64::from(by)).unwrap();
            expected += i128::from(by);
        } else {
            cs[n].decrement(u64::from(by)).unwrap();
            expected -= i128::from(by);
        }
    }
    (cs, expected)
}

fn merged(a: &C, b: &C) -> C {
    let mut m = a.clone();
    m.merge(b).unwrap();
    m
}

proptest! {
    #[test]
    fn merge_is_commutative(o in ops(), x in 0..6usize, y in 0..6usize) {
        let (cs, _) = replicas(&o);
        prop_assert_eq!(merged(&cs[x], &cs[y]), merged(&cs[y], &cs[x]));
    }

    #[test]
    fn merge_is_associative(o in ops(), x in 0..6usize, y in 0..6usize, z in 0..6usize) {
        let (cs, _) = replicas(&o);
        let left = merged(&merged(&cs[x], &cs[y]), &cs[z]);
        let right = merged(&cs[x], &merged(&cs[y], &cs[z]));
        prop_assert_eq!(left, right);
    }

    #[test]
    fn merge_is_idempotent(o in ops(), x in 0..6usize, y in 0..6usize) {
        let (cs, _) = replicas(&o);
        let once = merged(&cs[x], &cs[y]);
        let mut twice = once.clone();
        let out = twice.merge(&cs[y]).unwrap();
        prop_assert!(!out.changed);
        prop_assert_eq!(&twice, &once);
        prop_assert_eq!(merged(&once, &once), once);
    }

    #[test]
    fn any_merge_order_gives_the_exact_sum(o in ops(), order in Just((0..6usize).collect::<Vec<_>>()).prop_shuffle()) {
        let (cs, expected) = replicas(&o);
        let mut acc = cs[order[0]].clone();
        for &i in &order[1..] {
            acc.merge(&cs[i]).unwrap();
            // Partial merges are never above the final value's components.
            prop_assert!(acc.total_inc() <= cs.iter().map(|c| c.total_inc()).sum::<u128>());
        }
        prop_assert_eq!(acc.value(), expected);
    }

    #[test]
    fn push_roundtrips(entries in proptest::collection::btree_map("[a-z0-9:.]{1,20}", (any::<u64>(), any::<u64>()), 1..20)) {
        let inc: Vec<(&str, u64)> = entries.iter().map(|(k, v)| (k.as_str(), v.0)).collect();
        let dec: Vec<(&str, u64)> = entries.iter().map(|(k, v)| (k.as_str(), v.1)).collect();
        let m = Message::Push { id: "sender:1", inc: inc.iter().copied(), dec: dec.iter().copied() };
        let mut buf = vec![0u8; m.buffer_len()];
        let n = m.emit(&mut buf).unwrap();
        prop_assert_eq!(n, buf.len());
        let parsed = Message::parse(&buf, &MessageLimits::HOST).unwrap();
        match &parsed {
            Message::Push { id, inc: pi, dec: pd } => {
                prop_assert_eq!(*id, "sender:1");
                prop_assert_eq!(pi.clone().collect::<Vec<_>>(), inc.clone());
                prop_assert_eq!(pd.clone().collect::<Vec<_>>(), dec.clone());
            }
            _ => prop_assert!(false, "not a push"),
        }
        // emit(parse(b)) == b for canonical b.
        let mut again = vec![0u8; parsed.buffer_len()];
        parsed.emit(&mut again).unwrap();
        prop_assert_eq!(again, buf);
    }

    #[test]
    fn unsorted_maps_merge_like_sorted_ones(entries in proptest::collection::vec(("[a-f]{1,3}", 0u64..50, 0u64..50), 1..24)) {
        // Reference nodes write maps in any order, possibly (if hostile) with repeats.
        let inc: Vec<(&str, u64)> = entries.iter().map(|(k, i, _)| (k.as_str(), *i)).collect();
        let dec: Vec<(&str, u64)> = entries.iter().rev().map(|(k, _, d)| (k.as_str(), *d)).collect();
        let m = Message::Push { id: "s:1", inc: inc.iter().copied(), dec: dec.iter().copied() };
        let mut buf = vec![0u8; m.buffer_len()];
        m.emit(&mut buf).unwrap();
        let Message::Push { inc: pi, dec: pd, .. } = Message::parse(&buf, &MessageLimits::HOST).unwrap() else {
            panic!("not a push")
        };
        let union: Vec<_> = Union::new(pi.clone(), pd.clone()).collect();
        let scan: Vec<_> = Union::scanning(pi, pd).collect();
        prop_assert_eq!(&union, &scan);
        prop_assert!(union.windows(2).all(|w| w[0].0 < w[1].0));
        let mut model = std::collections::BTreeMap::<&str, (u64, u64)>::new();
        for &(k, v) in &inc { let e = model.entry(k).or_default(); e.0 = e.0.max(v); }
        for &(k, v) in &dec { let e = model.entry(k).or_default(); e.1 = e.1.max(v); }
        let want: Vec<_> = model.into_iter().map(|(k, (i, d))| (k, i, d)).collect();
        prop_assert_eq!(union, want);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = Message::parse(&bytes, &MessageLimits::HOST);
        let _ = Message::parse(&bytes, &MessageLimits::MCU);
        let _ = tally_core::frame::decode(&bytes, &FrameLimits::MCU);
        let _ = tally_core::frame::split_header(&bytes);
    }

    #[test]
    fn mutated_vectors_never_panic(pos in 0usize..106, byte in any::<u8>(), cut in 0usize..107) {
        let mut frame = vec![0u8];
        frame.extend(hex_push_a());
        let p = pos % frame.len();
        frame[p] = byte;
        frame.truncate(cut.max(1));
        if let Ok(body) = tally_core::frame::decode(&frame, &FrameLimits::MCU) {
            let _ = Message::parse(body.bytes(), &MessageLimits::MCU);
        }
    }
}

fn hex_push_a() -> Vec<u8> {
    let s = include_str!("../fixtures/a_push.hex").trim();
    (2..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
