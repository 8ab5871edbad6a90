//! [`Member`]: how a node is known to SWIM — its gossip address and a generation that a node
//! bumps when the cluster declared it down and it comes back (foca's `Identity::renew`).

use crate::frame::is_gossip_address;
use crate::id::NodeId;
use core::fmt;

/// A cluster member: its gossip address (`ip:port`) and its generation.
///
/// Two members with one address are the same node; the higher generation wins the address
/// (a node that was declared down rejoins as generation + 1, and its peers drop the old one).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Member<const L: usize> {
    addr: NodeId<L>,
    generation: u16,
}

impl<const L: usize> Member<L> {
    /// The member at `addr` in generation `generation`.
    pub const fn new(addr: NodeId<L>, generation: u16) -> Self {
        Self { addr, generation }
    }

    /// Its gossip address.
    pub const fn addr(&self) -> &NodeId<L> {
        &self.addr
    }

    /// Its generation.
    pub const fn generation(&self) -> u16 {
        self.generation
    }
}

impl<const L: usize> fmt::Debug for Member<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr.as_str(), self.generation)
    }
}

impl<const L: usize> foca::Identity for Member<L> {
    type Addr = NodeId<L>;

    fn renew(&self) -> Option<Self> {
        self.generation.checked_add(1).map(|generation| Self {
            addr: self.addr,
            generation,
        })
    }

    fn addr(&self) -> NodeId<L> {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.generation > adversary.generation
    }
}

impl<const L: usize> serde::Serialize for Member<L> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut t = s.serialize_tuple(2)?;
        t.serialize_element(self.addr.as_str())?;
        t.serialize_element(&self.generation)?;
        t.end()
    }
}

/// Reads an address: a string of at most `L` bytes that is a gossip address (`ip:port`), so
/// a member never names anything a node could not send to.
struct Addr<const L: usize>(NodeId<L>);

impl<'de, const L: usize> serde::Deserialize<'de> for Addr<L> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<const L: usize>;
        impl<const L: usize> serde::de::Visitor<'_> for V<L> {
            type Value = Addr<L>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a gossip address of at most {L} bytes")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Addr<L>, E> {
                if !is_gossip_address(s) {
                    return Err(E::custom("not a gossip address"));
                }
                NodeId::new(s)
                    .map(Addr)
                    .map_err(|_| E::custom("address too long"))
            }
        }
        d.deserialize_str(V::<L>)
    }
}

impl<'de, const L: usize> serde::Deserialize<'de> for Member<L> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<const L: usize>;
        impl<'de, const L: usize> serde::de::Visitor<'de> for V<L> {
            type Value = Member<L>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member: (address, generation)")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Member<L>, A::Error> {
                use serde::de::Error;
                let Addr(addr) = seq
                    .next_element::<Addr<L>>()?
                    .ok_or_else(|| A::Error::invalid_length(0, &self))?;
                let generation = seq
                    .next_element::<u16>()?
                    .ok_or_else(|| A::Error::invalid_length(1, &self))?;
                Ok(Member { addr, generation })
            }
        }
        d.deserialize_tuple(2, V::<L>)
    }
}
