//! `GET /cluster`: every node's value, peers and frame counters in one answer, for the
//! dashboard (which then needs no cross-origin requests to the nodes).
//!
//! ```json
//! {"nodes": [{"url", "healthy", "id", "value", "latency_ms", "last_error", "peers": [...],
//!             "frames": {"in": {"push": 12.0, ...}, "out": {...}}, "error"}],
//!  "converged": true, "value": 42, "healthy": 3, "total": 3}
//! ```
//!
//! `peers` is the node's `GET /peers` (null when it could not be read); `frames` holds the
//! `tally_frames_in_total` / `tally_frames_out_total` series of its `GET /metrics` by `type`
//! (null when the node has no such series or no `/metrics`). `converged` is true when every
//! healthy node answered and all answered the same value. Answers are cached for
//! [`CACHE_FOR`], so many open dashboards cost the nodes no more than one.

use super::nodes::Upstream;
use super::proxy::GatewayHandle;
use reqwest::Method;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// How long a `/cluster` answer is reused.
pub const CACHE_FOR: Duration = Duration::from_millis(200);

/// Frame counters of one node by message type.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Frames {
    /// `tally_frames_in_total` by `type`.
    #[serde(rename = "in")]
    pub frames_in: BTreeMap<String, f64>,
    /// `tally_frames_out_total` by `type`.
    #[serde(rename = "out")]
    pub frames_out: BTreeMap<String, f64>,
}

/// The value of label `name` in a series' label block `{a="x",b="y"}`.
fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    let needle = format!("{name}=\"");
    let start = labels.find(&needle)?.checked_add(needle.len())?;
    let rest = labels.get(start..)?;
    rest.get(..rest.find('"')?)
}

/// The frame counters in a Prometheus text page; `None` when it has neither series.
pub fn parse_frames(text: &str) -> Option<Frames> {
    let mut frames = Frames::default();
    let mut found = false;
    for line in text.lines() {
        let (map, rest) = if let Some(rest) = line.strip_prefix("tally_frames_in_total") {
            (&mut frames.frames_in, rest)
        } else if let Some(rest) = line.strip_prefix("tally_frames_out_total") {
            (&mut frames.frames_out, rest)
        } else {
            continue;
        };
        let (labels, value) = match rest.strip_prefix('{') {
            Some(r) => match r.split_once('}') {
                Some((labels, value)) => (labels, value),
                None => continue,
            },
            None if rest.starts_with(' ') => ("", rest),
            None => continue,
        };
        let Some(Ok(value)) = value.split_whitespace().next().map(str::parse::<f64>) else {
            continue;
        };
        let kind = label(labels, "type").unwrap_or("all").to_string();
        *map.entry(kind).or_insert(0.0) += value;
        found = true;
    }
    found.then_some(frames)
}

/// One node in `GET /cluster`.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterNode {
    /// Base URL.
    pub url: String,
    /// In rotation.
    pub healthy: bool,
    /// Node id.
    pub id: Option<String>,
    /// Its counter value.
    pub value: Option<Value>,
    /// Latency of its `/counter` answer, ms.
    pub latency_ms: Option<f64>,
    /// The gateway's last error with it.
    pub last_error: Option<String>,
    /// Its `GET /peers`.
    pub peers: Option<Value>,
    /// Its frame counters.
    pub frames: Option<Frames>,
    /// Why `value` is missing, if it is.
    pub error: Option<String>,
}

async fn get_text(
    gateway: &GatewayHandle,
    node: &Upstream,
    path: &str,
) -> Option<(axum::body::Bytes, Duration)> {
    let timeout = gateway.config.health_timeout;
    match gateway
        .exchange(node, Method::GET, path, None, timeout, gateway.own_auth())
        .await
    {
        Ok((status, body, took)) if status.is_success() => Some((body, took)),
        _ => None,
    }
}

async fn probe(gateway: GatewayHandle, node: Arc<Upstream>) -> ClusterNode {
    let view = node.view();
    let mut out = ClusterNode {
        url: view.url,
        healthy: view.healthy,
        id: view.id,
        value: None,
        latency_ms: None,
        last_error: view.last_error,
        peers: None,
        frames: None,
        error: None,
    };
    if !out.healthy {
        out.error = Some("not in rotation".to_string());
        return out;
    }
    let (counter, peers, metrics) = tokio::join!(
        get_text(&gateway, &node, "/counter"),
        get_text(&gateway, &node, "/peers"),
        get_text(&gateway, &node, "/metrics"),
    );
    match counter
        .and_then(|(body, took)| Some((serde_json::from_slice::<Value>(&body).ok()?, took)))
    {
        Some((json, took)) => {
            node.succeeded(took, Some(&json), false);
            out.latency_ms = Some(took.as_secs_f64() * 1000.0);
            out.value = json.get("value").cloned();
            if let Some(id) = json.get("node").and_then(Value::as_str) {
                out.id = Some(id.to_string());
            }
        }
        None => out.error = Some("no answer to GET /counter".to_string()),
    }
    out.peers = peers.and_then(|(body, _)| serde_json::from_slice(&body).ok());
    out.frames = metrics.and_then(|(body, _)| parse_frames(&String::from_utf8_lossy(&body)));
    out
}

/// Builds the `GET /cluster` answer, querying every healthy node at once.
pub async fn snapshot(gateway: &GatewayHandle) -> Value {
    let nodes = gateway.nodes.all();
    let mut probes = JoinSet::new();
    for (i, node) in nodes.iter().enumerate() {
        let (gateway, node) = (Arc::clone(gateway), Arc::clone(node));
        probes.spawn(async move { (i, probe(gateway, node).await) });
    }
    let mut results: Vec<(usize, ClusterNode)> = Vec::with_capacity(nodes.len());
    while let Some(joined) = probes.join_next().await {
        if let Ok(result) = joined {
            results.push(result);
        }
    }
    results.sort_by_key(|(i, _)| *i);
    let nodes: Vec<ClusterNode> = results.into_iter().map(|(_, n)| n).collect();
    let healthy: Vec<&ClusterNode> = nodes.iter().filter(|n| n.healthy).collect();
    let first = healthy.first().and_then(|n| n.value.clone());
    let converged = first.is_some() && healthy.iter().all(|n| n.value == first);
    serde_json::json!({
        "nodes": nodes,
        "converged": converged,
        "value": if converged { first } else { None },
        "healthy": healthy.len(),
        "total": nodes.len(),
    })
}

/// A cached `GET /cluster` answer.
#[derive(Debug, Default)]
pub struct ClusterCache {
    last: tokio::sync::Mutex<Option<(Instant, Arc<Value>)>>,
}

impl ClusterCache {
    /// The answer, fresh or at most [`CACHE_FOR`] old. Concurrent callers wait for one probe.
    pub async fn get(&self, gateway: &GatewayHandle) -> Arc<Value> {
        let mut last = self.last.lock().await;
        if let Some((at, value)) = last.as_ref() {
            if at.elapsed() < CACHE_FOR {
                return Arc::clone(value);
            }
        }
        let value = Arc::new(snapshot(gateway).await);
        *last = Some((Instant::now(), Arc::clone(&value)));
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_summed_by_type() {
        let text = "# TYPE tally_frames_in_total counter\n\
                    tally_frames_in_total{type=\"push\"} 3\n\
                    tally_frames_in_total{instance=\"a\",type=\"digest_pull\"} 4\n\
                    tally_frames_in_total{type=\"push\",instance=\"b\"} 2\n\
                    tally_frames_out_total 7\n\
                    tally_frames_inx 1\n";
        let f = parse_frames(text).unwrap();
        assert_eq!(f.frames_in.get("push"), Some(&5.0));
        assert_eq!(f.frames_in.get("digest_pull"), Some(&4.0));
        assert_eq!(f.frames_out.get("all"), Some(&7.0));
        assert_eq!(parse_frames("other_total 1\n"), None);
    }
}
