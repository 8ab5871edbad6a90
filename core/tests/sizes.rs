//! Memory of the microcontroller profile: a 32-entry counter and engine with 64-byte ids.
//!
//! The figures are README's (section "Memory"): the test fails when a type outgrows them, so a
//! change that makes the profile bigger must update README too.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use tally_core::{FixedCounter, FixedEngine};

/// README: `FixedCounter<32, 64>` ≤ 3,184 B.
const COUNTER_README: usize = 3_184;
/// README: `FixedEngine<32, 16, 64>` ≤ 8,192 B.
const ENGINE_README: usize = 8_192;
/// README: within the 8 KiB budget.
const BUDGET: usize = 8 * 1024;

#[test]
fn mcu_profile_fits_its_budget() {
    let counter = core::mem::size_of::<FixedCounter<32, 64>>();
    let engine = core::mem::size_of::<FixedEngine<32, 16, 64>>();
    println!("size_of FixedCounter<32, 64> = {counter} B; FixedEngine<32, 16, 64> = {engine} B");
    assert!(
        counter <= COUNTER_README,
        "FixedCounter<32, 64> is {counter} B, README says at most {COUNTER_README} B"
    );
    assert!(
        engine <= ENGINE_README,
        "FixedEngine<32, 16, 64> is {engine} B, README says at most {ENGINE_README} B"
    );
    // The engine holds the counter; its whole footprint, peers and queue included, is the budget.
    assert!(engine <= BUDGET, "engine is {engine} B");
    assert!(counter < engine);
    // A named counter's cell, as docs/EXTENSIONS.md §6.6 states it.
    assert_eq!(core::mem::size_of::<tally_core::named::Cell>(), 40);
}

/// The figures asserted above are the ones README prints.
#[test]
fn readme_states_the_asserted_figures() {
    let readme = include_str!("../../README.md");
    for (name, bytes) in [
        ("FixedCounter<32, 64>` ≤ ", COUNTER_README),
        ("stats) ≤ ", ENGINE_README),
    ] {
        let figure = format!("{},{:03} B", bytes / 1000, bytes % 1000);
        let want = format!("{name}{figure}");
        assert!(readme.contains(&want), "README lacks {want:?}");
    }
}
