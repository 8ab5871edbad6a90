//! The checker: what a PN-counter may end at after a run, given what its clients were told
//! (Maelstrom's pn-counter check). Every write told *ok* must be in the final value, every
//! write told *failed* must not, and any subset of the *indeterminate* ones may be; every node
//! must read the same. Pure: it sees only the history.

/// What a client was told about one write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx: applied.
    Ok,
    /// Definitely not applied: the connection was refused or never made, or a 4xx.
    Failed,
    /// May or may not have been applied: a timeout or reset after the request was sent, or a
    /// 5xx.
    Indeterminate,
}

/// What went wrong, if anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every node reads `value`, which the history allows.
    Valid {
        /// The agreed value.
        value: i64,
    },
    /// The nodes read different values.
    Disagree {
        /// Each node's read (`None`: it did not answer).
        reads: Vec<Option<i64>>,
    },
    /// The nodes agree on a value the history does not allow.
    Impossible {
        /// The agreed value.
        value: i64,
        /// The sum of the ok writes.
        ok_sum: i64,
        /// The lowest and highest values the indeterminate writes allow.
        range: (i64, i64),
    },
}

impl Verdict {
    /// Whether the run passed.
    pub fn is_valid(&self) -> bool {
        matches!(self, Verdict::Valid { .. })
    }
}

/// Checks the final `reads` (one per node) against the writes (`delta`, outcome).
pub fn check(writes: &[(i64, Outcome)], reads: &[Option<i64>]) -> Verdict {
    let first = reads.first().copied().flatten();
    let Some(value) = first.filter(|v| reads.iter().all(|r| *r == Some(*v))) else {
        return Verdict::Disagree {
            reads: reads.to_vec(),
        };
    };
    let ok_sum: i64 = writes
        .iter()
        .filter(|(_, o)| *o == Outcome::Ok)
        .map(|(d, _)| *d)
        .sum();
    let unknown: Vec<i64> = writes
        .iter()
        .filter(|(_, o)| *o == Outcome::Indeterminate)
        .map(|(d, _)| *d)
        .collect();
    let sums = SubsetSums::of(&unknown);
    if sums.contains(value - ok_sum) {
        Verdict::Valid { value }
    } else {
        Verdict::Impossible {
            value,
            ok_sum,
            range: (
                ok_sum + sums.low,
                ok_sum + sums.low + sums.reach.len() as i64 - 1,
            ),
        }
    }
}

/// Every sum a subset of some deltas can make: a bitmap over `low..=high`.
struct SubsetSums {
    low: i64,
    reach: Vec<bool>,
}

impl SubsetSums {
    fn of(deltas: &[i64]) -> Self {
        let low: i64 = deltas.iter().filter(|d| **d < 0).sum();
        let high: i64 = deltas.iter().filter(|d| **d > 0).sum();
        let width = usize::try_from(high - low).unwrap_or(0) + 1;
        let mut reach = vec![false; width];
        let zero = usize::try_from(-low).unwrap_or(0);
        if let Some(r) = reach.get_mut(zero) {
            *r = true;
        }
        for &d in deltas {
            let before = reach.clone();
            for (i, _) in before.iter().enumerate().filter(|(_, r)| **r) {
                let j = usize::try_from(i as i64 + d).ok();
                if let Some(r) = j.and_then(|j| reach.get_mut(j)) {
                    *r = true;
                }
            }
        }
        Self { low, reach }
    }

    fn contains(&self, sum: i64) -> bool {
        usize::try_from(sum - self.low)
            .ok()
            .and_then(|i| self.reach.get(i))
            .copied()
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::Outcome::{Failed, Indeterminate as Unknown, Ok};
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ok_writes_must_all_be_there_and_failed_ones_not() {
        let w = [(3, Ok), (-2, Ok), (5, Failed)];
        assert!(check(&w, &[Some(1), Some(1)]).is_valid());
        assert!(
            !check(&w, &[Some(6), Some(6)]).is_valid(),
            "a failed write applied"
        );
        assert!(
            !check(&w, &[Some(3), Some(3)]).is_valid(),
            "an ok write lost"
        );
    }

    #[test]
    fn any_subset_of_the_indeterminate_writes_may_be_there() {
        let w = [(1, Ok), (4, Unknown), (-3, Unknown)];
        for v in [1, 5, -2, 2] {
            assert!(check(&w, &[Some(v); 3]).is_valid(), "{v}");
        }
        for v in [0, 3, 4, 6] {
            assert!(!check(&w, &[Some(v); 3]).is_valid(), "{v}");
        }
    }

    #[test]
    fn nodes_must_agree_and_answer() {
        let w = [(1, Ok)];
        assert!(matches!(
            check(&w, &[Some(1), Some(2)]),
            Verdict::Disagree { .. }
        ));
        assert!(matches!(
            check(&w, &[Some(1), None]),
            Verdict::Disagree { .. }
        ));
        assert!(matches!(check(&w, &[]), Verdict::Disagree { .. }));
    }

    proptest! {
        /// The subset sums are exactly those of brute force.
        #[test]
        fn subset_sums_match_brute_force(deltas in proptest::collection::vec(-5i64..=5, 0..10)) {
            let sums = SubsetSums::of(&deltas);
            let mut all = std::collections::BTreeSet::new();
            for mask in 0u32..(1 << deltas.len()) {
                let s: i64 = deltas.iter().enumerate()
                    .filter(|(i, _)| mask & (1 << i) != 0).map(|(_, d)| *d).sum();
                all.insert(s);
            }
            for s in -60..=60 {
                prop_assert_eq!(sums.contains(s), all.contains(&s), "sum {}", s);
            }
        }
    }
}
