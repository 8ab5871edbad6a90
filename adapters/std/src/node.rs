//! [`Node`]: a running Tally node on std TCP — engine, listener, senders and driver threads.

use crate::config::NodeConfig;
use crate::listener;
use crate::sender::{Outgoing, Senders};
use crate::shared::{AdapterStats, HostEngine, Shared};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant as StdInstant};
use tally_core::{CounterError, NodeId, PeerSource, PeerState, Stats};

/// Why a node could not start or an operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// Binding or spawning failed.
    #[error("cannot start node: {0}")]
    Io(#[from] std::io::Error),
    /// The id or advertised address is not valid.
    #[error("invalid node id or address {0:?}: {1}")]
    BadId(String, String),
    /// A static peer address is not `host:port`.
    #[error("invalid peer address {0:?}")]
    BadPeer(String),
    /// The local total would overflow `u64`.
    #[error("the counter would overflow")]
    Overflow,
    /// The node is shutting down.
    #[error("node is shut down")]
    Shutdown,
}

/// One peer as seen by a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    /// Gossip address.
    pub addr: String,
    /// Alive or down.
    pub state: PeerState,
    /// Static, discovered, or a sender of valid frames.
    pub source: PeerSource,
    /// Consecutive send failures.
    pub fails: u8,
    /// Milliseconds since a valid frame came from it, if one ever did.
    pub last_heard_ms_ago: Option<u64>,
}

/// One counter entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryInfo {
    /// Node id.
    pub id: String,
    /// Its increments.
    pub inc: u64,
    /// Its decrements.
    pub dec: u64,
}

/// A running node. Dropping it shuts it down.
///
/// ```no_run
/// # fn main() -> Result<(), tally_std::NodeError> {
/// let config = tally_std::NodeConfig::new("127.0.0.1:9000".parse().unwrap())
///     .peers(["127.0.0.1:9001"]);
/// let node = tally_std::Node::start(config)?;
/// node.increment(1)?;
/// println!("{}", node.value());
/// # Ok(()) }
/// ```
pub struct Node {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    threads: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl Node {
    /// Binds the gossip port, adds the static peers and starts the threads.
    pub fn start(config: NodeConfig) -> Result<Node, NodeError> {
        let listener = TcpListener::bind(config.listen)?;
        let local_addr = listener.local_addr()?;
        let advertise = config
            .advertise
            .clone()
            .unwrap_or_else(|| local_addr.to_string());
        let base = config.id.clone().unwrap_or_else(|| advertise.clone());
        let id = match &config.incarnation {
            Some(inc) => format!("{base}#{inc}"),
            None => base,
        };
        let bad =
            |s: &str, e: &dyn std::fmt::Display| NodeError::BadId(s.to_string(), e.to_string());
        let id_ = NodeId::new(&id).map_err(|e| bad(&id, &e))?;
        if !tally_core::frame::is_gossip_address(&advertise) {
            return Err(bad(&advertise, &"not host:port"));
        }
        let listen_ = NodeId::new(&advertise).map_err(|e| bad(&advertise, &e))?;
        let origin = StdInstant::now();
        let now = tally_core::Instant::ZERO;
        let mut engine = HostEngine::new(id_, listen_, config.engine, now)
            .map_err(|_| NodeError::BadId(id.clone(), "no room".into()))?;
        for p in &config.peers {
            engine
                .add_peer(p, PeerSource::Static, now)
                .map_err(|_| NodeError::BadPeer(p.clone()))?;
        }
        let shared = Arc::new(Shared::new(engine, origin));
        let mut threads = listener::spawn(
            listener,
            Arc::clone(&shared),
            config.workers,
            config.backlog,
            config.read_timeout,
        )?;
        let (senders, send_threads) = Senders::spawn(
            &shared,
            config.senders,
            config.send_queue,
            config.connect_timeout,
        )?;
        threads.extend(send_threads);
        let s = Arc::clone(&shared);
        threads.push(
            std::thread::Builder::new()
                .name("tally-driver".into())
                .spawn(move || drive(&s, &senders))?,
        );
        tracing::info!(%id, addr = %advertise, peers = config.peers.len(), "node started");
        Ok(Node {
            shared,
            local_addr,
            threads: std::sync::Mutex::new(threads),
        })
    }

    /// The bound gossip address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The node id.
    pub fn id(&self) -> String {
        self.shared.engine().id().to_string()
    }

    /// Adds `by` to this node's increments; returns the new value.
    pub fn increment(&self, by: u64) -> Result<i128, NodeError> {
        self.update(|e| e.increment(by))
    }

    /// Adds `by` to this node's decrements; returns the new value.
    pub fn decrement(&self, by: u64) -> Result<i128, NodeError> {
        self.update(|e| e.decrement(by))
    }

    fn update(
        &self,
        op: impl FnOnce(&mut HostEngine) -> Result<u64, CounterError>,
    ) -> Result<i128, NodeError> {
        if self.shared.is_shutting_down() {
            return Err(NodeError::Shutdown);
        }
        let mut e = self.shared.engine();
        op(&mut e).map_err(|_| NodeError::Overflow)?;
        Ok(e.value())
    }

    /// The cluster value as this node knows it.
    pub fn value(&self) -> i128 {
        self.shared.engine().value()
    }

    /// This node's own (inc, dec) totals.
    pub fn local(&self) -> (u64, u64) {
        let e = self.shared.engine().counter().local_entry();
        (e.inc, e.dec)
    }

    /// Every non-zero entry, sorted by id.
    pub fn state(&self) -> Vec<EntryInfo> {
        self.shared
            .engine()
            .counter()
            .entries()
            .iter()
            .filter(|e| !e.is_zero())
            .map(|e| EntryInfo {
                id: e.id.to_string(),
                inc: e.inc,
                dec: e.dec,
            })
            .collect()
    }

    /// The peer table.
    pub fn peers(&self) -> Vec<PeerInfo> {
        let now = self.shared.now();
        self.shared
            .engine()
            .peers()
            .iter()
            .map(|p| PeerInfo {
                addr: p.addr.to_string(),
                state: p.state(),
                source: p.source,
                fails: p.fails,
                last_heard_ms_ago: p.last_heard.map(|t| (now - t).as_millis()),
            })
            .collect()
    }

    /// Adds a peer (e.g. from discovery). Returns true when it was new.
    pub fn add_peer(&self, addr: &str, source: PeerSource) -> Result<bool, NodeError> {
        let now = self.shared.now();
        let added = self
            .shared
            .engine()
            .add_peer(addr, source, now)
            .map_err(|_| NodeError::BadPeer(addr.to_string()))?;
        if added {
            tracing::info!(peer = addr, ?source, "peer added");
        }
        Ok(added)
    }

    /// Removes a peer.
    pub fn remove_peer(&self, addr: &str) -> bool {
        self.shared.engine().remove_peer(addr)
    }

    /// What the engine has done.
    pub fn stats(&self) -> Stats {
        self.shared.engine().stats().clone()
    }

    /// What the adapter has done.
    pub fn adapter_stats(&self) -> AdapterStats {
        self.shared.counters.snapshot()
    }

    /// Fault injection for tests: an isolated node drops every incoming connection and fails
    /// every send, as if its network were cut.
    pub fn set_isolated(&self, isolated: bool) {
        self.shared.isolated.store(isolated, Ordering::Relaxed);
    }

    /// Runs `f` on the engine under its lock (advanced use: persistence, metrics).
    pub fn with_engine<R>(&self, f: impl FnOnce(&mut HostEngine) -> R) -> R {
        f(&mut self.shared.engine())
    }

    /// Stops every thread and closes the port; later operations fail with `Shutdown`.
    /// Blocks until the threads have finished (at most about one read timeout).
    pub fn shutdown(&self) {
        if self.shared.shutdown.swap(true, Ordering::AcqRel) {
            return;
        }
        self.shared.kick();
        // Unblock the accept loop.
        let _ = TcpStream::connect_timeout(&self.local_addr, Duration::from_millis(200));
        let threads: Vec<_> = self
            .threads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .collect();
        for t in threads {
            let _ = t.join();
        }
        tracing::info!(addr = %self.local_addr, "node stopped");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The driver: runs due timers, drains transmits to the senders, sleeps until the next timer
/// or a kick.
fn drive(shared: &Shared, senders: &Senders) {
    let mut rng = SmallRng::from_os_rng();
    let mut buf = vec![0u8; (1 << 20) + 256];
    while !shared.is_shutting_down() {
        let mut out = Vec::new();
        let next = {
            let mut engine = shared.engine();
            let now = shared.now();
            if engine.poll_timeout().is_some_and(|t| t <= now) {
                engine.handle_timeout(now, &mut rng);
            }
            while let Some(t) = engine.poll_transmit(now, &mut buf) {
                out.push(Outgoing {
                    to: t.to.to_string(),
                    payload: buf.get(..t.len).unwrap_or_default().to_vec(),
                });
            }
            engine.poll_timeout()
        };
        for o in out {
            senders.send(o, shared);
        }
        let deadline = next
            .map(|t| shared.to_std(t))
            .unwrap_or_else(|| StdInstant::now() + Duration::from_secs(1));
        shared.wait(deadline);
    }
}
