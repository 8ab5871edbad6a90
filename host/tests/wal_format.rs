//! The WAL's byte format: the documented example, round trips, every limit, and decoding of
//! arbitrary bytes (never a panic).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use proptest::prelude::*;
use tally::wal::format::{
    decode, decode_header, decode_in, encode, encode_header, framed_len, DecodeError, HeaderError,
    RecordError, RecordRef, HEADER_LEN, MAX_ENTRIES, MAX_PAYLOAD, TYPE_SNAPSHOT,
};
use tally::wal::Record;

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Frames `payload` with type `kind` and a correct CRC (an independent little encoder).
fn framed(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut body = vec![kind];
    body.extend_from_slice(payload);
    let mut out = (payload.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

#[test]
fn wal_format_example_bytes() {
    // The example of the module docs; the CRC was computed by a separate bitwise CRC-32C.
    let mut out = Vec::new();
    let rec = Record::Local {
        id: "a".into(),
        inc: 3,
        dec: 0,
    };
    encode(&mut out, &rec).unwrap();
    assert_eq!(
        hex(&out),
        "12 00 00 00 41 02 64 2c 01 01 61 03 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"
    );
    assert_eq!(
        crc32c::crc32c(b"123456789"),
        0xe306_9283,
        "CRC-32C check value"
    );
    let (back, n) = decode(&out).unwrap();
    assert_eq!((back.to_owned(), n), (rec, 27));
}

#[test]
fn wal_format_header() {
    let h = encode_header(0x1a);
    assert_eq!(
        hex(&h),
        "54 41 4c 4c 59 57 41 4c 03 00 00 00 1a 00 00 00 00 00 00 00"
    );
    assert_eq!(h.len(), HEADER_LEN);
    assert_eq!(decode_header(&h), Ok(0x1a));
    assert_eq!(decode_header(&h[..19]), Err(HeaderError::Short(19)));
    assert_eq!(decode_header(&h[..3]), Err(HeaderError::Short(3)));
    let mut bad = h;
    bad[0] = b'X';
    assert_eq!(decode_header(&bad), Err(HeaderError::BadMagic));
    let mut v1 = h;
    v1[8] = 1;
    assert_eq!(
        decode_header(&v1),
        Ok(0x1a),
        "version 1 segments stay readable"
    );
    let mut v2 = h;
    v2[8] = 2;
    assert_eq!(
        decode_header(&v2),
        Ok(0x1a),
        "version 2 segments stay readable"
    );
    let mut v4 = h;
    v4[8] = 4;
    assert_eq!(decode_header(&v4), Err(HeaderError::UnsupportedVersion(4)));
    let mut v0 = h;
    v0[8] = 0;
    assert_eq!(decode_header(&v0), Err(HeaderError::UnsupportedVersion(0)));
    let mut reserved = h;
    reserved[10] = 1;
    assert_eq!(decode_header(&reserved), Err(HeaderError::Reserved(1)));
}

#[test]
fn wal_format_limits() {
    let mut out = Vec::new();
    let long = "x".repeat(256);
    let local = |id: &str| Record::Local {
        id: id.into(),
        inc: 1,
        dec: 0,
    };
    assert_eq!(encode(&mut out, &local("")), Err(RecordError::EmptyId));
    assert_eq!(
        encode(&mut out, &local(&long)),
        Err(RecordError::IdTooLong(256))
    );
    let too_many = Record::Snapshot {
        entries: (0..=MAX_ENTRIES).map(|i| (i.to_string(), 1, 0)).collect(),
    };
    assert_eq!(
        encode(&mut out, &too_many),
        Err(RecordError::TooManyEntries(MAX_ENTRIES + 1))
    );
    assert!(out.is_empty(), "nothing written for a rejected record");
    encode(&mut out, &local(&long[..255])).unwrap();

    // A length beyond 64 MiB is refused before anything is read or allocated.
    let mut huge = ((MAX_PAYLOAD + 1) as u32).to_le_bytes().to_vec();
    huge.extend_from_slice(&[0; 5]);
    assert_eq!(
        decode(&huge),
        Err(DecodeError::TooLong(MAX_PAYLOAD as u32 + 1))
    );
    let mut max = (u32::MAX).to_le_bytes().to_vec();
    max.extend_from_slice(&[0; 5]);
    assert_eq!(decode(&max), Err(DecodeError::TooLong(u32::MAX)));
    // A length within the limit but beyond the buffer is a torn record.
    let mut short = framed(1, &[1, b'a']);
    short.truncate(10);
    assert!(matches!(decode(&short), Err(DecodeError::Truncated { .. })));
    assert!(matches!(
        decode(&[1, 0, 0]),
        Err(DecodeError::Truncated { .. })
    ));

    // Snapshot counts beyond 65,536 and payload mistakes, all behind a valid CRC.
    let count = |n: u32| framed(TYPE_SNAPSHOT, &n.to_le_bytes());
    assert!(matches!(
        decode(&count(MAX_ENTRIES as u32 + 1)),
        Err(DecodeError::BadPayload(_))
    ));
    assert!(matches!(
        decode(&count(u32::MAX)),
        Err(DecodeError::BadPayload(_))
    ));
    // Version 2 ends a snapshot after its entries; version 3 adds the named cells' count.
    assert!(matches!(
        decode_in(2, &count(0)),
        Ok((RecordRef::Snapshot(v, c), 13)) if v.is_empty() && c.is_empty()
    ));
    assert!(matches!(
        decode(&count(0)),
        Err(DecodeError::BadPayload("payload ends early"))
    ));
    let empty_v3 = framed(TYPE_SNAPSHOT, &[0; 8]);
    assert!(matches!(
        decode(&empty_v3),
        Ok((RecordRef::Snapshot(v, c), 17)) if v.is_empty() && c.is_empty()
    ));
    let mut entry = vec![0u8];
    entry.extend_from_slice(&[0; 16]);
    assert_eq!(
        decode(&framed(1, &entry)),
        Err(DecodeError::BadPayload("empty node id"))
    );
    let mut bad_utf8 = vec![1u8, 0xff];
    bad_utf8.extend_from_slice(&[0; 16]);
    assert!(matches!(
        decode(&framed(1, &bad_utf8)),
        Err(DecodeError::BadPayload(_))
    ));
    let mut trailing = vec![1u8, b'a'];
    trailing.extend_from_slice(&[0; 17]);
    assert_eq!(
        decode(&framed(1, &trailing)),
        Err(DecodeError::BadPayload("trailing bytes"))
    );
    assert_eq!(decode(&framed(9, &[])), Err(DecodeError::UnknownType(9)));
    let mut bad_crc = framed(1, &[1, b'a']);
    bad_crc[4] ^= 1;
    assert!(matches!(decode(&bad_crc), Err(DecodeError::BadCrc { .. })));
    // Zeros (a file extended without its data) are never a record.
    assert!(decode(&[0u8; 64]).is_err());
}

/// A version 1 directory as the previous build wrote it: a snapshot whose ids are not in
/// order (version 1 allowed any order), then a Local record. It opens and keeps its value;
/// new segments are written in version 2.
#[test]
fn wal_format_version_1_directories_stay_readable() {
    let tmp = tempfile::tempdir().unwrap();
    let mut seg = encode_header(1).to_vec();
    seg[8] = 1;
    let mut snap = 2u32.to_le_bytes().to_vec();
    for (id, inc) in [("zed", 7u64), ("amy", 5)] {
        snap.push(id.len() as u8);
        snap.extend_from_slice(id.as_bytes());
        snap.extend_from_slice(&inc.to_le_bytes());
        snap.extend_from_slice(&0u64.to_le_bytes());
    }
    seg.extend_from_slice(&framed(TYPE_SNAPSHOT, &snap));
    let mut local = vec![3u8];
    local.extend_from_slice(b"amy");
    local.extend_from_slice(&9u64.to_le_bytes());
    local.extend_from_slice(&1u64.to_le_bytes());
    seg.extend_from_slice(&framed(1, &local));
    std::fs::write(tmp.path().join(tally::wal::segment::segment_name(1)), &seg).unwrap();
    // The same snapshot is refused as version 2 bytes: order is part of version 2.
    assert!(decode(&seg[HEADER_LEN..]).is_err());
    let (wal, recovered) = tally::wal::Wal::open(tally::wal::WalConfig::new(tmp.path())).unwrap();
    assert_eq!(
        recovered.entries,
        vec![("amy".to_string(), 9, 1), ("zed".to_string(), 7, 0)]
    );
    assert_eq!(recovered.records, 2);
    wal.wait(wal.append_local("amy", 10, 1).unwrap()).unwrap();
    drop(wal);
    let (_, again) = tally::wal::Wal::open(tally::wal::WalConfig::new(tmp.path())).unwrap();
    assert_eq!(again.entries[0], ("amy".to_string(), 10, 1));
}

fn arb_record() -> impl Strategy<Value = Record> {
    let id = "[a-z0-9:.é-]{1,40}";
    prop_oneof![
        (id, any::<u64>(), any::<u64>()).prop_map(|(id, inc, dec)| Record::Local { id, inc, dec }),
        // Version 2 snapshots hold unique ids, ascending (the encoder sorts them).
        prop::collection::btree_map(id, (any::<u64>(), any::<u64>()), 0..20).prop_map(|m| {
            Record::Snapshot {
                entries: m.into_iter().map(|(id, (i, d))| (id, i, d)).collect(),
            }
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn wal_format_round_trips(records in prop::collection::vec(arb_record(), 1..10)) {
        let mut buf = Vec::new();
        for r in &records {
            encode(&mut buf, r).unwrap();
        }
        let mut at = 0;
        for r in &records {
            let (back, n) = decode(&buf[at..]).unwrap();
            prop_assert_eq!(&back.to_owned(), r);
            prop_assert_eq!(framed_len(&buf[at..]), Some(n));
            at += n;
        }
        prop_assert_eq!(at, buf.len());
    }

    #[test]
    fn wal_format_decodes_any_bytes_without_panicking(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = decode(&bytes);
        let _ = decode_header(&bytes);
        let _ = framed_len(&bytes);
    }

    #[test]
    fn wal_format_detects_any_single_byte_change(r in arb_record(), pos in any::<prop::sample::Index>(), x in 1u8..) {
        let mut buf = Vec::new();
        encode(&mut buf, &r).unwrap();
        let i = pos.index(buf.len());
        buf[i] ^= x;
        prop_assert!(decode(&buf).is_err());
    }
}

/// A version 2 directory as the previous build wrote it (snapshots without named cells, no
/// NamedLocal records) opens and keeps its value; named records appended after it come back.
#[test]
fn wal_format_version_2_directories_stay_readable_and_take_named_records() {
    let tmp = tempfile::tempdir().unwrap();
    let mut seg = encode_header(1).to_vec();
    seg[8] = 2;
    let mut snap = 1u32.to_le_bytes().to_vec();
    snap.push(3);
    snap.extend_from_slice(b"amy");
    snap.extend_from_slice(&5u64.to_le_bytes());
    snap.extend_from_slice(&2u64.to_le_bytes());
    seg.extend_from_slice(&framed(TYPE_SNAPSHOT, &snap));
    std::fs::write(tmp.path().join(tally::wal::segment::segment_name(1)), &seg).unwrap();
    let (wal, recovered) = tally::wal::Wal::open(tally::wal::WalConfig::new(tmp.path())).unwrap();
    assert_eq!(recovered.entries, vec![("amy".to_string(), 5, 2)]);
    assert!(recovered.named.is_empty());
    let mut body = Vec::new();
    tally_core::store::encode_named_local(&mut body, "doors", "amy", 4, 1).unwrap();
    wal.wait(wal.append_body(false, &body).unwrap()).unwrap();
    drop(wal);
    let (_, again) = tally::wal::Wal::open(tally::wal::WalConfig::new(tmp.path())).unwrap();
    assert_eq!(again.entries, vec![("amy".to_string(), 5, 2)]);
    let t = tally_core::named::Totals {
        inc: 4,
        dec: 1,
        ..Default::default()
    };
    assert_eq!(
        again.named,
        vec![("doors".to_string(), "amy".to_string(), t)]
    );
}
