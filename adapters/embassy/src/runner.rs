//! [`Runner`]: the loops that move a node's frames — one driver (timers and sends), `A`
//! accepting sockets, the datagram reader and the address follower, all on embassy-net,
//! joined into one future.

use crate::config::NodeConfig;
use crate::datagram;
use crate::fmt::{debug, info};
use crate::state::{now, to_embassy, AcceptBuffers, DatagramBuffers, NodeState, SendBuffers};
use core::fmt::Write as _;
use core::net::SocketAddrV4;
use embassy_futures::join::{join4, join_array};
use embassy_futures::select::select;
use embassy_net::tcp::TcpSocket;
use embassy_net::udp::UdpSocket;
use embassy_net::{IpEndpoint, Stack};
use embassy_sync::blocking_mutex::raw::RawMutex;
use embassy_time::{with_timeout, Duration, Timer};
use tally_core::named::{MapStores, Unnamed};
use tally_core::Ingress;

/// Drives a node: call [`Runner::run`] from a task of its own. It never returns.
pub struct Runner<
    'a,
    M: RawMutex,
    const N: usize = 32,
    const P: usize = 16,
    const L: usize = 64,
    const A: usize = 2,
    Named: MapStores<L> = Unnamed,
> {
    pub(crate) stack: Stack<'a>,
    pub(crate) node_state: &'a NodeState<M, N, P, L, Named>,
    pub(crate) accept: &'a mut [AcceptBuffers; A],
    pub(crate) send: &'a mut SendBuffers,
    pub(crate) datagram: &'a mut DatagramBuffers,
    pub(crate) port: u16,
    pub(crate) follow_stack: bool,
    pub(crate) read_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) write_timeout: Duration,
}

impl<
        'a,
        M: RawMutex,
        const N: usize,
        const P: usize,
        const L: usize,
        const A: usize,
        Named: MapStores<L>,
    > Runner<'a, M, N, P, L, A, Named>
{
    pub(crate) fn new(
        stack: Stack<'a>,
        node_state: &'a NodeState<M, N, P, L, Named>,
        accept: &'a mut [AcceptBuffers; A],
        send: &'a mut SendBuffers,
        datagram: &'a mut DatagramBuffers,
        config: &NodeConfig<'_>,
    ) -> Self {
        Self {
            stack,
            node_state,
            accept,
            send,
            datagram,
            port: config.port,
            follow_stack: config.advertise.is_none(),
            read_timeout: config.read_timeout,
            connect_timeout: config.connect_timeout,
            write_timeout: config.write_timeout,
        }
    }

    /// Runs the node: `A` sockets accept frames on the gossip port and one UDP socket on the
    /// same port reads datagrams, while the driver runs due timers, sends what the replica
    /// asks (one connection per frame, or one datagram) and sleeps until the next timer or
    /// until something queued a frame; the address follower keeps the advertised address on
    /// the stack's. `rng` picks gossip partners.
    pub async fn run(self, rng: &mut impl rand_core::RngCore) -> ! {
        let Self {
            stack,
            node_state,
            accept,
            send,
            datagram,
            port,
            follow_stack,
            read_timeout,
            connect_timeout,
            write_timeout,
        } = self;
        let (udp, udp_frame, max_datagram) = datagram::open(stack, datagram, port);
        node_state.replica(|r| r.set_max_datagram(max_datagram));
        let acceptors = accept
            .each_mut()
            .map(|bufs| accept_loop(stack, node_state, bufs, port, read_timeout));
        let timeouts = (connect_timeout, write_timeout);
        join4(
            drive(stack, node_state, send, &udp, rng, timeouts),
            join_array(acceptors),
            datagram::read_loop(&udp, node_state, udp_frame, max_datagram > 0),
            follow_address(stack, node_state, port, follow_stack),
        )
        .await;
        // Every loop runs forever; this is never reached.
        loop {
            Timer::after_secs(3600).await;
        }
    }
}

/// The driver: due timers, then every queued transmit, then sleep.
async fn drive<M: RawMutex, const N: usize, const P: usize, const L: usize, Named: MapStores<L>>(
    stack: Stack<'_>,
    node_state: &NodeState<M, N, P, L, Named>,
    bufs: &mut SendBuffers,
    udp: &UdpSocket<'_>,
    rng: &mut impl rand_core::RngCore,
    (connect_timeout, write_timeout): (Duration, Duration),
) {
    loop {
        let t = now();
        node_state.replica(|r| {
            if r.poll_timeout().is_some_and(|due| due <= t) {
                r.handle_timeout(t, rng);
            }
        });
        while let Some(tx) = node_state.replica(|r| r.poll_transmit(now(), &mut bufs.frame)) {
            let to = tx.to.as_str();
            if tx.datagram {
                let payload = bufs.frame.get(..tx.len).unwrap_or_default();
                let sent = datagram::send(udp, to, payload, write_timeout)
                    .await
                    .is_ok();
                let t = now();
                node_state.replica(|r| r.on_datagram(to, t, sent));
                continue;
            }
            let ok = deliver(stack, bufs, to, tx.len, connect_timeout, write_timeout)
                .await
                .is_ok();
            let t = now();
            node_state.replica(|r| {
                if ok {
                    r.on_delivered(to, t);
                } else {
                    r.on_send_failed(to, t);
                }
            });
            if !ok {
                debug!("send to {} failed", to);
            }
        }
        let sleep = match node_state.replica(|r| r.poll_timeout()) {
            Some(at) => Timer::at(to_embassy(at)),
            None => Timer::after_secs(1),
        };
        select(sleep, node_state.wake.wait()).await;
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
        abort(&mut socket).await;
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
            abort(&mut socket).await;
            Err(SendError::Write)
        }
    }
}

/// Resets a connection and gives the reset a moment to leave.
async fn abort(socket: &mut TcpSocket<'_>) {
    socket.abort();
    let _ = with_timeout(Duration::from_millis(100), socket.flush()).await;
}

/// One accepting socket: one frame per connection, read to end of stream within the deadline
/// and the frame buffer; what the read produced goes to the replica's `ingest`.
async fn accept_loop<
    M: RawMutex,
    const N: usize,
    const P: usize,
    const L: usize,
    Named: MapStores<L>,
>(
    stack: Stack<'_>,
    node_state: &NodeState<M, N, P, L, Named>,
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
        let read = with_timeout(read_timeout, read_to_end(&mut socket, frame)).await;
        let input = match read {
            Ok(Ok(n)) => Ingress::Payload(frame.get(..n).unwrap_or_default()),
            Ok(Err(failed)) => failed,
            Err(_) => Ingress::TooSlow,
        };
        let whole = matches!(input, Ingress::Payload(_));
        let t = now();
        if let Err(e) = node_state.replica(|r| r.ingest(t, input)) {
            debug!("frame rejected: {}", e.name());
        }
        if whole {
            // Whatever happened, the replica may have queued a reply.
            node_state.wake.signal(());
            socket.close();
            let _ = with_timeout(Duration::from_millis(500), socket.flush()).await;
        } else {
            abort(&mut socket).await;
        }
    }
}

/// Reads until the peer closes its side; more than `buf` holds is `TooLarge`, a failed read
/// `Reset`.
async fn read_to_end(
    socket: &mut TcpSocket<'_>,
    buf: &mut [u8],
) -> Result<usize, Ingress<'static>> {
    let mut len = 0;
    loop {
        let spare = buf.get_mut(len..).unwrap_or_default();
        if spare.is_empty() {
            // Full: end of stream now means the frame fits exactly, one more byte does not.
            let mut probe = [0u8; 1];
            return match socket.read(&mut probe).await {
                Ok(0) => Ok(len),
                Ok(_) => Err(Ingress::TooLarge),
                Err(_) => Err(Ingress::Reset),
            };
        }
        match socket.read(spare).await {
            Ok(0) => return Ok(len),
            Ok(n) => len += n,
            Err(_) => return Err(Ingress::Reset),
        }
    }
}

/// How often the follower re-reads the stack's address while it is up (a renewed lease may
/// carry a new address without the configuration going down first).
const RECHECK: Duration = Duration::from_secs(5);

/// Keeps the advertised address on the stack's IPv4 address and `port`: set when the stack
/// is configured (a DHCP lease), again when the address changes, cleared while it has none.
/// With a fixed address (`follow` false) it has nothing to do.
async fn follow_address<
    M: RawMutex,
    const N: usize,
    const P: usize,
    const L: usize,
    Named: MapStores<L>,
>(
    stack: Stack<'_>,
    node_state: &NodeState<M, N, P, L, Named>,
    port: u16,
    follow: bool,
) {
    if !follow {
        return;
    }
    let mut current: Option<heapless::String<24>> = None;
    loop {
        let addr = stack.config_v4().and_then(|c| {
            let mut s = heapless::String::<24>::new();
            write!(s, "{}:{}", c.address.address(), port).ok()?;
            Some(s)
        });
        if addr != current {
            match node_state.replica(|r| r.set_address(addr.as_deref())) {
                Ok(()) => info!("advertising {}", addr.as_deref().unwrap_or("nothing")),
                Err(_) => debug!("cannot advertise {}", addr.as_deref().unwrap_or("")),
            }
            current = addr;
            node_state.wake.signal(());
        }
        if current.is_some() {
            select(stack.wait_config_down(), Timer::after(RECHECK)).await;
        } else {
            stack.wait_config_up().await;
        }
    }
}
