//! [`Cluster`]: a discovery service and N nodes on free loopback ports, in one process.

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
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            nodes: 3,
            sync_interval: Duration::from_secs(2),
        }
    }
}

/// A running local cluster.
pub struct Cluster {
    discovery_addr: SocketAddr,
    discovery_stop: CancellationToken,
    discovery_task: JoinHandle<std::io::Result<()>>,
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
        for _ in 0..opts.nodes {
            let service = NodeService::start(NodeOptions {
                discovery: Some(format!("http://{discovery_addr}")),
                sync_interval: opts.sync_interval,
                ..NodeOptions::loopback()
            })
            .await?;
            nodes.push(service);
        }
        Ok(Cluster {
            discovery_addr,
            discovery_stop,
            discovery_task,
            nodes,
        })
    }

    /// The discovery service's URL.
    pub fn discovery_url(&self) -> String {
        format!("http://{}", self.discovery_addr)
    }

    /// The nodes.
    pub fn nodes(&self) -> &[NodeService] {
        &self.nodes
    }

    /// Stops every node, then discovery.
    pub async fn stop(self) {
        for n in self.nodes {
            n.stop().await;
        }
        self.discovery_stop.cancel();
        let _ = self.discovery_task.await;
    }
}
