//! Picks the memory map of the emulated machine from the target and tells `main` its name.
use std::{env, fs, path::PathBuf};

fn main() {
    let target = env::var("TARGET").unwrap_or_default();
    let (machine, memory) = if target.starts_with("thumbv6m") {
        (
            "qemu microbit (Cortex-M0, nRF51: 256 KiB flash, 16 KiB RAM)",
            "memory/microbit.x",
        )
    } else if target.starts_with("thumbv7m") {
        (
            "qemu lm3s6965evb (Cortex-M3: 256 KiB flash, 64 KiB RAM)",
            "memory/lm3s6965.x",
        )
    } else {
        ("qemu virt (RV32)", "memory/riscv-virt.x")
    };
    let out = PathBuf::from(env::var("OUT_DIR").unwrap_or_default());
    let _ = fs::copy(memory, out.join("memory.x"));
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-env=TALLY_MACHINE={machine}");
    println!("cargo:rerun-if-changed=memory");
    println!("cargo:rerun-if-changed=build.rs");
}
