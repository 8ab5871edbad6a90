//! Links `tally-core` with default features for `thumbv6m-none-eabi` and defines no
//! `#[global_allocator]`: if anything in the default build needed `alloc`, this would not link.
//! It encodes, parses, merges and digests, so none of that is optimised away.
#![no_std]
#![no_main]

use core::hint::black_box;
use cortex_m_rt::entry;
use panic_halt as _;
use tally_core::{
    digest::digest, frame, Config, FixedCounter, FixedEngine, Instant, Message, MessageLimits,
    NodeId, PeerSource,
};

type Node = FixedEngine<8, 4, 32>;

#[entry]
fn main() -> ! {
    let (Ok(a), Ok(b)) = (NodeId::<32>::new("10.0.0.1:9000"), NodeId::<32>::new("10.0.0.2:9000"))
    else {
        loop {}
    };
    let now = Instant::ZERO;
    let mut counter = FixedCounter::<8, 32>::new(a).ok();
    let mut other = FixedCounter::<8, 32>::new(b).ok();
    if let (Some(c), Some(o)) = (counter.as_mut(), other.as_mut()) {
        let _ = c.increment(black_box(3));
        let _ = o.decrement(black_box(1));
        let _ = c.merge(o);
        black_box(digest(c.entries()));
    }
    if let Ok(mut node) = Node::new(a, a, Config::mcu(), now) {
        let _ = node.add_peer("10.0.0.2:9000", PeerSource::Static, now);
        let _ = node.increment(black_box(2));
        let mut buf = [0u8; 512];
        let pull: Message<'_, core::iter::Empty<(&str, u64)>> =
            Message::DigestPull { id: b.as_str(), digest: black_box(7) };
        if let Ok(n) = pull.emit(&mut buf[1..]) {
            let _ = node.handle(now, "10.0.0.2:9000", &buf[..=n]);
        }
        while let Some(t) = node.poll_transmit(now, &mut buf) {
            if let Ok((_, f)) = frame::split_header(&buf[..t.len]) {
                if let Ok(body) = frame::decode(f, &Config::mcu().frame_limits) {
                    black_box(Message::parse(body.bytes(), &MessageLimits::MCU).is_ok());
                }
            }
        }
        black_box(node.value());
    }
    loop {
        core::hint::spin_loop();
    }
}
