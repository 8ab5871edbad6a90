//! [`Union`]: the `inc` and `dec` maps of a Push as one stream of `(id, inc, dec)` in strictly
//! ascending id order — the input [`PnCounter::merge_sorted`](crate::PnCounter::merge_sorted)
//! wants.
//!
//! Tally writes its maps sorted, so the usual path is a linear two-way merge. Reference nodes
//! write them in Go's random map order (and a hostile sender may repeat an id); then the
//! entries are sorted first: on a heap (`alloc`) by `sort`, without one by repeatedly scanning
//! for the next smallest id — O(k²), where k is bounded by the receiver's entry limit (e.g. 32).
//! Repeated ids collapse to their maximum, as merge would.

use crate::message::Entries;
use core::cmp::Ordering;

/// Sorted, de-duplicated `(id, inc, dec)` triples of a Push.
#[derive(Clone, Debug)]
pub struct Union<'a> {
    inner: Inner<'a>,
}

#[derive(Clone, Debug)]
enum Inner<'a> {
    Zip {
        inc: core::iter::Peekable<Entries<'a>>,
        dec: core::iter::Peekable<Entries<'a>>,
    },
    Scan {
        inc: Entries<'a>,
        dec: Entries<'a>,
        last: Option<&'a str>,
    },
    #[cfg(feature = "alloc")]
    Sorted(alloc::vec::IntoIter<(&'a str, u64, u64)>),
}

impl<'a> Union<'a> {
    /// The union of a Push's two maps.
    pub fn new(inc: Entries<'a>, dec: Entries<'a>) -> Self {
        let inner = if inc.ids_sorted() && dec.ids_sorted() {
            Inner::Zip {
                inc: inc.peekable(),
                dec: dec.peekable(),
            }
        } else {
            Self::unsorted(inc, dec)
        };
        Self { inner }
    }

    #[cfg(feature = "alloc")]
    fn unsorted(inc: Entries<'a>, dec: Entries<'a>) -> Inner<'a> {
        use alloc::vec::Vec;
        let mut all: Vec<(&'a str, u64, u64)> = inc
            .map(|(id, v)| (id, v, 0))
            .chain(dec.map(|(id, v)| (id, 0, v)))
            .collect();
        all.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        all.dedup_by(|later, kept| {
            if later.0 == kept.0 {
                kept.1 = kept.1.max(later.1);
                kept.2 = kept.2.max(later.2);
                true
            } else {
                false
            }
        });
        Inner::Sorted(all.into_iter())
    }

    #[cfg(not(feature = "alloc"))]
    fn unsorted(inc: Entries<'a>, dec: Entries<'a>) -> Inner<'a> {
        Inner::Scan {
            inc,
            dec,
            last: None,
        }
    }

    /// The no-heap path, also used by tests to check it against the others.
    pub fn scanning(inc: Entries<'a>, dec: Entries<'a>) -> Self {
        Self {
            inner: Inner::Scan {
                inc,
                dec,
                last: None,
            },
        }
    }
}

impl<'a> Iterator for Union<'a> {
    type Item = (&'a str, u64, u64);

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.inner {
            Inner::Zip { inc, dec } => {
                let order = match (inc.peek(), dec.peek()) {
                    (None, None) => return None,
                    (Some(_), None) => Ordering::Less,
                    (None, Some(_)) => Ordering::Greater,
                    (Some(a), Some(b)) => a.0.as_bytes().cmp(b.0.as_bytes()),
                };
                match order {
                    Ordering::Less => inc.next().map(|(id, v)| (id, v, 0)),
                    Ordering::Greater => dec.next().map(|(id, v)| (id, 0, v)),
                    Ordering::Equal => {
                        let (id, i) = inc.next()?;
                        let (_, d) = dec.next()?;
                        Some((id, i, d))
                    }
                }
            }
            Inner::Scan { inc, dec, last } => {
                let above = |id: &str| last.is_none_or(|l| id.as_bytes() > l.as_bytes());
                let mut best: Option<(&'a str, u64, u64)> = None;
                for (id, v, is_inc) in inc
                    .clone()
                    .map(|(id, v)| (id, v, true))
                    .chain(dec.clone().map(|(id, v)| (id, v, false)))
                {
                    if !above(id) {
                        continue;
                    }
                    let (i, d) = if is_inc { (v, 0) } else { (0, v) };
                    best = match best {
                        None => Some((id, i, d)),
                        Some(b) => match id.as_bytes().cmp(b.0.as_bytes()) {
                            Ordering::Less => Some((id, i, d)),
                            Ordering::Equal => Some((b.0, b.1.max(i), b.2.max(d))),
                            Ordering::Greater => Some(b),
                        },
                    };
                }
                *last = best.map(|b| b.0);
                best
            }
            #[cfg(feature = "alloc")]
            Inner::Sorted(it) => it.next(),
        }
    }
}
