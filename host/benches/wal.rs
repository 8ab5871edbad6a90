//! WAL benchmarks: durable appends per second (append + wait under `FsyncPolicy::Always`, on a
//! real temp dir) at concurrency 1, 16 and 64, and the recovery time of a log of 1,000,000
//! `Local` records. Besides criterion's figures, `cargo bench -p tally --bench wal` prints an
//! explicit measurement of each (fixed duration, with the group-commit statistics).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use criterion::{BenchmarkId, Criterion, Throughput};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use tally::wal::{FsyncPolicy, Wal, WalConfig};

const CONCURRENCY: [usize; 3] = [1, 16, 64];
const RECOVERY_RECORDS: u64 = 1_000_000;
const NODE_ID: &str = "127.0.0.1:7000";

/// `threads` threads doing `per_thread` append + wait each; returns the elapsed time.
fn durable_appends(wal: &Arc<Wal>, threads: usize, per_thread: u64) -> Duration {
    let start = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (wal, start) = (Arc::clone(wal), Arc::clone(&start));
            std::thread::spawn(move || {
                let id = format!("bench-{t}");
                start.wait();
                for i in 1..=per_thread {
                    wal.wait(wal.append_local(&id, i, 0).unwrap()).unwrap();
                }
            })
        })
        .collect();
    start.wait();
    let began = Instant::now();
    handles.into_iter().for_each(|h| h.join().unwrap());
    began.elapsed()
}

/// Runs `threads` appenders for `dur` and prints durable appends per second.
fn measure_throughput(threads: usize, dur: Duration) {
    let tmp = tempfile::tempdir_in(bench_dir()).unwrap();
    let (wal, _) = Wal::open(WalConfig::new(tmp.path())).unwrap();
    let wal = Arc::new(wal);
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (wal, stop, done) = (Arc::clone(&wal), Arc::clone(&stop), Arc::clone(&done));
            std::thread::spawn(move || {
                let id = format!("bench-{t}");
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    wal.wait(wal.append_local(&id, i, 0).unwrap()).unwrap();
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let began = Instant::now();
    std::thread::sleep(dur);
    stop.store(true, Ordering::Relaxed);
    handles.into_iter().for_each(|h| h.join().unwrap());
    let secs = began.elapsed().as_secs_f64();
    let s = wal.stats();
    println!(
        "durable appends, concurrency {threads:>2}: {:>8.0}/s  (mean batch {:.1}, max {}, \
         {} fsyncs, fsync mean {:?}, max {:?})",
        done.load(Ordering::Relaxed) as f64 / secs,
        s.mean_batch(),
        s.max_batch,
        s.fsyncs,
        s.fsync_mean(),
        s.fsync_max,
    );
}

fn bench_dir() -> std::path::PathBuf {
    // Next to the build output: a real disk (not tmpfs), as a node's data dir would be.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("wal-bench");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A log of `RECOVERY_RECORDS` local records (built once per run).
fn build_recovery_log() -> tempfile::TempDir {
    let tmp = tempfile::tempdir_in(bench_dir()).unwrap();
    let config = WalConfig::new(tmp.path()).fsync(FsyncPolicy::Never);
    let (wal, _) = Wal::open(config).unwrap();
    let mut last = None;
    for i in 1..=RECOVERY_RECORDS {
        last = Some(wal.append_local(NODE_ID, i, i / 10).unwrap());
    }
    wal.wait(last.unwrap()).unwrap();
    wal.close().unwrap();
    tmp
}

fn measure_recovery(dir: &Path) {
    let bytes: u64 = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let began = Instant::now();
        let (wal, rec) = Wal::open(WalConfig::new(dir)).unwrap();
        let open = began.elapsed();
        drop(wal);
        assert_eq!(rec.records, RECOVERY_RECORDS);
        assert_eq!(
            rec.entries,
            vec![(NODE_ID.to_owned(), RECOVERY_RECORDS, RECOVERY_RECORDS / 10)]
        );
        best = best.min(open);
        println!(
            "recovery of {} records ({:.1} MB, warm page cache): Wal::open {:?} (replay {:?})",
            rec.records,
            bytes as f64 / 1e6,
            open,
            rec.elapsed
        );
    }
    println!("recovery best of 5: {best:?}");
}

fn bench_appends(c: &mut Criterion) {
    let mut group = c.benchmark_group("wal_durable_append");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(4));
    for threads in CONCURRENCY {
        let tmp = tempfile::tempdir_in(bench_dir()).unwrap();
        let (wal, _) = Wal::open(WalConfig::new(tmp.path())).unwrap();
        let wal = Arc::new(wal);
        group.throughput(Throughput::Elements(threads as u64));
        group.bench_function(BenchmarkId::from_parameter(threads), |b| {
            b.iter_custom(|iters| durable_appends(&wal, threads, iters));
        });
    }
    group.finish();
}

fn bench_recovery(c: &mut Criterion, dir: &Path) {
    let mut group = c.benchmark_group("wal_recovery");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(RECOVERY_RECORDS));
    group.bench_function("open_1m_local_records", |b| {
        b.iter(|| Wal::open(WalConfig::new(dir)).unwrap())
    });
    group.finish();
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let log = build_recovery_log();
    if benching {
        println!(
            "== explicit measurements (FsyncPolicy::Always, {})",
            bench_dir().display()
        );
        for threads in CONCURRENCY {
            measure_throughput(threads, Duration::from_secs(3));
        }
        measure_recovery(log.path());
        println!("== criterion");
    }
    let mut c = Criterion::default().configure_from_args();
    bench_appends(&mut c);
    bench_recovery(&mut c, log.path());
    c.final_summary();
}
