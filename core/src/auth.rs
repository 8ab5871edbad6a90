//! Authenticated frames (spec §8): a cluster key, and a 16-byte tag on every frame.
//!
//! With a key, a node sends `flags | 0x40` and appends HMAC-SHA256(key, every byte of the frame
//! before the tag, flag byte included) truncated to its first 16 bytes, and drops any frame
//! without a valid tag (compared in constant time). The §2 header (the sender's address) is not
//! covered: what a replayed or re-addressed frame can make a node do is bounded by the engine's
//! reply rate limit, and a replayed Push changes nothing (merge is idempotent).

use crate::error::WireError;
use crate::frame::FLAG_AUTH;
use core::fmt;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Length of the tag appended to authenticated frames.
pub const TAG_LEN: usize = 16;
/// Shortest key accepted: 16 bytes (32 hex digits).
pub const MIN_KEY_LEN: usize = 16;
/// Longest key accepted: 32 bytes (256 bits; 64 hex digits).
pub const MAX_KEY_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// A cluster key (16..=32 bytes). Its `Debug` never shows the bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ClusterKey {
    bytes: [u8; MAX_KEY_LEN],
    len: u8,
}

/// Why a key was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum KeyError {
    /// Fewer than 16 bytes (32 hex digits).
    TooShort,
    /// More than 32 bytes (64 hex digits).
    TooLong,
    /// Not hex digits (whitespace around the key is allowed).
    NotHex,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyError::TooShort => "cluster key too short: at least 32 hex digits (16 bytes)",
            KeyError::TooLong => "cluster key too long: at most 64 hex digits (32 bytes)",
            KeyError::NotHex => "cluster key must be hex digits",
        })
    }
}

impl core::error::Error for KeyError {}

impl fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClusterKey({} bytes, redacted)", self.len)
    }
}

impl ClusterKey {
    /// A key from raw bytes.
    pub fn from_bytes(key: &[u8]) -> Result<Self, KeyError> {
        if key.len() < MIN_KEY_LEN {
            return Err(KeyError::TooShort);
        }
        if key.len() > MAX_KEY_LEN {
            return Err(KeyError::TooLong);
        }
        let mut bytes = [0u8; MAX_KEY_LEN];
        bytes
            .get_mut(..key.len())
            .ok_or(KeyError::TooLong)?
            .copy_from_slice(key);
        Ok(Self {
            bytes,
            len: key.len() as u8,
        })
    }

    /// A key from hex text (as in a key file; surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(KeyError::NotHex);
        }
        let n = text.len() / 2;
        if n < MIN_KEY_LEN {
            return Err(KeyError::TooShort);
        }
        if n > MAX_KEY_LEN {
            return Err(KeyError::TooLong);
        }
        let mut raw = [0u8; MAX_KEY_LEN];
        for (i, pair) in text.as_bytes().chunks(2).enumerate() {
            let hex = core::str::from_utf8(pair).map_err(|_| KeyError::NotHex)?;
            let v = u8::from_str_radix(hex, 16).map_err(|_| KeyError::NotHex)?;
            *raw.get_mut(i).ok_or(KeyError::TooLong)? = v;
        }
        Self::from_bytes(raw.get(..n).unwrap_or_default())
    }

    fn mac(&self) -> Option<HmacSha256> {
        HmacSha256::new_from_slice(self.bytes.get(..usize::from(self.len))?).ok()
    }

    /// The tag of `frame` (flag byte included).
    pub fn tag(&self, frame: &[u8]) -> [u8; TAG_LEN] {
        let mut out = [0u8; TAG_LEN];
        if let Some(mut mac) = self.mac() {
            mac.update(frame);
            let full = mac.finalize().into_bytes();
            for (o, b) in out.iter_mut().zip(full.iter()) {
                *o = *b;
            }
        }
        out
    }

    /// Seals `buf[..len]`, a frame whose first byte is its flags: sets `FLAG_AUTH` and appends
    /// the tag. Returns the new length, or `None` when `buf` has no room for the tag.
    pub fn seal(&self, buf: &mut [u8], len: usize) -> Option<usize> {
        *buf.first_mut()? |= FLAG_AUTH;
        let tag = self.tag(buf.get(..len)?);
        buf.get_mut(len..len + TAG_LEN)?.copy_from_slice(&tag);
        Some(len + TAG_LEN)
    }

    /// Opens an authenticated frame: checks the flag and the tag (constant time) and returns
    /// the frame without its tag.
    pub fn open<'a>(&self, frame: &'a [u8]) -> Result<&'a [u8], WireError> {
        let &flags = frame.first().ok_or(WireError::Empty)?;
        if flags & FLAG_AUTH == 0 || frame.len() < 1 + TAG_LEN {
            return Err(WireError::Unauthenticated);
        }
        let (body, tag) = frame.split_at(frame.len() - TAG_LEN);
        let mut mac = self.mac().ok_or(WireError::Unauthenticated)?;
        mac.update(body);
        mac.verify_truncated_left(tag)
            .map_err(|_| WireError::Unauthenticated)?;
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "000102030405060708090a0b0c0d0e0f";

    #[test]
    fn keys_are_validated_and_never_shown() {
        assert_eq!(ClusterKey::from_hex("abcd"), Err(KeyError::TooShort));
        assert_eq!(
            ClusterKey::from_hex(&"zz".repeat(16)),
            Err(KeyError::NotHex)
        );
        assert_eq!(
            ClusterKey::from_hex(&"ab".repeat(33)),
            Err(KeyError::TooLong)
        );
        let k = ClusterKey::from_hex(&format!("  {KEY}\n")).unwrap();
        assert!(!format!("{k:?}").contains("0102"));
    }

    #[test]
    fn seal_and_open() {
        let k = ClusterKey::from_hex(KEY).unwrap();
        let mut buf = [0u8; 64];
        buf[..4].copy_from_slice(&[0x00, 1, 2, 3]);
        let n = k.seal(&mut buf, 4).unwrap();
        assert_eq!(n, 20);
        assert_eq!(buf[0], FLAG_AUTH);
        assert_eq!(k.open(&buf[..n]).unwrap(), &[FLAG_AUTH, 1, 2, 3]);
        // Any flipped bit fails.
        for i in 0..n {
            let mut bad = buf;
            bad[i] ^= 1;
            assert!(k.open(&bad[..n]).is_err(), "byte {i}");
        }
        // Another key fails.
        let other = ClusterKey::from_hex(&"11".repeat(16)).unwrap();
        assert_eq!(other.open(&buf[..n]), Err(WireError::Unauthenticated));
        // No tag at all.
        assert_eq!(k.open(&[0x00, 1, 2]), Err(WireError::Unauthenticated));
        assert_eq!(k.seal(&mut buf[..10], 4), None);
    }
}
