//! What arrives on the gossip port: the spec's vectors are understood over TCP; bad frames of
//! every kind are rejected and counted while the node keeps serving and its value holds.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::Duration;
use tally_core::frame::split_header;
use tally_core::{Message, MessageLimits, MessageType, WireError};
use tally_std::{Node, NodeConfig};
use tally_tests::{core_fixture, wait_until};

fn node() -> Node {
    let mut config = NodeConfig::new("127.0.0.1:0".parse().unwrap());
    config.read_timeout = Duration::from_millis(500);
    Node::start(config).unwrap()
}

/// Sends `[len][from][frame]` to `node` in one connection.
fn send(node: &Node, from: &str, frame: &[u8]) {
    let mut payload = vec![from.len() as u8];
    payload.extend_from_slice(from.as_bytes());
    payload.extend_from_slice(frame);
    send_raw(node, &payload);
}

fn send_raw(node: &Node, payload: &[u8]) {
    let mut s = TcpStream::connect(node.local_addr()).unwrap();
    s.write_all(payload).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
}

/// Accepts connections on `listener` until one carries something other than the node's
/// hello (`EXTENSIONS.md` §2, sent to every new peer); returns its message type and payload.
fn receive(listener: &TcpListener) -> (MessageType, Vec<u8>) {
    listener.set_nonblocking(false).unwrap();
    loop {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).unwrap();
        let (_, frame) = split_header(&buf).unwrap();
        let body = tally_core::frame::decode(frame, &tally_core::FrameLimits::HOST).unwrap();
        let m = Message::parse(body.bytes(), &MessageLimits::HOST).unwrap();
        if let Message::DigestAck { digest, .. } = m {
            if tally_core::ext::Hello::from_digest(digest).is_some() {
                continue;
            }
        }
        return (m.message_type(), buf);
    }
}

#[test]
fn spec_vectors_over_tcp_are_understood() {
    let n = node();
    let me = TcpListener::bind("127.0.0.1:0").unwrap();
    let me_addr = me.local_addr().unwrap().to_string();
    // (a): a Push from 127.0.0.1:9000 — value 3 + 1 − 1.
    send(&n, &me_addr, &core_fixture("a_push.hex"));
    assert!(wait_until(Duration::from_secs(5), || n.value() == 3));
    // The Push showed nothing the node lacks... but the node has nothing more either: no reply
    // is needed. A DigestPull (b) with the digest of exactly this state gets a DigestAck (c).
    send(&n, &me_addr, &core_fixture("b_digest_pull.hex"));
    let (t, _) = receive(&me);
    assert_eq!(t, MessageType::DigestAck);
    // The Ack told the node that `me` holds its state. A DigestPull from `me` with another
    // digest means `me` has more: the node asks for it with a DigestPull of its own.
    let mut other = core_fixture("b_digest_pull.hex");
    *other.last_mut().unwrap() ^= 0xff;
    send(&n, &me_addr, &other);
    let (t, _) = receive(&me);
    assert_eq!(t, MessageType::DigestPull);
    // From a sender it knows nothing about, the same DigestPull gets the full state pushed to
    // the address in the header.
    let stranger = TcpListener::bind("127.0.0.1:0").unwrap();
    send(&n, &stranger.local_addr().unwrap().to_string(), &other);
    let (t, _) = receive(&stranger);
    assert_eq!(t, MessageType::Push);
    // (c): a DigestAck is understood and changes nothing.
    send(&n, &me_addr, &core_fixture("c_digest_ack.hex"));
    assert!(wait_until(Duration::from_secs(5), || n
        .stats()
        .received(MessageType::DigestAck)
        == 1));
    assert_eq!(n.value(), 3);
    assert_eq!(n.stats().rejected_total(), 0);
}

#[test]
fn bad_frames_are_rejected_counted_and_harmless() {
    let n = node();
    n.increment(4).unwrap();
    let from = "127.0.0.1:1";
    let expect = |e: WireError, k: u64| {
        assert!(
            wait_until(Duration::from_secs(5), || n.stats().rejected(e) >= k),
            "{e:?} not counted: {:?}",
            n.stats().rejects
        );
    };
    // Random bytes (as a whole payload: a garbage header).
    send_raw(&n, &[0, 0xde, 0xad, 0xbe, 0xef]);
    expect(WireError::BadHeader, 1);
    // Random bytes as a frame.
    send(&n, from, &[0x00, 0xc1, 0x17, 0x99]);
    expect(WireError::NotAMap, 1);
    // Truncated vector (a).
    let a = core_fixture("a_push.hex");
    send(&n, from, &a[..a.len() - 10]);
    expect(WireError::Truncated, 1);
    // Unknown type: `t` = 9.
    let mut t9 = core_fixture("c_digest_ack.hex");
    t9[5] = 9;
    send(&n, from, &t9);
    expect(WireError::UnknownType, 1);
    // Oversize: more than the 1 MiB frame limit.
    let mut big = vec![0x00];
    big.resize((1 << 20) + 300, 0x90);
    send(&n, from, &big);
    expect(WireError::FrameTooLarge, 1);
    // zstd that inflates beyond the 4 MiB limit.
    let zeros = vec![0u8; 5 << 20];
    let mut bomb = vec![0x80];
    bomb.extend(zstd::bulk::compress(&zeros, 3).unwrap());
    send(&n, from, &bomb);
    expect(WireError::ZstdContentTooLarge, 1);
    // A slow sender that never finishes is cut off at the read deadline.
    let mut slow = TcpStream::connect(n.local_addr()).unwrap();
    slow.write_all(&[5, b'a']).unwrap();
    expect(WireError::TooSlow, 1);
    drop(slow);
    // Still serving: a valid Push is merged, and the value never moved on bad input.
    assert_eq!(n.value(), 4);
    send(&n, from, &a);
    assert!(wait_until(Duration::from_secs(5), || n.value() == 7));
}
