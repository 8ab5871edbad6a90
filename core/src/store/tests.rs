use super::*;

fn local_bytes(id: &str, inc: u64, dec: u64) -> heapless::Vec<u8, 512> {
    let mut buf = [0u8; 512];
    let mut sink = SliceSink::new(&mut buf);
    encode_local(&mut sink, id, inc, dec).unwrap();
    heapless::Vec::from_slice(sink.written()).unwrap()
}

#[test]
fn local_record_bytes_are_pinned() {
    // Type 1, k = 1, "a", inc = 3, dec = 0: the WAL version 1 payload layout behind a type byte.
    let b = local_bytes("a", 3, 0);
    assert_eq!(
        b.as_slice(),
        &[1, 1, b'a', 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!(b.len(), local_len(1));
    assert_eq!(
        decode(2, &b),
        Ok(Record::Local {
            id: "a",
            inc: 3,
            dec: 0
        })
    );
    // The same bytes are a version 1 WAL record.
    assert!(matches!(decode(1, &b), Ok(Record::Local { inc: 3, .. })));
}

#[test]
fn snapshot_round_trips_and_is_sorted() {
    let entries = [("a#1", 5, 1), ("b#2", 7, 0), ("c#3", 0, 9)];
    let mut buf = [0u8; 256];
    let mut sink = SliceSink::new(&mut buf);
    let t = |inc, dec, floor_inc| Totals {
        inc,
        dec,
        floor_inc,
        floor_dec: 0,
    };
    let cells = [
        ("doors", "a#1", t(4, 1, 2)),
        ("doors", "b#2", t(1, 0, 0)),
        ("parts", "a#1", t(9, 9, 9)),
    ];
    encode_snapshot(&mut sink, entries.iter().copied(), cells.iter().copied()).unwrap();
    let n = sink.len();
    assert_eq!(n, snapshot_len(3, 3, 3, 5));
    let Ok(Record::Snapshot(got, named)) = decode(3, buf.get(..n).unwrap()) else {
        panic!("not a snapshot")
    };
    assert!(Entries::ascending(&got));
    assert_eq!(got.len(), 3);
    let back: heapless::Vec<(&str, u64, u64), 4> = got.collect();
    assert_eq!(back.as_slice(), &entries);
    let back: heapless::Vec<(&str, &str, Totals), 4> = named.collect();
    assert_eq!(back.as_slice(), &cells);
}

#[test]
fn a_version_2_snapshot_reads_back_without_named_cells() {
    let v2 = snapshot_raw(&["a", "b"]);
    let Ok(Record::Snapshot(e, c)) = decode(2, &v2) else {
        panic!("not a snapshot")
    };
    assert_eq!((e.count(), c.len()), (2, 0));
    // The same bytes lack the cell count of version 3.
    assert_eq!(decode(3, &v2), Err(DecodeError::Truncated));
    // Version 2 has no NamedLocal record.
    let mut buf = [0u8; 64];
    let mut sink = SliceSink::new(&mut buf);
    encode_named_local(&mut sink, "doors", "a#1", 3, 1).unwrap();
    let n = sink.len();
    assert_eq!(n, named_local_len(5, 3));
    let body = buf.get(..n).unwrap();
    assert_eq!(
        decode(2, body),
        Err(DecodeError::UnknownType(TYPE_NAMED_LOCAL))
    );
    assert_eq!(
        decode(3, body),
        Ok(Record::NamedLocal {
            name: "doors",
            id: "a#1",
            inc: 3,
            dec: 1
        })
    );
}

#[test]
fn bad_named_cells_are_refused() {
    let cell = |name: &[u8], id: &[u8], inc: u64, floor: u64| {
        let mut v: heapless::Vec<u8, 128> = heapless::Vec::new();
        v.push(name.len() as u8).unwrap();
        v.extend_from_slice(name).unwrap();
        v.push(id.len() as u8).unwrap();
        v.extend_from_slice(id).unwrap();
        for x in [inc, 0, floor, 0] {
            v.extend_from_slice(&x.to_le_bytes()).unwrap();
        }
        v
    };
    let snapshot = |cells: &[&[u8]]| {
        let mut v: heapless::Vec<u8, 512> = heapless::Vec::new();
        v.extend_from_slice(&[TYPE_SNAPSHOT, 0, 0, 0, 0]).unwrap();
        v.extend_from_slice(&(cells.len() as u32).to_le_bytes())
            .unwrap();
        for c in cells {
            v.extend_from_slice(c).unwrap();
        }
        v
    };
    let good = cell(b"doors", b"a", 2, 1);
    assert!(decode(3, &snapshot(&[&good])).is_ok());
    assert_eq!(
        decode(3, &snapshot(&[&cell(b"no space", b"a", 2, 1)])),
        Err(DecodeError::BadName)
    );
    assert_eq!(
        decode(3, &snapshot(&[&cell(b"", b"ab", 2, 1)])),
        Err(DecodeError::BadName)
    );
    assert_eq!(
        decode(3, &snapshot(&[&cell(b"doors", b"a", 1, 2)])),
        Err(DecodeError::BadFloor)
    );
    assert_eq!(
        decode(3, &snapshot(&[&good, &good])),
        Err(DecodeError::Unordered)
    );
    let mut huge = snapshot(&[]);
    huge.truncate(5);
    huge.extend_from_slice(&u32::MAX.to_le_bytes()).unwrap();
    assert_eq!(decode(3, &huge), Err(DecodeError::TooManyEntries));
}

fn snapshot_raw(ids: &[&str]) -> heapless::Vec<u8, 512> {
    let mut v: heapless::Vec<u8, 512> = heapless::Vec::new();
    v.push(TYPE_SNAPSHOT).unwrap();
    v.extend_from_slice(&(ids.len() as u32).to_le_bytes())
        .unwrap();
    for id in ids {
        v.push(id.len() as u8).unwrap();
        v.extend_from_slice(id.as_bytes()).unwrap();
        v.extend_from_slice(&[1; 16]).unwrap();
    }
    v
}

#[test]
fn version_2_refuses_unordered_snapshots_version_1_only_repeats() {
    let unordered = snapshot_raw(&["b", "a"]);
    assert_eq!(decode(2, &unordered), Err(DecodeError::Unordered));
    let Ok(Record::Snapshot(e, _)) = decode(1, &unordered) else {
        panic!("version 1 snapshots may be in any order")
    };
    assert!(!Entries::ascending(&e));
    assert_eq!(e.count(), 2);
    let repeated = snapshot_raw(&["b", "a", "b"]);
    assert_eq!(decode(1, &repeated), Err(DecodeError::Unordered));
}

#[test]
fn identity_exists_from_version_2() {
    let mut buf = [0u8; 64];
    let mut sink = SliceSink::new(&mut buf);
    encode_identity(&mut sink, "door#0badf00d").unwrap();
    let n = sink.len();
    let body = buf.get(..n).unwrap();
    assert_eq!(decode(2, body), Ok(Record::Identity("door#0badf00d")));
    assert_eq!(
        decode(1, body),
        Err(DecodeError::UnknownType(TYPE_IDENTITY))
    );
}

#[test]
fn every_truncation_and_extension_is_refused() {
    let b = local_bytes("node-1#01020304", u64::MAX, 17);
    for cut in 0..b.len() {
        assert!(decode(2, b.get(..cut).unwrap()).is_err(), "cut at {cut}");
    }
    let mut longer = b.clone();
    longer.push(0).unwrap();
    assert_eq!(decode(2, &longer), Err(DecodeError::TrailingBytes));
}

#[test]
fn hostile_lengths_are_refused_before_use() {
    // A count of 2^32 - 1 with no bytes behind it.
    let mut v = [TYPE_SNAPSHOT, 0xff, 0xff, 0xff, 0xff];
    assert_eq!(decode(2, &v), Err(DecodeError::TooManyEntries));
    // 1,000 entries claimed, none there.
    v = [TYPE_SNAPSHOT, 0xe8, 0x03, 0, 0];
    assert_eq!(decode(2, &v), Err(DecodeError::Truncated));
    // An id of length 0, and one that is not UTF-8.
    assert_eq!(decode(2, &[TYPE_LOCAL, 0]), Err(DecodeError::EmptyId));
    let mut bad = [0u8; 19];
    bad[0] = TYPE_LOCAL;
    bad[1] = 1;
    bad[2] = 0xff;
    assert_eq!(decode(2, &bad), Err(DecodeError::InvalidUtf8));
    assert_eq!(decode(0, &bad), Err(DecodeError::UnsupportedVersion(0)));
    assert_eq!(decode(4, &bad), Err(DecodeError::UnsupportedVersion(4)));
    assert_eq!(decode(2, &[9]), Err(DecodeError::UnknownType(9)));
    assert_eq!(decode(2, &[]), Err(DecodeError::Empty));
}

#[test]
fn board_items_of_both_versions_decode() {
    // Version 1: [1][count][entries], as firmware of version 1 wrote both keys.
    let mut v1: heapless::Vec<u8, 64> = heapless::Vec::new();
    v1.extend_from_slice(&[1, 1, 3]).unwrap();
    v1.extend_from_slice(b"abc").unwrap();
    v1.extend_from_slice(&5u64.to_le_bytes()).unwrap();
    v1.extend_from_slice(&2u64.to_le_bytes()).unwrap();
    let Ok(Record::Snapshot(mut e, _)) = decode_item(&v1) else {
        panic!("a version 1 item is a snapshot")
    };
    assert_eq!(e.next(), Some(("abc", 5, 2)));
    assert_eq!(e.next(), None);
    // Version 2: [2][record].
    let mut buf = [0u8; 64];
    let mut sink = SliceSink::new(&mut buf);
    begin_item(&mut sink).unwrap();
    encode_local(&mut sink, "abc#1", 9, 1).unwrap();
    let n = sink.len();
    assert_eq!(
        decode_item(buf.get(..n).unwrap()),
        Ok(Record::Local {
            id: "abc#1",
            inc: 9,
            dec: 1
        })
    );
    assert_eq!(
        decode_item(&[7, 1]),
        Err(DecodeError::UnsupportedVersion(7))
    );
}

#[test]
fn encoders_refuse_bad_ids_and_full_sinks() {
    let mut buf = [0u8; 8];
    let mut sink = SliceSink::new(&mut buf);
    assert_eq!(encode_local(&mut sink, "", 1, 1), Err(EncodeError::BadId));
    assert_eq!(
        encode_local(&mut sink, "abc", 1, 1),
        Err(EncodeError::SinkFull)
    );
    let long = [b'x'; 256];
    let long = core::str::from_utf8(&long).unwrap();
    let mut big = [0u8; 600];
    let mut sink = SliceSink::new(&mut big);
    assert_eq!(encode_identity(&mut sink, long), Err(EncodeError::BadId));
}
