//! [`WireError`]: every reason the core rejects bytes from outside, one variant each.
//!
//! One flat, `Copy` enum so that the engine can count rejects by reason (`WireError::index`,
//! `WireError::ALL`) and adapters can log a stable name (`WireError::name`).

use core::fmt;

macro_rules! wire_errors {
    ($( $(#[$doc:meta])* $variant:ident => $name:literal, $text:literal; )*) => {
        /// Why bytes from the network were rejected. Rejected input changes nothing.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        #[non_exhaustive]
        pub enum WireError {
            $( $(#[$doc])* $variant, )*
        }

        impl WireError {
            /// Every variant, in `index` order.
            pub const ALL: &'static [WireError] = &[$(WireError::$variant,)*];
            /// Number of variants.
            pub const COUNT: usize = Self::ALL.len();

            /// A stable snake_case name, for logs and metric labels.
            pub const fn name(self) -> &'static str {
                match self { $(WireError::$variant => $name,)* }
            }

            fn text(self) -> &'static str {
                match self { $(WireError::$variant => $text,)* }
            }
        }
    };
}

wire_errors! {
    /// No bytes at all.
    Empty => "empty", "empty input";
    /// The §2 header is malformed: zero address length, truncated, or not `host:port` text.
    BadHeader => "bad_header", "malformed sender header";
    /// The frame is larger than the receiver's frame limit.
    FrameTooLarge => "frame_too_large", "frame exceeds the size limit";
    /// The sender did not finish its frame before the read deadline.
    TooSlow => "too_slow", "frame not complete before the read deadline";
    /// The flag byte has bits this receiver does not know.
    UnknownFlags => "unknown_flags", "unknown flag bits";
    /// A zstd frame arrived but this build cannot decompress.
    CompressionUnsupported => "compression_unsupported", "zstd frames are not supported by this build";
    /// The zstd frame is corrupt or uses features the protocol does not (dictionaries, skippable frames).
    ZstdMalformed => "zstd_malformed", "corrupt zstd frame";
    /// The zstd frame's window is larger than the limit.
    ZstdWindowTooLarge => "zstd_window_too_large", "zstd window exceeds the limit";
    /// The zstd content (declared or actual) is larger than the decompressed-size limit.
    ZstdContentTooLarge => "zstd_content_too_large", "decompressed size exceeds the limit";
    /// The zstd content checksum does not match.
    ZstdChecksum => "zstd_checksum", "zstd content checksum mismatch";
    /// An authenticated frame without a valid tag, or a plain frame where a tag is required.
    Unauthenticated => "unauthenticated", "missing or invalid authentication tag";
    /// An authenticated frame reached a node that has no cluster key.
    UnexpectedAuth => "unexpected_auth", "authenticated frame but no cluster key is configured";
    /// The message ends in the middle of a value.
    Truncated => "truncated", "message truncated";
    /// Bytes that are not valid MessagePack.
    Malformed => "malformed", "malformed msgpack";
    /// Bytes after the end of the message.
    TrailingBytes => "trailing_bytes", "trailing bytes after the message";
    /// The message is not a map.
    NotAMap => "not_a_map", "message is not a map";
    /// A field has the wrong type (e.g. `id` not a string, `inc` not a map or nil).
    WrongType => "wrong_type", "field has the wrong type";
    /// A top-level key appears twice.
    DuplicateKey => "duplicate_key", "duplicate key";
    /// No `t` field.
    MissingType => "missing_type", "missing message type";
    /// `t` is not 1, 2 or 3.
    UnknownType => "unknown_type", "unknown message type";
    /// No `id` field.
    MissingId => "missing_id", "missing sender id";
    /// `id` is the empty string.
    EmptyId => "empty_id", "empty sender id";
    /// An id (sender or entry) is longer than the receiver's limit.
    IdTooLong => "id_too_long", "id exceeds the length limit";
    /// A string is not UTF-8.
    InvalidUtf8 => "invalid_utf8", "string is not UTF-8";
    /// A count is a negative integer.
    NegativeValue => "negative_value", "negative count";
    /// A count is not an integer.
    NotAnInteger => "not_an_integer", "count is not an integer";
    /// A map has more entries than the receiver can hold.
    TooManyEntries => "too_many_entries", "more entries than the receiver's capacity";
    /// A Push whose `inc` and `dec` are both empty.
    EmptyPush => "empty_push", "push with no entries";
    /// The merged state would need more entries than the counter can hold.
    CapacityExceeded => "capacity_exceeded", "counter capacity exceeded";
    /// An entry value would need more than 64 bits… never produced by merge (max), kept for
    /// completeness of the reject table.
    Overflow => "overflow", "arithmetic overflow";
    /// A named-counter extension message (`docs/EXTENSIONS.md` §6) names a counter that is
    /// not 1–64 bytes of `[A-Za-z0-9._-]`, or lists names or ids out of order.
    BadName => "bad_name", "invalid or unsorted counter name";
}

impl WireError {
    /// Position of this variant in [`WireError::ALL`].
    pub fn index(self) -> usize {
        Self::ALL.iter().position(|&e| e == self).unwrap_or(0)
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

impl core::error::Error for WireError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_distinct_and_indexed() {
        for (i, e) in WireError::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
            for other in &WireError::ALL[i + 1..] {
                assert_ne!(e.name(), other.name());
            }
        }
    }
}
