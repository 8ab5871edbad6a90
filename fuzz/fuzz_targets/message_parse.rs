//! One msgpack message (no flag byte), parsed with the host and microcontroller limits.
//!
//! Every message that parses must survive emit → parse unchanged; for a Push, `Union::new`
//! and `Union::scanning` must give the same strictly ascending triples, equal to the per-id
//! maximum of `inc` and `dec`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tally_core::{Message, MessageLimits};

/// `Union::scanning` is O(k²): beyond this many entries the comparison would only be slow.
const MAX_UNION_CHECK: usize = 4096;

fuzz_target!(|data: &[u8]| {
    for limits in [MessageLimits::HOST, MessageLimits::MCU] {
        let Ok(m) = Message::parse(data, &limits) else {
            continue;
        };
        if let Message::Push { id, inc, dec } = &m {
            assert!(!id.is_empty() && id.len() <= limits.max_id_len);
            assert!(inc.len() <= limits.max_entries && dec.len() <= limits.max_entries);
            assert!(!(inc.is_empty() && dec.is_empty()), "an empty Push parsed");
            for (e, _) in inc.clone().chain(dec.clone()) {
                assert!(
                    !e.is_empty() && e.len() <= limits.max_id_len,
                    "entry id {e:?}"
                );
            }
            if inc.len() + dec.len() <= MAX_UNION_CHECK {
                tally_fuzz::check_union(inc, dec);
            }
        }
        tally_fuzz::check_roundtrip(&m, &limits);
    }
});
