//! Checks shared by the fuzz targets, and the byte reader they take their inputs with.
//!
//! Every function here panics (which libFuzzer reports as a crash) when `tally-core` breaks one
//! of its promises: a parsed message must re-emit into exactly `buffer_len()` bytes and parse
//! back to the same message; the two `Union` paths must agree and be strictly ascending.

use std::collections::BTreeMap;
use tally_core::union::Union;
use tally_core::{Entries, Message, MessageLimits};

/// A parsed message with its entry maps read out, comparable with `==`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Canon {
    /// A Push: sender, `inc` and `dec` in wire order.
    Push {
        /// Sender's id.
        id: String,
        /// `inc` entries, as listed.
        inc: Vec<(String, u64)>,
        /// `dec` entries, as listed.
        dec: Vec<(String, u64)>,
    },
    /// A DigestPull.
    Pull {
        /// Sender's id.
        id: String,
        /// Digest (0 when absent).
        digest: u64,
    },
    /// A DigestAck.
    Ack {
        /// Sender's id.
        id: String,
        /// Digest (0 when absent).
        digest: u64,
    },
}

fn owned(e: Entries<'_>) -> Vec<(String, u64)> {
    e.map(|(id, v)| (id.to_owned(), v)).collect()
}

impl Canon {
    /// Reads out a parsed message (iterating every entry).
    pub fn of(m: &Message<'_>) -> Self {
        match m {
            Message::Push { id, inc, dec } => {
                assert_eq!(inc.clone().count(), inc.len(), "Entries::len vs iteration");
                assert_eq!(dec.clone().count(), dec.len(), "Entries::len vs iteration");
                Canon::Push {
                    id: (*id).to_owned(),
                    inc: owned(inc.clone()),
                    dec: owned(dec.clone()),
                }
            }
            Message::DigestPull { id, digest } => Canon::Pull {
                id: (*id).to_owned(),
                digest: *digest,
            },
            Message::DigestAck { id, digest } => Canon::Ack {
                id: (*id).to_owned(),
                digest: *digest,
            },
        }
    }
}

/// Emits `m` into a buffer of exactly `buffer_len()` bytes and parses it back with `limits`
/// (the limits `m` was parsed with): the result must be the same message, and emitting it
/// again must give the same bytes. Returns the emitted bytes.
pub fn check_roundtrip(m: &Message<'_>, limits: &MessageLimits) -> Vec<u8> {
    let before = Canon::of(m);
    let len = m.buffer_len();
    let mut buf = vec![0u8; len];
    let n = match m.emit(&mut buf) {
        Ok(n) => n,
        Err(e) => panic!("emit into buffer_len() = {len} bytes failed: {e} for {before:?}"),
    };
    assert_eq!(n, len, "emit wrote {n} bytes, buffer_len() said {len}");
    // One byte less must not be enough.
    if len > 0 {
        let mut short = vec![0u8; len - 1];
        assert!(m.emit(&mut short).is_err(), "emit fit in buffer_len() - 1");
    }
    let back = match Message::parse(&buf, limits) {
        Ok(b) => b,
        Err(e) => panic!("re-parse of an emitted message failed: {e} ({e:?}) for {before:?}"),
    };
    assert_eq!(Canon::of(&back), before, "parse(emit(m)) != m");
    let mut again = vec![0u8; back.buffer_len()];
    let n2 = back.emit(&mut again).expect("second emit");
    assert_eq!(&again[..n2], &buf[..], "emit(parse(emit(m))) != emit(m)");
    buf
}

/// The per-id maximum of a Push's two maps, sorted: what `Union` must yield.
pub fn union_model(inc: Entries<'_>, dec: Entries<'_>) -> Vec<(String, u64, u64)> {
    let mut m: BTreeMap<Vec<u8>, (String, u64, u64)> = BTreeMap::new();
    for (id, v) in inc {
        let e = m
            .entry(id.as_bytes().to_vec())
            .or_insert_with(|| (id.to_owned(), 0, 0));
        e.1 = e.1.max(v);
    }
    for (id, v) in dec {
        let e = m
            .entry(id.as_bytes().to_vec())
            .or_insert_with(|| (id.to_owned(), 0, 0));
        e.2 = e.2.max(v);
    }
    m.into_values().collect()
}

/// `Union::new` and `Union::scanning` must yield the same triples, strictly ascending by id,
/// equal to the per-id maximum of both maps.
pub fn check_union(inc: &Entries<'_>, dec: &Entries<'_>) {
    let fast: Vec<(&str, u64, u64)> = Union::new(inc.clone(), dec.clone()).collect();
    let scan: Vec<(&str, u64, u64)> = Union::scanning(inc.clone(), dec.clone()).collect();
    assert_eq!(fast, scan, "Union::new and Union::scanning disagree");
    for w in fast.windows(2) {
        assert!(
            w[0].0.as_bytes() < w[1].0.as_bytes(),
            "Union not strictly ascending: {:?} then {:?}",
            w[0].0,
            w[1].0
        );
    }
    let model = union_model(inc.clone(), dec.clone());
    let fast_owned: Vec<(String, u64, u64)> = fast
        .iter()
        .map(|&(id, i, d)| (id.to_owned(), i, d))
        .collect();
    assert_eq!(
        fast_owned, model,
        "Union is not the per-id max of inc and dec"
    );
}

/// A forgiving reader of a fuzz input: past the end every number is 0 and every slice empty,
/// so any input is a valid sequence of operations (and seeds can be written by hand).
pub struct Input<'a>(pub &'a [u8]);

impl<'a> Input<'a> {
    /// The next byte, or `None` at the end (where a sequence of operations stops).
    pub fn op(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    /// The next byte, 0 past the end.
    pub fn u8(&mut self) -> u8 {
        self.op().unwrap_or(0)
    }

    /// The next two bytes, little-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    /// The next eight bytes, little-endian.
    pub fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = self.u8();
        }
        u64::from_le_bytes(b)
    }

    /// The next `n` bytes (fewer at the end).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }
}
