//! [`PeerTable`]: who this node gossips with, and whether they seem alive (spec §6).
//!
//! A peer is known by its gossip address. It comes from static configuration, from discovery,
//! or from the header of a valid frame it sent. Consecutive send failures (`max_fails`) or a
//! DigestPull left unanswered for `failure_timeout` make it *down*: it is no longer chosen for
//! gossip, only probed now and then; any valid frame from it, or a delivery to it, readmits it.
//! A non-static peer down for `prune_after` is removed.
//!
//! Silence alone never makes a peer down: an idle cluster sends little (its rounds back off),
//! so liveness is carried by the outcome of what we do send — a delivery, a failed connect, an
//! answered or unanswered DigestPull.

use crate::ext::Caps;
use crate::id::NodeId;
use crate::slots::{CapacityExceeded, Slots};
use crate::time::{Duration, Instant, Stamp};

/// Where a peer came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PeerSource {
    /// Configured by the operator: never pruned.
    Static,
    /// Learned from the discovery service.
    Discovered,
    /// Resolved from a DNS seed (`--peers-dns`): dropped when the name no longer resolves to it.
    Dns,
    /// Seen by mDNS/DNS-SD on the LAN (`--mdns`): dropped when its announcement goes.
    Mdns,
    /// Reported alive by SWIM membership (`docs/EXTENSIONS.md` §7).
    Swim,
    /// Sent us a valid frame.
    Sender,
}

/// A peer's health as the failure detector sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PeerState {
    /// Chosen for gossip.
    Alive,
    /// Too many consecutive failures or silent too long: only probed.
    Down,
}

impl PeerState {
    /// A stable lowercase name.
    pub const fn name(self) -> &'static str {
        match self {
            PeerState::Alive => "alive",
            PeerState::Down => "down",
        }
    }
}

/// One peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Peer<const L: usize> {
    /// Gossip address (`host:port`).
    pub addr: NodeId<L>,
    /// Where it came from (the strongest source seen: Static > Discovered > Sender).
    pub source: PeerSource,
    /// Consecutive send failures.
    pub fails: u8,
    /// Last valid frame received from it, if any.
    pub last_heard: Stamp,
    /// When it went down, if it is down.
    pub down_since: Stamp,
    /// Our counter version this peer is known to hold (0: unknown). See [`crate::Engine`].
    pub known: u32,
    /// When `known` was last confirmed.
    pub known_at: Instant,
    /// Digest and version of our state when we last sent it a DigestPull (version 0: none).
    pub pull_digest: u64,
    /// See `pull_digest`.
    pub pull_version: u32,
    /// When we last answered its DigestPull with a DigestPull of ours (rate limit).
    pub last_pull_reply: Stamp,
    /// A complete Push is on its way to it: our version it carries (0: none) …
    pub sent_version: u32,
    /// … relative to this knowledge (what it was known to hold when the Push was built).
    pub sent_base: u32,
    /// When we last pushed back after one of its Pushes (at most once per sync interval, so
    /// two nodes whose states exceed one frame cannot bounce partial Pushes forever).
    pub last_push_back: Stamp,
    /// Its capabilities, once a hello from it told us (`None`: a reference peer, or not yet
    /// known — it gets the reference protocol only).
    pub caps: Option<Caps>,
    /// When we last sent it our hello (none yet: one is due).
    pub hello_sent: Stamp,
    /// When we last sent it any frame.
    pub last_sent: Stamp,
    /// Since when a DigestPull of ours has waited for any frame from it (none: nothing asked).
    pub awaiting: Stamp,
    /// The DigestPull that `awaiting` waits on went as a datagram.
    pub pull_by_datagram: bool,
    /// Housekeeping ticks left during which frames to it go over TCP, after a datagram pull to
    /// it went unanswered (0: datagrams allowed).
    pub datagrams_off: u8,
    /// Replies sent to it in the current window (rate limit) …
    pub replies: u8,
    /// … which started then.
    pub replies_since: Instant,
}

impl<const L: usize> Peer<L> {
    /// Whether it announced every capability of `caps`.
    pub fn speaks(&self, caps: Caps) -> bool {
        self.caps.is_some_and(|c| c.contains(caps))
    }

    /// Our counter version it is known to hold, while that knowledge is younger than
    /// `fresh_for`; 0 (send everything) otherwise.
    pub fn known_version(&self, now: Instant, fresh_for: Duration) -> u32 {
        if self.known != 0 && now - self.known_at <= fresh_for {
            self.known
        } else {
            0
        }
    }

    /// Its current state.
    pub fn state(&self) -> PeerState {
        if self.down_since.get().is_some() {
            PeerState::Down
        } else {
            PeerState::Alive
        }
    }
}

/// Failure-detector settings (spec §6 defaults).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Detector {
    /// Consecutive send failures that make a peer down (default 5).
    pub max_fails: u8,
    /// How long a DigestPull may go unanswered before the peer is down (default 30 s).
    pub failure_timeout: Duration,
    /// How long a non-static peer stays down before it is removed (default 60 s).
    pub prune_after: Duration,
}

impl Default for Detector {
    fn default() -> Self {
        Self {
            max_fails: 5,
            failure_timeout: Duration::from_secs(30),
            prune_after: Duration::from_secs(60),
        }
    }
}

/// The peers of one node, in a [`Slots`] store.
#[derive(Clone, Debug, Default)]
pub struct PeerTable<const L: usize, P> {
    peers: P,
}

fn rank(s: PeerSource) -> u8 {
    match s {
        PeerSource::Static => 2,
        PeerSource::Discovered | PeerSource::Dns | PeerSource::Mdns | PeerSource::Swim => 1,
        PeerSource::Sender => 0,
    }
}

impl<const L: usize, P: Slots<Peer<L>>> PeerTable<L, P> {
    /// A table over `store` (emptied first).
    pub fn from_store(mut store: P) -> Self {
        store.truncate(0);
        Self { peers: store }
    }

    /// All peers.
    pub fn iter(&self) -> impl Iterator<Item = &Peer<L>> {
        self.peers.as_slice().iter()
    }

    /// Heap bytes held by the store (0 for fixed stores).
    pub fn heap_bytes(&self) -> usize {
        self.peers.heap_bytes()
    }

    /// Number of peers.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// Position of `addr` in the table (kept sorted by address), or where it would go.
    fn search(&self, addr: &str) -> Result<usize, usize> {
        self.peers
            .as_slice()
            .binary_search_by(|p| p.addr.as_bytes().cmp(addr.as_bytes()))
    }

    /// The table slot of the peer at `addr`.
    pub(crate) fn slot_of(&self, addr: &str) -> Option<usize> {
        self.search(addr).ok()
    }

    /// The peer at `addr`.
    pub fn get(&self, addr: &str) -> Option<&Peer<L>> {
        let i = self.search(addr).ok()?;
        self.peers.as_slice().get(i)
    }

    /// The peer at `addr`, mutably (the engine's knowledge bookkeeping).
    pub(crate) fn get_mut(&mut self, addr: &str) -> Option<&mut Peer<L>> {
        let i = self.search(addr).ok()?;
        self.peers.as_mut_slice().get_mut(i)
    }

    /// Adds a peer, or upgrades the source of a known one. Returns true when it was new.
    pub fn add(
        &mut self,
        addr: NodeId<L>,
        source: PeerSource,
        now: Instant,
    ) -> Result<bool, CapacityExceeded> {
        let at = match self.search(addr.as_str()) {
            Ok(i) => {
                if let Some(p) = self.peers.as_mut_slice().get_mut(i) {
                    if rank(source) > rank(p.source) {
                        p.source = source;
                    }
                }
                return Ok(false);
            }
            Err(at) => at,
        };
        self.peers.try_insert(
            at,
            Peer {
                addr,
                source,
                fails: 0,
                last_heard: Stamp::NONE,
                down_since: Stamp::NONE,
                known: 0,
                known_at: now,
                pull_digest: 0,
                pull_version: 0,
                last_pull_reply: Stamp::NONE,
                sent_version: 0,
                sent_base: 0,
                last_push_back: Stamp::NONE,
                caps: None,
                hello_sent: Stamp::NONE,
                last_sent: Stamp::NONE,
                awaiting: Stamp::NONE,
                pull_by_datagram: false,
                datagrams_off: 0,
                replies: 0,
                replies_since: now,
            },
        )?;
        Ok(true)
    }

    /// Removes a peer. Returns true when it was there.
    pub fn remove(&mut self, addr: &str) -> bool {
        match self.search(addr).ok() {
            Some(i) => self.peers.remove(i).is_some(),
            None => false,
        }
    }

    /// A valid frame came from `addr`: adds it as a sender if new and marks it heard, with one
    /// search. Returns its slot, whether it was added, and whether it came back from down.
    pub(crate) fn touch_sender(
        &mut self,
        addr: NodeId<L>,
        now: Instant,
    ) -> Result<(usize, bool, bool), CapacityExceeded> {
        let (i, added) = match self.search(addr.as_str()) {
            Ok(i) => (i, false),
            Err(at) => {
                self.add(addr, PeerSource::Sender, now)?;
                (at, true)
            }
        };
        let mut revived = false;
        if let Some(p) = self.peers.as_mut_slice().get_mut(i) {
            p.last_heard = Stamp::at(now);
            p.awaiting = Stamp::NONE;
            p.pull_by_datagram = false;
            revived = Self::revive(p);
        }
        Ok((i, added, revived))
    }

    /// The peer in slot `i` (slots are stable until the table changes).
    pub(crate) fn at(&self, i: usize) -> Option<&Peer<L>> {
        self.peers.as_slice().get(i)
    }

    /// The peer in slot `i`, mutably.
    pub(crate) fn at_mut(&mut self, i: usize) -> Option<&mut Peer<L>> {
        self.peers.as_mut_slice().get_mut(i)
    }

    /// A valid frame came from `addr`: it is alive. Returns true when it was down.
    pub fn heard_from(&mut self, addr: &str, now: Instant) -> bool {
        match self.get_mut(addr) {
            Some(p) => {
                p.last_heard = Stamp::at(now);
                p.awaiting = Stamp::NONE;
                p.pull_by_datagram = false;
                Self::revive(p)
            }
            None => false,
        }
    }

    /// A frame was delivered to `addr`. Returns true when it was down.
    pub fn delivered(&mut self, addr: &str) -> bool {
        match self.get_mut(addr) {
            Some(p) => Self::revive(p),
            None => false,
        }
    }

    fn revive(p: &mut Peer<L>) -> bool {
        p.fails = 0;
        let was_down = core::mem::replace(&mut p.down_since, Stamp::NONE)
            .get()
            .is_some();
        if was_down {
            // It may have lost state while it was away: forget what we knew it held.
            p.known = 0;
            p.pull_version = 0;
            p.sent_version = 0;
            // Another program may answer at that address now: ask again what it speaks.
            p.caps = None;
            p.hello_sent = Stamp::NONE;
            p.awaiting = Stamp::NONE;
            p.pull_by_datagram = false;
            p.datagrams_off = 0;
        }
        was_down
    }

    /// Membership declared `addr` down. Returns true when this made it down.
    pub fn mark_down(&mut self, addr: &str, now: Instant) -> bool {
        match self.get_mut(addr) {
            Some(p) if p.down_since.get().is_none() => {
                p.down_since = Stamp::at(now);
                true
            }
            _ => false,
        }
    }

    /// A send to `addr` failed. Returns true when this made it down.
    pub fn send_failed(&mut self, addr: &str, now: Instant, d: &Detector) -> bool {
        match self.get_mut(addr) {
            Some(p) => {
                p.fails = p.fails.saturating_add(1);
                if p.fails >= d.max_fails && p.down_since.get().is_none() {
                    p.down_since = Stamp::at(now);
                    return true;
                }
                false
            }
            None => false,
        }
    }

    /// Applies the unanswered-pull timeout and prunes long-down peers. Returns (went down,
    /// pruned).
    pub fn sweep(&mut self, now: Instant, d: &Detector) -> (usize, usize) {
        let mut downed = 0;
        for p in self.peers.as_mut_slice() {
            let unanswered = p
                .awaiting
                .get()
                .is_some_and(|t| now - t > d.failure_timeout);
            if p.down_since.get().is_none() && unanswered {
                p.down_since = Stamp::at(now);
                downed += 1;
            }
        }
        let mut pruned = 0;
        let mut i = 0;
        while let Some(p) = self.peers.as_slice().get(i) {
            let expired = p.source != PeerSource::Static
                && p.down_since.get().is_some_and(|t| now - t > d.prune_after);
            if expired {
                self.peers.remove(i);
                pruned += 1;
            } else {
                i += 1;
            }
        }
        (downed, pruned)
    }

    /// Number of peers in `state`.
    pub fn count(&self, state: PeerState) -> usize {
        self.iter().filter(|p| p.state() == state).count()
    }

    /// Chooses up to `k` distinct peers in `state` uniformly at random (selection sampling,
    /// no allocation) and calls `f` with each address.
    pub fn choose(
        &self,
        state: PeerState,
        k: usize,
        rng: &mut impl rand_core::RngCore,
        mut f: impl FnMut(NodeId<L>),
    ) {
        self.choose_where(k, rng, &|p| p.state() == state, &mut f);
    }

    /// Chooses up to `k` distinct peers for which `pick` holds, uniformly at random. One
    /// non-generic body for every caller (code size counts on microcontrollers).
    pub fn choose_where(
        &self,
        k: usize,
        rng: &mut dyn rand_core::RngCore,
        pick: &dyn Fn(&Peer<L>) -> bool,
        f: &mut dyn FnMut(NodeId<L>),
    ) {
        let mut left = self.iter().filter(|p| pick(p)).count();
        let mut need = k.min(left);
        for p in self.iter().filter(|p| pick(p)) {
            if need == 0 {
                break;
            }
            // Select with probability need / left.
            let r = (u64::from(rng.next_u32()) * left as u64) >> 32;
            if (r as usize) < need {
                f(p.addr);
                need -= 1;
            }
            left -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    type T = PeerTable<16, heapless::Vec<Peer<16>, 4>>;

    fn a(s: &str) -> NodeId<16> {
        NodeId::new(s).unwrap()
    }

    #[test]
    fn failures_down_and_revive() {
        let d = Detector::default();
        let mut t = T::default();
        let t0 = Instant::ZERO;
        assert!(t.add(a("x:1"), PeerSource::Sender, t0).unwrap());
        assert!(!t.add(a("x:1"), PeerSource::Static, t0).unwrap());
        assert_eq!(t.get("x:1").unwrap().source, PeerSource::Static);
        for i in 0..4 {
            assert!(!t.send_failed("x:1", t0, &d), "{i}");
        }
        assert!(t.send_failed("x:1", t0, &d));
        assert_eq!(t.count(PeerState::Down), 1);
        assert!(t.heard_from("x:1", t0));
        assert_eq!(t.count(PeerState::Alive), 1);
    }

    #[test]
    fn unanswered_pulls_and_pruning() {
        let d = Detector::default();
        let mut t = T::default();
        t.add(a("s:1"), PeerSource::Static, Instant::ZERO).unwrap();
        t.add(a("d:1"), PeerSource::Discovered, Instant::ZERO)
            .unwrap();
        t.add(a("q:1"), PeerSource::Discovered, Instant::ZERO)
            .unwrap();
        for p in ["s:1", "d:1"] {
            t.get_mut(p).unwrap().awaiting = Stamp::at(Instant::ZERO);
        }
        let later = Instant::ZERO + Duration::from_secs(31);
        // Silence alone (q:1, never asked) does not make a peer down.
        assert_eq!(t.sweep(later, &d), (2, 0));
        assert_eq!(t.get("q:1").unwrap().state(), PeerState::Alive);
        let much_later = later + Duration::from_secs(61);
        assert_eq!(t.sweep(much_later, &d), (0, 1));
        assert!(t.get("s:1").is_some() && t.get("d:1").is_none());
        assert!(t.get("q:1").is_some());
    }

    #[test]
    fn choose_is_distinct_and_bounded() {
        let mut t = T::default();
        for s in ["a:1", "b:1", "c:1", "d:1"] {
            t.add(a(s), PeerSource::Static, Instant::ZERO).unwrap();
        }
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        let mut seen = [0usize; 4];
        for _ in 0..1000 {
            let mut got = Vec::new();
            t.choose(PeerState::Alive, 2, &mut rng, |p| got.push(p));
            assert_eq!(got.len(), 2);
            assert_ne!(got[0], got[1]);
            for g in got {
                seen[t.iter().position(|p| p.addr == g).unwrap()] += 1;
            }
        }
        assert!(seen.iter().all(|&n| n > 400), "{seen:?}");
        assert!(t.add(a("e:1"), PeerSource::Sender, Instant::ZERO).is_err());
    }
}
