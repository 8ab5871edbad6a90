//! Shared helpers for Tally's integration tests.

pub mod reference;

use std::time::{Duration, Instant};

/// Polls `f` every 10 ms until it is true or `timeout` passes; returns whether it became true.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The body of `GET url` as text. Panics when there is none: tests only.
pub async fn get_text(client: &reqwest::Client, url: &str) -> String {
    let answer = client.get(url).send().await;
    let answer = answer.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    answer
        .text()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// Decodes hex (whitespace ignored). Panics on bad hex: test fixtures only.
pub fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .filter_map(|i| s.get(i..i + 2))
        .filter_map(|b| u8::from_str_radix(b, 16).ok())
        .collect()
}

/// A fixture of the core (`core/fixtures/NAME`), decoded.
pub fn core_fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../core/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    hex(&std::fs::read_to_string(path).unwrap_or_default())
}
