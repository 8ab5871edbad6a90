//! Recovery's log lines: one `warn` naming the file, the offset and the bytes dropped, and an
//! `info` with the recovery time. (Alone in its binary: tracing's per-thread subscriber is not
//! reliable while other tests log from other threads.)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use tally::wal::format::framed_len;
use tally::wal::segment::segment_name;
use tally::wal::{Wal, WalConfig};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn wal_torn_tail_is_logged_in_one_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(WalConfig::new(tmp.path())).unwrap();
    for i in 1..=10 {
        wal.wait(wal.append_local("me", i, 0).unwrap()).unwrap();
    }
    drop(wal);
    let path = tmp.path().join(segment_name(1));
    let bytes = std::fs::read(&path).unwrap();
    let last = framed_len(&bytes[20..]).unwrap();
    let start = bytes.len() - last;
    std::fs::write(&path, &bytes[..start + 5]).unwrap();

    let out = Captured::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let rec = tracing::subscriber::with_default(subscriber, || {
        Wal::open(WalConfig::new(tmp.path())).unwrap().1
    });
    assert_eq!(rec.dropped_bytes, 5);
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    println!("{text}");
    let warns: Vec<&str> = text.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warns.len(), 1, "{text}");
    for needle in [
        &path.display().to_string(),
        &format!("offset {start}"),
        "dropping 5 bytes",
    ] {
        assert!(warns[0].contains(needle), "{needle:?} not in {}", warns[0]);
    }
    assert!(
        text.lines()
            .any(|l| l.contains("INFO") && l.contains("elapsed")),
        "{text}"
    );
}
