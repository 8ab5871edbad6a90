//! The membership datagram (`docs/EXTENSIONS.md` §7.2):
//!
//! ```text
//! 0x00 | flags | 'S' 'W' | foca packet (postcard) | tag (16 bytes, when flags has FLAG_AUTH)
//! ```
//!
//! The zero byte tells it from a gossip datagram (whose first byte is a non-zero address
//! length). With a cluster key the flags byte carries `FLAG_AUTH` and the tag is the frame tag
//! of spec §8 over everything after the zero byte: a node with a key takes no unauthenticated
//! membership datagram, one without a key takes no authenticated one (as for frames).

use crate::auth::{ClusterKey, TAG_LEN};
use crate::frame::FLAG_AUTH;
use alloc::vec::Vec;
use core::fmt;

/// The two bytes after the flags.
pub const MAGIC: [u8; 2] = *b"SW";

/// Bytes a membership datagram adds around foca's packet, tag included.
pub const OVERHEAD: usize = 4 + TAG_LEN;

/// Why a membership datagram was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MembershipError {
    /// Longer than the datagram limit.
    TooLarge,
    /// Not a membership datagram (no zero byte, no magic, or cut short).
    NotMembership,
    /// Flags this node does not know.
    UnknownFlags,
    /// Unauthenticated with a key set, or a bad tag.
    Unauthenticated,
    /// Authenticated, but this node has no key.
    UnexpectedAuth,
    /// foca refused the packet (its reason).
    Refused(&'static str),
}

impl MembershipError {
    /// A stable lowercase name (metrics, logs).
    pub const fn name(self) -> &'static str {
        match self {
            MembershipError::TooLarge => "too_large",
            MembershipError::NotMembership => "not_membership",
            MembershipError::UnknownFlags => "unknown_flags",
            MembershipError::Unauthenticated => "unauthenticated",
            MembershipError::UnexpectedAuth => "unexpected_auth",
            MembershipError::Refused(why) => why,
        }
    }
}

impl fmt::Display for MembershipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "membership datagram refused: {}", self.name())
    }
}

impl core::error::Error for MembershipError {}

/// Wraps foca's `packet`; `None` only if sealing failed (it cannot with room reserved).
pub(super) fn seal(packet: &[u8], key: Option<&ClusterKey>) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(packet.len() + OVERHEAD);
    out.push(0);
    out.push(0);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(packet);
    if let Some(key) = key {
        let len = out.len() - 1;
        out.resize(out.len() + TAG_LEN, 0);
        key.seal(out.get_mut(1..)?, len)?;
    }
    Some(out)
}

/// Checks a datagram and returns foca's packet in it.
pub(super) fn open<'a>(
    datagram: &'a [u8],
    key: Option<&ClusterKey>,
    max: usize,
) -> Result<&'a [u8], MembershipError> {
    if datagram.len() > max {
        return Err(MembershipError::TooLarge);
    }
    let rest = match datagram.split_first() {
        Some((0, rest)) => rest,
        _ => return Err(MembershipError::NotMembership),
    };
    let &flags = rest.first().ok_or(MembershipError::NotMembership)?;
    if flags & !FLAG_AUTH != 0 {
        return Err(MembershipError::UnknownFlags);
    }
    let body = match key {
        Some(key) => key
            .open(rest)
            .map_err(|_| MembershipError::Unauthenticated)?,
        None if flags & FLAG_AUTH != 0 => return Err(MembershipError::UnexpectedAuth),
        None => rest,
    };
    match body.get(1..) {
        Some([m0, m1, packet @ ..]) if [*m0, *m1] == MAGIC => Ok(packet),
        _ => Err(MembershipError::NotMembership),
    }
}
