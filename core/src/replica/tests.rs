use super::*;
use crate::error::WireError;
use crate::frame::split_header;
use crate::store::{decode, Record, FORMAT_VERSION};
use crate::time::Duration;

type R = FixedReplica<8, 4, 64>;

struct Seq(u32);
impl rand_core::RngCore for Seq {
    fn next_u32(&mut self) -> u32 {
        self.0 = self.0.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        self.0
    }
    fn next_u64(&mut self) -> u64 {
        u64::from(self.next_u32())
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        dst.iter_mut().for_each(|b| *b = self.next_u32() as u8);
    }
}

fn policy(ms: u64) -> SnapshotPolicy {
    SnapshotPolicy {
        interval: Duration::from_millis(ms),
        after_changes: 0,
        merges_only: false,
    }
}

fn durable(name: &str, inc: u32, how: Incarnation) -> R {
    let id = Identity::new(name, inc).unwrap();
    R::new(
        id,
        how,
        ReplicaConfig::durable(Config::mcu(), policy(1000)),
        Instant::ZERO,
    )
    .unwrap()
}

/// A store model: records in stream order; a durable snapshot drops what came before it.
#[derive(Default)]
struct Log {
    records: std::vec::Vec<std::vec::Vec<u8>>,
}

impl Log {
    fn drain(&mut self, r: &mut R) -> std::vec::Vec<Persisting> {
        let mut got = std::vec::Vec::new();
        loop {
            let mut buf = std::vec::Vec::new();
            match r.poll_persist(&mut buf).unwrap() {
                Some(p) => {
                    if p.kind == PersistKind::Snapshot {
                        self.records.clear();
                    }
                    self.records.push(buf);
                    got.push(p);
                }
                None => return got,
            }
        }
    }

    /// Takes every record and reports each failed (a store that cannot write): nothing kept.
    fn drain_failing(&mut self, r: &mut R) -> std::vec::Vec<Persisting> {
        let mut got = std::vec::Vec::new();
        let mut buf = std::vec::Vec::new();
        while let Some(p) = r.poll_persist(&mut buf).unwrap() {
            buf.clear();
            r.persist_failed(p.seq, p.kind);
            got.push(p);
        }
        got
    }

    /// Recovery: the max over what is left, per entry id.
    fn recover(&self, id: &str) -> (u64, u64) {
        let mut best = (0, 0);
        let mut see = |i: &str, inc: u64, dec: u64| {
            if i == id {
                best = (best.0.max(inc), best.1.max(dec));
            }
        };
        for r in &self.records {
            match decode(FORMAT_VERSION, r).unwrap() {
                Record::Local { id, inc, dec } => see(id, inc, dec),
                Record::Snapshot(es, _) => es.for_each(|(i, inc, dec)| see(i, inc, dec)),
                Record::Identity(_) | Record::NamedLocal { .. } => {}
            }
        }
        best
    }
}

#[test]
fn a_prepared_write_is_invisible_until_committed() {
    let mut r = durable("door", 1, Incarnation::Resumed);
    let p = r.prepare(LocalOp::Increment(5)).unwrap();
    assert_eq!((p.inc, p.dec), (5, 0));
    assert_eq!(r.value(), 0, "not shown before commit");
    assert_eq!(r.counter().version(), 0, "nothing for gossip to send");
    assert!(r.wants_persist());
    let mut log = Log::default();
    let polled = log.drain(&mut r);
    assert_eq!(polled.len(), 1);
    assert_eq!(polled[0].kind, PersistKind::Local);
    assert_eq!(log.recover("door#00000001"), (5, 0));
    assert_eq!(r.commit(p), Ok(5));
    assert_eq!(r.local(), (5, 0));
    assert_eq!(
        r.poll_event(),
        Some(Event::Changed {
            value: 5,
            cause: Cause::Local
        })
    );
    assert_eq!(r.poll_event(), None);
}

#[test]
fn overflow_is_refused_at_prepare_and_changes_nothing() {
    let mut r = durable("door", 1, Incarnation::Resumed);
    let p = r.prepare(LocalOp::Decrement(u64::MAX)).unwrap();
    assert_eq!(
        r.prepare(LocalOp::Decrement(1)),
        Err(PrepareError::Overflow)
    );
    let mut log = Log::default();
    log.drain(&mut r);
    r.commit(p).unwrap();
    assert_eq!(r.value(), -i128::from(u64::MAX));
    // The failed prepare queued nothing.
    assert!(!r.wants_persist());
}

#[test]
fn a_fresh_identity_is_persisted_before_any_write_commits() {
    let mut r = durable("door", 0xabcd, Incarnation::Fresh);
    let p = r.prepare(LocalOp::Increment(1)).unwrap();
    assert_eq!(r.commit(p), Err(CommitError::IdentityNotPersisted));
    assert_eq!(r.value(), 0);
    let mut buf = std::vec::Vec::new();
    let first = r.poll_persist(&mut buf).unwrap().unwrap();
    assert_eq!(first.kind, PersistKind::Identity);
    assert_eq!(
        decode(FORMAT_VERSION, &buf),
        Ok(Record::Identity("door#0000abcd"))
    );
    r.persisted(first.seq);
    assert_eq!(r.commit(p), Ok(1));
}

#[test]
fn a_write_between_capture_and_snapshot_is_not_lost() {
    // The host race: state captured for a snapshot, a write logged, the snapshot written and
    // the older records dropped. In the stream the snapshot is encoded when polled and holds
    // every prepared write, so whatever the interleaving, recovery keeps every write.
    let id = "door#00000001";
    for interleave in 0..4 {
        let mut r = durable("door", 1, Incarnation::Resumed);
        let mut log = Log::default();
        let mut acked = 0u64;
        let a = r.prepare(LocalOp::Increment(1)).unwrap();
        log.drain(&mut r);
        r.commit(a).unwrap();
        acked += 1;
        r.request_snapshot().unwrap();
        // The write lands after the snapshot was asked for, before or after it is polled.
        let b = r.prepare(LocalOp::Increment(10)).unwrap();
        match interleave {
            0 => {
                log.drain(&mut r);
            }
            1 => {
                // Only the snapshot is polled, the write's record comes after it.
                let mut buf = std::vec::Vec::new();
                let s = r.poll_persist(&mut buf).unwrap().unwrap();
                assert_eq!(s.kind, PersistKind::Snapshot);
                log.records.clear();
                log.records.push(buf);
                assert_eq!(
                    log.recover(id),
                    (11, 0),
                    "the snapshot holds the prepared write"
                );
                log.drain(&mut r);
            }
            2 => {
                let c = r.prepare(LocalOp::Increment(100)).unwrap();
                log.drain(&mut r);
                r.commit(c).unwrap();
                acked += 100;
            }
            _ => {
                r.request_snapshot().unwrap();
                log.drain(&mut r);
            }
        }
        r.commit(b).unwrap();
        acked += 10;
        assert_eq!(log.recover(id).0, acked, "interleaving {interleave}");
        assert_eq!(r.local().0, acked);
    }
}

#[test]
fn merged_state_is_snapshotted_on_the_interval_and_only_when_changed() {
    let mut r = durable("door", 1, Incarnation::Resumed);
    let mut rng = Seq(1);
    let t = Instant::ZERO + Duration::from_millis(1000);
    r.handle_timeout(t, &mut rng);
    assert!(!r.wants_persist(), "nothing changed: no snapshot");
    // A merge-only change (restored here the way gossip would merge it).
    r.engine
        .merge_state([("gate#00000002", 7u64, 0u64)].into_iter())
        .unwrap();
    r.handle_timeout(t + Duration::from_millis(10), &mut rng);
    assert!(!r.wants_persist(), "the interval has not passed");
    r.handle_timeout(t + Duration::from_millis(1000), &mut rng);
    let mut log = Log::default();
    let got = log.drain(&mut r);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].kind, PersistKind::Snapshot);
    assert_eq!(log.recover("gate#00000002"), (7, 0));
    r.handle_timeout(t + Duration::from_millis(2000), &mut rng);
    assert!(!r.wants_persist(), "no change since the last snapshot");
}

#[test]
fn snapshot_by_change_count() {
    let id = Identity::new("door", 1).unwrap();
    let cfg = ReplicaConfig::durable(
        Config::mcu(),
        SnapshotPolicy {
            interval: Duration::from_secs(3600),
            after_changes: 3,
            merges_only: false,
        },
    );
    let mut r = R::new(id, Incarnation::Resumed, cfg, Instant::ZERO).unwrap();
    let mut log = Log::default();
    let mut rng = Seq(2);
    for i in 0..3 {
        let p = r.prepare(LocalOp::Increment(1)).unwrap();
        log.drain(&mut r);
        r.commit(p).unwrap();
        r.handle_timeout(Instant::from_millis(i), &mut rng);
    }
    let got = log.drain(&mut r);
    assert_eq!(
        got.iter().map(|p| p.kind).collect::<std::vec::Vec<_>>(),
        [PersistKind::Snapshot]
    );
}

/// With `merges_only` (the boards' flash), presses alone never make a snapshot — the Local
/// record already holds them — while a merged change does, once the interval has passed; a
/// failed snapshot is asked for again whatever changed since.
#[test]
fn merges_only_snapshots_what_merges_changed() {
    let id = Identity::new("door", 1).unwrap();
    let policy = SnapshotPolicy {
        interval: Duration::from_secs(10),
        after_changes: 0,
        merges_only: true,
    };
    let cfg = ReplicaConfig::durable(Config::mcu(), policy);
    let mut r = R::new(id, Incarnation::Resumed, cfg, Instant::ZERO).unwrap();
    let mut log = Log::default();
    let mut rng = Seq(4);
    let kinds =
        |got: std::vec::Vec<Persisting>| got.iter().map(|p| p.kind).collect::<std::vec::Vec<_>>();
    let mut t = Instant::ZERO;
    for _ in 0..5 {
        let p = r.prepare(LocalOp::Increment(1)).unwrap();
        assert_eq!(kinds(log.drain(&mut r)), [PersistKind::Local]);
        r.commit(p).unwrap();
        t += Duration::from_secs(11);
        r.handle_timeout(t, &mut rng);
        assert!(!r.wants_persist(), "a press alone makes no snapshot");
    }
    // Another node's entry arrives (gossip from a peer that holds it).
    let mut peer = R::new(
        Identity::new("gate", 2).unwrap(),
        Incarnation::Resumed,
        ReplicaConfig::volatile(Config::mcu()),
        Instant::ZERO,
    )
    .unwrap();
    peer.set_address(Some("10.0.0.2:9000")).unwrap();
    r.set_address(Some("10.0.0.1:9000")).unwrap();
    peer.add_peer("10.0.0.1:9000", crate::PeerSource::Static, t)
        .unwrap();
    let p = peer.prepare(LocalOp::Increment(4)).unwrap();
    peer.commit(p).unwrap();
    let mut buf = [0u8; 4096];
    let mut delivered = false;
    for _ in 0..50 {
        t += Duration::from_millis(200);
        peer.handle_timeout(t, &mut rng);
        while let Some(tx) = peer.poll_transmit(t, &mut buf) {
            let _ = r.ingest(t, Ingress::Payload(&buf[..tx.len]));
            delivered = true;
        }
        if r.value() == 9 {
            break;
        }
    }
    assert!(delivered && r.value() == 9, "merged: {}", r.value());
    t += Duration::from_secs(11);
    r.handle_timeout(t, &mut rng);
    let got = log.drain_failing(&mut r);
    assert_eq!(
        kinds(got),
        [PersistKind::Snapshot],
        "the merge is snapshotted"
    );
    // That snapshot failed: the next interval asks again, though nothing changed since.
    t += Duration::from_secs(11);
    r.handle_timeout(t, &mut rng);
    assert_eq!(kinds(log.drain(&mut r)), [PersistKind::Snapshot]);
    assert_eq!(log.recover("gate#00000002"), (4, 0));
    t += Duration::from_secs(11);
    r.handle_timeout(t, &mut rng);
    assert!(!r.wants_persist(), "persisted: nothing more");
}

#[test]
fn local_records_coalesce_and_the_later_covers_the_earlier() {
    let mut r = durable("door", 1, Incarnation::Resumed);
    let a = r.prepare(LocalOp::Increment(1)).unwrap();
    let b = r.prepare(LocalOp::Increment(2)).unwrap();
    let mut log = Log::default();
    let got = log.drain(&mut r);
    assert_eq!(got.len(), 1, "one record carries both totals");
    assert_eq!(got[0].seq, b.seq);
    assert_eq!(log.recover("door#00000001"), (3, 0));
    r.commit(a).unwrap();
    assert_eq!(r.value(), 1);
    r.commit(b).unwrap();
    assert_eq!(r.value(), 3);
}

#[test]
fn an_undrained_stream_stays_small() {
    // One snapshot at a time and Local records coalescing: however writes and snapshot
    // requests interleave, at most Local, Snapshot, Local wait.
    let mut r = durable("door", 1, Incarnation::Resumed);
    for _ in 0..PERSIST_CAPACITY * 4 {
        r.request_snapshot().unwrap();
        let _ = r.prepare(LocalOp::Increment(1)).unwrap();
    }
    let mut log = Log::default();
    let got = log.drain(&mut r);
    assert!(got.len() <= 3, "{got:?}");
    assert_eq!(
        log.recover("door#00000001"),
        (PERSIST_CAPACITY as u64 * 4, 0)
    );
}

#[test]
fn counts_offline_and_gossips_once_an_address_is_set() {
    let id = Identity::new("door", 1).unwrap();
    let mut r = R::new(
        id,
        Incarnation::Resumed,
        ReplicaConfig::volatile(Config::mcu()),
        Instant::ZERO,
    )
    .unwrap();
    r.add_peer("10.0.0.2:9000", PeerSource::Static, Instant::ZERO)
        .unwrap();
    assert_eq!(r.apply(LocalOp::Increment(4)), Ok(4));
    let mut rng = Seq(3);
    let later = Instant::ZERO + Config::mcu().full_sync_interval;
    assert_eq!(r.poll_timeout(), None, "no address: no gossip timer");
    r.handle_timeout(later, &mut rng);
    let mut buf = [0u8; 4096 + 256];
    assert!(
        r.poll_transmit(later, &mut buf).is_none(),
        "nothing sent offline"
    );
    r.set_address(Some("10.0.0.1:9000")).unwrap();
    let later = later + Config::mcu().full_sync_interval;
    r.handle_timeout(later, &mut rng);
    let t = r
        .poll_transmit(later, &mut buf)
        .expect("a frame once online");
    let (from, _) = split_header(&buf[..t.len]).unwrap();
    assert_eq!(from, "10.0.0.1:9000");
    // A new lease: later frames carry the new address.
    r.set_address(Some("10.0.0.9:9000")).unwrap();
    while r.poll_transmit(later, &mut buf).is_some() {}
    let later = later + Config::mcu().full_sync_interval;
    r.handle_timeout(later, &mut rng);
    let t = r.poll_transmit(later, &mut buf).expect("a frame");
    let (from, _) = split_header(&buf[..t.len]).unwrap();
    assert_eq!(from, "10.0.0.9:9000");
    assert_eq!(
        r.set_address(Some("not an address")),
        Err(PeerError::BadAddress)
    );
}

#[test]
fn ingest_counts_reads_and_rejects_in_one_place() {
    let id = Identity::new("door", 1).unwrap();
    let mut r = R::new(
        id,
        Incarnation::Resumed,
        ReplicaConfig::volatile(Config::mcu()),
        Instant::ZERO,
    )
    .unwrap();
    let now = Instant::ZERO;
    assert_eq!(
        r.ingest(now, Ingress::TooLarge),
        Err(WireError::FrameTooLarge)
    );
    assert_eq!(r.ingest(now, Ingress::TooSlow), Err(WireError::TooSlow));
    assert!(r.ingest(now, Ingress::Reset).is_err());
    assert_eq!(
        r.ingest(now, Ingress::Payload(&[3, b"x"[0]])),
        Err(WireError::BadHeader)
    );
    let t = r.transport();
    assert_eq!((t.accepted, t.read_failed), (4, 3));
    assert_eq!(r.stats().rejected(WireError::FrameTooLarge), 1);
    assert_eq!(r.stats().rejected(WireError::TooSlow), 1);
    assert_eq!(r.stats().rejected(WireError::BadHeader), 1);
    assert_eq!(r.value(), 0);
}

#[test]
fn restore_sets_the_base_of_later_writes() {
    let mut r = durable("door", 1, Incarnation::Resumed);
    r.restore([("door#00000001", 40u64, 2u64), ("gate#00000002", 1, 0)].into_iter())
        .unwrap();
    assert!(!r.wants_persist(), "restored state is not written back");
    let p = r.prepare(LocalOp::Increment(1)).unwrap();
    assert_eq!((p.inc, p.dec), (41, 2));
}

#[test]
fn an_address_set_later_is_not_kept_as_a_peer() {
    // Static peers are added before the address is known (a board before its DHCP lease);
    // the list may name the node itself.
    let id = Identity::new("door", 1).unwrap();
    let cfg = ReplicaConfig::volatile(Config::mcu());
    let mut r = R::new(id, Incarnation::Resumed, cfg, Instant::ZERO).unwrap();
    for p in ["10.0.0.1:9000", "10.0.0.2:9000"] {
        r.add_peer(p, PeerSource::Static, Instant::ZERO).unwrap();
    }
    r.set_address(Some("10.0.0.1:9000")).unwrap();
    let addrs: std::vec::Vec<&str> = r.peers().iter().map(|p| p.addr.as_str()).collect();
    assert_eq!(addrs, ["10.0.0.2:9000"]);
}
