//! The engine's timers: adaptive digest rounds, eager pushes, housekeeping (sweep, probes of
//! down peers, keepalives for reference peers, hellos) and the full-sync backstop.
//!
//! Which inconsistencies reset the rounds to the minimum interval: a local change, a merge
//! that changed the state, a DigestPull whose digest differs from ours, a Push that lacked
//! something of ours, a new or returning peer, and a failed send.

use super::{Engine, Planned, QUEUE_CAPACITY};
use crate::counter::Entry;
use crate::ext::{Caps, Hello};
use crate::id::NodeId;
use crate::named::MapStores;
use crate::peers::{Peer, PeerState};
use crate::slots::Slots;
use crate::time::{Duration, Instant, Stamp};

impl<const L: usize, S: Slots<Entry<L>>, P: Slots<Peer<L>>, M: MapStores<L>> Engine<L, S, P, M> {
    /// Time never runs backwards inside the engine, whatever the caller passes.
    pub(super) fn saw(&mut self, now: Instant) {
        self.now = self.now.max(now);
    }

    /// Our state changed: push it eagerly, and gossip at the minimum interval.
    pub(super) fn changed(&mut self) {
        self.eager_dirty |= self.config.eager;
        self.reset_pending = true;
    }

    /// A peer was added or came back: greet it, and gossip at the minimum interval.
    pub(super) fn peer_joined(&mut self) {
        self.reset_pending = true;
        self.wake = true;
    }

    /// A hello from `from`: remember what it speaks; answer one that is not itself an answer.
    pub(super) fn on_hello(
        &mut self,
        from: NodeId<L>,
        slot: Option<usize>,
        hello: Hello,
        now: Instant,
    ) {
        self.stats.hellos_in += 1;
        let Some(p) = slot.and_then(|i| self.peers.at_mut(i)) else {
            return;
        };
        if hello.caps.contains(Caps::NAMED) && !p.speaks(Caps::NAMED) {
            // What we knew it holds was of the default counter only: our digest towards it,
            // and what we push it, now cover the named counters too.
            p.known = 0;
        }
        p.caps = Some(hello.caps);
        if !hello.reply {
            p.hello_sent = Stamp::at(now);
            self.reply(slot, from, Planned::Hello { reply: true }, now);
        }
    }

    /// When [`Engine::handle_timeout`] should next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next = self
            .rounds
            .next()
            .min(self.next_full_sync)
            .min(self.next_tick);
        if self.eager_dirty {
            next = next.min((self.last_eager + self.eager_wait()).max(self.now));
        }
        if self.reset_pending || self.wake {
            next = self.now;
        }
        Some(next)
    }

    /// Runs what is due at `now`: rounds, eager pushes, housekeeping, the backstop.
    pub fn handle_timeout(&mut self, now: Instant, rng: &mut impl rand_core::RngCore) {
        self.saw(now);
        let now = self.now;
        if core::mem::take(&mut self.reset_pending) {
            self.rounds.reset(now, rng.next_u32());
        }
        if self.eager_dirty && now >= self.last_eager + self.eager_wait() {
            self.push_eagerly(now, rng);
        }
        if core::mem::take(&mut self.wake) || now >= self.next_tick {
            self.housekeeping(now, rng);
        }
        if self.rounds.poll(now, rng.next_u32()) {
            self.stats.rounds += 1;
            let fanout = usize::from(self.config.fanout);
            for to in self.pick(fanout, rng, &|p| p.state() == PeerState::Alive) {
                self.enqueue(to, Planned::Pull);
            }
        }
        if now >= self.next_full_sync {
            self.backstop(rng);
            self.next_full_sync = advance(self.next_full_sync, self.config.full_sync_interval, now);
        }
    }

    /// The current interval between digest exchanges.
    pub fn round_interval(&self) -> Duration {
        self.rounds.interval()
    }

    /// Peers of one eager push: the configured number, or enough to reach every node of a
    /// cluster this size with high probability (push gossip needs about ln N + c).
    fn eager_fanout(&self) -> usize {
        let alive = self.peers.count(PeerState::Alive);
        let k = match self.config.eager_fanout {
            0 => (alive.max(1).ilog2() as usize * 7) / 10 + 3,
            k => usize::from(k),
        };
        k.min(alive).min(QUEUE_CAPACITY / 2)
    }

    /// Pushes what changed since the last eager push to peers not known to hold it.
    fn push_eagerly(&mut self, now: Instant, rng: &mut impl rand_core::RngCore) {
        let version = self.counter.version();
        let base = self.eager_base;
        let alive_lacking = |p: &Peer<L>| p.state() == PeerState::Alive && p.known != version;
        for to in self.pick(self.eager_fanout(), rng, &alive_lacking) {
            // Without delta sync every Push is the full state, as the reference's.
            let since = if self.config.delta_sync {
                let fresh_for = self.config.full_sync_interval;
                let known = self.peers.get(to.as_str());
                base.max(known.map_or(0, |p| p.known_version(now, fresh_for)))
            } else {
                0
            };
            self.stats.eager_pushes += 1;
            self.enqueue(
                to,
                Planned::Push {
                    since,
                    backstop: false,
                },
            );
        }
        // Pushes back to back (within twice the wait): writes keep coming, so wait longer
        // next time; after a pause, wait the least again.
        let wait = self.eager_wait();
        let busy = now - self.last_eager <= wait.saturating_mul(2);
        let min = self.config.eager_delay.as_millis();
        let max = self.config.eager_delay_max.as_millis().max(min);
        let next = if busy {
            wait.as_millis().saturating_mul(2).clamp(min, max)
        } else {
            min
        };
        self.eager_wait = u16::try_from(next).unwrap_or(u16::MAX);
        self.eager_base = version;
        self.last_eager = now;
        self.eager_dirty = false;
    }

    /// The current wait between two eager pushes.
    fn eager_wait(&self) -> Duration {
        Duration::from_millis(u64::from(self.eager_wait).max(self.config.eager_delay.as_millis()))
    }

    /// Every tick (the smaller of a round and half the keepalive): marks peers whose pulls
    /// went unanswered down and prunes long-down ones, probes one down peer, keeps reference
    /// peers alive, and greets peers whose capabilities we do not know.
    fn housekeeping(&mut self, now: Instant, rng: &mut impl rand_core::RngCore) {
        let tick = self
            .config
            .sync_interval
            .min(Duration::from_millis(self.config.keepalive.as_millis() / 2))
            .max(Duration::from_millis(1));
        if now >= self.next_tick {
            self.next_tick = now + tick;
            self.unanswered_datagrams(now);
            let (downed, pruned) = self.peers.sweep(now, &self.config.detector);
            self.stats.peers_down += downed as u64;
            self.stats.peers_pruned += pruned as u64;
            // One down peer is probed per tick, so a peer that comes back is readmitted.
            for to in self.pick(1, rng, &|p| p.state() == PeerState::Down) {
                self.enqueue(to, Planned::Pull);
            }
        }
        // A frame to every live peer that needs one: a hello to those we have not greeted
        // (or greeted long ago, unanswered), a DigestPull to reference peers about to go
        // without a frame for `keepalive`.
        let keepalive = self.config.keepalive.as_millis();
        let retry = self.config.hello_retry;
        for i in 0..self.peers.len() {
            let Some(p) = self.peers.at_mut(i) else {
                break;
            };
            if p.state() != PeerState::Alive {
                continue;
            }
            let greet = p.caps.is_none() && p.hello_sent.get().is_none_or(|t| now - t >= retry);
            let stale = p
                .last_sent
                .get()
                .is_none_or(|t| (now - t).as_millis() + tick.as_millis() > keepalive);
            let what = if greet {
                p.hello_sent = Stamp::at(now);
                self.stats.hellos_out += 1;
                Planned::Hello { reply: false }
            } else if stale && !p.speaks(Caps::QUIET) {
                Planned::Pull
            } else {
                continue;
            };
            let to = p.addr;
            if self.queue.is_full() {
                // The rest wait for the next tick (never "now": a full queue must not spin).
                break;
            }
            self.enqueue(to, what);
        }
    }

    /// Up to `k` random peers for which `pick` holds.
    fn pick(
        &self,
        k: usize,
        rng: &mut dyn rand_core::RngCore,
        pick: &dyn Fn(&Peer<L>) -> bool,
    ) -> heapless::Vec<NodeId<L>, QUEUE_CAPACITY> {
        let mut chosen = heapless::Vec::new();
        self.peers.choose_where(k, rng, pick, &mut |a| {
            let _ = chosen.push(a);
        });
        chosen
    }

    /// The anti-entropy backstop: the full state to peers not known to hold ours. A peer known
    /// to hold it is skipped, so an idle cluster sends no state.
    fn backstop(&mut self, rng: &mut impl rand_core::RngCore) {
        if self.counter.nonzero_len() == 0 && self.named.cells_len() == 0 {
            return;
        }
        let k = usize::from(self.config.fanout / 2).max(1);
        for to in self.pick(k, rng, &|p| p.state() == PeerState::Alive) {
            let known = self.peers.get(to.as_str()).is_some_and(|p| {
                self.config.delta_sync && p.known != 0 && p.known == self.counter.version()
            });
            if !known {
                self.enqueue(
                    to,
                    Planned::Push {
                        since: 0,
                        backstop: true,
                    },
                );
            }
        }
    }
}

fn advance(at: Instant, every: Duration, now: Instant) -> Instant {
    let next = at + every;
    if next <= now {
        now + every
    } else {
        next
    }
}
