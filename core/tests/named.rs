//! Named counters (`tally_core::named`): the CRDT laws of the map, exact values per counter,
//! capacity refusals that change nothing, and observed-remove keeping concurrent increments.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use proptest::prelude::*;
use std::collections::BTreeMap;
use tally_core::named::{FixedCounterMap, MapError, Totals};

mod common;

type M = FixedCounterMap<8, 8, 64, 16>;

const IDS: [&str; 4] = ["a#1", "b#1", "c#2", "d:9#7"];
const NAMES: [&str; 5] = ["doors", "exits", "parts.A", "parts-B", "x"];

fn map() -> M {
    M::new()
}

fn state(m: &M) -> Vec<(String, String, Totals)> {
    m.cells()
        .map(|(n, i, t)| (n.to_string(), i.to_string(), t))
        .collect()
}

fn merged(into: &M, from: &M) -> M {
    let mut out = into.clone();
    out.merge(from.cells()).unwrap();
    out
}

/// (replica, name, increment?, amount) operations.
fn ops() -> impl Strategy<Value = Vec<(usize, usize, bool, u32)>> {
    proptest::collection::vec(
        (0..IDS.len(), 0..NAMES.len(), any::<bool>(), 0u32..1000),
        0..40,
    )
}

/// Applies `ops` on one replica per id; returns them and each counter's exact value.
fn replicas(ops: &[(usize, usize, bool, u32)]) -> (Vec<M>, BTreeMap<&'static str, i128>) {
    let mut ms: Vec<M> = IDS.iter().map(|_| map()).collect();
    let mut expected = BTreeMap::new();
    for &(r, n, inc, by) in ops {
        let (i, d) = if inc { (by, 0) } else { (0, by) };
        ms[r]
            .apply(NAMES[n], IDS[r], u64::from(i), u64::from(d))
            .unwrap();
        if by > 0 {
            // A write of nothing creates no counter.
            *expected.entry(NAMES[n]).or_insert(0) += i128::from(i) - i128::from(d);
        }
    }
    (ms, expected)
}

proptest! {
    #[test]
    fn merge_is_commutative_associative_and_idempotent(ops in ops()) {
        let (ms, _) = replicas(&ops);
        let (a, b, c) = (&ms[0], &ms[1], &ms[2]);
        prop_assert_eq!(state(&merged(a, b)), state(&merged(b, a)));
        prop_assert_eq!(
            state(&merged(&merged(a, b), c)),
            state(&merged(a, &merged(b, c)))
        );
        prop_assert_eq!(state(&merged(a, a)), state(a));
        let mut again = merged(a, b);
        prop_assert!(!again.merge(b.cells()).unwrap(), "merging twice changed the map");
    }

    #[test]
    fn each_counter_is_the_sum_of_its_operations(ops in ops()) {
        let (ms, expected) = replicas(&ops);
        let mut all = map();
        for m in &ms {
            all.merge(m.cells()).unwrap();
        }
        for (name, value) in &expected {
            prop_assert_eq!(all.value(name), Some(*value), "{}", name);
        }
        let shown: Vec<&str> = all.counters().map(|(n, _)| n).collect();
        let want: Vec<&str> = expected.keys().copied().collect();
        prop_assert_eq!(shown, want);
    }

    #[test]
    fn a_merge_that_does_not_fit_changes_nothing(ops in ops(), extra in 2usize..5) {
        let (ms, _) = replicas(&ops);
        let mut small = FixedCounterMap::<2, 8, 64, 16>::new();
        small.apply("doors", "s#1", 3, 0).unwrap();
        let before: Vec<_> = small.cells().map(|(n, i, t)| (n.to_string(), i.to_string(), t)).collect();
        let mut big = FixedCounterMap::<16, 8, 128, 16>::new();
        for m in &ms {
            big.merge(m.cells()).unwrap();
        }
        for k in 0..extra {
            big.apply(["zz1", "zz2", "zz3", "zz4", "zz5"][k], "big#1", 1, 0).unwrap();
        }
        // `big` now holds at least two names besides "doors": they cannot all fit.
        let r = small.merge(big.cells());
        prop_assert_eq!(r, Err(MapError::TooManyCounters));
        let after: Vec<_> = small.cells().map(|(n, i, t)| (n.to_string(), i.to_string(), t)).collect();
        prop_assert_eq!(after, before);
    }
}

#[test]
fn capacity_and_names_are_refused_clearly_and_change_nothing() {
    let mut m = FixedCounterMap::<2, 2, 3, 16>::new();
    assert_eq!(m.apply("a", "me#1", 1, 0), Ok(1));
    assert_eq!(m.apply("b", "me#1", 0, 2), Ok(-2));
    let before = state_of(&m);
    assert_eq!(m.apply("c", "me#1", 1, 0), Err(MapError::TooManyCounters));
    assert_eq!(MapError::TooManyCounters.name(), "too_many_counters");
    let bad = m.apply("no spaces", "me#1", 1, 0).unwrap_err();
    assert_eq!(bad.name(), "bad_name");
    assert_eq!(m.apply("a", "me#1", u64::MAX, 0), Err(MapError::Overflow));
    // A third cell fits, a fourth does not; ids: two at most.
    let t = Totals {
        inc: 5,
        ..Totals::default()
    };
    assert_eq!(
        m.merge([("a", "other#1", t), ("b", "other#1", t)]),
        Err(MapError::CapacityExceeded)
    );
    assert_eq!(
        m.merge([("a", "x#1", t), ("a", "y#1", t)]),
        Err(MapError::CapacityExceeded)
    );
    assert_eq!(
        m.merge([("b", "x#1", t), ("a", "x#1", t)]),
        Err(MapError::Unsorted)
    );
    assert_eq!(state_of(&m), before);
    assert_eq!(m.merge([("a", "x#1", t)]), Ok(true));
    assert_eq!(m.value("a"), Some(6));
}

fn state_of<const K: usize, const I: usize, const C: usize>(
    m: &FixedCounterMap<K, I, C, 16>,
) -> Vec<(String, String, Totals)> {
    m.cells()
        .map(|(n, i, t)| (n.to_string(), i.to_string(), t))
        .collect()
}

#[test]
fn a_removal_keeps_the_increment_made_concurrently() {
    let (mut a, mut b) = (map(), map());
    a.apply("doors", "a#1", 5, 0).unwrap();
    b.apply("doors", "b#1", 3, 1).unwrap();
    a.merge(b.cells()).unwrap();
    b.merge(a.cells()).unwrap();
    assert_eq!((a.value("doors"), b.value("doors")), (Some(7), Some(7)));
    // Concurrently: a removes the counter as it sees it; b counts 2 more.
    assert!(a.remove("doors"));
    assert_eq!(a.value("doors"), None);
    assert_eq!(a.counters().count(), 0);
    b.apply("doors", "b#1", 2, 0).unwrap();
    let (a2, b2) = (merged(&a, &b), merged(&b, &a));
    assert_eq!(a2.value("doors"), Some(2));
    assert_eq!(b2.value("doors"), Some(2));
    assert_eq!(state(&a2), state(&b2));
    // A removal that saw everything leaves nothing, everywhere.
    let mut c = a2.clone();
    assert!(c.remove("doors"));
    let d = merged(&b2, &c);
    assert_eq!(d.value("doors"), None);
    assert!(!c.remove("doors"), "already removed");
    // Counting again after a removal starts from zero.
    c.apply("doors", "a#1", 4, 0).unwrap();
    assert_eq!(c.value("doors"), Some(4));
}

mod wire {
    use super::*;
    use tally_core::named::wire::{emit, NamedLimits, NamedPush};
    use tally_core::WireError;

    fn t(inc: u64, dec: u64, floor_inc: u64, floor_dec: u64) -> Totals {
        Totals {
            inc,
            dec,
            floor_inc,
            floor_dec,
        }
    }

    fn vector_cells() -> Vec<(&'static str, &'static str, Totals)> {
        vec![
            ("doors", "a#1", t(5, 1, 0, 0)),
            ("doors", "b#2", t(3, 0, 2, 0)),
            ("exits", "a#1", t(1, 0, 0, 0)),
        ]
    }

    /// `docs/EXTENSIONS.md` §6.3, byte for byte.
    const VECTOR: &str = "83a174cc12a26964a3612331a163\
        82a5646f6f7273\
        92\
        95a3612331cf0000000000000005cf0000000000000001cf0000000000000000cf0000000000000000\
        95a3622332cf0000000000000003cf0000000000000000cf0000000000000002cf0000000000000000\
        a565786974739195a3612331cf0000000000000001cf0000000000000000cf0000000000000000cf0000000000000000";

    #[test]
    fn the_vector_is_what_emit_writes_and_parse_reads() {
        let mut buf = [0u8; 512];
        let n = emit("a#1", vector_cells().into_iter(), &mut buf).unwrap();
        assert_eq!(buf[..n], common::hex(VECTOR)[..]);
        let p = NamedPush::parse(&buf[..n], &NamedLimits::HOST).unwrap();
        assert_eq!(p.id, "a#1");
        assert_eq!(p.cells.collect::<Vec<_>>(), vector_cells());
    }

    #[test]
    fn a_map_travels_through_a_push_and_merges_to_the_same_state() {
        let (ms, expected) = replicas(&[(0, 0, true, 4), (1, 0, false, 1), (2, 3, true, 9)]);
        let mut all = map();
        for m in &ms {
            all.merge(m.cells()).unwrap();
        }
        all.remove("parts-B");
        let mut buf = vec![0u8; 4096];
        let n = emit("all#1", all.cells(), &mut buf).unwrap();
        let p = NamedPush::parse(&buf[..n], &NamedLimits::HOST).unwrap();
        let mut other = map();
        assert!(other.merge(p.cells).unwrap());
        assert_eq!(state(&other), state(&all));
        assert_eq!(other.value("doors"), Some(expected["doors"]));
        assert_eq!(other.value("parts-B"), None);
    }

    #[test]
    fn bad_pushes_are_refused_with_their_reason() {
        let limits = NamedLimits::HOST;
        let push = |cells: Vec<(&str, &str, Totals)>| {
            let mut buf = vec![0u8; 1024];
            let n = emit("a#1", cells.into_iter(), &mut buf).unwrap();
            buf.truncate(n);
            buf
        };
        let reason =
            |bytes: &[u8], limits: &NamedLimits| NamedPush::parse(bytes, limits).unwrap_err();
        let ok = t(1, 0, 0, 0);
        assert_eq!(
            reason(&push(vec![("b", "x", ok), ("a", "x", ok)]), &limits),
            WireError::BadName
        );
        assert_eq!(
            reason(&push(vec![("a", "y", ok), ("a", "x", ok)]), &limits),
            WireError::BadName
        );
        assert_eq!(
            reason(&push(vec![("a b", "x", ok)]), &limits),
            WireError::BadName
        );
        assert_eq!(
            reason(&push(vec![("a", "x", t(1, 0, 2, 0))]), &limits),
            WireError::Malformed
        );
        assert_eq!(reason(&push(vec![]), &limits), WireError::EmptyPush);
        let tight = NamedLimits {
            max_id_len: 8,
            max_counters: 1,
            max_cells: 1,
        };
        assert_eq!(
            reason(&push(vec![("a", "x", ok), ("b", "x", ok)]), &tight),
            WireError::TooManyEntries
        );
        assert_eq!(
            reason(&push(vec![("a", "x", ok), ("a", "y", ok)]), &tight),
            WireError::TooManyEntries
        );
        assert_eq!(
            reason(&push(vec![("a", "a-long-id", ok)]), &tight),
            WireError::IdTooLong
        );
        // A reference Push (t = 1) is not a named Push.
        let mut v = push(vec![("a", "x", ok)]);
        v[4] = 1;
        assert_eq!(reason(&v, &limits), WireError::UnknownType);
        // Cut anywhere: refused, never a panic.
        let whole = push(vec![("a", "x", ok), ("b", "y", ok)]);
        for cut in 0..whole.len() {
            assert!(
                NamedPush::parse(&whole[..cut], &limits).is_err(),
                "cut at {cut}"
            );
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = NamedPush::parse(&bytes, &NamedLimits::HOST);
        }
    }
}

#[test]
fn a_reserved_counter_keeps_its_place_and_is_invisible_until_written() {
    let mut m = FixedCounterMap::<2, 4, 4, 16>::new();
    let empty = m.digest();
    assert_eq!(m.reserve("doors"), Ok(()));
    assert_eq!(
        m.reserve("doors"),
        Ok(()),
        "reserving twice is one reservation"
    );
    assert_eq!(m.value("doors"), None, "not shown");
    assert_eq!(m.counters().count(), 0);
    assert_eq!(m.digest(), empty, "the digest does not see it");
    assert_eq!(m.cells().count(), 0, "nothing to send");
    let t = Totals {
        inc: 5,
        ..Totals::default()
    };
    // Peers' counters take the one place left, and no more.
    let report = m
        .merge_each([("a", "h#1", t), ("b", "h#1", t)].into_iter())
        .unwrap();
    assert!(report.changed);
    assert_eq!(report.refused, 1);
    assert_eq!(m.value("a"), Some(5));
    assert_eq!(m.value("b"), None);
    // The reserved counter is written: it counts.
    assert_eq!(m.apply("doors", "me#1", 2, 0), Ok(2));
    assert_eq!(m.value("doors"), Some(2));
    // A full table refuses a new reservation and changes nothing; bad names are refused.
    let before = (state_of(&m), m.names_len());
    assert_eq!(before.1, 2);
    assert_eq!(m.reserve("c"), Err(MapError::TooManyCounters));
    assert!(matches!(m.reserve(".."), Err(MapError::BadName(_))));
    assert!(matches!(m.reserve("."), Err(MapError::BadName(_))));
    assert_eq!((state_of(&m), m.names_len()), before);
}
