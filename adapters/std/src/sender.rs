//! Delivery frames: a small pool of sender threads, each frame one connection (connect with a
//! timeout, one write of the whole buffer, close) or, when the core marks it so, one datagram
//! from the gossip port's UDP socket; the outcome reported to the engine.

use crate::state::NodeState;
use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One frame to deliver.
pub(crate) struct Delivery {
    pub to: String,
    pub payload: Vec<u8>,
    /// Send it as one datagram (no delivery report).
    pub datagram: bool,
}

pub(crate) struct Senders {
    tx: SyncSender<Delivery>,
}

impl Senders {
    pub(crate) fn spawn(
        state: &Arc<NodeState>,
        threads: usize,
        queue: usize,
        connect_timeout: Duration,
        udp: Option<Arc<UdpSocket>>,
    ) -> std::io::Result<(Self, Vec<JoinHandle<()>>)> {
        let (tx, rx) = sync_channel::<Delivery>(queue.max(1));
        let rx = Arc::new(Mutex::new(rx));
        let mut handles = Vec::new();
        for i in 0..threads.max(1) {
            let (rx, state, udp) = (Arc::clone(&rx), Arc::clone(state), udp.clone());
            handles.push(
                std::thread::Builder::new()
                    .name(format!("tally-send-{i}"))
                    .spawn(move || run(&rx, &state, connect_timeout, udp.as_deref()))?,
            );
        }
        Ok((Self { tx }, handles))
    }

    /// Queues a frame; a full queue drops it and reports the failure to the engine.
    pub(crate) fn send(&self, out: Delivery, state: &NodeState) {
        match self.tx.try_send(out) {
            Ok(()) => {}
            Err(TrySendError::Full(out) | TrySendError::Disconnected(out)) => {
                let now = state.now();
                let mut replica = state.replica();
                replica.record_send_dropped();
                replica.on_send_failed(&out.to, now);
            }
        }
    }
}

fn run(
    rx: &Mutex<Receiver<Delivery>>,
    state: &NodeState,
    connect_timeout: Duration,
    udp: Option<&UdpSocket>,
) {
    loop {
        let next = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
        let Ok(out) = next else { break };
        if state.is_shutting_down() {
            break;
        }
        if out.datagram {
            if let Some(udp) = udp {
                send_datagram(udp, &out, state);
                continue;
            }
        }
        let ok = !state.is_isolated() && deliver(&out, connect_timeout).is_ok();
        let now = state.now();
        if ok {
            state.replica().on_delivered(&out.to, now);
        } else {
            state.replica().on_send_failed(&out.to, now);
        }
    }
}

/// Sends a datagram and reports whether the socket took it (the core decides what that
/// means). An isolated node's datagrams vanish, as on a cut network.
fn send_datagram(udp: &UdpSocket, out: &Delivery, state: &NodeState) {
    let sent = state.is_isolated()
        || resolve(&out.to)
            .and_then(|to| crate::datagram::send(udp, to, &out.payload))
            .is_ok();
    let now = state.now();
    state.replica().on_datagram(&out.to, now, sent);
}

fn resolve(to: &str) -> std::io::Result<SocketAddr> {
    to.to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address"))
}

fn deliver(out: &Delivery, connect_timeout: Duration) -> std::io::Result<()> {
    let addr = resolve(&out.to)?;
    let mut stream = TcpStream::connect_timeout(&addr, connect_timeout)?;
    stream.set_write_timeout(Some(connect_timeout.max(Duration::from_secs(1))))?;
    stream.set_nodelay(true)?;
    // One buffer, one write: the reference receiver parses a single read.
    stream.write_all(&out.payload)?;
    stream.shutdown(Shutdown::Write)
}
