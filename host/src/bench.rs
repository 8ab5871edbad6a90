//! `tally bench`: HTTP write throughput against one node, and how long five local nodes take
//! to agree after a burst of writes. Measures; asserts nothing. (`--idle` and `--latency`:
//! [`crate::quiet_bench`].)

use crate::local_cluster::{Cluster, ClusterOptions};
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
        gateway: false,
        ..ClusterOptions::default()
    })
    .await?;
    // Let discovery introduce everyone first.
    cluster.meshed(Duration::from_secs(30)).await?;
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

/// How writes are loaded: `wrk` (keep-alive, two threads, a `POST` script) when it is on the
/// PATH, else the in-process loader ([`http_load`]), which shares the CPU with the node.
async fn load(url: &str, concurrency: usize, duration: Duration) -> (LoadResult, &'static str) {
    if let Some(r) = wrk_load(url, concurrency, duration).await {
        return (r, "wrk");
    }
    (http_load(url, concurrency, duration).await, "in-process")
}

async fn wrk_load(url: &str, concurrency: usize, duration: Duration) -> Option<LoadResult> {
    let script = std::env::temp_dir().join(format!("tally-bench-{}.lua", std::process::id()));
    std::fs::write(&script, "wrk.method = \"POST\"\n").ok()?;
    let threads = concurrency.clamp(1, 2);
    let mut cmd = std::process::Command::new("wrk");
    cmd.arg(format!("-t{threads}"))
        .arg(format!("-c{concurrency}"))
        .arg(format!("-d{}s", duration.as_secs().max(1)))
        .arg("-s")
        .arg(&script)
        .arg(format!("{}/increment", url.trim_end_matches('/')));
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .ok()?
        .ok()?;
    let _ = std::fs::remove_file(&script);
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |key: &str| -> Option<f64> {
        let line = text.lines().find(|l| l.trim_start().starts_with(key))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    let per_second = field("Requests/sec:")?;
    let total = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    let errors = text
        .lines()
        .find(|l| l.contains("Non-2xx"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    Some(LoadResult {
        concurrency,
        ok: total.saturating_sub(errors),
        errors,
        per_second,
    })
}

/// Mean latency of a 32-byte append plus `fdatasync` in `dir`, over `n` rounds: what one
/// durable answer waits for at least.
pub fn fsync_latency(dir: &std::path::Path, n: u32) -> std::io::Result<Duration> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let path = dir.join("fsync-probe");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?;
    let start = Instant::now();
    for _ in 0..n {
        f.write_all(&[0x5a; 32])?;
        f.sync_data()?;
    }
    let took = start.elapsed() / n.max(1);
    drop(f);
    std::fs::remove_file(&path)?;
    Ok(took)
}

/// Runs the whole bench: load at each concurrency against one fresh node, then agreement.
///
/// With `durable`, an in-memory node and a durable one (`--fsync always`) are loaded in the
/// same run, level by level, after a 1 s warm-up each, and the disk's fsync latency is
/// measured first: at concurrency *c* a durable node cannot answer more than
/// *c* / (fsync latency + in-memory request time) writes a second.
pub async fn run(
    levels: &[usize],
    duration: Duration,
    url: Option<String>,
    durable: bool,
) -> anyhow::Result<String> {
    let mut report = String::new();
    if let Some(url) = url {
        for &c in levels {
            let (r, how) = load(&url, c, duration).await;
            report.push_str(&format!(
                "http increments, concurrency {:>3}: {:>9.0} req/s ({} ok, {} errors; {how})\n",
                r.concurrency, r.per_second, r.ok, r.errors
            ));
        }
        return Ok(report);
    }
    let data_dir = std::env::temp_dir().join(format!("tally-bench-{}", std::process::id()));
    let fsync = if durable {
        let f = fsync_latency(&data_dir, 1000)?;
        report.push_str(&format!(
            "this disk: append + fdatasync {:.1} µs (mean of 1000)\n",
            f.as_secs_f64() * 1e6
        ));
        Some(f)
    } else {
        None
    };
    let memory = NodeService::start(NodeOptions::loopback()).await?;
    let disk = match durable {
        true => Some(
            NodeService::start(NodeOptions {
                data_dir: Some(data_dir.join("data")),
                ..NodeOptions::loopback()
            })
            .await?,
        ),
        false => None,
    };
    report.push_str("http increments (POST /increment, keep-alive), req/s\n");
    report
        .push_str(" concurrency   in-memory     durable   durable/in-memory   bound c/(fsync+t)\n");
    for &c in levels {
        let warm = Duration::from_secs(1);
        let _ = load(&memory.url(), c, warm).await;
        let (mem, how) = load(&memory.url(), c, duration).await;
        let mut line = format!(" {c:>11} {:>11.0}", mem.per_second);
        if let (Some(d), Some(f)) = (&disk, fsync) {
            let _ = load(&d.url(), c, warm).await;
            let (dur, _) = load(&d.url(), c, duration).await;
            let t = 1.0 / mem.per_second.max(1.0) * c as f64;
            let bound = c as f64 / (f.as_secs_f64() + t);
            line.push_str(&format!(
                " {:>11.0} {:>19.2} {:>19.0}",
                dur.per_second,
                dur.per_second / mem.per_second.max(1.0),
                bound
            ));
        }
        line.push_str(&format!("   ({how})\n"));
        report.push_str(&line);
    }
    if let Some(d) = disk {
        if let Some(wal) = &d.wal {
            let st = wal.stats();
            report.push_str(&format!(
                "  log: {} records in {} fsynced batches (mean batch {:.1}, mean fsync {:?})\n",
                st.records,
                st.batches,
                st.mean_batch(),
                st.fsync_mean()
            ));
        }
        d.stop().await;
    }
    memory.stop().await;
    let _ = std::fs::remove_dir_all(&data_dir);
    let a = agreement(5, 1000, Duration::from_secs(2)).await?;
    report.push_str(&format!(
        "agreement: {} nodes, {} increments, sync {} ms: all agree {} ms after the last answer\n",
        a.nodes, a.increments, a.sync_interval_ms, a.agreement_ms
    ));
    Ok(report)
}
