//! tally-core on emulated microcontrollers: the spec's vectors, CRDT properties, a
//! multi-engine convergence run and (with `zstd`) decoding a host-compressed frame.
//!
//! Runs on QEMU — Cortex-M3 `lm3s6965evb` (thumbv7m, zstd), Cortex-M0 `microbit` (thumbv6m,
//! 16 KiB RAM, no zstd), Cortex-M3 `mps2-an385` running the RP2040's thumbv6m code (feature
//! `mps2-an385`, zstd, an arena of each board's heap) and RISC-V `virt` (riscv32imc, zstd,
//! each board's heap too) — prints one line per check and
//! `N passed, N failed`, and leaves QEMU through semihosting with status 0 or 1.
#![no_std]
#![no_main]

mod convergence;
mod platform;
mod properties;
mod suite;
mod vectors;
mod zstd;

use suite::Suite;

#[platform::entry]
fn main() -> ! {
    platform::init_heap();
    println!(
        "tally-core suite on {} (zstd: {})",
        env!("TALLY_MACHINE"),
        cfg!(feature = "zstd")
    );
    let mut s = Suite::default();
    s.run(
        "vectors::push_a_emits_byte_for_byte",
        vectors::push_a_emits_byte_for_byte,
    );
    s.run(
        "vectors::parse_then_emit_identically",
        vectors::vectors_parse_then_emit_identically,
    );
    s.run(
        "vectors::digest_matches_vector",
        vectors::digest_matches_vector,
    );
    s.run(
        "vectors::engine_writes_pull_b_and_ack_c",
        vectors::engine_writes_pull_b_and_ack_c,
    );
    s.run(
        "vectors::decodes_the_compact_forms_of_e",
        vectors::decodes_the_compact_forms_of_e,
    );
    s.run(
        "properties::merge_is_commutative_associative_idempotent",
        properties::merge_is_commutative_associative_idempotent,
    );
    s.run(
        "properties::value_is_the_sum_of_operations",
        properties::value_is_the_sum_of_operations,
    );
    s.run(
        "properties::push_round_trips_through_the_wire",
        properties::push_round_trips_through_the_wire,
    );
    s.run(
        "properties::random_bytes_never_panic",
        properties::random_bytes_never_panic,
    );
    s.run(
        "convergence::nodes_converge_through_loss_and_a_partition",
        convergence::nodes_converge_through_loss_and_a_partition,
    );
    #[cfg(feature = "zstd")]
    {
        s.run(
            "zstd::host_frame_decodes_and_merges",
            zstd::host_frame_decodes_and_merges,
        );
        s.run(
            "zstd::four_kib_message_fits_a_small_heap",
            zstd::four_kib_message_fits_a_small_heap,
        );
        #[cfg(board_heaps)]
        s.run(
            "zstd::every_board_decodes_within_its_heap",
            zstd::every_board_decodes_within_its_heap,
        );
        s.run(
            "zstd::corrupt_and_oversized_frames_are_rejected",
            zstd::corrupt_and_oversized_frames_are_rejected,
        );
    }
    #[cfg(not(feature = "zstd"))]
    s.run(
        "zstd::compressed_frame_is_refused_without_zstd",
        zstd::compressed_frame_is_refused_without_zstd,
    );
    platform::exit(s.finish())
}
