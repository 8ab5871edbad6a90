//! The WAL on real files: round trip, rotation, snapshot and compaction (also when interrupted),
//! group commit under concurrency, the fsync policies, and the directory lock.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tally::wal::format::{decode, RecordRef, HEADER_LEN};
use tally::wal::segment::{list_segments, segment_name};
use tally::wal::{FsStorage, FsyncPolicy, Record, Wal, WalConfig, WalError};

fn segments(dir: &Path) -> Vec<u64> {
    list_segments(&FsStorage, dir).unwrap()
}

fn entry(id: &str, inc: u64, dec: u64) -> (String, u64, u64) {
    (id.to_owned(), inc, dec)
}

#[test]
fn wal_round_trip_and_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let (wal, rec) = Wal::open(WalConfig::new(&dir)).unwrap();
    assert_eq!(rec.entries, vec![]);
    assert_eq!((rec.records, rec.dropped_bytes), (0, 0));
    let mut last = None;
    for i in 1..=100u64 {
        last = Some(wal.append_local("me", i, i / 3).unwrap());
        if i % 10 == 0 {
            wal.wait(last.unwrap()).unwrap();
        }
    }
    let t = wal
        .append(&Record::Local {
            id: "other".into(),
            inc: 7,
            dec: 1,
        })
        .unwrap();
    assert!(t > last.unwrap());
    wal.wait(t).unwrap();
    wal.close().unwrap();
    assert_eq!(segments(&dir), vec![1]);

    let (wal, rec) = Wal::open(WalConfig::new(&dir)).unwrap();
    assert_eq!(
        rec.entries,
        vec![entry("me", 100, 33), entry("other", 7, 1)]
    );
    assert_eq!((rec.records, rec.dropped_bytes), (101, 0));
    // Appending continues in the same segment.
    wal.wait(wal.append_local("me", 101, 33).unwrap()).unwrap();
    drop(wal);
    let (_wal, rec) = Wal::open(WalConfig::new(&dir)).unwrap();
    assert_eq!(rec.entries[0], entry("me", 101, 33));
    assert_eq!(segments(&dir), vec![1]);
}

#[test]
fn wal_rotates_by_size_and_compacts_on_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let config = WalConfig::new(dir).segment_bytes(512);
    let (wal, _) = Wal::open(config.clone()).unwrap();
    for i in 1..=200u64 {
        let t = wal.append_local("node-a", i, 0).unwrap();
        if i % 7 == 0 {
            wal.wait(t).unwrap();
        }
    }
    wal.wait(wal.append_local("node-a", 200, 1).unwrap())
        .unwrap();
    let segs = segments(dir);
    assert!(segs.len() >= 10, "rotated into {segs:?}");
    assert_eq!(segs, (1..=segs.len() as u64).collect::<Vec<_>>());
    for seq in &segs[..segs.len() - 1] {
        let len = std::fs::metadata(dir.join(segment_name(*seq)))
            .unwrap()
            .len();
        assert!(len <= 512, "segment {seq} is {len} bytes");
    }

    let snap = vec![entry("node-a", 200, 1), entry("node-b", 9, 4)];
    wal.snapshot(&snap).unwrap();
    let after = segments(dir);
    assert_eq!(
        after,
        vec![segs.last().unwrap() + 1],
        "older segments deleted"
    );
    let buf = std::fs::read(dir.join(segment_name(after[0]))).unwrap();
    assert!(
        matches!(decode(&buf[HEADER_LEN..]), Ok((RecordRef::Snapshot(e, _), _)) if e.len() == 2)
    );
    wal.wait(wal.append_local("node-a", 201, 1).unwrap())
        .unwrap();
    let stats = wal.stats();
    assert_eq!(stats.snapshots, 1);
    assert_eq!(stats.segments_removed, segs.len() as u64);
    drop(wal);

    let (_wal, rec) = Wal::open(config).unwrap();
    assert_eq!(
        rec.entries,
        vec![entry("node-a", 201, 1), entry("node-b", 9, 4)]
    );
    assert_eq!(
        rec.records, 2,
        "the snapshot and one record: a bounded replay"
    );
}

#[test]
fn wal_finishes_an_interrupted_compaction() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let config = WalConfig::new(dir).segment_bytes(256);
    let (wal, _) = Wal::open(config.clone()).unwrap();
    for i in 1..=40u64 {
        wal.wait(wal.append_local("me", i, 0).unwrap()).unwrap();
    }
    let old: Vec<(u64, Vec<u8>)> = segments(dir)
        .into_iter()
        .map(|s| (s, std::fs::read(dir.join(segment_name(s))).unwrap()))
        .collect();
    wal.snapshot(&[entry("me", 40, 0), entry("peer", 5, 0)])
        .unwrap();
    wal.wait(wal.append_local("me", 41, 0).unwrap()).unwrap();
    drop(wal);
    // As if the process died between the snapshot's fsync and the deletions.
    for (seq, bytes) in &old {
        std::fs::write(dir.join(segment_name(*seq)), bytes).unwrap();
    }
    let (_wal, rec) = Wal::open(config).unwrap();
    assert_eq!(rec.entries, vec![entry("me", 41, 0), entry("peer", 5, 0)]);
    assert_eq!(rec.records, 2);
    assert_eq!(segments(dir).len(), 1, "old segments removed at open");
}

#[test]
fn wal_group_commit_batches_concurrent_writers() {
    let tmp = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(WalConfig::new(tmp.path())).unwrap();
    let wal = Arc::new(wal);
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let wal = Arc::clone(&wal);
            std::thread::spawn(move || {
                let id = format!("w{t}");
                for i in 1..=50 {
                    wal.wait(wal.append_local(&id, i, 0).unwrap()).unwrap();
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    let stats = wal.stats();
    assert_eq!(stats.records, 800);
    assert!(stats.batches < 800, "no batching: {stats:?}");
    assert!(stats.max_batch > 1 && stats.mean_batch() > 1.0, "{stats:?}");
    assert_eq!(stats.fsync_buckets.iter().sum::<u64>(), stats.fsyncs);
    assert!(
        stats.fsyncs <= stats.batches + 1,
        "one fsync per batch: {stats:?}"
    );
    assert!(stats.fsync_mean() > Duration::ZERO && stats.fsync_max >= stats.fsync_mean());
    let wal = Arc::into_inner(wal).unwrap();
    wal.close().unwrap();
    let (_wal, rec) = Wal::open(WalConfig::new(tmp.path())).unwrap();
    assert_eq!(rec.entries.len(), 16);
    assert!(rec.entries.iter().all(|(_, inc, _)| *inc == 50));
}

#[test]
fn wal_interval_and_never_policies() {
    let tmp = tempfile::tempdir().unwrap();
    let every = Duration::from_millis(300);
    let config = WalConfig::new(tmp.path().join("i")).fsync(FsyncPolicy::Interval(every));
    let (wal, _) = Wal::open(config).unwrap();
    for i in 1..=20 {
        wal.wait(wal.append_local("me", i, 0).unwrap()).unwrap();
    }
    let before = wal.stats();
    assert_eq!(before.records, 20);
    assert!(
        before.fsyncs < 5,
        "acknowledged without an fsync each: {before:?}"
    );
    std::thread::sleep(every * 3);
    let after = wal.stats();
    assert!(after.fsyncs >= 1, "the interval fsync ran: {after:?}");
    drop(wal);

    let config = WalConfig::new(tmp.path().join("n")).fsync(FsyncPolicy::Never);
    let (wal, _) = Wal::open(config.clone()).unwrap();
    for i in 1..=20 {
        wal.wait(wal.append_local("me", i, 0).unwrap()).unwrap();
    }
    assert_eq!(wal.stats().fsyncs, 0);
    assert_eq!(wal.policy(), FsyncPolicy::Never);
    wal.close().unwrap();
    let (_wal, rec) = Wal::open(config).unwrap();
    assert_eq!(rec.entries, vec![entry("me", 20, 0)]);
}

#[test]
fn wal_directory_lock_excludes_a_second_opener() {
    let tmp = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(WalConfig::new(tmp.path())).unwrap();
    let err = Wal::open(WalConfig::new(tmp.path())).unwrap_err();
    assert!(matches!(err, WalError::Locked { .. }), "{err}");
    assert!(
        err.to_string().contains(&tmp.path().display().to_string()),
        "{err}"
    );
    drop(wal);
    Wal::open(WalConfig::new(tmp.path())).unwrap();
}

#[test]
fn wal_invalid_records_are_refused_without_poisoning() {
    let tmp = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(WalConfig::new(tmp.path())).unwrap();
    assert!(matches!(
        wal.append_local("", 1, 0),
        Err(WalError::InvalidRecord(_))
    ));
    let long = "x".repeat(256);
    assert!(matches!(
        wal.append_local(&long, 1, 0),
        Err(WalError::InvalidRecord(_))
    ));
    assert!(wal.snapshot(&[entry("", 1, 1)]).is_err());
    wal.wait(wal.append_local("ok", 1, 0).unwrap()).unwrap();
}
