//! `tally node` and `tally discovery`: long-running services until Ctrl-C.

use super::{init_logging, DiscoveryArgs, GatewayArgs, NodeArgs};
use crate::discovery::{self, DiscoveryConfig};
use crate::service::{NodeOptions, NodeService};
use anyhow::Context;
use tokio_util::sync::CancellationToken;

/// Runs one node until Ctrl-C.
pub async fn run(args: NodeArgs) -> anyhow::Result<()> {
    init_logging(&args.log);
    let cluster_key = super::secrets::cluster_key(args.cluster_key_file.as_deref())?;
    let token = super::secrets::api_token(args.api_token_file.as_deref())?;
    let api = crate::http::ApiOptions {
        token,
        protect_reads: args.api_token_reads,
        rate_per_client: args.http_rate_limit,
        ..crate::http::ApiOptions::default()
    };
    let service = NodeService::start(NodeOptions {
        listen: args.listen,
        http: args.http,
        id: args.id,
        peers: args.peers,
        discovery: args.discovery,
        dns: (!args.peers_dns.is_empty()).then_some(crate::discovery::dns::DnsSeeds {
            seeds: args.peers_dns,
            server: args.dns_server,
            every: args.dns_interval,
        }),
        mdns: args.mdns,
        discovery_heartbeat: args.discovery_heartbeat,
        data_dir: args.data_dir,
        sync_interval: args.sync_interval,
        fanout: args.fanout,
        cluster_key,
        api,
        fsync: args.fsync,
        snapshot_every: args.snapshot_every,
        eager: true,
        max_datagram: args.max_datagram,
        membership: !args.no_membership,
    })
    .await?;
    println!(
        "node {} gossip {} http {}",
        service.node.id(),
        service.node.local_addr(),
        service.url()
    );
    stop_signal().await?;
    tracing::info!("stopping");
    service.stop().await;
    Ok(())
}

/// Runs the discovery service until Ctrl-C.
pub async fn run_discovery(args: DiscoveryArgs) -> anyhow::Result<()> {
    init_logging(&args.log);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    println!("discovery http://{}", listener.local_addr()?);
    let token = CancellationToken::new();
    let config = DiscoveryConfig {
        cleanup_after: args.cleanup_after,
        ..DiscoveryConfig::default()
    };
    let server = tokio::spawn(discovery::serve(listener, config, token.clone()));
    stop_signal().await?;
    token.cancel();
    server.await.context("discovery task")??;
    Ok(())
}

/// Runs the gateway until Ctrl-C.
pub async fn run_gateway(args: GatewayArgs) -> anyhow::Result<()> {
    use crate::gateway::{GatewayConfig, NodeSource};
    init_logging(&args.log);
    let source = match args.discovery {
        Some(url) => NodeSource::Discovery(url),
        None => NodeSource::Static(args.nodes),
    };
    let node_token = super::secrets::api_token(args.node_token_file.as_deref())?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    println!("gateway    http://{addr}");
    println!("dashboard  http://{addr}/");
    let token = CancellationToken::new();
    let config = GatewayConfig {
        node_token,
        ..GatewayConfig::new(source)
    };
    let server = tokio::spawn(crate::gateway::serve(listener, config, token.clone()));
    stop_signal().await?;
    token.cancel();
    server.await.context("gateway task")??;
    Ok(())
}

/// Waits for Ctrl-C (SIGINT) or SIGTERM (what `kill` and service managers send): either stops
/// the server cleanly (a node snapshots its state and withdraws its mDNS announcement).
async fn stop_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("listening for SIGTERM")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
        _ = term.recv() => {}
    }
    Ok(())
}
