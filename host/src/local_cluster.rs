//! [`Cluster`]: a discovery service, N nodes and a gateway with the dashboard, on free loopback
//! ports, in one process.

use crate::discovery::{self, DiscoveryConfig};
use crate::service::{NodeOptions, NodeService};
use anyhow::Context;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What to start.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Number of nodes.
    pub nodes: usize,
    /// Their gossip round interval.
    pub sync_interval: Duration,
    /// Parent of the nodes' data directories (`node-0`, `node-1`, …); `None`: not durable.
    pub data_dir: Option<std::path::PathBuf>,
    /// Start the gateway (it polls every node: a benchmark of idle traffic goes without).
    pub gateway: bool,
    /// Push changes eagerly (off only to measure what that costs).
    pub eager: bool,
    /// Largest frame sent as a datagram between the nodes (0: TCP only).
    pub max_datagram: u16,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            nodes: 3,
            sync_interval: Duration::from_secs(2),
            data_dir: None,
            gateway: true,
            eager: true,
            max_datagram: tally_core::Config::DATAGRAM,
        }
    }
}

/// A running local cluster.
pub struct Cluster {
    discovery_addr: SocketAddr,
    discovery_stop: CancellationToken,
    discovery_task: JoinHandle<std::io::Result<()>>,
    gateway: Option<Gateway>,
    nodes: Vec<NodeService>,
}

struct Gateway {
    addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

impl Cluster {
    /// Starts discovery, then the nodes, each registered with it.
    pub async fn start(opts: ClusterOptions) -> anyhow::Result<Cluster> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .context("binding the discovery service")?;
        let discovery_addr = listener.local_addr()?;
        let discovery_stop = CancellationToken::new();
        let discovery_task = tokio::spawn(discovery::serve(
            listener,
            DiscoveryConfig::default(),
            discovery_stop.clone(),
        ));
        let mut nodes = Vec::with_capacity(opts.nodes);
        for i in 0..opts.nodes {
            let service = NodeService::start(NodeOptions {
                discovery: Some(format!("http://{discovery_addr}")),
                sync_interval: opts.sync_interval,
                data_dir: opts.data_dir.as_ref().map(|d| d.join(format!("node-{i}"))),
                eager: opts.eager,
                max_datagram: opts.max_datagram,
                ..NodeOptions::loopback()
            })
            .await?;
            nodes.push(service);
        }
        let gateway = if opts.gateway {
            Some(start_gateway(&nodes).await?)
        } else {
            None
        };
        Ok(Cluster {
            discovery_addr,
            discovery_stop,
            discovery_task,
            gateway,
            nodes,
        })
    }

    /// The discovery service's URL.
    pub fn discovery_url(&self) -> String {
        format!("http://{}", self.discovery_addr)
    }

    /// The gateway's URL (its dashboard is at `/`), when it runs.
    pub fn gateway_url(&self) -> Option<String> {
        self.gateway.as_ref().map(|g| format!("http://{}", g.addr))
    }

    /// The nodes.
    pub fn nodes(&self) -> &[NodeService] {
        &self.nodes
    }

    /// Waits until every node knows every other one (discovery introduced them all), for at
    /// most `limit`.
    pub async fn meshed(&self, limit: Duration) -> anyhow::Result<()> {
        let deadline = std::time::Instant::now() + limit;
        let n = self.nodes.len();
        while self.nodes.iter().any(|s| s.node.peers().len() + 1 < n) {
            if std::time::Instant::now() > deadline {
                anyhow::bail!("the nodes did not find each other within {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Stops the gateway, every node, then discovery.
    pub async fn stop(self) {
        if let Some(g) = self.gateway {
            g.stop.cancel();
            let _ = g.task.await;
        }
        for n in self.nodes {
            n.stop().await;
        }
        self.discovery_stop.cancel();
        let _ = self.discovery_task.await;
    }
}

async fn start_gateway(nodes: &[NodeService]) -> anyhow::Result<Gateway> {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .context("binding the gateway")?;
    let addr = listener.local_addr()?;
    let stop = CancellationToken::new();
    let urls = nodes.iter().map(NodeService::url).collect();
    let task = tokio::spawn(crate::gateway::serve(
        listener,
        crate::gateway::GatewayConfig::new(crate::gateway::NodeSource::Static(urls)),
        stop.clone(),
    ));
    Ok(Gateway { addr, stop, task })
}
