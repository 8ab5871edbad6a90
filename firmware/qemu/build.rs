//! Picks the memory map of the emulated machine from the target (or the `mps2-an385` feature)
//! and tells `main` its name. Where the RAM holds an arena of each board's heap (RV32 `virt`,
//! `mps2-an385`), sets `cfg(board_heaps)`: the zstd checks then run under each board's frame
//! limits in a heap of exactly that board's size.
use std::{env, fs, path::PathBuf};

fn main() {
    let target = env::var("TARGET").unwrap_or_default();
    let mps2 = env::var_os("CARGO_FEATURE_MPS2_AN385").is_some();
    let (machine, memory, board_heaps) = if mps2 {
        assert!(
            target.starts_with("thumbv"),
            "the mps2-an385 feature is for thumbv6m/thumbv7m targets"
        );
        (
            "qemu mps2-an385 (Cortex-M3 running ARMv6-M code: 4 MiB code, 4 MiB RAM)",
            "memory/mps2-an385.x",
            true,
        )
    } else if target.starts_with("thumbv6m") {
        (
            "qemu microbit (Cortex-M0, nRF51: 256 KiB flash, 16 KiB RAM)",
            "memory/microbit.x",
            false,
        )
    } else if target.starts_with("thumbv7m") {
        (
            "qemu lm3s6965evb (Cortex-M3: 256 KiB flash, 64 KiB RAM)",
            "memory/lm3s6965.x",
            false,
        )
    } else {
        ("qemu virt (RV32)", "memory/riscv-virt.x", true)
    };
    let out = PathBuf::from(env::var("OUT_DIR").unwrap_or_default());
    let _ = fs::copy(memory, out.join("memory.x"));
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-env=TALLY_MACHINE={machine}");
    println!("cargo::rustc-check-cfg=cfg(board_heaps)");
    if board_heaps {
        println!("cargo:rustc-cfg=board_heaps");
    }
    println!("cargo:rerun-if-changed=memory");
    println!("cargo:rerun-if-changed=build.rs");
}
