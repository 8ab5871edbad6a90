//! The TAP device, watched: counts the gossip frames that arrive zstd-compressed, so the test
//! can tell that host frames reached the node compressed (and, from the engine's counters,
//! that it decoded them); and carries the link state the test sets (`link down` is the cable
//! pulled or the radio out of range: the stack sees the link go down, nothing arrives, nothing
//! leaves). While the link is up the stack sees every Ethernet frame unchanged.
//!
//! A gossip connection carries one `[n][sender address: n bytes][flags][message]` (spec §2,
//! §3); the flag byte sits in the connection's first data segment, the one whose sequence
//! number follows the SYN's. A gossip datagram (`docs/EXTENSIONS.md` §5) carries the same bytes
//! in one UDP payload. Only IPv4 without fragments is read: that is all this test sends.

use embassy_net_driver::{Capabilities, Driver, HardwareAddress, LinkState, RxToken};
use embassy_sync::waitqueue::AtomicWaker;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::Context;
use tally_core::FLAG_ZSTD;

/// Gossip connections whose first segment showed the flag byte.
pub static FRAMES: AtomicU64 = AtomicU64::new(0);
/// Of those, frames with the zstd flag.
pub static COMPRESSED: AtomicU64 = AtomicU64::new(0);

/// Whether the link is up (set from the stdin thread with [`set_link`]).
static LINK_UP: AtomicBool = AtomicBool::new(true);
/// The network task, woken when the link changes.
static LINK_WAKER: AtomicWaker = AtomicWaker::new();

/// Brings the link up or down, as a cable or a radio would.
pub fn set_link(up: bool) {
    LINK_UP.store(up, Ordering::Relaxed);
    LINK_WAKER.wake();
}

fn link_up(cx: &Context) -> bool {
    LINK_WAKER.register(cx.waker());
    LINK_UP.load(Ordering::Relaxed)
}

/// Most connections tracked between their SYN and their first data segment.
const MAX_OPEN: usize = 256;

/// A driver that counts what arrives for the gossip `port` before handing it on.
pub struct Watched<D> {
    inner: D,
    port: u16,
    /// (source address, source port) -> sequence number of the first data byte.
    opening: HashMap<([u8; 4], u16), u32>,
}

impl<D> Watched<D> {
    pub fn new(inner: D, port: u16) -> Self {
        Self {
            inner,
            port,
            opening: HashMap::new(),
        }
    }
}

/// The receive token, reading the frame on its way to the stack.
pub struct WatchedRx<'a, T> {
    inner: T,
    port: u16,
    opening: &'a mut HashMap<([u8; 4], u16), u32>,
}

impl<T: RxToken> RxToken for WatchedRx<'_, T> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, f: F) -> R {
        let (port, opening) = (self.port, self.opening);
        self.inner.consume(|frame| {
            watch(frame, port, opening);
            f(frame)
        })
    }
}

impl<D: Driver> Driver for Watched<D> {
    type RxToken<'a>
        = WatchedRx<'a, D::RxToken<'a>>
    where
        Self: 'a;
    type TxToken<'a>
        = D::TxToken<'a>
    where
        Self: 'a;

    fn receive(&mut self, cx: &mut Context) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        if !link_up(cx) {
            // Frames sent to a board whose link is down never reach it.
            while self.inner.receive(cx).is_some() {}
            return None;
        }
        let (port, opening) = (self.port, &mut self.opening);
        self.inner.receive(cx).map(|(rx, tx)| {
            let rx = WatchedRx {
                inner: rx,
                port,
                opening,
            };
            (rx, tx)
        })
    }

    fn transmit(&mut self, cx: &mut Context) -> Option<Self::TxToken<'_>> {
        if !link_up(cx) {
            return None;
        }
        self.inner.transmit(cx)
    }

    fn link_state(&mut self, cx: &mut Context) -> LinkState {
        if !link_up(cx) {
            return LinkState::Down;
        }
        self.inner.link_state(cx)
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn hardware_address(&self) -> HardwareAddress {
        self.inner.hardware_address()
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Reads one Ethernet frame; anything that is not TCP or UDP to `port` over IPv4 is passed
/// over.
fn watch(frame: &[u8], port: u16, opening: &mut HashMap<([u8; 4], u16), u32>) -> Option<()> {
    if be16(frame, 12)? != 0x0800 {
        return None;
    }
    let ip = frame.get(14..)?;
    let ihl = usize::from(ip.first()? & 0x0f) * 4;
    let total = usize::from(be16(ip, 2)?);
    match *ip.get(9)? {
        6 => {}
        17 => {
            let udp = ip.get(ihl..total)?;
            if be16(udp, 2)? != port {
                return None;
            }
            return count(udp.get(8..)?);
        }
        _ => return None,
    }
    let tcp = ip.get(ihl..total)?;
    if be16(tcp, 2)? != port {
        return None;
    }
    let from: [u8; 4] = ip.get(12..16)?.try_into().ok()?;
    let key = (from, be16(tcp, 0)?);
    let seq = be32(tcp, 4)?;
    let flags = *tcp.get(13)?;
    if flags & 0x02 != 0 {
        if opening.len() >= MAX_OPEN {
            opening.clear();
        }
        opening.insert(key, seq.wrapping_add(1));
        return None;
    }
    let payload = tcp.get(usize::from(tcp.get(12)? >> 4) * 4..)?;
    if payload.is_empty() || opening.get(&key) != Some(&seq) {
        return None;
    }
    opening.remove(&key);
    count(payload)
}

/// Counts the frame that starts `payload`, by its flag byte.
fn count(payload: &[u8]) -> Option<()> {
    let n = usize::from(*payload.first()?);
    let flag = *payload.get(1 + n)?;
    FRAMES.fetch_add(1, Ordering::Relaxed);
    if flag & FLAG_ZSTD != 0 {
        COMPRESSED.fetch_add(1, Ordering::Relaxed);
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ethernet + IPv4 + TCP frame from 10.0.0.1:`sport` to port 9000.
    fn segment(sport: u16, seq: u32, syn: bool, payload: &[u8]) -> Vec<u8> {
        let mut tcp = vec![0u8; 20];
        tcp[0..2].copy_from_slice(&sport.to_be_bytes());
        tcp[2..4].copy_from_slice(&9000u16.to_be_bytes());
        tcp[4..8].copy_from_slice(&seq.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = if syn { 0x02 } else { 0x18 };
        tcp.extend_from_slice(payload);
        ethernet_ipv4(6, &tcp)
    }

    /// An Ethernet frame carrying an IPv4 packet from 10.0.0.1 to 10.0.0.2 of protocol
    /// `proto` around `l4`.
    fn ethernet_ipv4(proto: u8, l4: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        let total = (20 + l4.len()) as u16;
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(l4);
        f
    }

    #[test]
    fn counts_compressed_first_segments_only() {
        let mut open = HashMap::new();
        let (frames, zstd) = (
            FRAMES.load(Ordering::Relaxed),
            COMPRESSED.load(Ordering::Relaxed),
        );
        watch(&segment(5000, 99, true, &[]), 9000, &mut open);
        // [n = 3]["a:1"][flags 0xc0: zstd + auth]...
        watch(
            &segment(5000, 100, false, b"\x03a:1\xc0xyz"),
            9000,
            &mut open,
        );
        // A later segment of the same connection is not a frame start.
        watch(&segment(5000, 108, false, b"\x03a:1\x80"), 9000, &mut open);
        watch(&segment(5001, 7, true, &[]), 9000, &mut open);
        watch(&segment(5001, 8, false, b"\x03a:1\x40xyz"), 9000, &mut open);
        watch(&segment(5002, 8, false, b"\x03a:1\x80"), 9000, &mut open); // no SYN seen
        watch(&[0u8; 20], 9000, &mut open);
        // A datagram to the gossip port is one whole frame; one to another port is not ours.
        watch(&datagram(9000, b"\x03a:1\xc0xyz"), 9000, &mut open);
        watch(&datagram(9001, b"\x03a:1\xc0xyz"), 9000, &mut open);
        assert_eq!(FRAMES.load(Ordering::Relaxed) - frames, 3);
        assert_eq!(COMPRESSED.load(Ordering::Relaxed) - zstd, 2);
    }

    /// An Ethernet + IPv4 + UDP frame from 10.0.0.1:5000 to `dport`.
    fn datagram(dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut udp = vec![0u8; 8];
        udp[0..2].copy_from_slice(&5000u16.to_be_bytes());
        udp[2..4].copy_from_slice(&dport.to_be_bytes());
        udp[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        udp.extend_from_slice(payload);
        ethernet_ipv4(17, &udp)
    }
}
