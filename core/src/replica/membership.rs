//! SWIM membership beside the gossip engine (`docs/EXTENSIONS.md` §7; feature `membership`).
//!
//! The replica owns the [`Membership`] and joins it to the engine, so adapters only move
//! datagrams: a datagram whose first byte is zero goes to membership, its datagrams come out
//! of [`Replica::poll_transmit`] (marked as datagrams), its timers are in
//! [`Replica::poll_timeout`]. What membership learns changes the peer table:
//! - a member that is up becomes a gossip peer (source `swim`) if it was not one;
//! - a member declared down is marked down in the peer table (no rounds go to it; it is still
//!   probed, and its first answer brings it back, as for any down peer).
//!
//! Membership learns of peers the way gossip does: every [`ANNOUNCE_EVERY`] it announces
//! itself to each live gossip peer that announced [`Caps::MEMBERSHIP`] and that it does not
//! yet count as a member — static peers, discovered ones, DNS seeds and mDNS finds alike.

use super::{Event, Replica};
use crate::counter::Entry;
use crate::engine::Transmit;
use crate::error::WireError;
use crate::ext::Caps;
use crate::id::NodeId;
use crate::membership::{MemberEvent, Membership, MembershipError, SwimConfig};
use crate::message::MessageType;
use crate::named::MapStores;
use crate::peers::{Peer, PeerSource, PeerState};
use crate::slots::Slots;
use crate::time::{Duration, Instant};
use alloc::vec::Vec;

/// How often membership announces itself to gossip peers it has not met as members.
pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(5);

/// The replica's membership and what it needs to rebuild it on a new address.
pub(super) struct Swim<const L: usize> {
    pub(super) membership: Membership<L>,
    config: SwimConfig,
    seed: u64,
    next_announce: Instant,
}

/// Why membership could not be enabled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MembershipUnavailable {
    /// The replica has no address yet ([`Replica::set_address`]).
    NoAddress,
    /// No datagram socket ([`Replica::set_max_datagram`] with 0): SWIM rides on datagrams.
    NoDatagrams,
}

impl core::fmt::Display for MembershipUnavailable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            MembershipUnavailable::NoAddress => "membership needs the node's address",
            MembershipUnavailable::NoDatagrams => "membership needs a datagram socket",
        })
    }
}

fn wire_error(e: MembershipError) -> WireError {
    match e {
        MembershipError::TooLarge => WireError::FrameTooLarge,
        MembershipError::NotMembership => WireError::BadHeader,
        MembershipError::UnknownFlags => WireError::UnknownFlags,
        MembershipError::Unauthenticated => WireError::Unauthenticated,
        MembershipError::UnexpectedAuth => WireError::UnexpectedAuth,
        MembershipError::Refused(_) => WireError::Malformed,
    }
}

impl<const L: usize, S: Slots<Entry<L>>, P: Slots<Peer<L>>, M: MapStores<L>> Replica<L, S, P, M> {
    /// Runs SWIM membership with `config` (see [`crate::membership::lan_config`]), its
    /// randomness from `seed`. Needs the address and the datagram socket; the cluster key, if
    /// any, authenticates its datagrams too.
    pub fn enable_membership(
        &mut self,
        config: SwimConfig,
        seed: u64,
        now: Instant,
    ) -> Result<(), MembershipUnavailable> {
        let addr = self.address.ok_or(MembershipUnavailable::NoAddress)?;
        let max = usize::from(self.engine.config().max_datagram);
        if max == 0 {
            return Err(MembershipUnavailable::NoDatagrams);
        }
        let key = self.engine.config().cluster_key;
        self.swim = Some(alloc::boxed::Box::new(Swim {
            membership: Membership::new(addr, config.clone(), max, seed, key),
            config,
            seed,
            next_announce: now,
        }));
        self.engine.set_membership(true);
        Ok(())
    }

    /// The membership, when enabled.
    pub fn membership(&self) -> Option<&Membership<L>> {
        self.swim.as_ref().map(|s| &s.membership)
    }

    /// After a new address: membership starts again under it (the old one is gone for peers)
    /// and announces at the next timeout.
    pub(super) fn readdress_membership(&mut self) {
        let (Some(addr), Some(swim)) = (self.address, self.swim.as_mut()) else {
            return;
        };
        if *swim.membership.identity().addr() == addr {
            return;
        }
        let max = usize::from(self.engine.config().max_datagram);
        let key = self.engine.config().cluster_key;
        swim.membership = Membership::new(addr, swim.config.clone(), max, swim.seed, key);
        swim.next_announce = Instant::ZERO;
    }

    /// A membership datagram (first byte zero) when membership runs: `None` when it is not
    /// one, so the caller handles it as a gossip datagram.
    pub(super) fn take_membership(
        &mut self,
        now: Instant,
        payload: &[u8],
    ) -> Option<Result<(), WireError>> {
        if payload.first() != Some(&0) {
            return None;
        }
        let swim = self.swim.as_mut()?;
        let r = swim
            .membership
            .handle_datagram(now, payload)
            .map_err(wire_error);
        if let Err(e) = r {
            self.engine.record_reject(e);
        }
        self.apply_member_events(now);
        Some(r)
    }

    /// When membership next wants [`Replica::handle_timeout`].
    pub(super) fn membership_timeout(&self) -> Option<Instant> {
        let swim = self.swim.as_ref()?;
        let t = swim.membership.poll_timeout();
        Some(t.map_or(swim.next_announce, |t| t.min(swim.next_announce)))
    }

    /// Runs membership's due timers and announces, and applies what it learned.
    pub(super) fn run_membership(&mut self, now: Instant) {
        let Some(swim) = self.swim.as_mut() else {
            return;
        };
        if swim.membership.poll_timeout().is_some_and(|t| t <= now) {
            swim.membership.handle_timeout(now);
        }
        if now >= swim.next_announce {
            swim.next_announce = now + ANNOUNCE_EVERY;
            let strangers: Vec<NodeId<L>> = self
                .engine
                .peers()
                .iter()
                .filter(|p| p.state() == PeerState::Alive && p.speaks(Caps::MEMBERSHIP))
                .map(|p| p.addr)
                .filter(|a| !swim.membership.knows(a))
                .collect();
            for addr in strangers {
                swim.membership.announce(now, addr);
            }
        }
        self.apply_member_events(now);
    }

    fn apply_member_events(&mut self, now: Instant) {
        while let Some(ev) = self.swim.as_mut().and_then(|s| s.membership.poll_event()) {
            match ev {
                MemberEvent::Up(addr) => {
                    let known = self.engine.peers().get(addr.as_str()).is_some();
                    if !known
                        && self
                            .add_peer(addr.as_str(), PeerSource::Swim, now)
                            .unwrap_or(false)
                    {
                        self.events.push(Event::PeerUp(addr));
                    }
                }
                MemberEvent::Down(addr) => {
                    if self.engine.mark_down(addr.as_str(), now) {
                        self.events.push(Event::PeerDown(addr));
                    }
                }
            }
        }
    }

    /// The next membership datagram, as a transmit.
    pub(super) fn membership_transmit(&mut self, buf: &mut [u8]) -> Option<Transmit<L>> {
        let (to, len) = self.swim.as_mut()?.membership.poll_transmit(buf)?;
        Some(Transmit {
            to,
            len,
            message: MessageType::DigestAck,
            compressed: false,
            datagram: true,
            membership: true,
        })
    }
}
