//! Model-based fuzzing of `GrowableEngine<255>` (host config, id and listen address `a:1`).
//!
//! The input is a mode byte (bit 0: the engine has a cluster key, spec §8) and a sequence of
//! operations, read by a small byte reader (so seeds can be written by hand; see
//! `fuzz/README.md` for the format):
//!
//! | op byte % 10 | operation | operands |
//! |---|---|---|
//! | 0 | `increment(by)` | `by: u8` |
//! | 1 | `decrement(by)` | `by: u8` |
//! | 2 | `handle(now, from, frame)` with arbitrary frame bytes | `dt: u8`, `from: u8`, `len: u16 LE`, `len` bytes |
//! | 3 | `handle` of a valid Push built from a small map | `dt`, `from`, `sender: u8`, `flags: u8`, `n: u8`, `n` × (`id: u8`, `inc`, `dec`) |
//! | 4 | as 3, then up to 3 bytes of the frame flipped | as 3, then `k: u8`, `k` × (`pos: u16 LE`, `xor: u8`) |
//! | 5 | `handle_timeout(now, rng)` | `dt: u16 LE` (×10 ms), `seed: u8` |
//! | 6 | `poll_transmit` until `None` into a 64 KiB buffer | `delivered: u8` (bit per transmit) |
//! | 7 | `add_peer(addr, Static, now)` | `addr: u8` |
//! | 8 | `remove_peer(addr)` | `addr: u8` |
//! | 9 | replay the last frame the engine accepted | `from: u8` (0: the same sender) |
//!
//! The model is a map id → (inc, dec): the per-id max of everything the engine accepted, plus
//! the local operations. Frames are parsed with the same core API before they are handed to
//! the engine, so the model knows what the engine must do: accept exactly the frames that
//! decode and parse (with the same error otherwise), and merge a Push as a per-id max. After
//! every operation: the counter's non-zero entries equal the model's, `value()` equals
//! Σinc − Σdec, every entry is ≥ what it was before (merge never lowers anything), rejected
//! input changed nothing, the cached digest is the digest of the state, and the stats add up.
//! Everything the engine sends must be a valid frame from `a:1` that re-emits byte for byte;
//! a Push carries the current totals, and a DigestPull the current digest.
//!
//! With a key, checked apart from the core's own decoding: every frame the engine accepts
//! carries `FLAG_AUTH` and the HMAC-SHA256 tag of this key (computed here); a generated Push
//! that is unsealed or sealed with another key is refused as `Unauthenticated`; a replayed
//! Push changes nothing; every frame the engine sends carries a valid tag.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use std::collections::BTreeMap;
use tally_core::auth::{ClusterKey, TAG_LEN};
use tally_core::counter::origin_of;
use tally_core::digest::digest;
use tally_core::frame::{self, is_gossip_address, split_header, FrameLimits};
use tally_core::message::entry_len;
use tally_core::{
    Config, CounterError, Duration, GrowableEngine, Instant, Message, MessageLimits, MessageType,
    NodeId, PeerError, PeerSource, WireError, FLAG_AUTH, FLAG_ZSTD,
};
use tally_fuzz::Input;

type Node = GrowableEngine<255>;

const LOCAL: &str = "a:1";
/// Sender addresses (`from` of the §2 header); the last two are not `host:port`.
const FROM: [&str; 8] = [
    "b:2",
    "c:3",
    LOCAL,
    "10.0.0.4:9000",
    "[::1]:9005",
    "e:5",
    "nope",
    "x:0",
];
const TX_BUF: usize = 64 * 1024;
/// The cluster key of keyed mode, and a key of another cluster.
const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const OTHER_KEY: &str = "f0e0d0c0b0a090807060504030201000";

fn key(hex: &str) -> ClusterKey {
    ClusterKey::from_hex(hex).expect("a valid key")
}

/// Whether `frame` carries `FLAG_AUTH` and the tag of `k`, computed here from the bytes.
fn tagged_with(k: &ClusterKey, frame: &[u8]) -> bool {
    match frame.split_last_chunk::<TAG_LEN>() {
        Some((body, tag)) => {
            body.first().is_some_and(|f| f & FLAG_AUTH != 0) && k.tag(body) == *tag
        }
        None => false,
    }
}

/// Seals `frame` as §8 says: the auth flag, then the tag of everything before it.
fn seal(k: &ClusterKey, frame: &mut Vec<u8>) {
    if let Some(f) = frame.first_mut() {
        *f |= FLAG_AUTH;
    }
    let tag = k.tag(frame);
    frame.extend_from_slice(&tag);
}

/// The id pool of generated Pushes: the local id, the senders, others, and two long ids (255
/// bytes, the host bound, and 256 bytes, one too many).
fn pool_id(i: u8) -> String {
    match i % 16 {
        0 => LOCAL.to_owned(),
        k @ 1..=5 => FROM[usize::from(k)].to_owned(),
        14 => "l".repeat(255),
        15 => "m".repeat(256),
        k => format!("n{k}:{}", 7000 + u32::from(k)),
    }
}

fn borrow_pair((id, v): &(String, u64)) -> (&str, u64) {
    (id.as_str(), *v)
}

/// id → (inc, dec).
type Model = BTreeMap<String, (u64, u64)>;

fn nonzero(m: &Model) -> Vec<(String, u64, u64)> {
    m.iter()
        .filter(|(_, &(i, d))| i != 0 || d != 0)
        .map(|(id, &(i, d))| (id.clone(), i, d))
        .collect()
}

fn counter_nonzero(node: &Node) -> Vec<(String, u64, u64)> {
    node.counter()
        .entries()
        .iter()
        .filter(|e| !e.is_zero())
        .map(|e| (e.id.as_str().to_owned(), e.inc, e.dec))
        .collect()
}

fn snapshot(node: &Node) -> Model {
    node.counter()
        .entries()
        .iter()
        .map(|e| (e.id.as_str().to_owned(), (e.inc, e.dec)))
        .collect()
}

/// The counter before an operation: totals and delta-sync bookkeeping.
struct Before {
    totals: Model,
    /// id → (changed, origin).
    marks: BTreeMap<String, (u32, u32)>,
    version: u32,
}

fn before(node: &Node) -> Before {
    Before {
        totals: snapshot(node),
        marks: node
            .counter()
            .entries()
            .iter()
            .map(|e| (e.id.as_str().to_owned(), (e.changed, e.origin)))
            .collect(),
        version: node.counter().version(),
    }
}

/// What the engine must do with `frame` from `from`: the error it must return, or the message
/// type and, for a Push, the `(id, inc, dec)` values to max into the state.
type Expected = Result<(MessageType, Vec<(String, u64, u64)>), WireError>;

fn expect(config: &Config, from: &str, frame: &[u8]) -> Expected {
    if !is_gossip_address(from) || NodeId::<255>::new(from).is_err() {
        return Err(WireError::BadHeader);
    }
    let body = frame::decode_keyed(frame, &config.frame_limits, config.cluster_key.as_ref())?;
    let m = match Message::parse(body.bytes(), &config.message_limits) {
        // Not a reference message: a host engine (it holds named counters) reads it as a
        // named Push (`docs/EXTENSIONS.md` §6), with that parser's verdict. Its cells go to
        // the named map, which this model does not follow: the default counter stays.
        Err(WireError::UnknownType) => {
            let limits = tally_core::named::wire::NamedLimits {
                max_id_len: config.message_limits.max_id_len,
                ..tally_core::named::wire::NamedLimits::HOST
            };
            tally_core::named::wire::NamedPush::parse(body.bytes(), &limits)?;
            return Ok((MessageType::NamedPush, Vec::new()));
        }
        r => r?,
    };
    let kind = m.message_type();
    let mut values = Vec::new();
    if let Message::Push { inc, dec, .. } = m {
        values.extend(inc.map(|(id, v)| (id.to_owned(), v, 0)));
        values.extend(dec.map(|(id, v)| (id.to_owned(), 0, v)));
    }
    Ok((kind, values))
}

struct Harness {
    node: Node,
    config: Config,
    model: Model,
    now: Instant,
    // What the stats must say.
    handled_ok: u64,
    handled_err: u64,
    pushes_ok: u64,
    pushes_changed: u64,
    bytes_in: u64,
    /// The origin that entries raised by the current operation must carry.
    origin: u32,
    /// The current operation was a successful local increment or decrement.
    local_touched: bool,
    buf: Vec<u8>,
    /// The last frame the engine accepted, and its sender.
    last_ok: Option<(String, Vec<u8>)>,
}

impl Harness {
    fn new(keyed: bool) -> Self {
        let id = NodeId::new(LOCAL).expect("valid id");
        let mut config = Config::host();
        config.cluster_key = keyed.then(|| key(KEY));
        let node = Node::new(id, id, config, Instant::ZERO).expect("engine");
        let mut model = Model::new();
        model.insert(LOCAL.to_owned(), (0, 0));
        Self {
            node,
            config,
            model,
            now: Instant::ZERO,
            handled_ok: 0,
            handled_err: 0,
            pushes_ok: 0,
            pushes_changed: 0,
            bytes_in: 0,
            origin: 0,
            local_touched: false,
            buf: vec![0u8; TX_BUF],
            last_ok: None,
        }
    }

    fn advance(&mut self, ms: u64) {
        self.now += Duration::from_millis(ms);
    }

    fn local_op(&mut self, by: u64, dec: bool) {
        let e = self.model.entry(LOCAL.to_owned()).or_default();
        let slot = if dec { &mut e.1 } else { &mut e.0 };
        let want = slot.checked_add(by);
        let got = if dec {
            self.node.decrement(by)
        } else {
            self.node.increment(by)
        };
        self.origin = 0;
        match (got, want) {
            (Ok(v), Some(w)) => {
                assert_eq!(v, w, "local total");
                *slot = w;
                self.local_touched = true;
            }
            (Err(CounterError::Overflow), None) => {}
            (got, want) => panic!("local op by {by}: engine {got:?}, model {want:?}"),
        }
    }

    /// Hands `frame` to the engine and checks the outcome against the model; returns the
    /// engine's answer.
    fn handle(&mut self, from: &str, frame: &[u8]) -> Result<bool, WireError> {
        let expected = expect(&self.config, from, frame);
        let before = snapshot(&self.node);
        let value_before = self.node.value();
        self.bytes_in += frame.len() as u64;
        let got = self.node.handle(self.now, from, frame);
        let answer = got.map(|h| h.changed);
        match (got, expected) {
            (Ok(h), Ok((kind, values))) => {
                if let Some(k) = &self.config.cluster_key {
                    assert!(
                        tagged_with(k, frame),
                        "accepted a frame without a valid tag"
                    );
                }
                self.last_ok = Some((from.to_owned(), frame.to_vec()));
                assert_eq!(h.message, kind, "message type");
                self.handled_ok += 1;
                let mut changed = false;
                for (id, i, d) in values {
                    let e = self.model.entry(id).or_default();
                    changed |= i > e.0 || d > e.1;
                    e.0 = e.0.max(i);
                    e.1 = e.1.max(d);
                }
                if kind == MessageType::Push {
                    self.pushes_ok += 1;
                    self.pushes_changed += u64::from(changed);
                    self.origin = origin_of(from);
                }
                if kind == MessageType::NamedPush {
                    // Only the named map can have changed.
                    assert_eq!(
                        snapshot(&self.node),
                        before,
                        "a named Push changed the default"
                    );
                } else {
                    assert_eq!(h.changed, changed, "Handled::changed");
                }
            }
            (Err(e), Err(want)) => {
                assert_eq!(e, want, "engine rejected with a different error");
                self.handled_err += 1;
                assert_eq!(
                    snapshot(&self.node),
                    before,
                    "a rejected frame changed the state"
                );
                assert_eq!(self.node.value(), value_before);
            }
            // A Push that parses but cannot be merged: only capacity (65,536 entries), which
            // these inputs cannot reach.
            (got, want) => panic!("engine {got:?}, model {want:?} for frame {frame:02x?}"),
        }
        answer
    }

    /// A Push built from a small map, plain or zstd, sorted or in input order; in keyed mode
    /// sealed with the key, another key or not at all. Returns the sender, the frame and
    /// whether it carries the right tag.
    fn build_push(&mut self, inp: &mut Input<'_>) -> (String, Vec<u8>, bool) {
        let from = FROM[usize::from(inp.u8()) % FROM.len()].to_owned();
        let sender = pool_id(inp.u8());
        let flags = inp.u8();
        let (unsorted, compress, big, checksum) = (
            flags & 1 != 0,
            flags & 2 != 0,
            flags & 4 != 0,
            flags & 8 != 0,
        );
        let n = usize::from(inp.u8() % 12);
        let mut inc: Vec<(String, u64)> = Vec::new();
        let mut dec: Vec<(String, u64)> = Vec::new();
        for _ in 0..n {
            let id = pool_id(inp.u8());
            let (i, d) = if big {
                (inp.u64(), inp.u64())
            } else {
                (u64::from(inp.u8()), u64::from(inp.u8()))
            };
            if i != 0 {
                inc.push((id.clone(), i));
            }
            if d != 0 {
                dec.push((id, d));
            }
        }
        if !unsorted {
            // As Tally writes them: sorted, one entry per id.
            for side in [&mut inc, &mut dec] {
                side.sort();
                side.reverse();
                side.dedup_by(|a, b| a.0 == b.0); // keeps the max (first after reverse)
                side.reverse();
            }
        }
        let m: Message<'_, _> = Message::Push {
            id: sender.as_str(),
            inc: inc.iter().map(borrow_pair),
            dec: dec.iter().map(borrow_pair),
        };
        let mut msg = vec![0u8; m.buffer_len()];
        let len = m.emit(&mut msg).expect("emit into buffer_len()");
        assert_eq!(len, msg.len());
        let mut frame = Vec::with_capacity(msg.len() + 1);
        if compress {
            let mut c = zstd::bulk::Compressor::new(1).expect("zstd");
            c.include_checksum(checksum).expect("zstd checksum flag");
            frame.push(FLAG_ZSTD);
            frame.extend_from_slice(&c.compress(&msg).expect("zstd compress"));
        } else {
            frame.push(0);
            frame.extend_from_slice(&msg);
        }
        let mut right_tag = self.config.cluster_key.is_none();
        if self.config.cluster_key.is_some() {
            match (flags >> 4) % 3 {
                0 => {
                    seal(&key(KEY), &mut frame);
                    right_tag = true;
                }
                1 => seal(&key(OTHER_KEY), &mut frame),
                _ => {}
            }
        }
        (from, frame, right_tag)
    }

    fn timeout(&mut self, seed: u8) {
        let mut rng = SmallRng::seed_from_u64(u64::from(seed));
        self.node.handle_timeout(self.now, &mut rng);
        let next = self.node.poll_timeout().expect("engine always has a timer");
        assert!(
            next > self.now,
            "poll_timeout {next:?} not after handle_timeout({:?})",
            self.now
        );
    }

    fn drain(&mut self, mut delivered: u8) {
        let mut sent = 0usize;
        loop {
            let full_bytes_before = self.node.stats().full_push_bytes;
            let Some(t) = self.node.poll_transmit(self.now, &mut self.buf) else {
                break;
            };
            // A Push of the full state (rather than a delta) is counted in full_push_bytes.
            let full_push = self.node.stats().full_push_bytes > full_bytes_before;
            sent += 1;
            assert!(sent <= 64, "poll_transmit does not run dry");
            assert!(t.len <= self.buf.len());
            let payload = &self.buf[..t.len];
            let (from, frame) = split_header(payload).expect("engine sent a bad §2 header");
            assert_eq!(from, LOCAL, "header address");
            let plain_flags = match &self.config.cluster_key {
                Some(k) => {
                    assert!(
                        tagged_with(k, frame),
                        "engine sent a frame without a valid tag"
                    );
                    FLAG_AUTH
                }
                None => 0,
            };
            assert!(
                !t.compressed && frame.first() == Some(&plain_flags),
                "no compressor configured"
            );
            let frame = match self.config.cluster_key {
                Some(_) => &frame[1..frame.len() - TAG_LEN],
                None => &frame[1..],
            };
            let mut unsealed = vec![0u8];
            unsealed.extend_from_slice(frame);
            let frame = &unsealed[..];
            let body = frame::decode(frame, &FrameLimits::HOST).expect("engine sent a bad frame");
            let m = Message::parse(body.bytes(), &MessageLimits::HOST)
                .expect("engine sent a message that does not parse");
            assert_eq!(m.message_type(), t.message, "Transmit::message");
            assert_eq!(m.sender(), LOCAL, "message id");
            let again = tally_fuzz::check_roundtrip(&m, &MessageLimits::HOST);
            assert_eq!(
                again,
                body.bytes(),
                "engine output is not in reference form"
            );
            let entries = self.node.counter().entries();
            match &m {
                Message::Push { inc, dec, .. } => {
                    assert!(inc.ids_sorted() && dec.ids_sorted(), "Push not sorted");
                    for (id, v) in inc.clone() {
                        let e = self.node.counter().entry(id).expect("pushed an unknown id");
                        assert!(v != 0 && v == e.inc, "pushed inc {id}={v}, state {e:?}");
                    }
                    for (id, v) in dec.clone() {
                        let e = self.node.counter().entry(id).expect("pushed an unknown id");
                        assert!(v != 0 && v == e.dec, "pushed dec {id}={v}, state {e:?}");
                    }
                    // A full state that fits the frame budget goes out whole. (A delta Push
                    // carries what changed since the peer's known version, minus what the
                    // peer gave us: its contents cannot be checked from here beyond the above.)
                    let budget =
                        (self.buf.len() - (1 + LOCAL.len() + 1)).min(self.config.max_frame_out - 1);
                    let fixed = 1 + 2 + 2 + 3 + (LOCAL.len() + 1) + 4 + 4 + 2 * 5;
                    let need: usize = entries
                        .iter()
                        .map(|e| {
                            (usize::from(e.inc != 0) + usize::from(e.dec != 0))
                                * entry_len(e.id.len())
                        })
                        .sum();
                    if full_push && fixed + need <= budget {
                        let n_inc = entries.iter().filter(|e| e.inc != 0).count();
                        let n_dec = entries.iter().filter(|e| e.dec != 0).count();
                        assert_eq!((inc.len(), dec.len()), (n_inc, n_dec), "partial Push");
                    }
                }
                Message::DigestPull { digest: d, .. } => {
                    assert_eq!(*d, digest(entries), "DigestPull carries a stale digest");
                }
                Message::DigestAck { .. } => {}
            }
            let to = t.to;
            if delivered & 1 != 0 {
                self.node.on_delivered(to.as_str(), self.now);
            } else {
                self.node.on_send_failed(to.as_str(), self.now);
            }
            delivered = delivered.rotate_right(1);
        }
    }

    fn add_peer(&mut self, addr: &str) {
        let r = self.node.add_peer(addr, PeerSource::Static, self.now);
        if !is_gossip_address(addr) {
            assert_eq!(r, Err(PeerError::BadAddress), "add_peer({addr:?})");
        } else if addr == LOCAL {
            assert_eq!(r, Ok(false), "add_peer(own address)");
        } else {
            assert!(r.is_ok(), "add_peer({addr:?}) = {r:?}");
            assert!(self.node.peers().iter().any(|p| p.addr.as_str() == addr));
        }
    }

    /// The invariants that hold after every operation.
    fn check(&mut self, before: &Before) {
        let entries = self.node.counter().entries();
        for w in entries.windows(2) {
            assert!(w[0].id < w[1].id, "entries not strictly sorted");
        }
        assert!(
            self.node.counter().entry(LOCAL).is_some(),
            "local entry gone"
        );
        assert_eq!(
            counter_nonzero(&self.node),
            nonzero(&self.model),
            "state != model"
        );
        let (si, sd) = self
            .model
            .values()
            .fold((0u128, 0u128), |(a, b): (u128, u128), &(i, d)| {
                (a + u128::from(i), b + u128::from(d))
            });
        assert_eq!(self.node.value(), si as i128 - sd as i128, "value");
        assert_eq!(self.node.counter().total_inc(), si);
        assert_eq!(self.node.counter().total_dec(), sd);
        for (id, &(i, d)) in &before.totals {
            let e = self
                .node
                .counter()
                .entry(id)
                .unwrap_or_else(|| panic!("entry {id:?} disappeared"));
            assert!(
                e.inc >= i && e.dec >= d,
                "entry {id:?} went down: ({i}, {d}) -> {e:?}"
            );
        }
        // Delta-sync bookkeeping: an entry that rose in this operation is marked with the new
        // version and the origin of what raised it; the others keep their marks. (A rise left
        // unmarked would never be sent as a delta.)
        let version = self.node.counter().version();
        assert!(version >= before.version, "version went back");
        let mut rose = false;
        for e in self.node.counter().entries() {
            let id = e.id.as_str();
            let old = before.totals.get(id).copied().unwrap_or((0, 0));
            if self.local_touched && id == LOCAL {
                // A local operation marks the local entry, even `increment(0)`.
                rose = true;
                assert_eq!(
                    (e.changed, e.origin),
                    (version, 0),
                    "local entry not marked"
                );
            } else if e.inc > old.0 || e.dec > old.1 {
                rose = true;
                assert!(version > before.version, "{id:?} rose, version did not");
                assert_eq!(
                    e.changed, version,
                    "{id:?} rose without being marked changed"
                );
                assert_eq!(e.origin, self.origin, "{id:?} rose with the wrong origin");
            } else if let Some(&(changed, origin)) = before.marks.get(id) {
                assert_eq!((e.changed, e.origin), (changed, origin), "{id:?} re-marked");
            } else {
                panic!("a new entry {id:?} that did not rise");
            }
            assert!(
                e.changed <= version,
                "{id:?} changed after the current version"
            );
        }
        assert_eq!(
            rose,
            version > before.version,
            "version moved without a change"
        );
        self.local_touched = false;
        let d = digest(self.node.counter().entries());
        assert_eq!(self.node.digest(), d, "cached digest is stale");
        let s = self.node.stats();
        assert_eq!(
            s.frames_in.iter().sum::<u64>(),
            self.handled_ok,
            "stats.frames_in"
        );
        assert_eq!(
            s.rejects.iter().sum::<u64>(),
            self.handled_err,
            "stats.rejects"
        );
        assert_eq!(s.merges, self.pushes_ok, "stats.merges");
        assert_eq!(
            s.merges_changed, self.pushes_changed,
            "stats.merges_changed"
        );
        assert_eq!(s.bytes_in, self.bytes_in, "stats.bytes_in");
    }
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input(data);
    let keyed = inp.u8() & 1 != 0;
    let mut h = Harness::new(keyed);
    let mut steps = 0;
    while let Some(op) = inp.op() {
        steps += 1;
        if steps > 256 {
            break;
        }
        let before = before(&h.node);
        match op % 10 {
            0 => {
                let by = u64::from(inp.u8());
                h.local_op(by, false);
            }
            1 => {
                let by = u64::from(inp.u8());
                h.local_op(by, true);
            }
            2 => {
                h.advance(u64::from(inp.u8()));
                let from = FROM[usize::from(inp.u8()) % FROM.len()];
                let len = usize::from(inp.u16());
                let frame = inp.bytes(len);
                let _ = h.handle(from, frame);
            }
            3 | 4 => {
                h.advance(u64::from(inp.u8()));
                let (from, mut frame, right_tag) = h.build_push(&mut inp);
                let mut mutated = false;
                if op % 10 == 4 {
                    for _ in 0..inp.u8() % 4 {
                        let pos = usize::from(inp.u16()) % frame.len();
                        let xor = inp.u8();
                        frame[pos] ^= xor;
                        mutated |= xor != 0;
                    }
                }
                let got = h.handle(&from, &frame);
                if !right_tag && !mutated && is_gossip_address(&from) {
                    assert_eq!(
                        got,
                        Err(WireError::Unauthenticated),
                        "a Push without this cluster's tag"
                    );
                }
            }
            5 => {
                h.advance(u64::from(inp.u16()) * 10);
                let seed = inp.u8();
                h.timeout(seed);
            }
            6 => {
                let delivered = inp.u8();
                h.drain(delivered);
            }
            7 => {
                let addr = FROM[usize::from(inp.u8()) % FROM.len()];
                h.add_peer(addr);
            }
            8 => {
                let addr = FROM[usize::from(inp.u8()) % FROM.len()];
                h.node.remove_peer(addr);
            }
            _ => {
                // A replay, from its sender or from another address: a Push changes nothing.
                let who = inp.u8();
                if let Some((sender, frame)) = h.last_ok.clone() {
                    let from = match who {
                        0 => sender,
                        k => FROM[usize::from(k) % FROM.len()].to_owned(),
                    };
                    let is_push = expect(&h.config, &from, &frame)
                        .is_ok_and(|(kind, _)| kind == MessageType::Push);
                    let got = h.handle(&from, &frame);
                    if is_push {
                        assert_eq!(got, Ok(false), "a replayed Push changed the state");
                    }
                }
            }
        }
        h.check(&before);
    }
    // Whatever is still queued must be valid too.
    h.drain(0xff);
    let before = before(&h.node);
    h.check(&before);
});
