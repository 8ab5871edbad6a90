//! A frame compressed by a host node (C zstd, level 3, 8 KiB window, checksum; see
//! `fixtures/README.md`) decoded by `ruzstd` on the MCU within the MCU limits, and the largest
//! host messages within each board's limits and heap — or, in a build without zstd, rejected
//! cleanly.

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
#[cfg(all(feature = "zstd", board_heaps))]
const MAX8K: &str = include_str!("../fixtures/max8k.zst-frame.hex");

/// A 4 KiB message (the W5500 board's limit), compressed by a host.
#[cfg(feature = "zstd")]
const MAX4K: &str = include_str!("../fixtures/max4k.zst-frame.hex");

/// The 4 KiB message under the W5500-EVB-Pico's limits in the suite's heap (on the Cortex-M3's
/// 64 KiB RAM the only heap check; where every board has its arena, see below).
#[cfg(feature = "zstd")]
pub fn four_kib_message_fits_a_small_heap() -> Outcome {
    let mut frame = [0u8; 4096];
    let n = hex(MAX4K, &mut frame)?;
    let (before, _) = crate::platform::heap_usage();
    let (len, peak) = crate::platform::in_arena(0, || {
        frame::decode(frame.get(..n).unwrap_or_default(), &FrameLimits::W5500)
            .map(|body| body.bytes().len())
    });
    let len = len.map_err(|_| "ruzstd rejected the 4 KiB frame")?;
    ensure!(len == 4096, "decoded length");
    ensure!(
        crate::platform::heap_usage().0 == before,
        "heap not released"
    );
    crate::println!("  {} B frame -> {} B message; heap peak {} B", n, len, peak);
    let w5500 = tally_core::frame::BOARDS
        .iter()
        .find(|b| b.limits == FrameLimits::W5500)
        .map_or(0, |b| b.zstd_heap);
    ensure!(
        peak <= w5500 - w5500 / 8,
        "leaves less than 1/8 of the W5500-EVB-Pico's heap"
    );
    Ok(())
}

/// The part of a board's heap that decoding must leave free: one eighth.
#[cfg(all(feature = "zstd", board_heaps))]
const MARGIN_DIV: usize = 8;

/// Every board (`tally_core::frame::BOARDS`) decodes the largest host message it accepts under
/// its own limits in an arena of exactly its zstd heap (an allocation failure fails the suite),
/// peaking at most seven eighths of that heap, and refuses the larger one before allocating.
#[cfg(all(feature = "zstd", board_heaps))]
pub fn every_board_decodes_within_its_heap() -> Outcome {
    use tally_core::frame::BOARDS;
    let mut failed = false;
    for (arena, board) in BOARDS.iter().enumerate() {
        ensure!(
            crate::platform::ARENAS.get(arena) == Some(&board.zstd_heap),
            "arena size"
        );
        let limits = board.limits;
        let heap = board.zstd_heap;
        for (text, want) in [(MAX4K, 4096), (MAX8K, 8192)] {
            let mut frame = [0u8; 4096];
            let n = hex(text, &mut frame)?;
            let frame = frame.get(..n).unwrap_or_default();
            let (got, peak) = crate::platform::in_arena(arena, || {
                frame::decode(frame, &limits).map(|body| body.bytes().len())
            });
            ensure!(
                crate::platform::arena_in_use(arena) == 0,
                "heap not released"
            );
            if want > limits.max_decompressed {
                ensure!(
                    matches!(
                        got,
                        Err(WireError::ZstdWindowTooLarge | WireError::ZstdContentTooLarge)
                    ),
                    "a message over the board's limit was not refused"
                );
                ensure!(peak == 0, "allocated for a refused frame");
                crate::println!(
                    "  {}: {} B message refused ({}), heap peak {} B",
                    board.name,
                    want,
                    got.err().map_or("-", |e| e.name()),
                    peak
                );
                continue;
            }
            ensure!(got == Ok(want), "decoded length");
            let ok = peak <= heap - heap / MARGIN_DIV;
            failed |= !ok;
            crate::println!(
                "  {}: {} B frame -> {} B message; heap peak {} B of {} B ({}%){}",
                board.name,
                n,
                want,
                peak,
                heap,
                peak * 100 / heap,
                if ok { "" } else { "  OVER 7/8 OF THE HEAP" }
            );
        }
    }
    ensure!(
        !failed,
        "a board's decoding leaves less than 1/8 of its heap"
    );
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
