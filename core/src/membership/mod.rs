//! SWIM membership (`docs/EXTENSIONS.md` §7) on the maintained `foca` crate.
//!
//! [`Membership`] is sans-IO like the rest of the core: it never reads a clock, a socket or a
//! thread. The caller hands it received datagrams and the current [`Instant`], asks it when
//! it next wants to be woken ([`Membership::poll_timeout`]), and drains what it wants sent
//! ([`Membership::poll_transmit`]) and what it learned ([`Membership::poll_event`]). Its
//! datagrams share the gossip port's UDP socket with the gossip datagrams of §5: a
//! membership datagram starts with a zero byte, which no gossip datagram does (its first byte
//! is the length of the sender's address).
//!
//! foca keeps its members in `alloc` collections, so this module needs the `membership`
//! feature (an allocator); the core's default build stays allocator-free. The
//! [`crate::replica::Replica`] runs one when asked ([`crate::replica::Replica::enable_membership`]).

mod member;
mod wire;

pub use member::Member;
pub use wire::{MembershipError, MAGIC, OVERHEAD};

use crate::auth::ClusterKey;
use crate::id::NodeId;
use crate::time::{Duration, Instant};
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::num::{NonZeroU8, NonZeroUsize};
use foca::{AccumulatingRuntime, Foca, NoCustomBroadcast, OwnedNotification, PostcardCodec, Timer};
use foca_rand::rngs::SmallRng;
use foca_rand::SeedableRng;

/// The foca configuration Tally uses: foca's own types, re-exported for tuning (the simulator).
pub use foca::Config as SwimConfig;

/// What membership learned about a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberEvent<const L: usize> {
    /// The member at this gossip address is alive (joined, or came back in a new generation).
    Up(NodeId<L>),
    /// The cluster declared the member at this gossip address down.
    Down(NodeId<L>),
}

/// A member as this node sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberView<const L: usize> {
    /// Its gossip address.
    pub addr: NodeId<L>,
    /// Its generation (bumped each time it rejoined after being declared down).
    pub generation: u16,
    /// `alive`, `suspect` or `down`.
    pub state: &'static str,
}

/// Counts of membership datagrams.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MembershipStats {
    /// Membership datagrams taken in.
    pub received: u64,
    /// Membership datagrams rejected (bad marker, tag, encoding or foca's refusal).
    pub rejected: u64,
    /// Membership datagrams handed out to send.
    pub sent: u64,
    /// Members declared down (each `Down` event).
    pub downs: u64,
}

/// The defaults for a LAN (and the simulator's benchmark): probe one member every second,
/// 500 ms for its direct answer, then 8 members asked to probe it indirectly; a suspect is
/// declared down after 7 s unless it refutes; each update is piggybacked 15 times by each node,
/// and pending updates are gossiped every 250 ms to 3 members; an announce every 30 s to one
/// member (heals a split) and every 60 s to 2 down members. `max_packet` is the largest foca
/// packet (the datagram limit minus [`OVERHEAD`]).
///
/// Tuned on `tally swim-sim` (100 nodes, 30 % loss, 10 minutes, README "Membership"): with 3
/// indirect probes or 10 transmissions a refutation sometimes misses one node before its
/// suspicion timer ends, and in SWIM one node's `Down` is final for everybody.
pub fn lan_config(max_packet: usize) -> SwimConfig {
    let mut c = SwimConfig::simple();
    c.probe_period = core::time::Duration::from_secs(1);
    c.probe_rtt = core::time::Duration::from_millis(500);
    c.num_indirect_probes = NonZeroUsize::new(8).unwrap_or(NonZeroUsize::MIN);
    c.max_transmissions = NonZeroU8::new(15).unwrap_or(NonZeroU8::MIN);
    c.suspect_to_down_after = core::time::Duration::from_secs(7);
    c.remove_down_after = Some(core::time::Duration::from_secs(15 * 60));
    c.max_packet_size = NonZeroUsize::new(max_packet).unwrap_or(NonZeroUsize::MIN);
    c.notify_down_members = true;
    c.periodic_announce = Some(foca::PeriodicParams {
        frequency: core::time::Duration::from_secs(30),
        num_members: NonZeroUsize::MIN,
    });
    c.periodic_announce_to_down_members = Some(foca::PeriodicParams {
        frequency: core::time::Duration::from_secs(60),
        num_members: NonZeroUsize::new(2).unwrap_or(NonZeroUsize::MIN),
    });
    c.periodic_gossip = Some(foca::PeriodicParams {
        frequency: core::time::Duration::from_millis(250),
        num_members: NonZeroUsize::new(3).unwrap_or(NonZeroUsize::MIN),
    });
    c
}

type Swim<const L: usize> = Foca<Member<L>, PostcardCodec, SmallRng, NoCustomBroadcast>;

/// One node's SWIM membership: foca, its timers on the caller's clock, and its datagrams.
pub struct Membership<const L: usize> {
    foca: Swim<L>,
    runtime: AccumulatingRuntime<Member<L>>,
    /// Pending foca timers: (due, order of submission, timer), kept sorted by due time.
    timers: Vec<(Instant, u64, Timer<Member<L>>)>,
    submitted: u64,
    key: Option<ClusterKey>,
    out: VecDeque<(NodeId<L>, Vec<u8>)>,
    events: VecDeque<MemberEvent<L>>,
    stats: MembershipStats,
    max_datagram: usize,
}

impl<const L: usize> Membership<L> {
    /// Membership for the node at gossip address `addr`, with `config`, datagrams of at most
    /// `max_datagram` bytes, randomness from `seed`, and the cluster key if there is one (then
    /// every membership datagram is authenticated, as frames are).
    pub fn new(
        addr: NodeId<L>,
        config: SwimConfig,
        max_datagram: usize,
        seed: u64,
        key: Option<ClusterKey>,
    ) -> Self {
        let rng = SmallRng::seed_from_u64(seed);
        Self {
            foca: Foca::new(Member::new(addr, 0), config, rng, PostcardCodec),
            runtime: AccumulatingRuntime::new(),
            timers: Vec::new(),
            submitted: 0,
            key,
            out: VecDeque::new(),
            events: VecDeque::new(),
            stats: MembershipStats::default(),
            max_datagram,
        }
    }

    /// Asks the node at `addr` to let us join (foca's announce). Harmless to repeat.
    pub fn announce(&mut self, now: Instant, addr: NodeId<L>) {
        if addr == *self.foca.identity().addr() {
            return;
        }
        // The generation is unknown: an announce is accepted by any generation at `addr`.
        let _ = self.foca.announce(Member::new(addr, 0), &mut self.runtime);
        self.drain(now);
    }

    /// Takes one membership datagram (its first byte is zero; `docs/EXTENSIONS.md` §7.2).
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        datagram: &[u8],
    ) -> Result<(), MembershipError> {
        self.stats.received += 1;
        let r = wire::open(datagram, self.key.as_ref(), self.max_datagram).and_then(|packet| {
            self.foca
                .handle_data(packet, &mut self.runtime)
                .map_err(|e| MembershipError::Refused(refusal(&e)))
        });
        if r.is_err() {
            self.stats.rejected += 1;
        }
        self.drain(now);
        r
    }

    /// When [`Membership::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|t| t.0)
    }

    /// Runs every foca timer due at `now`, in the order foca wants them.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due = self.timers.partition_point(|t| t.0 <= now);
        let mut ready: Vec<_> = self.timers.drain(..due).map(|t| t.2).collect();
        // foca's order of events that are late together (see `foca::Timer`'s `Ord`).
        ready.sort();
        for timer in ready {
            let _ = self.foca.handle_timer(timer, &mut self.runtime);
        }
        self.drain(now);
    }

    /// The next membership datagram: its destination, and its bytes written into `buf`.
    /// `None` when nothing is waiting, or `buf` is too small for the next one (it is dropped:
    /// SWIM repairs losses).
    pub fn poll_transmit(&mut self, buf: &mut [u8]) -> Option<(NodeId<L>, usize)> {
        let (to, bytes) = self.out.pop_front()?;
        let dst = buf.get_mut(..bytes.len())?;
        dst.copy_from_slice(&bytes);
        self.stats.sent += 1;
        Some((to, bytes.len()))
    }

    /// The next thing membership learned.
    pub fn poll_event(&mut self) -> Option<MemberEvent<L>> {
        self.events.pop_front()
    }

    /// Every member this node knows of, down ones included (until foca forgets them).
    pub fn members(&self) -> impl Iterator<Item = MemberView<L>> + '_ {
        self.foca.iter_membership_state().map(|m| MemberView {
            addr: *m.id().addr(),
            generation: m.id().generation(),
            state: match m.state() {
                foca::State::Alive => "alive",
                foca::State::Suspect => "suspect",
                foca::State::Down => "down",
            },
        })
    }

    /// Members currently alive or suspect.
    pub fn live_members(&self) -> usize {
        self.foca.num_members()
    }

    /// Whether `addr` is a member this node knows (alive, suspect or down).
    pub fn knows(&self, addr: &NodeId<L>) -> bool {
        self.foca
            .iter_membership_state()
            .any(|m| m.id().addr() == addr)
    }

    /// This node's own member (its generation rises when it rejoins after being declared down).
    pub fn identity(&self) -> &Member<L> {
        self.foca.identity()
    }

    /// Datagram counts.
    pub fn stats(&self) -> &MembershipStats {
        &self.stats
    }

    /// Leaves the cluster: tells some members we are going, so they need not detect it.
    pub fn leave(&mut self, now: Instant) {
        let _ = self.foca.leave_cluster(&mut self.runtime);
        self.drain(now);
    }

    /// Moves what foca's runtime accumulated into our queues.
    fn drain(&mut self, now: Instant) {
        while let Some((to, packet)) = self.runtime.to_send() {
            if let Some(bytes) = wire::seal(&packet, self.key.as_ref()) {
                self.out.push_back((*to.addr(), bytes));
            }
        }
        while let Some((after, timer)) = self.runtime.to_schedule() {
            let ms = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
            let due = now + Duration::from_millis(ms);
            let seq = self.submitted;
            self.submitted += 1;
            let at = self.timers.partition_point(|t| (t.0, t.1) <= (due, seq));
            self.timers.insert(at, (due, seq, timer));
        }
        while let Some(n) = self.runtime.to_notify() {
            match n {
                OwnedNotification::MemberUp(m) => self.events.push_back(MemberEvent::Up(*m.addr())),
                OwnedNotification::MemberDown(m) => {
                    self.stats.downs += 1;
                    self.events.push_back(MemberEvent::Down(*m.addr()));
                }
                _ => {}
            }
        }
    }
}

/// A stable name for what foca refused.
fn refusal(e: &foca::Error) -> &'static str {
    match e {
        foca::Error::DataTooBig => "too_big",
        foca::Error::DataFromOurselves => "from_ourselves",
        foca::Error::MalformedPacket => "malformed",
        foca::Error::Decode(_) => "decode",
        _ => "refused",
    }
}

#[cfg(test)]
mod tests;
