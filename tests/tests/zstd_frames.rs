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
