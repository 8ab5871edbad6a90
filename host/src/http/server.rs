//! The HTTP/1 server under all three of Tally's HTTP services (node API, gateway, discovery):
//! serves an axum [`Router`] on a tokio [`TcpListener`] with
//!
//! - a **header deadline** on every request: hyper's `header_read_timeout`, started each
//!   time hyper begins reading a request head — on a new connection and again after every
//!   answer on a keep-alive one, so idle time before a request counts — and a connection
//!   whose head is not complete in time is closed without an answer;
//! - **connection caps** ([`caps`]): in all, and per client address; a connection over
//!   either is closed at once, before a byte is read;
//! - **graceful shutdown** on a [`CancellationToken`]: stop accepting, let each connection
//!   finish its request in flight (idle ones close at once), and after [`SHUTDOWN_GRACE`]
//!   drop whatever is left.
//!
//! Who owns what: this module owns the sockets (accept, one task per connection) and the
//! clocks (hyper's timer is tokio's, [`hyper_util::rt::TokioTimer`]; the grace period is a
//! tokio sleep). The router owns everything after a request head is parsed, including body
//! deadlines (the node API's `TimeoutLayer`). Each request carries the peer address as
//! axum's [`ConnectInfo<SocketAddr>`](axum::extract::ConnectInfo).

mod caps;

pub use caps::ConnectionCounters;

use axum::extract::ConnectInfo;
use axum::Router;
use caps::{Caps, Slot};
use hyper::body::Incoming;
use hyper::service::Service as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// The HTTP request deadline (10 s), as README's Limits table states it: each request's
/// headers must arrive within it on every server, and on the node API the body and answer
/// within it again (408). The one constant behind [`super::ApiOptions::request_timeout`] and
/// [`ServeLimits::header_timeout`].
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(10);

/// Default cap of open connections to one server (1024), whatever their client. Within a
/// process's usual 1024 descriptors once the node's own sockets are counted.
pub const MAX_CONNECTIONS: usize = 1024;

/// Default cap of open connections from one client address (256): the gateway's default
/// pool per node ([`crate::gateway::GatewayConfig::max_idle_per_node`]), so a gateway in
/// front of a node, one client address however busy, is never refused by it. Four addresses
/// can fill [`MAX_CONNECTIONS`], but a connection that sends no request is cut after the
/// header deadline, so holding them costs a steady stream of reconnections.
pub const MAX_CONNECTIONS_PER_CLIENT: usize = 256;

/// How long a shutting-down server waits for its connections to finish (10 s, the request
/// deadline: a request that started before shutdown may use its whole deadline).
pub const SHUTDOWN_GRACE: Duration = REQUEST_DEADLINE;

/// How a server bounds its clients. `ServeLimits::default()` gives the constants above.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServeLimits {
    /// Each request's headers must be complete within this, or the connection is closed
    /// (default [`REQUEST_DEADLINE`]).
    pub header_timeout: Duration,
    /// Open connections at most (default [`MAX_CONNECTIONS`]).
    pub max_connections: usize,
    /// Open connections from one client address at most (default
    /// [`MAX_CONNECTIONS_PER_CLIENT`]).
    pub max_connections_per_client: usize,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            header_timeout: REQUEST_DEADLINE,
            max_connections: MAX_CONNECTIONS,
            max_connections_per_client: MAX_CONNECTIONS_PER_CLIENT,
        }
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown` is cancelled, counting
/// refused and cut connections in `counters`; then shuts down gracefully (see the module
/// docs) and returns. Accept errors are logged and retried (after 1 s, unless the error
/// concerns only that connection), as `axum::serve` does, so this returns `Ok` on shutdown.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServeLimits,
    counters: Arc<ConnectionCounters>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let caps = Caps::new(limits.max_connections, limits.max_connections_per_client);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            Some(joined) = connections.join_next(), if !connections.is_empty() => {
                if let Err(e) = joined {
                    tracing::warn!(error = %e, "HTTP connection task failed");
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match caps.admit(peer.ip()) {
                    Ok(slot) => {
                        let connection = Connection {
                            peer,
                            router: router.clone(),
                            header_timeout: limits.header_timeout,
                            counters: Arc::clone(&counters),
                            shutdown: shutdown.clone(),
                            _slot: slot,
                        };
                        connections.spawn(connection.run(stream));
                    }
                    Err(why) => {
                        why.count(&counters);
                        tracing::debug!(%peer, ?why, "HTTP connection refused: over the cap");
                        drop(stream);
                    }
                },
                Err(e) => accept_failed(e, &shutdown).await,
            },
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = caps.total(),
            grace = ?SHUTDOWN_GRACE,
            "HTTP connections still open after the shutdown grace; closing them"
        );
        connections.shutdown().await;
    }
    Ok(())
}

/// After a failed accept: nothing for errors of that connection only; otherwise (such as
/// out of file descriptors) log and wait 1 s, or until shutdown.
async fn accept_failed(e: std::io::Error, shutdown: &CancellationToken) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "HTTP accept failed; retrying in 1 s");
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = tokio::time::sleep(Duration::from_secs(1)) => {}
    }
}

/// One admitted connection, holding its slot until it ends.
struct Connection {
    peer: SocketAddr,
    router: Router,
    header_timeout: Duration,
    counters: Arc<ConnectionCounters>,
    shutdown: CancellationToken,
    _slot: Slot,
}

impl Connection {
    async fn run(self, stream: TcpStream) {
        let peer = self.peer;
        let router = TowerToHyperService::new(self.router);
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            router.call(request)
        });
        let mut http1 = hyper::server::conn::http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_timeout);
        let connection = http1.serve_connection(TokioIo::new(stream), service);
        let mut connection = std::pin::pin!(connection);
        let ended = tokio::select! {
            ended = connection.as_mut() => ended,
            () = self.shutdown.cancelled() => {
                connection.as_mut().graceful_shutdown();
                connection.as_mut().await
            }
        };
        if let Err(e) = ended {
            if e.is_timeout() {
                self.counters
                    .header_timeouts
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%peer, "HTTP connection cut: headers not complete in time");
            } else {
                tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
            }
        }
    }
}
