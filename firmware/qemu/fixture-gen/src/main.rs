//! Regenerates `../fixtures/push32.*`: a Push of 32 entries from a 32-entry MCU-profile engine,
//! compressed by `tally_std::compress::zstd_in_place` (level 3, 8 KiB window, checksum) — the
//! exact bytes a host node sends. The emulated suite decodes it with `ruzstd` and checks it
//! against the plain message.
//!
//! Run from this directory: `cargo run` (writes the files, prints what it wrote).

use std::fmt::Write as _;
use tally_core::frame::{split_header, FLAG_ZSTD};
use tally_core::{Config, FixedEngine, Instant, Message, NodeId, PeerSource};

fn hex(bytes: &[u8]) -> String {
    let mut s = String::new();
    for (i, b) in bytes.iter().enumerate() {
        let _ = write!(s, "{b:02x}");
        if i % 32 == 31 {
            s.push('\n');
        }
    }
    s.push('\n');
    s
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let me = NodeId::<64>::new("10.0.0.7:9000")?;
    let mut e = FixedEngine::<32, 4, 64>::new(me, me, Config::mcu(), Instant::ZERO)
        .map_err(|_| "engine")?;
    let ids: Vec<String> = (0..31).map(|i| format!("10.0.1.{i}:9000")).collect();
    let mut sorted: Vec<(String, u64, u64)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.clone(), 1000 + 37 * i as u64, 3 * i as u64))
        .collect();
    sorted.sort();
    e.merge_state(sorted.iter().map(|(id, i, d)| (id.as_str(), *i, *d)))
        .map_err(|_| "merge")?;
    e.increment(5).map_err(|_| "inc")?;
    e.add_peer("10.0.0.8:9000", PeerSource::Static, Instant::ZERO)
        .map_err(|_| "peer")?;
    // A DigestPull with a different digest makes the engine answer with a full Push.
    let pull: Message<'_, core::iter::Empty<(&str, u64)>> = Message::DigestPull {
        id: "10.0.0.8:9000",
        digest: 1,
    };
    let mut frame = vec![0u8; 64];
    let n = pull.emit(&mut frame[1..])?;
    e.handle(Instant::ZERO, "10.0.0.8:9000", &frame[..=n])
        .map_err(|_| "handle")?;
    let mut buf = vec![0u8; 8192];
    let t = e.poll_transmit(Instant::ZERO, &mut buf).ok_or("no push")?;
    let (_, plain_frame) = split_header(&buf[..t.len]).map_err(|_| "header")?;
    let plain = plain_frame[1..].to_vec();
    let mut work = plain.clone();
    work.resize(plain.len() * 2, 0);
    let clen = tally_std::compress::zstd_in_place(&mut work, plain.len()).ok_or("compress")?;
    let mut zframe = vec![FLAG_ZSTD];
    zframe.extend_from_slice(&work[..clen]);
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures");
    std::fs::write(format!("{dir}/push32.msgpack.hex"), hex(&plain))?;
    std::fs::write(format!("{dir}/push32.zst-frame.hex"), hex(&zframe))?;
    // The largest message an MCU accepts (8 KiB, MessageLimits/FrameLimits::MCU), compressed the
    // same way: its decoding is the heap's worst case (ruzstd's window, tables and output).
    // Shaped like a large Push: many `host:port` ids with varying counters, so the decoder
    // sees many short matches (its sequence buffers are the largest allocation).
    let mut big: Vec<u8> = Vec::with_capacity(8192);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    while big.len() < 8192 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let id = format!("\u{a}10.{}.{}.{}:9000\u{cf}", x % 7, (x >> 8) % 13, (x >> 16) % 251);
        big.extend_from_slice(id.as_bytes());
        big.extend_from_slice(&(x >> 24).to_be_bytes()[..(1 + (x % 8) as usize)]);
    }
    big.truncate(8192);
    for (name, len) in [("max8k", 8192usize), ("max4k", 4096)] {
        let msg = &big[..len];
        let mut work = msg.to_vec();
        work.resize(len * 2, 0);
        let n = tally_std::compress::zstd_in_place(&mut work, len).ok_or("compress big")?;
        let mut frame = vec![FLAG_ZSTD];
        frame.extend_from_slice(&work[..n]);
        std::fs::write(format!("{dir}/{name}.zst-frame.hex"), hex(&frame))?;
        println!("{len} B message -> zstd frame {} bytes", frame.len());
    }
    println!(
        "plain message {} bytes, zstd frame {} bytes, value {}, entries {}",
        plain.len(),
        zframe.len(),
        e.value(),
        e.counter().nonzero_len()
    );
    Ok(())
}
