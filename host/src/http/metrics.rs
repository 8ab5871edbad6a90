//! `GET /metrics` of a node, in the Prometheus text format, through the `metrics` crate and a
//! per-node recorder ([`crate::telemetry::Telemetry`]), so that nodes and a gateway in one
//! process keep separate registries.
//!
//! Counters kept elsewhere (the engine's [`tally_core::Stats`], the transport's, the WAL's) are
//! copied in at scrape time as absolute values; events that need a distribution (fsync
//! latency, batch sizes, HTTP requests) are recorded as they happen.

use super::api::NodeApi;
use crate::telemetry::Telemetry;
use crate::wal::WalObserver;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use metrics::{counter, gauge, histogram};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tally_core::{MessageType, PeerState, WireError};

/// Named counters exported with their own `counter` label (the first by name); the value of
/// the rest is summed under the label `(other)`, which no counter name can be.
pub const LABELLED_COUNTERS: usize = 100;

/// `GET /metrics`.
pub async fn handler(State(app): State<Arc<NodeApi>>) -> Response {
    let node = &app.node;
    let stats = node.stats();
    let transport = node.transport();
    let (inc, dec) = node.local();
    let value = node.value();
    let peers = node.peers();
    let named = node.counters();
    let complete = node.is_complete();
    let members = node.members();
    app.telemetry.record(|| {
        gauge!("tally_counter_value").set(value as f64);
        // 0 while the cluster holds more entries than this node has room for.
        gauge!("tally_state_complete").set(f64::from(u8::from(complete)));
        for state in ["alive", "suspect", "down"] {
            let n = members.iter().filter(|m| m.state == state).count();
            gauge!("tally_members", "state" => state).set(n as f64);
        }
        gauge!("tally_named_counters").set(named.len() as f64);
        for (name, v) in named.iter().take(LABELLED_COUNTERS) {
            gauge!("tally_named_value", "counter" => name.clone()).set(*v as f64);
        }
        if named.len() > LABELLED_COUNTERS {
            let rest: i128 = named.iter().skip(LABELLED_COUNTERS).map(|(_, v)| v).sum();
            gauge!("tally_named_value", "counter" => "(other)").set(rest as f64);
        }
        counter!("tally_named_refused_total").absolute(stats.named_refused);
        counter!("tally_local_increments_total").absolute(inc);
        counter!("tally_local_decrements_total").absolute(dec);
        for t in MessageType::ALL {
            counter!("tally_frames_in_total", "type" => t.name()).absolute(stats.received(t));
            counter!("tally_frames_out_total", "type" => t.name()).absolute(stats.sent(t));
        }
        counter!("tally_bytes_in_total").absolute(stats.bytes_in);
        counter!("tally_bytes_out_total").absolute(stats.bytes_out);
        counter!("tally_merges_total").absolute(stats.merges);
        counter!("tally_merges_changed_total").absolute(stats.merges_changed);
        for &e in WireError::ALL {
            let n = stats.rejected(e);
            if n > 0 {
                counter!("tally_rejects_total", "reason" => e.name()).absolute(n);
            }
        }
        counter!("tally_replies_limited_total").absolute(stats.replies_limited);
        counter!("tally_transmit_shed_total").absolute(stats.shed);
        counter!("tally_push_bytes_total", "kind" => "full").absolute(stats.full_push_bytes);
        counter!("tally_push_bytes_total", "kind" => "delta").absolute(stats.delta_push_bytes);
        for state in [PeerState::Alive, PeerState::Down] {
            let n = peers.iter().filter(|p| p.state == state).count();
            gauge!("tally_peers", "state" => state.name()).set(n as f64);
        }
        counter!("tally_connections_accepted_total").absolute(transport.accepted);
        counter!("tally_connections_read_failed_total").absolute(transport.read_failed);
        counter!("tally_connections_shed_total").absolute(transport.shed);
        counter!("tally_sends_total", "result" => "ok").absolute(transport.sent);
        counter!("tally_sends_total", "result" => "failed").absolute(transport.send_failed);
        counter!("tally_sends_total", "result" => "dropped").absolute(transport.send_dropped);
        counter!("tally_datagrams_in_total").absolute(transport.datagrams_in);
        counter!("tally_datagrams_out_total").absolute(transport.datagrams_out);
        counter!("tally_datagrams_unanswered_total").absolute(stats.datagrams_unanswered);
        counter!("tally_rounds_total").absolute(stats.rounds);
        counter!("tally_eager_pushes_total").absolute(stats.eager_pushes);
        let g = &app.guard.counters;
        counter!("tally_http_refused_total", "reason" => "unauthorized")
            .absolute(g.unauthorized.load(Ordering::Relaxed));
        counter!("tally_http_refused_total", "reason" => "rate_limited")
            .absolute(g.rate_limited.load(Ordering::Relaxed));
        let c = &g.connections;
        counter!("tally_http_refused_total", "reason" => "connections_limited")
            .absolute(c.connections_limited.load(Ordering::Relaxed));
        counter!("tally_http_refused_total", "reason" => "client_connections_limited")
            .absolute(c.client_connections_limited.load(Ordering::Relaxed));
        counter!("tally_http_refused_total", "reason" => "header_timeout")
            .absolute(c.header_timeouts.load(Ordering::Relaxed));
        if let Some(wal) = &app.wal {
            let w = wal.stats();
            counter!("tally_wal_records_total").absolute(w.records);
            counter!("tally_wal_batches_total").absolute(w.batches);
            counter!("tally_wal_snapshots_total").absolute(w.snapshots);
        }
    });
    app.telemetry.response()
}

/// Counts every request by matched route and status.
pub async fn count_requests(State(app): State<Arc<NodeApi>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let method = req.method().as_str().to_string();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    app.telemetry.record(|| {
        counter!("tally_http_requests_total", "route" => route, "method" => method, "status" => status)
            .increment(1);
    });
    response
}

/// Records the log's fsync latencies and batch sizes into a node's telemetry.
pub struct WalMetrics(pub Telemetry);

impl WalObserver for WalMetrics {
    fn fsync(&self, took: Duration) {
        self.0
            .record(|| histogram!("tally_wal_fsync_seconds").record(took.as_secs_f64()));
    }

    fn batch(&self, records: u64) {
        self.0
            .record(|| histogram!("tally_wal_batch_records").record(records as f64));
    }
}
