//! Criterion benchmarks of the hot paths of `tally-core`, plus a zero-allocation check.
//!
//! What is measured (host profile: ids up to 255 bytes, `Growable` stores):
//!
//! | id | what |
//! |---|---|
//! | `increment/growable_255`, `increment/fixed_32_64` | one local `increment(1)` |
//! | `merge/{10,100,1000}` | merging a counter whose every entry is higher (so every entry changes); the target is cloned outside the timing (`iter_batched`) |
//! | `emit_push/{10,100,1000}` | emitting a Push (same entries in `inc` and `dec`, as in spec §10 table (f)) into a preallocated buffer |
//! | `emit_push_zstd/1000` | the same, then `zstd::bulk::compress` at level 3 |
//! | `parse_push/{10,100,1000}` | `Message::parse` with `MessageLimits::HOST`, then reading every entry |
//! | `parse_push_zstd/1000` | `frame::decode` of a `0x80` frame (ruzstd) with `FrameLimits::HOST`, then the same parse |
//! | `digest/{10,100,1000}` | the streamed XXH64 state digest of spec §5 |
//!
//! Ids are 16 bytes (`"127.0.0.1:009000"`, `"127.0.0.1:009001"`, …, the sender being the
//! first), so the messages have exactly the msgpack sizes of spec §10 table (f): 555, 5,239 and
//! 52,039 bytes (checked before benchmarking). Totals are seeded pseudo-random values below
//! 2^40, which makes the zstd frame of 1000 entries ≈ 12.3 KB, close to the reference's 12,377.
//!
//! Reference figures (the Go "distributed counter" nodes): emit Push 10 ≈ 5 µs, parse ≈ 7 µs;
//! emit 1000 with zstd ≈ 1.7 ms, parse ≈ 1 ms; increment ≈ 420 ns.
//!
//! Before criterion runs, `main` uses the counting `#[global_allocator]` below to check that
//! increment, merge (into a counter that already has every id), emit (into an existing
//! buffer), plain parse + iteration, the engine's parse + `Union` + `merge_sorted` path on a
//! sorted Push, and digest perform zero heap allocations. It prints one line per check and
//! exits with status 1 if any of them allocates.
//!
//! Run it with `--bench core` when passing criterion options:
//!
//! ```text
//! cargo bench -p tally-core --features zstd --bench core -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! (Without `--bench core`, cargo also runs the library's libtest harness in bench mode, and
//! libtest rejects criterion's options such as `--warm-up-time`.)

// A `#[global_allocator]` needs `unsafe impl GlobalAlloc`; the workspace denies unsafe code,
// and this bench file is the one place that needs it (a thin counting wrapper around `System`).
#![allow(unsafe_code)]
// Bench code: panicking on a broken setup is the right behaviour; docs are not needed here.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

use criterion::{black_box, BatchSize, BenchmarkId, Criterion, Throughput};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use tally_core::digest::digest;
use tally_core::frame::{self, FrameLimits};
use tally_core::union::Union;
use tally_core::{
    Entries, Entry, FixedCounter, GrowableCounter, Message, MessageLimits, NodeId, PnCounter, Slots,
};

// ----- counting allocator -----

/// `System`, counting every allocation (alloc, alloc_zeroed, realloc).
struct CountingAlloc;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract is exactly `System`'s; the counter is a relaxed atomic add.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded as is; the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above; `ptr` was allocated by `System` through this wrapper.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Runs `f` and returns its result and the number of heap allocations it made.
fn count_allocations<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    let r = f();
    let after = ALLOCATIONS.load(Ordering::SeqCst);
    (r, after - before)
}

// ----- fixtures -----

type HostCounter = GrowableCounter<255>;

const SIZES: [usize; 3] = [10, 100, 1000];

/// Table (f) of spec §10: msgpack bytes of a Push with the same `n` entries in inc and dec.
fn reference_msgpack_len(n: usize) -> Option<usize> {
    match n {
        1 => Some(87),
        10 => Some(555),
        100 => Some(5_239),
        1000 => Some(52_039),
        10_000 => Some(520_039),
        _ => None,
    }
}

/// The `i`-th id: 16 bytes, like the ids of table (f).
fn id_str(i: usize) -> String {
    format!("127.0.0.1:{:06}", 9000 + i)
}

/// `(id, inc, dec)` for `n` ids, sorted (the zero padding keeps numeric order bytewise).
///
/// Totals are pseudo-random (seeded, so every run sees the same bytes), independent in `inc`
/// and `dec` and below 2^40, plus `raise`: with these the zstd frame of 1000 entries is about
/// as large as the reference's (≈ 12.3 KB, table (f): 12,377), so compressing and
/// decompressing it is comparable work. `raise` = 1 gives a state above every entry of 0.
fn triples(n: usize, raise: u64) -> Vec<(String, u64, u64)> {
    let mut rng = SmallRng::seed_from_u64(0x7a11);
    (0..n)
        .map(|i| {
            let inc = rng.random_range(1..1u64 << 40) + raise;
            let dec = rng.random_range(1..1u64 << 40) + raise;
            (id_str(i), inc, dec)
        })
        .collect()
}

/// A host counter owned by the first id holding `n` entries.
fn counter(n: usize, raise: u64) -> HostCounter {
    let mut c = HostCounter::new(NodeId::new(&id_str(0)).unwrap()).unwrap();
    let t = triples(n, raise);
    c.merge_sorted(t.iter().map(|(id, i, d)| (id.as_str(), *i, *d)))
        .unwrap();
    assert_eq!(c.entries().len(), n);
    c
}

/// One side (`inc` or `dec`) of a counter's entries, as `Message::Push` wants it.
fn side<const L: usize>(
    entries: &[Entry<L>],
    pick: fn(&Entry<L>) -> u64,
) -> impl Iterator<Item = (&str, u64)> + Clone {
    entries.iter().map(move |e| (e.id.as_str(), pick(e)))
}

fn inc_of<const L: usize>(e: &Entry<L>) -> u64 {
    e.inc
}

fn dec_of<const L: usize>(e: &Entry<L>) -> u64 {
    e.dec
}

/// The Push of every entry of `c`, emitted into an exactly sized buffer.
fn push_bytes<S: Slots<Entry<255>>>(c: &PnCounter<255, S>) -> Vec<u8> {
    let es = c.entries();
    let m = Message::Push {
        id: c.local_id().as_str(),
        inc: side(es, inc_of),
        dec: side(es, dec_of),
    };
    let mut buf = vec![0u8; m.buffer_len()];
    let n = m.emit(&mut buf).unwrap();
    assert_eq!(n, buf.len());
    buf
}

/// Sums every entry of a parsed Push (so a lazy parse pays for reading the entries).
fn read_all(m: &Message<'_>) -> (u64, usize) {
    match m {
        Message::Push { inc, dec, .. } => {
            let sum = |e: Entries<'_>| {
                e.fold((0u64, 0usize), |(s, l), (id, v)| {
                    (s.wrapping_add(v), l + id.len())
                })
            };
            let (a, la) = sum(inc.clone());
            let (b, lb) = sum(dec.clone());
            (a.wrapping_add(b), la + lb)
        }
        _ => (0, 0),
    }
}

fn parse_and_read(bytes: &[u8]) -> (u64, usize) {
    let m = Message::parse(bytes, &MessageLimits::HOST).unwrap();
    read_all(&m)
}

fn zstd_frame(msgpack: &[u8]) -> Vec<u8> {
    let mut f = vec![tally_core::FLAG_ZSTD];
    f.extend_from_slice(&zstd::bulk::compress(msgpack, 3).unwrap());
    f
}

// ----- zero-allocation check -----

/// Checks the no-allocation promise of the core's hot paths. Returns the failures.
fn zero_allocation_check() -> Vec<String> {
    let mut failures = Vec::new();

    // The allocator must see allocations, or every check below would pass vacuously.
    let (b, a) = count_allocations(|| Box::new(black_box(7u64)));
    black_box(b);
    println!(
        "zero-alloc {:<40} {a:>3} allocations  (must be 1)",
        "control: Box::new"
    );
    if a != 1 {
        failures.push(format!("control: Box::new made {a} allocations, not 1"));
    }

    let mut check = |what: &str, allocations: usize| {
        let verdict = if allocations == 0 { "ok" } else { "FAILED" };
        println!("zero-alloc {what:<40} {allocations:>3} allocations  {verdict}");
        if allocations != 0 {
            failures.push(format!("{what}: {allocations} allocations"));
        }
    };

    for n in SIZES {
        // increment on a counter that already exists.
        let mut grow = counter(n, 0);
        let (r, a) = count_allocations(|| grow.increment(1));
        black_box(r.unwrap());
        check(&format!("increment growable ({n} entries)"), a);

        // merge: every entry raised, every id already present (no growth).
        let mut target = counter(n, 0);
        let other = counter(n, 1);
        let (r, a) = count_allocations(|| target.merge(&other));
        assert!(r.unwrap().changed);
        check(&format!("merge/{n}"), a);

        // emit into an existing buffer.
        let es = other.entries();
        let m = Message::Push {
            id: other.local_id().as_str(),
            inc: side(es, inc_of),
            dec: side(es, dec_of),
        };
        let mut buf = vec![0u8; m.buffer_len()];
        let (r, a) = count_allocations(|| m.emit(&mut buf));
        let len = r.unwrap();
        check(&format!("emit_push/{n}"), a);

        // plain parse + reading every entry.
        let bytes = &buf[..len];
        let (r, a) = count_allocations(|| parse_and_read(bytes));
        black_box(r);
        check(&format!("parse_push/{n}"), a);

        // the engine's receive path on a sorted Push: parse, Union, merge_sorted.
        let mut target = counter(n, 0);
        let (r, a) =
            count_allocations(
                || match Message::parse(bytes, &MessageLimits::HOST).unwrap() {
                    Message::Push { inc, dec, .. } => target.merge_sorted(Union::new(inc, dec)),
                    _ => unreachable!(),
                },
            );
        assert!(r.unwrap().changed);
        check(&format!("parse + Union + merge_sorted/{n}"), a);

        // digest.
        let (r, a) = count_allocations(|| digest(other.entries()));
        black_box(r);
        check(&format!("digest/{n}"), a);
    }

    let mut fixed = FixedCounter::<32, 64>::new(NodeId::new(&id_str(0)).unwrap()).unwrap();
    let (r, a) = count_allocations(|| fixed.increment(1));
    black_box(r.unwrap());
    check("increment fixed_32_64", a);

    failures
}

/// Checks that the fixtures reproduce the message sizes of spec table (f).
fn check_sizes() {
    for n in SIZES {
        let bytes = push_bytes(&counter(n, 0));
        let want = reference_msgpack_len(n).unwrap();
        assert_eq!(
            bytes.len(),
            want,
            "Push of {n} entries: table (f) says {want} bytes"
        );
        let z = zstd_frame(&bytes);
        println!(
            "fixture Push/{n}: {} msgpack bytes (table (f): {want}), {} bytes as a zstd frame",
            bytes.len(),
            z.len()
        );
    }
}

// ----- benchmarks -----

fn bench_increment(c: &mut Criterion) {
    let mut g = c.benchmark_group("increment");
    let mut grow = HostCounter::new(NodeId::new(&id_str(0)).unwrap()).unwrap();
    g.bench_function("growable_255", |b| {
        b.iter(|| black_box(&mut grow).increment(black_box(1)).unwrap())
    });
    let mut fixed = FixedCounter::<32, 64>::new(NodeId::new(&id_str(0)).unwrap()).unwrap();
    g.bench_function("fixed_32_64", |b| {
        b.iter(|| black_box(&mut fixed).increment(black_box(1)).unwrap())
    });
    g.finish();
}

fn bench_merge(c: &mut Criterion) {
    let mut g = c.benchmark_group("merge");
    for n in SIZES {
        let target = counter(n, 0);
        let other = counter(n, 1);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter_batched(
                || target.clone(),
                |mut t| {
                    let out = t.merge(black_box(&other)).unwrap();
                    // Returned so that dropping the clone is not timed.
                    (t, out)
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn bench_emit(c: &mut Criterion) {
    let mut g = c.benchmark_group("emit_push");
    for n in SIZES {
        let src = counter(n, 0);
        let es = src.entries();
        let m = Message::Push {
            id: src.local_id().as_str(),
            inc: side(es, inc_of),
            dec: side(es, dec_of),
        };
        let mut buf = vec![0u8; m.buffer_len()];
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| black_box(&m).emit(black_box(&mut buf)).unwrap())
        });
    }
    g.finish();

    let mut g = c.benchmark_group("emit_push_zstd");
    let n = 1000;
    let src = counter(n, 0);
    let es = src.entries();
    let m = Message::Push {
        id: src.local_id().as_str(),
        inc: side(es, inc_of),
        dec: side(es, dec_of),
    };
    let mut buf = vec![0u8; m.buffer_len()];
    g.throughput(Throughput::Elements(n as u64));
    g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
        b.iter(|| {
            let len = black_box(&m).emit(black_box(&mut buf)).unwrap();
            zstd::bulk::compress(&buf[..len], 3).unwrap()
        })
    });
    g.finish();
}

fn bench_parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse_push");
    for n in SIZES {
        let bytes = push_bytes(&counter(n, 0));
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &bytes, |b, bytes| {
            b.iter(|| parse_and_read(black_box(bytes)))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("parse_push_zstd");
    let n = 1000;
    let frame = zstd_frame(&push_bytes(&counter(n, 0)));
    g.throughput(Throughput::Elements(n as u64));
    g.bench_with_input(BenchmarkId::from_parameter(n), &frame, |b, frame| {
        b.iter(|| {
            let body = frame::decode(black_box(frame), &FrameLimits::HOST).unwrap();
            parse_and_read(body.bytes())
        })
    });
    g.finish();
}

fn bench_digest(c: &mut Criterion) {
    let mut g = c.benchmark_group("digest");
    for n in SIZES {
        let src = counter(n, 0);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &src, |b, src| {
            b.iter(|| digest(black_box(src.entries())))
        });
    }
    g.finish();
}

fn main() {
    let failures = zero_allocation_check();
    if !failures.is_empty() {
        eprintln!("zero-allocation check FAILED:");
        for f in &failures {
            eprintln!("  {f}");
        }
        std::process::exit(1);
    }
    println!("zero-allocation check passed");
    check_sizes();

    let mut c = Criterion::default().configure_from_args();
    bench_increment(&mut c);
    bench_merge(&mut c);
    bench_emit(&mut c);
    bench_parse(&mut c);
    bench_digest(&mut c);
    c.final_summary();
}
