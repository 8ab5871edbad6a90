//! Power-loss test: a real `tally node` keeps its data directory on PowerFs
//! (`tests/powerfs`), a FUSE file system that forgets every write not fsynced when the power
//! is cut. Under 16 concurrent HTTP writers — 4 on each of four of five counters, the default
//! one and four named ones; the fifth rests that round, in turn, so that snapshots alone hold
//! it — the node is killed (SIGKILL) at a random moment, the file system is unmounted, cut and
//! mounted again, and the node restarts on what survived. Per counter, its total must be at
//! least every increment acknowledged so far and at most every one sent.
//!
//! The total is the sum of the `inc` entries of `GET /state`, not the node's own entry: a node
//! whose log came back empty counts under a new incarnation (README, "Durability"), so its
//! own entry restarts at zero while what it had recovered stays under the old one. A single
//! node with no peers holds only entries of its own incarnations, each increment lands in
//! exactly one of them, and only increments are sent, so that sum is exactly what it
//! counted: a lost IDENTITY file alone loses nothing, a lost log shows as a loss.
//!
//! A named counter's total is its value, `GET /counters/{name}` (0 when it does not exist):
//! the value sums the cells of every id that wrote to the name (`CounterMap::value`, each
//! cell's increments above its floor; nothing is removed here, so every floor is 0), so the
//! cells of an earlier incarnation still count after a new one starts, and the same argument
//! makes it exactly what the node counted on that name. A build that acknowledged a named
//! write before its NamedLocal record was fsynced, or whose snapshots dropped named cells
//! (compaction then deletes the only copy), fails with a named counter's recovered value below
//! its acknowledged count (the counter that rested in the round); the `--fsync never` run shows that the per-name check sees such a
//! loss.
//!
//! The node creates its data directory itself (`data/` under the mount), and must make that
//! durable too: the first cut would otherwise take the directory away with its log.
//!
//! CI runs 10 cuts (`TALLY_POWER_CUTS` changes it; the long run is
//! `TALLY_POWER_CUTS=50 cargo test --release -p tally --test power_loss -- --nocapture`);
//! `TALLY_POWER_SEED` replays a run's kill times.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::{
    counter_names, get_json, round_targets, start_node, target_values, xorshift, Counts, Load,
    Running, Target,
};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tally_powerfs::{Mounted, PowerFs};

const WRITERS: usize = 16;

/// The file system, its mount point and the data directory in it. `mounted` is declared first:
/// dropped first, it unmounts before the temporary directory is removed, also on a panic.
struct Disk {
    mounted: Option<Mounted>,
    fs: PowerFs,
    root: tempfile::TempDir,
    data: PathBuf,
}

impl Disk {
    fn new() -> Self {
        let fs = PowerFs::new();
        let root = tempfile::tempdir().unwrap();
        let mounted = fs
            .mount(root.path())
            .unwrap_or_else(|e| panic!("the power-loss test needs PowerFs mounted: {e}"));
        let data = root.path().join("data");
        Self {
            mounted: Some(mounted),
            fs,
            root,
            data,
        }
    }

    /// Unmount, cut the power, mount again.
    fn power_cut(&mut self) -> tally_powerfs::CutReport {
        self.mounted.take().unwrap().unmount().unwrap();
        let report = self.fs.cut();
        self.mounted = Some(self.fs.mount(self.root.path()).unwrap());
        report
    }
}

/// Starts a node on `dir`; returns it and its HTTP URL.
fn start(dir: &Path, fsync: &str, snapshot_every: &str) -> (Running, String) {
    let args = [
        "--log",
        "warn",
        "--fsync",
        fsync,
        "--snapshot-every",
        snapshot_every,
    ];
    start_node(&args, dir)
}

/// The node's recovered state: the sum of every entry's increments, and its own entry id.
fn total(url: &str) -> (u64, String) {
    let v = get_json(&format!("{url}/state"));
    let inc = v["inc"].as_object().expect("inc map");
    let sum = inc.values().map(|n| n.as_u64().unwrap()).sum();
    assert!(
        v["dec"].as_object().is_none_or(|d| d.is_empty()),
        "nothing decremented: {v}"
    );
    assert_eq!(v["value"].as_u64(), Some(sum), "value = Σinc: {v}");
    (sum, v["node"].as_str().unwrap().to_string())
}

/// One of the node's Prometheus counters, if it exports it.
fn metric(url: &str, name: &str) -> Option<u64> {
    let text = reqwest::blocking::get(format!("{url}/metrics"))
        .ok()?
        .text()
        .ok()?;
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map(|v| v as u64)
}

/// One counter's figures at the end of a run.
#[derive(Debug, Default)]
struct PerCounter {
    counter: String,
    acked: u64,
    sent: u64,
    recovered: u64,
    /// Acknowledged increments of this counter lost, summed over the cuts.
    lost: u64,
}

/// What a run saw.
#[derive(Debug, Default)]
struct Figures {
    cuts: u64,
    /// The default counter's acknowledged, sent and recovered increments.
    acked: u64,
    sent: u64,
    recovered: u64,
    /// Every counter's, the default one first.
    counters: Vec<PerCounter>,
    /// Cuts after which the node had, on some counter, fewer increments than it had before
    /// plus those acknowledged since.
    lossy_cuts: u64,
    /// Acknowledged increments lost, summed over the cuts and the counters.
    lost: u64,
    /// Of which on the named counters.
    named_lost: u64,
    /// Entry ids the node counted under (one per incarnation).
    incarnations: usize,
    /// Snapshots the node reported just before each kill, summed.
    snapshots: u64,
    /// Warnings of recovery cutting a torn or corrupt record.
    torn: usize,
    /// Bytes the cuts discarded, and files they made vanish.
    discarded: u64,
    vanished: u64,
    fs: tally_powerfs::Stats,
}

/// What the node holds of each target: the default counter's total (see `total`) and each
/// named counter's value; and the entry id it counts under.
fn recovered(url: &str, targets: &[(Target, Counts)]) -> (Vec<u64>, String) {
    let (default, id) = total(url);
    (target_values(url, targets, default), id)
}

/// Runs `cuts` power cuts of a node started with `--fsync fsync --snapshot-every every`.
/// With `strict`, fails at the first cut that loses an acknowledged increment of any counter.
fn run(fsync: &str, every: &str, cuts: u64, strict: bool) -> Figures {
    let seed = std::env::var("TALLY_POWER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| 0x9e37_79b9_u64 ^ u64::from(std::process::id()));
    let mut rng = seed | 1;
    let mut disk = Disk::new();
    let targets: Vec<(Target, Counts)> = std::iter::once(Target::Default)
        .chain(counter_names().into_iter().map(Target::Named))
        .map(|t| (t, Counts::default()))
        .collect();
    let mut f = Figures {
        counters: targets
            .iter()
            .map(|(t, _)| PerCounter {
                counter: t.label().to_string(),
                ..PerCounter::default()
            })
            .collect(),
        ..Figures::default()
    };
    let mut ids = std::collections::BTreeSet::new();
    // Per counter: what the node held when this round's writes began, and what was
    // acknowledged in the round.
    let mut before = vec![0u64; targets.len()];
    let mut round_acked = vec![0u64; targets.len()];
    for cut in 0..=cuts {
        let (mut node, url) = start(&disk.data, fsync, every);
        let (values, id) = recovered(&url, &targets);
        ids.insert(id);
        let mut lossy = false;
        for (k, ((target, counts), &recovered)) in targets.iter().zip(&values).enumerate() {
            let (s, a) = (counts.sent(), counts.acked());
            let lost = (before[k] + round_acked[k]).saturating_sub(recovered);
            println!(
                "[{fsync}] cut {cut:>3} {:>16.16}: recovered {recovered:>7}, acknowledged \
                 {a:>7}, sent {s:>7}, lost {lost}",
                target.label()
            );
            assert!(
                recovered <= s,
                "cut {cut} (seed {seed}), counter {}: recovered {recovered} > sent {s}",
                target.label()
            );
            if strict {
                assert!(
                    a <= recovered,
                    "cut {cut} (seed {seed}), counter {}: ACKNOWLEDGED INCREMENTS LOST: \
                     recovered {recovered}, acknowledged {a}, sent {s}; last cut: {:?}; node \
                     log: {:?}",
                    target.label(),
                    disk.fs.stats().last_cut,
                    node.log.lock().unwrap()
                );
            }
            lossy |= lost > 0;
            f.lost += lost;
            if matches!(target, Target::Named(_)) {
                f.named_lost += lost;
            }
            let c = &mut f.counters[k];
            (c.acked, c.sent, c.recovered, c.lost) = (a, s, recovered, c.lost + lost);
            before[k] = recovered;
        }
        f.lossy_cuts += u64::from(lossy);
        f.recovered = values[0];
        f.torn += node
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("dropping"))
            .count();
        if cut == cuts {
            break;
        }
        let acked_before: Vec<u64> = targets.iter().map(|(_, c)| c.acked()).collect();
        let load = Load::spread(&url, WRITERS, &round_targets(&targets, cut));
        std::thread::sleep(Duration::from_millis(100 + xorshift(&mut rng) % 501));
        f.snapshots += metric(&url, "tally_wal_snapshots_total").unwrap_or(0);
        // SIGKILL: no clean shutdown, no final snapshot; then the power goes.
        node.kill();
        drop(load);
        drop(node);
        for (k, (_, c)) in targets.iter().enumerate() {
            round_acked[k] = c.acked() - acked_before[k];
        }
        let report = disk.power_cut();
        f.discarded += report.bytes_discarded;
        f.vanished += report.objects_vanished;
        f.cuts += 1;
    }
    f.acked = targets[0].1.acked();
    f.sent = targets[0].1.sent();
    f.incarnations = ids.len();
    f.fs = disk.fs.stats();
    println!("[{fsync}] seed {seed}: {f:#?}");
    f
}

fn cuts_from_env() -> u64 {
    std::env::var("TALLY_POWER_CUTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
}

#[test]
fn power_loss_fsync_always_loses_nothing() {
    let started = Instant::now();
    let f = run("always", "50ms", cuts_from_env(), true);
    println!(
        "fsync always: {} cuts, default counter {} acknowledged, {} sent, {} recovered; \
         {} lost over all counters ({:.1} s)",
        f.cuts,
        f.acked,
        f.sent,
        f.recovered,
        f.lost,
        started.elapsed().as_secs_f64()
    );
    for c in &f.counters {
        println!(
            "fsync always, {:>16.16}: {} acknowledged, {} sent, {} recovered, {} lost",
            c.counter, c.acked, c.sent, c.recovered, c.lost
        );
        assert!(c.acked > 0, "the load produced acknowledged writes: {c:?}");
        assert!(c.acked <= c.recovered && c.recovered <= c.sent, "{c:?}");
    }
    assert_eq!(f.lost, 0);
    // The harness did something: the node fsynced, snapshots compacted segments away, and
    // the cuts threw bytes away (what was written after the last fsync of each round).
    assert!(
        f.fs.fsyncs > f.cuts && f.fs.fsyncdirs > f.cuts,
        "{:?}",
        f.fs
    );
    assert!(f.fs.unlinks > 0, "compaction removed segments: {:?}", f.fs);
    assert_eq!(f.fs.cuts, f.cuts);
}

#[test]
fn power_loss_fsync_never_loses_acknowledged_writes() {
    // With `--fsync never` and no snapshot in the run, nothing the node writes after start is
    // ever fsynced: each cut takes the whole round's increments with it. Three cuts are plenty.
    let f = run("never", "1h", 3, false);
    println!(
        "fsync never: {} cuts, default counter {} acknowledged, {} sent, {} recovered; {} \
         acknowledged lost over all counters ({} of them named) in {} cuts",
        f.cuts, f.acked, f.sent, f.recovered, f.lost, f.named_lost, f.lossy_cuts
    );
    assert!(
        f.counters.iter().all(|c| c.acked > 0),
        "the load produced acknowledged writes to every counter: {f:?}"
    );
    assert!(
        f.lossy_cuts >= 1 && f.lost > 0,
        "the harness must see a loss when nothing is fsynced: {f:?}"
    );
    // The per-name check sees it too (the named counters' records are as unsynced as the
    // default counter's).
    assert!(
        f.named_lost > 0,
        "the harness must see named counters lose when nothing is fsynced: {f:?}"
    );
    assert!(f.discarded > 0, "{f:?}");
}
