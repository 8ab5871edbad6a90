//! rmp-serde as an independent msgpack implementation: it decodes what the core emits, and the
//! core decodes what it (a different, compact encoder) emits.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tally_core::{Message, MessageLimits};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct WireMessage {
    t: u8,
    id: String,
    inc: Option<BTreeMap<String, u64>>,
    dec: Option<BTreeMap<String, u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dig: Option<u64>,
}

#[test]
fn rmp_serde_reads_core_bytes() {
    let inc = [("127.0.0.1:9000", 3u64), ("127.0.0.1:9001", 1)];
    let dec = [("127.0.0.1:9000", 1u64)];
    let m = Message::Push {
        id: "127.0.0.1:9000",
        inc: inc.iter().copied(),
        dec: dec.iter().copied(),
    };
    let mut buf = vec![0u8; m.buffer_len()];
    m.emit(&mut buf).unwrap();
    let decoded: WireMessage = rmp_serde::from_slice(&buf).unwrap();
    assert_eq!(decoded.t, 1);
    assert_eq!(decoded.id, "127.0.0.1:9000");
    assert_eq!(decoded.inc.unwrap().len(), 2);
    assert_eq!(decoded.dec.unwrap()["127.0.0.1:9000"], 1);

    let pull: Message<'_, std::iter::Empty<(&str, u64)>> = Message::DigestPull {
        id: "n:1",
        digest: u64::MAX,
    };
    let mut buf = vec![0u8; pull.buffer_len()];
    pull.emit(&mut buf).unwrap();
    let decoded: WireMessage = rmp_serde::from_slice(&buf).unwrap();
    assert_eq!(decoded.dig, Some(u64::MAX));
    assert_eq!(decoded.inc, None);
}

#[test]
fn core_reads_rmp_serde_bytes() {
    for n in [0usize, 1, 15, 16, 300] {
        let inc: BTreeMap<String, u64> = (0..n)
            .map(|i| (format!("node-{i}"), i as u64 * 1000))
            .collect();
        let msg = WireMessage {
            t: 1,
            id: "x".repeat(40),
            inc: Some(inc.clone()),
            dec: Some(BTreeMap::from([("z".to_string(), u64::MAX)])),
            dig: None,
        };
        // Named (map) encoding, as the reference's struct tags produce.
        let bytes = rmp_serde::to_vec_named(&msg).unwrap();
        let parsed = Message::parse(&bytes, &MessageLimits::HOST).unwrap();
        let Message::Push {
            id,
            inc: pi,
            dec: pd,
        } = parsed
        else {
            panic!("not a push")
        };
        assert_eq!(id, msg.id);
        let got: BTreeMap<String, u64> = pi.map(|(k, v)| (k.to_string(), v)).collect();
        assert_eq!(got, inc);
        assert_eq!(pd.collect::<Vec<_>>(), [("z", u64::MAX)]);
    }
    let pull = WireMessage {
        t: 2,
        id: "p:1".into(),
        inc: None,
        dec: None,
        dig: Some(7),
    };
    let bytes = rmp_serde::to_vec_named(&pull).unwrap();
    assert!(matches!(
        Message::parse(&bytes, &MessageLimits::HOST).unwrap(),
        Message::DigestPull {
            id: "p:1",
            digest: 7
        }
    ));
}
