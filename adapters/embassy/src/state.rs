//! [`State`]: everything a node needs, in one value the caller places in a `static`.
//!
//! The engine lives behind a blocking mutex (never held across an `.await`), two signals wake
//! the driver and the caller, and fixed buffers back every socket: no heap.

use core::cell::{Cell, RefCell};
use embassy_sync::blocking_mutex::raw::RawMutex;
use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::signal::Signal;
use tally_core::{FixedEngine, FrameLimits};

/// Largest §2 header: length byte + 255 address bytes.
pub const MAX_HEADER: usize = 256;
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

/// What the adapter itself did (the engine counts the rest in [`tally_core::Stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct AdapterStats {
    /// Connections accepted on the gossip port.
    pub accepted: u64,
    /// Incoming connections that ended without a whole frame (reset, too slow, too large).
    pub read_failed: u64,
    /// Frames delivered to peers.
    pub sent: u64,
    /// Frames that could not be delivered (bad address, connect or write failed).
    pub send_failed: u64,
}

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

/// Socket and frame buffers of a node with `A` accepting sockets.
pub struct Buffers<const A: usize> {
    pub(crate) accept: [AcceptBuffers; A],
    pub(crate) send: SendBuffers,
}

/// The part of a node shared by its [`Node`](crate::Node) handles and its
/// [`Runner`](crate::Runner).
pub struct Shared<M: RawMutex, const N: usize, const P: usize, const L: usize> {
    pub(crate) engine: Mutex<M, RefCell<Option<FixedEngine<N, P, L>>>>,
    /// Wakes the driver: something may be ready to send.
    pub(crate) wake: Signal<M, ()>,
    /// The value after the last change (local or merged).
    pub(crate) changed: Signal<M, i128>,
    pub(crate) stats: Mutex<M, Cell<AdapterStats>>,
}

/// Everything one node needs: engine, signals and buffers. Create it with the `const`
/// [`State::new`] in a `static` (e.g. a `static_cell::StaticCell`) and pass it to
/// [`crate::new`].
///
/// Size: the engine ([`FixedEngine`]`<N, P, L>`, 6,752 B for 32 entries, 16 peers and 64-byte
/// ids) plus `A` × 5.4 KiB of accepting sockets and 6.4 KiB for the sender.
pub struct State<
    M: RawMutex,
    const N: usize = 32,
    const P: usize = 16,
    const L: usize = 64,
    const A: usize = 2,
> {
    pub(crate) shared: Shared<M, N, P, L>,
    pub(crate) buffers: Buffers<A>,
}

impl<M: RawMutex, const N: usize, const P: usize, const L: usize, const A: usize>
    State<M, N, P, L, A>
{
    /// An empty state; [`crate::new`] builds the engine in it.
    pub const fn new() -> Self {
        const ACCEPT: AcceptBuffers = AcceptBuffers {
            rx: [0; ACCEPT_RX],
            tx: [0; ACCEPT_TX],
            frame: [0; FRAME_BUFFER],
        };
        Self {
            shared: Shared {
                engine: Mutex::new(RefCell::new(None)),
                wake: Signal::new(),
                changed: Signal::new(),
                stats: Mutex::new(Cell::new(AdapterStats {
                    accepted: 0,
                    read_failed: 0,
                    sent: 0,
                    send_failed: 0,
                })),
            },
            buffers: Buffers {
                accept: [ACCEPT; A],
                send: SendBuffers {
                    rx: [0; SEND_RX],
                    tx: [0; SEND_TX],
                    frame: [0; FRAME_BUFFER],
                },
            },
        }
    }
}

impl<M: RawMutex, const N: usize, const P: usize, const L: usize, const A: usize> Default
    for State<M, N, P, L, A>
{
    fn default() -> Self {
        Self::new()
    }
}

impl<M: RawMutex, const N: usize, const P: usize, const L: usize> Shared<M, N, P, L> {
    /// Runs `f` on the engine, if it was built.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut FixedEngine<N, P, L>) -> R) -> Option<R> {
        self.engine.lock(|cell| cell.borrow_mut().as_mut().map(f))
    }

    pub(crate) fn bump(&self, f: impl FnOnce(&mut AdapterStats)) {
        self.stats.lock(|cell| {
            let mut s = cell.get();
            f(&mut s);
            cell.set(s);
        });
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
        // Engine (32 entries, 16 peers, 64-byte ids) + two accepting sockets + the sender.
        let size = core::mem::size_of::<State<NoopRawMutex>>();
        assert!(size < 28 * 1024, "State is {size} B");
        const { assert!(FRAME_BUFFER >= FrameLimits::MCU.max_frame + MAX_HEADER) };
    }

    #[test]
    fn clock_round_trips() {
        let t = tally_core::Instant::from_millis(123_456);
        assert_eq!(to_embassy(t).as_millis(), 123_456);
    }
}
