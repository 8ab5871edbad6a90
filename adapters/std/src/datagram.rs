//! Datagrams on the gossip port (`docs/EXTENSIONS.md` §5): one UDP socket bound to the same
//! address and port as the TCP listener. A thread reads each datagram — one whole payload, §2
//! header and frame — and hands it to the replica; the sender threads send the frames the core
//! marks as datagrams from the same socket, so they leave from the gossip port.

use crate::state::NodeState;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tally_core::replica::{Ingress, MAX_HEADER};

/// How often the reader looks up from an idle socket to see whether the node is stopping.
const POLL: Duration = Duration::from_millis(200);

/// The largest UDP payload (IPv4): a receive buffer this size never truncates one.
const MAX_UDP: usize = 65_507;

/// Binds the datagram socket beside the TCP listener at `addr`.
pub(crate) fn bind(addr: SocketAddr) -> std::io::Result<Arc<UdpSocket>> {
    let socket = UdpSocket::bind(addr)?;
    socket.set_read_timeout(Some(POLL))?;
    Ok(Arc::new(socket))
}

/// Starts the reader thread.
pub(crate) fn spawn(
    socket: Arc<UdpSocket>,
    state: Arc<NodeState>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("tally-datagrams".into())
        .spawn(move || read_loop(&socket, &state))
}

fn read_loop(socket: &UdpSocket, state: &NodeState) {
    // One byte more than the limit: a datagram that fills it is too large.
    let limit = state.replica().config().frame_limits.max_frame + MAX_HEADER;
    let mut buf = vec![0u8; (limit + 1).min(MAX_UDP + 1)];
    while !state.is_shutting_down() {
        let n = match socket.recv_from(&mut buf) {
            Ok((n, _from)) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            // ICMP errors of earlier sends surface here on Linux: nothing to read.
            Err(_) => continue,
        };
        if state.is_isolated() {
            continue;
        }
        let input = if n > limit {
            Ingress::TooLarge
        } else {
            Ingress::Payload(buf.get(..n).unwrap_or_default())
        };
        let now = state.now();
        if let Err(e) = state.replica().ingest_datagram(now, input) {
            tracing::debug!(reason = e.name(), "datagram rejected");
        }
        state.kick();
    }
}

/// Sends one datagram to `to` (`host:port`).
pub(crate) fn send(socket: &UdpSocket, to: SocketAddr, payload: &[u8]) -> std::io::Result<()> {
    let n = socket.send_to(payload, to)?;
    if n == payload.len() {
        Ok(())
    } else {
        Err(std::io::Error::new(
            ErrorKind::WriteZero,
            "datagram cut short",
        ))
    }
}
