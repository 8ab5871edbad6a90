//! A frame compressed by a host node (C zstd, level 3, 8 KiB window, checksum; see
//! `fixtures/README.md`) decoded by `ruzstd` on the MCU within the MCU limits — or, in a build
//! without zstd, rejected cleanly.

use crate::ensure;
use crate::suite::{hex, Outcome};
use tally_core::frame;
#[cfg(feature = "zstd")]
use tally_core::frame::FLAG_ZSTD;
#[cfg(feature = "zstd")]
use tally_core::{Config, FixedEngine, Instant, NodeId};
use tally_core::{FrameLimits, WireError};

const FRAME: &str = include_str!("../fixtures/push32.zst-frame.hex");
#[cfg(feature = "zstd")]
const PLAIN: &str = include_str!("../fixtures/push32.msgpack.hex");
/// What the fixture's Push carries (see `fixture-gen`).
#[cfg(feature = "zstd")]
const VALUE: i128 = 46_815;
#[cfg(feature = "zstd")]
const ENTRIES: usize = 32;

#[cfg(feature = "zstd")]
pub fn host_frame_decodes_and_merges() -> Outcome {
    let mut frame = [0u8; 512];
    let n = hex(FRAME, &mut frame)?;
    let frame = frame.get(..n).ok_or("frame")?;
    ensure!(
        frame.first() == Some(&FLAG_ZSTD),
        "fixture is not a zstd frame"
    );
    let mut plain = [0u8; 2048];
    let p = hex(PLAIN, &mut plain)?;
    let (before, _) = crate::platform::heap_usage();
    {
        let body =
            frame::decode(frame, &FrameLimits::MCU).map_err(|_| "ruzstd rejected the frame")?;
        ensure!(
            body.bytes() == plain.get(..p).unwrap_or_default(),
            "decoded bytes differ"
        );
        let (_, peak) = crate::platform::heap_usage();
        crate::println!("  {} B frame -> {} B message; heap peak {} B", n, p, peak);
    }
    ensure!(
        crate::platform::heap_usage().0 == before,
        "heap not released"
    );
    let me = NodeId::new("10.0.0.8:9000").map_err(|_| "id")?;
    let mut e =
        FixedEngine::<40, 2, 24>::new(me, me, Config::mcu(), Instant::ZERO).map_err(|_| "room")?;
    let h = e
        .handle(Instant::ZERO, "10.0.0.7:9000", frame)
        .map_err(|err| {
            crate::println!("  rejected: {}", err.name());
            "engine rejected it"
        })?;
    ensure!(h.changed, "merge changed nothing");
    ensure!(e.value() == VALUE, "value after the merge");
    ensure!(
        e.counter().nonzero_len() == ENTRIES,
        "entries after the merge"
    );
    Ok(())
}

/// The largest message an MCU accepts (8 KiB), compressed by a host: the heap's worst case.
/// Run where the heap is the boards' 60 KiB (RV32).
#[cfg(all(feature = "zstd", target_arch = "riscv32"))]
const MAX8K: &str = include_str!("../fixtures/max8k.zst-frame.hex");

#[cfg(all(feature = "zstd", target_arch = "riscv32"))]
pub fn largest_accepted_message_fits_the_heap() -> Outcome {
    decode_within_heap(MAX8K, 8192)
}

/// A 4 KiB message (the W5500 board's limit, see `firmware/pico-w`), compressed by a host.
#[cfg(feature = "zstd")]
const MAX4K: &str = include_str!("../fixtures/max4k.zst-frame.hex");

#[cfg(feature = "zstd")]
pub fn four_kib_message_fits_a_small_heap() -> Outcome {
    decode_within_heap(MAX4K, 4096)
}

#[cfg(feature = "zstd")]
fn decode_within_heap(text: &str, want: usize) -> Outcome {
    let mut frame = [0u8; 4096];
    let n = hex(text, &mut frame)?;
    let (before, _) = crate::platform::heap_usage();
    let len = frame::decode(frame.get(..n).unwrap_or_default(), &FrameLimits::MCU)
        .map_err(|_| "ruzstd rejected the 8 KiB frame")?
        .bytes()
        .len();
    ensure!(len == want, "decoded length");
    let (after, peak) = crate::platform::heap_usage();
    ensure!(after == before, "heap not released");
    crate::println!("  {} B frame -> {} B message; heap peak {} B", n, len, peak);
    Ok(())
}

#[cfg(feature = "zstd")]
pub fn corrupt_and_oversized_frames_are_rejected() -> Outcome {
    let mut frame = [0u8; 512];
    let n = hex(FRAME, &mut frame)?;
    // Flip a bit in the middle: checksum or structure must catch it.
    if let Some(b) = frame.get_mut(n / 2) {
        *b ^= 0x10;
    }
    let r = frame::decode(frame.get(..n).unwrap_or_default(), &FrameLimits::MCU);
    ensure!(
        matches!(r, Err(WireError::ZstdChecksum | WireError::ZstdMalformed)),
        "corrupt frame not rejected"
    );
    // A header declaring a 1 MiB window is refused before anything is allocated.
    let big_window = [FLAG_ZSTD, 0x28, 0xb5, 0x2f, 0xfd, 0x00, 10 << 3, 0, 0, 0];
    let r = frame::decode(&big_window, &FrameLimits::MCU);
    ensure!(
        r.err() == Some(WireError::ZstdWindowTooLarge),
        "large window accepted"
    );
    Ok(())
}

#[cfg(not(feature = "zstd"))]
pub fn compressed_frame_is_refused_without_zstd() -> Outcome {
    let mut frame = [0u8; 512];
    let n = hex(FRAME, &mut frame)?;
    let r = frame::decode(frame.get(..n).unwrap_or_default(), &FrameLimits::MCU);
    ensure!(
        r.err() == Some(WireError::CompressionUnsupported),
        "a build without zstd must refuse compressed frames"
    );
    Ok(())
}
