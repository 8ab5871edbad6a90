//! A stand-in for the Go reference node, for tests: an in-process TCP gossip peer that follows
//! the wire spec (transport header, frame flags, msgpack message, XXH64 digest, gossip rounds).
//!
//! It is written independently of `tally-core`'s codec on purpose — its encoder, decoder and
//! digest are hand-rolled from the spec — so that it can catch Tally bugs rather than share them.
//! Every incoming connection is recorded ([`Received`]) and can be checked against the reference
//! encoder with [`is_reference_frame`].
//!
//! Threads and std TCP only; it binds `127.0.0.1:0` and nothing else.
//!
//! - [`codec`]: the reference encoder and decoder, the frame and the digest;
//! - [`check`]: what arrived ([`Received`]) and whether it is a reference frame;
//! - [`peer`]: the node itself ([`ReferencePeer`]): listener, rounds, merge.

pub mod check;
pub mod codec;
pub mod peer;

pub use check::{is_reference_frame, to_hex, Received};
pub use codec::{
    decode_frame, decode_message, digest, digest_document, encode_frame, encode_message,
    frame_body, frame_msgpack, split_header, wire_buffer, Kind, Message,
};
pub use peer::{ReferenceConfig, ReferencePeer};

/// The reference receiver reads once, into a buffer of this size; whatever is cut fails.
pub const READ_LIMIT: usize = 16 * 1024;
/// The reference compresses messages longer than this (and keeps it only when smaller).
pub const COMPRESS_ABOVE: usize = 1024;
/// Frame flag: plain msgpack follows.
pub const FLAG_PLAIN: u8 = 0x00;
/// Frame flag: a zstd frame holding the msgpack message follows.
pub const FLAG_ZSTD: u8 = 0x80;
/// zstd level the stand-in compresses with.
pub(crate) const ZSTD_LEVEL: i32 = 3;
/// Largest decompressed message the stand-in accepts (a guard for tests, not part of the spec).
pub(crate) const MAX_DECOMPRESSED: usize = 1 << 20;
/// Deepest nesting of an unknown value the decoder skips.
pub(crate) const MAX_DEPTH: usize = 64;
