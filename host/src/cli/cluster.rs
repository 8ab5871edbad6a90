//! `tally cluster`: discovery + N nodes on free loopback ports, in one process.

use super::{init_logging, ClusterArgs};
use crate::cluster::{Cluster, ClusterOptions};
use anyhow::Context;

/// Starts the cluster, prints its URLs, runs until Ctrl-C (or `--duration`), stops it cleanly.
pub async fn run(args: ClusterArgs) -> anyhow::Result<()> {
    init_logging(&args.log);
    let cluster = Cluster::start(ClusterOptions {
        nodes: args.nodes,
        sync_interval: args.sync_interval,
    })
    .await?;
    println!("discovery  {}", cluster.discovery_url());
    for (i, n) in cluster.nodes().iter().enumerate() {
        println!(
            "node {i}     {}   (gossip {})",
            n.url(),
            n.node.local_addr()
        );
    }
    println!(
        "try: tally inc --node {}",
        cluster.nodes().first().map(|n| n.url()).unwrap_or_default()
    );
    println!("Ctrl-C stops the cluster.");
    match args.duration {
        Some(d) => tokio::time::sleep(d).await,
        None => tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?,
    }
    println!("stopping…");
    cluster.stop().await;
    println!("stopped.");
    Ok(())
}
