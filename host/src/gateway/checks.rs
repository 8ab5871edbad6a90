//! Background loops: active health checks of every node, and the node list from discovery.

use super::nodes::Upstream;
use super::proxy::{chain, GatewayHandle};
use reqwest::Method;
use std::sync::Arc;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

/// Whether a `GET /health` status shows a working node: 2xx, or a refusal of the gateway's
/// credentials or rate (401, 403, 429: the node is up, and passes clients' own tokens on).
fn alive(status: reqwest::StatusCode) -> bool {
    status.is_success() || matches!(status.as_u16(), 401 | 403 | 429)
}

/// Checks one node: `GET /health` (2xx, or 401/403/429: up but refusing the gateway), then
/// `GET /counter` to refresh the value shown by `GET /nodes`. A healthy answer readmits a
/// removed node.
pub async fn check(gateway: &GatewayHandle, node: &Upstream) {
    let timeout = gateway.config.health_timeout;
    match gateway
        .exchange(
            node,
            Method::GET,
            "/health",
            None,
            timeout,
            gateway.own_auth(),
        )
        .await
    {
        Ok((status, _, took)) if alive(status) => {
            let counter = gateway
                .exchange(
                    node,
                    Method::GET,
                    "/counter",
                    None,
                    timeout,
                    gateway.own_auth(),
                )
                .await
                .ok()
                .and_then(|(_, body, _)| serde_json::from_slice::<serde_json::Value>(&body).ok());
            if node.succeeded(took, counter.as_ref(), true) {
                gateway.publish_rotation();
            }
        }
        Ok((status, _, _)) => {
            gateway.node_failed(node, &format!("health check: HTTP {status}"), false, true);
        }
        Err(failure) => {
            let message = format!("health check: {}", failure.message);
            let refused = failure.kind == super::metrics::ErrorKind::Connect;
            gateway.node_failed(node, &message, refused, true);
        }
    }
}

/// Checks every node every `health_every` (all at once) until `shutdown`.
pub async fn health_loop(gateway: GatewayHandle, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(
        gateway
            .config
            .health_every
            .max(std::time::Duration::from_millis(10)),
    );
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let mut checks = JoinSet::new();
        for node in gateway.nodes.all().iter() {
            let (gateway, node) = (Arc::clone(&gateway), Arc::clone(node));
            checks.spawn(async move { check(&gateway, &node).await });
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = async { while checks.join_next().await.is_some() {} } => {}
        }
    }
}

/// Fetches the node URLs from the discovery service at `base` (the `http` fields of
/// `GET /peers`; entries without one are skipped) and replaces the node set with them.
pub async fn refresh_from_discovery(gateway: &GatewayHandle, base: &str) -> Result<(), String> {
    let url = format!("{}/peers", super::nodes::normalize_url(base));
    let response = gateway
        .client
        .get(&url)
        .timeout(gateway.config.request_timeout)
        .send()
        .await
        .map_err(|e| chain(&e))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("GET {url}: HTTP {status}"));
    }
    let body = response.bytes().await.map_err(|e| chain(&e))?;
    let urls = crate::discovery::http_urls(&body)?;
    let (added, removed) = gateway.nodes.replace(&urls);
    for url in &added {
        tracing::info!(node = %url, "gateway: node discovered");
    }
    for url in &removed {
        tracing::info!(node = %url, "gateway: node no longer listed by discovery; dropped");
    }
    if !added.is_empty() || !removed.is_empty() {
        gateway.publish_rotation();
    }
    Ok(())
}

/// Refreshes the node set from discovery every `discovery_every` until `shutdown`. A failed
/// refresh keeps the nodes known (first failure a warning, the next ones debug lines).
pub async fn discovery_loop(gateway: GatewayHandle, base: String, shutdown: CancellationToken) {
    let every = gateway
        .config
        .discovery_every
        .max(std::time::Duration::from_millis(10));
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut failures = 0u64;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let result = tokio::select! {
            () = shutdown.cancelled() => return,
            result = refresh_from_discovery(&gateway, &base) => result,
        };
        match result {
            Ok(()) => {
                if failures > 0 {
                    tracing::info!(url = %base, failures, "gateway: discovery answers again");
                }
                failures = 0;
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                if failures == 1 {
                    tracing::warn!(url = %base, %error, "gateway: discovery refresh failed; keeping the known nodes");
                } else {
                    tracing::debug!(url = %base, %error, failures, "gateway: discovery refresh failed");
                }
            }
        }
    }
}
