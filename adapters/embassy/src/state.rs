//! [`State`]: everything a node needs, in one value the caller places in a `static`.
//!
//! The replica lives behind a blocking mutex (never held across an `.await`); after every use
//! its events are drained into the signals that wake the caller ([`Node::wait_changed`]) and
//! the persister; fixed buffers back every socket: no heap.
//!
//! [`Node::wait_changed`]: crate::Node::wait_changed

use crate::fmt::{debug, info};
use core::cell::RefCell;
use embassy_net::udp::PacketMetadata;
use embassy_sync::blocking_mutex::raw::RawMutex;
use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::signal::Signal;
use heapless::Deque;
use tally_core::named::{MapStores, Unnamed};
use tally_core::replica::{Event, MAX_HEADER};
use tally_core::{FixedReplica, FrameLimits, Prepared};

/// One whole TCP payload: the MCU frame limit (4 KiB) plus the largest header.
pub const FRAME_BUFFER: usize = FrameLimits::MCU.max_frame + MAX_HEADER;
/// Receive buffer of an accepting socket (the frame is copied out as it arrives).
pub const ACCEPT_RX: usize = 1024;
/// Transmit buffer of an accepting socket (nothing is ever written back).
pub const ACCEPT_TX: usize = 64;
/// Receive buffer of the sending socket (peers write nothing back).
pub const SEND_RX: usize = 64;
/// Transmit buffer of the sending socket; larger frames are written in several pieces.
pub const SEND_TX: usize = 2048;
/// Payload storage of the datagram socket's receive side: one datagram of the largest size
/// peers send ([`tally_core::Config::DATAGRAM`]) with room for small ones beside it.
pub const DATAGRAM_RX: usize = 1536;
/// Payload storage of the datagram socket's send side: one datagram of the largest size sent.
pub const DATAGRAM_TX: usize = tally_core::Config::DATAGRAM as usize;
/// Datagrams the receive side queues (the payload storage bounds them too).
pub const DATAGRAM_QUEUE: usize = 4;
/// Prepared writes a durable node holds until the persister reports them durable. Beyond
/// this the newest replaces the one before it: its record carries the totals of both.
pub const PENDING: usize = 4;

/// The buffers of one accepting socket: about 5.4 KiB.
pub struct AcceptBuffers {
    pub(crate) rx: [u8; ACCEPT_RX],
    pub(crate) tx: [u8; ACCEPT_TX],
    pub(crate) frame: [u8; FRAME_BUFFER],
}

/// The buffers of the sending socket: about 6.4 KiB.
pub struct SendBuffers {
    pub(crate) rx: [u8; SEND_RX],
    pub(crate) tx: [u8; SEND_TX],
    pub(crate) frame: [u8; FRAME_BUFFER],
}

/// The buffers of the datagram socket (`docs/EXTENSIONS.md` §5): about 4 KiB.
pub struct DatagramBuffers {
    pub(crate) rx_meta: [PacketMetadata; DATAGRAM_QUEUE],
    pub(crate) rx: [u8; DATAGRAM_RX],
    pub(crate) tx_meta: [PacketMetadata; 1],
    pub(crate) tx: [u8; DATAGRAM_TX],
    /// One received datagram, copied out (one byte over the largest sent: longer is too large).
    pub(crate) frame: [u8; DATAGRAM_TX + 1],
}

/// Socket and frame buffers of a node with `A` accepting sockets.
pub struct Buffers<const A: usize> {
    pub(crate) accept: [AcceptBuffers; A],
    pub(crate) send: SendBuffers,
    pub(crate) datagram: DatagramBuffers,
}

/// The replica and the local writes waiting for their records to be durable.
pub(crate) struct Inner<const N: usize, const P: usize, const L: usize, Named: MapStores<L>> {
    pub(crate) replica: FixedReplica<N, P, L, Named>,
    pub(crate) pending: Deque<Prepared, PENDING>,
}

/// What a use of the replica left to signal.
pub(crate) struct After {
    changed: Option<i128>,
    named_changed: bool,
    persist: bool,
}

impl<const N: usize, const P: usize, const L: usize, Named: MapStores<L>> Inner<N, P, L, Named> {
    /// Takes every event out of the replica: the last value changed to, and logs.
    #[inline(never)]
    fn drain_events(&mut self) -> After {
        let mut changed = None;
        let mut named_changed = false;
        while let Some(event) = self.replica.poll_event() {
            match event {
                Event::Changed { value, .. } => changed = Some(value),
                Event::PeerUp(a) => debug!("peer {} up", a.as_str()),
                Event::PeerDown(a) => debug!("peer {} down", a.as_str()),
                Event::PeersSilent(n) => debug!("{} peers silent", n),
                Event::CapacityExceeded(c) => info!("capacity exceeded: {:?}", c),
                Event::NamedChanged { .. } => named_changed = true,
            }
        }
        After {
            changed,
            named_changed,
            persist: self.replica.wants_persist(),
        }
    }
}

/// The part of a node node_state by its [`Node`](crate::Node) handles, its
/// [`Runner`](crate::Runner) and its [`Persister`](crate::Persister).
pub struct NodeState<
    M: RawMutex,
    const N: usize,
    const P: usize,
    const L: usize,
    Named: MapStores<L> = Unnamed,
> {
    inner: Mutex<M, RefCell<Inner<N, P, L, Named>>>,
    /// Wakes the driver: something may be ready to send, or the timers moved.
    pub(crate) wake: Signal<M, ()>,
    /// The value after the last change (local or merged).
    pub(crate) changed: Signal<M, i128>,
    /// Some named counter changed (local or merged) since the last wait.
    pub(crate) named_changed: Signal<M, ()>,
    /// Wakes the persister: records wait in the persist stream.
    pub(crate) persist: Signal<M, ()>,
}

/// Everything one node needs: the replica, signals and buffers. Create it with
/// [`State::new`] in a `static` (e.g. a `static_cell::StaticCell`) and pass it to
/// [`crate::new`].
///
/// Size: the replica ([`FixedReplica`]`<N, P, L>`, about 9.1 KB for 32 entries, 16 peers and
/// 64-byte ids) plus `A` × 5.4 KiB of accepting sockets, 6.4 KiB for the sender and 4 KiB for
/// the datagram socket: about 30.6 KB for the default on a 32-bit MCU.
pub struct State<
    M: RawMutex,
    const N: usize = 32,
    const P: usize = 16,
    const L: usize = 64,
    const A: usize = 2,
    Named: MapStores<L> = Unnamed,
> {
    pub(crate) node_state: NodeState<M, N, P, L, Named>,
    pub(crate) buffers: Buffers<A>,
}

impl<
        M: RawMutex,
        const N: usize,
        const P: usize,
        const L: usize,
        const A: usize,
        Named: MapStores<L>,
    > State<M, N, P, L, A, Named>
{
    /// The state of a node that runs `replica` (built, and restored from a store, by the
    /// caller: it decides the identity and whether the node is durable).
    pub fn new(replica: FixedReplica<N, P, L, Named>) -> Self {
        const ACCEPT: AcceptBuffers = AcceptBuffers {
            rx: [0; ACCEPT_RX],
            tx: [0; ACCEPT_TX],
            frame: [0; FRAME_BUFFER],
        };
        Self {
            node_state: NodeState::new(replica),
            buffers: Buffers {
                accept: [ACCEPT; A],
                send: SendBuffers {
                    rx: [0; SEND_RX],
                    tx: [0; SEND_TX],
                    frame: [0; FRAME_BUFFER],
                },
                datagram: DatagramBuffers {
                    rx_meta: [PacketMetadata::EMPTY; DATAGRAM_QUEUE],
                    rx: [0; DATAGRAM_RX],
                    tx_meta: [PacketMetadata::EMPTY; 1],
                    tx: [0; DATAGRAM_TX],
                    frame: [0; DATAGRAM_TX + 1],
                },
            },
        }
    }
}

impl<M: RawMutex, const N: usize, const P: usize, const L: usize, Named: MapStores<L>>
    NodeState<M, N, P, L, Named>
{
    pub(crate) fn new(replica: FixedReplica<N, P, L, Named>) -> Self {
        Self {
            inner: Mutex::new(RefCell::new(Inner {
                replica,
                pending: Deque::new(),
            })),
            wake: Signal::new(),
            changed: Signal::new(),
            named_changed: Signal::new(),
            persist: Signal::new(),
        }
    }

    /// Runs `f` on the replica, then hands out what happened: a changed value wakes
    /// [`Node::wait_changed`](crate::Node::wait_changed), waiting records wake the persister.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Inner<N, P, L, Named>) -> R) -> R {
        let (r, after) = self.inner.lock(|cell| {
            let mut inner = cell.borrow_mut();
            let r = f(&mut inner);
            (r, inner.drain_events())
        });
        self.signal(after);
        r
    }

    // Out of line: one copy for every `with` (they differ only in `f`).
    #[inline(never)]
    fn signal(&self, after: After) {
        if let Some(v) = after.changed {
            self.changed.signal(v);
        }
        if after.named_changed {
            self.named_changed.signal(());
        }
        if after.persist {
            self.persist.signal(());
        }
    }

    /// Runs `f` on the replica alone.
    pub(crate) fn replica<R>(&self, f: impl FnOnce(&mut FixedReplica<N, P, L, Named>) -> R) -> R {
        self.with(|i| f(&mut i.replica))
    }
}

/// The core's clock: milliseconds since embassy-time's origin (boot).
pub fn now() -> tally_core::Instant {
    tally_core::Instant::from_millis(embassy_time::Instant::now().as_millis())
}

/// Converts a core instant back to embassy time.
pub fn to_embassy(at: tally_core::Instant) -> embassy_time::Instant {
    embassy_time::Instant::from_millis(at.as_millis())
}

#[cfg(test)]
mod tests {
    use super::*;
    use embassy_sync::blocking_mutex::raw::NoopRawMutex;

    #[test]
    fn a_default_node_fits_its_documented_size() {
        // Replica (32 entries, 16 peers, 64-byte ids) + two accepting sockets + the sender.
        // 64-bit host sizes; a 32-bit MCU's are smaller.
        let replica = core::mem::size_of::<FixedReplica<32, 16, 64>>();
        println!("FixedReplica<32, 16, 64> = {replica} B");
        assert!(replica < 9500, "the replica is {replica} B");
        let size = core::mem::size_of::<State<NoopRawMutex>>();
        assert!(size < 31 * 1024, "State is {size} B");
        const { assert!(FRAME_BUFFER >= FrameLimits::MCU.max_frame + MAX_HEADER) };
    }

    #[test]
    fn clock_round_trips() {
        let t = tally_core::Instant::from_millis(123_456);
        assert_eq!(to_embassy(t).as_millis(), 123_456);
    }
}
