//! [`CounterName`]: the name of a named counter.

/// Longest counter name, in bytes.
pub const MAX_NAME: usize = 64;

/// Why a string is not a counter name (HTTP and CLI report it as `bad_name`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum NameError {
    /// No bytes.
    Empty,
    /// More than [`MAX_NAME`] bytes.
    TooLong,
    /// A byte outside `[A-Za-z0-9._-]`.
    BadByte(u8),
    /// `.` or `..`: a URL path or a file path would resolve them away.
    DotSegment,
}

impl NameError {
    /// The stable error name of every interface.
    pub const fn name(self) -> &'static str {
        "bad_name"
    }
}

impl core::fmt::Display for NameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NameError::Empty => f.write_str("a counter name needs 1 to 64 bytes"),
            NameError::TooLong => f.write_str("a counter name has at most 64 bytes"),
            NameError::BadByte(b) => write!(
                f,
                "byte 0x{b:02x} is not allowed in a counter name (only A-Z a-z 0-9 . _ -)"
            ),
            NameError::DotSegment => f.write_str("a counter name may not be . or .."),
        }
    }
}

impl core::error::Error for NameError {}

/// A valid counter name: 1–64 bytes of `[A-Za-z0-9._-]`, other than `.` and `..`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CounterName {
    len: u8,
    bytes: [u8; MAX_NAME],
}

impl CounterName {
    /// Checks `s` and keeps it.
    pub fn new(s: &str) -> Result<Self, NameError> {
        let b = s.as_bytes();
        if b.is_empty() {
            return Err(NameError::Empty);
        }
        if b.len() > MAX_NAME {
            return Err(NameError::TooLong);
        }
        if let Some(&bad) = b
            .iter()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-')))
        {
            return Err(NameError::BadByte(bad));
        }
        if b == b"." || b == b".." {
            return Err(NameError::DotSegment);
        }
        let mut bytes = [0u8; MAX_NAME];
        bytes
            .get_mut(..b.len())
            .ok_or(NameError::TooLong)?
            .copy_from_slice(b);
        Ok(Self {
            len: b.len() as u8,
            bytes,
        })
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        // Only ASCII was accepted.
        core::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    /// The name's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert_eq!(CounterName::new("doors").unwrap().as_str(), "doors");
        assert!(CounterName::new("Room-2.entries_v1").is_ok());
        assert!(CounterName::new(&"a".repeat(64)).is_ok());
        assert_eq!(CounterName::new(""), Err(NameError::Empty));
        assert_eq!(CounterName::new(&"a".repeat(65)), Err(NameError::TooLong));
        assert_eq!(CounterName::new("a b"), Err(NameError::BadByte(b' ')));
        assert_eq!(CounterName::new("a/b"), Err(NameError::BadByte(b'/')));
        assert_eq!(CounterName::new("é"), Err(NameError::BadByte(0xc3)));
        assert_eq!(NameError::Empty.name(), "bad_name");
    }
}
