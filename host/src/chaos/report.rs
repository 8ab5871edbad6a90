//! What a run found: the writes by outcome, availability per kind of phase, the time to agree
//! after healing, the final reads and the checker's verdict — as text and as JSON.

use super::checker::{Outcome, Verdict};
use super::client::Write;
use super::nemesis::Fault;
use serde::Serialize;
use std::fmt;
use std::time::Duration;

/// Writes started during one kind of phase.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PhaseFigures {
    /// The kind: `healthy`, `partition`, `bridge`, `kill`, `isolate+kill`, `loss`.
    pub phase: String,
    /// Writes told ok.
    pub ok: usize,
    /// Writes told failed.
    pub failed: usize,
    /// Writes whose outcome is unknown.
    pub indeterminate: usize,
}

impl PhaseFigures {
    /// The share of writes told ok.
    pub fn availability(&self) -> f64 {
        let all = self.ok + self.failed + self.indeterminate;
        if all == 0 {
            return 0.0;
        }
        self.ok as f64 / all as f64
    }
}

/// The run's figures.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The nemesis' seed (it reproduces the fault schedule, not the interleaving).
    pub seed: u64,
    /// All writes.
    pub total: PhaseFigures,
    /// Per kind of phase.
    pub phases: Vec<PhaseFigures>,
    /// Per participant (`n0`…; with a board, it is the last).
    pub nodes: Vec<PhaseFigures>,
    /// Faults in the order they came.
    pub faults: Vec<String>,
    /// Time from the end of the last phase to agreement (`None`: no agreement).
    pub agreed_after_ms: Option<u64>,
    /// Each node's final read.
    pub reads: Vec<Option<i64>>,
    /// Whether the checker passed, and why not.
    pub valid: bool,
    /// The checker's words.
    pub verdict: String,
}

fn kind(fault: &Option<Fault>) -> &'static str {
    match fault {
        None => "healthy",
        Some(Fault::Split(..)) => "partition",
        Some(Fault::Bridge(..)) => "bridge",
        Some(Fault::Kill(_)) => "kill",
        Some(Fault::IsolateKill(_)) => "isolate+kill",
        Some(Fault::Loss(_)) => "loss",
    }
}

fn count(f: &mut PhaseFigures, o: Outcome) {
    match o {
        Outcome::Ok => f.ok += 1,
        Outcome::Failed => f.failed += 1,
        Outcome::Indeterminate => f.indeterminate += 1,
    }
}

impl Report {
    /// Builds it from the history and the phases (`(fault, from, to)` since the start).
    pub fn new(
        seed: u64,
        writes: &[Write],
        spans: &[(Option<Fault>, Duration, Duration)],
        agreed_after: Option<Duration>,
        reads: Vec<Option<i64>>,
        verdict: Verdict,
    ) -> Self {
        let mut total = PhaseFigures {
            phase: "all".into(),
            ..Default::default()
        };
        let mut phases: Vec<PhaseFigures> = Vec::new();
        let mut nodes: Vec<PhaseFigures> = Vec::new();
        for w in writes {
            count(&mut total, w.outcome);
            while nodes.len() <= w.node {
                nodes.push(PhaseFigures {
                    phase: format!("n{}", nodes.len()),
                    ..Default::default()
                });
            }
            if let Some(n) = nodes.get_mut(w.node) {
                count(n, w.outcome);
            }
            let during = spans
                .iter()
                .find(|(_, from, to)| w.at >= *from && w.at < *to)
                .map_or("after", |(f, _, _)| kind(f));
            let at = match phases.iter().position(|p| p.phase == during) {
                Some(i) => i,
                None => {
                    phases.push(PhaseFigures {
                        phase: during.into(),
                        ..Default::default()
                    });
                    phases.len() - 1
                }
            };
            if let Some(p) = phases.get_mut(at) {
                count(p, w.outcome);
            }
        }
        let verdict_text = match &verdict {
            Verdict::Valid { value } => format!("valid: every node reads {value}"),
            Verdict::Disagree { reads } => format!("invalid: the nodes disagree: {reads:?}"),
            Verdict::Impossible {
                value,
                ok_sum,
                range,
            } => format!(
                "invalid: the nodes agree on {value}, which no subset of the indeterminate \
                 writes allows (ok writes sum to {ok_sum}; reachable {}..={})",
                range.0, range.1
            ),
        };
        Self {
            seed,
            total,
            phases,
            nodes,
            faults: spans
                .iter()
                .filter_map(|(f, _, _)| f.as_ref().map(ToString::to_string))
                .collect(),
            agreed_after_ms: agreed_after.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            reads,
            valid: verdict.is_valid(),
            verdict: verdict_text,
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "seed {} (reproduces the fault schedule, not the interleaving)",
            self.seed
        )?;
        for fault in &self.faults {
            writeln!(f, "  fault: {fault}")?;
        }
        writeln!(
            f,
            "{:<14} {:>7} {:>7} {:>14} {:>12}",
            "phase", "ok", "failed", "indeterminate", "availability"
        )?;
        let rows = self.phases.iter().chain(&self.nodes);
        for p in rows.chain(std::iter::once(&self.total)) {
            writeln!(
                f,
                "{:<14} {:>7} {:>7} {:>14} {:>11.1} %",
                p.phase,
                p.ok,
                p.failed,
                p.indeterminate,
                p.availability() * 100.0
            )?;
        }
        match self.agreed_after_ms {
            Some(ms) => writeln!(f, "agreed {ms} ms after the last phase ended")?,
            None => writeln!(f, "no agreement")?,
        }
        write!(f, "{}", self.verdict)
    }
}
