//! Datagrams on the gossip port (`docs/EXTENSIONS.md` §5): one embassy-net UDP socket bound to
//! the gossip port. Its reader hands each datagram — one whole payload, §2 header and frame — to
//! the replica; the driver sends the frames the core marks as datagrams through it. Datagrams
//! use no accepting socket: the two TCP sockets stay free for peers that speak only TCP.

use crate::fmt::debug;
use crate::state::{now, DatagramBuffers, NodeState, DATAGRAM_TX};
use core::net::SocketAddrV4;
use embassy_net::udp::{RecvError, UdpSocket};
use embassy_net::{IpEndpoint, Stack};
use embassy_sync::blocking_mutex::raw::RawMutex;
use embassy_time::{with_timeout, Duration};
use tally_core::named::MapStores;
use tally_core::Ingress;

/// Why a datagram was not sent.
pub(crate) enum SendError {
    Address,
    Socket,
}

/// The datagram socket on `port`, and the largest frame it sends (0 when it could not be
/// bound: the node then announces no datagrams and sends everything over TCP).
pub(crate) fn open<'a>(
    stack: Stack<'a>,
    bufs: &'a mut DatagramBuffers,
    port: u16,
) -> (UdpSocket<'a>, &'a mut [u8; DATAGRAM_TX + 1], u16) {
    let DatagramBuffers {
        rx_meta,
        rx,
        tx_meta,
        tx,
        frame,
    } = bufs;
    let mut socket = UdpSocket::new(stack, rx_meta, rx, tx_meta, tx);
    let max = match socket.bind(port) {
        Ok(()) => tally_core::Config::DATAGRAM.min(DATAGRAM_TX as u16),
        Err(_) => {
            debug!("no datagram socket on port {}: TCP only", port);
            0
        }
    };
    (socket, frame, max)
}

/// Sends `payload` to `to` (`a.b.c.d:port`) within `timeout` (the socket's send queue may be
/// full for a moment).
pub(crate) async fn send(
    socket: &UdpSocket<'_>,
    to: &str,
    payload: &[u8],
    timeout: Duration,
) -> Result<(), SendError> {
    let addr: SocketAddrV4 = to.parse().map_err(|_| SendError::Address)?;
    match with_timeout(timeout, socket.send_to(payload, IpEndpoint::from(addr))).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(SendError::Socket),
    }
}

/// Reads datagrams forever; each goes to the replica's `ingest_datagram`. One longer than
/// `frame` holds is `TooLarge`.
pub(crate) async fn read_loop<
    M: RawMutex,
    const N: usize,
    const P: usize,
    const L: usize,
    Named: MapStores<L>,
>(
    socket: &UdpSocket<'_>,
    node_state: &NodeState<M, N, P, L, Named>,
    frame: &mut [u8],
    enabled: bool,
) {
    if !enabled {
        return;
    }
    loop {
        let got = socket.recv_from(frame).await;
        let input = match got {
            Ok((n, _from)) if n < frame.len() => {
                Ingress::Payload(frame.get(..n).unwrap_or_default())
            }
            Ok(_) | Err(RecvError::Truncated) => Ingress::TooLarge,
        };
        let t = now();
        if let Err(e) = node_state.replica(|r| r.ingest_datagram(t, input)) {
            debug!("datagram rejected: {}", e.name());
        }
        // The replica may have queued a reply.
        node_state.wake.signal(());
    }
}
