//! [`WalStats`]: what the writer did, for metrics.

use std::time::Duration;

/// Upper bounds (inclusive, in microseconds) of the fsync latency buckets of
/// [`WalStats::fsync_buckets`]; the last bucket counts everything slower.
pub const FSYNC_BUCKET_BOUNDS_MICROS: [u64; 11] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 100_000, 1_000_000,
];

/// Counters of the group-commit writer, as returned by [`Wal::stats`](super::Wal::stats).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WalStats {
    /// Batches written (each one write per segment touched, and at most one fsync).
    pub batches: u64,
    /// Records written.
    pub records: u64,
    /// Record bytes written (segment headers excluded).
    pub bytes: u64,
    /// Records in the last batch.
    pub last_batch: u64,
    /// Records in the largest batch.
    pub max_batch: u64,
    /// Snapshots written.
    pub snapshots: u64,
    /// Segments created (rotations and snapshots).
    pub segments_created: u64,
    /// Segments deleted by compaction.
    pub segments_removed: u64,
    /// File fsyncs done.
    pub fsyncs: u64,
    /// Total time spent in file fsyncs.
    pub fsync_total: Duration,
    /// Slowest file fsync.
    pub fsync_max: Duration,
    /// Fsync count per latency bucket: `fsync_buckets[i]` counts fsyncs of at most
    /// `FSYNC_BUCKET_BOUNDS_MICROS[i]` µs (and more than the bound before); the last one counts
    /// the rest.
    pub fsync_buckets: [u64; FSYNC_BUCKET_BOUNDS_MICROS.len() + 1],
}

impl WalStats {
    /// Mean records per batch (0 before the first batch).
    pub fn mean_batch(&self) -> f64 {
        if self.batches == 0 {
            0.0
        } else {
            self.records as f64 / self.batches as f64
        }
    }

    /// Mean fsync latency.
    pub fn fsync_mean(&self) -> Duration {
        if self.fsyncs == 0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(self.fsync_total.as_secs_f64() / self.fsyncs as f64)
        }
    }

    pub(crate) fn record_fsync(&mut self, took: Duration) {
        self.fsyncs += 1;
        self.fsync_total += took;
        self.fsync_max = self.fsync_max.max(took);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let bucket = FSYNC_BUCKET_BOUNDS_MICROS
            .iter()
            .position(|&bound| micros <= bound)
            .unwrap_or(FSYNC_BUCKET_BOUNDS_MICROS.len());
        if let Some(count) = self.fsync_buckets.get_mut(bucket) {
            *count += 1;
        }
    }

    pub(crate) fn record_batch(&mut self, records: u64, bytes: u64) {
        self.batches += 1;
        self.records += records;
        self.bytes += bytes;
        self.last_batch = records;
        self.max_batch = self.max_batch.max(records);
    }
}
