//! The node side of discovery: register, heartbeat, and feed `GET /peers` to a node.

use std::sync::Arc;
use std::time::Duration;
use tally_std::{Node, PeerSource};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

/// Deadline for establishing a connection to the discovery service.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Deadline for a whole request, connect to last byte.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// The largest `GET /peers` body read (10,000 entries of a 255-byte address fit).
const MAX_PEERS_BODY: usize = 8 << 20;

/// Keeps a node registered with a discovery service and its peer table fed from it.
///
/// ```no_run
/// # async fn demo(node: std::sync::Arc<tally_std::Node>) {
/// let shutdown = tokio_util::sync::CancellationToken::new();
/// let client = tally::discovery::DiscoveryClient::new(
///     "http://127.0.0.1:8500",
///     node.local_addr().to_string(),
/// );
/// tokio::spawn(client.run(node, shutdown.clone()));
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoveryClient {
    /// Where the service is, e.g. `http://127.0.0.1:8500` (`http://` is added when no scheme
    /// is given; a trailing `/` is ignored).
    pub base_url: String,
    /// The node's gossip address as peers should reach it (`host:port`); registered, and
    /// skipped when it comes back in `/peers`.
    pub advertise: String,
    /// How often to heartbeat, and to retry registering while it fails (default 1 s).
    pub heartbeat_every: Duration,
    /// How often to fetch `/peers` (default 2 s).
    pub refresh_every: Duration,
    /// The node's HTTP API base URL (`http://host:port`), registered beside the gossip address
    /// as `"http"` so a gateway can find the node's API (Tally extension; reference servers
    /// ignore it). `None` (the default) sends the reference's body exactly.
    pub http_url: Option<String>,
}

/// Failures of one kind of request in a row: the first is a warning, the rest are debug lines,
/// and the first success after them is an info line.
#[derive(Debug, Default)]
struct Streak {
    failures: u64,
}

impl Streak {
    fn failed(&mut self, what: &str, error: &str) {
        self.failures = self.failures.saturating_add(1);
        if self.failures == 1 {
            tracing::warn!(what, %error, "discovery request failed; retrying");
        } else {
            tracing::debug!(what, %error, failures = self.failures, "discovery request failed");
        }
    }

    fn succeeded(&mut self, what: &str) {
        if self.failures > 0 {
            tracing::info!(
                what,
                failures = self.failures,
                "discovery request succeeded again"
            );
        }
        self.failures = 0;
    }
}

/// What a failed request returned.
enum Failure {
    /// No answer: connect, timeout, or body read error.
    Transport(String),
    /// An answer with a non-success status.
    Status(reqwest::StatusCode),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Transport(e) => f.write_str(e),
            Failure::Status(s) => write!(f, "HTTP {s}"),
        }
    }
}

impl DiscoveryClient {
    /// A client of the service at `base_url` for a node reachable at `advertise`, with the
    /// default intervals (heartbeat 1 s, refresh 2 s).
    pub fn new(base_url: impl Into<String>, advertise: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            advertise: advertise.into(),
            heartbeat_every: Duration::from_secs(1),
            refresh_every: Duration::from_secs(2),
            http_url: None,
        }
    }

    /// Registers `url` (e.g. `http://127.0.0.1:8000`, the node's HTTP API base URL) with the
    /// gossip address, so `tally gateway --discovery` finds the node's API.
    ///
    /// ```
    /// let client = tally::discovery::DiscoveryClient::new("http://127.0.0.1:7000", "127.0.0.1:9000")
    ///     .http_url("http://127.0.0.1:8000");
    /// assert_eq!(client.http_url.as_deref(), Some("http://127.0.0.1:8000"));
    /// ```
    pub fn http_url(mut self, url: impl Into<String>) -> Self {
        self.http_url = Some(url.into());
        self
    }

    /// Sets the heartbeat (and registration retry) interval.
    pub fn heartbeat_every(mut self, every: Duration) -> Self {
        self.heartbeat_every = every;
        self
    }

    /// Sets the `/peers` refresh interval.
    pub fn refresh_every(mut self, every: Duration) -> Self {
        self.refresh_every = every;
        self
    }

    fn url(&self, path: &str) -> String {
        let base = self.base_url.trim_end_matches('/');
        if base.contains("://") {
            format!("{base}{path}")
        } else {
            format!("http://{base}{path}")
        }
    }

    /// Runs until `shutdown` is cancelled: registers (retrying every heartbeat interval until it
    /// succeeds), then heartbeats every `heartbeat_every` and adds every address of
    /// `GET /peers` but its own to `node` as a [`PeerSource::Discovered`] peer every
    /// `refresh_every`. Network and JSON errors are logged and retried; nothing here panics.
    pub async fn run(self, node: Arc<Node>, shutdown: CancellationToken) {
        let http = match reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
        {
            Ok(http) => http,
            Err(e) => {
                tracing::error!(error = %e, "discovery: cannot build an HTTP client; not running");
                return;
            }
        };
        let heartbeat_every = self.heartbeat_every.max(Duration::from_millis(1));
        let refresh_every = self.refresh_every.max(Duration::from_millis(1));

        // Register, retrying until it works.
        let mut registering = Streak::default();
        let mut retry = tokio::time::interval(heartbeat_every);
        retry.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = retry.tick() => {}
            }
            let result = tokio::select! {
                () = shutdown.cancelled() => return,
                result = self.post(&http, "/register") => result,
            };
            match result {
                Ok(()) => {
                    tracing::info!(
                        url = %self.base_url,
                        addr = %self.advertise,
                        failures = registering.failures,
                        "discovery: registered"
                    );
                    break;
                }
                Err(e) => registering.failed("register", &e.to_string()),
            }
        }

        let mut heartbeats = Streak::default();
        let mut refreshes = Streak::default();
        let mut heartbeat = tokio::time::interval(heartbeat_every);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut refresh = tokio::time::interval(refresh_every);
        refresh.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // Both intervals tick at once: heartbeat now is harmless, refresh now finds peers early.
        loop {
            // Each request is also abandoned on shutdown, so `run` ends promptly.
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = heartbeat.tick() => tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = self.heartbeat(&http, &mut heartbeats) => {}
                },
                _ = refresh.tick() => {
                    let result = tokio::select! {
                        () = shutdown.cancelled() => return,
                        result = self.fetch_peers(&http) => result,
                    };
                    match result {
                        Ok(addrs) => {
                            refreshes.succeeded("peers");
                            self.add_peers(&node, &addrs);
                        }
                        Err(e) => refreshes.failed("peers", &e),
                    }
                }
            }
        }
    }

    /// One heartbeat; a server that refuses it (e.g. one that does not know us) gets a
    /// registration instead.
    async fn heartbeat(&self, http: &reqwest::Client, streak: &mut Streak) {
        let result = match self.post(http, "/heartbeat").await {
            Err(Failure::Status(status)) => {
                tracing::debug!(%status, "discovery: heartbeat refused; registering again");
                self.post(http, "/register").await
            }
            other => other,
        };
        match result {
            Ok(()) => streak.succeeded("heartbeat"),
            Err(e) => streak.failed("heartbeat", &e.to_string()),
        }
    }

    async fn post(&self, http: &reqwest::Client, path: &str) -> Result<(), Failure> {
        let body = match &self.http_url {
            Some(http) => serde_json::json!({ "addr": self.advertise, "http": http }),
            None => serde_json::json!({ "addr": self.advertise }),
        };
        let response = http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .map_err(|e| Failure::Transport(chain(&e)))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(Failure::Status(status))
        }
    }

    async fn fetch_peers(&self, http: &reqwest::Client) -> Result<Vec<String>, String> {
        let mut response = http
            .get(self.url("/peers"))
            .send()
            .await
            .map_err(|e| chain(&e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("HTTP {status}"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| chain(&e))? {
            if body.len().saturating_add(chunk.len()) > MAX_PEERS_BODY {
                return Err(format!("peer list larger than {MAX_PEERS_BODY} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        parse_peers(&body)
    }

    fn add_peers(&self, node: &Node, addrs: &[String]) {
        for addr in addrs {
            if *addr == self.advertise {
                continue;
            }
            if !tally_core::frame::is_gossip_address(addr) {
                tracing::debug!(addr = %addr, "discovery: skipping an address that is not host:port");
                continue;
            }
            if let Err(e) = node.add_peer(addr, PeerSource::Discovered) {
                tracing::debug!(addr = %addr, error = %e, "discovery: peer not added");
            }
        }
    }
}

/// An error and its sources, `outer: inner: …` (reqwest's own message hides the cause, such
/// as "connection refused").
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The `addr` strings of a `GET /peers` answer: a JSON array of objects. Unknown fields are
/// ignored; an element that is not an object with a string `addr` is skipped (debug log); a
/// body that is not a JSON array is an error.
fn parse_peers(body: &[u8]) -> Result<Vec<String>, String> {
    let entries: Vec<serde_json::Value> =
        serde_json::from_slice(body).map_err(|e| format!("invalid peer list: {e}"))?;
    Ok(entries
        .into_iter()
        .filter_map(|entry| match entry.get("addr").and_then(|a| a.as_str()) {
            Some(addr) => Some(addr.to_string()),
            None => {
                tracing::debug!(%entry, "discovery: skipping a peer entry without a string addr");
                None
            }
        })
        .collect())
}

/// The `http` URLs of a `GET /peers` answer (Tally's extension), sorted and deduplicated:
/// entries without a string `http` that [`super::is_http_url`] accepts are skipped (reference
/// nodes register none); a body that is not a JSON array is an error.
pub fn http_urls(body: &[u8]) -> Result<Vec<String>, String> {
    let entries: Vec<serde_json::Value> =
        serde_json::from_slice(body).map_err(|e| format!("invalid peer list: {e}"))?;
    let mut urls: Vec<String> = entries
        .iter()
        .filter_map(|entry| entry.get("http").and_then(|h| h.as_str()))
        .filter(|url| super::is_http_url(url))
        .map(|url| url.trim_end_matches('/').to_string())
        .collect();
    urls.sort();
    urls.dedup();
    Ok(urls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse_ignores_unknown_fields_and_skips_bad_entries() {
        let body = br#"[
            {"addr":"127.0.0.1:9000","LastSeen":"0001-01-01T00:00:00Z"},
            {"addr":5},
            "127.0.0.1:9009",
            {"LastSeen":"x"},
            {"addr":"not-an-address","extra":{"nested":true}}
        ]"#;
        assert_eq!(
            parse_peers(body).unwrap(),
            ["127.0.0.1:9000", "not-an-address"]
        );
        assert!(parse_peers(b"{}").is_err());
        assert!(parse_peers(b"not json").is_err());
        assert_eq!(parse_peers(b"[]").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn http_urls_skip_entries_without_one() {
        let body = br#"[
            {"addr":"127.0.0.1:9000","LastSeen":"x","http":"http://127.0.0.1:8000/"},
            {"addr":"127.0.0.1:9001","LastSeen":"x"},
            {"addr":"127.0.0.1:9002","http":5},
            {"addr":"127.0.0.1:9003","http":"gopher://x"},
            {"addr":"127.0.0.1:9004","http":"http://127.0.0.1:8000"}
        ]"#;
        assert_eq!(http_urls(body).unwrap(), ["http://127.0.0.1:8000"]);
        assert!(http_urls(b"{}").is_err());
    }

    #[test]
    fn urls_get_a_scheme_and_lose_trailing_slashes() {
        let c = DiscoveryClient::new("127.0.0.1:8500/", "127.0.0.1:9000");
        assert_eq!(c.url("/peers"), "http://127.0.0.1:8500/peers");
        let c = DiscoveryClient::new("http://d.example:80", "127.0.0.1:9000");
        assert_eq!(c.url("/register"), "http://d.example:80/register");
    }
}
