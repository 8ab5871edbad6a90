//! `tally sim`: runs the simulator and prints its report (text, then JSON as the last line
//! with `--json`).

use super::{SimArgs, SwimSimArgs};
use crate::simulation::{self, SimOptions, SimReport};
use indicatif::{ProgressBar, ProgressStyle};
use std::time::{Duration, Instant};

/// Parses a partition spec `FROM..TO` (rounds): the nodes split into two halves at round FROM
/// and heal at round TO.
pub fn parse_partition(s: &str) -> Result<(u64, u64), String> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| format!("partition {s:?}: expected FROM..TO in rounds, e.g. 0..20"))?;
    let from = a
        .trim()
        .parse::<u64>()
        .map_err(|e| format!("partition start {a:?}: {e}"))?;
    let to = b
        .trim()
        .parse::<u64>()
        .map_err(|e| format!("partition end {b:?}: {e}"))?;
    if to <= from {
        return Err(format!(
            "partition {s:?}: the heal round must come after the split"
        ));
    }
    Ok((from, to))
}

/// Runs `tally sim`.
pub fn run(args: SimArgs) -> anyhow::Result<()> {
    let ms = u64::try_from(args.sync_interval.as_millis()).unwrap_or(u64::MAX);
    let opts = SimOptions {
        nodes: args.nodes,
        fanout: args.fanout,
        sync_interval: tally_core::Duration::from_millis(ms.max(1)),
        loss: args.loss,
        writers: args.writers,
        ops: args.ops,
        partition: args.partition,
        seed: args.seed,
        initial_peers: args.initial_peers,
        delta: !args.full_state,
        max_frame: args.max_frame,
        max_rounds: args.max_rounds,
        counters: args.counters,
    };
    anyhow::ensure!(opts.nodes >= 1, "--nodes must be at least 1");
    anyhow::ensure!((0.0..1.0).contains(&opts.loss), "--loss must be in [0, 1)");
    let started = Instant::now();
    let bar = ProgressBar::hidden();
    bar.set_style(
        ProgressStyle::with_template("{spinner} round {pos} · {msg} · {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let report = simulation::run(&opts, |round, fraction| {
        // Only runs longer than a second get a progress bar.
        if bar.is_hidden() && started.elapsed() > Duration::from_secs(1) {
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        }
        bar.set_position(round);
        bar.set_message(format!("{:.1}% converged", fraction * 100.0));
    });
    bar.finish_and_clear();
    print_text(&report);
    if let Some(path) = &args.plot {
        simulation::plot(
            &[(
                format!("{} nodes, seed {}", report.nodes, report.seed),
                &report,
            )],
            path,
        )?;
        println!("plot written to {}", path.display());
    }
    if args.json {
        let mut json = serde_json::to_value(&report)?;
        if let Some(obj) = json.as_object_mut() {
            obj.remove("converged_fraction");
        }
        println!("{json}");
    }
    anyhow::ensure!(
        report.converged,
        "did not converge within {} rounds",
        args.max_rounds
    );
    Ok(())
}

fn print_text(r: &SimReport) {
    println!(
        "{} nodes, seed {}, {} sync: {} after {} rounds ({} ms virtual)",
        r.nodes,
        r.seed,
        if r.delta { "delta" } else { "full-state" },
        if r.converged {
            "converged"
        } else {
            "NOT converged"
        },
        r.rounds,
        r.virtual_ms
    );
    if let Some(k) = r.rounds_after_heal {
        println!("  converged {k} rounds after the partition healed");
    }
    println!(
        "  {} frames, {} bytes; per node per round: {:.2} frames, {:.1} bytes",
        r.messages, r.bytes, r.messages_per_node_per_round, r.bytes_per_node_per_round
    );
    for (name, t) in [
        ("push", &r.push),
        ("digest_pull", &r.digest_pull),
        ("digest_ack", &r.digest_ack),
        ("named_push", &r.named_push),
    ] {
        println!(
            "  {name:<12} {:>10} frames {:>12} bytes {:>10.1} bytes/node/round",
            t.messages, t.bytes, t.bytes_per_node_per_round
        );
    }
    println!(
        "  push message bytes: {} full state, {} delta",
        r.full_push_bytes, r.delta_push_bytes
    );
    println!(
        "  peak node memory {} bytes; {} frames delivered in {} ms wall ({:.0}/s)",
        r.peak_node_memory_bytes, r.delivered, r.wall_ms, r.delivered_per_second
    );
}

/// Runs `tally scaling`: one update at each size over many seeds (median rounds), the curve as
/// an SVG, and the byte measurements of the Scaling section, printed as Markdown.
pub fn scaling(args: super::ScalingArgs) -> anyhow::Result<()> {
    let mut curves: Vec<(String, SimReport)> = Vec::new();
    println!("| nodes | median rounds (of {} seeds) | min | max | log2 N | bytes/node/round | frames/node/round | peak node memory | wall ms (median run) |", args.seeds);
    println!("|---|---|---|---|---|---|---|---|---|");
    for &n in &args.sizes {
        let mut runs: Vec<SimReport> = (1..=args.seeds)
            .map(|seed| {
                simulation::run(
                    &SimOptions {
                        nodes: n,
                        seed,
                        ..SimOptions::default()
                    },
                    |_, _| {},
                )
            })
            .collect();
        anyhow::ensure!(
            runs.iter().all(|r| r.converged),
            "{n} nodes: a run did not converge"
        );
        runs.sort_by_key(|r| r.rounds);
        let Some(median) = runs.get(runs.len() / 2).cloned() else {
            continue;
        };
        let (min, max) = (
            runs.first().map_or(0, |r| r.rounds),
            runs.last().map_or(0, |r| r.rounds),
        );
        println!(
            "| {n} | {} | {min} | {max} | {:.1} | {:.1} | {:.2} | {} B | {} |",
            median.rounds,
            (n as f64).log2(),
            median.bytes_per_node_per_round,
            median.messages_per_node_per_round,
            median.peak_node_memory_bytes,
            median.wall_ms
        );
        curves.push((format!("{n} nodes (median seed)"), median));
    }
    if let Some(path) = &args.plot {
        let refs: Vec<(String, &SimReport)> = curves.iter().map(|(l, r)| (l.clone(), r)).collect();
        simulation::plot(&refs, path)?;
        println!("\ncurve written to {}", path.display());
    }
    Ok(())
}

/// Runs `tally swim-sim`.
pub fn swim(args: SwimSimArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.nodes >= 3, "--nodes must be at least 3");
    anyhow::ensure!((0.0..1.0).contains(&args.loss), "--loss must be in [0, 1)");
    let ms = |d: Duration| {
        tally_core::Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    };
    let opts = crate::swim_bench::SwimBenchOptions {
        nodes: args.nodes,
        loss: args.loss,
        duration: ms(args.duration),
        kill_every: ms(args.kill_every),
        down_for: ms(args.down_for),
        seed: args.seed,
        suspect: args.suspect.map(ms),
        indirect: args.indirect,
        probe_period: args.probe_period.map(ms),
        max_transmissions: args.max_tx,
    };
    anyhow::ensure!(
        opts.down_for.as_millis() < opts.kill_every.as_millis(),
        "--down-for must be shorter than --kill-every"
    );
    let r = crate::swim_bench::run(&opts);
    println!(
        "{} nodes, {:.0}% loss, {} s: {} kills, {} detections ({} missed)",
        r.nodes,
        r.loss * 100.0,
        r.seconds,
        r.kills,
        r.detections,
        r.missed
    );
    println!(
        "detection: median {:.1} s, p90 {:.1} s, max {:.1} s; last observer per kill: median {:.1} s",
        r.median_ms as f64 / 1000.0,
        r.p90_ms as f64 / 1000.0,
        r.max_ms as f64 / 1000.0,
        r.median_last_ms as f64 / 1000.0
    );
    println!(
        "false positives: {} ({} during the warm-up); traffic: {:.1} datagrams, {:.0} bytes per node per second",
        r.false_positives, r.warmup_false_positives, r.datagrams_per_node_s, r.bytes_per_node_s
    );
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
    }
    Ok(())
}
