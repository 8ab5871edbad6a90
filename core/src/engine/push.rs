//! Building a Push from the counter's entries, within a byte budget.
//!
//! A full state may not fit one frame (4 KiB on microcontrollers, ~16 KiB for reference
//! receivers). Then the Push carries a window of entries that fits, and the next Push starts
//! where this one stopped, so every entry gets its turn; merge is per-entry max, so each
//! partial Push is a valid delta. The window is written in id order, so receivers take their
//! sorted fast path.

use crate::counter::Entry;
use crate::message::{entry_len, Message};
use crate::msgpack::{str_len, BufferTooSmall};

/// Which total of an entry a map carries.
#[derive(Clone, Copy, Debug)]
enum Which {
    Inc,
    Dec,
}

/// The non-zero `inc` (or `dec`) totals of a window of entries changed after `since`, in id
/// order.
#[derive(Clone, Debug)]
pub(crate) struct Side<'e, const L: usize> {
    head: core::slice::Iter<'e, Entry<L>>,
    tail: core::slice::Iter<'e, Entry<L>>,
    which: Which,
    pick: Pick,
}

/// Which entries a Push carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pick {
    /// Entries changed after this version (0: all).
    pub since: u32,
    /// Leave out entries whose current totals came from this origin (0: none).
    pub exclude: u32,
}

impl<'e, const L: usize> Iterator for Side<'e, L> {
    type Item = (&'e str, u64);
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let e = match self.head.next() {
                Some(e) => e,
                None => self.tail.next()?,
            };
            let v = match self.which {
                Which::Inc => e.inc,
                Which::Dec => e.dec,
            };
            if v != 0 && selected(e, self.pick) {
                return Some((e.id.as_str(), v));
            }
        }
    }
}

/// True when `e` belongs in a Push picking `pick`.
pub(crate) fn selected<const L: usize>(e: &Entry<L>, pick: Pick) -> bool {
    (pick.since == 0 || pick.since == u32::MAX || e.changed > pick.since)
        && (pick.exclude == 0 || e.origin != pick.exclude)
}

/// A window of entries chosen to fit a budget: indices `[start, start + count)` modulo len.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Window {
    pub start: usize,
    pub count: usize,
}

/// Chooses the largest window starting at `start` whose Push of the entries changed after
/// `since` fits `budget` bytes. `None` when not even one selected entry fits or there is none.
pub(crate) fn fit_window<const L: usize>(
    entries: &[Entry<L>],
    start: usize,
    sender: &str,
    budget: usize,
    pick: Pick,
) -> Option<Window> {
    let n = entries.len();
    if n == 0 {
        return None;
    }
    let start = start % n;
    // Fixed part: map header, t, id, "inc", "dec" and two map headers of up to 5 bytes.
    let fixed = 1 + 2 + 2 + 3 + str_len(sender.len()) + 4 + 4 + 2 * 5;
    let mut used = fixed;
    let mut count = 0usize;
    let mut nonzero = 0usize;
    for k in 0..n {
        let Some(e) = entries.get((start + k) % n) else {
            break;
        };
        let picked = usize::from(selected(e, pick));
        let cost = picked
            * (usize::from(e.inc != 0) * entry_len(e.id.len())
                + usize::from(e.dec != 0) * entry_len(e.id.len()));
        if used + cost > budget {
            break;
        }
        used += cost;
        count += 1;
        nonzero += usize::from(cost != 0);
    }
    (nonzero > 0).then_some(Window { start, count })
}

/// The two sides of a window, in id order.
pub(crate) fn sides<const L: usize>(
    entries: &[Entry<L>],
    w: Window,
    pick: Pick,
) -> (Side<'_, L>, Side<'_, L>) {
    let n = entries.len();
    let end = w.start + w.count;
    let (head, tail): (&[Entry<L>], &[Entry<L>]) = if end <= n {
        (entries.get(w.start..end).unwrap_or_default(), &[])
    } else {
        // Wrapped: the low part [0, end - n) comes first in id order.
        (
            entries.get(..end - n).unwrap_or_default(),
            entries.get(w.start..).unwrap_or_default(),
        )
    };
    let side = |which| Side {
        head: head.iter(),
        tail: tail.iter(),
        which,
        pick,
    };
    (side(Which::Inc), side(Which::Dec))
}

/// Emits the Push of window `w` (entries changed after `since`) into `buf`.
pub(crate) fn emit<const L: usize>(
    entries: &[Entry<L>],
    w: Window,
    pick: Pick,
    sender: &str,
    buf: &mut [u8],
) -> Result<usize, BufferTooSmall> {
    let (inc, dec) = sides(entries, w, pick);
    Message::Push {
        id: sender,
        inc,
        dec,
    }
    .emit(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Message, MessageLimits};
    use crate::NodeId;

    const ALL: Pick = Pick {
        since: 0,
        exclude: 0,
    };

    fn entries(n: usize) -> Vec<Entry<16>> {
        (0..n)
            .map(|i| {
                Entry::new(
                    NodeId::new(&format!("n{i:03}")).unwrap(),
                    i as u64 + 1,
                    (i % 2) as u64,
                )
            })
            .collect()
    }

    #[test]
    fn windows_cover_everything_in_turn() {
        let es = entries(50);
        let mut start = 0;
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..10 {
            let w = fit_window(&es, start, "me:1", 300, ALL).unwrap();
            let mut buf = [0u8; 300];
            let len = emit(&es, w, ALL, "me:1", &mut buf).unwrap();
            assert!(len <= 300);
            match Message::parse(&buf[..len], &MessageLimits::HOST).unwrap() {
                Message::Push { inc, .. } => {
                    assert!(inc.ids_sorted());
                    seen.extend(inc.map(|(id, _)| id.to_string()));
                }
                m => panic!("{m:?}"),
            }
            start = w.start + w.count;
        }
        assert_eq!(seen.len(), 50);
    }

    #[test]
    fn nothing_fits_or_nothing_to_send() {
        let es = entries(3);
        assert_eq!(fit_window(&es, 0, "me:1", 20, ALL), None);
        let zero = [Entry::zero(NodeId::<16>::new("z").unwrap())];
        assert_eq!(fit_window(&zero, 0, "me:1", 1000, ALL), None);
    }
}
