//! Frames compressed on a host with the `zstd` crate decode in the core with `ruzstd`, within
//! limits; bombs and oversized windows are refused before allocating.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use tally_core::frame::{decode, FLAG_ZSTD};
use tally_core::{FrameLimits, Message, MessageLimits, WireError};
use tally_tests::hex;

fn push_bytes(n: usize) -> Vec<u8> {
    let entries: Vec<(String, u64)> = (0..n)
        .map(|i| (format!("127.0.0.1:{}", 9000 + i), i as u64))
        .collect();
    let side: Vec<(&str, u64)> = entries.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let m = Message::Push {
        id: "127.0.0.1:9000",
        inc: side.iter().copied(),
        dec: side.iter().copied(),
    };
    let mut buf = vec![0u8; m.buffer_len()];
    m.emit(&mut buf).unwrap();
    buf
}

fn frame_of(compressed: &[u8]) -> Vec<u8> {
    let mut f = vec![FLAG_ZSTD];
    f.extend_from_slice(compressed);
    f
}

#[test]
fn host_compressed_push_decodes() {
    for n in [100, 1000] {
        let msg = push_bytes(n);
        let compressed = zstd::bulk::compress(&msg, 3).unwrap();
        assert!(compressed.len() < msg.len());
        let frame = frame_of(&compressed);
        let body = decode(&frame, &FrameLimits::HOST).unwrap();
        assert!(body.was_compressed());
        assert_eq!(body.bytes(), &msg[..]);
        let parsed = Message::parse(body.bytes(), &MessageLimits::HOST).unwrap();
        assert!(matches!(parsed, Message::Push { .. }));
    }
}

#[test]
fn bombs_are_refused() {
    // 64 KiB of zeros compresses to a few bytes but exceeds the MCU limit of 8 KiB.
    let zeros = vec![0u8; 64 << 10];
    let compressed = zstd::bulk::compress(&zeros, 3).unwrap();
    let limits = FrameLimits {
        max_window: 1 << 20,
        ..FrameLimits::MCU
    };
    assert_eq!(
        decode(&frame_of(&compressed), &limits).unwrap_err(),
        WireError::ZstdContentTooLarge
    );
    // A streaming frame without a declared size is cut off while decoding.
    let mut enc = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
    enc.include_contentsize(false).unwrap();
    std::io::Write::write_all(&mut enc, &zeros).unwrap();
    let streamed = enc.finish().unwrap();
    let err = decode(
        &frame_of(&streamed),
        &FrameLimits {
            max_window: 1 << 20,
            ..FrameLimits::MCU
        },
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            WireError::ZstdContentTooLarge | WireError::ZstdWindowTooLarge
        ),
        "{err:?}"
    );
}

#[test]
fn large_windows_and_corruption_are_refused() {
    let msg = push_bytes(200);
    // Level 19 with a 8 MiB window (long distance matching) declares a large window.
    let mut c = zstd::bulk::Compressor::new(19).unwrap();
    c.set_parameter(zstd::zstd_safe::CParameter::WindowLog(23))
        .unwrap();
    c.set_parameter(zstd::zstd_safe::CParameter::ContentSizeFlag(false))
        .unwrap();
    let big_window = c.compress(&msg).unwrap();
    assert_eq!(
        decode(&frame_of(&big_window), &FrameLimits::MCU).unwrap_err(),
        WireError::ZstdWindowTooLarge
    );

    let compressed = zstd::bulk::compress(&msg, 3).unwrap();
    let mut trailing = frame_of(&compressed);
    trailing.push(0);
    assert_eq!(
        decode(&trailing, &FrameLimits::HOST).unwrap_err(),
        WireError::TrailingBytes
    );
    let mut truncated = frame_of(&compressed);
    truncated.truncate(truncated.len() - 5);
    assert!(decode(&truncated, &FrameLimits::HOST).is_err());
}

#[test]
fn checksums_are_verified() {
    let msg = push_bytes(50);
    let mut c = zstd::bulk::Compressor::new(3).unwrap();
    c.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))
        .unwrap();
    let compressed = c.compress(&msg).unwrap();
    assert_eq!(
        decode(&frame_of(&compressed), &FrameLimits::HOST)
            .unwrap()
            .bytes(),
        &msg[..]
    );
    let mut bad = frame_of(&compressed);
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    assert_eq!(
        decode(&bad, &FrameLimits::HOST).unwrap_err(),
        WireError::ZstdChecksum
    );
}

/// Bytes of many shapes, from a seed: runs, noise, repeated phrases, Push messages.
fn shaped(seed: u64, len: usize) -> Vec<u8> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(len);
    let phrases: Vec<Vec<u8>> = (0..8)
        .map(|_| (0..rng.random_range(3..40)).map(|_| rng.random()).collect())
        .collect();
    while out.len() < len {
        match rng.random_range(0..5) {
            0 => {
                let b: u8 = rng.random();
                out.extend(std::iter::repeat_n(b, rng.random_range(1..3000)));
            }
            1 => out.extend((0..rng.random_range(1..500)).map(|_| rng.random::<u8>())),
            2 | 3 => {
                let p = &phrases[rng.random_range(0..phrases.len())];
                for _ in 0..rng.random_range(1..20) {
                    out.extend_from_slice(p);
                }
            }
            _ => out.extend(push_bytes(rng.random_range(1..40))),
        }
    }
    out.truncate(len);
    out
}

fn compress(data: &[u8], level: i32, window_log: Option<u32>, checksum: bool) -> Vec<u8> {
    let mut c = zstd::bulk::Compressor::new(level).unwrap();
    c.include_checksum(checksum).unwrap();
    if let Some(log) = window_log {
        c.set_parameter(zstd::zstd_safe::CParameter::WindowLog(log))
            .unwrap();
    }
    c.compress(data).unwrap()
}

#[test]
fn libzstd_frames_of_every_shape_decode_exactly() {
    // The core decodes every compressed block's sequences itself before ruzstd runs them (to
    // bound what they regenerate): any frame libzstd writes must still decode, byte for byte.
    // Levels from fast to ultra use every table mode (predefined, RLE, compressed, repeat) and
    // multi-block frames.
    let mut blocks = 0usize;
    for seed in 0..60u64 {
        for (len, limits, window_log) in [
            (7 * 1024, FrameLimits::MCU, Some(13)),
            (300 * 1024, FrameLimits::HOST, None),
        ] {
            let len = len * (seed as usize % 7 + 1) / 7;
            let data = shaped(seed, len);
            for level in [-5, 1, 3, 9, 19] {
                let z = compress(&data, level, window_log, seed % 2 == 0);
                blocks += z.len() / 1000 + 1;
                let out = tally_core::zstd::decompress(&z, &limits)
                    .unwrap_or_else(|e| panic!("seed {seed} len {len} level {level}: {e:?}"));
                assert!(
                    out == data,
                    "seed {seed} len {len} level {level}: wrong bytes"
                );
            }
        }
    }
    assert!(blocks > 600);
}

#[test]
fn long_matches_are_refused_before_ruzstd_runs_them() {
    // Found by fuzzing (zstd_frame): a 105-byte frame whose 57-byte block holds 39 literals and
    // 6 sequences of long matches at offset 1. ruzstd checks a block's size only after each
    // match, so it grew its buffer to 140 KB under the 8 KiB microcontroller limits — more heap
    // than any board has. The core now reads the match lengths first and refuses the block.
    let frame = hex(
        "28b52ffd246ecd0100740284a174cc01a26964ae3132372e302e302e313a396964ae00696e6382cf00033201
         a36465816330061000a040c902efed940c873222cd959595959595959595959595959595959595959595959595
         959595959595959595952a2a2a2a2a2a",
    );
    for limits in [FrameLimits::MCU, FrameLimits::HOST] {
        assert_eq!(
            tally_core::zstd::decompress(&frame, &limits),
            Err(WireError::ZstdMalformed)
        );
    }
}
