//! A whole TCP payload (spec §2): `[n][sender address][flags][message]`.
//!
//! `split_header`, then `frame::decode` with the host and microcontroller limits, then
//! `Message::parse` with both message limits; every message that parses must survive
//! emit → parse unchanged (see `tally_fuzz::check_roundtrip`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tally_core::frame::{self, is_gossip_address, split_header, FrameLimits};
use tally_core::{Message, MessageLimits, FLAG_AUTH, FLAG_ZSTD};

fuzz_target!(|data: &[u8]| {
    let Ok((from, frame)) = split_header(data) else {
        return;
    };
    assert!(is_gossip_address(from), "split_header accepted {from:?}");
    assert_eq!(1 + from.len() + frame.len(), data.len());

    for frame_limits in [FrameLimits::HOST, FrameLimits::MCU] {
        let Ok(body) = frame::decode(frame, &frame_limits) else {
            continue;
        };
        // What decode accepted is within its limits and has known flags.
        assert!(frame.len() <= frame_limits.max_frame);
        let flags = frame[0];
        assert_eq!(flags & FLAG_AUTH, 0, "decode accepted an auth frame");
        assert!(
            flags == 0 || flags == FLAG_ZSTD,
            "decode accepted flags {flags:#04x}"
        );
        assert_eq!(body.was_compressed(), flags == FLAG_ZSTD);
        if body.was_compressed() {
            assert!(body.bytes().len() <= frame_limits.max_decompressed);
        } else {
            assert_eq!(body.bytes(), &frame[1..]);
        }
        for message_limits in [MessageLimits::HOST, MessageLimits::MCU] {
            if let Ok(m) = Message::parse(body.bytes(), &message_limits) {
                tally_fuzz::check_roundtrip(&m, &message_limits);
            }
        }
    }
});
