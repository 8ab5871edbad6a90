//! Datagrams (`docs/EXTENSIONS.md` §5): which frames travel as one UDP datagram, and what an
//! unanswered one means.
//!
//! A frame goes as a datagram only to a peer whose hello announced [`Caps::DATAGRAM`], only
//! when this node has a datagram socket (`Config::max_datagram` > 0) and only when it is at
//! most `max_datagram` bytes. Everything else, and everything to a peer not known to read
//! datagrams, goes over TCP exactly as before. A datagram has no delivery report, so:
//! - it never counts as knowledge of what the peer holds (only its answers do);
//! - a DigestPull sent as a datagram that has no answer after [`ANSWER_WAIT`] counts as a failed
//!   send (the rounds reset, `fails` rises) and frames to that peer go over TCP for
//!   [`DATAGRAMS_OFF_TICKS`] housekeeping ticks (60 s at the default 2 s round) — a peer behind
//!   a firewall that drops UDP still gets everything.

use super::Engine;
use crate::counter::Entry;
use crate::ext::Caps;
use crate::message::MessageType;
use crate::named::MapStores;
use crate::peers::Peer;
use crate::slots::Slots;
use crate::time::{Duration, Instant, Stamp};

/// How long a DigestPull sent as a datagram may wait for any frame from the peer.
pub const ANSWER_WAIT: Duration = Duration::from_secs(1);

/// Housekeeping ticks (one per round, or per half keepalive if shorter) during which frames
/// to a peer go over TCP after a datagram pull to it went unanswered.
pub const DATAGRAMS_OFF_TICKS: u8 = 30;

impl<const L: usize, S: Slots<Entry<L>>, P: Slots<Peer<L>>, M: MapStores<L>> Engine<L, S, P, M> {
    /// The capabilities this node announces in its hello.
    pub fn caps(&self) -> Caps {
        let mut caps = Caps::QUIET;
        if self.config.max_datagram > 0 {
            caps = caps.with(Caps::DATAGRAM);
        }
        if self.named.max_counters() > 0 {
            caps = caps.with(Caps::NAMED);
        }
        if self.membership && self.config.max_datagram > 0 {
            caps = caps.with(Caps::MEMBERSHIP);
        }
        caps
    }

    /// Announces (or withdraws) SWIM membership beside this engine; peers greeted before are
    /// greeted again so they learn it.
    pub fn set_membership(&mut self, on: bool) {
        if on != self.membership {
            self.membership = on;
            self.regreet();
        }
    }

    fn regreet(&mut self) {
        for i in 0..self.peers.len() {
            if let Some(p) = self.peers.at_mut(i) {
                p.hello_sent = Stamp::NONE;
                p.caps = None;
            }
        }
        self.wake = true;
    }

    /// Announces (`max` > 0) or withdraws datagrams: adapters call it once their datagram
    /// socket is bound. Peers learn it from later hellos; those already greeted are greeted
    /// again.
    pub fn set_max_datagram(&mut self, max: u16) {
        let changed = (max > 0) != (self.config.max_datagram > 0);
        self.config.max_datagram = max;
        if changed {
            self.regreet();
        }
    }

    /// Whether a frame of `len` bytes of `message` to `peer` goes as a datagram; notes a
    /// datagram DigestPull as waiting for its answer.
    pub(super) fn send_as_datagram(&mut self, to: &str, len: usize, message: MessageType) -> bool {
        let max = usize::from(self.config.max_datagram);
        let Some(p) = self.peers.get_mut(to) else {
            return false;
        };
        let datagram = max > 0 && len <= max && p.speaks(Caps::DATAGRAM) && p.datagrams_off == 0;
        if message == MessageType::DigestPull && p.awaiting.get().is_none() {
            // This pull starts the wait for an answer (`awaiting` is set as it leaves).
            p.pull_by_datagram = datagram;
        }
        if datagram {
            // Nothing reports its delivery: it is no knowledge of what the peer holds.
            p.sent_version = 0;
            self.stats.datagrams_out += 1;
        }
        datagram
    }

    /// Datagram pulls left unanswered for [`ANSWER_WAIT`] count as failed sends, and that peer
    /// gets TCP for a while.
    pub(super) fn unanswered_datagrams(&mut self, now: Instant) {
        for i in 0..self.peers.len() {
            let Some(p) = self.peers.at_mut(i) else {
                break;
            };
            p.datagrams_off = p.datagrams_off.saturating_sub(1);
            let waited = p.awaiting.get().is_some_and(|t| now - t >= ANSWER_WAIT);
            if p.pull_by_datagram && waited {
                p.pull_by_datagram = false;
                p.datagrams_off = DATAGRAMS_OFF_TICKS;
                let addr = p.addr;
                self.stats.datagrams_unanswered += 1;
                self.on_send_failed(addr.as_str(), now);
            }
        }
    }
}
