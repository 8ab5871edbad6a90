//! The small part of MessagePack that the protocol uses: a checked reader over `&[u8]` and a
//! writer into `&mut [u8]`. Neither allocates; neither panics on any input.

use crate::error::WireError;

/// A cursor over untrusted bytes. Every read checks the remaining length first.
#[derive(Clone, Debug)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
}

/// What a marker byte says comes next, for the values the protocol reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Nil,
    Uint,
    NegInt,
    Float,
    Str,
    Map,
    Array,
    Other,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    pub(crate) const fn empty() -> Self {
        Self { bytes: &[] }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.bytes.len() {
            return Err(WireError::Truncated);
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, WireError> {
        let (&b, tail) = self.bytes.split_first().ok_or(WireError::Truncated)?;
        self.bytes = tail;
        Ok(b)
    }

    fn be(&mut self, n: usize) -> Result<u64, WireError> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    /// The kind of the next value, without consuming it.
    pub(crate) fn peek_kind(&self) -> Result<Kind, WireError> {
        let &m = self.bytes.first().ok_or(WireError::Truncated)?;
        Ok(match m {
            0x00..=0x7f | 0xcc..=0xcf => Kind::Uint,
            0xe0..=0xff | 0xd0..=0xd3 => Kind::NegInt,
            0xc0 => Kind::Nil,
            0xca | 0xcb => Kind::Float,
            0xa0..=0xbf | 0xd9..=0xdb => Kind::Str,
            0x80..=0x8f | 0xde | 0xdf => Kind::Map,
            0x90..=0x9f | 0xdc | 0xdd => Kind::Array,
            _ => Kind::Other,
        })
    }

    /// Reads an unsigned integer of any width. A negative integer is `NegativeValue`; any
    /// other type is `NotAnInteger`.
    pub(crate) fn read_uint(&mut self) -> Result<u64, WireError> {
        let m = self.byte()?;
        match m {
            0x00..=0x7f => Ok(u64::from(m)),
            0xcc => self.be(1),
            0xcd => self.be(2),
            0xce => self.be(4),
            0xcf => self.be(8),
            0xd0..=0xd3 => {
                // Signed forms: non-negative values are acceptable integers.
                let n = 1usize << (m - 0xd0);
                let raw = self.be(n)?;
                let bits = 8 * n as u32;
                let negative = (raw >> (bits - 1)) & 1 == 1;
                if negative {
                    Err(WireError::NegativeValue)
                } else {
                    Ok(raw)
                }
            }
            0xe0..=0xff => Err(WireError::NegativeValue),
            _ => Err(WireError::NotAnInteger),
        }
    }

    /// Reads a string header and body. Not UTF-8 is `InvalidUtf8`; not a string is `WrongType`.
    pub(crate) fn read_str(&mut self) -> Result<&'a str, WireError> {
        let m = self.byte()?;
        let len = match m {
            0xa0..=0xbf => usize::from(m & 0x1f),
            0xd9 => self.be(1)? as usize,
            0xda => self.be(2)? as usize,
            0xdb => usize::try_from(self.be(4)?).map_err(|_| WireError::Truncated)?,
            _ => return Err(WireError::WrongType),
        };
        let body = self.take(len)?;
        core::str::from_utf8(body).map_err(|_| WireError::InvalidUtf8)
    }

    /// Reads a map header: the number of key/value pairs.
    pub(crate) fn read_map_len(&mut self) -> Result<u32, WireError> {
        let m = self.byte()?;
        let len = match m {
            0x80..=0x8f => u32::from(m & 0x0f),
            0xde => self.be(2)? as u32,
            0xdf => self.be(4)? as u32,
            _ => return Err(WireError::WrongType),
        };
        // Every pair takes at least two bytes: a count beyond that cannot be honest.
        if (len as usize).saturating_mul(2) > self.bytes.len() {
            return Err(WireError::Truncated);
        }
        Ok(len)
    }

    /// Reads an array header: the number of items.
    pub(crate) fn read_array_len(&mut self) -> Result<u32, WireError> {
        let m = self.byte()?;
        let len = match m {
            0x90..=0x9f => u32::from(m & 0x0f),
            0xdc => self.be(2)? as u32,
            0xdd => self.be(4)? as u32,
            _ => return Err(WireError::WrongType),
        };
        // Every item takes at least one byte.
        if len as usize > self.bytes.len() {
            return Err(WireError::Truncated);
        }
        Ok(len)
    }

    /// Consumes a nil.
    pub(crate) fn read_nil(&mut self) -> Result<(), WireError> {
        match self.byte()? {
            0xc0 => Ok(()),
            _ => Err(WireError::WrongType),
        }
    }

    /// Skips one complete value of any type, iteratively (no recursion, so nesting depth
    /// cannot exhaust the stack).
    pub(crate) fn skip_value(&mut self) -> Result<(), WireError> {
        let mut pending: u64 = 1;
        while pending > 0 {
            pending -= 1;
            let m = self.byte()?;
            let (payload, children): (u64, u64) = match m {
                0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0),
                0x80..=0x8f => (0, 2 * u64::from(m & 0x0f)),
                0x90..=0x9f => (0, u64::from(m & 0x0f)),
                0xa0..=0xbf => (u64::from(m & 0x1f), 0),
                0xc4 | 0xd9 => (self.be(1)?, 0),
                0xc5 | 0xda => (self.be(2)?, 0),
                0xc6 | 0xdb => (self.be(4)?, 0),
                0xc7 => (self.be(1)? + 1, 0),
                0xc8 => (self.be(2)? + 1, 0),
                0xc9 => (self.be(4)? + 1, 0),
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
                0xdc => (0, self.be(2)?),
                0xdd => (0, self.be(4)?),
                0xde => (0, 2 * self.be(2)?),
                0xdf => (0, 2 * self.be(4)?),
                0xc1 => return Err(WireError::Malformed),
            };
            let payload = usize::try_from(payload).map_err(|_| WireError::Truncated)?;
            self.take(payload)?;
            pending = pending.saturating_add(children);
            // Every pending value needs at least one more byte.
            if pending > self.bytes.len() as u64 {
                return Err(WireError::Truncated);
            }
        }
        Ok(())
    }
}

/// Writes into a caller's buffer; every write checks the space left.
pub(crate) struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

/// The buffer given to an encoder is too small for the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BufferTooSmall;

impl core::fmt::Display for BufferTooSmall {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("output buffer too small")
    }
}

impl core::error::Error for BufferTooSmall {}

impl<'a> Writer<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn put(&mut self, bytes: &[u8]) -> Result<(), BufferTooSmall> {
        let end = self.pos.checked_add(bytes.len()).ok_or(BufferTooSmall)?;
        self.buf
            .get_mut(self.pos..end)
            .ok_or(BufferTooSmall)?
            .copy_from_slice(bytes);
        self.pos = end;
        Ok(())
    }

    pub(crate) fn put_u8(&mut self, b: u8) -> Result<(), BufferTooSmall> {
        self.put(&[b])
    }

    /// The reference form for every u64: `0xcf` + 8 bytes big-endian.
    pub(crate) fn put_u64_full(&mut self, v: u64) -> Result<(), BufferTooSmall> {
        self.put_u8(0xcf)?;
        self.put(&v.to_be_bytes())
    }

    pub(crate) fn put_str(&mut self, s: &str) -> Result<(), BufferTooSmall> {
        let len = s.len();
        if len < 32 {
            self.put_u8(0xa0 | len as u8)?;
        } else if len <= 0xff {
            self.put(&[0xd9, len as u8])?;
        } else if len <= 0xffff {
            self.put_u8(0xda)?;
            self.put(&(len as u16).to_be_bytes())?;
        } else {
            self.put_u8(0xdb)?;
            self.put(&(len as u32).to_be_bytes())?;
        }
        self.put(s.as_bytes())
    }

    pub(crate) fn put_array_len(&mut self, len: usize) -> Result<(), BufferTooSmall> {
        let mut h = [0u8; 5];
        self.put(array_header(len, &mut h))
    }

    pub(crate) fn put_map_len(&mut self, len: usize) -> Result<(), BufferTooSmall> {
        if len < 16 {
            self.put_u8(0x80 | len as u8)
        } else if len <= 0xffff {
            self.put_u8(0xde)?;
            self.put(&(len as u16).to_be_bytes())
        } else {
            self.put_u8(0xdf)?;
            self.put(&(len as u32).to_be_bytes())
        }
    }
}

/// Bytes a string takes when written by [`Writer::put_str`].
pub(crate) const fn str_len(len: usize) -> usize {
    len + if len < 32 {
        1
    } else if len <= 0xff {
        2
    } else if len <= 0xffff {
        3
    } else {
        5
    }
}

/// Bytes a map or array header takes for `len` items.
pub(crate) const fn container_header_len(len: usize) -> usize {
    if len < 16 {
        1
    } else if len <= 0xffff {
        3
    } else {
        5
    }
}

/// Writes an array header (used by the digest document).
pub(crate) fn array_header(len: usize, out: &mut [u8; 5]) -> &[u8] {
    if len < 16 {
        out[0] = 0x90 | len as u8;
        &out[..1]
    } else if len <= 0xffff {
        out[0] = 0xdc;
        out[1..3].copy_from_slice(&(len as u16).to_be_bytes());
        &out[..3]
    } else {
        out[0] = 0xdd;
        out[1..5].copy_from_slice(&(len as u32).to_be_bytes());
        &out[..5]
    }
}

/// Writes a string header (used by the digest document).
pub(crate) fn str_header(len: usize, out: &mut [u8; 5]) -> &[u8] {
    if len < 32 {
        out[0] = 0xa0 | len as u8;
        &out[..1]
    } else if len <= 0xff {
        out[0] = 0xd9;
        out[1] = len as u8;
        &out[..2]
    } else if len <= 0xffff {
        out[0] = 0xda;
        out[1..3].copy_from_slice(&(len as u16).to_be_bytes());
        &out[..3]
    } else {
        out[0] = 0xdb;
        out[1..5].copy_from_slice(&(len as u32).to_be_bytes());
        &out[..5]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uints_of_every_width() {
        for (bytes, v) in [
            (&[0x05][..], 5u64),
            (&[0xcc, 0xff], 255),
            (&[0xcd, 0x01, 0x00], 256),
            (&[0xce, 0, 1, 0, 0], 65536),
            (&[0xcf, 0, 0, 0, 1, 0, 0, 0, 0], 1 << 32),
            (&[0xd0, 0x7f], 127),
            (&[0xd1, 0x00, 0x10], 16),
        ] {
            assert_eq!(Reader::new(bytes).read_uint(), Ok(v), "{bytes:x?}");
        }
        assert_eq!(
            Reader::new(&[0xff]).read_uint(),
            Err(WireError::NegativeValue)
        );
        assert_eq!(
            Reader::new(&[0xd0, 0x80]).read_uint(),
            Err(WireError::NegativeValue)
        );
        assert_eq!(
            Reader::new(&[0xcb, 0, 0, 0, 0, 0, 0, 0, 0]).read_uint(),
            Err(WireError::NotAnInteger)
        );
        assert_eq!(
            Reader::new(&[0xcf, 0]).read_uint(),
            Err(WireError::Truncated)
        );
    }

    #[test]
    fn skip_handles_nesting_without_recursion() {
        // 100k nested one-element arrays then a nil: skipped iteratively.
        let mut deep = [0x91u8; 100_001];
        deep[100_000] = 0xc0;
        let mut r = Reader::new(&deep);
        assert_eq!(r.skip_value(), Ok(()));
        assert!(r.is_empty());
        // A lying array count fails fast.
        let mut r = Reader::new(&[0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0]);
        assert_eq!(r.skip_value(), Err(WireError::Truncated));
    }

    #[test]
    fn writer_reports_full_buffer() {
        let mut buf = [0u8; 4];
        let mut w = Writer::new(&mut buf);
        assert_eq!(w.put_str("abcd"), Err(BufferTooSmall));
        let mut w = Writer::new(&mut buf);
        assert_eq!(w.put_str("abc"), Ok(()));
        assert_eq!(w.position(), 4);
        assert_eq!(str_len(3), 4);
        assert_eq!(str_len(40), 42);
    }
}
