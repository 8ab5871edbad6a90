//! [`Telemetry`]: one Prometheus registry per server, so several servers in one process (the
//! nodes and the gateway of `tally cluster`) each expose their own `GET /metrics`.
//!
//! The [`metrics`] facade has one *global* recorder per process. Installing it from each server
//! would fail (only the first wins) or mix every server's series into one page. Instead each
//! server owns a [`Telemetry`]: its own [`PrometheusRecorder`] (from
//! [`PrometheusBuilder::build_recorder`], never installed globally) and the matching
//! [`PrometheusHandle`] that renders it. Code records through the ordinary macros inside
//! [`Telemetry::record`], which makes the server's recorder the *local* recorder of the current
//! thread for the duration of a synchronous closure ([`metrics::with_local_recorder`]):
//!
//! ```
//! let telemetry = tally::telemetry::Telemetry::new();
//! telemetry.record(|| {
//!     metrics::counter!("tally_frames_in_total", "type" => "push").increment(1);
//!     metrics::histogram!("tally_wal_fsync_seconds").record(0.002);
//! });
//! assert!(telemetry.render().contains("tally_frames_in_total{type=\"push\"} 1"));
//! ```
//!
//! Never hold a metric handle across an `.await` expecting it to follow the closure's recorder:
//! the closure is synchronous on purpose. Handles obtained *inside* the closure (`let c =
//! counter!(…)`) stay bound to this recorder and may be kept and used anywhere afterwards,
//! which avoids the key lookup on hot paths.
//!
//! Histograms are rendered as Prometheus histograms with [`LATENCY_BUCKETS`] (seconds) unless
//! the builder given to [`Telemetry::with_builder`] says otherwise. Samples accumulate until a
//! render or an upkeep drains them: run [`Telemetry::spawn_upkeep`] once per server (or call
//! [`Telemetry::run_upkeep`] periodically) so an unscraped server does not grow.

use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Histogram buckets for latencies, in seconds: 50 µs to 10 s.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 10.0,
];

/// The content type of the Prometheus text exposition format.
pub const CONTENT_TYPE_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How often [`Telemetry::spawn_upkeep`] drains histogram samples by default.
pub const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// One server's metrics: a private Prometheus recorder and its render handle. Cheap to clone
/// (both halves are shared).
#[derive(Clone, Debug)]
pub struct Telemetry {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    /// A registry whose histograms use [`LATENCY_BUCKETS`].
    pub fn new() -> Self {
        let builder = match PrometheusBuilder::new().set_buckets(&LATENCY_BUCKETS) {
            Ok(builder) => builder,
            // Only an empty bucket list is refused; LATENCY_BUCKETS is not empty.
            Err(_) => PrometheusBuilder::new(),
        };
        Self::with_builder(builder)
    }

    /// A registry built from `builder` (buckets per metric, global labels such as
    /// `instance`, …). The builder's recorder is never installed globally.
    pub fn with_builder(builder: PrometheusBuilder) -> Self {
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        Self {
            recorder: Arc::new(recorder),
            handle,
        }
    }

    /// Runs `f` with this registry as the thread's metrics recorder: every `metrics::counter!`,
    /// `gauge!`, `histogram!` and `describe_*!` inside `f` goes here.
    pub fn record<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&*self.recorder, f)
    }

    /// The current values in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Drains pending histogram samples into their buckets (bounded memory without scrapes).
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// Runs [`Telemetry::run_upkeep`] every [`UPKEEP_EVERY`] until `shutdown` is cancelled.
    /// Needs a tokio runtime.
    pub fn spawn_upkeep(&self, shutdown: CancellationToken) -> JoinHandle<()> {
        let telemetry = self.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(UPKEEP_EVERY);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = ticker.tick() => telemetry.run_upkeep(),
                }
            }
        })
    }

    /// The `GET /metrics` answer: 200 with [`CONTENT_TYPE_TEXT`] and [`Telemetry::render`].
    pub fn response(&self) -> Response {
        ([(CONTENT_TYPE, CONTENT_TYPE_TEXT)], self.render()).into_response()
    }

    /// A router with only `GET /metrics`, to `.merge()` into a server's router (it has no
    /// fallback, so it merges into one that has).
    pub fn router(&self) -> Router {
        let telemetry = self.clone();
        Router::new().route(
            "/metrics",
            get(move || {
                let telemetry = telemetry.clone();
                async move { telemetry.response() }
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_are_separate_and_render_prometheus_text() {
        let a = Telemetry::new();
        let b = Telemetry::new();
        a.record(|| {
            metrics::describe_counter!("x_total", "Things.");
            metrics::counter!("x_total", "kind" => "k").increment(2);
            metrics::histogram!("lat_seconds").record(0.003);
        });
        b.record(|| metrics::counter!("y_total").increment(1));
        let text = a.render();
        assert!(text.contains("# HELP x_total Things."), "{text}");
        assert!(text.contains("x_total{kind=\"k\"} 2"), "{text}");
        assert!(
            text.contains("lat_seconds_bucket{le=\"0.005\"} 1"),
            "{text}"
        );
        assert!(!text.contains("y_total"), "{text}");
        assert!(b.render().contains("y_total 1"));
        // Outside `record`, nothing reaches either registry.
        metrics::counter!("z_total").increment(1);
        assert!(!a.render().contains("z_total"));
    }
}
