//! Torn writes and corruption on real files: a log ending in a complete record is cut at every
//! byte of its last record and at 200 random offsets in the middle, and every byte of one
//! record is flipped in turn; recovery must yield exactly the last complete prefix (compared
//! with a model), log what it dropped, and take appends afterwards.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::path::Path;
use tally::wal::format::{decode, framed_len, HEADER_LEN};
use tally::wal::segment::{list_segments, segment_name};
use tally::wal::{FsStorage, Record, Recovered, Wal, WalConfig};

const SEGMENT_BYTES: u64 = 1024;

/// The pristine log: its segments and its records in order, each with its place.
struct Log {
    files: Vec<(u64, Vec<u8>)>,
    records: Vec<Record>,
    /// (segment index, start, end) of each record.
    spans: Vec<(usize, usize, usize)>,
}

fn config(dir: &Path) -> WalConfig {
    WalConfig::new(dir).segment_bytes(SEGMENT_BYTES)
}

fn build() -> Log {
    let tmp = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(config(tmp.path())).unwrap();
    for i in 1..=30 {
        wal.append_local("me", i, 0).unwrap();
    }
    let snapshot = vec![("me".to_owned(), 30, 0), ("peer".to_owned(), 12, 3)];
    wal.snapshot(&snapshot).unwrap();
    let mut records = vec![Record::Snapshot { entries: snapshot }];
    let mut rng = StdRng::seed_from_u64(7);
    let (mut inc, mut dec) = (30, 0);
    let mut last = None;
    for i in 0..300u64 {
        let id = if i % 5 == 4 {
            format!("p{}", i % 3)
        } else {
            "me".to_owned()
        };
        inc += rng.random_range(0..4);
        dec += rng.random_range(0..2);
        let r = Record::Local { id, inc, dec };
        last = Some(wal.append(&r).unwrap());
        records.push(r);
    }
    wal.wait(last.unwrap()).unwrap();
    wal.close().unwrap();

    let dir = tmp.path();
    let files: Vec<(u64, Vec<u8>)> = list_segments(&FsStorage, dir)
        .unwrap()
        .into_iter()
        .map(|s| (s, std::fs::read(dir.join(segment_name(s))).unwrap()))
        .collect();
    assert!(
        files.len() >= 6,
        "a multi-segment log: {} segments",
        files.len()
    );
    let mut spans = Vec::new();
    for (i, (_, buf)) in files.iter().enumerate() {
        let mut at = HEADER_LEN;
        while at < buf.len() {
            let n = framed_len(&buf[at..]).unwrap();
            spans.push((i, at, at + n));
            at += n;
        }
        assert_eq!(at, buf.len());
    }
    assert_eq!(spans.len(), records.len());
    for (r, &(i, start, end)) in records.iter().zip(&spans) {
        assert_eq!(&decode(&files[i].1[start..end]).unwrap().0.to_owned(), r);
    }
    Log {
        files,
        records,
        spans,
    }
}

/// The model: per id, the max of the first `n` records.
fn model(records: &[Record]) -> Vec<(String, u64, u64)> {
    let mut m: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut put = |id: &str, inc: u64, dec: u64| {
        let e = m.entry(id.to_owned()).or_default();
        *e = (e.0.max(inc), e.1.max(dec));
    };
    for r in records {
        match r {
            Record::Local { id, inc, dec } => put(id, *inc, *dec),
            Record::Snapshot { entries } => entries.iter().for_each(|(id, i, d)| put(id, *i, *d)),
        }
    }
    m.into_iter().map(|(id, (i, d))| (id, i, d)).collect()
}

/// Writes the log into a fresh directory, letting `edit` change segment `i`'s bytes (`None`:
/// the file is not written).
fn materialize(log: &Log, edit: impl Fn(usize, &[u8]) -> Option<Vec<u8>>) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for (i, (seq, buf)) in log.files.iter().enumerate() {
        if let Some(bytes) = edit(i, buf) {
            std::fs::write(tmp.path().join(segment_name(*seq)), bytes).unwrap();
        }
    }
    tmp
}

/// Opens, checks the recovered state against the first `prefix` records, then appends and
/// checks that the append survives a reopen.
fn check(dir: &Path, log: &Log, prefix: usize, what: &str) -> Recovered {
    let (wal, rec) = Wal::open(config(dir)).unwrap();
    let expected = model(&log.records[..prefix]);
    assert_eq!(rec.entries, expected, "{what}: recovered state");
    assert_eq!(rec.records, prefix as u64, "{what}: records replayed");
    let me = expected.iter().find(|e| e.0 == "me").map_or(0, |e| e.1);
    wal.wait(wal.append_local("me", me + 1000, 0).unwrap())
        .unwrap();
    wal.close().unwrap();
    let (_wal, again) = Wal::open(config(dir)).unwrap();
    assert_eq!(again.dropped_bytes, 0, "{what}: clean after the cut");
    let me_after = again.entries.iter().find(|e| e.0 == "me").unwrap();
    assert_eq!(me_after.1, me + 1000, "{what}: append after recovery");
    rec
}

/// Cuts the log's byte stream at `offset` of segment `seg`: later segments are lost.
fn cut_at(log: &Log, seg: usize, offset: usize) -> (tempfile::TempDir, usize, u64) {
    let tmp = materialize(log, |i, buf| match i.cmp(&seg) {
        std::cmp::Ordering::Less => Some(buf.to_vec()),
        std::cmp::Ordering::Equal => Some(buf[..offset].to_vec()),
        std::cmp::Ordering::Greater => None,
    });
    let prefix = log
        .spans
        .iter()
        .filter(|&&(i, _, end)| i < seg || (i == seg && end <= offset && offset >= HEADER_LEN))
        .count();
    let kept = match log
        .spans
        .iter()
        .rfind(|&&(i, _, end)| i == seg && end <= offset)
    {
        _ if offset < HEADER_LEN => 0,
        Some(&(_, _, end)) => end,
        None => HEADER_LEN,
    };
    (tmp, prefix, (offset - kept) as u64)
}

#[test]
fn wal_torn_every_offset_of_the_last_record() {
    let log = build();
    let &(seg, start, end) = log.spans.last().unwrap();
    assert_eq!(
        end,
        log.files[seg].1.len(),
        "the log ends in a complete record"
    );
    for offset in start..=end {
        let (tmp, prefix, dropped) = cut_at(&log, seg, offset);
        let expected_prefix = if offset == end {
            log.records.len()
        } else {
            log.records.len() - 1
        };
        assert_eq!(prefix, expected_prefix);
        let rec = check(
            tmp.path(),
            &log,
            prefix,
            &format!("cut at {offset} of the last record"),
        );
        assert_eq!(rec.dropped_bytes, dropped, "cut at {offset}");
        assert_eq!(
            rec.dropped_bytes,
            (offset - start) as u64 % (end - start) as u64
        );
    }
}

#[test]
fn wal_torn_at_random_offsets_in_the_middle() {
    let log = build();
    let total: usize = log.files.iter().map(|(_, b)| b.len()).sum();
    let mut rng = StdRng::seed_from_u64(0x5eed);
    for _ in 0..200 {
        let mut global = rng.random_range(0..total);
        let mut seg = 0;
        while global > log.files[seg].1.len() {
            global -= log.files[seg].1.len();
            seg += 1;
        }
        let (tmp, prefix, dropped) = cut_at(&log, seg, global);
        let rec = check(
            tmp.path(),
            &log,
            prefix,
            &format!("cut at {global} of segment {seg}"),
        );
        assert_eq!(
            rec.dropped_bytes, dropped,
            "cut at {global} of segment {seg}"
        );
    }
}

#[test]
fn wal_flipped_byte_is_detected_by_the_crc() {
    let log = build();
    // A record in a middle segment, with whole segments after it.
    let m = log
        .spans
        .iter()
        .position(|&(i, _, _)| i == log.files.len() / 2)
        .unwrap()
        + 2;
    let (seg, start, end) = log.spans[m];
    let later: u64 = log.files[seg + 1..]
        .iter()
        .map(|(_, b)| b.len() as u64)
        .sum();
    for pos in start..end {
        for flip in [0x01u8, 0xff] {
            let tmp = materialize(&log, |i, buf| {
                let mut b = buf.to_vec();
                if i == seg {
                    b[pos] ^= flip;
                }
                Some(b)
            });
            let what = format!("byte {pos} of record {m} xor {flip:#04x}");
            let rec = check(tmp.path(), &log, m, &what);
            let dropped = (log.files[seg].1.len() - start) as u64 + later;
            assert_eq!(rec.dropped_bytes, dropped, "{what}");
            assert_eq!(
                list_segments(&FsStorage, tmp.path()).unwrap().len(),
                seg + 1,
                "{what}"
            );
        }
    }
}
