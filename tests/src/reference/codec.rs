//! The reference encoder (byte for byte the Go encoder's output when entries are sorted), a
//! decoder as permissive and as strict as the reference's, the frame and the digest.

use super::*;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

/// Message type (`"t"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// 1: full state.
    Push,
    /// 2: "here is my digest".
    DigestPull,
    /// 3: "same digest as yours".
    DigestAck,
}

impl Kind {
    /// The wire code.
    pub fn code(self) -> u8 {
        match self {
            Kind::Push => 1,
            Kind::DigestPull => 2,
            Kind::DigestAck => 3,
        }
    }

    /// The type of a wire code, if it is one.
    pub fn from_code(code: u64) -> Option<Kind> {
        match code {
            1 => Some(Kind::Push),
            2 => Some(Kind::DigestPull),
            3 => Some(Kind::DigestAck),
            _ => None,
        }
    }
}

/// A decoded message. `inc`/`dec` are empty when the wire had nil (or nothing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// `"t"`.
    pub kind: Kind,
    /// `"id"`: the sender's node id.
    pub id: String,
    /// `"inc"`: increments per node id.
    pub inc: BTreeMap<String, u64>,
    /// `"dec"`: decrements per node id.
    pub dec: BTreeMap<String, u64>,
    /// `"dig"`: 0 when absent.
    pub dig: u64,
}

impl Message {
    /// A Push of the given state.
    pub fn push(id: &str, inc: BTreeMap<String, u64>, dec: BTreeMap<String, u64>) -> Self {
        Message {
            kind: Kind::Push,
            id: id.to_owned(),
            inc,
            dec,
            dig: 0,
        }
    }

    /// A DigestPull or DigestAck carrying `dig`.
    pub fn digest_only(kind: Kind, id: &str, dig: u64) -> Self {
        Message {
            kind,
            id: id.to_owned(),
            inc: BTreeMap::new(),
            dec: BTreeMap::new(),
            dig,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Encoder (reference rules)
// ---------------------------------------------------------------------------------------------

fn put_str(out: &mut Vec<u8>, s: &str) {
    let n = s.len();
    if n <= 31 {
        out.push(0xa0 | n as u8);
    } else if n <= 0xff {
        out.push(0xd9);
        out.push(n as u8);
    } else if n <= 0xffff {
        out.push(0xda);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
    out.extend_from_slice(s.as_bytes());
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.push(0xcf);
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_map_header(out: &mut Vec<u8>, n: usize) {
    if n <= 15 {
        out.push(0x80 | n as u8);
    } else if n <= 0xffff {
        out.push(0xde);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0xdf);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

fn put_array_header(out: &mut Vec<u8>, n: usize) {
    if n <= 15 {
        out.push(0x90 | n as u8);
    } else if n <= 0xffff {
        out.push(0xdc);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0xdd);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

/// The msgpack bytes the reference writes for `m`: keys t, id, inc, dec(, dig when ≠ 0); `t` as
/// uint8; values and `dig` as uint64; Push maps always maps (sorted by id), other types nil.
pub fn encode_message(m: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    out.push(if m.dig != 0 { 0x85 } else { 0x84 });
    put_str(&mut out, "t");
    out.push(0xcc);
    out.push(m.kind.code());
    put_str(&mut out, "id");
    put_str(&mut out, &m.id);
    for (key, side) in [("inc", &m.inc), ("dec", &m.dec)] {
        put_str(&mut out, key);
        if m.kind == Kind::Push {
            put_map_header(&mut out, side.len());
            for (id, v) in side {
                put_str(&mut out, id);
                put_u64(&mut out, *v);
            }
        } else {
            out.push(0xc0);
        }
    }
    if m.dig != 0 {
        put_str(&mut out, "dig");
        put_u64(&mut out, m.dig);
    }
    out
}

/// The frame (flag byte + body) the reference writes for msgpack `body`: zstd when the body is
/// longer than [`COMPRESS_ABOVE`] and compressing makes it smaller, plain otherwise.
pub fn frame_msgpack(body: &[u8]) -> Vec<u8> {
    if body.len() > COMPRESS_ABOVE {
        if let Ok(z) = zstd::bulk::compress(body, ZSTD_LEVEL) {
            if z.len() < body.len() {
                let mut out = Vec::with_capacity(z.len() + 1);
                out.push(FLAG_ZSTD);
                out.extend_from_slice(&z);
                return out;
            }
        }
    }
    let mut out = Vec::with_capacity(body.len() + 1);
    out.push(FLAG_PLAIN);
    out.extend_from_slice(body);
    out
}

/// The frame the reference writes for `m`.
pub fn encode_frame(m: &Message) -> Vec<u8> {
    frame_msgpack(&encode_message(m))
}

/// The single buffer a sender writes: 1 byte address length, the address, the frame.
pub fn wire_buffer(from: &str, frame: &[u8]) -> Result<Vec<u8>, String> {
    let n = from.len();
    if n == 0 || n > 255 || !from.is_ascii() {
        return Err(format!("bad header address {from:?}"));
    }
    let mut out = Vec::with_capacity(1 + n + frame.len());
    out.push(n as u8);
    out.extend_from_slice(from.as_bytes());
    out.extend_from_slice(frame);
    Ok(out)
}

/// The reference digest: XXH64 (seed 0) of
/// `[[{"NodeID": id, "Value": inc}...], [{"NodeID": id, "Value": dec}...]]` over the union of
/// ids, sorted bytewise, a missing side counting 0.
pub fn digest(inc: &BTreeMap<String, u64>, dec: &BTreeMap<String, u64>) -> u64 {
    twox_hash::XxHash64::oneshot(0, &digest_document(inc, dec))
}

/// The msgpack document [`digest`] hashes.
pub fn digest_document(inc: &BTreeMap<String, u64>, dec: &BTreeMap<String, u64>) -> Vec<u8> {
    let ids: BTreeSet<&str> = inc.keys().chain(dec.keys()).map(String::as_str).collect();
    let mut doc = vec![0x92];
    for side in [inc, dec] {
        put_array_header(&mut doc, ids.len());
        for id in &ids {
            doc.push(0x82);
            put_str(&mut doc, "NodeID");
            put_str(&mut doc, id);
            put_str(&mut doc, "Value");
            put_u64(&mut doc, side.get(*id).copied().unwrap_or(0));
        }
    }
    doc
}

// ---------------------------------------------------------------------------------------------
// Decoder (lenient where the reference is, strict where it rejects)
// ---------------------------------------------------------------------------------------------

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn byte(&mut self) -> Result<u8, String> {
        let b = self.buf.get(self.pos).copied().ok_or("truncated msgpack")?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).ok_or("length overflow")?;
        let s = self.buf.get(self.pos..end).ok_or("truncated msgpack")?;
        self.pos = end;
        Ok(s)
    }

    fn be(&mut self, n: usize) -> Result<u64, String> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    fn len(&mut self, n: usize) -> Result<usize, String> {
        usize::try_from(self.be(n)?).map_err(|_| "length overflow".to_string())
    }

    /// A non-negative integer of any width.
    fn uint(&mut self) -> Result<u64, String> {
        let b = self.byte()?;
        let signed = |v: i64| u64::try_from(v).map_err(|_| format!("negative value {v}"));
        match b {
            0x00..=0x7f => Ok(u64::from(b)),
            0xcc => self.be(1),
            0xcd => self.be(2),
            0xce => self.be(4),
            0xcf => self.be(8),
            0xd0 => signed(i64::from(self.be(1)? as u8 as i8)),
            0xd1 => signed(i64::from(self.be(2)? as u16 as i16)),
            0xd2 => signed(i64::from(self.be(4)? as u32 as i32)),
            0xd3 => signed(self.be(8)? as i64),
            0xe0..=0xff => Err(format!("negative value {}", b as i8)),
            _ => Err(format!("not an integer (type byte {b:#04x})")),
        }
    }

    fn str(&mut self) -> Result<String, String> {
        let b = self.byte()?;
        let n = match b {
            0xa0..=0xbf => usize::from(b & 0x1f),
            0xd9 => self.len(1)?,
            0xda => self.len(2)?,
            0xdb => self.len(4)?,
            _ => return Err(format!("not a string (type byte {b:#04x})")),
        };
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| "string is not UTF-8".to_string())
    }

    /// A map header (`Some(len)`) or nil (`None`).
    fn map_or_nil(&mut self) -> Result<Option<usize>, String> {
        let b = self.byte()?;
        match b {
            0xc0 => Ok(None),
            0x80..=0x8f => Ok(Some(usize::from(b & 0x0f))),
            0xde => Ok(Some(self.len(2)?)),
            0xdf => Ok(Some(self.len(4)?)),
            _ => Err(format!("not a map (type byte {b:#04x})")),
        }
    }

    fn counts(&mut self) -> Result<BTreeMap<String, u64>, String> {
        let mut out = BTreeMap::new();
        if let Some(n) = self.map_or_nil()? {
            for _ in 0..n {
                let id = self.str()?;
                let v = self.uint()?;
                out.insert(id, v);
            }
        }
        Ok(out)
    }

    /// Skips one value of any type (unknown keys).
    fn skip(&mut self, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err("nesting too deep".into());
        }
        let b = self.byte()?;
        let (data, items) = match b {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0),
            0x80..=0x8f => (0, 2 * usize::from(b & 0x0f)),
            0x90..=0x9f => (0, usize::from(b & 0x0f)),
            0xa0..=0xbf => (usize::from(b & 0x1f), 0),
            0xc4 | 0xd9 => (self.len(1)?, 0),
            0xc5 | 0xda => (self.len(2)?, 0),
            0xc6 | 0xdb => (self.len(4)?, 0),
            0xc7 => (self.len(1)? + 1, 0),
            0xc8 => (self.len(2)? + 1, 0),
            0xc9 => (self.len(4)? + 1, 0),
            0xca => (4, 0),
            0xcb => (8, 0),
            0xcc | 0xd0 => (1, 0),
            0xcd | 0xd1 => (2, 0),
            0xce | 0xd2 => (4, 0),
            0xcf | 0xd3 => (8, 0),
            0xd4 => (2, 0),
            0xd5 => (3, 0),
            0xd6 => (5, 0),
            0xd7 => (9, 0),
            0xd8 => (17, 0),
            0xdc => (0, self.len(2)?),
            0xdd => (0, self.len(4)?),
            0xde => (0, 2 * self.len(2)?),
            0xdf => (0, 2usize.saturating_mul(self.len(4)?)),
            _ => return Err(format!("invalid type byte {b:#04x}")),
        };
        self.take(data)?;
        for _ in 0..items {
            self.skip(depth + 1)?;
        }
        Ok(())
    }
}

/// Decodes a msgpack message as the reference does: keys in any order, unknown keys skipped, any
/// integer width, nil or map for inc/dec. Rejects empty input, malformed msgpack, trailing bytes,
/// `t` outside 1..=3, a missing or empty id, negative or non-integer values, and a Push with
/// nothing in either map.
pub fn decode_message(body: &[u8]) -> Result<Message, String> {
    if body.is_empty() {
        return Err("empty message".into());
    }
    let mut c = Cursor { buf: body, pos: 0 };
    let n = c.map_or_nil()?.ok_or("message is nil")?;
    let (mut t, mut id, mut dig) = (None, None, 0u64);
    let (mut inc, mut dec) = (BTreeMap::new(), BTreeMap::new());
    for _ in 0..n {
        let key = c.str()?;
        match key.as_str() {
            "t" => t = Some(c.uint()?),
            "id" => id = Some(c.str()?),
            "inc" => inc = c.counts()?,
            "dec" => dec = c.counts()?,
            "dig" => dig = c.uint()?,
            _ => c.skip(0)?,
        }
    }
    if c.pos != body.len() {
        return Err(format!("{} trailing bytes", body.len() - c.pos));
    }
    let t = t.ok_or("no type")?;
    let kind = Kind::from_code(t).ok_or_else(|| format!("unknown type {t}"))?;
    let id = id.filter(|s| !s.is_empty()).ok_or("missing or empty id")?;
    if kind == Kind::Push && inc.is_empty() && dec.is_empty() {
        return Err("empty push".into());
    }
    Ok(Message {
        kind,
        id,
        inc,
        dec,
        dig,
    })
}

/// The msgpack bytes of a frame: the body itself (flag 0x00) or its zstd decompression (0x80).
pub fn frame_body(frame: &[u8]) -> Result<Vec<u8>, String> {
    let (&flags, rest) = frame.split_first().ok_or("empty frame")?;
    match flags {
        FLAG_PLAIN => Ok(rest.to_vec()),
        FLAG_ZSTD => {
            let decoder = zstd::stream::read::Decoder::new(rest).map_err(|e| e.to_string())?;
            let mut out = Vec::new();
            decoder
                .take(MAX_DECOMPRESSED as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| format!("bad zstd: {e}"))?;
            if out.len() > MAX_DECOMPRESSED {
                return Err("decompressed message too large".into());
            }
            Ok(out)
        }
        f => Err(format!("unknown flags {f:#04x}")),
    }
}

/// Decodes a frame (flag byte + body).
pub fn decode_frame(frame: &[u8]) -> Result<Message, String> {
    decode_message(&frame_body(frame)?)
}

/// Splits a received buffer into the header address and the frame.
pub fn split_header(buf: &[u8]) -> Result<(String, &[u8]), String> {
    let (&n, rest) = buf.split_first().ok_or("empty read")?;
    let n = usize::from(n);
    if n == 0 {
        return Err("empty header address".into());
    }
    let addr = rest.get(..n).ok_or("truncated header")?;
    let frame = rest.get(n..).ok_or("truncated header")?;
    if !addr.iter().all(|b| b.is_ascii_graphic()) {
        return Err("header address is not ASCII".into());
    }
    Ok((String::from_utf8_lossy(addr).into_owned(), frame))
}
