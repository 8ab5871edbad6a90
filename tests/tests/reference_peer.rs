//! The reference stand-in peer (`tally_tests::reference`): its codec reproduces the spec
//! vectors, it converges with itself, and a mixed cluster of Tally nodes and a stand-in
//! converges with Tally sending only frames the reference encoder would have written.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;
use tally_tests::reference::{
    decode_frame, decode_message, digest, encode_frame, encode_message, frame_body,
    is_reference_frame, to_hex, wire_buffer, Kind, Message, ReferenceConfig, ReferencePeer,
    FLAG_ZSTD,
};
use tally_tests::{hex, wait_until};

const PUSH: &str = "0084a174cc01a26964ae3132372e302e302e313a39303030a3696e6382ae3132372e302e302e31\
    3a39303030cf0000000000000003ae3132372e302e302e313a39303031cf0000000000000001a364656381ae31\
    32372e302e302e313a39303030cf0000000000000001";
const PULL: &str = "0085a174cc02a26964ae3132372e302e302e313a39303031a3696e63c0a3646563c0a364696\
    7cf8cf963b0efdc56a4";
const ACK: &str = "0085a174cc03a26964ae3132372e302e302e313a39303030a3696e63c0a3646563c0a3646967\
    cf8cf963b0efdc56a4";
const DIGEST: u64 = 0x8cf9_63b0_efdc_56a4;
/// Push, id "x", inc {a: 5}: positive fixints, no dec, three keys.
const COMPACT: &str = "83 a1 74 01 a2 69 64 a1 78 a3 69 6e 63 81 a1 61 05";

fn counts(entries: &[(&str, u64)]) -> BTreeMap<String, u64> {
    entries.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

fn vector_state() -> (BTreeMap<String, u64>, BTreeMap<String, u64>) {
    (
        counts(&[("127.0.0.1:9000", 3), ("127.0.0.1:9001", 1)]),
        counts(&[("127.0.0.1:9000", 1)]),
    )
}

fn plain(body: &[u8]) -> Vec<u8> {
    let mut f = vec![0x00];
    f.extend_from_slice(body);
    f
}

/// Sends `frame` to `to` as the reference transport does (one buffer, then close).
fn send_raw(to: &str, from: &str, frame: &[u8]) {
    let mut s = TcpStream::connect(to).unwrap();
    s.write_all(&wire_buffer(from, frame).unwrap()).unwrap();
}

fn fast() -> ReferenceConfig {
    ReferenceConfig {
        sync_interval: Duration::from_millis(200),
        ..Default::default()
    }
}

#[test]
fn vectors() {
    let (inc, dec) = vector_state();
    let push = Message::push("127.0.0.1:9000", inc.clone(), dec.clone());
    let push_frame = encode_frame(&push);
    assert_eq!(push_frame.len(), 106);
    assert_eq!(to_hex(&push_frame), PUSH);
    assert_eq!(digest(&inc, &dec), DIGEST);
    let pull = Message::digest_only(Kind::DigestPull, "127.0.0.1:9001", DIGEST);
    assert_eq!(to_hex(&encode_frame(&pull)), PULL);
    let ack = Message::digest_only(Kind::DigestAck, "127.0.0.1:9000", DIGEST);
    assert_eq!(to_hex(&encode_frame(&ack)), ACK);
    // The vectors decode back to the same messages.
    assert_eq!(decode_frame(&hex(PUSH)).unwrap(), push);
    assert_eq!(decode_frame(&hex(PULL)).unwrap(), pull);
    assert_eq!(decode_frame(&hex(ACK)).unwrap(), ack);
    // A zero entry still counts in the digest (the reference holds its own id at 0).
    let mut with_zero = inc.clone();
    with_zero.insert("127.0.0.1:9002".into(), 0);
    assert_ne!(digest(&with_zero, &dec), DIGEST);

    // The compact form decodes.
    let compact = decode_message(&hex(COMPACT)).unwrap();
    assert_eq!(
        compact,
        Message::push("x", counts(&[("a", 5)]), BTreeMap::new())
    );
    // Big messages are compressed, and round-trip.
    let big: BTreeMap<String, u64> = (0..100).map(|i| (format!("node-{i:03}"), i + 1)).collect();
    let big = Message::push("127.0.0.1:9000", big.clone(), big);
    let big_frame = encode_frame(&big);
    assert_eq!(big_frame[0], FLAG_ZSTD);
    assert!(big_frame.len() < encode_message(&big).len());
    assert_eq!(frame_body(&big_frame).unwrap(), encode_message(&big));
    assert_eq!(decode_frame(&big_frame).unwrap(), big);

    // What the decoder rejects.
    let mut unknown_flag = hex(COMPACT);
    unknown_flag.insert(0, 0x01);
    let mut t4 = hex(COMPACT);
    t4[3] = 0x04;
    let empty_push = hex("84 a1 74 01 a2 69 64 a1 78 a3 69 6e 63 80 a3 64 65 63 c0");
    let mut negative = hex(COMPACT);
    *negative.last_mut().unwrap() = 0xff;
    let mut trailing = hex(COMPACT);
    trailing.push(0xc0);
    let bad_zstd = vec![FLAG_ZSTD, 1, 2, 3, 4, 5];
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("flags 0x01", unknown_flag),
        ("t=4", plain(&t4)),
        ("empty push", plain(&empty_push)),
        ("negative", plain(&negative)),
        ("trailing", plain(&trailing)),
        ("bad zstd", bad_zstd),
        ("empty", plain(&[])),
    ];
    for (what, frame) in &bad {
        assert!(decode_frame(frame).is_err(), "{what} decoded");
    }
    assert!(decode_frame(&plain(&hex(COMPACT))).is_ok());

    // Over TCP: the bad frames are counted and change nothing; good ones do.
    let peer = ReferencePeer::start(ReferenceConfig {
        sync_interval: Duration::from_secs(3600),
        ..Default::default()
    })
    .unwrap();
    let before = peer.state();
    let sender = "127.0.0.1:1"; // nobody listens there; replies just fail
    for (_, frame) in &bad {
        send_raw(&peer.addr(), sender, frame);
    }
    assert!(wait_until(Duration::from_secs(10), || peer
        .received()
        .len()
        == bad.len()));
    assert_eq!(peer.rejected(), bad.len() as u64);
    assert_eq!(peer.state(), before);
    assert_eq!(peer.value(), 0);
    assert!(peer.peers().is_empty(), "a bad frame added a peer");
    assert!(peer.received().iter().all(|r| !r.decoded));

    // A remote value for the stand-in's own id is never taken.
    let own = Message::push(&peer.addr(), counts(&[(&peer.addr(), 50)]), BTreeMap::new());
    send_raw(&peer.addr(), sender, &encode_frame(&own));
    // The compact Push decodes and merges, but is not what the reference writes.
    send_raw(&peer.addr(), sender, &plain(&hex(COMPACT)));
    // The vector Push is.
    send_raw(&peer.addr(), sender, &hex(PUSH));
    assert!(wait_until(Duration::from_secs(10), || peer
        .received()
        .len()
        == bad.len() + 3));
    assert_eq!(peer.rejected(), bad.len() as u64);
    assert_eq!(peer.value(), 5 + 3 + 1 - 1);
    let (inc, _) = peer.state();
    assert_eq!(inc.get(&peer.addr()), Some(&0));
    let peers: Vec<String> = peer.peers().into_iter().map(|(a, _)| a).collect();
    assert_eq!(
        peers,
        vec![sender.to_string()],
        "valid frames add their sender"
    );
    let got = peer.received();
    let compact_r = got
        .iter()
        .find(|r| r.message.as_ref().is_some_and(|m| m.id == "x"))
        .unwrap();
    assert!(is_reference_frame(compact_r).is_err());
    let vector_r = got
        .iter()
        .find(|r| r.message.as_ref().is_some_and(|m| m.id == "127.0.0.1:9000"))
        .unwrap();
    assert_eq!(vector_r.extra_bytes_after_first_read, 0);
    is_reference_frame(vector_r).unwrap();
}

#[test]
fn a_frame_split_over_two_writes_is_cut_by_the_single_read() {
    let peer = ReferencePeer::start(ReferenceConfig {
        sync_interval: Duration::from_secs(3600),
        ..Default::default()
    })
    .unwrap();
    let buf = wire_buffer("127.0.0.1:1", &hex(PUSH)).unwrap();
    let (first, second) = buf.split_at(40);
    let mut s = TcpStream::connect(peer.addr()).unwrap();
    s.set_nodelay(true).unwrap();
    s.write_all(first).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    s.write_all(second).unwrap();
    drop(s);
    assert!(wait_until(Duration::from_secs(10), || !peer
        .received()
        .is_empty()));
    let r = &peer.received()[0];
    assert!(!r.decoded);
    assert_eq!(r.raw.len(), 40);
    assert_eq!(r.extra_bytes_after_first_read, buf.len() - 40);
    assert!(is_reference_frame(r).is_err());
    assert_eq!(peer.rejected(), 1);
    assert_eq!(peer.value(), 0);
}

#[test]
fn two_stand_ins_converge() {
    let a = ReferencePeer::start(fast()).unwrap();
    let b = ReferencePeer::start(ReferenceConfig {
        peers: vec![a.addr()],
        ..fast()
    })
    .unwrap();
    a.add_peer(&b.addr());
    a.increment(4);
    b.increment(9);
    b.decrement(1);
    let done = wait_until(Duration::from_secs(20), || {
        a.value() == 12 && b.value() == 12
    });
    assert!(done, "a {} b {}", a.value(), b.value());
    // Own ids sit at 0 in both maps, so the maps differ by zero entries; digests agree.
    assert!(wait_until(Duration::from_secs(20), || a.digest() == b.digest()));
    // Once equal, a pull is answered by an Ack.
    assert!(wait_until(Duration::from_secs(20), || a
        .received()
        .iter()
        .any(|r| r
            .message
            .as_ref()
            .is_some_and(|m| m.kind == Kind::DigestAck))));
    for r in a.received().iter().chain(b.received().iter()) {
        is_reference_frame(r).unwrap();
    }
}

#[test]
fn mixed_cluster_converges_and_tally_sends_reference_frames() {
    let every = Duration::from_millis(200);
    let r = ReferencePeer::start(fast()).unwrap();
    // The reference reads TCP only: its UDP port is watched, and must stay silent.
    let udp_watch = std::net::UdpSocket::bind(r.addr()).unwrap();
    udp_watch.set_nonblocking(true).unwrap();
    let start = |peers: Vec<String>| {
        let config = tally_std::NodeConfig::new("127.0.0.1:0".parse().unwrap())
            .sync_interval(every)
            .peers(peers);
        tally_std::Node::start(config).unwrap()
    };
    let a = start(vec![r.addr()]);
    let a_addr = a.local_addr().to_string();
    let b = start(vec![r.addr(), a_addr.clone()]);
    let b_addr = b.local_addr().to_string();
    a.add_peer(&b_addr, tally_std::PeerSource::Static).unwrap();
    r.add_peer(&a_addr);
    r.add_peer(&b_addr);

    a.increment(3).unwrap();
    b.increment(5).unwrap();
    r.increment(7);
    a.decrement(2).unwrap();
    let expected = 3 + 5 + 7 - 2;
    let done = wait_until(Duration::from_secs(20), || {
        a.value() == expected && b.value() == expected && r.value() == expected
    });
    assert!(
        done,
        "a {} b {} reference {} (expected {expected})",
        a.value(),
        b.value(),
        r.value()
    );
    // Let a few more rounds (digests, acks) arrive before checking.
    std::thread::sleep(every * 3);

    let got = r.received();
    assert_eq!(r.rejected(), 0, "the stand-in rejected frames: {got:#?}");
    for addr in [&a_addr, &b_addr] {
        let from: Vec<_> = got.iter().filter(|x| &x.from == addr).collect();
        assert!(!from.is_empty(), "no frame from {addr}");
        for x in from {
            if let Err(e) = is_reference_frame(x) {
                panic!("frame from {addr} is not a reference frame: {e}\n{x:#?}");
            }
        }
    }
    assert!(got.iter().all(|x| x.from == a_addr || x.from == b_addr));
    // The Tally nodes spoke datagrams to each other, never to the reference.
    assert!(a.transport().datagrams_in > 0 && b.transport().datagrams_in > 0);
    let mut buf = [0u8; 2048];
    if let Ok((n, from)) = udp_watch.recv_from(&mut buf) {
        panic!("the reference's UDP port got {n} bytes from {from}");
    }
}
