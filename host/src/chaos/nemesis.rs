//! The nemesis: a fault schedule drawn from a seed, and how each fault is made and undone on
//! the [`Cluster`]. The schedule alternates healthy and faulty phases; the seed fixes which
//! faults hit which nodes and when, not how the clients' requests interleave with them.

use super::cluster::Cluster;
use anyhow::{bail, Result};
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use std::fmt;
use std::time::Duration;

/// The kinds of fault, as named on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// The nodes split in a majority and a minority.
    Partition,
    /// One node cut off from all others.
    Isolate,
    /// Two sides that cannot see each other, and one node that sees both.
    Bridge,
    /// One node killed (SIGKILL), restarted at the end of the phase on its data directory.
    Kill,
    /// One node cut off, then killed while still cut off, and restarted.
    IsolateKill,
    /// Random packet loss on every node's link.
    Loss,
}

/// One fault, with its victims.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// No connection between the two sides.
    Split(Vec<usize>, Vec<usize>),
    /// No connection between `left` and `right`; node `.2` reaches both.
    Bridge(Vec<usize>, Vec<usize>, usize),
    /// A node down.
    Kill(usize),
    /// A node cut off, killed at the end.
    IsolateKill(usize),
    /// Each packet lost with this probability.
    Loss(f64),
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = |v: &[usize]| {
            v.iter()
                .map(|i| format!("n{i}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        match self {
            Fault::Split(a, b) => write!(f, "partition {} | {}", names(a), names(b)),
            Fault::Bridge(a, b, m) => write!(f, "bridge {} | {} via n{m}", names(a), names(b)),
            Fault::Kill(i) => write!(f, "kill -9 n{i}"),
            Fault::IsolateKill(i) => write!(f, "isolate, then kill -9 n{i}"),
            Fault::Loss(p) => write!(f, "loss {:.0} %", p * 100.0),
        }
    }
}

/// One phase of the schedule.
#[derive(Clone, Debug, PartialEq)]
pub struct Phase {
    /// `None`: healthy.
    pub fault: Option<Fault>,
    /// How long it lasts.
    pub length: Duration,
}

/// Draws a schedule for `nodes` nodes from `seed`: a healthy phase, then fault and healthy
/// phases in turn until `total` has passed, ending healthy.
pub fn schedule(
    seed: u64,
    nodes: usize,
    kinds: &[Kind],
    total: Duration,
    fault: Duration,
    heal: Duration,
) -> Result<Vec<Phase>> {
    if kinds.is_empty() {
        bail!("no fault kinds");
    }
    if nodes < 3 && kinds.contains(&Kind::Bridge) {
        bail!("a bridge needs at least 3 nodes");
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut phases = vec![Phase {
        fault: None,
        length: heal,
    }];
    let mut elapsed = heal;
    while elapsed + fault + heal <= total {
        let Some(&kind) = kinds.choose(&mut rng) else {
            bail!("no fault kinds");
        };
        phases.push(Phase {
            fault: Some(draw(kind, nodes, &mut rng)),
            length: fault,
        });
        phases.push(Phase {
            fault: None,
            length: heal,
        });
        elapsed += fault + heal;
    }
    Ok(phases)
}

fn draw(kind: Kind, nodes: usize, rng: &mut impl Rng) -> Fault {
    let mut all: Vec<usize> = (0..nodes).collect();
    all.shuffle(rng);
    let victim = all.first().copied().unwrap_or(0);
    match kind {
        Kind::Partition => {
            let minority = rng.random_range(1..=(nodes / 2).max(1));
            let (a, b) = all.split_at(minority.min(nodes));
            Fault::Split(sorted(a), sorted(b))
        }
        Kind::Isolate => Fault::Split(vec![victim], sorted(all.get(1..).unwrap_or(&[]))),
        Kind::Bridge => {
            let rest = all.get(1..).unwrap_or(&[]);
            let (a, b) = rest.split_at(rest.len() / 2);
            Fault::Bridge(sorted(a), sorted(b), victim)
        }
        Kind::Kill => Fault::Kill(victim),
        Kind::IsolateKill => Fault::IsolateKill(victim),
        Kind::Loss => Fault::Loss(rng.random_range(0.1..0.5)),
    }
}

fn sorted(v: &[usize]) -> Vec<usize> {
    let mut v = v.to_vec();
    v.sort_unstable();
    v
}

fn cut_sides(cluster: &Cluster, a: &[usize], b: &[usize]) -> Result<()> {
    for &x in a {
        for &y in b {
            cluster.lab().cut(x, y)?;
        }
    }
    Ok(())
}

/// Makes `fault` happen.
pub fn inflict(cluster: &mut Cluster, fault: &Fault) -> Result<()> {
    match fault {
        Fault::Split(a, b) | Fault::Bridge(a, b, _) => cut_sides(cluster, a, b),
        Fault::Kill(i) => {
            cluster.kill(*i);
            Ok(())
        }
        Fault::IsolateKill(i) => {
            let others: Vec<usize> = (0..cluster.lab().participants())
                .filter(|j| j != i)
                .collect();
            cut_sides(cluster, &[*i], &others)
        }
        Fault::Loss(p) => cluster.lab().lose(*p),
    }
}

/// Ends `fault`: the network whole, every node running.
pub fn heal(cluster: &mut Cluster, fault: &Fault) -> Result<()> {
    if let Fault::IsolateKill(i) = fault {
        cluster.kill(*i);
    }
    cluster.lab().heal()?;
    for i in 0..cluster.lab().participants() {
        cluster.restart(i)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_one_schedule() {
        let kinds = [Kind::Partition, Kind::Kill, Kind::Loss, Kind::Bridge];
        let s = Duration::from_secs;
        let one = schedule(7, 5, &kinds, s(60), s(5), s(3)).unwrap_or_default();
        let again = schedule(7, 5, &kinds, s(60), s(5), s(3)).unwrap_or_default();
        let other = schedule(8, 5, &kinds, s(60), s(5), s(3)).unwrap_or_default();
        assert_eq!(one, again);
        assert_ne!(one, other);
        assert_eq!(
            one.len(),
            1 + 2 * 7,
            "3 s, then 7 × (5 s + 3 s) within 60 s"
        );
        assert!(one.first().is_some_and(|p| p.fault.is_none()));
        assert!(one.last().is_some_and(|p| p.fault.is_none()));
    }

    #[test]
    fn partitions_split_every_node_into_two_nonempty_sides() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for _ in 0..100 {
            match draw(Kind::Partition, 5, &mut rng) {
                Fault::Split(a, b) => {
                    assert!(!a.is_empty() && !b.is_empty() && a.len() <= b.len());
                    let mut all = [a, b].concat();
                    all.sort_unstable();
                    assert_eq!(all, vec![0, 1, 2, 3, 4]);
                }
                other => panic!("{other}"),
            }
        }
    }
}
