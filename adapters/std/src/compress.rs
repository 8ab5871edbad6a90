//! zstd compression of outgoing messages, as the engine's [`Compressor`](tally_core::engine::Compressor).
//!
//! Messages over 1024 bytes are compressed at level 3 with a window of 2^13 = 8 KiB
//! (`WINDOW_LOG`), so a microcontroller whose zstd window limit is 8 KiB can decode every frame
//! a host sends; the compressed form is kept only when smaller.

use std::cell::RefCell;

/// zstd window log of host frames: 8 KiB windows.
pub const WINDOW_LOG: u32 = 13;
/// zstd compression level.
pub const LEVEL: i32 = 3;

thread_local! {
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
}

fn new_compressor() -> Option<zstd::bulk::Compressor<'static>> {
    let mut c = zstd::bulk::Compressor::new(LEVEL).ok()?;
    c.set_parameter(zstd::zstd_safe::CParameter::WindowLog(WINDOW_LOG))
        .ok()?;
    c.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))
        .ok()?;
    Some(c)
}

/// Compresses `buf[..len]` in place; `Some(new_len)` only when the result is smaller.
pub fn zstd_in_place(buf: &mut [u8], len: usize) -> Option<usize> {
    let input = buf.get(..len)?.to_vec();
    let out = COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = new_compressor();
        }
        slot.as_mut()?.compress(&input).ok()
    })?;
    if out.len() >= len {
        return None;
    }
    buf.get_mut(..out.len())?.copy_from_slice(&out);
    Some(out.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_core::frame::{decode, FLAG_ZSTD};
    use tally_core::FrameLimits;

    #[test]
    fn compresses_and_mcu_limits_decode_it() {
        let msg: Vec<u8> = (0..6000u32).map(|i| (i % 7) as u8).collect();
        let mut buf = msg.clone();
        buf.resize(8000, 0);
        let n = zstd_in_place(&mut buf, msg.len()).unwrap();
        assert!(n < msg.len());
        let mut frame = vec![FLAG_ZSTD];
        frame.extend_from_slice(&buf[..n]);
        assert_eq!(decode(&frame, &FrameLimits::MCU).unwrap().bytes(), &msg[..]);
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut random: Vec<u8> = (0..2000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        assert_eq!(zstd_in_place(&mut random, 2000), None);
    }
}
