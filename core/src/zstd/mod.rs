//! zstd decoding with `ruzstd`, with every limit checked before allocating.
//!
//! The frame header (RFC 8878 §3.1.1) is read here first: magic, window size and declared
//! content size are compared with the receiver's limits before `ruzstd` is handed the bytes.
//! Dictionaries and skippable frames are refused; a declared content checksum is verified
//! (XXH64, low 32 bits); bytes after the frame are refused.
//!
//! Every block is checked before `ruzstd` decodes it (RFC 8878: no block regenerates more than
//! min(window, 128 KiB)): its size, its literals, and for a compressed block the exact length
//! its sequences regenerate, decoded here by the `sequences` module. So nothing a frame
//! declares can make `ruzstd` allocate beyond the window and the output limit.

mod sequences;

use crate::error::WireError;
use crate::frame::FrameLimits;
use alloc::vec::Vec;
use core::hash::Hasher;
use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};
use sequences::Tables;

const MAGIC: u32 = 0xFD2F_B528;

/// What the frame header declares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZstdHeader {
    /// Window size in bytes.
    pub window: u64,
    /// Declared content size, when present.
    pub content_size: Option<u64>,
    /// A content checksum follows the last block.
    pub checksum: bool,
}

/// Reads and checks a zstd frame header.
pub fn read_header(bytes: &[u8]) -> Result<ZstdHeader, WireError> {
    let magic: [u8; 4] = bytes
        .get(..4)
        .and_then(|m| m.try_into().ok())
        .ok_or(WireError::ZstdMalformed)?;
    let magic = u32::from_le_bytes(magic);
    if magic != MAGIC {
        return Err(WireError::ZstdMalformed);
    }
    let &desc = bytes.get(4).ok_or(WireError::ZstdMalformed)?;
    let fcs_flag = desc >> 6;
    let single_segment = desc & 0x20 != 0;
    let reserved = desc & 0x08 != 0;
    let checksum = desc & 0x04 != 0;
    let dict_flag = desc & 0x03;
    if reserved || dict_flag != 0 {
        return Err(WireError::ZstdMalformed);
    }
    let mut pos = 5usize;
    let mut window = 0u64;
    if !single_segment {
        let &wd = bytes.get(pos).ok_or(WireError::ZstdMalformed)?;
        pos += 1;
        let exponent = u32::from(wd >> 3);
        let mantissa = u64::from(wd & 7);
        let base = 1u64 << (10 + exponent);
        window = base + (base / 8) * mantissa;
    }
    let fcs_len = match (fcs_flag, single_segment) {
        (0, false) => 0,
        (0, true) => 1,
        (1, _) => 2,
        (2, _) => 4,
        _ => 8,
    };
    let content_size = if fcs_len == 0 {
        None
    } else {
        let raw = bytes
            .get(pos..pos + fcs_len)
            .ok_or(WireError::ZstdMalformed)?;
        let v = raw
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        Some(if fcs_len == 2 { v + 256 } else { v })
    };
    if single_segment {
        window = content_size.unwrap_or(0);
    }
    Ok(ZstdHeader {
        window,
        content_size,
        checksum,
    })
}

/// Decompresses one zstd frame within `limits`.
pub fn decompress(input: &[u8], limits: &FrameLimits) -> Result<Vec<u8>, WireError> {
    let header = read_header(input)?;
    let max_out = limits.max_decompressed as u64;
    if header.window > limits.max_window as u64 {
        return Err(WireError::ZstdWindowTooLarge);
    }
    if header.content_size.is_some_and(|c| c > max_out) {
        return Err(WireError::ZstdContentTooLarge);
    }
    let mut decoder = FrameDecoder::new();
    decoder.set_max_window_size(limits.max_window as u64);
    let mut src = input;
    decoder
        .reset(&mut src)
        .map_err(|_| WireError::ZstdMalformed)?;
    let expected = header.content_size.unwrap_or(0) as usize;
    let mut out: Vec<u8> = Vec::with_capacity(expected.min(limits.max_decompressed));
    // RFC 8878: no block may exceed min(window, 128 KiB), compressed or regenerated. `ruzstd`
    // does not enforce it, so every block is checked here before it is decoded.
    let block_max = header.window.clamp(1, 128 * 1024) as usize;
    let mut tables = Tables::default();
    loop {
        let produced = out.len().saturating_add(decoder.can_collect());
        check_next_block(
            src,
            block_max,
            limits.max_decompressed.saturating_sub(produced),
            &mut tables,
        )?;
        let finished = decoder
            .decode_blocks(&mut src, BlockDecodingStrategy::UptoBlocks(1))
            .map_err(|_| WireError::ZstdMalformed)?;
        let ready = decoder.can_collect();
        if out.len().saturating_add(ready) > limits.max_decompressed {
            return Err(WireError::ZstdContentTooLarge);
        }
        let start = out.len();
        out.resize(start + ready, 0);
        let got = ruzstd::io::Read::read(&mut decoder, out.get_mut(start..).unwrap_or_default())
            .map_err(|_| WireError::ZstdMalformed)?;
        out.truncate(start + got);
        if finished && decoder.can_collect() == 0 {
            break;
        }
    }
    if !src.is_empty() {
        return Err(WireError::TrailingBytes);
    }
    if header.content_size.is_some_and(|c| c != out.len() as u64) {
        return Err(WireError::ZstdMalformed);
    }
    if header.checksum {
        let mut h = twox_hash::XxHash64::with_seed(0);
        h.write(&out);
        let want = decoder.get_checksum_from_data();
        if want != Some(h.finish() as u32) {
            return Err(WireError::ZstdChecksum);
        }
    }
    Ok(out)
}

/// Checks the block at the start of `src` against the block maximum and the output budget
/// before `ruzstd` allocates for it: its type, its size, and for a compressed block what its
/// literals and sequences sections regenerate (RFC 8878 §3.1.1.2–3.1.1.3).
fn check_next_block(
    src: &[u8],
    block_max: usize,
    budget: usize,
    tables: &mut Tables,
) -> Result<(), WireError> {
    let h: [u8; 3] = src
        .get(..3)
        .and_then(|h| h.try_into().ok())
        .ok_or(WireError::ZstdMalformed)?;
    let raw = u32::from(h[0]) | u32::from(h[1]) << 8 | u32::from(h[2]) << 16;
    let block_type = (raw >> 1) & 3;
    let size = (raw >> 3) as usize;
    if size > block_max {
        return Err(WireError::ZstdMalformed);
    }
    match block_type {
        // Raw and RLE blocks regenerate exactly `size` bytes.
        0 | 1 => {
            if size > budget {
                return Err(WireError::ZstdContentTooLarge);
            }
            Ok(())
        }
        2 => {
            let block = src.get(3..3 + size).ok_or(WireError::ZstdMalformed)?;
            let regenerated = check_compressed(block, block_max, tables)?;
            if regenerated > budget {
                return Err(WireError::ZstdContentTooLarge);
            }
            Ok(())
        }
        _ => Err(WireError::ZstdMalformed),
    }
}

/// The literals and sequences sections of a compressed block: what they regenerate may not
/// exceed the block maximum, and reserved bits must be zero. Returns the bytes regenerated.
fn check_compressed(
    block: &[u8],
    block_max: usize,
    tables: &mut Tables,
) -> Result<usize, WireError> {
    let b = |i: usize| {
        block
            .get(i)
            .copied()
            .map(usize::from)
            .ok_or(WireError::ZstdMalformed)
    };
    let b0 = b(0)?;
    let lit_type = b0 & 3;
    let size_format = (b0 >> 2) & 3;
    let (regenerated, header_len, compressed) = if lit_type < 2 {
        // Raw or RLE literals.
        let (regen, hl) = match size_format {
            0 | 2 => (b0 >> 3, 1),
            1 => ((b0 >> 4) | b(1)? << 4, 2),
            _ => ((b0 >> 4) | b(1)? << 4 | b(2)? << 12, 3),
        };
        (regen, hl, if lit_type == 0 { regen } else { 1 })
    } else {
        // Compressed or treeless literals: regenerated and compressed sizes.
        match size_format {
            0 | 1 => {
                let v = b0 >> 4 | b(1)? << 4 | b(2)? << 12;
                (v & 0x3ff, 3, v >> 10)
            }
            2 => {
                let v = b0 >> 4 | b(1)? << 4 | b(2)? << 12 | b(3)? << 20;
                (v & 0x3fff, 4, v >> 14)
            }
            _ => {
                let v = b0 >> 4 | b(1)? << 4 | b(2)? << 12 | b(3)? << 20 | b(4)? << 28;
                (v & 0x3ffff, 5, v >> 18)
            }
        }
    };
    if regenerated > block_max {
        return Err(WireError::ZstdMalformed);
    }
    let seq_at = header_len + compressed;
    let s0 = match block.get(seq_at) {
        Some(&v) => usize::from(v),
        None => return Ok(regenerated),
    };
    let (sequences, count_len) = match s0 {
        0..=127 => (s0, 1),
        128..=254 => (((s0 - 128) << 8) | b(seq_at + 1)?, 2),
        _ => ((b(seq_at + 1)? | b(seq_at + 2)? << 8) + 0x7f00, 3),
    };
    if sequences == 0 {
        return Ok(regenerated);
    }
    // Every sequence regenerates at least 3 bytes (the shortest match): a cheap bound first.
    if regenerated.saturating_add(sequences.saturating_mul(3)) > block_max {
        return Err(WireError::ZstdMalformed);
    }
    // Then the exact lengths (Symbol_Compression_Modes' reserved bits are checked there).
    let section = block
        .get(seq_at + count_len..)
        .ok_or(WireError::ZstdMalformed)?;
    let lengths = tables.scan(section, sequences)?;
    let total = (regenerated as u64).saturating_add(lengths.matches);
    if lengths.literals > regenerated as u64 || total > block_max as u64 {
        return Err(WireError::ZstdMalformed);
    }
    usize::try_from(total).map_err(|_| WireError::ZstdMalformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_before_allocating() {
        // Magic, descriptor: 8-byte content size, 1 KiB window, content size 2^40.
        let mut f = vec![0x28, 0xb5, 0x2f, 0xfd, 0xc0, 0x00];
        f.extend_from_slice(&(1u64 << 40).to_le_bytes());
        assert_eq!(
            decompress(&f, &FrameLimits::HOST),
            Err(WireError::ZstdContentTooLarge)
        );
        // Window descriptor exponent 20: 1 GiB window.
        let f = [0x28, 0xb5, 0x2f, 0xfd, 0x00, 20 << 3];
        assert_eq!(
            decompress(&f, &FrameLimits::HOST),
            Err(WireError::ZstdWindowTooLarge)
        );
        assert_eq!(
            decompress(&[1, 2, 3], &FrameLimits::HOST),
            Err(WireError::ZstdMalformed)
        );
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn oversized_blocks_are_refused_before_decoding() {
        // Found by fuzzing: blocks larger than the block maximum, which ruzstd decoded (up to
        // megabytes of heap) and libzstd rejects as corrupt.
        for (frame, what) in [
            ("28b52ffd00002d0000fdffff3500", "RLE literals of 1 MiB"),
            ("28b52ffd00290000002d0000cd00413500", "a block over the maximum"),
            (
                "28b52ffd0021cd0100740284a174cc01a26964ae3132372e302e302e313a39303030a3696e6382cf00033101a364656381300601601144c902efed3d0c8735ae9b79",
                "reserved bits set in Symbol_Compression_Modes",
            ),
            (
                "28b52ffd2069cd0100740284a174cc3ba26964ae3132372e300000002e302e313a3900007b55498b5980303030a3696e6382cf0003310130d8d8d8d8d8d8d8d8000284",
                "20,224 sequences in a 57-byte block",
            ),
        ] {
            for limits in [FrameLimits::MCU, FrameLimits::HOST] {
                let r = decompress(&hex(frame), &limits);
                assert!(r.is_err(), "{what}: {r:?}");
            }
        }
    }
}
