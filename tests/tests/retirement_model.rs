//! A model of the retirement design (`docs/EXTENSIONS.md` §8; not built into the engine yet):
//! replicas hold entries, retirement records and unfolded entries; the heir of a name folds
//! its older incarnations into its own entry; a reference peer gets the unfolded view. Random
//! histories of writes, one-way syncs (partitions are the syncs that do not happen), restarts
//! that lose a store, folds, a replaced process that goes on running (the "dead" node that
//! comes back), and a reference peer. After every step: a fold changes no value; no replica
//! counts more than was written, and what a replica counts never falls; the unfolded view sums
//! to the folded value. After everyone syncs with everyone, every replica counts every write
//! exactly once. The model checks the design's argument before it is built on heapless stores;
//! each rule §8.6 names, removed, makes it fail.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use proptest::prelude::*;
use std::collections::BTreeMap;

/// (name, incarnation number).
type Id = (u8, u32);
type Totals = (u64, u64);

#[derive(Clone, Debug, Default, PartialEq)]
struct Replica {
    entries: BTreeMap<Id, Totals>,
    /// (victim, heir) → (floor, mark).
    records: BTreeMap<(Id, Id), (Totals, Totals)>,
    /// Entries as peers without retirement hold them (the unfolded view: each id's own
    /// writes), merged by maximum and kept apart: an id's folded value is at least this plus
    /// what it absorbed by the records known here (so such an entry is re-folded as records
    /// arrive, never taken for a folded one).
    plain: BTreeMap<Id, Totals>,
}

fn max2(a: Totals, b: Totals) -> Totals {
    (a.0.max(b.0), a.1.max(b.1))
}

impl Replica {
    /// The victim's floor: the highest of its records' floors. Every record's floor is the
    /// victim's totals as its heir saw them when it folded (cumulative), and the victim's
    /// totals only rise, so the floors of one victim are ordered: what all its heirs absorbed
    /// together is the highest one.
    fn floor(&self, victim: Id) -> Option<Totals> {
        let mut f: Option<Totals> = None;
        for ((v, _), (floor, _)) in &self.records {
            if *v == victim {
                f = Some(max2(f.unwrap_or_default(), *floor));
            }
        }
        f
    }

    /// What the heirs of `victim` absorbed beyond its floor: counted twice, subtracted once.
    fn overlap(&self, victim: Id) -> Totals {
        let f = self.floor(victim).unwrap_or_default();
        let mut sum = (0, 0);
        for ((v, _), (floor, _)) in &self.records {
            if *v == victim {
                sum = (sum.0 + floor.0, sum.1 + floor.1);
            }
        }
        (sum.0 - f.0, sum.1 - f.1)
    }

    fn absorbed(&self, heir: Id) -> Totals {
        let mut a = (0, 0);
        for ((_, h), (floor, _)) in &self.records {
            if *h == heir {
                a = (a.0 + floor.0, a.1 + floor.1);
            }
        }
        a
    }

    fn victims(&self) -> Vec<Id> {
        let mut v: Vec<Id> = self.records.keys().map(|(v, _)| *v).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// An id's folded totals: its entry, or its unfolded entry plus what it absorbed.
    fn effective(&self, id: Id) -> Totals {
        let e = self.entries.get(&id).copied().unwrap_or_default();
        let p = self.plain.get(&id).copied().unwrap_or_default();
        let a = self.absorbed(id);
        max2(e, (p.0 + a.0, p.1 + a.1))
    }

    fn ids(&self) -> Vec<Id> {
        let mut ids: Vec<Id> = self
            .entries
            .keys()
            .chain(self.plain.keys())
            .copied()
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// §8.1: entries not retired, plus each victim's excess over its floor, minus what two
    /// heirs of one victim both absorbed.
    fn value(&self) -> (i128, i128) {
        let mut v = (0i128, 0i128);
        for id in self.ids() {
            let e = &self.effective(id);
            let (i, d) = match self.floor(id) {
                Some(f) => (e.0.saturating_sub(f.0), e.1.saturating_sub(f.1)),
                None => *e,
            };
            v.0 += i128::from(i);
            v.1 += i128::from(d);
        }
        for victim in self.victims() {
            let o = self.overlap(victim);
            v.0 -= i128::from(o.0);
            v.1 -= i128::from(o.1);
        }
        v
    }

    /// Deletes victims at or below their floor.
    fn collect(&mut self) {
        for id in self.ids() {
            if let Some(f) = self.floor(id) {
                let e = self.effective(id);
                if e.0 <= f.0 && e.1 <= f.1 {
                    self.entries.remove(&id);
                    self.plain.remove(&id);
                }
            }
        }
    }

    /// A merge between peers that speak retirement: records first (with their marks), then
    /// entries by maximum.
    fn merge(&mut self, other: &Replica) {
        for (k, (floor, mark)) in &other.records {
            // One (victim, heir)'s floor and mark only rise: merged by maximum.
            let r = self.records.entry(*k).or_insert((*floor, *mark));
            *r = (max2(r.0, *floor), max2(r.1, *mark));
            let heir = self.entries.entry(k.1).or_default();
            *heir = max2(*heir, *mark);
        }
        for (id, e) in &other.entries {
            let mine = self.entries.entry(*id).or_default();
            *mine = max2(*mine, *e);
        }
        for (id, e) in &other.plain {
            let mine = self.plain.entry(*id).or_default();
            *mine = max2(*mine, *e);
        }
        self.collect();
    }

    /// §8.3 (2): what a peer without retirement is sent — heirs minus everything they
    /// absorbed, victims at least at their floor: it sums to the folded value.
    fn unfolded(&self) -> BTreeMap<Id, Totals> {
        let mut ids: Vec<Id> = self.ids();
        ids.extend(self.records.keys().map(|(v, _)| *v));
        ids.sort_unstable();
        ids.dedup();
        ids.into_iter()
            .map(|id| {
                let e = self.effective(id);
                let e = match self.floor(id) {
                    Some(f) => max2(e, f),
                    None => e,
                };
                let a = self.absorbed(id);
                (id, (e.0 - a.0, e.1 - a.1))
            })
            .filter(|(_, t)| *t != (0, 0))
            .collect()
    }

    /// Entries from a peer without retirement, merged by maximum.
    fn merge_plain(&mut self, plain: &BTreeMap<Id, Totals>) {
        for (id, e) in plain {
            let mine = self.plain.entry(*id).or_default();
            *mine = max2(*mine, *e);
        }
        self.collect();
    }
}

/// A process running a name: its replica and the incarnation it counts under.
#[derive(Clone, Debug)]
struct Process {
    name: u8,
    incarnation: u32,
    replica: Replica,
}

impl Process {
    fn me(&self) -> Id {
        (self.name, self.incarnation)
    }

    /// A write, acknowledged at once (the model's "persisted"). `fresh` is the next unused
    /// incarnation number.
    fn write(&mut self, dec: bool, fresh: &mut u32) {
        // §8.4: a node that learned it was retired counts under a fresh incarnation.
        if self.replica.floor(self.me()).is_some() {
            *fresh += 1;
            self.incarnation = *fresh;
        }
        let e = self.replica.entries.entry(self.me()).or_default();
        if dec {
            e.1 += 1;
        } else {
            e.0 += 1;
        }
    }

    /// §8.2: the heir folds every other incarnation of its name it holds above its floor
    /// (no order among incarnations: two processes of one name may fold each other).
    fn fold(&mut self) {
        if self.replica.floor(self.me()).is_some() {
            return; // retired itself: it folds nothing until it counts under a fresh one
        }
        let me = self.me();
        // Only a victim whose folded entry it holds from peers that speak retirement, with
        // nothing more known of it unfolded: holding that entry means holding every record
        // the victim made up to it (records travel with their heir's entry), so the floor is
        // in folded terms whatever else this node knows.
        let victims: Vec<(Id, Totals)> = self
            .replica
            .entries
            .iter()
            .filter(|(id, _)| id.0 == self.name && **id != me)
            .filter(|(id, e)| self.replica.effective(**id) == **e)
            .map(|(id, e)| (*id, *e))
            .collect();
        for (v, e) in victims {
            // Nothing to absorb when the victim is not above its floor (another heir, or
            // this one, already covers it).
            let f = self.replica.floor(v).unwrap_or_default();
            if e.0 <= f.0 && e.1 <= f.1 {
                continue;
            }
            let (prior, _) = self
                .replica
                .records
                .get(&(v, me))
                .copied()
                .unwrap_or(((0, 0), (0, 0)));
            // This heir's floor becomes the victim's totals as it sees them (cumulative); its
            // entry rises by what that adds to its own earlier floor.
            let floor = max2(e, prior);
            let h = self.replica.entries.entry(me).or_default();
            h.0 += floor.0 - prior.0;
            h.1 += floor.1 - prior.1;
            let mark = *h;
            self.replica.records.insert((v, me), (floor, mark));
        }
        self.replica.collect();
    }
}

#[derive(Clone, Debug)]
enum Op {
    Write(usize, bool),
    Sync(usize, usize),
    /// The process syncs to another, then loses its store: a fresh incarnation, empty.
    Restart(usize, usize),
    Fold(usize),
    /// The process is replaced by a new one of the same name with a fresh, empty store, while
    /// the old one (its store intact — the "dead" node that comes back) goes on running.
    Replace(usize),
    /// The reference peer syncs with a process (both ways).
    Reference(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let p = 0..6usize;
    prop_oneof![
        6 => (p.clone(), any::<bool>()).prop_map(|(p, d)| Op::Write(p, d)),
        6 => (p.clone(), p.clone()).prop_map(|(a, b)| Op::Sync(a, b)),
        2 => (p.clone(), p.clone()).prop_map(|(a, b)| Op::Restart(a, b)),
        3 => p.clone().prop_map(Op::Fold),
        1 => p.clone().prop_map(Op::Replace),
        2 => p.prop_map(Op::Reference),
    ]
}

/// Histories per run: 500 (CI), or `TALLY_MODEL_CASES`.
fn cases() -> u32 {
    std::env::var("TALLY_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500)
}

fn plain_value(plain: &BTreeMap<Id, Totals>) -> (i128, i128) {
    plain.values().fold((0, 0), |a, e| {
        (a.0 + i128::from(e.0), a.1 + i128::from(e.1))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]
    #[test]
    fn retirement_never_changes_a_value_and_loses_nothing(ops in proptest::collection::vec(op(), 1..150)) {
        // Three names; more processes join when one is replaced (at most six).
        let mut ps: Vec<Process> = (0..3)
            .map(|i| Process { name: i, incarnation: 0, replica: Replica::default() })
            .collect();
        let mut fresh = 0u32;
        let mut reference: BTreeMap<Id, Totals> = BTreeMap::new();
        // Every acknowledged write (inc, dec). A store is lost only after it synced (Restart),
        // so no write is lost with one.
        let mut truth = (0i128, 0i128);
        let mut seen: Vec<(i128, i128)> = vec![(0, 0); ps.len()];
        for op in ops {
            let n = ps.len();
            match op {
                Op::Write(p, dec) => {
                    ps[p % n].write(dec, &mut fresh);
                    if dec { truth.1 += 1 } else { truth.0 += 1 }
                }
                Op::Sync(a, b) => {
                    let from = ps[a % n].replica.clone();
                    ps[b % n].replica.merge(&from);
                }
                Op::Restart(p, to) => {
                    let (p, to) = (p % n, to % n);
                    let to = if to == p { (p + 1) % n } else { to };
                    let from = ps[p].replica.clone();
                    ps[to].replica.merge(&from);
                    fresh += 1;
                    ps[p].incarnation = fresh;
                    ps[p].replica = Replica::default();
                    seen[p] = (0, 0);
                }
                Op::Fold(p) => {
                    let p = p % n;
                    let before = ps[p].replica.value();
                    ps[p].fold();
                    prop_assert_eq!(ps[p].replica.value(), before, "a fold changed the value");
                }
                Op::Replace(p) => {
                    if n < 6 {
                        fresh += 1;
                        let name = ps[p % n].name;
                        ps.push(Process { name, incarnation: fresh, replica: Replica::default() });
                        seen.push((0, 0));
                    }
                }
                Op::Reference(p) => {
                    let p = p % n;
                    let before = plain_value(&reference);
                    let view = ps[p].replica.unfolded();
                    prop_assert_eq!(plain_value(&view), ps[p].replica.value(), "the unfolded view sums differently");
                    for (id, e) in view {
                        let r = reference.entry(id).or_default();
                        *r = max2(*r, e);
                    }
                    let after = plain_value(&reference);
                    prop_assert!(after.0 >= before.0 && after.1 >= before.1, "the reference's count fell");
                    prop_assert!(after.0 <= truth.0 && after.1 <= truth.1, "the reference over-counts: {:?} > {:?}", after, truth);
                    let back = reference.clone();
                    ps[p].replica.merge_plain(&back);
                }
            }
            for (i, p) in ps.iter().enumerate() {
                let v = p.replica.value();
                prop_assert!(v.0 <= truth.0 && v.1 <= truth.1, "replica {} over-counts: {:?} > {:?}", i, v, truth);
                prop_assert!(v.0 >= seen[i].0 && v.1 >= seen[i].1, "replica {}'s count fell: {:?} < {:?}: {:?}", i, v, seen[i], p.replica);
                seen[i] = v;
            }
        }
        // Heal: everyone syncs with everyone and with the reference, a few times over.
        let n = ps.len();
        for _ in 0..4 {
            for a in 0..n {
                for b in 0..n {
                    let from = ps[a].replica.clone();
                    ps[b].replica.merge(&from);
                }
                for (id, e) in ps[a].replica.unfolded() {
                    let r = reference.entry(id).or_default();
                    *r = max2(*r, e);
                }
            }
            for p in ps.iter_mut() {
                let back = reference.clone();
                p.replica.merge_plain(&back);
            }
        }
        for p in &ps {
            prop_assert_eq!(p.replica.value(), truth, "a replica is not exact after healing");
        }
        prop_assert_eq!(plain_value(&reference), truth, "the reference is not exact after healing");
    }
}
