//! [`NodeId`]: a validated, bounded UTF-8 string, stored inline.
//!
//! Ids name counter entries (`"127.0.0.1:9000"` by convention) and, with the same type, the
//! gossip addresses of peers. `L` is the maximum length in bytes (at most 255, the bound of the
//! TCP header of spec §2); a `NodeId<L>` costs `L + 1` bytes.

use core::cmp::Ordering;
use core::fmt;
use core::hash::{Hash, Hasher};

/// Why a string is not a valid [`NodeId`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum IdError {
    /// The id is the empty string.
    Empty,
    /// The id is longer than the bound `L`.
    TooLong {
        /// Length of the rejected id in bytes.
        len: usize,
        /// The bound.
        max: usize,
    },
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdError::Empty => f.write_str("node id is empty"),
            IdError::TooLong { len, max } => {
                write!(f, "node id is {len} bytes long, the limit is {max}")
            }
        }
    }
}

impl core::error::Error for IdError {}

/// A non-empty UTF-8 string of at most `L` bytes (`L` ≤ 255), stored inline and `Copy`.
///
/// Ordering, equality and hashing are those of the bytes, so sorting ids sorts them bytewise,
/// as the wire format and the digest require.
#[derive(Clone, Copy)]
pub struct NodeId<const L: usize> {
    len: u8,
    bytes: [u8; L],
}

impl<const L: usize> NodeId<L> {
    const BOUND_FITS_U8: () = assert!(L >= 1 && L <= 255, "NodeId bound must be 1..=255");

    /// Validates `s` and copies it in.
    pub fn new(s: &str) -> Result<Self, IdError> {
        #[allow(clippy::let_unit_value)]
        let () = Self::BOUND_FITS_U8;
        let src = s.as_bytes();
        if src.is_empty() {
            return Err(IdError::Empty);
        }
        let len = u8::try_from(src.len()).map_err(|_| IdError::TooLong {
            len: src.len(),
            max: L,
        })?;
        let mut bytes = [0u8; L];
        let dst = bytes.get_mut(..src.len()).ok_or(IdError::TooLong {
            len: src.len(),
            max: L,
        })?;
        dst.copy_from_slice(src);
        Ok(Self { len, bytes })
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        // The bytes were copied from a `&str` and never modified: always valid UTF-8.
        core::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or_default()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Always false: ids are never empty. Present for API symmetry with `str`.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The maximum length in bytes.
    pub const fn max_len() -> usize {
        L
    }
}

impl<const L: usize> PartialEq for NodeId<L> {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}
impl<const L: usize> Eq for NodeId<L> {}

impl<const L: usize> PartialOrd for NodeId<L> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<const L: usize> Ord for NodeId<L> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl<const L: usize> Hash for NodeId<L> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl<const L: usize> PartialEq<str> for NodeId<L> {
    fn eq(&self, other: &str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl<const L: usize> fmt::Debug for NodeId<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl<const L: usize> fmt::Display for NodeId<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<const L: usize> TryFrom<&str> for NodeId<L> {
    type Error = IdError;
    fn try_from(s: &str) -> Result<Self, IdError> {
        Self::new(s)
    }
}

#[cfg(feature = "defmt")]
impl<const L: usize> defmt::Format for NodeId<L> {
    fn format(&self, f: defmt::Formatter) {
        defmt::write!(f, "{=str}", self.as_str())
    }
}

#[cfg(feature = "serde")]
impl<const L: usize> serde::Serialize for NodeId<L> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_bounds() {
        assert_eq!(NodeId::<4>::new(""), Err(IdError::Empty));
        assert_eq!(
            NodeId::<4>::new("12345"),
            Err(IdError::TooLong { len: 5, max: 4 })
        );
        let id = NodeId::<4>::new("abcd").unwrap();
        assert_eq!(id.as_str(), "abcd");
        assert_eq!(id.len(), 4);
        let long = "x".repeat(256);
        assert!(matches!(
            NodeId::<255>::new(&long),
            Err(IdError::TooLong { len: 256, .. })
        ));
        assert!(NodeId::<255>::new(&long[..255]).is_ok());
    }

    #[test]
    fn orders_bytewise() {
        let a = NodeId::<8>::new("a").unwrap();
        let ab = NodeId::<8>::new("ab").unwrap();
        let b = NodeId::<8>::new("b").unwrap();
        assert!(a < ab && ab < b);
        assert_eq!(a, NodeId::<8>::new("a").unwrap());
    }

    #[test]
    fn utf8_is_kept() {
        let id = NodeId::<16>::new("nœud-1").unwrap();
        assert_eq!(id.as_str(), "nœud-1");
    }
}
