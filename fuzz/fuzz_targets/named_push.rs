//! One named-counter Push (`docs/EXTENSIONS.md` §6, no flag byte), parsed with the host limits
//! and with tight ones.
//!
//! Every Push that parses holds valid, strictly sorted names and ids within the limits and no
//! floor above its total; it survives emit → parse unchanged, and merges into a map (which
//! refuses it only for lack of room) whose cells are the parsed ones.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tally_core::named::wire::{self, NamedLimits, NamedPush};
use tally_core::named::{CounterName, GrowableCounterMap, Totals};

const TIGHT: NamedLimits = NamedLimits {
    max_id_len: 64,
    max_counters: 4,
    max_cells: 16,
};

fuzz_target!(|data: &[u8]| {
    for limits in [NamedLimits::HOST, TIGHT] {
        let Ok(p) = NamedPush::parse(data, &limits) else {
            continue;
        };
        assert!(!p.id.is_empty() && p.id.len() <= limits.max_id_len);
        let cells: Vec<_> = p.cells.clone().collect();
        assert!(!cells.is_empty() && cells.len() <= limits.max_cells);
        for pair in cells.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            assert!((a.0.as_bytes(), a.1.as_bytes()) < (b.0.as_bytes(), b.1.as_bytes()));
        }
        for (name, id, t) in &cells {
            assert!(CounterName::new(name).is_ok(), "name {name:?}");
            assert!(!id.is_empty() && id.len() <= limits.max_id_len);
            assert!(t.floor_inc <= t.inc && t.floor_dec <= t.dec);
        }
        // Room for the largest encoding of every cell (each with its name).
        let room = wire::push_overhead(p.id)
            + cells
                .iter()
                .map(|(n, i, _)| wire::cell_cost(Some(n), i))
                .sum::<usize>();
        let mut buf = vec![0u8; room];
        let n = wire::emit(p.id, cells.iter().copied(), &mut buf).expect("room to re-emit");
        let again = NamedPush::parse(&buf[..n], &limits).expect("re-emitted Push parses");
        assert_eq!(again.cells.collect::<Vec<_>>(), cells);
        let mut map = GrowableCounterMap::<255>::new();
        if map.merge(p.cells.clone()).is_ok() {
            let merged: Vec<_> = map.cells().collect();
            // A cell of all zeros holds nothing: merge keeps no such cell.
            let held: Vec<_> = cells
                .iter()
                .copied()
                .filter(|(_, _, t)| *t != Totals::default())
                .collect();
            assert_eq!(merged, held);
        }
    }
});
