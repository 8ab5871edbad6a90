//! zstd decoding with `ruzstd`, with every limit checked before allocating.
//!
//! The frame header (RFC 8878 §3.1.1) is read here first: magic, window size and declared
//! content size are compared with the receiver's limits before `ruzstd` is handed the bytes.
//! Dictionaries and skippable frames are refused; a declared content checksum is verified
//! (XXH64, low 32 bits); bytes after the frame are refused.

use crate::error::WireError;
use crate::frame::FrameLimits;
use alloc::vec::Vec;
use core::hash::Hasher;
use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};

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
    let step = limits.max_window.clamp(1024, 128 * 1024);
    loop {
        let finished = decoder
            .decode_blocks(&mut src, BlockDecodingStrategy::UptoBytes(step))
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
}
