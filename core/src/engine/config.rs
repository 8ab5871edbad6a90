//! [`Config`]: the engine's timing, fan-out, failure detection and limits.

use crate::frame::FrameLimits;
use crate::message::MessageLimits;
use crate::peers::Detector;
use crate::time::Duration;

/// Compresses `buf[..len]` in place (the rest of `buf` is spare room) and returns the new
/// length, or `None` to send the message plain. Hosts pass a zstd compressor; the core itself
/// never compresses.
pub type Compressor = fn(buf: &mut [u8], len: usize) -> Option<usize>;

/// Engine settings. Defaults follow spec §6 and the host limits of §7.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Every `sync_interval`, DigestPull to `fanout` random live peers (default 2 s).
    pub sync_interval: Duration,
    /// Every `full_sync_interval`, a full Push to max(1, fanout/2) live peers (default 20 s).
    pub full_sync_interval: Duration,
    /// Peers per sync round (default 2).
    pub fanout: u8,
    /// Failure detection (max fails 5, silence 30 s, prune after 60 s).
    pub detector: Detector,
    /// Limits on received frames.
    pub frame_limits: FrameLimits,
    /// Limits on received messages.
    pub message_limits: MessageLimits,
    /// Messages longer than this are offered to the compressor (default 1024, as the reference).
    pub compress_above: usize,
    /// Optional compressor for outgoing messages.
    pub compressor: Option<Compressor>,
}

impl Config {
    /// Host defaults.
    pub fn host() -> Self {
        Self {
            sync_interval: Duration::from_secs(2),
            full_sync_interval: Duration::from_secs(20),
            fanout: 2,
            detector: Detector::default(),
            frame_limits: FrameLimits::HOST,
            message_limits: MessageLimits::HOST,
            compress_above: 1024,
            compressor: None,
        }
    }

    /// Microcontroller defaults (4 KiB frames, 64-byte ids, 32 entries).
    pub fn mcu() -> Self {
        Self {
            frame_limits: FrameLimits::MCU,
            message_limits: MessageLimits::MCU,
            ..Self::host()
        }
    }

    /// Sets the sync interval and the full-sync interval to ten times it (spec §6).
    pub fn with_sync_interval(mut self, every: Duration) -> Self {
        self.sync_interval = every;
        self.full_sync_interval = every.saturating_mul(10);
        self
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::host()
    }
}
