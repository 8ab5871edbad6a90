//! WAL recovery from arbitrary bytes: `Wal::open` on a data directory whose segment files the
//! input writes, on the simulated disk (`SimStorage`, which knows what was made durable).
//!
//! The input is a sequence of operations that build segment files (see `fuzz/README.md`):
//! well-formed records, sequence gaps and a torn tail keep the directory *clean*, and for a
//! clean directory recovery is checked against a model that knows where every record starts
//! and ends (which segment recovery starts from, what it replays, where it cuts, how many bytes
//! it drops). Raw bytes, flipped bytes, bad headers and stray files make it *dirty*: then only
//! the properties below are checked. For every input:
//!
//! - `Wal::open` never panics; it fails only with `UnsupportedVersion`, and then it changed no
//!   file;
//! - the recovered entries are sorted by id, unique, with ids of 1..=255 bytes;
//! - the log takes an append after recovery, and after a simulated power loss a second
//!   recovery drops nothing and yields exactly the first one's state plus the appended record
//!   (the cut was durable, and appending after a torn tail left no garbage).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tally::wal::format::{encode_header, encode_local, encode_snapshot, HEADER_LEN};
use tally::wal::segment::{parse_segment_name, segment_name, MAX_SEQUENCE};
use tally::wal::{FsyncPolicy, SimStorage, Storage, Wal, WalConfig, WalError};
use tally_fuzz::Input;

const DIR: &str = "/data";
/// The id recovery's follow-up append writes under.
const LOCAL: &str = "wal-fuzz:1";
const MAX_OPS: usize = 64;
const SEGMENT_BYTES: [u64; 4] = [1, 64, 4096, 16 << 20];
/// First segment numbers: the usual 1, another, and two above `MAX_SEQUENCE` (refused: a log
/// of Tally's would need 2^63 segments to get there, so only a foreign directory does).
const BASE_SEQ: [u64; 4] = [1, 1000, MAX_SEQUENCE + 1, u64::MAX - 4];

/// A total: small (`u8`) or any `u64`, as `wide` says.
fn total(inp: &mut Input<'_>, wide: bool) -> u64 {
    if wide {
        inp.u64()
    } else {
        u64::from(inp.u8())
    }
}

/// Record ids: short, the follow-up's own, the longest allowed, non-ASCII.
fn pool_id(i: u8) -> String {
    match i % 8 {
        0 => LOCAL.to_owned(),
        1 => "b:2".to_owned(),
        2 => "c:3#7f".to_owned(),
        3 => "x".repeat(255),
        4 => "nœud:9".to_owned(),
        k => format!("n{k}:{}", 7000 + u32::from(k)),
    }
}

/// What a well-formed record holds.
#[derive(Clone, Debug)]
enum Rec {
    Local(String, u64, u64),
    Snapshot(Vec<(String, u64, u64)>),
}

/// A segment file as built: its bytes and, while it is clean, where each record lies.
struct Segment {
    seq: u64,
    bytes: Vec<u8>,
    /// (record, start, end) of the well-formed records, in order.
    records: Vec<(Rec, usize, usize)>,
}

/// id → (inc, dec): the per-id max, as recovery merges.
type State = BTreeMap<String, (u64, u64)>;

fn apply(state: &mut State, id: &str, inc: u64, dec: u64) {
    let e = state.entry(id.to_owned()).or_insert((inc, dec));
    *e = (e.0.max(inc), e.1.max(dec));
}

fn apply_rec(state: &mut State, rec: &Rec) {
    match rec {
        Rec::Local(id, i, d) => apply(state, id, *i, *d),
        Rec::Snapshot(entries) => {
            for (id, i, d) in entries {
                apply(state, id, *i, *d);
            }
        }
    }
}

/// What a clean directory must recover to.
struct Expected {
    state: State,
    records: u64,
    dropped: u64,
}

/// The model of recovery for a clean directory: segments with valid headers naming their own
/// sequence number, well-formed records, possibly gaps in the sequence and a cut anywhere.
fn model(segments: &[Segment]) -> Expected {
    // Records wholly inside the (possibly cut) file.
    let intact = |s: &Segment| -> Vec<(Rec, usize, usize)> {
        s.records
            .iter()
            .filter(|(_, _, end)| *end <= s.bytes.len())
            .cloned()
            .collect()
    };
    let starts_with_snapshot = |s: &Segment| {
        s.bytes.len() >= HEADER_LEN
            && matches!(intact(s).first(), Some((Rec::Snapshot(_), start, _)) if *start == HEADER_LEN)
    };
    // Recovery reads from the newest segment that starts with a snapshot (or the oldest).
    let from = segments.iter().rposition(starts_with_snapshot).unwrap_or(0);
    let loaded = segments.get(from..).unwrap_or_default();
    let mut out = Expected {
        state: State::new(),
        records: 0,
        dropped: 0,
    };
    let mut expected_seq = loaded.first().map(|s| s.seq);
    for (i, s) in loaded.iter().enumerate() {
        let later: u64 = loaded
            .get(i + 1..)
            .unwrap_or_default()
            .iter()
            .map(|s| s.bytes.len() as u64)
            .sum();
        if Some(s.seq) != expected_seq || s.bytes.len() < HEADER_LEN {
            // A gap or a torn header: this segment and every later one go.
            out.dropped = s.bytes.len() as u64 + later;
            return out;
        }
        let recs = intact(s);
        for (rec, _, _) in &recs {
            apply_rec(&mut out.state, rec);
            out.records += 1;
        }
        let valid_end = recs.last().map_or(HEADER_LEN, |(_, _, end)| *end);
        if valid_end < s.bytes.len() {
            // Torn inside a record: truncated at its start, later segments removed.
            out.dropped = (s.bytes.len() - valid_end) as u64 + later;
            return out;
        }
        expected_seq = s.seq.checked_add(1);
    }
    out
}

/// Reads the operations and builds the segment files. Returns the segments, the stray files
/// and whether the directory is still clean.
fn build(inp: &mut Input<'_>, base: u64) -> (Vec<Segment>, Vec<(String, Vec<u8>)>, bool) {
    let mut segments: Vec<Segment> = Vec::new();
    let mut strays: Vec<(String, Vec<u8>)> = Vec::new();
    let mut clean = true;
    let mut cut_at: Option<usize> = None; // index of a segment cut short
    let new_segment = |seq: u64| Segment {
        seq,
        bytes: encode_header(seq).to_vec(),
        records: Vec::new(),
    };
    segments.push(new_segment(base));
    for _ in 0..MAX_OPS {
        let Some(op) = inp.op() else { break };
        let n = segments.len();
        match op % 8 {
            0 => {
                // Next segment; `gap % 8 == 0` skips sequence numbers.
                let gap = inp.u8();
                let step = if gap % 8 == 0 {
                    2 + u64::from(gap / 8)
                } else {
                    1
                };
                let last = segments.last().map_or(base, |s| s.seq);
                if let Some(seq) = last.checked_add(step) {
                    segments.push(new_segment(seq));
                }
            }
            1 | 2 => {
                let wide = inp.u8() & 1 != 0;
                let rec = if op % 8 == 1 {
                    let id = pool_id(inp.u8());
                    Rec::Local(id, total(inp, wide), total(inp, wide))
                } else {
                    let k = inp.u8() % 8;
                    let mut entries: Vec<(String, u64, u64)> = Vec::new();
                    for _ in 0..k {
                        let id = pool_id(inp.u8());
                        let (i, d) = (total(inp, wide), total(inp, wide));
                        entries.push((id, i, d));
                    }
                    // Version 2 snapshots name each id once: fold repeats into their per-field
                    // maximum, which is what replay makes of them anyway.
                    entries.sort_by(|a, b| a.0.cmp(&b.0));
                    let mut folded: Vec<(String, u64, u64)> = Vec::new();
                    for (id, i, d) in entries {
                        match folded.last_mut() {
                            Some(last) if last.0 == id => {
                                last.1 = last.1.max(i);
                                last.2 = last.2.max(d);
                            }
                            _ => folded.push((id, i, d)),
                        }
                    }
                    Rec::Snapshot(folded)
                };
                let Some(seg) = segments.last_mut() else {
                    break;
                };
                let start = seg.bytes.len();
                let encoded = match &rec {
                    Rec::Local(id, i, d) => encode_local(&mut seg.bytes, id, *i, *d),
                    Rec::Snapshot(entries) => encode_snapshot(&mut seg.bytes, entries),
                };
                encoded.expect("pool ids are valid");
                // A record written after a cut lies beyond the tear: not clean any more.
                if cut_at == Some(n - 1) {
                    clean = false;
                }
                seg.records.push((rec, start, seg.bytes.len()));
            }
            3 => {
                // Cut the last segment `k` bytes short (a torn write).
                let k = usize::from(inp.u16());
                if let Some(seg) = segments.last_mut() {
                    let len = seg.bytes.len();
                    seg.bytes.truncate(len - k.min(len));
                }
                cut_at = Some(n - 1);
            }
            4 => {
                let len = usize::from(inp.u8());
                let raw = inp.bytes(len);
                if let Some(seg) = segments.last_mut() {
                    seg.bytes.extend_from_slice(raw);
                }
                clean &= raw.is_empty();
            }
            5 => {
                // Flip one byte of any segment.
                let which = usize::from(inp.u8()) % n;
                let pos = usize::from(inp.u16());
                let xor = inp.u8();
                if let Some(seg) = segments.get_mut(which) {
                    let len = seg.bytes.len();
                    if let Some(b) = seg.bytes.get_mut(pos % len.max(1)) {
                        *b ^= xor;
                        clean &= xor == 0;
                    }
                }
            }
            6 => {
                // A bad header on the last segment.
                let kind = inp.u8();
                if let Some(seg) = segments.last_mut() {
                    let h: &mut [u8] = &mut seg.bytes;
                    match kind % 4 {
                        0 => put(h, 0, b"TALLYWAX"),
                        1 => put(h, 8, &2u16.to_le_bytes()), // a newer version
                        2 => put(h, 10, &1u16.to_le_bytes()), // reserved bits
                        _ => put(h, 12, &seg.seq.wrapping_add(1).to_le_bytes()),
                    }
                    clean = false;
                }
            }
            _ => {
                // A stray file: not a segment name, an upper-case one, or a segment far away.
                let kind = inp.u8();
                let len = usize::from(inp.u8());
                let content = inp.bytes(len).to_vec();
                let name = match kind % 4 {
                    0 => "notes.txt".to_owned(),
                    1 => format!("wal-{:016X}.log", 0xABu64),
                    2 => "wal-1.log".to_owned(),
                    _ => segment_name(u64::from(kind)),
                };
                let taken = segments.iter().any(|s| segment_name(s.seq) == name)
                    || strays.iter().any(|(n, _)| *n == name);
                if !taken {
                    strays.push((name, content));
                    clean = false;
                }
            }
        }
    }
    // A segment made after a stray of its name wins.
    strays.retain(|(n, _)| segments.iter().all(|s| segment_name(s.seq) != *n));
    // Only the last segment may be cut for the model to hold.
    if cut_at.is_some_and(|i| i + 1 != segments.len()) {
        clean = false;
    }
    (segments, strays, clean)
}

/// Sequence numbers of the stray files that are named like segments.
fn strays_as_segments(strays: &[(String, Vec<u8>)]) -> Vec<u64> {
    strays
        .iter()
        .filter_map(|(name, _)| parse_segment_name(name))
        .collect()
}

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(dst) = buf.get_mut(at..at + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

fn write_file(storage: &SimStorage, path: &Path, bytes: &[u8]) {
    let mut f = storage.create(path).expect("create");
    f.append(bytes).expect("append");
    f.sync().expect("sync");
}

/// Every file of the directory, by name.
fn files(storage: &SimStorage) -> BTreeMap<String, Vec<u8>> {
    let dir = Path::new(DIR);
    let names = storage.list(dir).expect("list");
    names
        .into_iter()
        .map(|n| {
            let bytes = storage.read(&dir.join(&n)).expect("read");
            (n, bytes)
        })
        .collect()
}

fn check_entries(entries: &[(String, u64, u64)]) {
    for w in entries.windows(2) {
        assert!(w[0].0 < w[1].0, "recovered entries not strictly sorted");
    }
    for (id, _, _) in entries {
        assert!(
            (1..=255).contains(&id.len()),
            "recovered id of {} bytes",
            id.len()
        );
    }
}

fn as_state(entries: &[(String, u64, u64)]) -> State {
    entries
        .iter()
        .map(|(id, i, d)| (id.clone(), (*i, *d)))
        .collect()
}

fn config(segment_bytes: u64) -> WalConfig {
    WalConfig::new(PathBuf::from(DIR))
        .segment_bytes(segment_bytes)
        .fsync(FsyncPolicy::Always)
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input(data);
    let setup = inp.u8();
    let segment_bytes = SEGMENT_BYTES[usize::from(setup & 3)];
    let base = BASE_SEQ[usize::from((setup >> 2) & 3)];
    let (segments, strays, clean) = build(&mut inp, base);

    let storage = SimStorage::new();
    let dir = Path::new(DIR);
    storage.create_dir_all(dir).expect("mkdir");
    for s in &segments {
        write_file(&storage, &dir.join(segment_name(s.seq)), &s.bytes);
    }
    for (name, content) in &strays {
        write_file(&storage, &dir.join(name), content);
    }
    storage.sync_dir(dir).expect("sync dir");
    let before = files(&storage);

    let newest = segments
        .iter()
        .map(|s| s.seq)
        .chain(strays_as_segments(&strays))
        .max();
    let opened = Wal::open_with(config(segment_bytes), Arc::new(storage.clone()));
    let (wal, first) = match opened {
        Ok(x) => x,
        Err(e @ (WalError::UnsupportedVersion { .. } | WalError::SequenceOutOfRange { .. })) => {
            let exhausted = matches!(e, WalError::SequenceOutOfRange { .. });
            assert!(!clean || exhausted, "a clean directory refused: {e}");
            if exhausted {
                assert!(
                    newest.is_some_and(|l| l > MAX_SEQUENCE),
                    "refused without a segment above MAX_SEQUENCE: {e}"
                );
            }
            // Refusing touches no file.
            let after: BTreeMap<_, _> = files(&storage)
                .into_iter()
                .filter(|(n, _)| n != "LOCK")
                .collect();
            let before: BTreeMap<_, _> = before.into_iter().filter(|(n, _)| n != "LOCK").collect();
            assert_eq!(after, before, "a refused directory was changed");
            return;
        }
        Err(e) => panic!("Wal::open failed on the simulated disk: {e}"),
    };
    assert!(
        newest.is_none_or(|l| l <= MAX_SEQUENCE),
        "accepted a segment above MAX_SEQUENCE"
    );
    check_entries(&first.entries);
    if clean {
        let want = model(&segments);
        assert_eq!(as_state(&first.entries), want.state, "recovered state");
        assert_eq!(first.records, want.records, "records replayed");
        assert_eq!(first.dropped_bytes, want.dropped, "bytes dropped");
    }

    // After recovery the log takes writes; a power loss keeps what was acknowledged.
    let (inc, dec) = as_state(&first.entries)
        .get(LOCAL)
        .copied()
        .unwrap_or((0, 0));
    let next = (inc.saturating_add(1), dec);
    let ticket = wal.append_local(LOCAL, next.0, next.1).expect("append");
    wal.wait(ticket)
        .expect("an append after recovery is durable");
    let rebooted = storage.crash();
    drop(wal);

    let (wal, second) =
        Wal::open_with(config(segment_bytes), Arc::new(rebooted)).expect("second recovery");
    check_entries(&second.entries);
    assert_eq!(
        second.dropped_bytes, 0,
        "the first recovery's cut was not durable"
    );
    let mut want = as_state(&first.entries);
    apply(&mut want, LOCAL, next.0, next.1);
    assert_eq!(as_state(&second.entries), want, "state after a crash");
    assert_eq!(second.records, first.records + 1, "records after a crash");
    drop(wal);
});
