//! An mDNS message as a board's discovery reads it (`tally_core::mdns`): whether it asks for
//! us, and the peers it names.
//!
//! Nothing panics; every peer found comes with a port; the announcement written back for an
//! instance found here is read back to that same instance.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tally_core::mdns::{asks_for, for_each_peer, write_announcement, Instance, TTL};

fuzz_target!(|data: &[u8]| {
    let _ = asks_for(data, "board-1");
    let mut found = Vec::new();
    let _ = for_each_peer(data, |f| found.push(f));
    for f in found.iter().take(4) {
        let me = Instance {
            label: "peer",
            id: "peer#1",
            addr: f.addr,
            ttl: TTL,
        };
        let mut buf = [0u8; 512];
        let n = write_announcement(&me, &mut buf).expect("an announcement fits 512 bytes");
        let mut back = Vec::new();
        for_each_peer(&buf[..n], |g| back.push(g)).expect("our own announcement reads");
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].addr, f.addr);
    }
});
