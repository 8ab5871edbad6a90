//! Memory of the microcontroller profile: a 32-entry counter and engine with 64-byte ids.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use tally_core::{FixedCounter, FixedEngine};

#[test]
fn mcu_profile_fits_its_budget() {
    let counter = core::mem::size_of::<FixedCounter<32, 64>>();
    let engine = core::mem::size_of::<FixedEngine<32, 16, 64>>();
    println!("size_of FixedCounter<32, 64> = {counter} B; FixedEngine<32, 16, 64> = {engine} B");
    // The engine holds the counter; its whole footprint, peers and queue included, is the budget.
    assert!(engine <= 8 * 1024, "engine is {engine} B");
    assert!(counter < engine);
}
