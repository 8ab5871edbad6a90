//! Frames (spec §3) and the TCP header (spec §2).
//!
//! On TCP a connection carries `[n][sender address: n bytes][frame]`, and a frame is a flag
//! byte followed by the msgpack message, plain (`0x00`) or zstd-compressed (`0x80`). The
//! `0x40` bit marks an authenticated frame (spec §8). Every adapter shares these functions.

use crate::error::WireError;
use crate::msgpack::BufferTooSmall;

/// Flag: the rest of the frame is a zstd frame.
pub const FLAG_ZSTD: u8 = 0x80;
/// Flag: the frame ends in a 16-byte authentication tag (spec §8).
pub const FLAG_AUTH: u8 = 0x40;

/// Receiver limits on frames (spec §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FrameLimits {
    /// Largest frame accepted on the wire, flag byte included.
    pub max_frame: usize,
    /// Largest message accepted after decompression.
    pub max_decompressed: usize,
    /// Largest zstd window accepted.
    pub max_window: usize,
}

impl FrameLimits {
    /// Host defaults: 1 MiB frames, 4 MiB messages, 4 MiB window.
    pub const HOST: FrameLimits = FrameLimits {
        max_frame: 1 << 20,
        max_decompressed: 4 << 20,
        max_window: 4 << 20,
    };
    /// Raspberry Pi Pico W: 4 KiB frames, 8 KiB messages, 8 KiB window, decoded in its 60 KiB
    /// heap ([`BOARDS`]).
    pub const PICO_W: FrameLimits = FrameLimits {
        max_frame: 4 << 10,
        max_decompressed: 8 << 10,
        max_window: 8 << 10,
    };
    /// WIZnet W5500-EVB-Pico: 4 KiB frames, messages and window, decoded in its 36 KiB heap
    /// ([`BOARDS`]). The window is held to the message limit: a crafted frame may declare a
    /// window larger than anything it delivers, and `ruzstd` sizes its buffers by the window.
    /// Hosts compress with the content size in the header, which makes a frame's window its
    /// content size, so every host frame of at most 4 KiB passes.
    pub const W5500: FrameLimits = FrameLimits {
        max_frame: 4 << 10,
        max_decompressed: 4 << 10,
        max_window: 4 << 10,
    };
    /// ESP32-C3: the Pico W's limits; zstd decodes in what Wi-Fi leaves of its 120 KiB heap
    /// ([`BOARDS`]).
    pub const ESP32C3: FrameLimits = FrameLimits::PICO_W;
    /// Microcontroller defaults (`Config::mcu`): the Pico W's limits, 4 KiB frames, 8 KiB
    /// messages, 8 KiB window. A board with less heap than the Pico W takes its own
    /// ([`BOARDS`]).
    pub const MCU: FrameLimits = FrameLimits::PICO_W;
}

/// A board's frame limits and the heap its firmware leaves `ruzstd` to decode in under them.
///
/// `ruzstd` panics when an allocation fails, so a board's limits must keep decoding inside its
/// heap whatever a frame holds: the emulated suites (`firmware/qemu`, on the boards' allocator,
/// in an arena of exactly each board's heap) and the `zstd_frame` fuzz target (every frame, on
/// a counting allocator) fail when decoding under [`BoardLimits::limits`] takes more than
/// [`BoardLimits::zstd_heap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoardLimits {
    /// The board, as the firmware names it.
    pub name: &'static str,
    /// The limits its firmware receives frames with.
    pub limits: FrameLimits,
    /// Heap bytes zstd decoding may use on it.
    pub zstd_heap: usize,
}

/// Every board's frame limits and zstd heap.
///
/// | board | messages | window | zstd heap | peak decoding the largest message it accepts |
/// |---|---|---|---|---|
/// | Pico W | 8 KiB | 8 KiB | 60 KiB (all of its heap) | about 49 KB |
/// | W5500-EVB-Pico | 4 KiB | 4 KiB | 36 KiB (all of its heap) | about 30 KB |
/// | ESP32-C3 | 8 KiB | 8 KiB | 63 KiB (its 120 KiB heap less Wi-Fi's 57 KiB) | about 49 KB |
///
/// Frames of at most 4 KiB everywhere; the peaks are the emulated suites' (32-bit, the boards'
/// allocator).
pub const BOARDS: [BoardLimits; 3] = [
    BoardLimits {
        name: "pico-w",
        limits: FrameLimits::PICO_W,
        zstd_heap: 60 << 10,
    },
    BoardLimits {
        name: "w5500-evb-pico",
        limits: FrameLimits::W5500,
        zstd_heap: 36 << 10,
    },
    BoardLimits {
        name: "esp32c3",
        limits: FrameLimits::ESP32C3,
        zstd_heap: 63 << 10,
    },
];

/// The message inside a frame: borrowed when plain, owned when it was decompressed.
#[derive(Debug)]
pub enum Body<'a> {
    /// A plain frame's message, borrowed from the input.
    Plain(&'a [u8]),
    /// A decompressed message.
    #[cfg(feature = "zstd")]
    Decompressed(alloc::vec::Vec<u8>),
}

impl Body<'_> {
    /// The msgpack bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Body::Plain(b) => b,
            #[cfg(feature = "zstd")]
            Body::Decompressed(v) => v,
        }
    }

    /// True when the frame was compressed.
    pub fn was_compressed(&self) -> bool {
        !matches!(self, Body::Plain(_))
    }
}

/// Opens an unauthenticated frame: checks size and flags, decompresses within the limits.
///
/// A frame with the `FLAG_AUTH` bit is `UnexpectedAuth` here; authenticated frames are opened
/// by the engine, which holds the key, after verifying the tag.
pub fn decode<'a>(frame: &'a [u8], limits: &FrameLimits) -> Result<Body<'a>, WireError> {
    let (&flags, rest) = frame.split_first().ok_or(WireError::Empty)?;
    if frame.len() > limits.max_frame {
        return Err(WireError::FrameTooLarge);
    }
    if flags & !(FLAG_ZSTD | FLAG_AUTH) != 0 {
        return Err(WireError::UnknownFlags);
    }
    if flags & FLAG_AUTH != 0 {
        return Err(WireError::UnexpectedAuth);
    }
    decode_flags(flags, rest, limits)
}

/// Opens a frame with the receiver's key setting: without a key this is [`decode`]; with one,
/// the frame must carry a valid tag (spec §8), which is checked before anything else is read.
pub fn decode_keyed<'a>(
    frame: &'a [u8],
    limits: &FrameLimits,
    key: Option<&crate::auth::ClusterKey>,
) -> Result<Body<'a>, WireError> {
    let Some(key) = key else {
        return decode(frame, limits);
    };
    let (&flags, _) = frame.split_first().ok_or(WireError::Empty)?;
    if frame.len() > limits.max_frame {
        return Err(WireError::FrameTooLarge);
    }
    if flags & !(FLAG_ZSTD | FLAG_AUTH) != 0 {
        return Err(WireError::UnknownFlags);
    }
    let opened = key.open(frame)?;
    let (_, rest) = opened.split_first().ok_or(WireError::Empty)?;
    decode_flags(flags & !FLAG_AUTH, rest, limits)
}

/// Decodes the body after a flag byte whose auth bit was already dealt with.
pub(crate) fn decode_flags<'a>(
    flags: u8,
    rest: &'a [u8],
    limits: &FrameLimits,
) -> Result<Body<'a>, WireError> {
    match flags & !FLAG_AUTH {
        0x00 => Ok(Body::Plain(rest)),
        FLAG_ZSTD => decompress(rest, limits),
        _ => Err(WireError::UnknownFlags),
    }
}

#[cfg(feature = "zstd")]
fn decompress<'a>(rest: &'a [u8], limits: &FrameLimits) -> Result<Body<'a>, WireError> {
    crate::zstd::decompress(rest, limits).map(Body::Decompressed)
}

#[cfg(not(feature = "zstd"))]
fn decompress<'a>(_rest: &'a [u8], _limits: &FrameLimits) -> Result<Body<'a>, WireError> {
    Err(WireError::CompressionUnsupported)
}

/// Splits a TCP payload into the sender's address and the frame (spec §2).
///
/// The address must be 1..=255 bytes of printable ASCII ending in `:port`.
pub fn split_header(payload: &[u8]) -> Result<(&str, &[u8]), WireError> {
    let (&n, rest) = payload.split_first().ok_or(WireError::Empty)?;
    let n = usize::from(n);
    if n == 0 || rest.len() < n {
        return Err(WireError::BadHeader);
    }
    let (addr, frame) = rest.split_at(n);
    let addr = core::str::from_utf8(addr).map_err(|_| WireError::BadHeader)?;
    if !is_gossip_address(addr) {
        return Err(WireError::BadHeader);
    }
    Ok((addr, frame))
}

/// True for `host:port` in printable ASCII with a numeric port (1..=65535).
pub fn is_gossip_address(addr: &str) -> bool {
    if addr.is_empty() || addr.len() > 255 || !addr.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return false;
    }
    match addr.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty()
                && !port.is_empty()
                && port.len() <= 5
                && port.bytes().all(|b| b.is_ascii_digit())
                && port.parse::<u16>().is_ok_and(|p| p != 0)
        }
        None => false,
    }
}

/// Writes the §2 header for `addr` into `buf`; returns its length.
pub fn write_header(addr: &str, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
    let n = u8::try_from(addr.len()).map_err(|_| BufferTooSmall)?;
    let total = addr.len() + 1;
    let out = buf.get_mut(..total).ok_or(BufferTooSmall)?;
    let (first, rest) = out.split_first_mut().ok_or(BufferTooSmall)?;
    *first = n;
    rest.copy_from_slice(addr.as_bytes());
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_roundtrip_and_rejects() {
        let mut buf = [0u8; 32];
        let n = write_header("127.0.0.1:9000", &mut buf).unwrap();
        buf[n] = 0x00;
        let (addr, frame) = split_header(&buf[..n + 1]).unwrap();
        assert_eq!(addr, "127.0.0.1:9000");
        assert_eq!(frame, &[0x00]);
        assert_eq!(split_header(&[]), Err(WireError::Empty));
        assert_eq!(split_header(&[0, 1]), Err(WireError::BadHeader));
        assert_eq!(split_header(&[5, b'a']), Err(WireError::BadHeader));
        assert_eq!(split_header(b"\x03a:b"), Err(WireError::BadHeader));
        assert_eq!(split_header(b"\x03a:0"), Err(WireError::BadHeader));
        assert_eq!(split_header(b"\x03a:1").map(|h| h.0), Ok("a:1"));
        assert!(is_gossip_address("[::1]:9000"));
        assert!(!is_gossip_address("host:99999"));
        assert!(!is_gossip_address("ho st:1"));
    }

    #[test]
    fn flags_are_checked() {
        let l = FrameLimits::MCU;
        assert_eq!(decode(&[], &l).unwrap_err(), WireError::Empty);
        assert_eq!(
            decode(&[0x01, 0x80], &l).unwrap_err(),
            WireError::UnknownFlags
        );
        assert_eq!(decode(&[0x20], &l).unwrap_err(), WireError::UnknownFlags);
        assert_eq!(decode(&[0x40], &l).unwrap_err(), WireError::UnexpectedAuth);
        assert_eq!(decode(&[0x00, 1, 2], &l).unwrap().bytes(), &[1, 2]);
        let big = [0u8; 5000];
        assert_eq!(decode(&big, &l).unwrap_err(), WireError::FrameTooLarge);
    }

    #[test]
    fn board_limits_are_consistent() {
        assert_eq!(FrameLimits::MCU, FrameLimits::PICO_W);
        for b in BOARDS {
            let l = b.limits;
            assert!(l.max_window <= l.max_decompressed, "{}: window", b.name);
            assert!(l.max_frame <= l.max_decompressed, "{}: frame", b.name);
            assert!(l.max_decompressed <= FrameLimits::MCU.max_decompressed);
            assert!(b.zstd_heap >= 4 * l.max_decompressed, "{}: heap", b.name);
        }
    }
}
