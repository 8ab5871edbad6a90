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
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            nodes: 3,
            sync_interval: Duration::from_secs(2),
            data_dir: None,
        }
    }
}

/// A running local cluster.
pub struct Cluster {
    discovery_addr: SocketAddr,
    discovery_stop: CancellationToken,
    discovery_task: JoinHandle<std::io::Result<()>>,
    gateway_addr: SocketAddr,
    gateway_stop: CancellationToken,
    gateway_task: JoinHandle<std::io::Result<()>>,
    nodes: Vec<NodeService>,
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
                ..NodeOptions::loopback()
            })
            .await?;
            nodes.push(service);
        }
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .context("binding the gateway")?;
        let gateway_addr = listener.local_addr()?;
        let gateway_stop = CancellationToken::new();
        let urls = nodes.iter().map(NodeService::url).collect();
        let gateway_task = tokio::spawn(crate::gateway::serve(
            listener,
            crate::gateway::GatewayConfig::new(crate::gateway::NodeSource::Static(urls)),
            gateway_stop.clone(),
        ));
        Ok(Cluster {
            discovery_addr,
            discovery_stop,
            discovery_task,
            gateway_addr,
            gateway_stop,
            gateway_task,
            nodes,
        })
    }

    /// The discovery service's URL.
    pub fn discovery_url(&self) -> String {
        format!("http://{}", self.discovery_addr)
    }

    /// The gateway's URL (its dashboard is at `/`).
    pub fn gateway_url(&self) -> String {
        format!("http://{}", self.gateway_addr)
    }

    /// The nodes.
    pub fn nodes(&self) -> &[NodeService] {
        &self.nodes
    }

    /// Stops the gateway, every node, then discovery.
    pub async fn stop(self) {
        self.gateway_stop.cancel();
        let _ = self.gateway_task.await;
        for n in self.nodes {
            n.stop().await;
        }
        self.discovery_stop.cancel();
        let _ = self.discovery_task.await;
    }
}
