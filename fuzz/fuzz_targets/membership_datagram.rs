//! A membership datagram (`docs/EXTENSIONS.md` §7.2): `0x00 | flags | "SW" | foca packet |
//! tag?`, as a node with and without a cluster key receives it.
//!
//! Nothing panics; what is refused changes no member; what is taken starts with the zero
//! byte and fits the limit; the answers it causes are membership datagrams themselves.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tally_core::auth::ClusterKey;
use tally_core::membership::{lan_config, Membership, OVERHEAD};
use tally_core::{Instant, NodeId};

const MAX: usize = 1200;

fuzz_target!(|data: &[u8]| {
    let Ok(addr) = NodeId::<255>::new("127.0.0.1:9000") else {
        return;
    };
    for key in [None, ClusterKey::from_bytes(&[7; 16]).ok()] {
        let mut m = Membership::new(addr, lan_config(MAX - OVERHEAD), MAX, 1, key);
        let before = m.members().count();
        match m.handle_datagram(Instant::ZERO, data) {
            Ok(()) => {
                assert_eq!(data.first(), Some(&0), "took a datagram without the zero byte");
                assert!(data.len() <= MAX, "took an oversized datagram");
            }
            Err(_) => assert_eq!(m.members().count(), before, "a refused datagram changed members"),
        }
        m.handle_timeout(Instant::from_millis(60_000));
        let mut buf = [0u8; 1500];
        while let Some((to, len)) = m.poll_transmit(&mut buf) {
            assert!(len <= MAX && buf[0] == 0, "sent a datagram that is not membership's");
            assert_ne!(to, addr, "sent to itself");
        }
        while m.poll_event().is_some() {}
    }
});
