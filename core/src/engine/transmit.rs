//! The engine's output: [`Engine::poll_transmit`] turns the queue of planned messages into
//! frames — header, message (a Push within the receiver's budget, windows of the named
//! state), zstd when it pays, the cluster key's tag — and notes what was sent.

use super::{push, Engine, Pending, Planned, Transmit};
use crate::counter::{origin_of, Entry};
use crate::ext::Hello;
use crate::frame::{self, FLAG_ZSTD};
use crate::id::NodeId;
use crate::message::{Message, MessageType};
use crate::named::MapStores;
use crate::peers::Peer;
use crate::slots::Slots;
use crate::time::{Instant, Stamp};

impl<const L: usize, S: Slots<Entry<L>>, P: Slots<Peer<L>>, M: MapStores<L>> Engine<L, S, P, M> {
    /// Writes the next frame to send into `buf` (header + frame) and says where it goes.
    ///
    /// `buf` should hold the receiver's frame limit plus 256 bytes of header; a Push that does
    /// not fit carries as many entries as fit, and the next one continues after them.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit<L>> {
        self.saw(now);
        while let Some(p) = self.queue.pop_front() {
            match self.write_frame(&p, buf) {
                Some(mut t) => {
                    // The handshake itself is reference protocol: always over TCP.
                    let hello = matches!(p.what, Planned::Hello { .. });
                    t.datagram = !hello && self.send_as_datagram(t.to.as_str(), t.len, t.message);
                    if let Some(peer) = self.peers.get_mut(t.to.as_str()) {
                        peer.last_sent = Stamp::at(self.now);
                        if t.message == MessageType::DigestPull && peer.awaiting.get().is_none() {
                            peer.awaiting = Stamp::at(self.now);
                        }
                    }
                    if let Some(n) = self.stats.frames_out.get_mut(t.message.index()) {
                        *n += 1;
                    }
                    self.stats.bytes_out += t.len as u64;
                    self.stats.compressed_out += u64::from(t.compressed);
                    return Some(t);
                }
                None => continue,
            }
        }
        None
    }

    fn write_frame(&mut self, p: &Pending<L>, buf: &mut [u8]) -> Option<Transmit<L>> {
        let h = frame::write_header(self.listen.as_str(), buf).ok()?;
        let body_at = h + 1;
        let id = *self.counter.local_id();
        let (message, len) = {
            let out = buf.get_mut(body_at..)?;
            match p.what {
                Planned::NamedPush { since } => {
                    let budget = self.push_budget(out.len());
                    self.write_named(p.to, since, budget, out)?
                }
                Planned::Pull | Planned::Ack(_) | Planned::Hello { .. } => {
                    let (message, digest) = match p.what {
                        Planned::Ack(d) => (MessageType::DigestAck, u64::from_be_bytes(d)),
                        Planned::Hello { reply } => (
                            MessageType::DigestAck,
                            Hello::ours(reply, self.caps()).to_digest(),
                        ),
                        _ => {
                            let d = self.digest_for(self.peers.slot_of(p.to.as_str()));
                            let version = self.counter.version();
                            if let Some(peer) = self.peers.get_mut(p.to.as_str()) {
                                peer.pull_digest = d;
                                peer.pull_version = version;
                            }
                            (MessageType::DigestPull, d)
                        }
                    };
                    let m: Message<'_, core::iter::Empty<(&str, u64)>> = match message {
                        MessageType::DigestAck => Message::DigestAck {
                            id: id.as_str(),
                            digest,
                        },
                        _ => Message::DigestPull {
                            id: id.as_str(),
                            digest,
                        },
                    };
                    (message, m.emit(out).ok()?)
                }
                Planned::Push { since, backstop } => {
                    // Leave out what the peer itself gave us only when we know what it holds: a
                    // peer we know nothing about may have lost it (a restart without its disk).
                    let echo = !backstop && self.config.delta_sync && since != 0;
                    let exclude = if echo { origin_of(p.to.as_str()) } else { 0 };
                    let pick = push::Pick { since, exclude };
                    let budget = self.push_budget(out.len());
                    let entries = self.counter.entries();
                    let cursor = self.push_cursor;
                    let Some(w) = push::fit_window(entries, cursor, id.as_str(), budget, pick)
                    else {
                        if push::fit_window(entries, cursor, id.as_str(), usize::MAX, pick)
                            .is_some()
                        {
                            self.stats.emit_failures += 1;
                            return None;
                        }
                        // Nothing of the default counter to send: the named part alone.
                        return self.finish_frame(p.to, buf, h, |e, out| {
                            e.write_named(p.to, since, budget, out)
                        });
                    };
                    let len = push::emit(entries, w, pick, id.as_str(), out).ok()?;
                    let complete = w.count >= entries.len();
                    if since == 0 {
                        self.stats.full_push_bytes += len as u64;
                    } else {
                        self.stats.delta_push_bytes += len as u64;
                    }
                    if complete {
                        // Everything selected is on its way: knowledge once delivered — after
                        // the named part, when one follows.
                        if !self.follow_with_named(p.to, since) {
                            self.sent_all(p.to, since);
                        }
                    } else {
                        // A partial window moves the cursor, so the next Push continues.
                        self.push_cursor = w.start + w.count;
                    }
                    (MessageType::Push, len)
                }
            }
        };
        self.seal_frame(p.to, message, buf, h, len)
    }

    /// Writes the body `write` produces after the header of `h` bytes, then seals the frame.
    fn finish_frame(
        &mut self,
        to: NodeId<L>,
        buf: &mut [u8],
        h: usize,
        write: impl FnOnce(&mut Self, &mut [u8]) -> Option<(MessageType, usize)>,
    ) -> Option<Transmit<L>> {
        let (message, len) = write(self, buf.get_mut(h + 1..)?)?;
        self.seal_frame(to, message, buf, h, len)
    }

    /// The byte budget of a Push message in an output buffer of `out` bytes.
    fn push_budget(&self, out: usize) -> usize {
        let tag = if self.config.cluster_key.is_some() {
            crate::auth::TAG_LEN
        } else {
            0
        };
        out.saturating_sub(tag)
            .min(self.config.max_frame_out.saturating_sub(1 + tag))
    }

    /// A complete Push of what changed after `since` is on its way to `to`: knowledge of our
    /// current version once it is delivered.
    fn sent_all(&mut self, to: NodeId<L>, since: u32) {
        let version = self.counter.version();
        if let Some(peer) = self.peers.get_mut(to.as_str()) {
            peer.sent_version = version;
            peer.sent_base = since;
        }
    }

    /// A window of the named Push to `to` (see `named.rs`), as a message body in `out`.
    fn write_named(
        &mut self,
        to: NodeId<L>,
        since: u32,
        budget: usize,
        out: &mut [u8],
    ) -> Option<(MessageType, usize)> {
        // Only to a peer known to read it (a reference peer never gets one).
        if !self.speaks_named(self.peers.slot_of(to.as_str())) {
            return None;
        }
        let (len, complete) = self.write_named_window(since, budget, out)?;
        if since == 0 {
            self.stats.full_push_bytes += len as u64;
        } else {
            self.stats.delta_push_bytes += len as u64;
        }
        if complete {
            self.sent_all(to, since);
        }
        Some((MessageType::NamedPush, len))
    }

    /// Compresses (when worth it) and seals the message of `len` bytes after the header.
    fn seal_frame(
        &mut self,
        to: NodeId<L>,
        message: MessageType,
        buf: &mut [u8],
        h: usize,
        len: usize,
    ) -> Option<Transmit<L>> {
        let body_at = h + 1;
        let mut flags = 0u8;
        let mut len = len;
        if let Some(compress) = self.config.compressor {
            if len > self.config.compress_above {
                if let Some(clen) = buf.get_mut(body_at..).and_then(|b| compress(b, len)) {
                    if clen < len {
                        flags = FLAG_ZSTD;
                        len = clen;
                    }
                }
            }
        }
        *buf.get_mut(h)? = flags;
        let mut frame_len = 1 + len;
        if let Some(key) = &self.config.cluster_key {
            frame_len = key.seal(buf.get_mut(h..)?, frame_len)?;
        }
        Some(Transmit {
            to,
            len: h + frame_len,
            message,
            compressed: flags == FLAG_ZSTD,
            datagram: false,
            membership: false,
        })
    }
}
