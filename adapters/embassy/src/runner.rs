//! [`Runner`]: the loops that move a node's frames — one driver (timers and sends) and `A`
//! accepting sockets, all on embassy-net TCP, joined into one future.

use crate::config::NodeConfig;
use crate::fmt::debug;
use crate::state::{now, to_embassy, AcceptBuffers, SendBuffers, Shared};
use core::net::SocketAddrV4;
use embassy_futures::join::{join, join_array};
use embassy_futures::select::select;
use embassy_net::tcp::TcpSocket;
use embassy_net::{IpEndpoint, Stack};
use embassy_sync::blocking_mutex::raw::RawMutex;
use embassy_time::{with_timeout, Duration, Timer};
use tally_core::frame::split_header;
use tally_core::WireError;

/// Drives a node: call [`Runner::run`] from a task of its own. It never returns.
pub struct Runner<
    'a,
    M: RawMutex,
    const N: usize = 32,
    const P: usize = 16,
    const L: usize = 64,
    const A: usize = 2,
> {
    pub(crate) stack: Stack<'a>,
    pub(crate) shared: &'a Shared<M, N, P, L>,
    pub(crate) accept: &'a mut [AcceptBuffers; A],
    pub(crate) send: &'a mut SendBuffers,
    pub(crate) port: u16,
    pub(crate) read_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) write_timeout: Duration,
}

impl<'a, M: RawMutex, const N: usize, const P: usize, const L: usize, const A: usize>
    Runner<'a, M, N, P, L, A>
{
    pub(crate) fn new(
        stack: Stack<'a>,
        shared: &'a Shared<M, N, P, L>,
        accept: &'a mut [AcceptBuffers; A],
        send: &'a mut SendBuffers,
        config: &NodeConfig<'_>,
    ) -> Self {
        Self {
            stack,
            shared,
            accept,
            send,
            port: config.port,
            read_timeout: config.read_timeout,
            connect_timeout: config.connect_timeout,
            write_timeout: config.write_timeout,
        }
    }

    /// Runs the node: `A` sockets accept frames on the gossip port while the driver runs due
    /// timers, sends what the engine asks (one connection per frame) and sleeps until the next
    /// timer or until a received frame queued a reply. `rng` picks gossip partners.
    pub async fn run(self, rng: &mut impl rand_core::RngCore) -> ! {
        let Self {
            stack,
            shared,
            accept,
            send,
            port,
            read_timeout,
            connect_timeout,
            write_timeout,
        } = self;
        let acceptors = accept
            .each_mut()
            .map(|bufs| accept_loop(stack, shared, bufs, port, read_timeout));
        let timeouts = (connect_timeout, write_timeout);
        join(
            drive(stack, shared, send, rng, timeouts),
            join_array(acceptors),
        )
        .await;
        // Both loops run forever; this is never reached.
        loop {
            Timer::after_secs(3600).await;
        }
    }
}

/// The driver: due timers, then every queued transmit, then sleep.
async fn drive<M: RawMutex, const N: usize, const P: usize, const L: usize>(
    stack: Stack<'_>,
    shared: &Shared<M, N, P, L>,
    bufs: &mut SendBuffers,
    rng: &mut impl rand_core::RngCore,
    (connect_timeout, write_timeout): (Duration, Duration),
) {
    loop {
        let t = now();
        shared.with(|e| {
            if e.poll_timeout().is_some_and(|due| due <= t) {
                e.handle_timeout(t, rng);
            }
        });
        loop {
            let t = now();
            let Some(Some(tx)) = shared.with(|e| e.poll_transmit(t, &mut bufs.frame)) else {
                break;
            };
            let ok = deliver(
                stack,
                bufs,
                tx.to.as_str(),
                tx.len,
                connect_timeout,
                write_timeout,
            )
            .await
            .is_ok();
            let t = now();
            shared.with(|e| {
                if ok {
                    e.on_delivered(tx.to.as_str(), t);
                } else {
                    e.on_send_failed(tx.to.as_str(), t);
                }
            });
            shared.bump(|s| {
                if ok {
                    s.sent += 1;
                } else {
                    s.send_failed += 1;
                }
            });
            if !ok {
                debug!("send to {} failed", tx.to.as_str());
            }
        }
        let next = shared.with(|e| e.poll_timeout()).flatten();
        let sleep = match next {
            Some(at) => Timer::at(to_embassy(at)),
            None => Timer::after_secs(1),
        };
        select(sleep, shared.wake.wait()).await;
    }
}

/// Why an outgoing frame was not delivered.
enum SendError {
    Address,
    Connect,
    Write,
}

/// Sends `bufs.frame[..len]` to `to` over one connection: connect, write everything, close,
/// and wait until the peer has acknowledged it all.
async fn deliver(
    stack: Stack<'_>,
    bufs: &mut SendBuffers,
    to: &str,
    len: usize,
    connect_timeout: Duration,
    write_timeout: Duration,
) -> Result<(), SendError> {
    let addr: SocketAddrV4 = to.parse().map_err(|_| SendError::Address)?;
    let endpoint = IpEndpoint::from(addr);
    let payload = bufs.frame.get(..len).ok_or(SendError::Write)?;
    let mut socket = TcpSocket::new(stack, &mut bufs.rx, &mut bufs.tx);
    socket.set_timeout(Some(write_timeout + connect_timeout));
    let connected = matches!(
        with_timeout(connect_timeout, socket.connect(endpoint)).await,
        Ok(Ok(()))
    );
    if !connected {
        socket.abort();
        let _ = with_timeout(Duration::from_millis(100), socket.flush()).await;
        return Err(SendError::Connect);
    }
    let written = with_timeout(write_timeout, async {
        let mut rest = payload;
        while !rest.is_empty() {
            match socket.write(rest).await {
                Ok(0) | Err(_) => return Err(SendError::Write),
                Ok(n) => rest = rest.get(n..).unwrap_or_default(),
            }
        }
        socket.close();
        socket.flush().await.map_err(|_| SendError::Write)
    })
    .await;
    match written {
        Ok(Ok(())) => Ok(()),
        _ => {
            socket.abort();
            let _ = with_timeout(Duration::from_millis(100), socket.flush()).await;
            Err(SendError::Write)
        }
    }
}

/// One accepting socket: one frame per connection, read to end of stream within the deadline
/// and the frame buffer, then handed to the engine.
async fn accept_loop<M: RawMutex, const N: usize, const P: usize, const L: usize>(
    stack: Stack<'_>,
    shared: &Shared<M, N, P, L>,
    bufs: &mut AcceptBuffers,
    port: u16,
    read_timeout: Duration,
) {
    loop {
        let AcceptBuffers { rx, tx, frame } = &mut *bufs;
        let mut socket = TcpSocket::new(stack, rx, tx);
        socket.set_timeout(Some(read_timeout));
        if socket.accept(port).await.is_err() {
            // Not addressable yet (no IP) or reset during the handshake: back off a little.
            Timer::after_millis(100).await;
            continue;
        }
        shared.bump(|s| s.accepted += 1);
        let read = with_timeout(read_timeout, read_to_end(&mut socket, frame)).await;
        let outcome = match read {
            Ok(Ok(n)) => Ok(n),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ReadError::TooSlow),
        };
        match outcome {
            Ok(n) => {
                socket.close();
                let t = now();
                let handled =
                    shared.with(|e| match split_header(frame.get(..n).unwrap_or_default()) {
                        Ok((from, body)) => e.handle(t, from, body),
                        Err(err) => {
                            e.record_reject(err);
                            Err(err)
                        }
                    });
                match handled {
                    Some(Ok(h)) if h.changed => {
                        if let Some(v) = shared.with(|e| e.value()) {
                            shared.changed.signal(v);
                        }
                    }
                    Some(Err(err)) => debug!("frame rejected: {}", err.name()),
                    Some(Ok(_)) | None => {}
                }
                // Whatever happened, the engine may have queued a reply.
                shared.wake.signal(());
                let _ = with_timeout(Duration::from_millis(500), socket.flush()).await;
            }
            Err(e) => {
                shared.bump(|s| s.read_failed += 1);
                match e {
                    ReadError::TooLarge => {
                        shared.with(|eng| eng.record_reject(WireError::FrameTooLarge));
                    }
                    ReadError::TooSlow => {
                        shared.with(|eng| eng.record_reject(WireError::TooSlow));
                    }
                    ReadError::Reset => {}
                }
                socket.abort();
                let _ = with_timeout(Duration::from_millis(100), socket.flush()).await;
            }
        }
    }
}

enum ReadError {
    TooLarge,
    TooSlow,
    Reset,
}

/// Reads until the peer closes its side; more than `buf` holds is `TooLarge`.
async fn read_to_end(socket: &mut TcpSocket<'_>, buf: &mut [u8]) -> Result<usize, ReadError> {
    let mut len = 0;
    loop {
        let spare = buf.get_mut(len..).unwrap_or_default();
        if spare.is_empty() {
            // Full: end of stream now means the frame fits exactly, one more byte does not.
            let mut probe = [0u8; 1];
            return match socket.read(&mut probe).await {
                Ok(0) => Ok(len),
                Ok(_) => Err(ReadError::TooLarge),
                Err(_) => Err(ReadError::Reset),
            };
        }
        match socket.read(spare).await {
            Ok(0) => return Ok(len),
            Ok(n) => len += n,
            Err(_) => return Err(ReadError::Reset),
        }
    }
}
