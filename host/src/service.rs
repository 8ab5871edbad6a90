//! [`NodeService`]: one complete host node — the gossip node (`tally-std`), its HTTP API and,
//! optionally, its discovery client — as `tally node` and `tally cluster` run it.

use crate::discovery::DiscoveryClient;
use crate::durable;
use crate::http;
use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tally_core::SnapshotPolicy;
use tally_std::{Node, NodeConfig};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What a node service needs.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// Gossip listen address.
    pub listen: SocketAddr,
    /// HTTP API listen address.
    pub http: SocketAddr,
    /// Node id (default: the gossip address).
    pub id: Option<String>,
    /// Static peers.
    pub peers: Vec<String>,
    /// Discovery service base URL.
    pub discovery: Option<String>,
    /// DNS seeds, resolved periodically into peers.
    pub dns: Option<crate::discovery::dns::DnsSeeds>,
    /// Announce the node and find peers by mDNS/DNS-SD.
    pub mdns: bool,
    /// Heartbeat interval towards the discovery service (stretched by the expiry a Tally
    /// service announces).
    pub discovery_heartbeat: Duration,
    /// Data directory: durable writes, recovery, identity.
    pub data_dir: Option<std::path::PathBuf>,
    /// Sync interval.
    pub sync_interval: Duration,
    /// Peers per sync round.
    pub fanout: u8,
    /// Cluster key: authenticated frames (spec §8).
    pub cluster_key: Option<tally_core::ClusterKey>,
    /// HTTP API protection.
    pub api: http::ApiOptions,
    /// When writes are fsynced (with a data directory).
    pub fsync: crate::wal::FsyncPolicy,
    /// How often the state is snapshotted into the log (with a data directory).
    pub snapshot_every: Duration,
    /// Push changes to peers at once (`docs/EXTENSIONS.md` §4); off only to measure it.
    pub eager: bool,
    /// Largest frame sent as a UDP datagram to Tally peers that read them
    /// (`docs/EXTENSIONS.md` §5); 0: TCP only.
    pub max_datagram: u16,
    /// SWIM membership on the datagram socket (`docs/EXTENSIONS.md` §7; default on).
    pub membership: bool,
}

impl NodeOptions {
    /// Loopback defaults on free ports.
    pub fn loopback() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            http: SocketAddr::from(([127, 0, 0, 1], 0)),
            id: None,
            peers: Vec::new(),
            discovery: None,
            dns: None,
            mdns: false,
            discovery_heartbeat: crate::discovery::client::DEFAULT_HEARTBEAT,
            data_dir: None,
            sync_interval: Duration::from_secs(2),
            fanout: 2,
            cluster_key: None,
            api: http::ApiOptions::default(),
            fsync: crate::wal::FsyncPolicy::Always,
            snapshot_every: Duration::from_secs(5),
            eager: true,
            max_datagram: tally_core::Config::DATAGRAM,
            membership: true,
        }
    }
}

/// A running node service.
pub struct NodeService {
    /// The gossip node.
    pub node: Arc<Node>,
    /// Where the HTTP API listens.
    pub http_addr: SocketAddr,
    /// The API's guard (its counters of refused requests).
    pub guard: Arc<http::Guard>,
    /// The write-ahead log, with a data directory.
    pub wal: Option<Arc<crate::wal::Wal>>,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl NodeService {
    /// Starts the gossip node, the HTTP API and the discovery client (if any).
    pub async fn start(opts: NodeOptions) -> anyhow::Result<NodeService> {
        let mut config = NodeConfig::new(opts.listen)
            .sync_interval(opts.sync_interval)
            .peers(opts.peers.iter().cloned());
        config.name = opts.id.clone();
        config.snapshots = SnapshotPolicy {
            interval: tally_core::Duration::from_millis(
                u64::try_from(opts.snapshot_every.as_millis()).unwrap_or(u64::MAX),
            ),
            after_changes: 0,
            merges_only: false,
        };
        // The log first: a data directory that cannot be used is an error before anything runs.
        let telemetry = crate::telemetry::Telemetry::new();
        let observer = Arc::new(http::WalMetrics(telemetry.clone()));
        let wal = match &opts.data_dir {
            Some(dir) => {
                let (wal, recovered) = durable::open(dir, opts.fsync, observer)?;
                config.resume = durable::resumable_identity(dir, &recovered)?;
                config.restore = recovered.entries;
                config.restore_named = recovered.named;
                config.journal = Some(Arc::new(durable::WalJournal::new(Arc::clone(&wal), dir)));
                Some(wal)
            }
            None => {
                tracing::warn!("no --data-dir: the counter is not durable");
                None
            }
        };
        config.engine.fanout = opts.fanout;
        config.engine.eager = opts.eager;
        config.max_datagram = opts.max_datagram;
        config.membership = opts.membership;
        config.engine.cluster_key = opts.cluster_key;
        match &opts.cluster_key {
            Some(_) => tracing::info!(
                "cluster key set: every frame is authenticated (HMAC-SHA256); nodes without the key cannot join"
            ),
            None => tracing::info!(
                "no cluster key: frames are unauthenticated (reference-compatible); anyone who reaches the gossip port can change the counter"
            ),
        }
        let node = Node::start(config).context("starting the gossip node")?;
        let node = Arc::new(node);
        let shutdown = CancellationToken::new();
        let listener = tokio::net::TcpListener::bind(opts.http)
            .await
            .with_context(|| format!("binding the HTTP API on {}", opts.http))?;
        let http_addr = listener.local_addr()?;
        let mut tasks = Vec::new();
        let guard = http::Guard::new(opts.api.clone());
        let writes = durable::Writes::new(Arc::clone(&node));
        tasks.push(telemetry.spawn_upkeep(shutdown.clone()));
        let router = http::router(Arc::new(http::NodeApi {
            node: Arc::clone(&node),
            writes,
            wal: wal.clone(),
            guard: Arc::clone(&guard),
            telemetry,
        }));
        let (token, served) = (shutdown.clone(), Arc::clone(&guard));
        tasks.push(tokio::spawn(async move {
            if let Err(e) = http::serve(listener, router, served, token).await {
                tracing::error!(error = %e, "HTTP API stopped");
            }
        }));
        if let Some(url) = &opts.discovery {
            let client = DiscoveryClient::new(url.clone(), node.local_addr().to_string())
                .http_url(format!("http://{http_addr}"))
                .heartbeat_every(opts.discovery_heartbeat);
            let (node, token) = (Arc::clone(&node), shutdown.clone());
            tasks.push(tokio::spawn(client.run(node, token)));
        }
        if let Some(seeds) = opts.dns.clone() {
            let (node, token) = (Arc::clone(&node), shutdown.clone());
            let advertise = node.local_addr().to_string();
            tasks.push(tokio::spawn(seeds.run(node, advertise, token)));
        }
        if opts.mdns {
            let (node, token) = (Arc::clone(&node), shutdown.clone());
            let advertise = node.local_addr();
            tasks.push(tokio::spawn(crate::discovery::mdns::run(
                node, advertise, token,
            )));
        }
        tracing::info!(id = %node.id(), gossip = %node.local_addr(), http = %http_addr, "node ready");
        Ok(NodeService {
            node,
            http_addr,
            guard,
            wal,
            shutdown,
            tasks,
        })
    }

    /// The API's base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    /// Stops the HTTP API, the discovery client and the gossip node.
    pub async fn stop(self) {
        self.shutdown.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
        let node = self.node;
        // Joining threads blocks: do it off the async workers. The node snapshots its state
        // into the log before it stops.
        let _ = tokio::task::spawn_blocking(move || node.shutdown()).await;
    }
}
