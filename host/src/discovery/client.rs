//! The node side of discovery: register, heartbeat, and feed `GET /peers` to a node.
//!
//! Against Tally's service the list is fetched only when a heartbeat answer shows a registry
//! tag ([`super::REGISTRY_HEADER`]) other than the one of the list last applied, and then with
//! `If-None-Match`; the heartbeat interval stretches to a third of the announced expiry
//! ([`super::TTL_HEADER`]). Against a service that sends neither (the reference), the client
//! heartbeats every [`DiscoveryClient::heartbeat_every`] and fetches the list every
//! [`DiscoveryClient::refresh_every`]. The choice is made again on every answer, so a service
//! replaced by another kind is followed.

use std::sync::Arc;
use std::time::Duration;
use tally_std::{Node, PeerSource};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

/// Deadline for establishing a connection to the discovery service.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Deadline for a whole request, connect to last byte.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// The largest `GET /peers` body read (10,000 entries of a 255-byte address fit).
const MAX_PEERS_BODY: usize = 8 << 20;
/// The default heartbeat interval: safe for the reference service, which drops a node unseen
/// for 5 s.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(2);
/// The default `/peers` refresh interval against a service that sends no registry tag.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(2);
/// The longest heartbeat interval an announced expiry stretches to: it bounds how late a node
/// learns of a newcomer from Tally's service.
/// 8 s: below the 10 s after which Tally's HTTP servers close an idle keep-alive connection
/// (`http::server`), so a heartbeat never races that close and reuses its connection.
pub const MAX_HEARTBEAT: Duration = Duration::from_secs(8);
/// Against a service that sends tags, the list is still asked for this often (a conditional
/// request: a 304 when nothing changed), so a peer the node's own table dropped while the
/// registry kept it comes back.
pub const SAFETY_REFRESH: Duration = Duration::from_secs(60);

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
    /// How often to heartbeat, and to retry registering while it fails (default
    /// [`DEFAULT_HEARTBEAT`], 2 s). When the service announces its expiry
    /// ([`super::TTL_HEADER`]) heartbeats are every `max(heartbeat_every, min(ttl / 3,`
    /// [`MAX_HEARTBEAT`]`))` instead.
    pub heartbeat_every: Duration,
    /// How often to fetch `/peers` from a service that sends no registry tag (default
    /// [`DEFAULT_REFRESH`], 2 s); a service that does is asked only when its tag changes.
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

/// What a successful registration or heartbeat answer said about the service (Tally
/// extension; a reference service says nothing).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Announce {
    /// The registry's tag ([`super::REGISTRY_HEADER`]).
    tag: Option<String>,
    /// The service's expiry ([`super::TTL_HEADER`]).
    ttl: Option<Duration>,
}

impl Announce {
    fn from_headers(headers: &reqwest::header::HeaderMap) -> Self {
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        Self {
            tag: text(super::REGISTRY_HEADER).map(str::to_string),
            ttl: text(super::TTL_HEADER).and_then(parse_ttl),
        }
    }
}

/// An expiry in seconds (`30`, `0.5`); `None` unless positive and finite.
fn parse_ttl(text: &str) -> Option<Duration> {
    let seconds: f64 = text.parse().ok()?;
    Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|d| !d.is_zero())
}

/// The heartbeat interval for a configured `every` and the service's announced expiry.
fn heartbeat_period(every: Duration, ttl: Option<Duration>) -> Duration {
    match ttl {
        Some(ttl) => every.max((ttl / 3).min(MAX_HEARTBEAT)),
        None => every,
    }
}

/// What the client knows of the service's peer list.
#[derive(Debug, Default)]
struct ListState {
    /// The tag of the list last applied (or confirmed by a 304), sent as `If-None-Match`.
    applied: Option<String>,
    /// The latest tag a registration or heartbeat answer announced; `None` when the service
    /// sends none, which means refreshing every `refresh_every`.
    announced: Option<String>,
}

impl ListState {
    /// True when the service announced a tag other than the applied one.
    fn changed(&self) -> bool {
        self.announced.is_some() && self.announced != self.applied
    }
}

/// A successful `GET /peers`.
#[derive(Debug)]
enum Fetched {
    /// 304: the list of the tag sent is still current.
    Unchanged { tag: Option<String> },
    /// 200: the list, and its `ETag` if any.
    List {
        tag: Option<String>,
        addrs: Vec<String>,
    },
}

/// Waits until `at`, or forever when there is none.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
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
    /// default intervals ([`DEFAULT_HEARTBEAT`], [`DEFAULT_REFRESH`]).
    pub fn new(base_url: impl Into<String>, advertise: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            advertise: advertise.into(),
            heartbeat_every: DEFAULT_HEARTBEAT,
            refresh_every: DEFAULT_REFRESH,
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

    /// Sets the `/peers` refresh interval used against a service that sends no registry tag.
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

    /// Runs until `shutdown` is cancelled: registers (retrying every `heartbeat_every` until it
    /// succeeds), then heartbeats and adds every address of `GET /peers` but its own to `node`
    /// as a [`PeerSource::Discovered`] peer — once after registering, then whenever a
    /// heartbeat answer announces a new registry tag, or every `refresh_every` from a service
    /// that announces none (see the [module docs](self)). Network and JSON errors are logged
    /// and retried; nothing here panics. Time is tokio's.
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
        let Some(announce) = self.register(&http, heartbeat_every, &shutdown).await else {
            return;
        };

        let mut list = ListState {
            applied: None,
            announced: announce.tag,
        };
        let mut period = heartbeat_period(heartbeat_every, announce.ttl);
        let mut heartbeats = Streak::default();
        let mut refreshes = Streak::default();
        let mut next_heartbeat = Instant::now() + period;
        let mut next_refresh = Instant::now();
        // Fetch once right after registering, whatever the service.
        let mut refresh_due = true;
        loop {
            if refresh_due || list.changed() {
                refresh_due = false;
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = self.refresh(&http, &node, &mut list, &mut refreshes) => {}
                }
                next_refresh = Instant::now() + refresh_every;
            }
            // A service without tags is polled; one with tags is asked again only rarely.
            let fallback = if list.announced.is_none() {
                next_refresh
            } else {
                next_refresh + SAFETY_REFRESH.saturating_sub(refresh_every)
            };
            let fallback = Some(fallback);
            // Each request is also abandoned on shutdown, so `run` ends promptly.
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep_until(next_heartbeat) => {
                    let started = Instant::now();
                    let answer = tokio::select! {
                        () = shutdown.cancelled() => return,
                        answer = self.heartbeat(&http, &mut heartbeats) => answer,
                    };
                    if let Some(announce) = answer {
                        period = heartbeat_period(heartbeat_every, announce.ttl);
                        list.announced = announce.tag;
                    }
                    next_heartbeat = started + period;
                }
                () = sleep_until_some(fallback) => refresh_due = true,
            }
        }
    }

    /// Registers, retrying every `every` until it works; `None` when `shutdown` came first.
    async fn register(
        &self,
        http: &reqwest::Client,
        every: Duration,
        shutdown: &CancellationToken,
    ) -> Option<Announce> {
        let mut registering = Streak::default();
        let mut retry = tokio::time::interval(every);
        retry.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return None,
                _ = retry.tick() => {}
            }
            let result = tokio::select! {
                () = shutdown.cancelled() => return None,
                result = self.post(http, "/register") => result,
            };
            match result {
                Ok(announce) => {
                    tracing::info!(
                        url = %self.base_url,
                        addr = %self.advertise,
                        failures = registering.failures,
                        tagged = announce.tag.is_some(),
                        "discovery: registered"
                    );
                    return Some(announce);
                }
                Err(e) => registering.failed("register", &e.to_string()),
            }
        }
    }

    /// One heartbeat; a server that refuses it (e.g. one that does not know us) gets a
    /// registration instead. Returns what the answer announced, `None` on failure.
    async fn heartbeat(&self, http: &reqwest::Client, streak: &mut Streak) -> Option<Announce> {
        let result = match self.post(http, "/heartbeat").await {
            Err(Failure::Status(status)) => {
                tracing::debug!(%status, "discovery: heartbeat refused; registering again");
                self.post(http, "/register").await
            }
            other => other,
        };
        match result {
            Ok(announce) => {
                streak.succeeded("heartbeat");
                Some(announce)
            }
            Err(e) => {
                streak.failed("heartbeat", &e.to_string());
                None
            }
        }
    }

    /// One `GET /peers` (conditional when a list was applied before); applies a new list to
    /// `node` and records its tag. A failure leaves `list` as it was, so it is retried.
    async fn refresh(
        &self,
        http: &reqwest::Client,
        node: &Node,
        list: &mut ListState,
        streak: &mut Streak,
    ) {
        match self.fetch_peers(http, list.applied.as_deref()).await {
            Ok(Fetched::Unchanged { tag }) => {
                streak.succeeded("peers");
                if tag.is_some() {
                    list.applied = tag;
                }
            }
            Ok(Fetched::List { tag, addrs }) => {
                streak.succeeded("peers");
                self.add_peers(node, &addrs);
                list.applied = tag.or_else(|| list.announced.clone());
            }
            Err(e) => streak.failed("peers", &e),
        }
    }

    async fn post(&self, http: &reqwest::Client, path: &str) -> Result<Announce, Failure> {
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
            Ok(Announce::from_headers(response.headers()))
        } else {
            Err(Failure::Status(status))
        }
    }

    /// `GET /peers`, with `If-None-Match: applied` when given.
    async fn fetch_peers(
        &self,
        http: &reqwest::Client,
        applied: Option<&str>,
    ) -> Result<Fetched, String> {
        let mut request = http.get(self.url("/peers"));
        if let Some(tag) = applied {
            request = request.header(reqwest::header::IF_NONE_MATCH, tag);
        }
        let mut response = request.send().await.map_err(|e| chain(&e))?;
        let status = response.status();
        let tag = response
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty());
        if status == reqwest::StatusCode::NOT_MODIFIED && applied.is_some() {
            return Ok(Fetched::Unchanged {
                tag: tag.or_else(|| applied.map(str::to_string)),
            });
        }
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
        let addrs = parse_peers(&body)?;
        Ok(Fetched::List { tag, addrs })
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
    fn announced_ttl_stretches_heartbeats_within_bounds() {
        let two = DEFAULT_HEARTBEAT;
        assert_eq!(heartbeat_period(two, None), two);
        assert_eq!(
            heartbeat_period(two, Some(Duration::from_secs(30))),
            Duration::from_secs(8)
        );
        assert_eq!(heartbeat_period(two, Some(Duration::from_secs(3))), two);
        assert_eq!(heartbeat_period(two, Some(Duration::MAX)), MAX_HEARTBEAT);
        assert_eq!(parse_ttl("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_ttl("0.6"), Some(Duration::from_millis(600)));
        for bad in ["", "0", "-1", "NaN", "inf", "1e400", "30s"] {
            assert_eq!(parse_ttl(bad), None, "{bad}");
        }
    }

    #[test]
    fn announcements_come_from_headers_and_need_not_be_there() {
        let mut headers = reqwest::header::HeaderMap::new();
        assert_eq!(Announce::from_headers(&headers), Announce::default());
        headers.insert(super::super::REGISTRY_HEADER, "\"5\"".parse().unwrap());
        headers.insert(super::super::TTL_HEADER, "bogus".parse().unwrap());
        let announce = Announce::from_headers(&headers);
        assert_eq!(announce.tag.as_deref(), Some("\"5\""));
        assert_eq!(announce.ttl, None);
        let mut list = ListState {
            applied: None,
            announced: announce.tag,
        };
        assert!(list.changed());
        list.applied = Some("\"5\"".into());
        assert!(!list.changed());
        list.announced = None;
        assert!(!list.changed(), "no tag: the fallback timer decides");
    }

    #[test]
    fn urls_get_a_scheme_and_lose_trailing_slashes() {
        let c = DiscoveryClient::new("127.0.0.1:8500/", "127.0.0.1:9000");
        assert_eq!(c.url("/peers"), "http://127.0.0.1:8500/peers");
        let c = DiscoveryClient::new("http://d.example:80", "127.0.0.1:9000");
        assert_eq!(c.url("/register"), "http://d.example:80/register");
    }
}
