//! The replica's input: what a read of a connection or a datagram produced, handled once —
//! the §2 header split, the frame handed to the engine, rejects counted, events raised (and,
//! with the `membership` feature, membership datagrams routed to SWIM).

use super::{Capacity, Cause, Event, Ingress, Replica};
use crate::counter::Entry;
use crate::engine::Handled;
use crate::error::WireError;
use crate::frame::split_header;
use crate::message::MessageType;
use crate::named::MapStores;
use crate::peers::Peer;
use crate::slots::Slots;
use crate::time::Instant;

impl<const L: usize, S: Slots<Entry<L>>, P: Slots<Peer<L>>, M: MapStores<L>> Replica<L, S, P, M> {
    /// Takes what a read of one incoming connection produced: splits the §2 header, handles
    /// the frame, counts rejects and raises events.
    pub fn ingest(&mut self, now: Instant, input: Ingress<'_>) -> Result<Handled, WireError> {
        self.transport.accepted += 1;
        self.take(now, input)
    }

    /// Takes one datagram received on the gossip port (`docs/EXTENSIONS.md` §5): the same
    /// bytes a connection carries, handled the same way. A datagram longer than the frame limit
    /// plus [`MAX_HEADER`](super::MAX_HEADER) is `Ingress::TooLarge`. With membership on (feature `membership`),
    /// a datagram whose first byte is zero is a membership datagram (§7): `Ok(None)`.
    pub fn ingest_datagram(
        &mut self,
        now: Instant,
        input: Ingress<'_>,
    ) -> Result<Option<Handled>, WireError> {
        self.transport.datagrams_in += 1;
        #[cfg(feature = "membership")]
        if let Ingress::Payload(p) = input {
            if let Some(r) = self.take_membership(now, p) {
                return r.map(|()| None);
            }
        }
        self.take(now, input).map(Some)
    }

    fn take(&mut self, now: Instant, input: Ingress<'_>) -> Result<Handled, WireError> {
        let payload = match input {
            Ingress::Payload(p) => p,
            Ingress::TooLarge => return Err(self.read_failed(WireError::FrameTooLarge)),
            Ingress::TooSlow => return Err(self.read_failed(WireError::TooSlow)),
            Ingress::Reset => {
                self.transport.read_failed += 1;
                return Err(WireError::Truncated);
            }
        };
        let refused_before = self.engine.stats().peers_refused;
        let r = match split_header(payload) {
            Ok((from, frame)) => self.engine.handle(now, from, frame),
            Err(e) => {
                self.engine.record_reject(e);
                Err(e)
            }
        };
        if let Ok(h) = r {
            if h.refused > 0 {
                self.events
                    .push(Event::CapacityExceeded(Capacity::Counters));
            }
        }
        match r {
            Ok(h) if h.changed && h.message == MessageType::NamedPush => {
                self.events.push(Event::NamedChanged {
                    cause: Cause::Merge,
                })
            }
            Ok(h) if h.changed => self.events.push(Event::Changed {
                value: self.value(),
                cause: Cause::Merge,
            }),
            Err(WireError::CapacityExceeded | WireError::TooManyEntries) => {
                self.events.push(Event::CapacityExceeded(Capacity::Entries))
            }
            _ => {}
        }
        if self.engine.stats().peers_refused > refused_before {
            self.events.push(Event::CapacityExceeded(Capacity::Peers));
        }
        r
    }

    fn read_failed(&mut self, e: WireError) -> WireError {
        self.transport.read_failed += 1;
        self.engine.record_reject(e);
        e
    }

    /// An incoming connection was dropped unread (every reader busy).
    pub fn record_shed(&mut self) {
        self.transport.shed += 1;
    }

    /// An outgoing frame was dropped before sending (send queue full).
    pub fn record_send_dropped(&mut self) {
        self.transport.send_dropped += 1;
    }
}
