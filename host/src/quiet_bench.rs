//! `tally bench --idle --latency`: how quiet an idle cluster is, how fast one change reaches
//! every node, how soon all agree after a burst, and what eager pushes cost in write
//! throughput. Measures; asserts nothing.
//!
//! The process first moves into a network namespace of its own (`unshare`, then `ip link set
//! lo up`; root is needed), so the loopback counters it reads — bytes and packets from
//! `/proc/net/dev`, TCP connections opened and UDP datagrams sent from `/proc/net/snmp` — count
//! this cluster's traffic and nothing else.

use crate::local_cluster::{Cluster, ClusterOptions};
use crate::service::NodeService;
use anyhow::{bail, Context, Result};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// What to measure.
#[derive(Clone, Debug)]
pub struct QuietOptions {
    /// Nodes in the cluster.
    pub nodes: usize,
    /// Their minimum round interval.
    pub sync_interval: Duration,
    /// Idle time before the idle window (the intervals back off meanwhile).
    pub warmup: Duration,
    /// The idle window over which traffic is counted.
    pub window: Duration,
    /// Measure idle traffic.
    pub idle: bool,
    /// Measure the spread of single increments, agreement after a burst, and throughput.
    pub latency: bool,
    /// Single increments timed.
    pub samples: usize,
    /// Largest frame sent as a datagram between the nodes (0: TCP only).
    pub max_datagram: u16,
}

/// Moves this process (the calling thread, and every thread and child it starts later) into
/// a new network namespace with its loopback up. Call before any other thread starts.
pub fn enter_private_network() -> Result<()> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
        .context("cannot create a network namespace (root needed)")?;
    let status = std::process::Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .context("cannot run ip (package iproute2)")?;
    if !status.success() {
        bail!("ip link set lo up failed: {status}");
    }
    Ok(())
}

/// The namespace's loopback counters.
#[derive(Clone, Copy, Debug)]
struct Counters {
    bytes: u64,
    packets: u64,
    tcp_opens: u64,
    udp_out: u64,
}

/// The value of `field` in the `proto:` table of `/proc/net/snmp` (a names line, then values).
fn snmp_field(snmp: &str, proto: &str, field: &str) -> Result<u64> {
    let mut lines = snmp.lines().filter(|l| l.starts_with(proto));
    let (names, values) = (
        lines.next().context("no table in /proc/net/snmp")?,
        lines.next().context("no values in /proc/net/snmp")?,
    );
    let at = names
        .split_whitespace()
        .position(|n| n == field)
        .with_context(|| format!("no {field} in /proc/net/snmp"))?;
    values
        .split_whitespace()
        .nth(at)
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("bad {proto} line"))
}

fn counters() -> Result<Counters> {
    let dev = std::fs::read_to_string("/proc/net/dev").context("reading /proc/net/dev")?;
    let lo = dev
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("lo:"))
        .context("no lo in /proc/net/dev")?;
    // Fields: rx bytes, packets, errs, drop, fifo, frame, compressed, multicast, tx bytes,
    // tx packets, … Every loopback packet is sent once: tx counts are what went on the wire.
    let field = |i: usize| -> Result<u64> {
        lo.split_whitespace()
            .nth(i)
            .and_then(|v| v.parse().ok())
            .context("bad lo line")
    };
    let snmp = std::fs::read_to_string("/proc/net/snmp").context("reading /proc/net/snmp")?;
    Ok(Counters {
        bytes: field(8)?,
        packets: field(9)?,
        tcp_opens: snmp_field(&snmp, "Tcp:", "ActiveOpens")?,
        udp_out: snmp_field(&snmp, "Udp:", "OutDatagrams")?,
    })
}

async fn start(
    nodes: usize,
    sync_interval: Duration,
    eager: bool,
    max_datagram: u16,
) -> Result<Cluster> {
    let cluster = Cluster::start(ClusterOptions {
        nodes,
        sync_interval,
        data_dir: None,
        gateway: false,
        eager,
        max_datagram,
    })
    .await?;
    cluster.meshed(Duration::from_secs(60)).await?;
    Ok(cluster)
}

/// Waits until every node shows `value`; returns when they did.
async fn all_show(nodes: &[NodeService], value: i128, limit: Duration) -> Result<Instant> {
    let started = Instant::now();
    loop {
        if nodes.iter().all(|n| n.node.value() == value) {
            return Ok(Instant::now());
        }
        if started.elapsed() > limit {
            bail!("no agreement on {value} within {limit:?}");
        }
        // A short sleep: polling in-process costs the cluster no traffic.
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs what `opts` asks for and prints a table beside the reference figures.
pub async fn run(opts: &QuietOptions) -> Result<String> {
    let n = opts.nodes.max(2);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{n} nodes with discovery, round {:?}, datagrams up to {} B (0: TCP only), in a private network namespace\n",
        opts.sync_interval, opts.max_datagram
    );
    let _ = writeln!(out, "| measure | reference node | target | Tally |");
    let _ = writeln!(out, "|---|---|---|---|");
    if opts.idle {
        let cluster = start(n, opts.sync_interval, true, opts.max_datagram).await?;
        let _ = cluster.nodes().first().map(|s| s.node.increment(1));
        tokio::time::sleep(opts.warmup).await;
        let before = counters()?;
        tokio::time::sleep(opts.window).await;
        let after = counters()?;
        let secs = opts.window.as_secs_f64().max(0.001);
        let bytes = (after.bytes - before.bytes) as f64 / secs;
        let opens = (after.tcp_opens - before.tcp_opens) as f64 / secs;
        let packets = (after.packets - before.packets) as f64 / secs;
        let datagrams = (after.udp_out - before.udp_out) as f64 / secs;
        let _ = writeln!(
            out,
            "| idle bytes/s, nodes + discovery (after {:?} idle, over {:?}) | 7,312 | ≤ 1,500 | {bytes:.0} |",
            opts.warmup, opts.window
        );
        let _ = writeln!(
            out,
            "| TCP connections opened per second | 10.2 | ≤ 2 | {opens:.2} |"
        );
        let _ = writeln!(
            out,
            "| packets/s on the wire (of which UDP datagrams) | — | — | {packets:.1} ({datagrams:.1}) |"
        );
        cluster.stop().await;
    }
    if opts.latency {
        let cluster = start(n, opts.sync_interval, true, opts.max_datagram).await?;
        let nodes = cluster.nodes();
        let mut spread = Vec::new();
        let mut expected = 0i128;
        for s in 0..opts.samples.max(1) {
            // Far enough apart for the intervals to grow again: the change meets quiet nodes.
            tokio::time::sleep(Duration::from_secs(2)).await;
            let writer = nodes.get(s % n).context("no node")?;
            let t0 = Instant::now();
            writer.node.increment(1)?;
            expected += 1;
            let t1 = all_show(nodes, expected, Duration::from_secs(60)).await?;
            spread.push(t1 - t0);
        }
        spread.sort_unstable();
        let median = spread.get(spread.len() / 2).copied().unwrap_or_default();
        let max = spread.last().copied().unwrap_or_default();
        let _ = writeln!(
            out,
            "| one increment visible on all {n} nodes, median / max of {} | 2.20 s / 3.10 s | ≤ 50 ms median (≤ 200 ms on 50 nodes) | {:.1} ms / {:.1} ms |",
            spread.len(),
            ms(median),
            ms(max)
        );
        // 1000 increments spread over the nodes, one writer thread per node.
        let last_answer = burst(nodes, 1000).await?;
        expected += 1000;
        let agreed = all_show(nodes, expected, Duration::from_secs(60)).await?;
        let _ = writeln!(
            out,
            "| after 1000 increments over {n} nodes: all agree, after the last answer | — | ≤ 100 ms | {:.1} ms |",
            ms(agreed.saturating_duration_since(last_answer))
        );
        cluster.stop().await;
        let with = throughput(n, opts.sync_interval, true, opts.max_datagram).await?;
        let without = throughput(n, opts.sync_interval, false, opts.max_datagram).await?;
        let _ = writeln!(
            out,
            "| HTTP writes/s to one node of {n} (10 clients, 5 s), eager pushes on / off | — | ≥ 95 % | {with:.0} / {without:.0} ({:.1} %) |",
            100.0 * with / without.max(1.0)
        );
    }
    Ok(out)
}

/// `total` increments spread evenly over the nodes, from one thread per node, as fast as they
/// are answered; returns when the last answer came.
async fn burst(nodes: &[NodeService], total: usize) -> Result<Instant> {
    let per = total / nodes.len().max(1);
    let mut threads = Vec::new();
    for (i, s) in nodes.iter().enumerate() {
        let node = std::sync::Arc::clone(&s.node);
        let count = if i == 0 {
            total - per * (nodes.len() - 1)
        } else {
            per
        };
        threads.push(tokio::task::spawn_blocking(move || -> Result<Instant> {
            for _ in 0..count {
                node.increment(1)?;
            }
            Ok(Instant::now())
        }));
    }
    let mut last = Instant::now();
    for t in threads {
        last = last.max(t.await.context("writer thread")??);
    }
    Ok(last)
}

async fn throughput(
    n: usize,
    sync_interval: Duration,
    eager: bool,
    max_datagram: u16,
) -> Result<f64> {
    let cluster = start(n, sync_interval, eager, max_datagram).await?;
    let url = cluster
        .nodes()
        .first()
        .map(NodeService::url)
        .context("no node")?;
    let r = crate::bench::http_load(&url, 10, Duration::from_secs(5)).await;
    cluster.stop().await;
    Ok(r.per_second)
}
