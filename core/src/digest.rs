//! The state digest of spec §5: XXH64 (seed 0) of a msgpack document, streamed.
//!
//! The document is never built in memory: its bytes are fed to the hasher piece by piece.
//! It covers exactly the ids with a non-zero `inc` or `dec`, so equal states always have equal
//! digests.

use crate::counter::Entry;
use crate::msgpack::{array_header, str_header};
use core::hash::Hasher;
use twox_hash::XxHash64;

const ENTRY_PREFIX: &[u8] = b"\x82\xa6NodeID";
const VALUE_KEY: &[u8] = b"\xa5Value\xcf";

/// The digest of a state given as entries sorted by id.
pub fn digest<const L: usize>(entries: &[Entry<L>]) -> u64 {
    let live = || entries.iter().filter(|e| !e.is_zero());
    let count = live().count();
    let mut h = XxHash64::with_seed(0);
    h.write(&[0x92]);
    let mut scratch = [0u8; 5];
    for side in [Side::Inc, Side::Dec] {
        h.write(array_header(count, &mut scratch));
        for e in live() {
            h.write(ENTRY_PREFIX);
            h.write(str_header(e.id.len(), &mut scratch));
            h.write(e.id.as_bytes());
            h.write(VALUE_KEY);
            let v = match side {
                Side::Inc => e.inc,
                Side::Dec => e.dec,
            };
            h.write(&v.to_be_bytes());
        }
    }
    h.finish()
}

#[derive(Clone, Copy)]
enum Side {
    Inc,
    Dec,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NodeId;

    fn e(id: &str, inc: u64, dec: u64) -> Entry<32> {
        Entry::new(NodeId::new(id).unwrap(), inc, dec)
    }

    #[test]
    fn ignores_zero_entries() {
        let a = [e("a", 1, 0), e("b", 0, 0)];
        let b = [e("a", 1, 0)];
        assert_eq!(digest(&a), digest(&b));
        assert_ne!(digest(&a), digest(&[e("a", 2, 0)]));
        assert_ne!(digest(&a), digest(&[e("a", 1, 1)]));
    }
}
