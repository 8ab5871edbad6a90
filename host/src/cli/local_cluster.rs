//! `tally cluster`: discovery + N nodes + a gateway with the dashboard, on free loopback ports,
//! in one process.

use super::{init_logging, ClusterArgs};
use crate::local_cluster::{Cluster, ClusterOptions};
use anyhow::Context;

/// Starts the cluster, prints its URLs, runs until Ctrl-C (or `--duration`), stops it cleanly.
pub async fn run(args: ClusterArgs) -> anyhow::Result<()> {
    init_logging(&args.log);
    let data_dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("tally-cluster-{}", std::process::id())),
    };
    let cluster = Cluster::start(ClusterOptions {
        nodes: args.nodes,
        sync_interval: args.sync_interval,
        data_dir: Some(data_dir.clone()),
        ..ClusterOptions::default()
    })
    .await?;
    let gateway = cluster.gateway_url().unwrap_or_default();
    println!("dashboard  {gateway}/");
    println!("gateway    {gateway}");
    println!("discovery  {}", cluster.discovery_url());
    println!("data       {}", data_dir.display());
    for (i, n) in cluster.nodes().iter().enumerate() {
        println!(
            "node {i}     {}   (gossip {})",
            n.url(),
            n.node.local_addr()
        );
    }
    println!("try: tally inc --node {gateway}   (the gateway; any node URL works too)");
    println!("Ctrl-C stops the cluster.");
    match args.duration {
        Some(d) => tokio::time::sleep(d).await,
        None => tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?,
    }
    println!("stopping…");
    cluster.stop().await;
    if args.data_dir.is_none() {
        let _ = std::fs::remove_dir_all(&data_dir);
    }
    println!("stopped.");
    Ok(())
}
