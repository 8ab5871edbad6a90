//! mDNS/DNS-SD for boards (RFC 6762, RFC 6763): the few messages a Tally node needs to find
//! and be found as an instance of `_tally._tcp.local.` — a PTR query, the announcement (PTR,
//! SRV, TXT `id` and `addr`, A; with TTL 0 it is the goodbye), and reading peers' answers.
//!
//! Sans-IO, `no_std`, no allocation: the caller owns the UDP socket on port [`PORT`] in group
//! [`GROUP`] and the timers; these functions only write and read bytes. Hosts use the
//! `mdns-sd` crate instead; both speak the same records (`docs/EXTENSIONS.md` §9). Why not
//! `edge-mdns` on boards: its responder and querier alone cost 12.2 KB of flash on the Pico W
//! (measured), which has 7.8 KB left within its budget; this module costs a fraction of it.
//!
//! Every length and pointer in a message read here is checked against the message: a name is
//! at most [`NAME_MAX`] bytes, a compression pointer must point backwards, and a message that
//! is cut short or malformed is an [`MdnsError`], never a panic.

mod read;
#[cfg(test)]
mod tests;
mod write;

pub use read::{asks_for, for_each_peer, Found};
pub use write::{write_announcement, write_query, Instance};

use core::fmt;

/// The mDNS multicast group (IPv4).
pub const GROUP: [u8; 4] = [224, 0, 0, 251];
/// The mDNS port.
pub const PORT: u16 = 5353;
/// The service type, without its trailing dot.
pub const SERVICE: &str = "_tally._tcp.local";
/// The longest name read or written (RFC 1035 §2.3.4: 255 bytes on the wire; in dotted form
/// that is at most 253 characters).
pub const NAME_MAX: usize = 255;
/// The longest DNS label.
pub const LABEL_MAX: usize = 63;
/// Record TTL of announcements (RFC 6762 §10 recommends 120 s for records with host names).
pub const TTL: u32 = 120;

/// The DNS-SD instance label of a node id: ASCII letters, digits and `-` (other bytes become
/// `-`), at most 63; `tally` for an empty id. Hosts and boards name their instances alike.
pub fn instance_label(id: &str) -> heapless::String<LABEL_MAX> {
    let mut label = heapless::String::new();
    for c in id.chars().take(LABEL_MAX) {
        let c = if c.is_ascii_alphanumeric() { c } else { '-' };
        // At most LABEL_MAX chars of one byte each: it fits.
        let _ = label.push(c);
    }
    if label.is_empty() {
        let _ = label.push_str("tally");
    }
    label
}

/// Why an mDNS message could not be read (or written).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum MdnsError {
    /// The message ends inside a field.
    Truncated,
    /// A name is longer than [`NAME_MAX`], has a label over [`LABEL_MAX`] or a reserved label
    /// type, or a compression pointer that does not point backwards.
    BadName,
    /// The output buffer is too small, or a field to write is too long.
    TooLong,
}

impl fmt::Display for MdnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MdnsError::Truncated => "mDNS message truncated",
            MdnsError::BadName => "malformed name in mDNS message",
            MdnsError::TooLong => "mDNS message does not fit",
        })
    }
}

impl core::error::Error for MdnsError {}

/// Record types used here.
pub(crate) mod rtype {
    pub const A: u16 = 1;
    pub const PTR: u16 = 12;
    pub const TXT: u16 = 16;
    pub const SRV: u16 = 33;
    pub const ANY: u16 = 255;
}

/// Class IN, and the cache-flush / unicast-response bit of mDNS (RFC 6762 §10.2, §5.4).
pub(crate) const CLASS_IN: u16 = 1;
pub(crate) const CLASS_FLUSH: u16 = 0x8000;
