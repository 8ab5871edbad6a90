//! Every rejection of spec §4 has its own error, and rejected input changes nothing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::{engine, fixture, hex};
use tally_core::{FrameLimits, Instant, Message, MessageLimits, WireError};

fn parse(hex_bytes: &str) -> Result<(), WireError> {
    Message::parse(&hex(hex_bytes), &MessageLimits::MCU).map(|_| ())
}

/// `{"t": T, "id": "x", <rest>}` with `extra` more pairs.
fn map(pairs: u8, body: &str) -> String {
    format!("{:02x}{body}", 0x80 | pairs)
}

const T1: &str = "a174 01";
const ID_X: &str = "a26964 a178";
const INC_A5: &str = "a3696e63 81 a161 05";

#[test]
fn empty_input() {
    assert_eq!(parse(""), Err(WireError::Empty));
    let mut e = engine("n:1");
    assert_eq!(e.handle(Instant::ZERO, "p:1", &[]), Err(WireError::Empty));
}

#[test]
fn unknown_flags() {
    let mut frame = fixture("a_push.hex");
    for flags in [0x01u8, 0x02, 0x10, 0x20, 0x81, 0xff] {
        frame[0] = flags;
        assert_eq!(
            tally_core::frame::decode(&frame, &FrameLimits::MCU).unwrap_err(),
            WireError::UnknownFlags,
            "{flags:#x}"
        );
    }
}

#[test]
fn zstd_failures() {
    // Default build: no decoder. With `zstd`: a corrupt frame.
    let frame = hex("80 28b52ffd 00 00 ffffff");
    let err = tally_core::frame::decode(&frame, &FrameLimits::MCU).unwrap_err();
    if cfg!(feature = "zstd") {
        assert_eq!(err, WireError::ZstdMalformed);
    } else {
        assert_eq!(err, WireError::CompressionUnsupported);
    }
}

#[test]
fn malformed_msgpack_and_trailing_garbage() {
    assert_eq!(parse("c1"), Err(WireError::NotAMap));
    assert_eq!(
        parse(&map(2, &format!("{T1} a26964"))),
        Err(WireError::Truncated)
    );
    assert_eq!(
        parse(&format!("{}00", map(2, &format!("{T1}{ID_X}")))),
        Err(WireError::TrailingBytes)
    );
    assert_eq!(parse("92 01 02"), Err(WireError::NotAMap));
    assert_eq!(
        parse(&map(2, &format!("01 01 {ID_X}"))),
        Err(WireError::WrongType)
    );
    assert_eq!(
        parse(&map(3, &format!("{T1}{ID_X} a17a c1"))),
        Err(WireError::Malformed)
    );
    assert_eq!(
        parse(&map(3, &format!("{T1}{T1}{ID_X}"))),
        Err(WireError::DuplicateKey)
    );
}

#[test]
fn bad_type() {
    assert_eq!(
        parse(&map(2, &format!("a174 00 {ID_X}"))),
        Err(WireError::UnknownType)
    );
    assert_eq!(
        parse(&map(2, &format!("a174 04 {ID_X}"))),
        Err(WireError::UnknownType)
    );
    assert_eq!(
        parse(&map(2, &format!("a174 ff {ID_X}"))),
        Err(WireError::UnknownType)
    );
    assert_eq!(
        parse(&map(2, &format!("a174 a131 {ID_X}"))),
        Err(WireError::WrongType)
    );
    assert_eq!(parse(&map(1, ID_X)), Err(WireError::MissingType));
}

#[test]
fn bad_id() {
    assert_eq!(
        parse(&map(2, &format!("{T1}{INC_A5}"))),
        Err(WireError::MissingId)
    );
    assert_eq!(
        parse(&map(3, &format!("{T1} a26964 a0 {INC_A5}"))),
        Err(WireError::EmptyId)
    );
    let long = format!("d9 41 {}", "61".repeat(65));
    assert_eq!(
        parse(&map(3, &format!("{T1} a26964 {long} {INC_A5}"))),
        Err(WireError::IdTooLong)
    );
    assert_eq!(
        parse(&map(3, &format!("{T1} a26964 a2 c328 {INC_A5}"))),
        Err(WireError::InvalidUtf8)
    );
    assert_eq!(
        parse(&map(3, &format!("{T1} a26964 05 {INC_A5}"))),
        Err(WireError::WrongType)
    );
    // An entry id that is too long.
    let entry = format!("a3696e63 81 {long} 05");
    assert_eq!(
        parse(&map(3, &format!("{T1}{ID_X}{entry}"))),
        Err(WireError::IdTooLong)
    );
}

#[test]
fn bad_values() {
    let neg = "a3696e63 81 a161 ff";
    assert_eq!(
        parse(&map(3, &format!("{T1}{ID_X}{neg}"))),
        Err(WireError::NegativeValue)
    );
    let neg64 = "a3696e63 81 a161 d3 ffffffffffffffff";
    assert_eq!(
        parse(&map(3, &format!("{T1}{ID_X}{neg64}"))),
        Err(WireError::NegativeValue)
    );
    let float = "a3696e63 81 a161 cb 3ff0000000000000";
    assert_eq!(
        parse(&map(3, &format!("{T1}{ID_X}{float}"))),
        Err(WireError::NotAnInteger)
    );
    let string = "a3696e63 81 a161 a131";
    assert_eq!(
        parse(&map(3, &format!("{T1}{ID_X}{string}"))),
        Err(WireError::NotAnInteger)
    );
    let not_map = "a3696e63 92 01 02";
    assert_eq!(
        parse(&map(3, &format!("{T1}{ID_X}{not_map}"))),
        Err(WireError::WrongType)
    );
    let bad_dig = "a3646967 a131";
    assert_eq!(
        parse(&map(3, &format!("a174 02 {ID_X}{bad_dig}"))),
        Err(WireError::NotAnInteger)
    );
}

#[test]
fn too_many_entries() {
    // 33 entries in `inc`; the MCU limit is 32.
    let mut entries = String::from("a3696e63 de 0021");
    for i in 0..33 {
        entries.push_str(&format!(" a2 {:04x} 01", 0x6100 + i));
    }
    assert_eq!(
        parse(&map(3, &format!("{T1}{ID_X}{entries}"))),
        Err(WireError::TooManyEntries)
    );
}

#[test]
fn empty_push() {
    assert_eq!(
        parse(&map(2, &format!("{T1}{ID_X}"))),
        Err(WireError::EmptyPush)
    );
    let both_empty = "a3696e63 80 a3646563 c0";
    assert_eq!(
        parse(&map(4, &format!("{T1}{ID_X}{both_empty}"))),
        Err(WireError::EmptyPush)
    );
}

#[test]
fn bad_header_and_oversize_frame() {
    assert_eq!(
        tally_core::frame::split_header(&hex("00")),
        Err(WireError::BadHeader)
    );
    assert_eq!(
        tally_core::frame::split_header(&hex("09 6162")),
        Err(WireError::BadHeader)
    );
    let big = vec![0u8; FrameLimits::MCU.max_frame + 1];
    assert_eq!(
        tally_core::frame::decode(&big, &FrameLimits::MCU).unwrap_err(),
        WireError::FrameTooLarge
    );
}

#[test]
fn capacity_exceeded_on_merge() {
    let mut e = engine("n:1");
    e.increment(1).unwrap();
    // 32 foreign entries fill the 32-entry counter past capacity (33 with our own).
    let mut entries = String::from("a3696e63 de 0020");
    for i in 0..32 {
        entries.push_str(&format!(" a2 {:04x} 01", 0x6100 + i));
    }
    let mut frame = hex("00");
    frame.extend(hex(&map(3, &format!("{T1}{ID_X}{entries}"))));
    assert_eq!(
        e.handle(Instant::ZERO, "p:1", &frame),
        Err(WireError::CapacityExceeded)
    );
    assert_eq!(e.value(), 1);
    assert_eq!(e.counter().entries().len(), 1);
}

#[test]
fn rejected_frames_change_nothing_and_are_counted() {
    let mut e = engine("n:1");
    e.increment(2).unwrap();
    let before = e.counter().clone();
    let bad = [
        hex(""),
        hex("01 80"),
        hex("00 c1"),
        hex(&format!("00{}", map(2, &format!("{T1}{ID_X}")))),
    ];
    for b in &bad {
        assert!(e.handle(Instant::ZERO, "p:1", b).is_err());
    }
    assert!(e
        .handle(Instant::ZERO, "no-port", &fixture("a_push.hex"))
        .is_err());
    assert_eq!(e.counter(), &before);
    assert_eq!(e.stats().rejected_total(), 5);
    assert_eq!(e.stats().rejected(WireError::BadHeader), 1);
    assert!(
        e.peers().is_empty(),
        "invalid senders are not added as peers"
    );
}
