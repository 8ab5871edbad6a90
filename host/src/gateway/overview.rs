//! `GET /cluster`: every node's value, peers, frame counters and named counters in one
//! answer, for the dashboard (which then needs no cross-origin requests to the nodes).
//!
//! ```json
//! {"nodes": [{"url", "healthy", "id", "value", "latency_ms", "last_error", "peers": [...],
//!             "frames": {"in": {"push": 12.0, ...}, "out": {...}},
//!             "counters": {"doors": 12, ...}, "counters_total": 1, "error"}],
//!  "converged": true, "value": 42, "healthy": 3, "total": 3,
//!  "counters": {"doors": {"converged": true, "value": 12}, ...},
//!  "counters_total": 1, "counters_converged": true}
//! ```
//!
//! `peers` is the node's `GET /peers` (null when it could not be read); `frames` holds the
//! `tally_frames_in_total` / `tally_frames_out_total` series of its `GET /metrics` by `type`
//! (null when the node has no such series or no `/metrics`). `converged` and `value` are the
//! default counter's: `converged` is true when every healthy node answered and all answered
//! the same value.
//!
//! Named counters come from each healthy node's `GET /counters`. The answer carries at most
//! [`COUNTERS_SHOWN`] of them — the first names in byte order of all the names the healthy
//! nodes hold — so a cluster with thousands of counters (a host holds up to 10,000) still
//! gets a small answer. Top-level `counters` maps each of those names to `converged` (every
//! healthy node holds it with the same value) and `value` (that value; null while they
//! differ); a node's `counters` holds its values of those names only (a name it lacks is
//! absent), and its `counters_total` how many named counters it holds in all.
//! Top-level `counters_total` counts the distinct names of all healthy nodes (so
//! `counters_total − len(counters)` were left out), and `counters_converged` is true when
//! there is a healthy node and every healthy node holds exactly the same named counters with the same values, those left
//! out included. A node whose `GET /counters` could not be read has `counters` and
//! `counters_total` null and makes every named counter unconverged — except one that answers
//! 404 (a reference node, which has no named counters): it is left out of the comparison.
//!
//! Answers are cached for [`CACHE_FOR`], so many open dashboards cost the nodes no more than
//! one.

use super::nodes::Upstream;
use super::proxy::GatewayHandle;
use axum::http::StatusCode;
use reqwest::Method;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// How long a `/cluster` answer is reused.
pub const CACHE_FOR: Duration = Duration::from_millis(200);

/// How many named counters a `/cluster` answer carries at most (the first in byte order).
pub const COUNTERS_SHOWN: usize = 100;

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
    /// Its values of the named counters the answer shows (null: its `/counters` was not read).
    pub counters: Option<BTreeMap<String, Value>>,
    /// How many named counters it holds in all.
    pub counters_total: Option<usize>,
    /// Why `value` is missing, if it is.
    pub error: Option<String>,
}

/// What a node's `GET /counters` gave.
#[derive(Debug, Clone, PartialEq)]
pub enum Named {
    /// Every named counter it holds, by name.
    Counters(BTreeMap<String, Value>),
    /// It has no such route (404: a reference node); left out of named convergence.
    NoRoute,
    /// Not read (not in rotation, no answer, an error): nothing is known.
    Unknown,
}

/// One named counter across the healthy nodes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CounterView {
    /// Every healthy node holds it with the same value.
    pub converged: bool,
    /// That value; null while the nodes differ.
    pub value: Option<Value>,
}

/// The named counters of a `/cluster` answer.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedView {
    /// The first [`COUNTERS_SHOWN`] names of all, in byte order.
    pub counters: BTreeMap<String, CounterView>,
    /// Distinct names over the healthy nodes.
    pub total: usize,
    /// Every healthy node holds the same named counters with the same values.
    pub converged: bool,
}

/// Compares the named counters of the healthy nodes (`named`, one per healthy node).
pub fn named_view(named: &[&Named]) -> NamedView {
    let unknown = named.iter().any(|n| matches!(n, Named::Unknown));
    let maps: Vec<&BTreeMap<String, Value>> = named
        .iter()
        .filter_map(|n| match n {
            Named::Counters(map) => Some(map),
            _ => None,
        })
        .collect();
    let mut names: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
    for map in &maps {
        names.extend(map.keys().map(String::as_str));
    }
    let converged =
        !named.is_empty() && !unknown && maps.windows(2).all(|w| matches!(w, [a, b] if a == b));
    let counters = names
        .iter()
        .take(COUNTERS_SHOWN)
        .map(|name| {
            let mut values = maps.iter().map(|m| m.get(*name));
            let first = values.next().flatten();
            let agree = !unknown && first.is_some() && values.all(|v| v == first);
            let view = CounterView {
                converged: agree,
                value: if agree { first.cloned() } else { None },
            };
            ((*name).to_string(), view)
        })
        .collect();
    NamedView {
        counters,
        total: names.len(),
        converged,
    }
}

async fn get_answer(
    gateway: &GatewayHandle,
    node: &Upstream,
    path: &str,
) -> Option<(StatusCode, axum::body::Bytes, Duration)> {
    let timeout = gateway.config.health_timeout;
    gateway
        .exchange(node, Method::GET, path, None, timeout, gateway.own_auth())
        .await
        .ok()
}

async fn get_text(
    gateway: &GatewayHandle,
    node: &Upstream,
    path: &str,
) -> Option<(axum::body::Bytes, Duration)> {
    match get_answer(gateway, node, path).await {
        Some((status, body, took)) if status.is_success() => Some((body, took)),
        _ => None,
    }
}

/// A node's `GET /counters` answer, read.
fn parse_counters(answer: Option<(StatusCode, axum::body::Bytes, Duration)>) -> Named {
    #[derive(serde::Deserialize)]
    struct List {
        counters: BTreeMap<String, Value>,
    }
    match answer {
        Some((status, body, _)) if status.is_success() => {
            match serde_json::from_slice::<List>(&body) {
                Ok(list) => Named::Counters(list.counters),
                Err(_) => Named::Unknown,
            }
        }
        Some((StatusCode::NOT_FOUND, _, _)) => Named::NoRoute,
        _ => Named::Unknown,
    }
}

async fn probe(gateway: GatewayHandle, node: Arc<Upstream>) -> (ClusterNode, Named) {
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
        counters: None,
        counters_total: None,
        error: None,
    };
    if !out.healthy {
        out.error = Some("not in rotation".to_string());
        return (out, Named::Unknown);
    }
    let (counter, peers, metrics, counters) = tokio::join!(
        get_text(&gateway, &node, "/counter"),
        get_text(&gateway, &node, "/peers"),
        get_text(&gateway, &node, "/metrics"),
        get_answer(&gateway, &node, "/counters"),
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
    let named = parse_counters(counters);
    if let Named::Counters(map) = &named {
        out.counters_total = Some(map.len());
    }
    (out, named)
}

/// Builds the `GET /cluster` answer, querying every healthy node at once.
pub async fn snapshot(gateway: &GatewayHandle) -> Value {
    let nodes = gateway.nodes.all();
    let mut probes = JoinSet::new();
    for (i, node) in nodes.iter().enumerate() {
        let (gateway, node) = (Arc::clone(gateway), Arc::clone(node));
        probes.spawn(async move { (i, probe(gateway, node).await) });
    }
    let mut results: Vec<(usize, (ClusterNode, Named))> = Vec::with_capacity(nodes.len());
    while let Some(joined) = probes.join_next().await {
        if let Ok(result) = joined {
            results.push(result);
        }
    }
    results.sort_by_key(|(i, _)| *i);
    let (mut nodes, named): (Vec<ClusterNode>, Vec<Named>) =
        results.into_iter().map(|(_, n)| n).unzip();
    let view = named_view(
        &nodes
            .iter()
            .zip(&named)
            .filter(|(n, _)| n.healthy)
            .map(|(_, named)| named)
            .collect::<Vec<_>>(),
    );
    // Each node carries its values of the names shown only.
    for (node, named) in nodes.iter_mut().zip(named) {
        if let Named::Counters(mut map) = named {
            map.retain(|name, _| view.counters.contains_key(name));
            node.counters = Some(map);
        }
    }
    let healthy: Vec<&ClusterNode> = nodes.iter().filter(|n| n.healthy).collect();
    let first = healthy.first().and_then(|n| n.value.clone());
    let converged = first.is_some() && healthy.iter().all(|n| n.value == first);
    serde_json::json!({
        "nodes": nodes,
        "converged": converged,
        "value": if converged { first } else { None },
        "healthy": healthy.len(),
        "total": nodes.len(),
        "counters": view.counters,
        "counters_total": view.total,
        "counters_converged": view.converged,
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

    fn map(entries: &[(&str, i64)]) -> Named {
        Named::Counters(
            entries
                .iter()
                .map(|(k, v)| ((*k).to_string(), Value::from(*v)))
                .collect(),
        )
    }

    #[test]
    fn named_counters_converge_per_name() {
        let a = map(&[("doors", 3), ("lights", 1)]);
        let b = map(&[("doors", 3), ("lights", 2)]);
        let c = map(&[("doors", 3)]);
        let v = named_view(&[&a, &b, &c]);
        assert_eq!(v.total, 2);
        assert!(!v.converged);
        let doors = v.counters.get("doors").unwrap();
        assert_eq!(
            (doors.converged, doors.value.clone()),
            (true, Some(3.into()))
        );
        let lights = v.counters.get("lights").unwrap();
        assert_eq!((lights.converged, lights.value.clone()), (false, None));
        // A node that has not got a name yet: that name has not converged.
        let v = named_view(&[&a, &c]);
        assert!(!v.counters.get("lights").unwrap().converged);
        // All alike: converged; a reference node (no route) is left out.
        let v = named_view(&[&a, &a.clone(), &Named::NoRoute]);
        assert!(v.converged && v.counters.values().all(|c| c.converged));
        // Not knowing one node's counters: nothing is known to have converged.
        let v = named_view(&[&a, &a.clone(), &Named::Unknown]);
        assert!(!v.converged && v.counters.values().all(|c| !c.converged));
        assert!(!named_view(&[]).converged);
    }

    #[test]
    fn at_most_the_first_names_are_shown() {
        let names: Vec<String> = (0..250).rev().map(|i| format!("c{i:04}")).collect();
        let big = Named::Counters(names.iter().map(|n| (n.clone(), Value::from(1))).collect());
        let v = named_view(&[&big, &big.clone()]);
        assert_eq!(v.total, 250);
        assert!(v.converged);
        assert_eq!(v.counters.len(), COUNTERS_SHOWN);
        assert_eq!(v.counters.keys().next().map(String::as_str), Some("c0000"));
        assert_eq!(v.counters.keys().last().map(String::as_str), Some("c0099"));
    }
}
