//! Build-time settings: peers come as one comma-separated string (`TALLY_PEERS`), the cluster
//! key as hex (`TALLY_CLUSTER_KEY`, parsed at compile time), and the W5500's MAC from the
//! flash chip's unique id.

use tally_core::auth::{MAX_KEY_LEN, MIN_KEY_LEN};
use tally_core::{ClusterKey, Config, KeyError};

/// Most static peers a board takes from its build-time list.
pub const MAX_PEERS: usize = 8;

/// Splits `a,b,c` (spaces around items ignored, empty items skipped) into at most
/// [`MAX_PEERS`] addresses; extra items are dropped.
pub fn peers(list: &str) -> heapless::Vec<&str, MAX_PEERS> {
    let mut out = heapless::Vec::new();
    for p in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if out.push(p).is_err() {
            break;
        }
    }
    out
}

/// A cluster key given at build time (`TALLY_CLUSTER_KEY`): the bytes of 32–64 hex digits,
/// checked by a `const fn` so that a bad key fails the build. Its `Debug` shows the length
/// only: the key is never logged or printed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct BuildKey {
    bytes: [u8; MAX_KEY_LEN],
    len: u8,
}

impl core::fmt::Debug for BuildKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "BuildKey({} bytes, redacted)", self.len)
    }
}

impl BuildKey {
    /// Parses hex text as `tally node` reads a key file (the same 32–64 hex digits, ASCII
    /// whitespace around them ignored). Empty or blank text is no key (`Ok(None)`).
    pub const fn parse(text: &str) -> Result<Option<BuildKey>, KeyError> {
        let hex = text.as_bytes().trim_ascii();
        if hex.is_empty() {
            return Ok(None);
        }
        if !hex.len().is_multiple_of(2) {
            return Err(KeyError::NotHex);
        }
        let mut bytes = [0u8; MAX_KEY_LEN];
        let mut i = 0;
        while i < hex.len() {
            let (Some(hi), Some(lo)) = (nibble(hex[i]), nibble(hex[i + 1])) else {
                return Err(KeyError::NotHex);
            };
            if i / 2 < MAX_KEY_LEN {
                bytes[i / 2] = (hi << 4) | lo;
            }
            i += 2;
        }
        let n = hex.len() / 2;
        if n < MIN_KEY_LEN {
            return Err(KeyError::TooShort);
        }
        if n > MAX_KEY_LEN {
            return Err(KeyError::TooLong);
        }
        Ok(Some(BuildKey {
            bytes,
            len: n as u8,
        }))
    }

    /// The engine's key.
    pub fn key(&self) -> Result<ClusterKey, KeyError> {
        ClusterKey::from_bytes(self.bytes.get(..usize::from(self.len)).unwrap_or_default())
    }
}

const fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The build's cluster key, for a `const` in each firmware:
/// `build_key(option_env!("TALLY_CLUSTER_KEY"))`. Unset or empty: no key. A bad key stops the
/// build with the reason (the key itself is not shown).
pub const fn build_key(text: Option<&str>) -> Option<BuildKey> {
    let Some(text) = text else { return None };
    match BuildKey::parse(text) {
        Ok(k) => k,
        Err(KeyError::TooShort) => {
            panic!("TALLY_CLUSTER_KEY is too short: at least 32 hex digits (16 bytes)")
        }
        Err(KeyError::TooLong) => {
            panic!("TALLY_CLUSTER_KEY is too long: at most 64 hex digits (32 bytes)")
        }
        Err(_) => panic!("TALLY_CLUSTER_KEY must be an even number of hex digits"),
    }
}

/// `engine` with the build's cluster key, if any; `None` when the key cannot be made (it was
/// checked at compile time, so this does not happen), and a board built with a key then does
/// not start: it never runs unauthenticated. Inlined, so that a build without a key (`key` a
/// `None` constant) carries none of this.
#[inline(always)]
pub fn keyed(mut engine: Config, key: Option<BuildKey>) -> Option<Config> {
    if let Some(key) = key {
        match key.key() {
            Ok(k) => engine.cluster_key = Some(k),
            Err(e) => {
                warn!("cluster key unusable: {}", e);
                return None;
            }
        }
    }
    Some(engine)
}

/// A number given at build time (`TALLY_COUNTERS`, `TALLY_COUNTER_CELLS`), parsed when the
/// firmware is compiled: unset or empty is `default`; anything but decimal digits (or a
/// number past `usize`) stops the build.
pub const fn build_number(text: Option<&str>, default: usize) -> usize {
    let Some(text) = text else { return default };
    let b = text.as_bytes();
    if b.is_empty() {
        return default;
    }
    let mut n: usize = 0;
    let mut i = 0;
    while i < b.len() {
        let d = b[i];
        if !d.is_ascii_digit() {
            panic!("a TALLY_* number setting must be decimal digits");
        }
        n = match n.checked_mul(10) {
            Some(x) => match x.checked_add((d - b'0') as usize) {
                Some(y) => y,
                None => panic!("a TALLY_* number setting is too large"),
            },
            None => panic!("a TALLY_* number setting is too large"),
        };
        i += 1;
    }
    n
}

/// A MAC for a board without one of its own (the W5500's), from the 8-byte unique id of its
/// flash chip: all six bytes from the id's 64-bit FNV-1a hash, with the locally administered
/// bit set and the multicast bit clear. Stable across boots, distinct per board (unlike the
/// name's last bytes, which the boards share).
pub fn mac_from_uid(uid: &[u8; 8]) -> [u8; 6] {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in uid {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    let h = h.to_le_bytes();
    [(h[0] & 0xfc) | 0x02, h[1], h[2], h[3], h[4], h[5]]
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::format;

    const KEY: &str = "000102030405060708090a0b0c0d0e0f";

    #[test]
    fn build_key_parses_as_a_key_file() {
        let k = BuildKey::parse(KEY).unwrap().unwrap();
        assert_eq!(k.key().unwrap(), ClusterKey::from_hex(KEY).unwrap());
        // Surrounding whitespace and upper case, as in a key file; 64 digits is the longest.
        let long = "AB".repeat(32);
        let k = BuildKey::parse(&format!(" {long}\n")).unwrap().unwrap();
        assert_eq!(k.key().unwrap(), ClusterKey::from_hex(&long).unwrap());
        // Empty or blank: no key.
        assert_eq!(BuildKey::parse(""), Ok(None));
        assert_eq!(BuildKey::parse(" \n"), Ok(None));
        assert!(build_key(None).is_none());
        assert!(build_key(Some("")).is_none());
        const BUILT: Option<BuildKey> = build_key(Some(KEY));
        assert!(BUILT.is_some());
    }

    #[test]
    fn keyed_sets_the_engine_key() {
        let engine = Config::mcu();
        assert!(keyed(engine, None).unwrap().cluster_key.is_none());
        let k = build_key(Some(KEY));
        let keyed = keyed(engine, k).unwrap();
        assert_eq!(keyed.cluster_key, Some(ClusterKey::from_hex(KEY).unwrap()));
        // Its Debug shows no key byte.
        assert_eq!(format!("{:?}", k.unwrap()), "BuildKey(16 bytes, redacted)");
    }

    #[test]
    fn bad_keys_are_refused() {
        assert_eq!(BuildKey::parse("abcd"), Err(KeyError::TooShort));
        assert_eq!(BuildKey::parse(&"ab".repeat(15)), Err(KeyError::TooShort));
        assert_eq!(BuildKey::parse(&"ab".repeat(33)), Err(KeyError::TooLong));
        assert_eq!(BuildKey::parse(&"zz".repeat(16)), Err(KeyError::NotHex));
        assert_eq!(BuildKey::parse(&format!("{KEY}0")), Err(KeyError::NotHex));
        assert_eq!(
            BuildKey::parse(&format!("{KEY} {KEY}")),
            Err(KeyError::NotHex)
        );
    }

    #[test]
    #[should_panic(expected = "too short")]
    fn a_bad_build_key_stops() {
        let _ = build_key(Some("abcd"));
    }

    #[test]
    fn mac_is_local_unicast_and_per_board() {
        let uids: [[u8; 8]; 4] = [
            [0; 8],
            [0xff; 8],
            [1, 2, 3, 4, 5, 6, 7, 8],
            [1, 2, 3, 4, 5, 6, 7, 9],
        ];
        let macs = uids.map(|u| mac_from_uid(&u));
        for (u, m) in uids.iter().zip(macs) {
            assert_eq!(m[0] & 0x02, 0x02, "locally administered");
            assert_eq!(m[0] & 0x01, 0, "unicast");
            assert_eq!(mac_from_uid(u), m, "deterministic");
        }
        for (i, a) in macs.iter().enumerate() {
            for b in &macs[i + 1..] {
                assert_ne!(a, b);
            }
        }
        // Boards whose ids differ only in one byte (and so would share the name's tail).
        let mut seen = std::collections::HashSet::new();
        for b in 0..=255u8 {
            assert!(seen.insert(mac_from_uid(&[0xe6, 0x61, 0x38, 0x52, 0x83, 0x2a, 0x40, b])));
        }
    }

    #[test]
    fn build_numbers_parse_at_compile_time() {
        const N: usize = build_number(Some("12"), 4);
        assert_eq!(N, 12);
        assert_eq!(build_number(None, 4), 4);
        assert_eq!(build_number(Some(""), 4), 4);
    }

    #[test]
    #[should_panic(expected = "decimal digits")]
    fn a_bad_build_number_stops() {
        let _ = build_number(Some("4k"), 4);
    }

    #[test]
    fn splits_and_trims() {
        assert_eq!(peers("").len(), 0);
        assert_eq!(
            peers(" 10.0.0.1:9000, ,10.0.0.2:9000 ").as_slice(),
            ["10.0.0.1:9000", "10.0.0.2:9000"]
        );
        let many = "1.1.1.1:1,".repeat(20);
        assert_eq!(peers(&many).len(), MAX_PEERS);
    }
}
