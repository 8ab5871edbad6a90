//! LAN discovery on boards (feature `mdns`; `docs/EXTENSIONS.md` §9): the node announces
//! itself as an instance of `_tally._tcp.local.` and adds every instance it hears of as a
//! peer of source `mdns` — hosts running `tally node --mdns` and other boards alike — so no
//! peer address is needed at build time. A goodbye (TTL 0) removes a peer it added.
//!
//! The messages are `tally_core::mdns`'s; this loop owns their UDP socket (port 5353, group
//! 224.0.0.251) and their timers: announcements twice, a second apart, whenever the node gets
//! an address (a goodbye for the old one first); queries at once, then at doubling intervals
//! from 1 s to [`QUERY_MAX`]; an answer to every query that asks for this node, multicast at
//! most once a second (RFC 6762 §6). Time is `embassy-time`'s.

use crate::fmt::{debug, info};
use crate::node::Node;
use core::net::{Ipv4Addr, SocketAddrV4};
use embassy_futures::select::{select, Either};
use embassy_net::udp::{PacketMetadata, UdpSocket};
use embassy_net::{IpEndpoint, Stack};
use embassy_sync::blocking_mutex::raw::RawMutex;
use embassy_time::{Duration, Instant, Timer};
use tally_core::mdns::{self, Found, Instance};
use tally_core::named::MapStores;
use tally_core::PeerSource;

/// Largest mDNS message read (longer ones are dropped by the socket).
pub const MDNS_RX: usize = 768;
/// Largest mDNS message written (an announcement with a 64-byte id takes about 330).
pub const MDNS_TX: usize = 384;
/// The longest interval between two queries.
pub const QUERY_MAX: Duration = Duration::from_secs(60);
/// Peers one message is read for.
const FOUND: usize = 4;

/// The mDNS socket's buffers: about 1.3 KiB.
pub struct MdnsBuffers {
    rx_meta: [PacketMetadata; 2],
    rx: [u8; MDNS_RX],
    tx_meta: [PacketMetadata; 2],
    tx: [u8; MDNS_TX],
}

impl MdnsBuffers {
    /// Zeroed buffers (put them in a `StaticCell`).
    pub const fn new() -> Self {
        Self {
            rx_meta: [PacketMetadata::EMPTY; 2],
            rx: [0; MDNS_RX],
            tx_meta: [PacketMetadata::EMPTY; 2],
            tx: [0; MDNS_TX],
        }
    }
}

impl Default for MdnsBuffers {
    fn default() -> Self {
        Self::new()
    }
}

/// What one received message asks of us.
#[derive(Default)]
struct Heard {
    asked: bool,
    found: heapless::Vec<Found, FOUND>,
}

fn read(msg: &[u8], label: &str) -> Heard {
    let mut heard = Heard {
        asked: mdns::asks_for(msg, label).unwrap_or(false),
        ..Heard::default()
    };
    if let Err(e) = mdns::for_each_peer(msg, |f| {
        let _ = heard.found.push(f);
    }) {
        debug!("mDNS: message ignored: {}", e);
    }
    heard
}

/// Runs discovery for `node` on `stack`; never returns. Needs one UDP socket of the stack's
/// resources and `bufs`.
pub async fn run<M: RawMutex, const N: usize, const P: usize, const L: usize, Named>(
    stack: Stack<'_>,
    node: Node<'_, M, N, P, L, Named>,
    bufs: &mut MdnsBuffers,
) -> !
where
    Named: MapStores<L>,
{
    let MdnsBuffers {
        rx_meta,
        rx,
        tx_meta,
        tx,
    } = bufs;
    let mut socket = UdpSocket::new(stack, rx_meta, rx, tx_meta, tx);
    if socket.bind(mdns::PORT).is_err() {
        info!("mDNS: cannot bind port 5353; no LAN discovery");
        loop {
            Timer::after_secs(3600).await;
        }
    }
    let group = IpEndpoint::from(SocketAddrV4::new(Ipv4Addr::from(mdns::GROUP), mdns::PORT));
    let mut previous: Option<SocketAddrV4> = None;
    loop {
        let advertised = node.address();
        let Some(addr) = advertised.and_then(|a| a.as_str().parse().ok()) else {
            select(stack.wait_config_up(), Timer::after_secs(1)).await;
            continue;
        };
        if stack
            .join_multicast_group(Ipv4Addr::from(mdns::GROUP))
            .is_err()
        {
            debug!("mDNS: joining the group failed (already joined?)");
        }
        let id = node.id();
        let label = mdns::instance_label(id.as_str());
        let me = |ttl| Instance {
            label: label.as_str(),
            id: id.as_str(),
            addr,
            ttl,
        };
        if let Some(old) = previous.filter(|old| *old != addr) {
            send(&socket, group, &Instance { addr: old, ..me(0) }).await;
        }
        previous = Some(addr);
        info!(
            "mDNS: announcing {} at {}",
            label.as_str(),
            advertised.as_ref().map(|a| a.as_str()).unwrap_or_default()
        );
        let start = Instant::now();
        let (mut announce_at, mut announcements) = (start, 2u8);
        let (mut query_at, mut interval) = (start, Duration::from_secs(1));
        let mut last_multicast = start - Duration::from_secs(1);
        // Until the address changes.
        while node.address().and_then(|a| a.as_str().parse().ok()) == Some(addr) {
            let now = Instant::now();
            if announcements > 0 && now >= announce_at {
                send(&socket, group, &me(mdns::TTL)).await;
                last_multicast = now;
                announcements -= 1;
                announce_at = now + Duration::from_secs(1);
            }
            if now >= query_at {
                let mut out = [0u8; 64];
                if let Ok(n) = mdns::write_query(&mut out) {
                    let _ = socket
                        .send_to(out.get(..n).unwrap_or_default(), group)
                        .await;
                }
                query_at = now + interval;
                interval = (interval * 2).min(QUERY_MAX);
            }
            let mut wake = query_at.min(now + Duration::from_secs(5));
            if announcements > 0 {
                wake = wake.min(announce_at);
            }
            let heard = select(
                socket.recv_from_with(|msg, _| read(msg, label.as_str())),
                Timer::at(wake),
            )
            .await;
            let Either::First(heard) = heard else {
                continue;
            };
            if heard.asked && Instant::now() >= last_multicast + Duration::from_secs(1) {
                send(&socket, group, &me(mdns::TTL)).await;
                last_multicast = Instant::now();
            }
            for f in &heard.found {
                learn(node, f);
            }
        }
    }
}

/// Adds the peer an answer names, or removes it on its goodbye (if mDNS added it).
fn learn<M: RawMutex, const N: usize, const P: usize, const L: usize, Named: MapStores<L>>(
    node: Node<'_, M, N, P, L, Named>,
    f: &Found,
) {
    let mut a = heapless::String::<24>::new();
    if core::fmt::write(&mut a, format_args!("{}", f.addr)).is_err() {
        return;
    }
    if f.ttl == 0 {
        if node.remove_peer_from(a.as_str(), PeerSource::Mdns) {
            info!("mDNS: peer {} left", a.as_str());
        }
        return;
    }
    match node.add_peer(a.as_str(), PeerSource::Mdns) {
        Ok(true) => info!("mDNS: new peer {}", a.as_str()),
        Ok(false) => {}
        Err(_) => debug!("mDNS: peer {} not added", a.as_str()),
    }
}

async fn send(socket: &UdpSocket<'_>, to: IpEndpoint, me: &Instance<'_>) {
    let mut out = [0u8; MDNS_TX];
    match mdns::write_announcement(me, &mut out) {
        Ok(n) => {
            if socket
                .send_to(out.get(..n).unwrap_or_default(), to)
                .await
                .is_err()
            {
                debug!("mDNS: announcement not sent");
            }
        }
        Err(e) => info!("mDNS: cannot write the announcement: {}", e),
    }
}
