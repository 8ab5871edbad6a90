//! How many bytes a compressed block regenerates, read from its sequences section (RFC 8878
//! §3.1.1.3.2) before `ruzstd` executes it.
//!
//! `ruzstd` stops a block that regenerates more than the block maximum only after the sequence
//! that crossed it ran: one match can be 131,074 bytes long, so a 105-byte frame under the 8 KiB
//! microcontroller limits made it allocate 140 KB — more than any board's heap (found by the
//! `zstd_frame` fuzz target). So the sequences are decoded here first, as far as their lengths:
//! the three FSE tables (predefined, RLE, compressed or repeated from the previous block), the
//! backward bitstream, and every literal and match length. Nothing is copied or allocated
//! beyond the tables (at most 512 + 256 + 512 states of 4 bytes).

use crate::error::WireError;
use alloc::vec;
use alloc::vec::Vec;

const MALFORMED: WireError = WireError::ZstdMalformed;

/// One state of an FSE decoding table.
#[derive(Clone, Copy, Debug, Default)]
struct State {
    symbol: u8,
    bits: u8,
    base: u16,
}

/// An FSE decoding table of `1 << log` states.
#[derive(Clone, Debug)]
struct Table {
    log: u8,
    states: Vec<State>,
}

/// What differs between the three kinds of codes.
struct Kind {
    max_log: u8,
    max_symbol: u8,
    predefined: &'static [i16],
    predefined_log: u8,
}

const LITERAL_LENGTHS: Kind = Kind {
    max_log: 9,
    max_symbol: 35,
    predefined: &[
        4, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 2, 1, 1, 1,
        1, 1, -1, -1, -1, -1,
    ],
    predefined_log: 6,
};

const OFFSETS: Kind = Kind {
    max_log: 8,
    max_symbol: 31,
    predefined: &[
        1, 1, 1, 1, 1, 1, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1,
    ],
    predefined_log: 5,
};

const MATCH_LENGTHS: Kind = Kind {
    max_log: 9,
    max_symbol: 52,
    predefined: &[
        1, 4, 3, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1, -1, -1,
    ],
    predefined_log: 6,
};

/// Literal length code → (baseline, extra bits) (RFC 8878 §3.1.1.3.2.1.1).
fn literal_length(code: u8) -> Option<(u32, u8)> {
    Some(match code {
        0..=15 => (u32::from(code), 0),
        16..=19 => (16 + 2 * u32::from(code - 16), 1),
        20 => (24, 2),
        21 => (28, 2),
        22 => (32, 3),
        23 => (40, 3),
        24 => (48, 4),
        25 => (64, 6),
        26..=35 => (128 << (code - 26), code - 19),
        _ => return None,
    })
}

/// Match length code → (baseline, extra bits).
fn match_length(code: u8) -> Option<(u32, u8)> {
    Some(match code {
        0..=31 => (u32::from(code) + 3, 0),
        32..=35 => (35 + 2 * u32::from(code - 32), 1),
        36 => (43, 2),
        37 => (47, 2),
        38 => (51, 3),
        39 => (59, 3),
        40 => (67, 4),
        41 => (83, 4),
        42 => (99, 5),
        43..=52 => ((128 << (code - 43)) + 3, code - 36),
        _ => return None,
    })
}

/// The tables in use in a frame, kept from block to block for Repeat_Mode.
#[derive(Debug, Default)]
pub struct Tables {
    literal_lengths: Option<Table>,
    offsets: Option<Table>,
    match_lengths: Option<Table>,
}

/// What a compressed block's sequences regenerate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lengths {
    /// Σ literal lengths (at most the literals section's size).
    pub literals: u64,
    /// Σ match lengths.
    pub matches: u64,
}

impl Tables {
    /// Reads the sequences section `section` of `sequences` sequences — from its
    /// Symbol_Compression_Modes byte to the end of the block — and returns the lengths the
    /// sequences regenerate, updating the tables for the next block.
    pub fn scan(&mut self, section: &[u8], sequences: usize) -> Result<Lengths, WireError> {
        let (&modes, mut rest) = section.split_first().ok_or(MALFORMED)?;
        if modes & 3 != 0 {
            return Err(MALFORMED);
        }
        for (kind, slot, shift) in [
            (&LITERAL_LENGTHS, &mut self.literal_lengths, 6),
            (&OFFSETS, &mut self.offsets, 4),
            (&MATCH_LENGTHS, &mut self.match_lengths, 2),
        ] {
            let used = update(kind, slot, (modes >> shift) & 3, rest)?;
            rest = rest.get(used..).ok_or(MALFORMED)?;
        }
        let (ll, of, ml) = match (&self.literal_lengths, &self.offsets, &self.match_lengths) {
            (Some(ll), Some(of), Some(ml)) => (ll, of, ml),
            _ => return Err(MALFORMED),
        };
        decode(rest, sequences, ll, of, ml)
    }
}

/// Applies one Compression_Mode to `slot`; returns the bytes of table description read.
fn update(kind: &Kind, slot: &mut Option<Table>, mode: u8, src: &[u8]) -> Result<usize, WireError> {
    match mode {
        // Predefined_Mode.
        0 => {
            *slot = Some(build(kind.predefined, kind.predefined_log)?);
            Ok(0)
        }
        // RLE_Mode: one symbol, no bits.
        1 => {
            let &symbol = src.first().ok_or(MALFORMED)?;
            if symbol > kind.max_symbol {
                return Err(MALFORMED);
            }
            *slot = Some(Table {
                log: 0,
                states: vec![State {
                    symbol,
                    bits: 0,
                    base: 0,
                }],
            });
            Ok(1)
        }
        // FSE_Compressed_Mode.
        2 => {
            let (norm, log, used) = read_distribution(src, kind)?;
            *slot = Some(build(&norm, log)?);
            Ok(used)
        }
        // Repeat_Mode: the previous block's table, which must exist.
        _ => match slot {
            Some(_) => Ok(0),
            None => Err(MALFORMED),
        },
    }
}

/// Reads bits forward, least significant first; past the end they read as zero, and
/// [`Forward::overrun`] says so.
struct Forward<'a> {
    bytes: &'a [u8],
    bit: usize,
}

impl Forward<'_> {
    fn peek(&self, n: u32) -> u32 {
        let mut v = 0u32;
        for i in 0..n as usize {
            let at = self.bit + i;
            let b = self.bytes.get(at / 8).map_or(0, |b| (b >> (at % 8)) & 1);
            v |= u32::from(b) << i;
        }
        v
    }

    fn consume(&mut self, n: u32) {
        self.bit += n as usize;
    }

    fn overrun(&self) -> bool {
        self.bit > self.bytes.len() * 8
    }
}

/// An FSE table description (RFC 8878 §4.1.1): the normalized counts, the accuracy log and
/// the bytes it took.
fn read_distribution(src: &[u8], kind: &Kind) -> Result<(Vec<i16>, u8, usize), WireError> {
    let mut r = Forward { bytes: src, bit: 0 };
    let log = r.peek(4) + 5;
    r.consume(4);
    if log > u32::from(kind.max_log) {
        return Err(MALFORMED);
    }
    let size = 1i32 << log;
    let mut remaining = size + 1;
    let mut threshold = size;
    let mut nb_bits = log + 1;
    let mut norm: Vec<i16> = Vec::new();
    let max_symbols = usize::from(kind.max_symbol) + 1;
    let mut previous_zero = false;
    while remaining > 1 && norm.len() < max_symbols {
        if previous_zero {
            // 2-bit repeat flags: that many more zeros; 3 means another flag follows.
            let mut zeros = norm.len();
            loop {
                let flag = r.peek(2);
                r.consume(2);
                zeros += flag as usize;
                if flag != 3 {
                    break;
                }
                if zeros >= max_symbols || r.overrun() {
                    return Err(MALFORMED);
                }
            }
            if zeros >= max_symbols {
                return Err(MALFORMED);
            }
            norm.resize(zeros, 0);
        }
        let max = (2 * threshold - 1) - remaining;
        let v = r.peek(nb_bits) as i32;
        let mut count = if (v & (threshold - 1)) < max {
            r.consume(nb_bits - 1);
            v & (threshold - 1)
        } else {
            r.consume(nb_bits);
            let c = v & (2 * threshold - 1);
            if c >= threshold {
                c - max
            } else {
                c
            }
        };
        count -= 1; // a probability of -1 means "less than 1"
        remaining -= count.abs();
        if remaining < 1 {
            return Err(MALFORMED);
        }
        norm.push(i16::try_from(count).map_err(|_| MALFORMED)?);
        previous_zero = count == 0;
        while remaining < threshold && nb_bits > 1 {
            nb_bits -= 1;
            threshold >>= 1;
        }
    }
    if remaining != 1 || r.overrun() {
        return Err(MALFORMED);
    }
    Ok((norm, log as u8, r.bit.div_ceil(8)))
}

/// The decoding table of a distribution (RFC 8878 §4.1.1, "FSE table construction").
fn build(norm: &[i16], log: u8) -> Result<Table, WireError> {
    let size = 1usize << log;
    let mut states = vec![State::default(); size];
    let mut next: Vec<u32> = Vec::with_capacity(norm.len());
    // Symbols of probability "less than 1" take the last states, one each.
    let mut high = size;
    for (symbol, &count) in norm.iter().enumerate() {
        let symbol = u8::try_from(symbol).map_err(|_| MALFORMED)?;
        if count == -1 {
            high = high.checked_sub(1).ok_or(MALFORMED)?;
            states.get_mut(high).ok_or(MALFORMED)?.symbol = symbol;
            next.push(1);
        } else {
            next.push(u32::try_from(count).map_err(|_| MALFORMED)?);
        }
    }
    // The others are spread with a fixed step, skipping the states taken above.
    let step = (size >> 1) + (size >> 3) + 3;
    let mask = size - 1;
    let mut pos = 0usize;
    for (symbol, &count) in norm.iter().enumerate() {
        for _ in 0..count.max(0) {
            states.get_mut(pos).ok_or(MALFORMED)?.symbol =
                u8::try_from(symbol).map_err(|_| MALFORMED)?;
            loop {
                pos = (pos + step) & mask;
                if pos < high {
                    break;
                }
            }
        }
    }
    if pos != 0 {
        return Err(MALFORMED);
    }
    for state in &mut states {
        let n = next.get_mut(usize::from(state.symbol)).ok_or(MALFORMED)?;
        let ns = *n;
        *n += 1;
        if ns == 0 {
            return Err(MALFORMED);
        }
        let bits = u32::from(log)
            .checked_sub(31 - ns.leading_zeros())
            .ok_or(MALFORMED)?;
        state.bits = bits as u8;
        state.base = u16::try_from((ns << bits).checked_sub(size as u32).ok_or(MALFORMED)?)
            .map_err(|_| MALFORMED)?;
    }
    Ok(Table { log, states })
}

/// Reads a bitstream backward from its end, as FSE streams are read (RFC 8878 §4.1): the
/// last byte's highest set bit marks where the stream starts.
struct Backward<'a> {
    bytes: &'a [u8],
    /// Bits left to read.
    left: i64,
}

impl<'a> Backward<'a> {
    fn new(bytes: &'a [u8]) -> Result<Self, WireError> {
        let &last = bytes.last().ok_or(MALFORMED)?;
        if last == 0 {
            return Err(MALFORMED);
        }
        let marker = 7 - i64::from(last.leading_zeros());
        Ok(Self {
            bytes,
            left: (bytes.len() as i64 - 1) * 8 + marker,
        })
    }

    /// The next `n` bits (first read is most significant); bits before the start read as 0.
    fn read(&mut self, n: u8) -> u32 {
        let mut v = 0u32;
        for _ in 0..n {
            self.left -= 1;
            let bit = if self.left < 0 {
                0
            } else {
                let at = self.left as usize;
                self.bytes.get(at / 8).map_or(0, |b| (b >> (at % 8)) & 1)
            };
            v = (v << 1) | u32::from(bit);
        }
        v
    }
}

/// Decodes `n` sequences from `stream` and sums their lengths; the stream must be read exactly.
fn decode(
    stream: &[u8],
    n: usize,
    ll: &Table,
    of: &Table,
    ml: &Table,
) -> Result<Lengths, WireError> {
    let mut bits = Backward::new(stream)?;
    let mut ll_state = bits.read(ll.log) as usize;
    let mut of_state = bits.read(of.log) as usize;
    let mut ml_state = bits.read(ml.log) as usize;
    let mut out = Lengths {
        literals: 0,
        matches: 0,
    };
    for i in 0..n {
        let l = *ll.states.get(ll_state).ok_or(MALFORMED)?;
        let o = *of.states.get(of_state).ok_or(MALFORMED)?;
        let m = *ml.states.get(ml_state).ok_or(MALFORMED)?;
        if o.symbol > OFFSETS.max_symbol {
            return Err(MALFORMED);
        }
        let (ml_base, ml_bits) = match_length(m.symbol).ok_or(MALFORMED)?;
        let (ll_base, ll_bits) = literal_length(l.symbol).ok_or(MALFORMED)?;
        // Offset bits first, then match length, then literal length.
        bits.read(o.symbol);
        let matched = ml_base + bits.read(ml_bits);
        let literals = ll_base + bits.read(ll_bits);
        out.matches += u64::from(matched);
        out.literals += u64::from(literals);
        if i + 1 < n {
            ll_state = usize::from(l.base) + bits.read(l.bits) as usize;
            ml_state = usize::from(m.base) + bits.read(m.bits) as usize;
            of_state = usize::from(o.base) + bits.read(o.bits) as usize;
        }
        if bits.left < 0 {
            return Err(MALFORMED);
        }
    }
    if bits.left != 0 {
        return Err(MALFORMED);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_tables_match_the_rfc() {
        // A few rows of RFC 8878's tables, including every place the closed forms change.
        assert_eq!(literal_length(15), Some((15, 0)));
        assert_eq!(literal_length(19), Some((22, 1)));
        assert_eq!(literal_length(25), Some((64, 6)));
        assert_eq!(literal_length(26), Some((128, 7)));
        assert_eq!(literal_length(35), Some((65536, 16)));
        assert_eq!(literal_length(36), None);
        assert_eq!(match_length(31), Some((34, 0)));
        assert_eq!(match_length(35), Some((41, 1)));
        assert_eq!(match_length(42), Some((99, 5)));
        assert_eq!(match_length(43), Some((131, 7)));
        assert_eq!(match_length(52), Some((65539, 16)));
        assert_eq!(match_length(53), None);
    }

    #[test]
    fn predefined_tables_build() {
        for kind in [&LITERAL_LENGTHS, &OFFSETS, &MATCH_LENGTHS] {
            let t = build(kind.predefined, kind.predefined_log).unwrap();
            assert_eq!(t.states.len(), 1 << kind.predefined_log);
        }
        // RFC 8878 Appendix A: the first states of the predefined literal lengths table.
        let t = build(LITERAL_LENGTHS.predefined, 6).unwrap();
        let first: Vec<(u8, u8, u16)> = t.states[..4]
            .iter()
            .map(|s| (s.symbol, s.bits, s.base))
            .collect();
        assert_eq!(first, [(0, 4, 0), (0, 4, 16), (1, 5, 32), (3, 5, 0)]);
    }

    #[test]
    fn repeat_without_a_previous_table_is_refused() {
        let mut t = Tables::default();
        // Literal lengths in Repeat_Mode (3 << 6) in the first block.
        assert_eq!(t.scan(&[0xc0, 0x80], 1), Err(MALFORMED));
    }
}
