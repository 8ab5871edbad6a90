//! Model-based test on simulated storage: 500 seeded random sequences of append / wait (ack) /
//! snapshot / rotation (small segments) / crash (dropping every unsynced byte and directory
//! change) / clean reopen. After every crash the recovered totals are ≥ everything acknowledged,
//! ≤ everything appended, exactly the totals of some appended record (a prefix of the log), and
//! snapshot entries never go backwards.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use tally::wal::{FsyncPolicy, Recovered, SimStorage, Ticket, Wal, WalConfig};

const CASES: u64 = 500;
const ME: &str = "me";

type Totals = (u64, u64);

fn ge(a: Totals, b: Totals) -> bool {
    a.0 >= b.0 && a.1 >= b.1
}

#[derive(Default)]
struct Model {
    /// Highest own totals acknowledged (wait returned Ok, or a snapshot completed).
    acked: Totals,
    /// Latest own totals appended.
    appended: Totals,
    /// Every own totals the log may end on: the last recovered one and every one since.
    candidates: BTreeSet<Totals>,
    /// Peers' entries (they only ever reach the log in snapshots).
    peers: BTreeMap<String, Totals>,
    /// Peer entries of the last completed snapshot (or recovery): the floor.
    peers_floor: BTreeMap<String, Totals>,
    /// Highest peer entries ever put in a snapshot: the ceiling.
    peers_max: BTreeMap<String, Totals>,
    outstanding: Vec<(Ticket, Totals)>,
}

impl Model {
    fn snapshot_entries(&self) -> Vec<(String, u64, u64)> {
        let mut entries = vec![(ME.to_owned(), self.appended.0, self.appended.1)];
        entries.extend(self.peers.iter().map(|(id, t)| (id.clone(), t.0, t.1)));
        entries
    }

    /// Checks a recovery after a crash and makes its result the new base.
    fn recovered(&mut self, rec: &Recovered, log: &str) {
        let mut own = (0, 0);
        let mut peers = BTreeMap::new();
        for (id, inc, dec) in &rec.entries {
            if id == ME {
                own = (*inc, *dec);
            } else {
                peers.insert(id.clone(), (*inc, *dec));
            }
        }
        assert!(
            ge(own, self.acked),
            "lost acknowledged {:?}: got {own:?}\n{log}",
            self.acked
        );
        assert!(
            ge(self.appended, own),
            "more than appended {:?}: {own:?}\n{log}",
            self.appended
        );
        assert!(
            self.candidates.contains(&own),
            "{own:?} is no prefix of the log\n{log}"
        );
        for (id, floor) in &self.peers_floor {
            let got = peers.get(id).copied().unwrap_or_default();
            assert!(
                ge(got, *floor),
                "peer {id} went back from {floor:?} to {got:?}\n{log}"
            );
        }
        for (id, got) in &peers {
            let max = self.peers_max.get(id).copied().unwrap_or_default();
            assert!(
                ge(max, *got),
                "peer {id} {got:?} above anything written {max:?}\n{log}"
            );
        }
        self.acked = own;
        self.appended = own;
        self.candidates = BTreeSet::from([own]);
        self.peers_floor = peers.clone();
        self.peers = peers;
        self.outstanding.clear();
    }
}

fn open(storage: &SimStorage, segment_bytes: u64) -> (Wal, Recovered) {
    let config = WalConfig::new("/data")
        .segment_bytes(segment_bytes)
        .fsync(FsyncPolicy::Always);
    Wal::open_with(config, Arc::new(storage.clone())).unwrap()
}

fn run_case(seed: u64) -> (u64, u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let segment_bytes = [48, 64, 100, 256, 4096][rng.random_range(0..5)];
    let mut storage = SimStorage::new();
    let (mut wal, rec) = open(&storage, segment_bytes);
    assert!(rec.entries.is_empty());
    let mut m = Model::default();
    m.candidates.insert((0, 0));
    let mut log = format!("seed {seed}, segment_bytes {segment_bytes}\n");
    let (mut crashes, mut acks) = (0, 0);
    for _ in 0..rng.random_range(20..80) {
        match rng.random_range(0..100) {
            0..=44 => {
                let t = (
                    m.appended.0 + rng.random_range(0..3),
                    m.appended.1 + rng.random_range(0..2),
                );
                let ticket = wal.append_local(ME, t.0, t.1).unwrap();
                m.appended = t;
                m.candidates.insert(t);
                m.outstanding.push((ticket, t));
                log += &format!("append {t:?}\n");
            }
            45..=64 if !m.outstanding.is_empty() => {
                let (ticket, t) = m
                    .outstanding
                    .swap_remove(rng.random_range(0..m.outstanding.len()));
                wal.wait(ticket).unwrap();
                m.acked = (m.acked.0.max(t.0), m.acked.1.max(t.1));
                acks += 1;
                log += &format!("ack {t:?}\n");
            }
            65..=76 => {
                let peer = format!("peer{}", rng.random_range(0..3));
                let e = m.peers.entry(peer.clone()).or_default();
                *e = (e.0 + rng.random_range(1..5), e.1 + rng.random_range(0..2));
                let entries = m.snapshot_entries();
                for (id, inc, dec) in entries.iter().skip(1) {
                    let max = m.peers_max.entry(id.clone()).or_default();
                    *max = (max.0.max(*inc), max.1.max(*dec));
                }
                if rng.random_bool(0.7) {
                    wal.snapshot(&entries).unwrap();
                    m.acked = m.appended;
                    m.peers_floor = m.peers.clone();
                    log += &format!("snapshot {entries:?}\n");
                } else {
                    wal.append_snapshot(&entries).unwrap();
                    log += &format!("snapshot queued {entries:?}\n");
                }
            }
            77..=88 => {
                // Crash at whatever point the writer has reached.
                for _ in 0..rng.random_range(0..3) {
                    std::thread::yield_now();
                }
                storage = storage.crash();
                drop(wal);
                let (w, rec) = open(&storage, segment_bytes);
                wal = w;
                log += &format!(
                    "crash -> {:?} (dropped {} bytes)\n",
                    rec.entries, rec.dropped_bytes
                );
                m.recovered(&rec, &log);
                crashes += 1;
            }
            89..=93 => {
                wal.close().unwrap();
                let (w, rec) = open(&storage, segment_bytes);
                wal = w;
                log += &format!("reopen -> {:?}\n", rec.entries);
                assert_eq!(rec.dropped_bytes, 0, "clean reopen\n{log}");
                let own = rec
                    .entries
                    .iter()
                    .find(|e| e.0 == ME)
                    .map_or((0, 0), |e| (e.1, e.2));
                assert_eq!(own, m.appended, "a clean close keeps everything\n{log}");
                m.recovered(&rec, &log);
            }
            _ => std::thread::yield_now(),
        }
    }
    // The survivors of the last epoch, after one final crash.
    storage = storage.crash();
    drop(wal);
    let (_wal, rec) = open(&storage, segment_bytes);
    m.recovered(&rec, &log);
    (crashes + 1, acks)
}

#[test]
fn wal_model_crash_recovery_never_loses_acknowledged_records() {
    let (mut crashes, mut acks) = (0, 0);
    for seed in 0..CASES {
        let (c, a) = run_case(seed);
        crashes += c;
        acks += a;
    }
    println!("{CASES} cases, {crashes} crashes, {acks} acknowledged waits checked");
    assert!(crashes > CASES && acks > CASES);
}
