//! Messages of spec §4: parse from `&[u8]` and emit into `&mut [u8]`, without allocating.
//!
//! Parsing validates everything up front ([`Message::parse`]); the entry maps of a parsed Push
//! are then read lazily through [`Entries`], which cannot fail. Emission follows the reference
//! encoder byte for byte: `0x84`/`0x85` map, keys `t, id, inc, dec[, dig]`, `t` as `0xcc`, every
//! count and the digest as `0xcf` + 8 bytes, maps written sorted by id when the caller's entries
//! are sorted.

use crate::error::WireError;
use crate::msgpack::{container_header_len, str_len, BufferTooSmall, Kind, Reader, Writer};

/// The three message types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum MessageType {
    /// A state (full or partial) to merge.
    Push = 1,
    /// "Here is the hash of my state": answered by an Ack (equal) or a Push (different).
    DigestPull = 2,
    /// "Our states are equal."
    DigestAck = 3,
    /// Named counters (a Tally extension, `docs/EXTENSIONS.md` §6; never sent to a peer that
    /// did not announce it).
    NamedPush = 18,
}

impl MessageType {
    /// Every type, in wire order.
    pub const ALL: [MessageType; 4] = [
        Self::Push,
        Self::DigestPull,
        Self::DigestAck,
        Self::NamedPush,
    ];

    /// A stable snake_case name, for logs and metric labels.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Push => "push",
            Self::DigestPull => "digest_pull",
            Self::DigestAck => "digest_ack",
            Self::NamedPush => "named_push",
        }
    }

    /// 0, 1, 2, 3 for Push, DigestPull, DigestAck, NamedPush.
    pub const fn index(self) -> usize {
        match self {
            Self::Push => 0,
            Self::DigestPull => 1,
            Self::DigestAck => 2,
            Self::NamedPush => 3,
        }
    }
}

/// Receiver limits applied while parsing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MessageLimits {
    /// Longest id accepted (sender and entries).
    pub max_id_len: usize,
    /// Most entries accepted in each of `inc` and `dec`.
    pub max_entries: usize,
}

impl MessageLimits {
    /// Host defaults of spec §7.
    pub const HOST: MessageLimits = MessageLimits {
        max_id_len: 255,
        max_entries: 65_536,
    };
    /// Microcontroller defaults of spec §7 for a 32-entry counter.
    pub const MCU: MessageLimits = MessageLimits {
        max_id_len: 64,
        max_entries: 32,
    };
}

/// A validated msgpack map of `id → count`, read lazily. Cloning is cheap.
#[derive(Clone, Debug)]
pub struct Entries<'a> {
    body: Reader<'a>,
    remaining: u32,
    sorted: bool,
}

impl<'a> Entries<'a> {
    /// An empty map (what `nil` decodes to).
    pub const fn empty() -> Self {
        Self {
            body: Reader::empty(),
            remaining: 0,
            sorted: true,
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.remaining as usize
    }

    /// True when the map has no entries.
    pub fn is_empty(&self) -> bool {
        self.remaining == 0
    }

    /// True when the ids are in strictly ascending bytewise order (as Tally writes them).
    pub fn ids_sorted(&self) -> bool {
        self.sorted
    }

    /// Validates the map at the reader's position and returns a lazy view of it.
    fn parse(r: &mut Reader<'a>, limits: &MessageLimits) -> Result<Self, WireError> {
        if r.peek_kind()? == Kind::Nil {
            r.read_nil()?;
            return Ok(Self::empty());
        }
        if r.peek_kind()? != Kind::Map {
            return Err(WireError::WrongType);
        }
        let len = r.read_map_len()?;
        if len as usize > limits.max_entries {
            return Err(WireError::TooManyEntries);
        }
        let body = r.clone();
        let mut sorted = true;
        let mut prev: Option<&str> = None;
        for _ in 0..len {
            let id = match r.peek_kind()? {
                Kind::Str => r.read_str()?,
                _ => return Err(WireError::WrongType),
            };
            check_id(id, limits)?;
            r.read_uint()?;
            if let Some(p) = prev {
                sorted &= p.as_bytes() < id.as_bytes();
            }
            prev = Some(id);
        }
        Ok(Self {
            body,
            remaining: len,
            sorted,
        })
    }
}

impl<'a> Iterator for Entries<'a> {
    type Item = (&'a str, u64);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        // Validated by `Entries::parse`: these reads succeed.
        let id = self.body.read_str().ok()?;
        let v = self.body.read_uint().ok()?;
        Some((id, v))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining as usize, Some(self.remaining as usize))
    }
}

fn check_id(id: &str, limits: &MessageLimits) -> Result<(), WireError> {
    check_id_len(id, limits.max_id_len)
}

/// An id is 1 to `max` bytes (spec §4); the named-counter messages use the same rule.
pub(crate) fn check_id_len(id: &str, max: usize) -> Result<(), WireError> {
    if id.is_empty() {
        Err(WireError::EmptyId)
    } else if id.len() > max {
        Err(WireError::IdTooLong)
    } else {
        Ok(())
    }
}

/// A message. `E` is the entry list of a Push: [`Entries`] when parsed, any cloneable iterator
/// of `(id, count)` when emitting (e.g. the counter's own entries).
#[derive(Clone, Debug)]
pub enum Message<'a, E = Entries<'a>> {
    /// A state (full or partial) to merge.
    Push {
        /// Sender's node id.
        id: &'a str,
        /// Increment totals by id.
        inc: E,
        /// Decrement totals by id.
        dec: E,
    },
    /// "Here is the digest of my state."
    DigestPull {
        /// Sender's node id.
        id: &'a str,
        /// The sender's state digest.
        digest: u64,
    },
    /// "My state has this digest too."
    DigestAck {
        /// Sender's node id.
        id: &'a str,
        /// The digest being acknowledged.
        digest: u64,
    },
}

impl<'a> Message<'a> {
    /// Parses and validates one msgpack message (no flag byte). Every §4 rejection is a
    /// distinct [`WireError`].
    pub fn parse(bytes: &'a [u8], limits: &MessageLimits) -> Result<Self, WireError> {
        let (mut r, pairs) = open_message(bytes)?;
        let mut t: Option<u64> = None;
        let mut id: Option<&'a str> = None;
        let mut inc: Option<Entries<'a>> = None;
        let mut dec: Option<Entries<'a>> = None;
        let mut dig: Option<u64> = None;
        for _ in 0..pairs {
            let key = match r.peek_kind()? {
                Kind::Str => r.read_str()?,
                _ => return Err(WireError::WrongType),
            };
            match key {
                "t" => set_once(&mut t, read_type(&mut r)?)?,
                "id" => {
                    let s = match r.peek_kind()? {
                        Kind::Str => r.read_str()?,
                        _ => return Err(WireError::WrongType),
                    };
                    set_once(&mut id, s)?
                }
                "inc" => set_once(&mut inc, Entries::parse(&mut r, limits)?)?,
                "dec" => set_once(&mut dec, Entries::parse(&mut r, limits)?)?,
                "dig" => {
                    let d = if r.peek_kind()? == Kind::Nil {
                        r.read_nil()?;
                        0
                    } else {
                        r.read_uint()?
                    };
                    set_once(&mut dig, d)?
                }
                _ => r.skip_value()?,
            }
        }
        if !r.is_empty() {
            return Err(WireError::TrailingBytes);
        }
        let t = t.ok_or(WireError::MissingType)?;
        let id = id.ok_or(WireError::MissingId)?;
        check_id(id, limits)?;
        let digest = dig.unwrap_or(0);
        match t {
            1 => {
                let inc = inc.unwrap_or(Entries::empty());
                let dec = dec.unwrap_or(Entries::empty());
                if inc.is_empty() && dec.is_empty() {
                    return Err(WireError::EmptyPush);
                }
                Ok(Message::Push { id, inc, dec })
            }
            2 => Ok(Message::DigestPull { id, digest }),
            3 => Ok(Message::DigestAck { id, digest }),
            _ => Err(WireError::UnknownType),
        }
    }
}

fn read_type(r: &mut Reader<'_>) -> Result<u64, WireError> {
    match r.read_uint() {
        Ok(t @ 1..=3) => Ok(t),
        Ok(_) | Err(WireError::NegativeValue) => Err(WireError::UnknownType),
        Err(WireError::NotAnInteger) => Err(WireError::WrongType),
        Err(e) => Err(e),
    }
}

/// The reader after a message's top-level map header, and the number of its key/value pairs:
/// every message (reference and extension) is one msgpack map.
pub(crate) fn open_message(bytes: &[u8]) -> Result<(Reader<'_>, u32), WireError> {
    if bytes.is_empty() {
        return Err(WireError::Empty);
    }
    let mut r = Reader::new(bytes);
    if r.peek_kind()? != Kind::Map {
        return Err(WireError::NotAMap);
    }
    let pairs = r.read_map_len()?;
    Ok((r, pairs))
}

/// Fills a field read from a map key, refusing the key's second occurrence.
pub(crate) fn set_once<T>(slot: &mut Option<T>, v: T) -> Result<(), WireError> {
    if slot.is_some() {
        return Err(WireError::DuplicateKey);
    }
    *slot = Some(v);
    Ok(())
}

impl<'a, E> Message<'a, E>
where
    E: Iterator<Item = (&'a str, u64)> + Clone,
{
    /// The message type.
    pub fn message_type(&self) -> MessageType {
        match self {
            Message::Push { .. } => MessageType::Push,
            Message::DigestPull { .. } => MessageType::DigestPull,
            Message::DigestAck { .. } => MessageType::DigestAck,
        }
    }

    /// The sender's id.
    pub fn sender(&self) -> &'a str {
        match self {
            Message::Push { id, .. }
            | Message::DigestPull { id, .. }
            | Message::DigestAck { id, .. } => id,
        }
    }

    /// Exact number of bytes [`Message::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        // 0x84 + "t" (2) + cc xx (2) + "id" (3) + id + "inc" (4) + "dec" (4)
        let head = 1 + 2 + 2 + 3 + str_len(self.sender().len()) + 4 + 4;
        match self {
            Message::Push { inc, dec, .. } => head + map_len(inc.clone()) + map_len(dec.clone()),
            Message::DigestPull { digest, .. } | Message::DigestAck { digest, .. } => {
                head + 2 + if *digest != 0 { 4 + 9 } else { 0 }
            }
        }
    }

    /// Writes the message as the reference encoder would; returns the length written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
        let mut w = Writer::new(buf);
        let digest = match self {
            Message::Push { .. } => 0,
            Message::DigestPull { digest, .. } | Message::DigestAck { digest, .. } => *digest,
        };
        w.put_u8(if digest != 0 { 0x85 } else { 0x84 })?;
        w.put(b"\xa1t\xcc")?;
        w.put_u8(self.message_type() as u8)?;
        w.put(b"\xa2id")?;
        w.put_str(self.sender())?;
        match self {
            Message::Push { inc, dec, .. } => {
                w.put(b"\xa3inc")?;
                put_map(&mut w, inc.clone())?;
                w.put(b"\xa3dec")?;
                put_map(&mut w, dec.clone())?;
            }
            _ => {
                w.put(b"\xa3inc\xc0\xa3dec\xc0")?;
                if digest != 0 {
                    w.put(b"\xa3dig")?;
                    w.put_u64_full(digest)?;
                }
            }
        }
        Ok(w.position())
    }
}

/// Bytes one `id → count` pair takes on the wire.
pub const fn entry_len(id_len: usize) -> usize {
    str_len(id_len) + 9
}

fn map_len<'a>(entries: impl Iterator<Item = (&'a str, u64)>) -> usize {
    let (n, bytes) = entries.fold((0usize, 0usize), |(n, b), (id, _)| {
        (n + 1, b + entry_len(id.len()))
    });
    container_header_len(n) + bytes
}

fn put_map<'a>(
    w: &mut Writer<'_>,
    entries: impl Iterator<Item = (&'a str, u64)> + Clone,
) -> Result<(), BufferTooSmall> {
    w.put_map_len(entries.clone().count())?;
    for (id, v) in entries {
        w.put_str(id)?;
        w.put_u64_full(v)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(b: &[u8]) -> Result<Message<'_>, WireError> {
        Message::parse(b, &MessageLimits::HOST)
    }

    #[test]
    fn compact_forms_decode() {
        let b = [
            0x83, 0xa1, 0x74, 0x01, 0xa2, 0x69, 0x64, 0xa1, 0x78, 0xa3, 0x69, 0x6e, 0x63, 0x81,
            0xa1, 0x61, 0x05,
        ];
        match parse(&b).unwrap() {
            Message::Push { id, inc, dec } => {
                assert_eq!(id, "x");
                assert_eq!(inc.collect::<Vec<_>>(), [("a", 5)]);
                assert_eq!(dec.count(), 0);
            }
            m => panic!("{m:?}"),
        }
    }

    #[test]
    fn pull_roundtrip_and_zero_digest() {
        for digest in [0u64, 7, u64::MAX] {
            let m: Message<'_> = Message::DigestPull { id: "n", digest };
            let mut buf = [0u8; 64];
            let n = m.emit(&mut buf).unwrap();
            assert_eq!(n, m.buffer_len());
            match parse(&buf[..n]).unwrap() {
                Message::DigestPull { id: "n", digest: d } => assert_eq!(d, digest),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn emit_reports_small_buffer() {
        let m: Message<'_> = Message::DigestAck { id: "n", digest: 1 };
        let mut buf = [0u8; 10];
        assert_eq!(m.emit(&mut buf), Err(BufferTooSmall));
    }
}
