//! The gateway's view of its nodes: health, last answers, and round-robin choice.

use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// `url` as a base URL: `http://` added when there is no scheme, trailing `/` removed.
pub fn normalize_url(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    }
}

/// What the gateway last learned about one node.
#[derive(Debug, Default)]
struct Status {
    /// Consecutive failures (requests and health checks).
    fails: u32,
    last_error: Option<String>,
    /// Latency of the last successful exchange.
    latency: Option<Duration>,
    /// The last `value` and `node` (id) the node answered.
    last_value: Option<serde_json::Value>,
    node_id: Option<String>,
    last_ok: Option<Instant>,
    last_check: Option<Instant>,
    requests: u64,
    errors: u64,
}

/// The paths the gateway requests, parsed once per node (URL parsing is a visible share of a
/// forwarded request's cost).
const PATHS: [&str; 6] = [
    "/counter",
    "/increment",
    "/decrement",
    "/health",
    "/peers",
    "/metrics",
];

/// One node behind the gateway.
#[derive(Debug)]
pub struct Upstream {
    /// Base URL, e.g. `http://127.0.0.1:8000`.
    pub url: String,
    /// `url` + each of [`PATHS`], parsed (empty when `url` does not parse).
    endpoints: Vec<(&'static str, reqwest::Url)>,
    healthy: AtomicBool,
    status: Mutex<Status>,
}

/// A node as `GET /nodes` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct NodeView {
    /// Base URL.
    pub url: String,
    /// Whether requests are sent to it.
    pub healthy: bool,
    /// The node's id, from its last answer.
    pub id: Option<String>,
    /// Consecutive failures.
    pub fails: u32,
    /// The last failure, if any since it was last healthy.
    pub last_error: Option<String>,
    /// Latency of the last successful exchange, milliseconds.
    pub latency_ms: Option<f64>,
    /// The counter value of its last answer.
    pub last_value: Option<serde_json::Value>,
    /// Milliseconds since its last successful answer.
    pub last_ok_ms_ago: Option<u64>,
    /// Milliseconds since its last health check.
    pub last_check_ms_ago: Option<u64>,
    /// Requests forwarded to it (not counting health checks).
    pub requests: u64,
    /// Failed forwarded requests and health checks.
    pub errors: u64,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn ms_ago(t: Option<Instant>) -> Option<u64> {
    t.map(|t| u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX))
}

impl Upstream {
    /// A node, healthy until shown otherwise (so a fresh gateway serves at once).
    pub fn new(url: &str) -> Self {
        let url = normalize_url(url);
        let endpoints = PATHS
            .iter()
            .filter_map(|p| Some((*p, reqwest::Url::parse(&format!("{url}{p}")).ok()?)))
            .collect();
        Self {
            url,
            endpoints,
            healthy: AtomicBool::new(true),
            status: Mutex::new(Status::default()),
        }
    }

    /// The URL of `path` on this node: a parsed copy for the usual paths, else parsed now.
    pub fn endpoint(&self, path: &str) -> Result<reqwest::Url, String> {
        match self.endpoints.iter().find(|(p, _)| *p == path) {
            Some((_, url)) => Ok(url.clone()),
            None => reqwest::Url::parse(&format!("{}{path}", self.url))
                .map_err(|e| format!("bad node URL {}{path}: {e}", self.url)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Status> {
        // Every update leaves the status valid; a panicking holder cannot corrupt it.
        self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether requests may be sent to it.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Counts a forwarded request.
    pub fn count_request(&self) {
        let mut s = self.lock();
        s.requests = s.requests.saturating_add(1);
    }

    /// Records a successful exchange (its `{"value","node"}` answer, if it had one). When
    /// `readmit` (a health check), a removed node is taken back. Returns true when it was
    /// readmitted.
    pub fn succeeded(
        &self,
        latency: Duration,
        answer: Option<&serde_json::Value>,
        readmit: bool,
    ) -> bool {
        let mut s = self.lock();
        let now = Instant::now();
        s.fails = 0;
        s.latency = Some(latency);
        s.last_ok = Some(now);
        if readmit {
            s.last_check = Some(now);
        }
        if let Some(answer) = answer {
            // The default counter's value; a named counter's answer carries its name.
            if let (Some(value), None) = (answer.get("value"), answer.get("name")) {
                s.last_value = Some(value.clone());
            }
            if let Some(id) = answer.get("node").and_then(|n| n.as_str()) {
                if s.node_id.as_deref() != Some(id) {
                    s.node_id = Some(id.to_string());
                }
            }
        }
        if readmit && !self.healthy.swap(true, Ordering::Relaxed) {
            s.last_error = None;
            drop(s);
            tracing::info!(node = %self.url, "gateway: node healthy again; readmitted");
            return true;
        }
        false
    }

    /// Records a failure. The node is removed when `definitive` (its port refused the
    /// connection) or after `threshold` failures in a row. Returns true when it was removed.
    pub fn failed(&self, error: &str, definitive: bool, threshold: u32, check: bool) -> bool {
        let mut s = self.lock();
        s.fails = s.fails.saturating_add(1);
        s.errors = s.errors.saturating_add(1);
        s.last_error = Some(error.to_string());
        if check {
            s.last_check = Some(Instant::now());
        }
        let remove = definitive || s.fails >= threshold.max(1);
        let fails = s.fails;
        drop(s);
        if remove && self.healthy.swap(false, Ordering::Relaxed) {
            tracing::warn!(node = %self.url, fails, error, "gateway: node removed from rotation");
            return true;
        }
        false
    }

    /// The node as `GET /nodes` shows it.
    pub fn view(&self) -> NodeView {
        let s = self.lock();
        NodeView {
            url: self.url.clone(),
            healthy: self.is_healthy(),
            id: s.node_id.clone(),
            fails: s.fails,
            last_error: s.last_error.clone(),
            latency_ms: s.latency.map(ms),
            last_value: s.last_value.clone(),
            last_ok_ms_ago: ms_ago(s.last_ok),
            last_check_ms_ago: ms_ago(s.last_check),
            requests: s.requests,
            errors: s.errors,
        }
    }
}

/// The nodes, replaceable as a whole (discovery), with a round-robin cursor.
#[derive(Debug, Default)]
pub struct NodeSet {
    list: RwLock<Arc<[Arc<Upstream>]>>,
    next: AtomicUsize,
}

impl NodeSet {
    /// A set of `urls` (normalized, duplicates dropped).
    pub fn new(urls: &[String]) -> Self {
        let set = Self::default();
        set.replace(urls);
        set
    }

    /// Every node, healthy or not, in URL order.
    pub fn all(&self) -> Arc<[Arc<Upstream>]> {
        Arc::clone(&self.list.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Replaces the set by `urls`, keeping the state of nodes already known. Returns the URLs
    /// added and removed.
    pub fn replace(&self, urls: &[String]) -> (Vec<String>, Vec<String>) {
        let mut wanted: Vec<String> = urls.iter().map(|u| normalize_url(u)).collect();
        wanted.sort();
        wanted.dedup();
        let mut list = self.list.write().unwrap_or_else(PoisonError::into_inner);
        let old = Arc::clone(&list);
        let mut added = Vec::new();
        let next: Vec<Arc<Upstream>> = wanted
            .iter()
            .map(|url| match old.iter().find(|n| n.url == *url) {
                Some(known) => Arc::clone(known),
                None => {
                    added.push(url.clone());
                    Arc::new(Upstream::new(url))
                }
            })
            .collect();
        let removed = old
            .iter()
            .filter(|n| !wanted.contains(&n.url))
            .map(|n| n.url.clone())
            .collect();
        *list = next.into();
        (added, removed)
    }

    /// The healthy nodes, starting with the next in round-robin order: the first is the one to
    /// use, the others are where a retry goes.
    pub fn candidates(&self) -> Vec<Arc<Upstream>> {
        let mut healthy: Vec<Arc<Upstream>> = self
            .all()
            .iter()
            .filter(|u| u.is_healthy())
            .cloned()
            .collect();
        if !healthy.is_empty() {
            let start = self.next.fetch_add(1, Ordering::Relaxed) % healthy.len();
            healthy.rotate_left(start);
        }
        healthy
    }

    /// How many nodes are healthy, and how many there are.
    pub fn counts(&self) -> (usize, usize) {
        let all = self.all();
        (all.iter().filter(|u| u.is_healthy()).count(), all.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_skips_unhealthy_and_replace_keeps_state() {
        let set = NodeSet::new(&["b:1".into(), "http://a:1/".into(), "b:1".into()]);
        let urls: Vec<_> = set.all().iter().map(|u| u.url.clone()).collect();
        assert_eq!(urls, ["http://a:1", "http://b:1"]);
        let firsts: Vec<_> = (0..4).map(|_| set.candidates()[0].url.clone()).collect();
        assert_eq!(
            firsts,
            ["http://a:1", "http://b:1", "http://a:1", "http://b:1"]
        );
        let a = Arc::clone(&set.all()[0]);
        assert!(!a.failed("x", false, 2, false));
        assert!(a.failed("x", false, 2, false));
        assert_eq!(set.counts(), (1, 2));
        assert!(set.candidates().iter().all(|u| u.url == "http://b:1"));
        let (added, removed) = set.replace(&["http://a:1".into(), "http://c:1".into()]);
        assert_eq!(
            (added, removed),
            (vec!["http://c:1".into()], vec!["http://b:1".into()])
        );
        assert!(!set.all()[0].is_healthy(), "state of a kept");
        assert!(a.succeeded(Duration::from_millis(1), None, true));
        assert_eq!(set.counts(), (2, 2));
    }
}
