//! `tally bench`: HTTP write throughput against one node, and how long five local nodes take
//! to agree after a burst of writes. Measures; asserts nothing.

use crate::cluster::{Cluster, ClusterOptions};
use crate::service::{NodeOptions, NodeService};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Result of one load level.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LoadResult {
    /// Concurrent clients.
    pub concurrency: usize,
    /// Successful requests.
    pub ok: u64,
    /// Failed requests.
    pub errors: u64,
    /// Requests per second.
    pub per_second: f64,
}

/// Sends `POST {url}/increment` from `concurrency` keep-alive clients for `duration`.
pub async fn http_load(url: &str, concurrency: usize, duration: Duration) -> LoadResult {
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let target = format!("{}/increment", url.trim_end_matches('/'));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (ok, errors, stop, target) = (ok.clone(), errors.clone(), stop.clone(), target.clone());
        tasks.push(tokio::spawn(async move {
            let Ok(client) = reqwest::Client::builder().pool_max_idle_per_host(1).build() else {
                return;
            };
            while !stop.load(Ordering::Relaxed) {
                match client.post(&target).send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let start = Instant::now();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let secs = start.elapsed().as_secs_f64();
    let ok = ok.load(Ordering::Relaxed);
    LoadResult {
        concurrency,
        ok,
        errors: errors.load(Ordering::Relaxed),
        per_second: ok as f64 / secs,
    }
}

/// Result of the agreement measurement.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AgreementResult {
    /// Nodes in the cluster.
    pub nodes: usize,
    /// Increments sent (spread round-robin over the nodes).
    pub increments: u64,
    /// Sync interval of the nodes, ms.
    pub sync_interval_ms: u64,
    /// From the last acknowledged increment until every node holds the total, ms.
    pub agreement_ms: u64,
}

/// Starts `nodes` local nodes, sends `increments` over HTTP spread over them, and measures how
/// long after the last answer every node holds the total.
pub async fn agreement(
    nodes: usize,
    increments: u64,
    sync_interval: Duration,
) -> anyhow::Result<AgreementResult> {
    let cluster = Cluster::start(ClusterOptions {
        nodes,
        sync_interval,
        data_dir: None,
    })
    .await?;
    // Let discovery introduce everyone first.
    let deadline = Instant::now() + Duration::from_secs(30);
    while cluster
        .nodes()
        .iter()
        .any(|n| n.node.peers().len() + 1 < nodes)
    {
        if Instant::now() > deadline {
            anyhow::bail!("nodes did not find each other");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let client = reqwest::Client::new();
    let urls: Vec<String> = cluster.nodes().iter().map(NodeService::url).collect();
    for url in urls
        .iter()
        .cycle()
        .take(usize::try_from(increments).unwrap_or(usize::MAX))
    {
        client
            .post(format!("{url}/increment"))
            .send()
            .await?
            .error_for_status()?;
    }
    let written = Instant::now();
    let total = i128::from(increments);
    while cluster.nodes().iter().any(|n| n.node.value() != total) {
        if written.elapsed() > Duration::from_secs(120) {
            anyhow::bail!("no agreement within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let agreement_ms = u64::try_from(written.elapsed().as_millis()).unwrap_or(u64::MAX);
    cluster.stop().await;
    Ok(AgreementResult {
        nodes,
        increments,
        sync_interval_ms: u64::try_from(sync_interval.as_millis()).unwrap_or(u64::MAX),
        agreement_ms,
    })
}

/// Runs the whole bench: load at each concurrency against one fresh node, then agreement.
pub async fn run(
    levels: &[usize],
    duration: Duration,
    url: Option<String>,
    durable: bool,
) -> anyhow::Result<String> {
    let mut report = String::new();
    let data_dir =
        durable.then(|| std::env::temp_dir().join(format!("tally-bench-{}", std::process::id())));
    let own = match url {
        Some(_) => None,
        None => Some(
            NodeService::start(NodeOptions {
                data_dir: data_dir.clone(),
                ..NodeOptions::loopback()
            })
            .await?,
        ),
    };
    report.push_str(if durable {
        "durable node (--fsync always): every answer waits for its fsync\n"
    } else {
        "in-memory node (no --data-dir)\n"
    });
    let url = url.unwrap_or_else(|| own.as_ref().map(NodeService::url).unwrap_or_default());
    for &c in levels {
        let r = http_load(&url, c, duration).await;
        report.push_str(&format!(
            "http increments, concurrency {:>3}: {:>9.0} req/s ({} ok, {} errors)\n",
            r.concurrency, r.per_second, r.ok, r.errors
        ));
    }
    if let Some(s) = own {
        if let Some(wal) = &s.wal {
            let st = wal.stats();
            report.push_str(&format!(
                "  log: {} records in {} fsynced batches (mean batch {:.1}, mean fsync {:?})\n",
                st.records,
                st.batches,
                st.mean_batch(),
                st.fsync_mean()
            ));
        }
        s.stop().await;
    }
    if let Some(dir) = data_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    let a = agreement(5, 1000, Duration::from_secs(2)).await?;
    report.push_str(&format!(
        "agreement: {} nodes, {} increments, sync {} ms: all agree {} ms after the last answer\n",
        a.nodes, a.increments, a.sync_interval_ms, a.agreement_ms
    ));
    Ok(report)
}
