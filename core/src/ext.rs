//! Tally's protocol extensions: the capability handshake (`docs/EXTENSIONS.md` §2).
//!
//! A Tally node never sends an extension to a peer it does not know speaks it. It learns that
//! by a *hello*: a DigestAck — a frame every reference node accepts and ignores (spec §6,
//! "nothing, the peer is alive") — whose digest is not a state digest but carries a 40-bit
//! magic, the extension version and the sender's capability bits:
//!
//! | bits of `dig` | meaning |
//! |---|---|
//! | 63..24 | magic `0x54_61_6C_6C_79` (`"Tally"`) |
//! | 23..16 | extension version (1) |
//! | 15 | reply: this hello answers one (a reply is never answered) |
//! | 14..0 | capability bits ([`Caps`]) |
//!
//! A hello is byte for byte a reference DigestAck, so a reference peer that receives one does
//! what it does with any DigestAck. A state digest has the magic by chance with probability
//! 2^-40; even then, a DigestAck that echoes a digest we sent is read as an echo first.

/// The magic in the top 40 bits of a hello's digest.
pub const HELLO_MAGIC: u64 = 0x54_61_6C_6C_79;

/// The extension version this build speaks.
pub const EXTENSION_VERSION: u8 = 1;

const REPLY: u64 = 1 << 15;
const CAPS_MASK: u64 = REPLY - 1;

/// Capability bits a node announces in its hello.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Caps(pub u16);

impl Caps {
    /// No capability: the reference protocol only.
    pub const NONE: Caps = Caps(0);
    /// Quiet liveness (`EXTENSIONS.md` §3): this node does not need a frame every few seconds
    /// to keep its peers alive; it marks a peer down only on failed sends or unanswered pulls.
    pub const QUIET: Caps = Caps(1);
    /// Datagrams (`EXTENSIONS.md` §5): this node reads frames sent as single UDP datagrams to
    /// its gossip port (same address and port number as its TCP listener).
    pub const DATAGRAM: Caps = Caps(2);
    /// Named counters (`EXTENSIONS.md` §6): this node reads named-counter Pushes, and its
    /// state digest towards a peer that also announces it covers the named counters too.
    pub const NAMED: Caps = Caps(4);
    /// SWIM membership (`EXTENSIONS.md` §7): this node takes membership datagrams on its
    /// gossip port and may be announced to.
    pub const MEMBERSHIP: Caps = Caps(8);

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: Caps) -> bool {
        self.0 & other.0 == other.0
    }

    /// The bits of both.
    pub const fn with(self, other: Caps) -> Caps {
        Caps(self.0 | other.0)
    }
}

/// A decoded hello.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Hello {
    /// The sender's extension version.
    pub version: u8,
    /// Whether it answers a hello of ours.
    pub reply: bool,
    /// The sender's capabilities.
    pub caps: Caps,
}

impl Hello {
    /// The digest value that carries this hello.
    pub const fn to_digest(self) -> u64 {
        let reply = if self.reply { REPLY } else { 0 };
        (HELLO_MAGIC << 24)
            | ((self.version as u64) << 16)
            | reply
            | (self.caps.0 as u64 & CAPS_MASK)
    }

    /// The hello a DigestAck digest carries, if it is one.
    pub const fn from_digest(digest: u64) -> Option<Hello> {
        if digest >> 24 != HELLO_MAGIC {
            return None;
        }
        Some(Hello {
            version: (digest >> 16) as u8,
            reply: digest & REPLY != 0,
            caps: Caps((digest & CAPS_MASK) as u16),
        })
    }

    /// The hello of this build's extension version announcing `caps`.
    pub const fn ours(reply: bool, caps: Caps) -> Hello {
        Hello {
            version: EXTENSION_VERSION,
            reply,
            caps,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_vectors() {
        assert_eq!(
            Hello::ours(false, Caps::QUIET).to_digest(),
            0x5461_6c6c_7901_0001
        );
        assert_eq!(
            Hello::ours(true, Caps::QUIET.with(Caps::DATAGRAM)).to_digest(),
            0x5461_6c6c_7901_8003
        );
        let h = Hello::from_digest(0x5461_6c6c_7902_8005).unwrap();
        assert_eq!((h.version, h.reply, h.caps), (2, true, Caps(5)));
        assert_eq!(Hello::from_digest(0x8cf9_63b0_efdc_56a4), None);
        assert_eq!(Hello::from_digest(0x5461_6c6c_7801_0001), None);
    }
}
