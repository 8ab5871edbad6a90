//! The gateway's Prometheus series, recorded into its own [`Telemetry`] (see
//! [`crate::telemetry`] for why each server has its own registry).
//!
//! | series | type | labels |
//! |---|---|---|
//! | `tally_gateway_requests_total` | counter | `route`, `status` |
//! | `tally_gateway_request_duration_seconds` | histogram | `route` |
//! | `tally_gateway_upstream_duration_seconds` | histogram | `node` (base URL) |
//! | `tally_gateway_upstream_errors_total` | counter | `node`, `kind` (`connect`, `timeout`, `transport`, `status`) |
//! | `tally_gateway_retries_total` | counter | `route` |
//! | `tally_gateway_node_healthy` | gauge (0/1) | `node` |
//! | `tally_gateway_nodes_healthy`, `tally_gateway_nodes` | gauge | — |

use crate::telemetry::Telemetry;
use std::time::Duration;

/// Requests answered by the gateway.
pub const REQUESTS: &str = "tally_gateway_requests_total";
/// Time to answer a request.
pub const REQUEST_SECONDS: &str = "tally_gateway_request_duration_seconds";
/// Time of each exchange with a node (forwarded requests and health checks).
pub const UPSTREAM_SECONDS: &str = "tally_gateway_upstream_duration_seconds";
/// Failed exchanges with a node, by kind.
pub const UPSTREAM_ERRORS: &str = "tally_gateway_upstream_errors_total";
/// Requests sent again to another node.
pub const RETRIES: &str = "tally_gateway_retries_total";
/// 1 while a node is in rotation.
pub const NODE_HEALTHY: &str = "tally_gateway_node_healthy";
/// Nodes in rotation.
pub const NODES_HEALTHY: &str = "tally_gateway_nodes_healthy";
/// Nodes known.
pub const NODES: &str = "tally_gateway_nodes";

/// How an exchange with a node failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// No connection was made: the request certainly did not reach the node.
    Connect,
    /// No answer in time after the request was (or may have been) sent.
    Timeout,
    /// The connection failed after the request was (or may have been) sent.
    Transport,
    /// The node answered with a 5xx status.
    Status,
}

impl ErrorKind {
    /// The `kind` label.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Transport => "transport",
            ErrorKind::Status => "status",
        }
    }

    /// Classifies a reqwest error. `Connect` only when reqwest says the connection could not
    /// be established (refused, connect timeout, DNS): only then was nothing sent.
    pub fn of(error: &reqwest::Error) -> Self {
        if error.is_connect() {
            ErrorKind::Connect
        } else if error.is_timeout() {
            ErrorKind::Timeout
        } else {
            ErrorKind::Transport
        }
    }
}

/// The gateway's metrics.
#[derive(Clone, Debug)]
pub struct GatewayMetrics {
    telemetry: Telemetry,
}

impl GatewayMetrics {
    /// Metrics in `telemetry`, with their descriptions.
    pub fn new(telemetry: Telemetry) -> Self {
        telemetry.record(|| {
            metrics::describe_counter!(REQUESTS, "Requests answered by the gateway.");
            metrics::describe_histogram!(
                REQUEST_SECONDS,
                metrics::Unit::Seconds,
                "Time to answer a request."
            );
            metrics::describe_histogram!(
                UPSTREAM_SECONDS,
                metrics::Unit::Seconds,
                "Time of each exchange with a node, health checks included."
            );
            metrics::describe_counter!(UPSTREAM_ERRORS, "Failed exchanges with a node.");
            metrics::describe_counter!(RETRIES, "Requests sent again to another node.");
            metrics::describe_gauge!(NODE_HEALTHY, "1 while the node is in rotation.");
            metrics::describe_gauge!(NODES_HEALTHY, "Nodes in rotation.");
            metrics::describe_gauge!(NODES, "Nodes known.");
        });
        Self { telemetry }
    }

    /// The registry.
    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// One answered request.
    pub fn request(&self, route: &'static str, status: u16, took: Duration) {
        self.telemetry.record(|| {
            metrics::counter!(REQUESTS, "route" => route, "status" => status.to_string())
                .increment(1);
            metrics::histogram!(REQUEST_SECONDS, "route" => route).record(took.as_secs_f64());
        });
    }

    /// One exchange with `node` that got an answer.
    pub fn upstream(&self, node: &str, took: Duration) {
        self.telemetry.record(|| {
            metrics::histogram!(UPSTREAM_SECONDS, "node" => node.to_string())
                .record(took.as_secs_f64());
        });
    }

    /// One failed exchange with `node`.
    pub fn upstream_error(&self, node: &str, kind: ErrorKind) {
        self.telemetry.record(|| {
            metrics::counter!(UPSTREAM_ERRORS, "node" => node.to_string(), "kind" => kind.as_str())
                .increment(1);
        });
    }

    /// One retry of a `route` request on another node.
    pub fn retry(&self, route: &'static str) {
        self.telemetry
            .record(|| metrics::counter!(RETRIES, "route" => route).increment(1));
    }

    /// The rotation: each node's state and the totals.
    pub fn rotation(&self, nodes: &[(String, bool)]) {
        self.telemetry.record(|| {
            for (url, healthy) in nodes {
                metrics::gauge!(NODE_HEALTHY, "node" => url.clone()).set(if *healthy {
                    1.0
                } else {
                    0.0
                });
            }
            let healthy = nodes.iter().filter(|(_, h)| *h).count();
            metrics::gauge!(NODES_HEALTHY).set(healthy as f64);
            metrics::gauge!(NODES).set(nodes.len() as f64);
        });
    }
}
