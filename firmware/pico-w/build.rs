//! Puts `memory.x` on the linker path and, for the Pico W, turns the CYW43439 NVRAM text into
//! the blob the driver loads: every non-empty line followed by a NUL, two more NULs at the end,
//! padded with NULs to a multiple of 4 bytes.
//!
//! The NVRAM is public board data carried in this package (`cyw43-nvram-pico-w.txt`, see
//! `cyw43-nvram-pico-w.NOTICE.md`); `TALLY_CYW43_NVRAM` names another file.
use std::path::PathBuf;
use std::{env, fs};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default());
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    if let Err(e) = fs::copy(manifest.join("memory.x"), out.join("memory.x")) {
        panic!("cannot copy memory.x: {e}");
    }
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=TALLY_CYW43_NVRAM");
    for var in [
        "TALLY_PEERS",
        "TALLY_ID",
        "TALLY_WIFI_SSID",
        "TALLY_WIFI_PASSWORD",
        "TALLY_CLUSTER_KEY",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }

    if env::var_os("CARGO_FEATURE_PICO_W").is_none() {
        return;
    }
    let path = env::var_os("TALLY_CYW43_NVRAM")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("cyw43-nvram-pico-w.txt"));
    println!("cargo:rerun-if-changed={}", path.display());
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => panic!(
            "cannot read the CYW43439 NVRAM file {}: {e}\n\
             It ships with this package; TALLY_CYW43_NVRAM may name another copy.",
            path.display()
        ),
    };
    let mut blob = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        blob.extend_from_slice(line.as_bytes());
        blob.push(0);
    }
    blob.extend_from_slice(&[0, 0]);
    while blob.len() % 4 != 0 {
        blob.push(0);
    }
    if let Err(e) = fs::write(out.join("nvram.bin"), &blob) {
        panic!("cannot write the NVRAM blob: {e}");
    }
}
