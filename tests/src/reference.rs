//! A stand-in for the Go reference node, for tests: an in-process TCP gossip peer that follows
//! the wire spec (transport header, frame flags, msgpack message, XXH64 digest, gossip rounds).
//!
//! It is written independently of `tally-core`'s codec on purpose — its encoder, decoder and
//! digest are hand-rolled from the spec — so that it can catch Tally bugs rather than share them.
//! Every incoming connection is recorded ([`Received`]) and can be checked against the reference
//! encoder with [`is_reference_frame`].
//!
//! Threads and std TCP only; it binds `127.0.0.1:0` and nothing else.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The reference receiver reads once, into a buffer of this size; whatever is cut fails.
pub const READ_LIMIT: usize = 16 * 1024;
/// The reference compresses messages longer than this (and keeps it only when smaller).
pub const COMPRESS_ABOVE: usize = 1024;
/// Frame flag: plain msgpack follows.
pub const FLAG_PLAIN: u8 = 0x00;
/// Frame flag: a zstd frame holding the msgpack message follows.
pub const FLAG_ZSTD: u8 = 0x80;
/// zstd level the stand-in compresses with.
const ZSTD_LEVEL: i32 = 3;
/// Largest decompressed message the stand-in accepts (a guard for tests, not part of the spec).
const MAX_DECOMPRESSED: usize = 1 << 20;
/// Deepest nesting of an unknown value the decoder skips.
const MAX_DEPTH: usize = 64;

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

// ---------------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------------

/// One incoming connection, as the stand-in saw it.
#[derive(Clone, Debug)]
pub struct Received {
    /// The header address (empty when the header did not parse).
    pub from: String,
    /// The bytes of the single read (header included).
    pub raw: Vec<u8>,
    /// Whether the header and frame decoded.
    pub decoded: bool,
    /// The decoded message.
    pub message: Option<Message>,
    /// Why it did not decode.
    pub error: Option<String>,
    /// Bytes that arrived on the connection after the first read (read on until end of stream
    /// or a short timeout, for checking only; behaviour used the first read alone).
    pub extra_bytes_after_first_read: usize,
}

impl Received {
    /// The frame part of the read (after the header), if the header parsed.
    pub fn frame(&self) -> Option<&[u8]> {
        split_header(&self.raw).ok().map(|(_, f)| f)
    }

    /// See [`is_reference_frame`].
    pub fn is_reference_frame(&self) -> Result<(), String> {
        is_reference_frame(self)
    }
}

/// Whether `r` is exactly what the reference would have sent: it fit in one read of at most
/// 16 KiB with nothing after it, it decoded, and re-encoding the decoded message with the
/// reference rules gives exactly the received msgpack (decompressed, for zstd frames).
pub fn is_reference_frame(r: &Received) -> Result<(), String> {
    let total = r.raw.len().saturating_add(r.extra_bytes_after_first_read);
    if r.extra_bytes_after_first_read != 0 {
        return Err(format!(
            "{} bytes followed the first read of {} (more than one buffer/frame, or over the \
             16 KiB read)",
            r.extra_bytes_after_first_read,
            r.raw.len()
        ));
    }
    if total > READ_LIMIT {
        return Err(format!("{total} bytes exceed the 16 KiB read"));
    }
    if !r.decoded {
        return Err(format!(
            "did not decode: {}",
            r.error.as_deref().unwrap_or("unknown error")
        ));
    }
    let m = r.message.as_ref().ok_or("no message recorded")?;
    let (_, frame) = split_header(&r.raw)?;
    let body = frame_body(frame)?;
    let expected = encode_message(m);
    if body != expected {
        let at = body
            .iter()
            .zip(&expected)
            .position(|(a, b)| a != b)
            .unwrap_or(body.len().min(expected.len()));
        return Err(format!(
            "msgpack differs from the reference encoding at byte {at}: got {} ({} bytes), \
             reference {} ({} bytes)",
            to_hex(&body),
            body.len(),
            to_hex(&expected),
            expected.len()
        ));
    }
    Ok(())
}

/// Lower-case hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------------------------
// The peer
// ---------------------------------------------------------------------------------------------

/// Settings of a [`ReferencePeer`]; `..Default::default()` fills the reference defaults.
#[derive(Clone, Debug)]
pub struct ReferenceConfig {
    /// How often a DigestPull round runs (reference: 2 s).
    pub sync_interval: Duration,
    /// How often full state is pushed; `None`: ten times `sync_interval`.
    pub full_sync_interval: Option<Duration>,
    /// Peers per DigestPull round (reference: 2); full sync goes to `max(1, fanout / 2)`.
    pub fanout: usize,
    /// Static peers (`host:port`).
    pub peers: Vec<String>,
    /// A peer not heard from for this long is not chosen (reference: 30 s).
    pub failure_timeout: Duration,
    /// A peer with this many consecutive send failures is not chosen (reference: 5).
    pub max_failures: u32,
    /// Deadline for an outgoing connect.
    pub connect_timeout: Duration,
    /// Deadline for the first (only) read of an incoming connection.
    pub read_timeout: Duration,
    /// How long the checking reads after the first one wait for more bytes.
    pub extra_read_timeout: Duration,
}

impl Default for ReferenceConfig {
    fn default() -> Self {
        ReferenceConfig {
            sync_interval: Duration::from_secs(2),
            full_sync_interval: None,
            fanout: 2,
            peers: Vec::new(),
            failure_timeout: Duration::from_secs(30),
            max_failures: 5,
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(5),
            extra_read_timeout: Duration::from_millis(300),
        }
    }
}

#[derive(Clone, Debug)]
struct PeerEntry {
    failures: u32,
    last_heard: Instant,
}

struct State {
    inc: BTreeMap<String, u64>,
    dec: BTreeMap<String, u64>,
    peers: BTreeMap<String, PeerEntry>,
    rng: u64,
}

struct Shared {
    id: String,
    config: ReferenceConfig,
    state: Mutex<State>,
    received: Mutex<Vec<Received>>,
    rejected: AtomicU64,
    stop: AtomicBool,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Runs `f` on a tracked worker thread (connections, sends).
    fn spawn(self: &Arc<Self>, f: impl FnOnce(&Arc<Shared>) + Send + 'static) {
        if self.stopping() {
            return;
        }
        let me = Arc::clone(self);
        let handle = std::thread::Builder::new()
            .name("reference-worker".into())
            .spawn(move || f(&me));
        if let Ok(h) = handle {
            let mut workers = lock(&self.workers);
            workers.retain(|w| !w.is_finished());
            workers.push(h);
        }
    }

    fn push_message(&self) -> Message {
        let s = self.state();
        Message::push(&self.id, s.inc.clone(), s.dec.clone())
    }

    fn own_digest(&self) -> u64 {
        let s = self.state();
        digest(&s.inc, &s.dec)
    }

    /// Up to `k` random live peers.
    fn choose(&self, k: usize) -> Vec<String> {
        let now = Instant::now();
        let mut s = self.state();
        let mut live: Vec<String> = s
            .peers
            .iter()
            .filter(|(_, p)| {
                p.failures < self.config.max_failures
                    && now.saturating_duration_since(p.last_heard) < self.config.failure_timeout
            })
            .map(|(a, _)| a.clone())
            .collect();
        let k = k.min(live.len());
        for i in 0..k {
            s.rng ^= s.rng << 13;
            s.rng ^= s.rng >> 7;
            s.rng ^= s.rng << 17;
            let span = (live.len() - i) as u64;
            let j = i + (s.rng % span) as usize;
            live.swap(i, j);
        }
        live.truncate(k);
        live
    }

    /// Sends `m` to `to` on a new connection, from a worker thread.
    fn send(self: &Arc<Self>, to: String, m: &Message) {
        let Ok(buf) = wire_buffer(&self.id, &encode_frame(m)) else {
            return;
        };
        self.spawn(move |me| {
            let ok = deliver(&to, &buf, me.config.connect_timeout).is_ok();
            let mut s = me.state();
            if let Some(p) = s.peers.get_mut(&to) {
                if ok {
                    p.failures = 0;
                } else {
                    p.failures = p.failures.saturating_add(1);
                }
            }
        });
    }

    fn sync_round(self: &Arc<Self>) {
        let dig = self.own_digest();
        let pull = Message::digest_only(Kind::DigestPull, &self.id, dig);
        for to in self.choose(self.config.fanout) {
            self.send(to, &pull);
        }
    }

    fn full_sync_round(self: &Arc<Self>) {
        let push = self.push_message();
        for to in self.choose((self.config.fanout / 2).max(1)) {
            self.send(to, &push);
        }
    }

    /// Applies one valid message from the header address `from`.
    fn apply(self: &Arc<Self>, from: &str, m: &Message) {
        {
            let mut s = self.state();
            if from != self.id {
                let p = s.peers.entry(from.to_owned()).or_insert(PeerEntry {
                    failures: 0,
                    last_heard: Instant::now(),
                });
                p.failures = 0;
                p.last_heard = Instant::now();
            }
        }
        match m.kind {
            Kind::Push => {
                let mut s = self.state();
                let s = &mut *s;
                for (side, theirs) in [(&mut s.inc, &m.inc), (&mut s.dec, &m.dec)] {
                    for (id, &v) in theirs {
                        if *id == self.id || v == 0 {
                            continue;
                        }
                        let e = side.entry(id.clone()).or_insert(0);
                        *e = (*e).max(v);
                    }
                }
            }
            Kind::DigestPull => {
                let mine = self.own_digest();
                let reply = if m.dig == mine {
                    Message::digest_only(Kind::DigestAck, &self.id, mine)
                } else {
                    self.push_message()
                };
                self.send(from.to_owned(), &reply);
            }
            Kind::DigestAck => {}
        }
    }

    fn handle(self: &Arc<Self>, mut stream: TcpStream) {
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(self.config.read_timeout));
        let mut buf = vec![0u8; READ_LIMIT];
        let (raw, read_error) = match stream.read(&mut buf) {
            Ok(n) => (buf.get(..n).unwrap_or_default().to_vec(), None),
            Err(e) => (Vec::new(), Some(format!("read failed: {e}"))),
        };
        let outcome = match read_error {
            Some(e) => Err(e),
            None => split_header(&raw).and_then(|(from, frame)| {
                decode_frame(frame)
                    .map(|m| (from.clone(), m))
                    .map_err(|e| format!("{e} (from {from})"))
            }),
        };
        let from = split_header(&raw).map(|(f, _)| f).unwrap_or_default();
        match &outcome {
            Ok((from, m)) => self.apply(from, m),
            Err(_) => {
                self.rejected.fetch_add(1, Ordering::SeqCst);
            }
        }
        // Checking only: did the sender send anything beyond what one read got?
        let _ = stream.set_read_timeout(Some(self.config.extra_read_timeout));
        let mut extra = 0usize;
        let mut scratch = [0u8; 4096];
        loop {
            match stream.read(&mut scratch) {
                Ok(0) => break,
                Ok(k) => extra = extra.saturating_add(k),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let (decoded, message, error) = match outcome {
            Ok((_, m)) => (true, Some(m), None),
            Err(e) => (false, None, Some(e)),
        };
        lock(&self.received).push(Received {
            from,
            raw,
            decoded,
            message,
            error,
            extra_bytes_after_first_read: extra,
        });
    }
}

fn deliver(to: &str, buf: &[u8], connect_timeout: Duration) -> io::Result<()> {
    let addr = to
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, connect_timeout)?;
    stream.write_all(buf)?;
    stream.flush()?;
    let _ = stream.shutdown(Shutdown::Write);
    Ok(())
}

fn sleep_until(shared: &Shared, deadline: Instant) -> bool {
    loop {
        if shared.stopping() {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            return true;
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(10)));
    }
}

fn run_timers(shared: &Arc<Shared>) {
    let sync = shared.config.sync_interval.max(Duration::from_millis(1));
    let full = shared.config.full_sync_interval.unwrap_or(sync * 10);
    let start = Instant::now();
    let (mut next_sync, mut next_full) = (start + sync, start + full);
    loop {
        if !sleep_until(shared, next_sync.min(next_full)) {
            return;
        }
        let now = Instant::now();
        if now >= next_full {
            shared.full_sync_round();
            next_full += full;
        }
        if now >= next_sync {
            shared.sync_round();
            next_sync += sync;
        }
    }
}

fn run_listener(shared: &Arc<Shared>, listener: &TcpListener) {
    while !shared.stopping() {
        match listener.accept() {
            Ok((stream, _)) => shared.spawn(move |me| me.handle(stream)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

/// The stand-in reference node. Its id is its gossip address, `127.0.0.1:port`.
pub struct ReferencePeer {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl ReferencePeer {
    /// Binds `127.0.0.1:0`, adds the static peers and starts the listener and timer threads.
    pub fn start(config: ReferenceConfig) -> io::Result<ReferencePeer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let id = listener.local_addr()?.to_string();
        let now = Instant::now();
        let peers = config
            .peers
            .iter()
            .filter(|p| **p != id)
            .map(|p| {
                let entry = PeerEntry {
                    failures: 0,
                    last_heard: now,
                };
                (p.clone(), entry)
            })
            .collect();
        let mut inc = BTreeMap::new();
        let mut dec = BTreeMap::new();
        inc.insert(id.clone(), 0);
        dec.insert(id.clone(), 0);
        let mut seed = std::collections::hash_map::RandomState::new().build_hasher();
        seed.write(id.as_bytes());
        let shared = Arc::new(Shared {
            id,
            config,
            state: Mutex::new(State {
                inc,
                dec,
                peers,
                rng: seed.finish() | 1,
            }),
            received: Mutex::new(Vec::new()),
            rejected: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            workers: Mutex::new(Vec::new()),
        });
        let mut threads = Vec::new();
        let s = Arc::clone(&shared);
        threads.push(
            std::thread::Builder::new()
                .name("reference-listener".into())
                .spawn(move || run_listener(&s, &listener))?,
        );
        let s = Arc::clone(&shared);
        let timers = std::thread::Builder::new()
            .name("reference-timers".into())
            .spawn(move || run_timers(&s));
        match timers {
            Ok(t) => threads.push(t),
            Err(e) => {
                let mut me = ReferencePeer { shared, threads };
                me.stop();
                return Err(e);
            }
        }
        Ok(ReferencePeer { shared, threads })
    }

    /// The gossip address, which is also the node id.
    pub fn addr(&self) -> String {
        self.shared.id.clone()
    }

    /// Raises its own increments by `by`; returns the new value.
    pub fn increment(&self, by: u64) -> i128 {
        let mut s = self.shared.state();
        let e = s.inc.entry(self.shared.id.clone()).or_insert(0);
        *e = e.saturating_add(by);
        value_of(&s)
    }

    /// Raises its own decrements by `by`; returns the new value.
    pub fn decrement(&self, by: u64) -> i128 {
        let mut s = self.shared.state();
        let e = s.dec.entry(self.shared.id.clone()).or_insert(0);
        *e = e.saturating_add(by);
        value_of(&s)
    }

    /// Sum of increments minus sum of decrements.
    pub fn value(&self) -> i128 {
        value_of(&self.shared.state())
    }

    /// The state: (increments, decrements) per node id.
    pub fn state(&self) -> (BTreeMap<String, u64>, BTreeMap<String, u64>) {
        let s = self.shared.state();
        (s.inc.clone(), s.dec.clone())
    }

    /// The digest of its state.
    pub fn digest(&self) -> u64 {
        self.shared.own_digest()
    }

    /// Adds a peer (a no-op for itself or one already known).
    pub fn add_peer(&self, addr: &str) {
        if addr == self.shared.id {
            return;
        }
        self.shared
            .state()
            .peers
            .entry(addr.to_owned())
            .or_insert(PeerEntry {
                failures: 0,
                last_heard: Instant::now(),
            });
    }

    /// Known peers with their consecutive send failures.
    pub fn peers(&self) -> Vec<(String, u32)> {
        let s = self.shared.state();
        s.peers
            .iter()
            .map(|(a, p)| (a.clone(), p.failures))
            .collect()
    }

    /// Every connection received so far, in order of completion.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.shared.received).clone()
    }

    /// Connections whose header or frame did not decode.
    pub fn rejected(&self) -> u64 {
        self.shared.rejected.load(Ordering::SeqCst)
    }

    /// Stops and joins every thread (also done on drop).
    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        loop {
            let batch: Vec<JoinHandle<()>> = lock(&self.shared.workers).drain(..).collect();
            if batch.is_empty() {
                break;
            }
            for t in batch {
                let _ = t.join();
            }
        }
    }
}

impl Drop for ReferencePeer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn value_of(s: &State) -> i128 {
    let inc: i128 = s.inc.values().map(|v| i128::from(*v)).sum();
    let dec: i128 = s.dec.values().map(|v| i128::from(*v)).sum();
    inc - dec
}
