//! Raw zstd frames (no flag byte) into `tally_core::zstd::decompress` with every board's
//! limits (`tally_core::frame::BOARDS`) and the host limits: it must never panic; what it returns must fit the
//! decompressed-size limit and the declared content size; whatever it accepts, the reference
//! decoder (libzstd, through the `zstd` crate) must decode to the same bytes; and the heap it
//! uses on the way must stay within the heap of the board whose limits it ran under (spec §3:
//! refuse *before* allocating; a failed allocation aborts a board), and in proportion to the
//! host limits.
//!
//! Found by this target and fixed in the core: `ruzstd` does not enforce the
//! Block_Maximum_Size of RFC 8878 (min(window, 128 KiB)) and allocated what a block declares
//! before the core's limits were checked: a 14-byte frame declaring 1 MiB of RLE literals made
//! `decompress` allocate ~2.4 MB under the 8 KiB microcontroller limits. It also ignores the
//! Reserved bits of Symbol_Compression_Modes, which libzstd rejects. The core now refuses both
//! before ruzstd sees the block, so these frames get every check above with no exemption;
//! [`known_divergences`] only names them in the failure messages, and the seeds
//! `seed-oversized-block`, `seed-rle-literals-1mib`, `seed-many-sequences` and
//! `seed-reserved-bits` keep them in the corpus.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use tally_core::frame::{FrameLimits, BOARDS};
use tally_core::zstd::{decompress, read_header};

/// `System`, keeping the current and peak number of heap bytes in use.
struct PeakAlloc;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grow(by: usize) {
    let now = IN_USE.fetch_add(by, Relaxed) + by;
    PEAK.fetch_max(now, Relaxed);
}

// SAFETY: every method forwards to `System` unchanged; the counters are plain atomics.
unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grow(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grow(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        IN_USE.fetch_sub(layout.size(), Relaxed);
        grow(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        IN_USE.fetch_sub(layout.size(), Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: PeakAlloc = PeakAlloc;

/// Runs `f`; returns its result and the peak heap bytes it added.
fn peak_of<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let base = IN_USE.load(Relaxed);
    PEAK.store(base, Relaxed);
    let r = f();
    (r, PEAK.load(Relaxed).saturating_sub(base))
}

/// The limits to run every input under, each with the heap `decompress` may use under them:
/// each board's limits with the smallest zstd heap of the boards that run them (`BOARDS`,
/// README "Boards"), since a failed allocation aborts a board; then the host limits with a
/// generous bound, the decoder's tables (valid frames measure 9–25 KB) plus a few times the
/// window and the output limit.
fn limits_and_bounds() -> Vec<(&'static str, FrameLimits, usize)> {
    let mut all: Vec<(&'static str, FrameLimits, usize)> = Vec::new();
    for b in BOARDS {
        match all.iter_mut().find(|(_, l, _)| *l == b.limits) {
            Some(same) if same.2 <= b.zstd_heap => {}
            Some(same) => *same = (b.name, b.limits, b.zstd_heap),
            None => all.push((b.name, b.limits, b.zstd_heap)),
        }
    }
    let h = FrameLimits::HOST;
    all.push((
        "host",
        h,
        64 * 1024 + 4 * (h.max_window + h.max_decompressed),
    ));
    all
}

/// What the frame has of the known, reported divergences (see the module docs).
#[derive(Clone, Copy, Debug, Default)]
struct Known {
    /// A block declares more than RFC 8878's Block_Maximum_Size = min(window, 128 KiB)
    /// allows: a Block_Size above it, or a compressed block whose literals
    /// (Regenerated_Size) plus 3 bytes per sequence (the shortest match) exceed it. No valid
    /// frame has such a block; ruzstd allocates for it.
    oversized_block: bool,
    /// A compressed block's Symbol_Compression_Modes byte has its Reserved bits (1–0) set,
    /// which RFC 8878 forbids; libzstd rejects it, ruzstd ignores them.
    reserved_bits: bool,
}

/// Walks the blocks of a frame, up to anything unreadable, looking for the known divergences.
fn known_divergences(data: &[u8]) -> Known {
    let mut known = Known::default();
    let Ok(h) = read_header(data) else {
        return known;
    };
    let max = h.window.min(128 * 1024);
    let Some(&fhd) = data.get(4) else {
        return known;
    };
    let single_segment = fhd & 0x20 != 0;
    let fcs_len = match (fhd >> 6, single_segment) {
        (0, false) => 0,
        (0, true) => 1,
        (1, _) => 2,
        (2, _) => 4,
        _ => 8,
    };
    let byte = |i: usize| data.get(i).map(|&b| u64::from(b));
    let mut pos = 5 + usize::from(!single_segment) + fcs_len;
    loop {
        let (Some(b0), Some(b1), Some(b2)) = (byte(pos), byte(pos + 1), byte(pos + 2)) else {
            return known;
        };
        let header = b0 | b1 << 8 | b2 << 16;
        let (last, kind, size) = (header & 1 != 0, (header >> 1) & 3, header >> 3);
        pos += 3;
        if size > max {
            known.oversized_block = true;
            return known;
        }
        match kind {
            0 => pos += size as usize,
            1 => pos += 1,
            2 => {
                let (min_output, reserved) =
                    inspect_compressed_block(|i| pos.checked_add(i).and_then(byte));
                known.reserved_bits |= reserved;
                if min_output.is_some_and(|n| n > max) {
                    known.oversized_block = true;
                    return known;
                }
                pos += size as usize;
            }
            _ => return known,
        }
        if last {
            return known;
        }
    }
}

/// The least a compressed block can decode to (its literals plus 3 bytes per sequence; `None`
/// when the block is empty), and whether its Symbol_Compression_Modes has Reserved bits set.
fn inspect_compressed_block(byte: impl Fn(usize) -> Option<u64>) -> (Option<u64>, bool) {
    let Some(l0) = byte(0) else {
        return (None, false);
    };
    let l = |i| byte(i).unwrap_or(0);
    let format = (l0 >> 2) & 3;
    // (Regenerated_Size, size of the literals section).
    let (regenerated, section) = if l0 & 3 < 2 {
        // Raw or RLE literals: the section holds the bytes, or one byte to repeat.
        let (regenerated, header) = match format {
            0 | 2 => (l0 >> 3, 1),
            1 => ((l0 >> 4) | l(1) << 4, 2),
            _ => ((l0 >> 4) | l(1) << 4 | l(2) << 12, 3),
        };
        let body = if l0 & 3 == 0 { regenerated } else { 1 };
        (regenerated, header + body)
    } else {
        // Huffman-compressed or treeless literals: the section holds Compressed_Size bytes.
        let (regenerated, compressed, header) = match format {
            0 | 1 => ((l0 >> 4) | (l(1) & 0x3f) << 4, (l(1) >> 6) | l(2) << 2, 3),
            2 => (
                (l0 >> 4) | l(1) << 4 | (l(2) & 0x03) << 12,
                (l(2) >> 2) | l(3) << 6,
                4,
            ),
            _ => (
                (l0 >> 4) | l(1) << 4 | (l(2) & 0x3f) << 12,
                (l(2) >> 6) | l(3) << 2 | l(4) << 10,
                5,
            ),
        };
        (regenerated, header + compressed)
    };
    // Number_of_Sequences (0 when the header is cut short: the literals alone may be too many).
    let Ok(at) = usize::try_from(section) else {
        return (Some(regenerated), false);
    };
    // (Number_of_Sequences, where Symbol_Compression_Modes is).
    let (sequences, modes_at) = match byte(at) {
        None | Some(0) => (0, None),
        Some(s @ 1..=127) => (s, Some(at + 1)),
        Some(s @ 128..=254) => {
            byte(at + 1).map_or((0, None), |b| (((s - 128) << 8) + b, Some(at + 2)))
        }
        Some(_) => match (byte(at + 1), byte(at + 2)) {
            (Some(b1), Some(b2)) => (b1 + (b2 << 8) + 0x7f00, Some(at + 3)),
            _ => (0, None),
        },
    };
    let reserved = modes_at.and_then(&byte).is_some_and(|m| m & 3 != 0);
    (Some(regenerated + 3 * sequences), reserved)
}

fuzz_target!(|data: &[u8]| {
    static RUNS: std::sync::OnceLock<Vec<(&'static str, FrameLimits, usize)>> =
        std::sync::OnceLock::new();
    let known = known_divergences(data);
    for &(board, limits, bound) in RUNS.get_or_init(limits_and_bounds) {
        let (result, peak) = peak_of(|| decompress(data, &limits));
        // The core now refuses oversized blocks before decoding them: no exemption here.
        assert!(
            peak <= bound,
            "decompress used {peak} B of heap with the {board} limits {limits:?}, whose heap is \
             {bound} B (oversized block: {})",
            known.oversized_block
        );
        let Ok(out) = result else {
            continue;
        };
        assert!(
            out.len() <= limits.max_decompressed,
            "{} bytes out, limit {}",
            out.len(),
            limits.max_decompressed
        );
        // A frame that declares its content size must deliver exactly that.
        let Ok(h) = read_header(data) else {
            panic!("decompress accepted a frame whose header read_header rejects");
        };
        assert!(h.window <= limits.max_window as u64);
        if let Some(c) = h.content_size {
            assert_eq!(c, out.len() as u64, "declared content size");
        }
        match zstd::bulk::decompress(data, limits.max_decompressed) {
            Ok(reference) => assert!(reference == out, "ruzstd and libzstd disagree"),
            Err(e) => panic!(
                "the core accepted a frame libzstd rejects: {e} (oversized block: {}, reserved bits: {})",
                known.oversized_block, known.reserved_bits
            ),
        }
    }
});
