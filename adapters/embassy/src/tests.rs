//! The handles on a replica, without a network: what a node counts, when, and what the
//! persister commits. (The I/O loops run in the TAP test, `firmware/linux-tap`.)

use crate::state::NodeState;
use crate::{Node, NodeError, Persister, Write, PENDING};
use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use tally_core::store::{decode_item, Record, SliceSink};
use tally_core::{
    Config, FixedReplica, Identity, Incarnation, Instant, PersistKind, ReplicaConfig,
    SnapshotPolicy,
};

type R = FixedReplica<8, 4, 32>;
type S = NodeState<NoopRawMutex, 8, 4, 32>;

fn replica(durable: bool, how: Incarnation) -> R {
    let id = Identity::new("door", 1).unwrap();
    let config = if durable {
        ReplicaConfig::durable(Config::mcu(), SnapshotPolicy::HOST)
    } else {
        ReplicaConfig::volatile(Config::mcu())
    };
    R::new(id, how, config, Instant::ZERO).unwrap()
}

/// Polls one record into a board-style item (version byte + record); returns it decoded.
fn poll<N: tally_core::named::MapStores<32>>(
    p: &mut Persister<'_, NoopRawMutex, 8, 4, 32, N>,
) -> Option<(u64, PersistKind, Vec<u8>)> {
    let mut buf = [0u8; 1024];
    let mut sink = SliceSink::new(&mut buf);
    tally_core::store::begin_item(&mut sink).unwrap();
    let got = p.poll(&mut sink).unwrap()?;
    Some((got.seq, got.kind, sink.written().to_vec()))
}

#[test]
fn a_volatile_node_counts_at_once_offline_and_takes_an_address_later() {
    let node_state = S::new(replica(false, Incarnation::Fresh));
    let node = Node {
        node_state: &node_state,
    };
    assert_eq!(node.id().as_str(), "door#00000001");
    assert_eq!(node.address(), None, "no network yet");
    assert_eq!(node.increment(3), Ok(Write::Committed(3)));
    assert_eq!(node.decrement(1), Ok(Write::Committed(2)));
    assert_eq!(node.local(), (3, 1));
    assert_eq!(
        node_state.changed.try_take(),
        Some(2),
        "changes are signalled"
    );
    assert!(!node_state.persist.signaled(), "nothing to persist");
    node.set_address(Some("10.0.0.5:9000")).unwrap();
    assert_eq!(node.address().unwrap().as_str(), "10.0.0.5:9000");
    // A new lease.
    node.set_address(Some("10.0.0.9:9000")).unwrap();
    assert_eq!(node.address().unwrap().as_str(), "10.0.0.9:9000");
    assert_eq!(
        node.set_address(Some("nowhere")),
        Err(NodeError::BadAddress)
    );
    assert_eq!(node.increment(u64::MAX), Err(NodeError::Overflow));
    assert_eq!(node.value(), 2);
    assert_eq!(node.transport(), tally_core::TransportStats::default());
}

#[test]
fn a_durable_write_counts_only_once_its_record_is_persisted() {
    let node_state = S::new(replica(true, Incarnation::Resumed));
    let node = Node {
        node_state: &node_state,
    };
    let mut persister = Persister {
        node_state: &node_state,
    };
    assert_eq!(node.increment(3), Ok(Write::Persisting));
    assert_eq!(node.value(), 0, "not shown before it is durable");
    assert_eq!(node_state.changed.try_take(), None);
    assert!(node_state.persist.signaled(), "the persister is woken");
    let (seq, kind, item) = poll(&mut persister).unwrap();
    assert_eq!(kind, PersistKind::Local);
    assert_eq!(
        decode_item(&item),
        Ok(Record::Local {
            id: "door#00000001",
            inc: 3,
            dec: 0
        })
    );
    assert_eq!(node.value(), 0, "written is not durable");
    persister.persisted(seq);
    assert_eq!(node.value(), 3);
    assert_eq!(node_state.changed.try_take(), Some(3));
    assert_eq!(persister.pending(), 0);
    assert!(poll(&mut persister).is_none());
}

#[test]
fn a_fresh_identity_is_durable_before_the_first_write_commits() {
    let node_state = S::new(replica(true, Incarnation::Fresh));
    let node = Node {
        node_state: &node_state,
    };
    let mut persister = Persister {
        node_state: &node_state,
    };
    assert_eq!(node.increment(1), Ok(Write::Persisting));
    let (id_seq, kind, item) = poll(&mut persister).unwrap();
    assert_eq!(kind, PersistKind::Identity);
    assert_eq!(decode_item(&item), Ok(Record::Identity("door#00000001")));
    persister.persisted(id_seq);
    assert_eq!(node.value(), 0, "the write's own record is not durable yet");
    let (seq, kind, _) = poll(&mut persister).unwrap();
    assert_eq!(kind, PersistKind::Local);
    persister.persisted(seq);
    assert_eq!(node.value(), 1);
}

#[test]
fn a_failed_record_is_carried_by_a_snapshot_and_commits_then() {
    let node_state = S::new(replica(true, Incarnation::Resumed));
    let node = Node {
        node_state: &node_state,
    };
    let mut persister = Persister {
        node_state: &node_state,
    };
    node.increment(5).unwrap();
    let (seq, kind, _) = poll(&mut persister).unwrap();
    persister.failed(seq, kind);
    assert_eq!(
        node.value(),
        0,
        "a write whose record failed is not counted"
    );
    assert_eq!(persister.pending(), 1);
    let (seq, kind, item) = poll(&mut persister).expect("a snapshot carries it");
    assert_eq!(kind, PersistKind::Snapshot);
    let Ok(Record::Snapshot(entries, _)) = decode_item(&item) else {
        panic!("not a snapshot");
    };
    assert_eq!(entries.collect::<Vec<_>>(), [("door#00000001", 5, 0)]);
    persister.persisted(seq);
    assert_eq!(node.value(), 5);
}

#[test]
fn many_writes_before_the_persister_runs_all_count() {
    let node_state = S::new(replica(true, Incarnation::Resumed));
    let node = Node {
        node_state: &node_state,
    };
    let mut persister = Persister {
        node_state: &node_state,
    };
    for _ in 0..PENDING * 3 {
        assert_eq!(node.increment(1), Ok(Write::Persisting));
    }
    assert!(persister.pending() <= PENDING);
    let mut records = 0;
    while let Some((seq, _, _)) = poll(&mut persister) {
        persister.persisted(seq);
        records += 1;
    }
    assert_eq!(records, 1, "one record carries every write");
    assert_eq!(node.value(), (PENDING * 3) as i128);
    assert_eq!(persister.pending(), 0);
}

/// A replica with room for two named counters (4 ids, 4 cells, 2 prepared writes).
type Named = tally_core::named::FixedStores<2, 4, 4, 2>;
type SN = NodeState<NoopRawMutex, 8, 4, 32, Named>;

fn named_replica(durable: bool) -> FixedReplica<8, 4, 32, Named> {
    let id = Identity::new("door", 1).unwrap();
    let config = if durable {
        ReplicaConfig::durable(Config::mcu(), SnapshotPolicy::HOST)
    } else {
        ReplicaConfig::volatile(Config::mcu())
    };
    FixedReplica::new(id, Incarnation::Resumed, config, Instant::ZERO).unwrap()
}

#[test]
fn named_counters_count_apart_and_a_full_map_refuses_clearly() {
    use tally_core::named::MapError;
    let node_state = SN::new(named_replica(false));
    let node = Node {
        node_state: &node_state,
    };
    assert_eq!(node.reserve_named("doors"), Ok(()));
    assert_eq!(
        node.named_value("doors"),
        None,
        "a reservation shows nothing"
    );
    assert_eq!(node.increment_named("doors", 3), Ok(Write::Committed(3)));
    assert_eq!(node.decrement_named("doors", 1), Ok(Write::Committed(2)));
    assert_eq!(node.increment_named("parts", 7), Ok(Write::Committed(7)));
    assert_eq!(
        node.reserve_named("third"),
        Err(NodeError::Counter(MapError::TooManyCounters))
    );
    assert!(
        node_state.named_changed.signaled(),
        "named changes are signalled"
    );
    assert_eq!(
        node_state.changed.try_take(),
        None,
        "the default did not change"
    );
    assert_eq!(node.value(), 0);
    assert_eq!(node.named_value("doors"), Some(2));
    assert_eq!(node.named_value("parts"), Some(7));
    assert_eq!(
        node.increment_named("third", 1),
        Err(NodeError::Counter(MapError::TooManyCounters))
    );
    assert!(matches!(
        node.increment_named("no space", 1),
        Err(NodeError::Counter(MapError::BadName(_)))
    ));
    assert_eq!(node.named_value("third"), None, "a refusal changes nothing");
    assert_eq!(node.named(|m| m.counters().count()), 2);
}

#[test]
fn durable_named_writes_to_several_counters_all_count() {
    let node_state = SN::new(named_replica(true));
    let node = Node {
        node_state: &node_state,
    };
    let mut persister = Persister {
        node_state: &node_state,
    };
    // Bursts of more writes than the waiting list holds, to two counters and the default:
    // none is refused (a burst to one counter makes room by dropping the writes of another
    // burst's counter that its newest covers — never another counter's only write), and each
    // counts once its record (or a later one of its counter) is in.
    for (name, by) in [(Some("doors"), 1), (Some("parts"), 2), (None, 1)] {
        for _ in 0..PENDING * 2 {
            let w = match name {
                Some(n) => node.increment_named(n, by),
                None => node.increment(by),
            };
            assert_eq!(w, Ok(Write::Persisting));
        }
    }
    assert_eq!(persister.pending(), 3, "one waiting write per counter");
    assert_eq!(
        node.named_value("doors"),
        None,
        "nothing shown before it is durable"
    );
    let mut kinds = Vec::new();
    while let Some((seq, kind, item)) = poll(&mut persister) {
        if kind == PersistKind::NamedLocal {
            assert!(matches!(decode_item(&item), Ok(Record::NamedLocal { .. })));
        }
        kinds.push(kind);
        persister.persisted(seq);
    }
    assert!(kinds.contains(&PersistKind::NamedLocal));
    assert_eq!(node.named_value("doors"), Some((PENDING * 2) as i128));
    assert_eq!(node.named_value("parts"), Some((PENDING * 4) as i128));
    assert_eq!(node.value(), (PENDING * 2) as i128);
    assert_eq!(persister.pending(), 0);
}
